"""Run the run configs of ``tests/data/runs/`` and hash their outputs (``test_run_snapshot.py``).

Each config runs through ``interp-lab run`` in a scratch directory holding copies of the example evidence
(``examples/activation_records.jsonl``, ``interventions.jsonl``, ``features.jsonl``), with the cache there
too; every file it writes under ``out/`` is hashed, but manifests (``manifest.json``, ``run_manifest.json``:
times, hosts, versions), which are not expected to repeat. ``tests/data/runs/sha256.json`` holds the hashes
as committed, with the versions of the packages whose code makes the bytes.

    python tests/run_snapshot.py            # run them; list the outputs whose bytes differ (exit 1 if any)
    python tests/run_snapshot.py --write    # record the hashes of this checkout

(with ``PYTHONPATH=src`` in a checkout that is not the installed one). Record them on the commit BEFORE a
change, so that the test compares the change against the code, not against another environment.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RUNS = HERE / "data" / "runs"
HASHES = RUNS / "sha256.json"
CONFIGS = ("steps.yaml", "flat.json")
INPUTS = ("activation_records.jsonl", "interventions.jsonl", "features.jsonl")  # from examples/
MANIFESTS = {"manifest.json", "run_manifest.json"}
# the packages whose code writes the bytes: numerics (numpy, scipy, torch), file formats (safetensors,
# pyarrow, msgspec), the SAE's density plot (matplotlib); interp-lab's version is written into reports
PACKAGES = ("numpy", "scipy", "torch", "safetensors", "matplotlib", "pyarrow", "msgspec")


def environment() -> dict[str, str]:
    import importlib.metadata

    from interp_lab import __version__

    env = {"interp-lab": __version__, "python": ".".join(map(str, sys.version_info[:2]))}
    for name in PACKAGES:
        try:
            env[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            env[name] = "absent"
    return env


@contextlib.contextmanager
def _inside(workdir: Path):
    """``workdir`` as the current directory and the interp-lab cache, restored after."""
    cwd, cache = Path.cwd(), os.environ.get("INTERP_LAB_CACHE")
    os.chdir(workdir)
    os.environ["INTERP_LAB_CACHE"] = str(workdir / "cache")
    try:
        yield
    finally:
        os.chdir(cwd)
        if cache is None:
            os.environ.pop("INTERP_LAB_CACHE", None)
        else:
            os.environ["INTERP_LAB_CACHE"] = cache


def run_configs(workdir: Path) -> dict[str, dict[str, str]]:
    """``{config: {output path under out/: sha256}}`` of every config, run in the empty directory ``workdir``."""
    from interp_lab.cli.main import main
    from interp_lab.io.hashing import sha256_file

    (workdir / "examples").mkdir(parents=True)
    for name in INPUTS:
        shutil.copyfile(HERE.parent / "examples" / name, workdir / "examples" / name)
    hashes = {}
    with _inside(workdir):
        for config in CONFIGS:
            shutil.copyfile(RUNS / config, config)
            before = {p for p in Path("out").rglob("*") if p.is_file()}
            err = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                code = main(["run", config])
            if code != 0:
                raise RuntimeError(f"interp-lab run {config}: exit {code}: {err.getvalue().strip()}")
            written = sorted(p for p in Path("out").rglob("*") if p.is_file() and p not in before)
            hashes[config] = {p.as_posix(): sha256_file(p) for p in written if p.name not in MANIFESTS}
    return hashes


def compare(recorded: dict[str, Any], hashes: dict[str, dict[str, str]], env: dict[str, str]) -> list[str]:
    """One line per output whose bytes differ, is new or is missing; then the packages whose versions differ."""
    lines = []
    for config in sorted(recorded["outputs"].keys() | hashes.keys()):
        old, new = recorded["outputs"].get(config, {}), hashes.get(config, {})
        for path in sorted(old.keys() | new.keys()):
            if path not in new:
                lines.append(f"{config}: {path}: no longer written")
            elif path not in old:
                lines.append(f"{config}: {path}: a new output")
            elif old[path] != new[path]:
                lines.append(f"{config}: {path}: other bytes")
    if lines:
        changed = [f"{k} {recorded['environment'].get(k)} -> {v}" for k, v in env.items()
                   if recorded["environment"].get(k) != v]
        lines.append("environment: " + ("; ".join(changed) if changed else "the one the hashes were recorded in"))
    return lines


def dumps(hashes: dict[str, dict[str, str]], env: dict[str, str]) -> str:
    return json.dumps({"environment": env, "outputs": hashes}, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python tests/run_snapshot.py")
    ap.add_argument("--write", action="store_true", help=f"record the hashes in {HASHES}")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="run-snapshot-") as tmp:
        hashes = run_configs(Path(tmp) / "work")
    env = environment()
    if args.write:
        from interp_lab.io.atomic import write_bytes_atomic

        write_bytes_atomic(HASHES, dumps(hashes, env).encode())
        print(f"wrote {HASHES} ({sum(map(len, hashes.values()))} outputs of {len(hashes)} configs)")
        return 0
    lines = compare(json.loads(HASHES.read_text()), hashes, env)
    print("\n".join(lines) or "every output has its recorded bytes")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
