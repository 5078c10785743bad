"""Checkpoints move both ways between interp-lab and SAE Lens (and sparsify checkpoints load): for every
architecture, SAE Lens's ``load_from_disk`` reads what interp-lab trains and encodes / decodes the same."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sae_lens = pytest.importorskip("sae_lens")

from sae_common import ARCHS, arch_id  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from interp_lab.errors import InputError  # noqa: E402
from interp_lab.sae.checkpoint import load_sae, save_sae  # noqa: E402
from interp_lab.sae.data import split_rows  # noqa: E402

SPARSIFY = Path(__file__).parent / "data" / "sparsify"
EXPECTED_ARCH = {"topk": "topk", "batchtopk": "jumprelu", "jumprelu": "jumprelu", "relu": "standard",
                 "batchtopk-transcoder": "jumprelu_transcoder", "relu-transcoder": "transcoder"}


@pytest.fixture(scope="module")
def store(sae_store):
    return sae_store


@pytest.mark.parametrize("arch", ARCHS, ids=arch_id)
def test_saelens_loads_what_we_train_and_encodes_the_same(arch, trained_archs, store, tmp_path):
    res, hook, hook_out = trained_archs[arch_id(arch)]
    path = save_sae(res.sae, tmp_path / "sae", scale_in=res.scale_in, scale_out=res.scale_out,
                    metadata={"model_name": "smollm2-135m", "hook_name": hook, "context_size": 128, "prepend_bos": False})
    theirs = sae_lens.SAE.load_from_disk(str(path))
    assert theirs.cfg.architecture() == EXPECTED_ARCH[arch_id(arch)]
    ours = load_sae(path)
    held = split_rows(store).heldout
    x = torch.from_numpy(store.acts(hook, held).astype(np.float32))
    y = x if hook_out is None else torch.from_numpy(store.acts(hook_out, held).astype(np.float32))
    with torch.no_grad():
        z_theirs, z_ours = theirs.encode(x), ours.encode(x)
        recon = theirs.decode(z_theirs)
    # the same latents: the same set fires, and the values agree
    assert ((z_theirs > 0) != (z_ours > 0)).float().mean() < 1e-4
    assert torch.allclose(z_theirs, z_ours, atol=1e-4, rtol=1e-3)
    assert torch.allclose(recon, ours.decode(z_ours), atol=1e-3, rtol=1e-3)
    fvu = float((y - recon).double().pow(2).sum() / (y.double() - y.double().mean(0)).pow(2).sum())
    assert fvu < (0.5 if arch == ("topk", None) else 1.0), fvu  # with SAE Lens's own encode / decode


SAELENS_CFGS = {
    "standard": {},
    "topk": {"k": 6},
    "jumprelu": {},
    "transcoder": {"d_out": 12, "apply_b_dec_to_input": False},
    "jumprelu_transcoder": {"d_out": 12, "apply_b_dec_to_input": False},
}


@pytest.mark.parametrize("arch", list(SAELENS_CFGS))
def test_we_load_what_saelens_saves(arch, tmp_path):
    cfg = {"architecture": arch, "d_in": 16, "d_sae": 40, "dtype": "float32", "device": "cpu",
           "metadata": {"hook_name": "blocks.3.hook_resid_post"}, **SAELENS_CFGS[arch]}
    theirs = sae_lens.SAE.from_dict(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.05 if name == "threshold" else 0.5))
            if name == "threshold":
                p.abs_()
    theirs.save_model(tmp_path / "c")
    ours = load_sae(tmp_path / "c")
    x = torch.randn(200, 16, generator=g)
    with torch.no_grad():
        z_theirs, z_ours = theirs.encode(x), ours.encode(x)
        assert (z_theirs > 0).sum() > 0 and torch.allclose(z_theirs, z_ours, atol=1e-5)
        assert torch.allclose(theirs.decode(z_theirs), ours.decode(z_ours), atol=1e-5)


@pytest.mark.parametrize("name", ["sae", "transcoder"])
def test_we_load_sparsify_checkpoints(name):
    """Checkpoints written by EleutherAI sparsify 1.3.3 (tests/data/sparsify/make_fixture.py), with its own
    encode / decode of fixed inputs."""
    expected = load_file(str(SPARSIFY / "expected.safetensors"))
    coder = load_sae(SPARSIFY / name)
    assert coder.cfg.d_sae == 48 and coder.cfg.k == 5 and coder.cfg.transcoder == (name == "transcoder")
    with torch.no_grad():
        z = coder.encode(expected["x"])
        assert torch.equal(z > 0, expected[f"{name}.latents"] > 0)
        assert torch.allclose(z, expected[f"{name}.latents"], atol=1e-6)
        assert torch.allclose(coder.decode(z), expected[f"{name}.recon"], atol=1e-5)


def test_unsupported_checkpoints_say_which_field(tmp_path):
    (tmp_path / "cfg.json").write_text(json.dumps({"activation": "groupmax", "k": 4, "d_in": 8, "num_latents": 16}))
    (tmp_path / "sae.safetensors").write_bytes((SPARSIFY / "sae" / "sae.safetensors").read_bytes())
    with pytest.raises(InputError, match="activation"):
        load_sae(tmp_path)
    (tmp_path / "cfg.json").write_text(json.dumps({"architecture": "topk", "d_in": 16, "d_sae": 48, "k": 5,
                                                   "normalize_activations": "layer_norm"}))
    with pytest.raises(InputError, match="normalize_activations"):
        load_sae(tmp_path)
