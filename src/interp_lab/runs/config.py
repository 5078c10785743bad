"""Run configs (JSON, TOML or YAML) and their manifests (formats.md).

Two forms:

* ``steps``: ``{"steps": [{"name": "a", "command": "inspect", "criterion": ..., "out": ...}, ...]}``;
  a string option may refer to an earlier step's output with ``{steps.a.out}``
  (its output directory) or ``{steps.a.report}`` (its report.json);
* the interp-lab 0.2 flat form: one inspection, ``{"out": ..., "criterion": ..., "records": ...}``.

Relative paths resolve against the current directory (as in 0.2). A step
whose command, options and input hashes match the previous manifest, and
whose outputs are unchanged, is skipped ("cached"), so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from interp_lab.errors import InputError
from interp_lab.io.atomic import write_bytes_atomic
from interp_lab.io.hashing import sha256_file
from interp_lab.io.manifest import environment, now
from interp_lab.io.specs import criterion_file
from interp_lab.runs.options import check_options, settable
from interp_lab.schemas.command import Progress, Quiet, Registry, build
from interp_lab.schemas.records import RUN_MANIFEST

# options that name input files (hashed into the step key) and output locations
INPUT_OPTIONS = ("records", "features", "interventions", "left", "right", "report", "dataset", "store", "matches",
                 "transfers")
# a criterion: its text, or a spec file (an input then), as io.specs.criterion_file decides; and the files
# named inside inspect's hf options
CRITERION_OPTIONS = ("criterion",)
HF_FILES = ("probes", "prompts", "sae", "dataset")
_REF = re.compile(r"\{steps\.([A-Za-z0-9_\-]+)\.(out|report)\}")


@dataclass
class RunResult:
    manifest: dict[str, Any]
    manifest_path: Path
    steps: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a JSON, TOML or YAML config; errors name the file and line."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    raw = p.read_bytes()
    if not raw.strip():
        raise InputError(p, "config is empty")
    suffix = p.suffix.lower()
    try:
        if suffix == ".json":
            data = msgspec.json.decode(raw)
        elif suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python < 3.11
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(raw.decode("utf-8"))
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw)
        else:
            raise InputError(p, f"unknown config type {suffix!r} (use .json, .toml, .yaml or .yml)")
    except msgspec.DecodeError as exc:
        m = re.search(r"byte (\d+)", str(exc))
        line = raw[: int(m.group(1))].count(b"\n") + 1 if m else None
        raise InputError(p, f"malformed JSON ({exc})", line=line) from None
    except InputError:
        raise
    except Exception as exc:  # tomllib.TOMLDecodeError, yaml.YAMLError
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else getattr(exc, "lineno", None)
        if line is None:
            m = re.search(r"line (\d+)", str(exc))
            line = int(m.group(1)) if m else None
        msg = str(exc).splitlines()[0]
        raise InputError(p, f"malformed {suffix.lstrip('.').upper()} ({msg})", line=line) from None
    if not isinstance(data, dict):
        raise InputError(p, "a config must be an object / table / mapping at the top level")
    _check_expansion(data, p)
    return data


MAX_VALUES = 100_000  # values in a config once YAML aliases are expanded; hand-written ones have hundreds


def _check_expansion(data: Any, path: Path) -> None:
    """Refuse a config whose YAML aliases refer to themselves or expand past ``MAX_VALUES`` values.

    YAML shares an aliased node, so a few hundred bytes can stand for billions of values, which resolving,
    hashing and the manifest would each expand. Sizes are counted once per shared node (no expansion)."""
    size: dict[int, int] = {}  # id -> values in the expanded subtree
    open_: set[int] = set()  # containers being counted: meeting one again is a cycle
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, done = stack.pop()
        kids = [v for v in (node.values() if isinstance(node, dict) else node) if isinstance(v, (dict, list))]
        if done:
            open_.discard(id(node))
            size[id(node)] = 1 + len(node) - len(kids) + sum(size[id(k)] for k in kids)
            if size[id(node)] > MAX_VALUES:
                raise InputError(path, f"more than {MAX_VALUES:,} values, counting every use of a YAML alias")
        elif id(node) not in size:
            if id(node) in open_:
                raise InputError(path, "a YAML alias refers to a value that contains it (a cycle)")
            open_.add(id(node))
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in size)


def normalize_steps(config: dict[str, Any], path: Path, registry: Registry) -> list[dict[str, Any]]:
    """The config as a list of steps ``{name, command, options}``, options checked against the options dataclass
    of each step's command in ``registry``."""
    commands = registry.steps()
    if "steps" in config:
        raw_steps = config["steps"]
        if not isinstance(raw_steps, list) or not raw_steps:
            raise InputError(path, "expected a non-empty list of steps", field="steps")
    else:
        raw_steps = [{"name": "inspect", "command": "inspect", **config}]
    steps = []
    names: set[str] = set()
    for i, raw in enumerate(raw_steps):
        where = f"steps[{i}]" if "steps" in config else ""
        if not isinstance(raw, dict):
            raise InputError(path, "expected an object", field=where or None)
        raw = dict(raw)
        command = raw.pop("command", None)
        if command not in commands:
            raise InputError(path, f"unknown command {command!r} (known: {', '.join(sorted(commands))})",
                             field=f"{where}.command".lstrip("."))
        name = str(raw.pop("name", f"{command}-{i + 1}"))
        if name in names:
            raise InputError(path, f"duplicate step name {name!r}", field=f"{where}.name".lstrip("."))
        names.add(name)
        options = raw.pop("options", {}) | raw
        params = settable(commands[command].options)
        for key in options:
            if key.replace("-", "_") not in params:
                raise InputError(path, f"unknown option {key!r} for {command} (known: "
                                 f"{', '.join(k for k in params if k != 'formats')})",
                                 field=f"{where}.{key}".lstrip("."))
        options = {k.replace("-", "_"): v for k, v in options.items()}
        if "out" not in options:
            raise InputError(path, f"step {name!r} needs an 'out' directory", field=f"{where}.out".lstrip("."))
        check_options(options, commands[command].options, path, where)
        steps.append({"name": name, "command": command, "options": options})
    return steps


