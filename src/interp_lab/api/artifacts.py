"""What a folder interp-lab wrote is, read from its manifest: a report, an activation store, an SAE checkpoint,
or a study (a folder of several of those). ``publish-hf-artifact`` cards and uploads it; ``pull`` checks it.

A folder is recognised by its ``manifest.json`` alone (its ``schema_version``), never by guessing from file
names: a report's (``interp-lab.run.v1``, written by ``inspect`` beside report.json), a store's
(``interp-lab.activation_store.v1``), an SAE checkpoint's (``interp-lab.sae.v1``, beside cfg.json and the
weights). A folder without one whose subfolders hold such artifacts is a study. A missing or malformed manifest
is one ``InputError`` naming the file and the field.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from interp_lab.errors import InputError
from interp_lab.report.hub_card import Artifact

MANIFEST = "manifest.json"
KINDS = ("report", "store", "sae", "study")
WHAT = "a report, activation store, SAE checkpoint or study folder"


def files(root: Path) -> list[tuple[str, Path]]:
    """Every file under ``root`` as ``(path relative to root, POSIX, path)``, sorted, leaving out hidden files
    and folders (``.git``, a training run's ``.<dir>.training``, temporary ``.<name>.tmp`` files)."""
    out = []
    for here, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if not name.startswith("."):
                p = Path(here) / name
                out.append((p.relative_to(root).as_posix(), p))
    return sorted(out)


def hidden_files(root: Path) -> list[str]:
    """The hidden files ``files`` leaves out (relative, POSIX), for saying so."""
    out = []
    for here, _, names in os.walk(root):
        for name in names:
            rel = (Path(here) / name).relative_to(root)
            if any(part.startswith(".") for part in rel.parts):
                out.append(rel.as_posix())
    return sorted(out)


def detect(path: str | os.PathLike, shown: str | os.PathLike | None = None) -> Artifact:
    """The artifact in the folder ``path``. Errors name files as under ``shown`` (default ``path``): a
    downloaded folder's files by their place in the repository, not the temporary directory."""
    root = Path(path)
    show = _Shown(root, Path(shown) if shown is not None else root)
    if not root.is_dir():
        raise InputError(show(root), f"not a folder (give {WHAT})" if root.exists() else "folder not found")
    man = root / MANIFEST
    if man.is_file():
        return _one(root, show)
    parts = _parts(root, show)
    if parts:
        return _study(root, show, parts, _run_manifests(root))
    if (root / "report.json").is_file():
        raise InputError(show(man), "file not found (a report folder holds report.json and the manifest.json "
                                    "inspect writes beside it)")
    raise InputError(show(root), f"no manifest.json here or in a subfolder: not {WHAT}")


def check(root: Path, expected: dict[str, tuple[str, str]], digests: dict[str, str],
          shown: str | os.PathLike | None = None) -> int:
    """Compare ``digests`` (file -> sha256 of the files at hand) with ``expected`` (file -> (sha256, where it
    is recorded)); one InputError naming the first file that is missing or differs (and how many more do).
    Returns how many files were checked."""
    show = _Shown(root, Path(shown) if shown is not None else root)
    bad = []
    for rel, (want, where) in expected.items():
        got = digests.get(rel)
        if got is None:
            bad.append((rel, f"file not found (listed in {where})"))
        elif got != want:
            bad.append((rel, f"sha256 {got[:12]}… differs from {want[:12]}… recorded in {where}"))
    if bad:
        rel, msg = bad[0]
        more = f" (and {len(bad) - 1} more file{'s' * (len(bad) > 2)})" if len(bad) > 1 else ""
        raise InputError(show(root / rel), msg + more)
    return len(expected)


# ------------------------------------------------------------------------------------------------- one folder


class _Shown:
    """A path under ``root`` as it is shown in messages: under ``shown`` instead."""

    def __init__(self, root: Path, shown: Path):
        self.root, self.shown = root, shown

    def __call__(self, p: Path) -> str:
        try:
            return (self.shown / p.relative_to(self.root)).as_posix()
        except ValueError:
            return str(p)

    def under(self, rel: str) -> _Shown:
        return _Shown(self.root / rel, self.shown / rel)


def _document(path: Path, kind: Any, show: _Shown) -> Any:
    """``path`` read and validated as ``kind`` (a msgspec type); errors name ``path`` as shown."""
    from interp_lab.schemas.reports import read_document

    try:
        return read_document(path, kind)
    except InputError as exc:
        exc.path = show(path)
        raise


def _one(root: Path, show: _Shown) -> Artifact:
    from interp_lab.schemas.records import RUN_MANIFEST, SAE_MANIFEST
    from interp_lab.store.format import STORE_SCHEMA

    man = root / MANIFEST
    doc = _document(man, dict[str, Any], show)
    schema = doc.get("schema_version")
    if schema == RUN_MANIFEST and "steps" in doc:  # a run config's manifest: the run's folder is a study
        parts = _parts(root, show)
        if not parts:
            raise InputError(show(man), "a run's manifest, but no report, store or SAE checkpoint in the subfolders")
        return _study(root, show, parts, [man])
    readers = {RUN_MANIFEST: _report, STORE_SCHEMA: _store, SAE_MANIFEST: _sae}
    if schema not in readers:
        raise InputError(show(man), "required field is missing" if schema is None else
                         f"unknown schema_version {schema!r} (expected {', '.join(map(repr, readers))})",
                         field="schema_version")
    return readers[schema](root, show)


def _inside(rel: str) -> bool:
    p = PurePosixPath(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts and "\\" not in rel


def _report(root: Path, show: _Shown) -> Artifact:
    import json

    from interp_lab.schemas.reports import InspectionReport, InspectManifest

    man = root / MANIFEST
    m = _document(man, InspectManifest, show)
    for i, o in enumerate(m.outputs):
        if not _inside(o.file):
            raise InputError(show(man), f"{o.file!r} is not a file inside the folder", field=f"outputs[{i}].file")
    rep = root / "report.json"
    if not rep.is_file():
        raise InputError(show(rep), "file not found (a report folder holds report.json beside its manifest.json)")
    _document(rep, InspectionReport, show)
    report = json.loads(rep.read_bytes())
    model = next((i for i in m.inputs if i.role == "model"), None)
    params = model.params if model is not None else {}
    return Artifact(
        kind="report", root=root, manifest=MANIFEST, model=report.get("model") or params.get("model"),
        revision=params.get("revision"), criterion=report.get("criterion"),
        versions={"interp-lab": m.tool.version, **({"python": m.python} if m.python else {}), **m.packages},
        inputs=[{"role": i.role, "path": i.path, "sha256": i.sha256, "rows": i.rows} for i in m.inputs],
        hashes={o.file: (o.sha256, f"{MANIFEST} outputs[{i}].sha256") for i, o in enumerate(m.outputs)},
        document=report)


def _store(root: Path, show: _Shown) -> Artifact:
    import msgspec

    from interp_lab.store.format import StoreManifest, tokens_part

    man = root / MANIFEST
    m = _document(man, StoreManifest, show)
    if not m.complete:
        raise InputError(show(man), "false: the harvest has not finished (rerun it to resume)", field="complete")
    hashes = {}
    for i, shard in enumerate(m.shards):
        for rel, sha in shard.sha256.items():
            if rel == tokens_part(shard.index):
                continue  # merged into tokens.parquet when the harvest completed (tokens_sha256)
            if not _inside(rel):
                raise InputError(show(man), f"{rel!r} is not a file inside the folder", field=f"shards[{i}].sha256")
            hashes[rel] = (sha, f"{MANIFEST} shards[{i}].sha256")
    if m.tokens_sha256:
        hashes["tokens.parquet"] = (m.tokens_sha256, f"{MANIFEST} tokens_sha256")
    latents = sorted(p.parent.name for p in root.glob("latents/*/info.json") if not p.parent.name.startswith("."))
    return Artifact(
        kind="store", root=root, manifest=MANIFEST, model=m.model, revision=m.revision,
        inputs=[{"role": "dataset", "path": m.dataset, "sha256": m.dataset_hash, "rows": m.documents}],
        hashes=hashes, document={**msgspec.to_builtins(m), "latents": latents})


def _sae(root: Path, show: _Shown) -> Artifact:
    import msgspec

    from interp_lab.sae.config import WEIGHTS
    from interp_lab.schemas.reports import SAEManifest

    man = root / MANIFEST
    m = _document(man, SAEManifest, show)
    cfg = root / "cfg.json"
    for p in (cfg, root / WEIGHTS):
        if not p.is_file():
            raise InputError(show(p), f"file not found (an SAE checkpoint holds cfg.json, {WEIGHTS} and manifest.json)")
    metrics = root / "metrics.json"
    manifest = msgspec.to_builtins(m)
    return Artifact(
        kind="sae", root=root, manifest=MANIFEST, model=m.model, revision=m.revision,
        inputs=[{"role": "dataset", "path": m.dataset, "sha256": m.dataset_hash, "rows": None}],
        document={"manifest": manifest, "cfg": _document(cfg, dict[str, Any], show),
                  "metrics": _document(metrics, dict[str, Any], show) if metrics.is_file() else {}})


# ------------------------------------------------------------------------------------------------- studies


def _parts(root: Path, show: _Shown) -> list[tuple[str, Artifact]]:
    """The artifacts in the subfolders of ``root`` (a folder with a manifest.json is one; its own subfolders are
    its business), outermost first, by path."""
    out = []
    for here, dirs, _ in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        d = Path(here)
        if d != root and (d / MANIFEST).is_file():
            rel = d.relative_to(root).as_posix()
            out.append((rel, _one(d, show.under(rel))))
            dirs[:] = []
    return out


def _run_manifests(root: Path) -> list[Path]:
    """The run configs' manifests at the top of a study folder (``study-manifest.json`` ...)."""
    import json

    from interp_lab.schemas.records import RUN_MANIFEST

    out = []
    for p in sorted(root.glob("*manifest*.json")):
        try:
            doc = json.loads(p.read_bytes())
        except (ValueError, OSError):
            continue  # not a manifest of ours: uploaded as any file
        if isinstance(doc, dict) and doc.get("schema_version") == RUN_MANIFEST and "steps" in doc:
            out.append(p)
    return out


def _study(root: Path, show: _Shown, parts: list[tuple[str, Artifact]], runs: list[Path]) -> Artifact:
    from interp_lab.schemas.reports import RunManifest

    documents = []
    for run in runs:
        m = _document(run, RunManifest, show)
        raw = _document(run, dict[str, Any], show)
        documents.append({"manifest": run.relative_to(root).as_posix(), "status": m.status,
                          "config": {k: m.config.get(k) for k in ("path", "sha256")},
                          "versions": {"interp-lab": str(m.tool.get("version")),
                                       **({"python": str(raw["python"])} if raw.get("python") else {}),
                                       **{k: str(v) for k, v in (raw.get("packages") or {}).items()}},
                          "steps": [{"name": s.name, "command": s.command, "status": s.status} for s in m.steps]})
    models = {(a.model, a.revision) for _, a in parts}
    model, revision = next(iter(models)) if len(models) == 1 else (None, None)
    return Artifact(
        kind="study", root=root, manifest=", ".join(d["manifest"] for d in documents),
        model=model, revision=revision, versions=documents[0]["versions"] if documents else {},
        document={"runs": documents}, parts=tuple(parts),
        hashes={f"{rel}/{f}": (sha, f"{rel}/{where}") for rel, a in parts for f, (sha, where) in a.hashes.items()})
