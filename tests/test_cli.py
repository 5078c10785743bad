"""The CLI: inspect, demo, doctor, validate, convert-records; and a light ``import interp_lab``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from interp_lab.io.records import read_records

ROOT = Path(__file__).resolve().parents[1]


def test_inspect_prints_cards_and_writes_three_reports(tmp_path, cli, synthetic_files):
    code, out, err = cli("inspect", "--model", "synthetic/planted", "--criterion", "positive",
                         "--records", synthetic_files["records"], "--interventions", synthetic_files["interventions"],
                         "--out", tmp_path / "rep", "--top-k", "5", "--seed", "2")
    assert code == 0, err
    assert "SYNTHETIC EVIDENCE" in err and "features tested" in out
    for name in ("report.json", "report.md", "report.html", "manifest.json"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["schema_version"] == "interp-lab.inspection_report.v3"
    assert rep["settings"]["ranking"]["seed"] == 2 and rep["settings"]["ranking"]["top_k"] == 5
    assert {c["feature_id"] for c in rep["cards"]} <= set(read_records(synthetic_files["records"]).feature_ids)


def test_json_to_stdout(cli, synthetic_files):
    code, out, _ = cli("inspect", "--criterion", "c", "--records", synthetic_files["records"], "--json")
    assert code == 0 and json.loads(out)["criterion"] == "c"


def test_backend_is_implied_and_synthetic_only_when_named(cli, tmp_path):
    code, _, err = cli("inspect", "--criterion", "c")
    assert code == 2 and "no evidence given" in err and "--backend synthetic" in err
    code, _, err = cli("inspect", "--criterion", "c", "--model", "no-such-model")  # --model alone means hf
    assert code == 2 and "cannot load model 'no-such-model'" in err
    code, out, err = cli("inspect", "--criterion", "c", "--backend", "toy")
    assert code == 0 and "SYNTHETIC" in out
    code, _, err = cli("inspect", "--criterion", "c", "--backend", "records")
    assert code == 2 and "--backend records needs --records" in err
    code, _, err = cli("inspect", "--criterion", "c", "--backend", "no-such-provider")
    assert code == 2 and "unknown backend 'no-such-provider'" in err and "neuronpedia" in err
    code, _, err = cli("inspect", "--criterion", "c", "--backend", "nnsight")
    assert code == 2 and "not available in this version" in err and "harvest --engine" in err


def test_demo_recovers_the_planted_features(tmp_path, cli):
    code, out, err = cli("demo", "--out", tmp_path / "demo", "--prompts", "2000", "--features", "400")
    assert code == 0, err
    assert out.count("PASS") == 5 and "FAIL" not in out
    rep = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert rep["synthetic"] is True and rep["planted"]
    assert (tmp_path / "demo" / "evidence" / "synthetic_records.jsonl.gz").exists()
    # the evidence files it wrote give the same ranking when inspected as files
    code, out2, _ = cli("inspect", "--criterion", "x", "--records",
                        tmp_path / "demo" / "evidence" / "synthetic_records.jsonl.gz")
    assert code == 0 and "SYNTHETIC" in out2


def test_doctor(cli):
    code, out, _ = cli("doctor", "--json")
    info = json.loads(out)
    assert code == 0 and info["core"]["numpy"] and "hf" in info["extras"] and info["cache"]["path"]
    # the JSON keeps the shape (keys and their order) it had before doctor became a registry command
    assert list(info) == ["version", "python", "platform", "core", "extras", "cache", "notes"]
    assert list(info["extras"]["hf"]) == ["ok", "packages"] and list(info["cache"]) == ["path", "exists", "bytes"]
    code, out, _ = cli("doctor")
    assert code == 0 and "extras" in out


def test_validate_and_convert(tmp_path, cli, synthetic_files):
    code, out, _ = cli("validate", synthetic_files["records"])
    assert code == 0 and "ok (rows 1500" in out
    code, out, _ = cli("validate", synthetic_files["interventions"], "--kind", "interventions")
    assert code == 0 and "ok (rows" in out
    dst = tmp_path / "r.parquet"
    code, out, _ = cli("convert-records", synthetic_files["records"], dst)
    assert code == 0 and dst.exists()
    a, b = read_records(synthetic_files["records"]), read_records(dst)
    assert a.X.equal(b.X)
    code, _, err = cli("convert-records", synthetic_files["records"], tmp_path / "r.csv")
    assert code == 2 and "must end in .parquet" in err


def test_utilities_through_the_python_api(tmp_path, synthetic_files):
    import interp_lab
    from interp_lab.errors import UsageError

    res = interp_lab.validate(synthetic_files["records"])  # path by position, kind by default: records
    assert res.kind == "records" and res.summary["rows"] == 1500 and res.summary["features"] == 300
    assert interp_lab.validate(synthetic_files["interventions"], "interventions").summary["rows"] > 0
    with pytest.raises(UsageError, match="unknown --kind 'csv'"):
        interp_lab.validate(synthetic_files["records"], kind="csv")
    with pytest.raises(UsageError, match="must end in .parquet"):
        interp_lab.convert_records(synthetic_files["records"], tmp_path / "r.csv")
    assert not list(tmp_path.iterdir())
    conv = interp_lab.convert_records(synthetic_files["records"], tmp_path / "r.parquet")
    assert conv.rows == 1500 and conv.paths == {"parquet": tmp_path / "r.parquet"}
    assert conv.nonzero == read_records(tmp_path / "r.parquet").X.nnz


def test_version_and_help(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.startswith("interp-lab ")
    code, out, _ = cli("inspect", "--help")
    assert code == 0 and "--records" in out and "--interventions" in out
    code, out, _ = cli("--help")
    assert code == 0 and out.startswith("Usage: interp-lab [OPTIONS] COMMAND")


@pytest.mark.parametrize("args, says", [
    ((), "Usage: interp-lab [OPTIONS] COMMAND"),                      # bare: the help, as no_args_is_help
    (("nosuch",), "Error: No such command 'nosuch'."),
    (("inspect", "--bogus"), "Error: No such option: --bogus"),
    (("match", "--left", "x"), "Error: Missing option '--right'."),    # the flag, not the parameter name
    (("inspect", "--criterion", "x", "--top-k", "0"), "Error: Invalid value for '--top-k'"),
    (("inspect", "--criterion", "x", "--bootstrap", "1"), "Error: Invalid value for '--bootstrap'"),
    (("store",), "Usage: interp-lab store [OPTIONS] COMMAND"),
    (("store", "nosuch"), "Error: No such command 'nosuch'."),
    (("models",), "Usage: interp-lab models [OPTIONS] COMMAND"),
])
def test_usage_errors_print_the_usage_line_and_exit_2(cli, args, says):
    code, out, err = cli(*args)
    assert code == 2, err
    assert "internal error" not in err and says in err and err.startswith("Usage: interp-lab") and out == ""


def test_a_usage_error_is_the_process_exit_status():
    bad = subprocess.run([sys.executable, "-m", "interp_lab", "match", "--left", "x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Missing option '--right'" in bad.stderr


def test_typer_is_pinned_to_the_installed_minor():
    """main() relies on typer's own click (see cli/main.py); pyproject allows one typer minor series."""
    import typer

    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in deps if d.startswith("typer")]
    major, minor = (int(x) for x in typer.__version__.split(".")[:2])
    assert pin == f"typer>={major}.{minor},<{major}.{minor + 1}"


