"""Commands check their options before the expensive work and never end in an internal error: train-sae
(--causal-out, --records --batch-size), store diff / plot, lens; and a figure whose matplotlib is missing
is skipped with a note where the command writes other results (train-sae, eval-sae, lens), or refused
in one line where the figure is the only output (store plot); store remove asks before deleting."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "examples" / "activation_records.jsonl"  # 1,200 records of one layer (L0)


def one_line_error(code: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("interp-lab: error:"), err
    assert "internal error" not in err and all(n in lines[0] for n in needles), err


@pytest.fixture(scope="module")
def records_store(tmp_path_factory):
    """A one-hook store written from the example records (no model needed)."""
    from interp_lab.sae.from_records import records_store as make
    from interp_lab.store.reader import Store

    path, hook = make(RECORDS, tmp_path_factory.mktemp("rs") / "store")
    return Store(path), hook


def test_store_diff_and_plot_name_a_missing_hook_or_channel_in_one_line(records_store, cli):
    st, hook = records_store
    where = ["--where-a", "criterion_score=1.0", "--where-b", "criterion_score=0.0"]
    code, _, err = cli("store", "diff", st.root, "--hook", "blocks.3.hook_resid_post", *where)
    one_line_error(code, err, "'blocks.3.hook_resid_post' is not in this store", hook)
    code, _, err = cli("store", "diff", st.root, "--hook", hook, "--by", "median", *where)
    one_line_error(code, err, "--by 'median'", "mean or rate")
    code, out, err = cli("store", "diff", st.root, "--hook", hook, "--by", "rate", "--k", "2", *where)
    assert code == 0, err
    assert json.loads(out)["n_a"] + json.loads(out)["n_b"] == st.rows
    code, _, err = cli("store", "plot", st.root, "--hook", hook, "--channel", str(st.width(hook)), "--doc", "0",
                       "--out", st.root.parent / "x.png")
    one_line_error(code, err, "out of range")
    assert not (st.root.parent / "x.png").exists()


def test_store_remove_asks_unless_yes_and_the_api_deletes_only_with_yes(records_store, cli, tmp_path, monkeypatch):
    """The command line asks before deleting (no: the store stays, exit 130; yes: gone); the API, which
    cannot ask, refuses without yes=True and leaves the store in place."""
    import io
    import shutil

    from interp_lab import store_remove
    from interp_lab.errors import UsageError

    st, _ = records_store
    copy = tmp_path / "copy"
    shutil.copytree(st.root, copy)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, out, _ = cli("store", "remove", copy)
    assert code == 130 and f"delete {copy}?" in out and (copy / "manifest.json").is_file()
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, _, err = cli("store", "remove", copy)
    assert code == 0 and not copy.exists(), err
    shutil.copytree(st.root, copy)
    with pytest.raises(UsageError, match="yes=True"):
        store_remove(copy)
    assert (copy / "manifest.json").is_file()
    store_remove(copy, yes=True)
    assert not copy.exists()


def test_train_sae_records_keeps_a_batch_size_given(tmp_path, cli):
    """1,200 records: the preset's batch is lowered to an eighth of them (150), a --batch-size given is kept."""
    pytest.importorskip("torch")
    args = ["train-sae", "--records", RECORDS, "--expansion-factor", "1", "--top-k", "4", "--epochs", "1",
            "--ce-tokens", "0"]
    code, _, err = cli(*args, "--batch-size", "400", "--out", tmp_path / "given")
    assert code == 0, err
    assert json.loads((tmp_path / "given" / "manifest.json").read_text())["train_config"]["batch_size"] == 400
    code, _, err = cli(*args, "--out", tmp_path / "preset")
    assert code == 0, err
    assert json.loads((tmp_path / "preset" / "manifest.json").read_text())["train_config"]["batch_size"] == 150


@pytest.mark.parametrize("args, needle", [
    (["--prompt", "The bridge is 240", "--tokens", " m", "--metric", "accuracy"], "--metric 'accuracy'"),
    (["--prompt", "The bridge is 240", "--tokens", " m", "--metric", "logit_diff"], "logit_diff needs --tokens A,B"),
    (["--prompt", "The bridge is 240"], "--tokens is needed"),
    (["--prompt", "x", "--tokens", " m", "--layers", "3-x"], "--layers: '3-x'"),
    (["--prompt", "x", "--tokens", " m", "--tuned", "no-such-lens"], "not a tuned lens"),
    (["--dataset", "no-such-file.txt"], "no such file"),
], ids=["metric", "logit-diff-tokens", "no-tokens", "layers", "tuned", "dataset"])
def test_lens_checks_its_options_before_loading_the_model(args, needle, tmp_path, cli):
    """The model is an empty directory: had it been loaded first, its load would be the error."""
    code, _, err = cli("lens", "--model", tmp_path, *args)
    one_line_error(code, err, needle)


