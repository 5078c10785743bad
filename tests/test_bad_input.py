"""Every kind of bad input: one line naming file, line and field; exit 2; no traceback; no output."""

import subprocess
import sys

import msgspec
import pytest

GOOD = [
    {"prompt_id": f"p{i}", "text": f"text {i}", "criterion_score": float(i % 2),
     "features": [{"feature_id": "L1:F1", "activation": 0.5 + i % 2}, {"feature_id": "L1:F2", "activation": 1.0}]}
    for i in range(40)
]


def write(path, rows):
    path.write_bytes(b"".join(r if isinstance(r, bytes) else msgspec.json.encode(r) + b"\n" for r in rows))
    return path


def bad_rows(line3: bytes | dict) -> list:
    return [*GOOD[:2], line3, *GOOD[2:]]


CASES = {
    "malformed_json": (b'{"prompt_id": "x", "features": [\n', "line 3", "malformed JSON", None),
    "missing_field": ({"prompt_id": "x", "criterion_score": 1.0}, "line 3", "required field is missing", "features"),
    "missing_nested_field": ({"prompt_id": "x", "features": [{"feature_id": "L1:F9"}]}, "line 3",
                             "required field is missing", "features[0].activation"),
    "mistyped_field": ({"prompt_id": "x", "criterion_score": "high", "features": []}, "line 3",
                       "Expected float | null, got str", "criterion_score"),
    "mistyped_activation": ({"prompt_id": "x", "features": [{"feature_id": "a", "activation": "1"}]}, "line 3",
                            "Expected float, got str", "features[0].activation"),
    "nan": (b'{"prompt_id": "x", "criterion_score": NaN, "features": []}\n', "line 3", "NaN is not a valid JSON",
            "criterion_score"),
    "nan_activation": (b'{"prompt_id": "x", "features": [{"feature_id": "a", "activation": NaN}]}\n', "line 3",
                       "NaN is not a valid JSON", "activation"),
    "infinity": (b'{"prompt_id": "x", "criterion_score": 1e999, "features": []}\n', "line 3",
                 "number out of range", "criterion_score"),
    "score_out_of_range": ({"prompt_id": "x", "criterion_score": 1.5, "features": []}, "line 3",
                           "expected a number in [0, 1]", "criterion_score"),
    "unknown_schema_version": ({"schema_version": "interp-lab.activation_record.v7", "prompt_id": "x",
                                "features": []}, "line 3", "unknown schema_version", "schema_version"),
    "unknown_split": ({"prompt_id": "x", "split": "test", "features": []}, "line 3",
                      "'test' is not allowed here (expected discovery, calibration or heldout)", "split"),
    "conflicting_duplicate_prompt_id": ({**GOOD[1], "criterion_score": 0.0}, "line 3",
                                        "duplicate prompt_id 'p1'", "prompt_id"),
    "feature_listed_twice": ({"prompt_id": "x", "features": [{"feature_id": "a", "activation": 1.0},
                                                             {"feature_id": "a", "activation": 2.0}]},
                             "line 3", "listed twice", "features"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_records_line(case, tmp_path, cli):
    row, where, message, field = CASES[case]
    path = write(tmp_path / "records.jsonl", bad_rows(row))
    out = tmp_path / "report"
    code, stdout, stderr = cli("inspect", "--criterion", "c", "--records", path, "--out", out)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"interp-lab: error: {path}: {where}")
    assert message in lines[0]
    if field:
        assert f"field {field}" in lines[0]
    assert "Traceback" not in stderr
    assert not out.exists()  # no partial output
    assert not list(tmp_path.glob(".report*"))  # no leftover temp dirs


def test_conflicting_duplicate_names_both_lines(tmp_path, cli):
    path = write(tmp_path / "r.jsonl", [*GOOD, {**GOOD[5], "text": "different"}])
    code, _, err = cli("inspect", "--criterion", "c", "--records", path)
    assert code == 2 and f"{path}: line 41: field prompt_id" in err and "conflicts with line 6" in err


def test_exact_duplicates_are_dropped_and_said(tmp_path, cli):
    path = write(tmp_path / "r.jsonl", [*GOOD, GOOD[5]])
    from interp_lab.api import inspect

    rep = inspect("m", "c", records=path).report
    assert any("1 exact duplicate" in n for n in rep["notes"])
    assert rep["inputs"][0]["rows"] == 40  # rows kept


def test_empty_file(tmp_path, cli):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    code, _, err = cli("inspect", "--criterion", "c", "--records", path)
    assert code == 2 and err.strip() == f"interp-lab: error: {path}: file is empty (expected at least one JSON line)"


def test_missing_file(tmp_path, cli):
    code, _, err = cli("inspect", "--criterion", "c", "--records", tmp_path / "nope.jsonl")
    assert code == 2 and "nope.jsonl: file not found" in err


def test_bad_intervention_and_feature_rows(tmp_path, cli):
    rec = write(tmp_path / "r.jsonl", GOOD)
    iv = write(tmp_path / "iv.jsonl", [{"feature_id": "L1:F1", "intervention": "ablate", "baseline_score": 0.5,
                                        "intervention_score": 0.2},
                                       {"feature_id": "L1:F1", "intervention": "explode", "baseline_score": 0.5,
                                        "intervention_score": 0.2}])
    code, _, err = cli("inspect", "--criterion", "c", "--records", rec, "--interventions", iv)
    assert code == 2 and f"{iv}: line 2: field intervention: unknown kind 'explode'" in err
    fd = write(tmp_path / "f.jsonl", [{"feature_id": "a", "causal_effects": {"c": 0.1}},
                                      {"feature_id": "b", "activation_signature": [1.0, 2.0],
                                       "signature_prompt_ids": ["p1"]}])
    code, _, err = cli("inspect", "--criterion", "c", "--features", fd)
    assert code == 2 and f"{fd}: line 2: field signature_prompt_ids: has 1 ids for 2 signature values" in err


def test_unknown_schema_version_in_feature_dump(tmp_path, cli):
    fd = write(tmp_path / "f.jsonl", [{"feature_id": "a", "schema_version": "interp-lab.feature.v3"}])
    code, _, err = cli("inspect", "--criterion", "c", "--features", fd)
    assert code == 2 and "line 1: field schema_version: unknown schema_version" in err


def test_debug_shows_traceback_and_exit_code_in_a_real_process(tmp_path):
    path = write(tmp_path / "r.jsonl", bad_rows(b"{oops\n"))
    cmd = [sys.executable, "-m", "interp_lab", "inspect", "--criterion", "c", "--records", str(path)]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().count("\n") == 0
    debug = subprocess.run(cmd + ["--debug"], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "InputError" in debug.stderr
