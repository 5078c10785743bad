"""TopK SAE on SmolLM2 layer-15 activations from a real store: held-out quality, determinism, checkpoints."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from interp_lab.errors import InputError  # noqa: E402
from interp_lab.harvest.run import harvest  # noqa: E402
from interp_lab.sae.checkpoint import load_sae, save_sae  # noqa: E402
from interp_lab.sae.data import shuffled_batches, split_rows  # noqa: E402
from interp_lab.sae.metrics import reconstruction_metrics  # noqa: E402
from interp_lab.sae.topk import TopKConfig, TopKSAE, geometric_median  # noqa: E402
from interp_lab.sae.train import TrainConfig, train_sae  # noqa: E402
from interp_lab.store.reader import Store  # noqa: E402

HOOK = "blocks.15.hook_resid_post"
SMALL = TrainConfig(expansion_factor=2, k=16, tokens=40_000, batch_size=1024, seed=3)


@pytest.fixture(scope="module")
def store(smollm2, tmp_path_factory):
    out = tmp_path_factory.mktemp("sae") / "store"
    harvest(smollm2, "lee", HOOK, out, max_tokens=30_000, context_length=128, batch_size=16)
    return Store(out)


@pytest.fixture(scope="module")
def trained(store):
    return train_sae(store, HOOK, SMALL)


def test_rows_split_by_document_without_the_first_position(store):
    rows = split_rows(store)
    t = store.tokens(["row", "prompt_id", "position"])
    assert np.array_equal(t.column("row").to_numpy(), np.arange(t.num_rows))
    doc = np.asarray(t.column("prompt_id").to_pylist(), dtype=object)
    pos = t.column("position").to_numpy()
    assert not set(doc[rows.train]) & set(doc[rows.heldout])
    assert (pos[np.concatenate([rows.train, rows.heldout])] > 0).all()
    assert len(rows.train) + len(rows.heldout) == int((pos > 0).sum())
    assert 0.04 < len(rows.heldout) / (len(rows.train) + len(rows.heldout)) < 0.2


def test_shuffled_batches_cover_each_row_once_and_depend_on_the_seed(store):
    rows = split_rows(store).train[:5000]
    acts = store.acts(HOOK, rows).astype(np.float32)
    got = np.concatenate(list(shuffled_batches(store, HOOK, rows, 100, seed=1, buffer_rows=1000)))
    assert len(got) == 5000 // 100 * 100
    from collections import Counter

    given, out = Counter(a.tobytes() for a in acts), Counter(g.tobytes() for g in got)
    assert all(out[k] <= given[k] for k in out)  # each row at most as often as it is in the data
    again = np.concatenate(list(shuffled_batches(store, HOOK, rows, 100, seed=1, buffer_rows=1000)))
    other = np.concatenate(list(shuffled_batches(store, HOOK, rows, 100, seed=2, buffer_rows=1000)))
    assert np.array_equal(got, again) and not np.array_equal(got, other)


def test_held_out_reconstruction_through_the_checkpoint(trained, store, tmp_path):
    path = save_sae(trained.sae, tmp_path / "sae", scale=trained.scale, metadata={"hook_name": HOOK})
    sae = load_sae(path)
    m = reconstruction_metrics(sae, store, HOOK, split_rows(store).heldout)
    assert m["fvu"] < 0.5 and m["fvu_without_outliers"] < 0.5, m
    assert 0 < m["l0"] <= SMALL.k
    assert trained.history[-1]["fvu"] < 0.75 * trained.history[0]["fvu"]  # it learned
    cfg = json.loads((path / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["d_sae"] == 2 * 576 and cfg["k"] == 16
    # the input scale is folded in: the checkpoint on raw activations = the trained SAE on scaled ones
    x = torch.from_numpy(store.acts(HOOK, split_rows(store).heldout[:256]).astype(np.float32))
    with torch.no_grad():
        z_raw = sae.encode(x)
        z_scaled = trained.sae.encode(x * trained.scale)
        assert torch.allclose(z_raw, z_scaled, atol=1e-4, rtol=1e-4)
        assert torch.allclose(sae.decode(z_raw) * trained.scale, trained.sae.decode(z_scaled), atol=1e-4, rtol=1e-3)


def test_same_seed_same_weights(trained, store):
    again = train_sae(store, HOOK, SMALL)
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        assert torch.equal(getattr(trained.sae, name), getattr(again.sae, name)), name


def test_decoder_rows_stay_unit_norm_and_latents_are_topk(trained, store):
    norms = trained.sae.W_dec.detach().norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    x = torch.from_numpy(store.acts(HOOK, split_rows(store).heldout[:64]).astype(np.float32)) * trained.scale
    with torch.no_grad():
        z = trained.sae.encode(x)
    assert ((z > 0).sum(1) <= SMALL.k).all() and (z >= 0).all()


def test_auxk_revives_dead_latents():
    """Latents marked dead get gradient only through the AuxK loss."""
    sae = TopKSAE(TopKConfig(d_in=8, d_sae=32, k=2), torch.Generator().manual_seed(0))
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    dead = torch.zeros(32, dtype=torch.bool)
    dead[16:] = True
    out = sae(x, dead)
    assert out.auxk > 0
    out.auxk.backward()
    assert sae.b_enc.grad[16:].abs().sum() > 0 and sae.b_enc.grad[:16].abs().sum() == 0


def test_geometric_median_ignores_a_far_outlier():
    x = torch.cat([torch.zeros(99, 3), torch.full((1, 3), 1e4)])
    assert geometric_median(x).norm() < 1.0 < x.mean(0).norm()


def test_bad_checkpoints_name_the_file_and_field(tmp_path):
    (tmp_path / "cfg.json").write_text(json.dumps({"architecture": "gated", "d_in": 4, "d_sae": 8}))
    with pytest.raises(InputError, match="architecture"):
        load_sae(tmp_path)
    (tmp_path / "cfg.json").write_text("{not json")
    with pytest.raises(InputError, match="cfg.json"):
        load_sae(tmp_path)
