"""The Hugging Face Hub card (README.md) of an artifact interp-lab wrote: a report, an activation store, an SAE
checkpoint or a study folder (``publish-hf-artifact``).

YAML front matter (library_name, tags with ``interp-lab`` and the kind, the license when one is given), then
what the artifact is, the model and its revision, the criterion, the headline numbers and what they are
measured on, the versions and input hashes its manifest records, its files, and how to pull and use it. Every
number is read from the artifact (report.json, the manifests, metrics.json), none is computed here; untrusted
strings go through ``report.mdtext``. Same artifact, same card: nothing here reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_lab.report import _card_text as ct
from interp_lab.report import _format as f
from interp_lab.report.mdtext import code, table
from interp_lab.report.mdtext import inline as md

KIND_TEXT = {"report": "inspection report", "store": "activation store", "sae": "SAE checkpoint",
             "study": "study"}
KIND_TAG = {"report": "report", "store": "activation-store", "sae": "sae", "study": "study"}
TOP_CARDS = 5  # the report's cards the headline table shows
FILE_ROWS = 40  # files listed in the card (all of them are in SHA256SUMS)
CHECKSUMS = "SHA256SUMS"  # every uploaded file's sha256, as `sha256sum -c` reads it


@dataclass(frozen=True)
class Artifact:
    """What a folder holds, read from its manifest (``api/artifacts.py`` reads it): what its card says and what
    ``pull`` checks."""

    kind: str  # report, store, sae, study
    root: Path  # the folder
    manifest: str  # the manifest read, relative to root ("" for a study without a run manifest)
    model: str | None = None
    revision: str | None = None  # the model's revision (a registered model's: its GGUF's sha256)
    criterion: str | None = None
    versions: dict[str, str] = field(default_factory=dict)  # interp-lab, Python and packages, as recorded
    inputs: list[dict[str, Any]] = field(default_factory=list)  # role, path, sha256, rows
    hashes: dict[str, tuple[str, str]] = field(default_factory=dict)  # file -> (sha256, where it is recorded)
    document: dict[str, Any] = field(default_factory=dict)  # report.json; the store manifest; sae: manifest,
    # cfg, metrics; study: run (its run manifest's steps)
    parts: tuple[tuple[str, Artifact], ...] = ()  # a study's artifacts by folder


@dataclass(frozen=True)
class Target:
    """Where the card says the artifact lives on the Hub, and what the publisher added."""

    repo_id: str
    repo_type: str = "dataset"
    revision: str | None = None
    tags: tuple[str, ...] = ()
    license: str | None = None
    tool_version: str = ""  # the interp-lab that writes the card


def card(art: Artifact, to: Target, files: list[tuple[str, int, str]], extra: str = "") -> str:
    """README.md for ``art`` published as ``to``; ``files``: (path, bytes, sha256) of every file uploaded
    beside it; ``extra``: the folder's own README.md, kept at the end."""
    import yaml

    title = _title(art)
    synthetic = ["synthetic"] if any(a.kind == "report" and a.document.get("synthetic")
                                     for a in (art, *(a for _, a in art.parts))) else []
    meta: dict[str, Any] = {"library_name": "interp-lab", "pretty_name": f.printable(title)[:120],
                            "tags": list(dict.fromkeys(["interp-lab", KIND_TAG[art.kind], "mechanistic-interpretability",
                                                        *synthetic, *to.tags]))}
    if to.license:
        meta["license"] = to.license
    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(), "---", "",
             f"# {md(title)}", "", _what(art), ""]
    lines += _model(art)
    body = {"report": _report, "store": _store, "sae": _sae, "study": _study}[art.kind]
    lines += body(art)
    lines += _provenance(art, to)
    lines += _files(files)
    lines += _use(art, to)
    if extra.strip():
        lines += ["## The folder's README.md", "", extra.strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------------ header


def _title(art: Artifact) -> str:
    doc = art.document
    if art.kind == "report":
        return f"interp-lab report: {art.criterion or 'untitled criterion'} — {art.model or 'no model'}"
    if art.kind == "store":
        return f"interp-lab activation store: {art.model}, {f.hooks_text(doc.get('hooks', []))} on {doc.get('dataset')}"
    if art.kind == "sae":
        m = doc["manifest"]
        return f"interp-lab SAE: {art.model}, {', '.join(m.get('hooks', []))} ({m.get('architecture')})"
    return f"interp-lab study: {art.root.name}"


def _what(art: Artifact) -> str:
    if art.kind == "report":
        return ("An interp-lab inspection report: the features of the model that carry the criterion below, chosen "
                "on discovery prompts, measured on held-out prompts and tested causally against matched controls "
                "(`report.html` to read, `report.json` to compute on, `manifest.json` for provenance).")
    if art.kind == "store":
        return ("An interp-lab activation store: the model's activations at the hooks below, one row per token "
                "(`acts/<hook>/shard-*.safetensors`, the tokens in `tokens.parquet`, `manifest.json`).")
    if art.kind == "sae":
        return ("A sparse autoencoder trained by interp-lab, in the SAE Lens v6 layout (`cfg.json`, "
                "`sae_weights.safetensors`; `sae_lens.SAE.load_from_disk` reads it), with its training manifest "
                "and held-out metrics.")
    return (f"An interp-lab study: {len(art.parts)} artifacts (reports, activation stores, SAE checkpoints) "
            "in one folder, each with its own manifest.")


def _model(art: Artifact) -> list[str]:
    if not art.model:
        return []
    lines = ["## Model", "", f"- {code(art.model)}, revision {code(art.revision) if art.revision else 'not recorded'}"]
    if art.kind == "report":
        params = next((i.get("params") for i in f.lst(art.document.get("inputs")) if f.d(i).get("role") == "model"), {})
        rest = {k: v for k, v in f.d(params).items() if k not in ("model", "revision")}
        if rest:
            lines.append(f"- {md(f.params(rest))}")
    return lines + [""]


# ------------------------------------------------------------------------------------------------ bodies


def _report(art: Artifact) -> list[str]:
    rep = art.document
    summary = f.d(rep.get("summary"))
    counts = f.d(f.d(f.d(rep.get("splits")).get("association")).get("counts"))
    held = f.d(counts.get("heldout")).get("prompts")
    lines = ["## Criterion", "", f"> {md(art.criterion, True)}", ""]
    kind = [f"{md(summary['criterion_type'])} criterion" if summary.get("criterion_type") else "",
            f"scored with {md(summary['statistic'])}" if summary.get("statistic") else ""]
    splits = ", ".join(f"{md(k)} {f.num(f.d(v).get('prompts'))}" for k, v in counts.items())
    lines += [" · ".join(x for x in kind if x) + (f"; prompts: {splits}" if splits else ""), ""]
    if rep.get("synthetic"):
        lines += [f"> ⚠️ **{ct.SYNTHETIC_BANNER}.**", ""]
    tiers = ", ".join(f"{md(ct.TIER_TEXT.get(k, k))} {f.num(v)}" for k, v in ct.tier_counts(rep).items())
    facts = [f"{f.num(summary[key])} {name}" for key, name in ct.SUMMARY_FACTS if summary.get(key) is not None]
    lines += ["## Headline numbers", "", " · ".join(facts + [f"{len(ct.cards(rep))} cards ({tiers})"]), ""]
    rows = []
    for i, c in enumerate(ct.cards(rep)[:TOP_CARDS]):
        h = ct.heldout(c)
        name, value, _ = ct.rank_stat(c)
        rows.append([md(c.get("rank", i + 1)), code(ct.feature_id(c, i)), md(c.get("label")) or f.MISSING,
                     md(ct.tier_text(c.get("evidence_tier"))), md(c.get("direction") or f.MISSING),
                     f.with_ci(h.get("effect"), h.get("effect_ci")) + (f" (n {f.num(h.get('rows'))})" if h.get("rows") else ""),
                     f"{name} {f.num(value)}" if f.fnum(value) is not None else f.MISSING, md(ct.causal_verdict(c))])
    lines += table(["#", "feature", "label", "tier", "direction", "held-out effect [95% CI]", "AUROC / ρ",
                    "causal (held-out)"], rows)
    assoc = f.d(f.d(rep.get("settings")).get("association"))
    effect = assoc.get(summary.get("criterion_type")) or summary.get("statistic") or "the report's rank statistic"
    said = [f"The first {len(rows)} of {len(ct.cards(rep))} cards."]
    if held:
        said.append(f"Measured on: the held-out effect ({md(effect)}) relates the feature's activation to the "
                    f"criterion score over the {f.num(held)} held-out prompts (bootstrap 95% interval); the features "
                    "were chosen on the discovery prompts only.")
    else:
        said.append("The report measured no held-out prompts: its cards carry no held-out effect.")
    tested = any(ct.causal_kinds(c) for c in ct.cards(rep)[:TOP_CARDS])
    rule, measured = ct.causal_rule(f.d(rep.get("settings")))
    if tested:
        said.append("Causal: each intervention's mean change of the criterion score on the held-out prompts "
                    "(positive promotes the criterion); strong when it passes the report's causal rule against "
                    "matched controls" + (":" if rule else "."))
    lines += [" ".join(said), ""]
    if tested and rule:
        lines += [f"> {md(rule, True)}" + (f" ({md(measured)})" if measured else ""), ""]
    warnings = f.lst(rep.get("warnings"))
    if warnings:
        lines += ["The report's warnings:", ""] + [f"- {md(w, True)}" for w in warnings] + [""]
    return lines


def _store(art: Artifact) -> list[str]:
    m = art.document
    hooks = [[code(h), f.num(f.d(m.get("d")).get(h))] for h in f.lst(m.get("hooks"))]
    lines = ["## Contents", "", f"{f.num(m.get('rows'))} token rows from {f.num(m.get('documents'))} documents of "
             f"{code(m.get('dataset'))} (sha256 {code(m.get('dataset_hash'))}), windows of "
             f"{f.num(m.get('context_length'))} tokens, {md(m.get('dtype'))}, {f.num(len(f.lst(m.get('shards'))))} "
             f"shards; tokenizer {code(m.get('tokenizer'))}.", ""]
    lines += table(["hook", "width"], hooks)
    if m.get("latents"):
        lines += ["SAE latents encoded over the store (`latents/<id>/`): "
                  + ", ".join(code(x) for x in m["latents"]), ""]
    return lines


def _sae(art: Artifact) -> list[str]:
    man, cfg, metrics = art.document["manifest"], art.document["cfg"], art.document["metrics"]
    sc = f.d(man.get("sae_config"))
    lines = ["## The SAE", "", f"{md(man.get('architecture'))} · d_in {f.num(cfg.get('d_in'))} · d_sae "
             f"{f.num(cfg.get('d_sae'))}" + (f" · k {f.num(sc.get('k'))}" if sc.get("k") else "")
             + f" · hooks {', '.join(code(h) for h in f.lst(man.get('hooks')))} · trained on "
             f"{f.num(man.get('tokens_seen'))} tokens of {code(man.get('dataset'))}", ""]
    held, spliced = f.d(metrics.get("heldout")), f.d(metrics.get("spliced"))
    if not held and not spliced:
        return lines + ["No metrics.json: no held-out metrics were recorded.", ""]
    lines += ["## Headline numbers", ""]
    rows = [[md(k), f.num(held.get(k))] for k in ("fvu", "fvu_without_outliers", "l0", "dead_fraction")
            if held.get(k) is not None]
    rows += [[md(k), f.num(spliced.get(k))] for k in ("ce_loss_recovered", "kl_sae") if spliced.get(k) is not None]
    lines += table(["metric", "value"], rows)
    if held:
        lines.append(f"Measured on {f.num(held.get('tokens'))} held-out tokens ({md(held.get('documents') or 'held-out documents')}).")
    if spliced:
        lines.append(f"CE loss recovered and KL with the SAE spliced into the model over {f.num(spliced.get('tokens'))} "
                     f"tokens in {f.num(spliced.get('windows'))} windows ({md(spliced.get('spliced_positions'))}).")
    return lines + ["docs/EVIDENCE.md of interp-lab defines each number.", ""]


def _headline(kind: str, art: Artifact) -> str:
    """One line about a study's part."""
    doc = art.document
    if kind == "report":
        best = next(iter(ct.cards(doc)), {})
        tiers = ", ".join(f"{ct.TIER_TEXT.get(k, k)} {v}" for k, v in ct.tier_counts(doc).items() if v)
        return (f"“{md(art.criterion)}”: {len(ct.cards(doc))} cards ({tiers}); first {code(ct.feature_id(best))}, "
                f"held-out effect {f.with_ci(ct.heldout(best).get('effect'), ct.heldout(best).get('effect_ci'))}")
    if kind == "store":
        return f"{f.num(doc.get('rows'))} tokens of {code(doc.get('dataset'))} at {f.hooks_text(doc.get('hooks', []))}"
    if kind == "sae":
        held = f.d(doc["metrics"].get("heldout"))
        return (f"{md(doc['manifest'].get('architecture'))} d_sae {f.num(doc['cfg'].get('d_sae'))}"
                + (f"; held-out FVU {f.num(held.get('fvu'))}, L0 {f.num(held.get('l0'))} on {f.num(held.get('tokens'))} "
                   "tokens" if held else ""))
    return f"{len(art.parts)} artifacts"


def _study(art: Artifact) -> list[str]:
    rows = [[code(rel), md(KIND_TEXT[a.kind]), code(a.model) if a.model else f.MISSING,
             code(f.short_hash(a.revision)) if a.revision else f.MISSING, _headline(a.kind, a)] for rel, a in art.parts]
    lines = ["## Contents", ""] + table(["folder", "kind", "model", "revision", "headline (read from its files)"], rows)
    for run in f.lst(art.document.get("runs")):
        cfg = f.d(run.get("config"))
        lines += [f"The run config {code(cfg.get('path'))} (sha256 {code(cfg.get('sha256'))}); its manifest "
                  f"{code(run.get('manifest'))} says {md(run.get('status'))}:", ""]
        lines += table(["step", "command", "status"], [[code(x["name"]), code(x["command"]), md(x["status"])]
                                                        for x in f.lst(run.get("steps"))])
    return lines


# ------------------------------------------------------------------------------------------------ common


def _versions(v: dict[str, str]) -> str:
    pkgs = ", ".join(f"{md(k)} {md(x)}" for k, x in v.items() if k not in ("interp-lab", "python"))
    return (f"interp-lab {md(v.get('interp-lab'))}" + (f" on Python {md(v['python'])}" if v.get("python") else "")
            + (f" with {pkgs}" if pkgs else ""))


def _provenance(art: Artifact, to: Target) -> list[str]:
    if art.kind == "study":
        sources = [(r["manifest"], f.d(r.get("versions"))) for r in f.lst(art.document.get("runs"))]
        sources += [(f"{rel}/{a.manifest}", a.versions) for rel, a in art.parts]
    else:
        sources = [(art.manifest, art.versions)]
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for where, v in sources:
        groups.setdefault(tuple(v.items()), []).append(where)
    lines = ["## Provenance", ""]
    for v, wheres in groups.items():
        named = ", ".join(code(w) for w in wheres[:6]) + (f" and {len(wheres) - 6} more" if len(wheres) > 6 else "")
        lines.append((f"Written by {_versions(dict(v))}" if v else "No versions recorded") + f" ({named}).")
    lines += [f"Card written by interp-lab {md(to.tool_version)}.", ""]
    rows = [[code(f"{rel}/"), md(i.get("role")), code(i.get("path")) if i.get("path") else f.MISSING,
             code(i.get("sha256")) if i.get("sha256") else f.MISSING, f.num(i.get("rows"))]
            for rel, a in (art.parts if art.kind == "study" else (("", art),)) for i in a.inputs
            if i.get("path") or i.get("sha256")]  # the model's is in its own section
    if rows:
        head = ["folder", "input", "path", "sha256", "rows"]
        if art.kind != "study":
            head, rows = head[1:], [r[1:] for r in rows]
        lines += ["Inputs, as the manifests record them:", ""] + table(head, rows)
    return lines


def _files(files: list[tuple[str, int, str]]) -> list[str]:
    total = sum(size for _, size, _ in files)
    rows = [[code(p), f.num(size), code(sha)] for p, size, sha in files[:FILE_ROWS]]
    more = [f"… and {len(files) - FILE_ROWS} more."] if len(files) > FILE_ROWS else []
    return (["## Files", "", f"{len(files)} files, {f.num(total)} bytes; every file's sha256 is in `{CHECKSUMS}` "
             "(`sha256sum -c SHA256SUMS`), and `interp-lab pull` checks them and the manifest's hashes.", ""]
            + table(["file", "bytes", "sha256"], rows) + more + ([""] if more else []))


def _use(art: Artifact, to: Target) -> list[str]:
    rev = f" --revision {to.revision}" if to.revision else ""
    lines = ["## Use it", "", "```bash", 'pip install "interp-lab[publish]"',
             f"interp-lab pull {to.repo_id} --repo-type {to.repo_type}{rev}   # prints where it is and what it is",
             "```", ""]
    kinds = {a.kind for _, a in art.parts} if art.kind == "study" else {art.kind}
    if "report" in kinds:
        lines += ["- a report: open `report.html`; `report.json` is the machine-readable one "
                  "(`interp-lab match REPORT OTHER` compares two reports' features)"]
    if "store" in kinds:
        lines += ["- a store: `interp-lab store summary STORE`, `interp-lab store top STORE --hook HOOK --channel N`"]
    if "sae" in kinds:
        model = art.model if art.kind == "sae" and art.model else "MODEL"
        lines += [f"- an SAE: {code(f'interp-lab inspect --model {model} --criterion ... --sae DIR')} ranks its "
                  "latents on a criterion; `sae_lens.SAE.load_from_disk(DIR)` loads it"]
    return lines + [""]
