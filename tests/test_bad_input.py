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


# Run in one child process, 20 times over: pyarrow's read-ahead thread outliving the file under it made a
# bad file abort the process (exit 134) or hang, at exit or in the next read, after the right message.
# Each case runs once through the CLI (exit code, stderr, stdout) and 19 more times through read_records,
# the same reading below the CLI's deterministic error printing (a CLI call costs 40 ms of typer set-up).
# A crash or hang fails the child itself.
_REPEAT = r'''
import contextlib, io, json, sys
from interp_lab.cli.main import main
from interp_lab.errors import InputError
from interp_lab.io.records import read_records
out = {}
for name, args in json.loads(sys.argv[1]).items():
    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        code = main(args)
    seen = {(code, err.getvalue(), std.getvalue())}
    for _ in range(19):
        try:
            read_records(args[args.index("--records") + 1])
            seen.add((0, "", ""))
        except InputError as exc:
            seen.add((exc.exit_code, f"interp-lab: error: {exc}\n", ""))
    out[name] = sorted(seen)
print(json.dumps(out))
'''


def test_bad_files_end_with_one_line_every_time(tmp_path):
    import gzip
    import json
    import os

    import zstandard

    # ~20 MB (ten 2 MB blocks): the reader is still reading ahead when the first block fails
    body = b"".join(msgspec.json.encode(r) + b"\n" for r in GOOD)
    write(tmp_path / "first_block.jsonl", [*GOOD[:2], b'{"prompt_id": "x", "features": [\n', body * 3500])
    gz, zst = gzip.compress(body * 20), zstandard.ZstdCompressor().compress(body * 20)
    (tmp_path / "cut.jsonl.gz").write_bytes(gz[: len(gz) // 2])
    (tmp_path / "cut.jsonl.zst").write_bytes(zst[: len(zst) // 2])
    deep = b'{"prompt_id": "x", "features": [], "metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}\n"
    write(tmp_path / "deep.jsonl", bad_rows(deep))
    write(tmp_path / "utf8.jsonl", bad_rows(b'{"prompt_id": "x", "text": "caf\xe9 \xff", "features": []}\n'))
    write(tmp_path / "nan_sig.jsonl", bad_rows(
        b'{"prompt_id": "x", "features": [{"feature_id": "L1:F1", "activation": 1.0, '
        b'"decoder_signature": [0.1, NaN]}]}\n'))
    write(tmp_path / "inf_sig.jsonl", bad_rows(
        b'{"prompt_id": "x", "features": [{"feature_id": "L1:F1", "activation": 1.0, '
        b'"decoder_signature": [0.1, 1e999]}]}\n'))
    (tmp_path / "a_directory").mkdir()
    expected = {
        "first_block.jsonl": "line 3: malformed JSON",
        "cut.jsonl.gz": "cannot decompress",
        "cut.jsonl.zst": "cannot decompress",
        "deep.jsonl": "line 3: JSON nested too deeply",
        "utf8.jsonl": "line 3: invalid UTF-8",
        "nan_sig.jsonl": "line 3: field decoder_signature: NaN is not a valid JSON number",
        "inf_sig.jsonl": "line 3: field features[0].decoder_signature[1]: number out of range",
        "a_directory": "expected a file, got a directory",
    }
    runs = {name: ["inspect", "--criterion", "c", "--records", str(tmp_path / name), "--out",
                   str(tmp_path / f"out-{name}")] for name in expected}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.run([sys.executable, "-c", _REPEAT, json.dumps(runs)], capture_output=True,
                           text=True, timeout=300, env=env)
    assert child.returncode == 0, child.stderr[-2000:]
    seen = json.loads(child.stdout)
    for name, message in expected.items():
        assert len(seen[name]) == 1, (name, seen[name])  # the same outcome all 20 times, CLI and API
        code, err, out = seen[name][0]
        assert code == 2 and out == "", (name, code, out)
        assert err.count("\n") == 1 and err.startswith(f"interp-lab: error: {tmp_path / name}: "), (name, err)
        assert message in err, (name, err)
        assert not (tmp_path / f"out-{name}").exists()
