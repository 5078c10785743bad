"""``compare()`` and ``interp-lab match``: the features of two reports (or feature dumps) matched by
their fingerprints (``evidence.match``), written as matches.json, matches.md and matches.html."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from interp_lab.api.registry import command
from interp_lab.errors import InputError, UsageError
from interp_lab.schemas.command import Progress, option

FORMATS = ("json", "md", "html")


@dataclass
class Side:
    """One side of a comparison: its features and where they came from."""

    features: Any  # evidence.fingerprint.FeatureSet
    info: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@dataclass
class MatchResult:
    matches: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def pairs(self) -> list[dict[str, Any]]:
        return self.matches["matches"]

    @property
    def typed(self):
        """matches.json as a validated ``schemas.reports.MatchesFile`` (``res.typed.matches[0].p_value``)."""
        import msgspec

        from interp_lab.schemas.reports import MatchesFile

        return msgspec.convert(self.matches, MatchesFile)


def load_side(obj: Any, name: str = "left", text_embeddings: bool = False) -> Side:
    """A report (``InspectResult``, report dict, report.json or its directory) or a feature dump (.jsonl,
    .jsonl.gz, .jsonl.zst) as a ``Side``. ``text_embeddings``: features without a text embedding get one
    (MiniLM over their label and top examples; needs the embed extra)."""
    from interp_lab.evidence.fingerprint import feature_set

    if _is_checkpoint(obj):
        return _sae_side(Path(obj))
    entries, info = _entries(obj, name)
    notes: list[str] = []
    if info.get("kind") == "report" and info.get("criterion"):
        entries = [_with_causal(e, info["criterion"]) for e in entries]
    if text_embeddings:
        import copy

        from interp_lab.providers.text import add_text_embeddings

        entries = copy.deepcopy(entries)
        n = add_text_embeddings(entries)
        if n:
            notes.append(f"{name}: text embeddings computed here for {n} features (all-MiniLM-L6-v2 over the "
                         "label and top examples)")
    fs, more = feature_set(entries, info.get("path") or f"{name} report")
    info["features"] = len(fs)
    return Side(fs, info, notes + more)


def _is_checkpoint(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike)) and (Path(obj) / "cfg.json").is_file()


def _sae_side(root: Path) -> Side:
    """An SAE (or transcoder) checkpoint as a side: its latents with their decoder rows, in the basis of the
    model and hook its cfg.json names, so that two SAEs of one hook can be matched latent by latent."""
    from interp_lab.evidence.fingerprint import FeatureSet
    from interp_lab.io.hashing import sha256_file
    from interp_lab.sae.checkpoint import WEIGHTS, _read_cfg, load_sae, read_metadata
    from interp_lab.sae.records import layer_of
    from interp_lab.schemas.feature_id import format_id

    sae = load_sae(root)
    meta = read_metadata(_read_cfg(root)[1])
    hook = meta.get("hook_name")
    layer = meta.get("hook_layer", layer_of(hook) if hook else None)
    dec = sae.W_dec.detach().float().numpy()
    ids = [format_id(layer, "F", i) for i in range(len(dec))]
    basis = {"model": meta.get("model_name"), "revision": meta.get("model_revision"), "hook": hook}
    info = {"kind": "sae", "path": str(root), "sha256": sha256_file(root / WEIGHTS), "model": meta.get("model_name"),
            "hook": hook, "architecture": sae.cfg.architecture, "d_sae": sae.cfg.d_sae, "features": len(ids)}
    return Side(FeatureSet(ids, decoder=dec, basis=basis), info)


def _with_causal(card: dict[str, Any], criterion: str) -> dict[str, Any]:
    """A card whose fingerprint has no ``causal`` part gets one from its own causal evidence: the
    report's criterion and the signed held-out effect of its strongest intervention kind (one beyond
    its controls first, then the largest |effect|)."""
    fp = card.get("fingerprint") or {}
    kinds = [k for k in (card.get("causal") or {}).values() if isinstance(k, dict) and k.get("mean_effect") is not None]
    if fp.get("causal") or not kinds:
        return card
    best = max(kinds, key=lambda k: (bool(k.get("strong_causal")), abs(float(k["mean_effect"]))))
    return {**card, "fingerprint": {**fp, "causal": {criterion: float(best["mean_effect"])}}}


def _report_dict(obj: Any) -> dict[str, Any] | None:
    """``obj`` as a report dict when it is one already (a dict or an ``InspectResult``), else None."""
    report = getattr(obj, "report", None)
    return obj if isinstance(obj, dict) else report if isinstance(report, dict) else None


def _report_file(path: Path) -> Path:
    """report.json itself, or the report.json of a report directory."""
    return path / "report.json" if path.is_dir() else path


def _read_report(path: Path) -> dict[str, Any]:
    """report.json validated (naming the file and field on bad input), as plain dicts."""
    import msgspec

    from interp_lab.schemas.reports import read_report

    return msgspec.to_builtins(read_report(path))


def _entries(obj: Any, name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(cards or dump rows as dicts, where they came from)."""
    from interp_lab.io.hashing import sha256_file

    rep = _report_dict(obj)
    if rep is not None:
        if "cards" not in rep:
            raise UsageError(f"{name}: a dict that is not a report (no cards)")
        return list(rep["cards"]), {"kind": "report", "model": rep.get("model"), "criterion": rep.get("criterion")}
    path = _report_file(Path(obj))
    if not path.exists():
        raise InputError(str(path), "file not found")
    info: dict[str, Any] = {"path": str(obj), "sha256": sha256_file(path)}
    if path.suffix == ".json":
        rep = _read_report(path)
        info.update(kind="report", model=rep.get("model"), criterion=rep.get("criterion"))
        return rep["cards"], info
    if ".jsonl" in "".join(path.suffixes[-2:]):
        from interp_lab.providers.features import card_fields, load_dump

        dump = load_dump(path)
        info.update(kind="features", models=dump.models)
        return [{"feature_id": fid, **card_fields(row, "")} for fid, row in dump.rows.items()], info
    raise InputError(str(path), "expected a report (report.json or its directory) or a feature dump (.jsonl)")


