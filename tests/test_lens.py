"""Logit lens with the model's real final norm, and a trained tuned lens, on the real models."""

import json

import pytest

torch = pytest.importorskip("torch")

from interp_lab.io.datasets import iter_documents  # noqa: E402
from interp_lab.models.hooked import run  # noqa: E402
from interp_lab.models.lens import TunedLens, decode, evaluate, middle_layers, train_tuned_lens  # noqa: E402
from interp_lab.models.load import load_model  # noqa: E402

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]


@pytest.fixture(scope="module")
def lm(smollm2):
    return smollm2


@pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m"])
def test_logit_lens_at_the_last_layer_is_the_model(name, lm):
    model = lm if name == "smollm2-135m" else load_model(name)
    inputs = model.tokenizer(["The bridge is 240 metres long and"], return_tensors="pt")
    last = f"blocks.{model.n_layers - 1}.hook_resid_post"
    res = run(model.model, dict(inputs), [last])
    with torch.inference_mode():
        torch.testing.assert_close(decode(model.model, res.acts[last]), res.logits, rtol=0, atol=0)


def test_tuned_lens_beats_the_logit_lens_on_heldout_text(lm, tmp_path):
    docs = [d.text for d in iter_documents("lee")]
    mid = middle_layers(lm.n_layers)
    assert mid == list(range(8, 23))
    lens = train_tuned_lens(lm, docs[:30], mid, steps=3, context=64, tokens_per_step=128)
    res = evaluate(lm, docs[250:265], mid, lens, context=64)
    for layer in mid:
        assert res[layer]["tuned_lens"] < res[layer]["logit_lens"], (layer, res[layer])
    lens.save(tmp_path / "lens", {"heldout_kl": {str(k): v for k, v in res.items()}})
    again = TunedLens.load(tmp_path / "lens")
    h = torch.randn(3, lm.d_model)
    with torch.inference_mode():
        torch.testing.assert_close(again(h, 10), lens(h, 10))
    assert json.loads((tmp_path / "lens" / "lens.json").read_text())["model"] == "smollm2-135m"


def test_lens_cli_writes_table_and_plots(cli, tmp_path):
    code, out, err = cli("lens", "--prompt", "The bridge is 240", "--tokens", " feet, meters", "--metric",
                         "logit_diff", "--layers", "20-29", "--out", tmp_path)
    assert code == 0, err
    table = json.loads((tmp_path / "lens.json").read_text())
    assert [r["layer"] for r in table["rows"]] == list(range(20, 30))
    assert table["rows"][-1]["kl_to_final"] == 0.0 and table["final_top"][0][0] == " feet"
    assert (tmp_path / "lens.png").read_bytes()[:4] == b"\x89PNG"
    html = (tmp_path / "lens.html").read_text()
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    code, _, err = cli("lens", "--prompt", "x", "--tokens", " zqxjvk")
    assert code == 2 and "tokens for this tokenizer, not one" in err