def test_train_sae_causal_out_checks_its_criterion_before_training(records_store, tmp_path, cli):
    st, hook = records_store
    spec = tmp_path / "c.yaml"
    spec.write_text("criterion: units\nkind: next_token\ntargets: [' m']\nprompts: nowhere.jsonl\n")
    code, _, err = cli("train-sae", "--store", st.root, "--hook", hook, "--out", tmp_path / "sae",
                       "--causal-out", tmp_path / "iv.jsonl", "--criterion", spec)
    one_line_error(code, err, "nowhere.jsonl")
    spec.write_text("criterion: units\nkind: next_token\ntargets: [' m'\n")
    code, _, err = cli("train-sae", "--store", st.root, "--hook", hook, "--out", tmp_path / "sae",
                       "--causal-out", tmp_path / "iv.jsonl", "--criterion", spec)
    one_line_error(code, err, "c.yaml", "malformed spec")
    code, _, err = cli("train-sae", "--records", RECORDS, "--out", tmp_path / "sae", "--causal-out",
                       tmp_path / "iv.jsonl", "--criterion", spec)
    one_line_error(code, err, "--causal-out", "--records")
    code, _, err = cli("train-sae", "--store", st.root, "--hook", hook, "--out", tmp_path / "sae",
                       "--records-out", tmp_path / "latents.parquet")
    one_line_error(code, err, "--records-out", "latents.parquet", "JSONL")
    assert not (tmp_path / "sae").exists() and not (tmp_path / ".sae.training").exists()


@pytest.mark.realmodel
def test_train_sae_causal_out_hands_the_interventions_a_stage_progress(smollm2, sae_store, tmp_path):
    """train-sae gives --causal-out's interventions the stage progress (stage, done, total), not the one-argument
    message printer: the run gets past loading the model and compiling the criterion to the criterion's own
    verdict (here: identical prompts, so the discovery prompts are all of one class, known only once scored)."""
    from sae_common import HOOK

    from interp_lab.api.sae import train_sae
    from interp_lab.errors import UsageError
    from interp_lab.sae.config import TrainConfig

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt_id": f"p{i}", "text": "The bridge is 240",
                                           "split": ("discovery", "heldout")[i % 2]}) + "\n" for i in range(8)))
    spec = tmp_path / "c.yaml"
    spec.write_text(f"criterion: units\nkind: next_token\ntargets: [' m', ' km']\nprompts: {prompts}\n"
                    "min_heldout: 4\n")
    stages, messages = [], []
    with pytest.raises(UsageError, match="all of one class"):
        train_sae(out=tmp_path / "sae", store=sae_store.root, hook=HOOK, model=smollm2, ce_tokens=0,
                  config=TrainConfig(expansion_factor=1, k=8, tokens=512, batch_size=256),
                  causal_out=tmp_path / "iv.jsonl", criterion=str(spec), causal_features=1,
                  progress=lambda stage, done=0, total=None, note="": stages.append((stage, done, total)),
                  say=messages.append)
    assert ("loading the model", 0, None) in stages and ("compiling the criterion", 0, None) in stages
    assert (tmp_path / "sae" / "cfg.json").exists() and not (tmp_path / "iv.jsonl").exists()


@pytest.fixture
def no_matplotlib(monkeypatch):
    """`import matplotlib` fails, as if the plots extra were not installed (restored after the test)."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError):
        import matplotlib  # noqa: F401


def test_train_and_eval_sae_without_matplotlib_skip_only_the_density_png(tmp_path, cli, no_matplotlib):
    pytest.importorskip("torch")
    code, _, err = cli("train-sae", "--records", RECORDS, "--expansion-factor", "1", "--top-k", "4", "--epochs", "1",
                       "--ce-tokens", "0", "--out", tmp_path / "sae")
    assert code == 0, err
    ckpt = tmp_path / "sae"
    assert {p.name for p in ckpt.iterdir()} == {"cfg.json", "sae_weights.safetensors", "manifest.json", "metrics.json"}
    m = json.loads((ckpt / "metrics.json").read_text())
    assert m["heldout"]["tokens"] > 0 and m["density_histogram"] is None
    assert m["notes"] == ["density.png not drawn: matplotlib is not installed (pip install 'interp-lab[plots]')"]
    assert "density.png not drawn" in err and "internal error" not in err

    from interp_lab.io.paths import resolve_recorded

    store = resolve_recorded(json.loads((ckpt / "manifest.json").read_text())["store"], ckpt)
    code, _, err = cli("eval-sae", "--sae", ckpt, "--store", store, "--ce-tokens", "0", "--out", tmp_path / "m.json")
    assert code == 0, err
    assert json.loads((tmp_path / "m.json").read_text())["heldout"]["fvu"] == pytest.approx(m["heldout"]["fvu"])
    assert not (tmp_path / "density.png").exists() and "density.png not drawn" in err

    # a figure that is the command's only output: one line naming the extra, exit 2, nothing written
    code, _, err = cli("store", "plot", store, "--hook", m["hook"], "--channel", "0", "--out", tmp_path / "trace.png")
    one_line_error(code, err, "matplotlib", "interp-lab[plots]")
    assert not (tmp_path / "trace.png").exists()


@pytest.mark.realmodel
def test_lens_without_matplotlib_writes_json_and_html_and_notes_the_png(tmp_path, cli, no_matplotlib):
    pytest.importorskip("torch")
    code, out, err = cli("lens", "--prompt", "The bridge is 240", "--tokens", " m", "--layers", "28-29", "--out",
                         tmp_path)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lens.html", "lens.json"]
    assert [r["layer"] for r in json.loads((tmp_path / "lens.json").read_text())["rows"]] == [28, 29]
    assert "lens.png not drawn: matplotlib is not installed" in err and "lens.png" not in out
