"""``lens()`` and ``train_lens()``: what each layer of a model predicts (logit lens, or a tuned lens), and
training that tuned lens (models/lens.py does the work; here the options are checked and files written)."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_lab import defaults
from interp_lab.api.registry import command
from interp_lab.errors import UsageError
from interp_lab.io.datasets import DATASET_HELP, TEXT_COLUMN_HELP
from interp_lab.schemas.command import Progress, option


def _token_list(text: str) -> tuple[str, ...]:
    """``--tokens ' metres, m'`` -> (' metres', ' m'): single tokens as written, spaces kept."""
    return tuple(t for t in text.split(",") if t)


@dataclass(kw_only=True)
class LensOptions:
    """The options of ``lens`` (one of ``prompt`` and ``dataset``)."""

    model: str = option(defaults.MODEL)
    prompt: str | None = option(None, "One prompt: per-layer table at its last token and a layer x position plot.")
    dataset: str | None = option(None, "Documents: mean KL to the final distribution per layer, logit lens vs "
                                        "tuned lens. " + DATASET_HELP)
    text_column: str | None = option(None, TEXT_COLUMN_HELP)
    layers: str = option("all", "all, middle, or a list / ranges.")
    metric: str = option("prob", "prob (of the first --tokens) or logit_diff (A - B).")
    tokens: tuple[str, ...] = option((), "Comma list of single tokens, e.g. ' metres, m'.", cli_type=str,
                                     cli_default="", convert=_token_list)
    tuned: Path | None = option(None, "A tuned lens directory: train-lens's, or the tuned-lens package's "
                                      "(config.json + params.pt).")
    out: Path | None = option(None, "Directory for lens.json and the plots (PNG, HTML).")
    max_docs: int = option(40, "Documents used with --dataset.", min=1)


@dataclass
class LensResult:
    """What ``lens`` found: with a prompt, ``table`` (models.lens.lens_table: per layer the top tokens at the
    last position, the KL to the final distribution and the metric at every position); with a dataset,
    ``kl`` (per layer the mean KL(final || lens) in nats of the logit lens and, with a tuned lens, of it)."""

    table: dict[str, Any] | None = None
    kl: dict[int, dict[str, float]] | None = None
    paths: dict[str, Path] = field(default_factory=dict)
    """Files written with ``out``: lens.json, lens.html, lens.png (prompt); lens_kl.json (dataset)."""
    notes: list[str] = field(default_factory=list)
    """What was skipped (a plot without matplotlib); doubts about a tuned-lens checkpoint's model."""


@command("lens", options=LensOptions, result=LensResult, group="models and stores", log=True,
         help="Logit lens (or tuned lens): what each layer predicts.")
def lens(o: LensOptions, progress: Progress) -> LensResult:
    from interp_lab.harvest.records import parse_layers
    from interp_lab.io.datasets import Corpus
    from interp_lab.models.lens import TunedLens, check_metric, evaluate, lens_table, middle_layers
    from interp_lab.models.load import load_model

    # every option is checked before the model loads
    if (o.prompt is None) == (o.dataset is None):
        raise UsageError("give exactly one of --prompt and --dataset")
    if o.text_column is not None and o.dataset is None:
        raise UsageError("--text-column chooses the text of a --dataset")
    toks = list(_token_list(o.tokens) if isinstance(o.tokens, str) else o.tokens)  # the API may pass the text
    if o.prompt is not None:
        if not toks:
            raise UsageError("--tokens is needed with --prompt (the token(s) the metric is about)")
        check_metric(o.metric, len(toks))
    if o.layers not in ("all", "middle", ""):
        parse_layers(o.layers, 1 << 30)  # the syntax now, the range once the model is known
    tuned = TunedLens.load(o.tuned) if o.tuned else None
    texts = None
    if o.dataset is not None:
        texts = _documents(Corpus(o.dataset, o.text_column), o.max_docs)
        if not texts:
            raise UsageError(f"--dataset {o.dataset}: no documents")
    lm = load_model(o.model, say=progress.say)
    notes = [] if tuned is None else tuned.check_model(lm, f"--tuned {o.tuned}")
    chosen = middle_layers(lm.n_layers) if o.layers == "middle" else parse_layers(o.layers, lm.n_layers)
    if o.prompt is not None:
        res = LensResult(table=lens_table(lm, o.prompt, chosen, tuned=tuned, metric=o.metric, tokens=toks),
                         notes=notes)
        if o.out is not None:
            _write_table(res, Path(o.out), o.prompt, o.metric, toks)
        return res
    res = LensResult(kl=evaluate(lm, texts, chosen, tuned, progress=progress), notes=notes)
    if o.out is not None:
        from interp_lab.io.atomic import write_bytes_atomic

        res.paths["kl"] = Path(o.out) / "lens_kl.json"
        write_bytes_atomic(res.paths["kl"], json.dumps({str(k): v for k, v in res.kl.items()}, indent=1).encode())
    return res