def _weights(text: str | None) -> dict[str, float] | None:
    """``activation=0.6,text=0.4`` as the command line writes part weights."""
    if not text:
        return None
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"--weights {text!r}: expected part=weight,... (e.g. activation=0.6,text=0.4)")
    return out


@dataclass(kw_only=True)
class MatchOptions:
    left: Any = option(help="Report (report.json or its directory) or feature dump (.jsonl).", required=True,
                       cli_type=Path)  # the API also takes a report dict
    right: Any = option(help="The other side, likewise.", required=True, cli_type=Path)
    out: Path | None = option(None, "matches.json (matches.md and matches.html are written beside it).",
                              required=True)
    k: int = option(10, "Candidates kept for every left feature.", flag="--top-k", deprecated=("--k",), min=1)
    weights: dict[str, float] | None = option(None, "Part weights, e.g. activation=0.6,text=0.4 (default activation "
                                                    "0.4, others 0.15).", cli_type=Optional[str], convert=_weights)
    null_pairs: int = option(20_000, "Random pairs of the permutation null.", min=100)
    alpha: float = option(0.05, "One-to-one pairs must beat the null's 1 - alpha quantile.")
    seed: int = option(0)
    text_embeddings: bool = option(False, "Embed the labels and top examples of features without a text embedding "
                                          "(MiniLM; the embed extra).")
    formats: tuple[str, ...] = option(FORMATS, "Files written beside matches.json.", cli=False)


@command("match", options=MatchOptions, result=MatchResult, group="cross-model", step=True, json=True,
         positional=("left", "right", "out"),
         help="Match the features of two reports (or feature dumps) by their fingerprints, with calibrated p-values.")