def _resolve(value: Any, outputs: dict[str, dict[str, str]], path: Path, field_name: str) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            step, what = m.group(1), m.group(2)
            if step not in outputs:
                raise InputError(path, f"refers to step {step!r}, which does not run before this one",
                                 field=field_name)
            return outputs[step][what]
        return _REF.sub(sub, value)
    if isinstance(value, list):
        return [_resolve(v, outputs, path, field_name) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, outputs, path, f"{field_name}.{k}") for k, v in value.items()}
    return value


def _is_corpus_name(value: Any) -> bool:
    """``lee``, ``enwiki`` or ``lee+enwiki`` (corpora shipped with gensim, named rather than a file)."""
    from interp_lab.io.datasets import CORPORA

    return isinstance(value, str) and not Path(value).exists() and all(n in CORPORA for n in value.split("+"))


def _sha(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def _outputs_of(out: Path) -> list[dict[str, Any]]:
    skip = {"manifest.json", "run_manifest.json"}  # rewritten on every run
    if out.is_dir():
        files = sorted(p for p in out.rglob("*") if p.is_file() and p.name not in skip)
    else:  # a file output (matches.json) and its renderings beside it (matches.md, matches.html)
        files = sorted(p for p in out.parent.glob(f"{out.stem}.*") if p.is_file()) if out.suffix else []
    return [{"file": str(p), "sha256": _sha(p)} for p in files]


def _step_key(command: str, options: dict[str, Any], inputs: list[dict[str, Any]], legacy: bool = False) -> str:
    """What a step's output depends on: its command, its options as written and the content of its input files.

    Input files count by content, not by where they sit, so a checkout in another directory (a fresh clone
    of a study) finds its committed steps up to date. ``legacy`` gives the key of manifests written before
    that, which hashed each input's absolute path too, so their finished steps are not run again."""
    if legacy:
        inputs = [{**i, "path": str(Path(i["path"]).resolve())} if "path" in i else i for i in inputs]
    else:
        inputs = [{k: v for k, v in i.items() if k != "path"} for i in inputs]
    src = msgspec.json.encode({"command": command, "options": options, "inputs": inputs}, order="sorted")
    return hashlib.sha256(src).hexdigest()


def run_config(path: str | os.PathLike, registry: Registry, *, manifest_out: str | os.PathLike | None = None,
               force: bool = False, progress: Progress | None = None) -> RunResult:
    """Run every step of a config, each a command of ``registry``; write the run manifest; skip steps that are
    up to date. ``progress`` hears of each step that runs (``step NAME (COMMAND)``) and of its stages."""
    progress = progress or Quiet()
    path = Path(path)
    config = load_config(path)
    steps = normalize_steps(config, path, registry)
    flat = "steps" not in config
    if manifest_out is not None:
        mpath = Path(manifest_out)
        mpath = mpath / "run_manifest.json" if mpath.suffix != ".json" else mpath
    elif "manifest" in config:
        mpath = Path(config["manifest"])
    elif flat:
        mpath = Path(steps[0]["options"]["out"]) / "run_manifest.json"
    else:
        mpath = Path("runs") / path.stem / "manifest.json"
    previous = {}
    if mpath.exists() and not force:
        try:
            previous = {s["name"]: s for s in msgspec.json.decode(mpath.read_bytes()).get("steps", [])}
        except (msgspec.DecodeError, AttributeError, TypeError, KeyError):
            previous = {}
    commands = registry.steps()
    outputs: dict[str, dict[str, str]] = {}
    done: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    fresh: set[str] = set()  # steps that ran (not cached) in this run
    started = now()
    for step in steps:
        options = {k: _resolve(v, outputs, path, f"{step['name']}.{k}") for k, v in step["options"].items()}
        inputs = []
        hf = options.get("hf") if isinstance(options.get("hf"), dict) else {}
        for key in CRITERION_OPTIONS:
            if isinstance(options.get(key), str):
                try:
                    spec = criterion_file(options[key])
                except InputError as exc:
                    raise InputError(path, f"{options[key]!r}: {exc.message}", field=f"{step['name']}.{key}") from None
                if spec is not None:
                    inputs.append({"option": key, "path": options[key], "sha256": _sha(spec)})
        for key, value in [(f"hf.{k}", hf.get(k)) for k in HF_FILES]:
            if isinstance(value, str) and Path(value).exists():
                inputs.append({"option": key, "path": value, "sha256": _sha(Path(value))})
        for key in INPUT_OPTIONS:
            values = options.get(key)
            for value in values if isinstance(values, list) else [] if values is None else [values]:
                if key == "dataset" and _is_corpus_name(value):
                    inputs.append({"option": key, "corpus": value})
                    continue
                p = Path(value)
                if not p.exists():
                    raise InputError(path, f"input file {str(p)!r} does not exist", field=f"{step['name']}.{key}")
                inputs.append({"option": key, "path": value, "sha256": _sha(p)})
        step_key = _step_key(step["command"], options, inputs)
        out = Path(options["out"])
        outputs[step["name"]] = {"out": str(out), "report": str(out / "report.json")}
        prev = previous.get(step["name"])
        record: dict[str, Any] = {"name": step["name"], "command": step["command"], "options": options,
                                  "inputs": inputs, "key": step_key}
        # a step reading the output of one that ran again runs again too (a store or checkpoint directory
        # has no single file whose hash would say it changed)
        upstream = set(_REF.findall(msgspec.json.encode(step["options"]).decode()))
        if (prev and prev.get("key") in (step_key, _step_key(step["command"], options, inputs, legacy=True))
                and prev.get("status") in ("ok", "cached")
                and not {name for name, _ in upstream} & fresh
                and prev.get("outputs") == _outputs_of(out)):
            record.update(status="cached", outputs=prev["outputs"], started=prev.get("started"),
                          ended=prev.get("ended"), seconds=None)
            done.append(record)
            continue
        record["started"] = now()
        t = time.perf_counter()
        try:
            command = commands[step["command"]]
            progress(f"step {step['name']} ({step['command']})", len(done), len(steps))
            results[step["name"]] = command.run(build(command.options, options), progress)
        except Exception:
            record.update(status="failed", ended=now(), seconds=round(time.perf_counter() - t, 4))
            done.append(record)
            _write_manifest(mpath, config, path, done, started, "failed")
            raise
        record.update(status="ok", ended=now(), seconds=round(time.perf_counter() - t, 4), outputs=_outputs_of(out))
        done.append(record)
        fresh.add(step["name"])
        if len(done) < len(steps):  # a run killed later resumes after this step
            _write_manifest(mpath, config, path, done, started, "running")
    manifest = _write_manifest(mpath, config, path, done, started, "ok")
    return RunResult(manifest=manifest, manifest_path=mpath, steps=done, results=results)


def _write_manifest(mpath: Path, config: dict[str, Any], path: Path, steps: list[dict[str, Any]],
                    started: str, status: str) -> dict[str, Any]:
    manifest = {
        "schema_version": RUN_MANIFEST,
        **environment(),
        "config": {"path": str(path), "sha256": _sha(path), "resolved": config},
        "seed": config.get("seed", next((s["options"].get("seed") for s in steps if "seed" in s["options"]), 0)),
        "started": started,
        "ended": now(),
        "status": status,
        "steps": steps,
        "reproducibility": "report.json of each step depends only on its inputs and seed: rerunning this config "
                           "on the same inputs gives the same bytes",
    }
    write_bytes_atomic(mpath, msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n")
    return manifest