def test_import_is_light():
    code = ("import sys, interp_lab; "
            "heavy = [m for m in ('torch', 'transformers', 'scipy', 'pyarrow') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "import sys, interp_lab.api, interp_lab.cli.main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_api_is_reachable_from_the_package_without_torch():
    """Every name of interp_lab.api is interp_lab.NAME, listed by __all__ and dir(), and loading it all
    (``from interp_lab import *``) still imports no torch."""
    code = ("import sys, interp_lab; from interp_lab import *; import interp_lab.api as api; "
            "from interp_lab import compare, train_sae, eval_sae, transfer, MatchResult, SAETrainResult; "
            "print(sorted(api.__all__) == sorted(set(interp_lab.__all__) - {'__version__'}), "
            "set(api.__all__) <= set(dir(interp_lab)), "
            "all(getattr(interp_lab, n) is getattr(api, n) for n in api.__all__), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True", "False"]


def test_the_readme_python_examples_import():
    """Each import in the README's Python examples resolves (the examples themselves need the model)."""
    import ast
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    imports = [n for b in blocks for n in ast.parse(b).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert any(isinstance(n, ast.ImportFrom) and n.module == "interp_lab" and "compare" in {a.name for a in n.names}
               for n in imports)
    for node in imports:
        exec(compile(ast.Module([node], type_ignores=[]), "README.md", "exec"), {})


def test_criterion_from_a_spec_file(tmp_path, cli, synthetic_files):
    spec = tmp_path / "units.yaml"
    spec.write_text("criterion: the prompt is positive\nkind: labelled\nmin_heldout: 10\n")
    code, out, _ = cli("inspect", "--criterion", spec, "--records", synthetic_files["records"], "--json")
    rep = json.loads(out)
    assert code == 0 and rep["criterion"] == "the prompt is positive"
    assert any("units.yaml (kind labelled)" in n for n in rep["notes"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("criterion: x\nkind: next_token\n")
    code, _, err = cli("inspect", "--criterion", bad, "--records", synthetic_files["records"])
    assert code == 2 and "field targets: a next_token criterion needs a non-empty targets list" in err
    typo = tmp_path / "typo.yaml"
    typo.write_text("criterion: x\nknd: semantic\n")
    code, _, err = cli("inspect", "--criterion", typo, "--records", synthetic_files["records"])
    assert code == 2 and "knd" in err