def compare(o: MatchOptions, progress: Progress) -> MatchResult:
    """Match the features of ``left`` against those of ``right`` (each a report, a report.json path or
    directory, or a feature dump): every left feature's ``k`` best right candidates by combined
    fingerprint similarity, with p-values under a permutation null and a one-to-one assignment.
    ``text_embeddings``: embed the labels and top examples of features that have no text embedding.
    With ``out`` (the matches.json path), writes matches.json, matches.md and matches.html beside it,
    all or nothing."""
    left, right, out, k, weights, null_pairs = o.left, o.right, o.out, o.k, o.weights, o.null_pairs
    alpha, seed, text_embeddings, formats = o.alpha, o.seed, o.text_embeddings, o.formats
    from interp_lab.evidence.fingerprint import WEIGHTS
    from interp_lab.evidence.match import MatchSettings, match

    if k < 1:
        raise UsageError("--top-k must be at least 1")
    if not 0 < alpha < 1:
        raise UsageError("--alpha must be between 0 and 1")
    if null_pairs < 100:
        raise UsageError("--null-pairs must be at least 100")
    a, b = load_side(left, "left", text_embeddings), load_side(right, "right", text_embeddings)
    settings = MatchSettings(k=k, null_pairs=null_pairs, alpha=alpha, seed=seed,
                             weights=tuple((weights or WEIGHTS).items()))
    body = match(a.features, b.features, settings)
    doc = {"schema_version": body["schema_version"], "left": a.info, "right": b.info, "method": body["method"],
           "summary": body["summary"], "notes": a.notes + b.notes, "matches": body["matches"]}
    result = MatchResult(doc)
    if out is not None:
        result.paths = write_matches(doc, out, formats)
    return result


def _write_beside(out: str | os.PathLike, default_name: str, doc: dict[str, Any], renders: dict[str, Any],
                  with_json: bool = True) -> dict[str, Path]:
    """``doc`` as JSON at ``out`` (a .json path, or ``default_name`` in the directory ``out``) and each of
    ``renders`` ({suffix: doc -> str}) beside it with the same stem, all renamed into place together."""
    from interp_lab.io.atomic import atomic_dir
    from interp_lab.report.write import report_bytes

    target = Path(out)
    if target.suffix != ".json":
        target = target / default_name
    files = {"json": (target.name, report_bytes(doc))} if with_json else {}
    files.update({ext: (f"{target.stem}.{ext}", render(doc).encode("utf-8")) for ext, render in renders.items()})
    with atomic_dir(target.parent) as tmp:
        for fname, data in files.values():
            (tmp / fname).write_bytes(data)
    return {ext: target.parent / fname for ext, (fname, _) in files.items()}


def write_matches(doc: dict[str, Any], out: str | os.PathLike, formats: tuple[str, ...] = FORMATS) -> dict[str, Path]:
    """matches.json (at ``out``, or in the directory ``out``) and matches.md / matches.html beside it, all
    renamed into place together."""
    from interp_lab.report.matches import render_html, render_markdown

    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise UsageError(f"unknown formats {sorted(unknown)}")
    renders = {"md": render_markdown, "html": render_html}
    return _write_beside(out, "matches.json", doc, {k: v for k, v in renders.items() if k in formats},
                         with_json="json" in formats)


@dataclass(kw_only=True)
class GraphOptions:
    report: Any = option(help="report.json (or its directory).", required=True, cli_type=Path)  # or a report dict
    out: Path = option(help="graph.json (graph.html is written beside it).")
    similarity: bool = option(False, "Link features to their most similar others by fingerprint.",
                              flag="--include-similarity-edges", param="include_similarity_edges")
    k: int = option(3, "Similarity edges per feature (at most): its top-k most similar features.", flag="--top-k",
                    deprecated=("--k",), min=1)
    alpha: float = option(0.05, "Similarity edges need p below this.")
    seed: int = option(0, "Seed of the similarity null.", cli=False)


@command("export-attribution-graph", options=GraphOptions, result=dict[str, Path], group="cross-model",
         positional=("report", "out"), help="Export a report as a causal attribution graph (JSON, and an HTML view).")
def export_attribution_graph(o: GraphOptions, progress: Progress) -> dict[str, Path]:
    """``report`` (a report dict, report.json or its directory) as an attribution graph: ``out`` (JSON) and
    an HTML view beside it, both or neither (the paths, by format)."""
    report, out, similarity, k, alpha, seed = o.report, o.out, o.similarity, o.k, o.alpha, o.seed
    from interp_lab.report.graph import attribution_graph, render_graph_html

    rep = _report_dict(report)
    if rep is None:
        rep = _read_report(_report_file(Path(report)))
    graph = attribution_graph(rep, similarity=similarity, k=k, alpha=alpha, seed=seed)
    return _write_beside(out, "graph.json", graph, {"html": render_graph_html})