def _write_table(res: LensResult, out: Path, prompt: str, metric: str, toks: list[str]) -> None:
    """lens.json, lens.html and (with matplotlib) lens.png of a prompt's table into ``out``."""
    from interp_lab.io.atomic import write_bytes_atomic
    from interp_lab.io.figures import missing_note
    from interp_lab.report.plots import heatmap_html, heatmap_png

    table = res.table
    values = [r["metric"] for r in table["rows"]]
    title = f"{table['lens']} lens, {metric} of {', '.join(repr(t) for t in toks)}: {prompt}"
    labels = [f"L{r['layer']}" for r in table["rows"]]
    res.paths.update(json=out / "lens.json", html=out / "lens.html")
    heatmap_html(values, labels, table["tokens"], title, res.paths["html"])
    if heatmap_png(values, labels, table["tokens"], title, out / "lens.png", required=False):
        res.paths["png"] = out / "lens.png"
    else:
        res.notes.append(missing_note("lens.png"))
    write_bytes_atomic(res.paths["json"], json.dumps(table, indent=1).encode())


def _documents(corpus, n: int) -> list[str]:
    """The texts of the first ``n`` documents of ``corpus`` (an io.datasets.Corpus; the rest is not read)."""
    return [d.text for d in itertools.islice(corpus.documents(), n)]


@dataclass(kw_only=True)
class TrainLensOptions:
    """The options of ``train-lens``."""

    model: str = option(defaults.MODEL)
    dataset: str = option("lee", "Training documents, then held-out ones: " + DATASET_HELP)
    text_column: str | None = option(None, TEXT_COLUMN_HELP)
    out: Path = option(help="Directory for lens.safetensors + lens.json, and config.json + params.pt (the tuned-lens "
                            "package's format).")
    layers: str = option("all")
    steps: int = option(100, "KL steps per layer after the least-squares start.", min=0)
    max_docs: int = option(60, min=1)
    heldout_docs: int = option(30, "Documents after the training ones, for the KL table written with the lens.",
                               min=1)
    context_length: int = option(128, min=2)
    seed: int = option(0)


@dataclass
class TrainLensResult:
    """A tuned lens trained by ``train-lens``."""

    path: Path
    """The lens directory: lens.safetensors + lens.json (which holds the metrics below), config.json + params.pt
    (tuned-lens's format: ``TunedLens.from_model_and_pretrained(model, path)`` reads it)."""
    heldout_kl: dict[int, dict[str, float]]
    """Per layer, mean KL(final || lens) in nats on the held-out documents: logit lens and tuned lens."""
    train_docs: int
    heldout_docs: int
    paths: dict[str, Path] = field(default_factory=dict)


@command("train-lens", options=TrainLensOptions, result=TrainLensResult, group="models and stores", log=True,
         help="Train a tuned lens (per-layer affine translators) against the final logits with KL.")
def train_lens(o: TrainLensOptions, progress: Progress) -> TrainLensResult:
    from interp_lab.harvest.records import parse_layers
    from interp_lab.io.datasets import Corpus
    from interp_lab.models.lens import evaluate, train_tuned_lens
    from interp_lab.models.load import load_model

    corpus = Corpus(o.dataset, o.text_column)  # a bad name or column fails before the model loads
    lm = load_model(o.model, say=progress.say)
    chosen = [i for i in parse_layers(o.layers, lm.n_layers) if i < lm.n_layers - 1]
    docs = _documents(corpus, o.max_docs + o.heldout_docs)
    train, held = docs[:o.max_docs], docs[o.max_docs:]
    tuned = train_tuned_lens(lm, train, chosen, steps=o.steps, context=o.context_length, seed=o.seed,
                             log=progress.say)
    metrics = evaluate(lm, held, chosen, tuned, context=o.context_length, progress=progress) if held else {}
    path = tuned.save(o.out, {"heldout_kl": {str(k): v for k, v in metrics.items()}, "train_docs": len(train),
                              "heldout_docs": len(held), "steps": o.steps, "dataset": o.dataset,
                              "dataset_source": corpus.identity()})
    return TrainLensResult(path=path, heldout_kl=metrics, train_docs=len(train), heldout_docs=len(held),
                           paths={"lens": path, "tuned_lens_config": path / "config.json",
                                  "tuned_lens_params": path / "params.pt"})
