"""The fast reader, the validating reader and Parquet give the same matrix; compression is transparent."""

import gzip
from pathlib import Path

import msgspec
import numpy as np
import pytest
import zstandard

from interp_lab.errors import InputError
from interp_lab.io.record_assembly import Assembler
from interp_lab.io.record_batches import validated_batches
from interp_lab.io.records import read_records, write_records_parquet


def same(a, b):
    assert list(a.feature_ids) == list(b.feature_ids)
    assert a.X.equal(b.X)
    np.testing.assert_array_equal(a.prompt_ids, b.prompt_ids)
    np.testing.assert_array_equal(a.token_index, b.token_index)
    np.testing.assert_array_equal(np.nan_to_num(a.scores, nan=-9), np.nan_to_num(b.scores, nan=-9))
    np.testing.assert_array_equal(a.splits, b.splits)
    assert a.texts.to_pylist() == b.texts.to_pylist()
    assert a.feature_labels == b.feature_labels
    assert sorted(a.covariates) == sorted(b.covariates)
    for k in a.covariates:
        np.testing.assert_array_equal(a.covariates[k], b.covariates[k])


def slow(path):
    asm, lines = Assembler(), []
    for b in validated_batches(Path(path), lines, rows_per_batch=7):
        asm.add(b)
    return asm.build(str(path), "validating")


@pytest.fixture
def rows():
    rng = np.random.default_rng(0)
    out = []
    for i in range(60):
        feats = [{"feature_id": f"L2:F{j}", "activation": round(float(rng.random()), 3),
                  **({"label": f"feature {j}"} if j % 3 == 0 else {})}
                 for j in sorted(rng.choice(30, 5, replace=False).tolist())]
        row = {"prompt_id": f"p{i // 3}", "token_index": i % 3, "text": f"doc {i // 3}",
               "criterion_score": None if i % 7 == 0 else float(i % 2),
               "features": feats, "metadata": {"token": f"t{i}", "covariates": {"len": i % 5, "src": "ab"[i % 2]}}}
        if i % 11 == 0:
            row["split"] = None
        out.append(row)
    return out


def write(path, rows):
    path.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in rows))
    return path


def test_fast_and_validating_paths_agree(tmp_path, rows):
    p = write(tmp_path / "r.jsonl", rows)
    fast = read_records(p)
    assert fast.reader == "fast"
    same(fast, slow(p))
    assert fast.tokens[0] == "t0" and fast.covariates["src"][1] == "b"


def test_features_as_a_map_are_read_by_the_validating_path(tmp_path, rows):
    maps = [{**r, "features": {f["feature_id"]: f["activation"] for f in r["features"]}} for r in rows]
    a = read_records(write(tmp_path / "m.jsonl", maps))
    assert a.reader == "validating"
    b = read_records(write(tmp_path / "l.jsonl", [{**r, "features": [
        {"feature_id": f["feature_id"], "activation": f["activation"]} for f in r["features"]]} for r in rows]))
    assert a.X.equal(b.X) and list(a.feature_ids) == list(b.feature_ids)


def test_integer_prompt_ids_and_text_only_rows(tmp_path):
    rows = [{"prompt_id": 7, "features": [{"feature_id": "x", "activation": 1.0}]},
            {"text": "only a text", "features": []}]
    m = read_records(write(tmp_path / "r.jsonl", rows))
    assert m.prompt_ids[0] == "7" and m.prompt_ids[1].startswith("t-")


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_compressed_files(tmp_path, rows, kind):
    raw = b"".join(msgspec.json.encode(r) + b"\n" for r in rows)
    p = tmp_path / f"r.jsonl.{kind}"
    p.write_bytes(gzip.compress(raw) if kind == "gz" else zstandard.ZstdCompressor().compress(raw))
    same(read_records(p), read_records(write(tmp_path / "plain.jsonl", rows)))


def test_parquet_round_trip(tmp_path, rows):
    m = read_records(write(tmp_path / "r.jsonl", rows))
    write_records_parquet(m, tmp_path / "r.parquet")
    back = read_records(tmp_path / "r.parquet")
    assert back.reader == "parquet"
    same(m, back)


def test_explicit_zeros_are_absent(tmp_path):
    rows = [{"prompt_id": "a", "features": [{"feature_id": "x", "activation": 0.0},
                                            {"feature_id": "y", "activation": 2.0}]}]
    m = read_records(write(tmp_path / "r.jsonl", rows))
    assert m.X.nnz == 1 and list(m.feature_ids) == ["x", "y"]


def test_feature_ids_in_natural_order_independent_of_file_order(tmp_path):
    rows = [{"prompt_id": "a", "features": [{"feature_id": f, "activation": 1.0}
                                            for f in ["L10:F2", "L2:F10", "L2:F9", "zeta", "L2:N3"]]}]
    m = read_records(write(tmp_path / "r.jsonl", rows))
    assert list(m.feature_ids) == ["L2:F9", "L2:F10", "L2:N3", "L10:F2", "zeta"]


def test_token_rows_of_one_prompt_cannot_straddle_splits(tmp_path, cli):
    rows = [{"prompt_id": "a", "token_index": 0, "split": "discovery", "features": []},
            {"prompt_id": "a", "token_index": 1, "split": "heldout", "features": []}]
    p = write(tmp_path / "r.jsonl", rows)
    code, _, err = cli("validate", p)
    assert code == 2 and "line 2: field split: prompt 'a' has rows in more than one split" in err


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ids = st.sampled_from(["L1:F1", "L1:F2", "L2:F10", "L10:N3", "x", "é"])
_entry = st.fixed_dictionaries({"feature_id": _ids, "activation": st.floats(-1e6, 1e6, allow_nan=False)})
_row = st.fixed_dictionaries(
    {"prompt_id": st.text(min_size=1, max_size=6),
     "features": st.lists(_entry, max_size=6, unique_by=lambda e: e["feature_id"])},
    optional={"criterion_score": st.one_of(st.none(), st.floats(0, 1)),
              "token_index": st.integers(0, 3),
              "text": st.text(max_size=10),
              "split": st.sampled_from(["discovery", "calibration", "heldout"])},
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_row, min_size=1, max_size=12))
def test_fast_path_equals_validating_path_on_any_valid_file(tmp_path_factory, rows):
    # keep one row per (prompt_id, token_index) and one split per prompt, as valid files have
    seen, split_of, valid = set(), {}, []
    for r in rows:
        key = (r["prompt_id"], r.get("token_index"))
        if key in seen or split_of.setdefault(r["prompt_id"], r.get("split")) != r.get("split"):
            continue
        seen.add(key)
        valid.append(r)
    if any(r.get("token_index") is None for r in valid) and any(r.get("token_index") is not None for r in valid):
        valid = [r for r in valid if r.get("token_index") is not None] or valid[:1]
    p = write(tmp_path_factory.mktemp("h") / "r.jsonl", valid)
    fast = read_records(p)
    same(fast, slow(p))


def test_fast_path_takes_the_metadata_interp_lab_writes(tmp_path, rows):
    # pyarrow reads with a schema learned from the first row and infers nothing; harvest-style metadata
    # (nulls, nested labels, keys interp-lab does not read) must still take the fast path
    meta = {"source": "hf", "hook": "blocks.3.hook_resid_post", "pooling": "max", "revision": None,
            "labels": {"topic": "units", "n": 2}}
    harvested = [{**r, "metadata": {**r["metadata"], **meta}} for r in rows]
    p = write(tmp_path / "h.jsonl", harvested)
    fast = read_records(p)
    assert fast.reader == "fast" and fast.hooks == ["blocks.3.hook_resid_post"]
    same(fast, slow(p))
    # a row with a key the first row lacks (here a covariate) leaves it to the validating reader
    extra = [*harvested[:5], {**harvested[5], "metadata": {**harvested[5]["metadata"],
                                                            "covariates": {"len": 1, "src": "a", "new": 2}}},
             *harvested[6:]]
    with pytest.raises(InputError, match="line 1: field metadata.covariates.new: missing on this row"):
        read_records(write(tmp_path / "x.jsonl", extra))


def test_concatenated_compressed_members_are_read_whole(tmp_path, rows):
    raw = [msgspec.json.encode(r) + b"\n" for r in rows]
    gz = tmp_path / "r.jsonl.gz"
    gz.write_bytes(gzip.compress(b"".join(raw[:30])) + gzip.compress(b"".join(raw[30:])))
    zst = tmp_path / "r.jsonl.zst"
    zc = zstandard.ZstdCompressor()
    zst.write_bytes(zc.compress(b"".join(raw[:30])) + zc.compress(b"".join(raw[30:])))
    plain = read_records(write(tmp_path / "plain.jsonl", rows))
    same(read_records(gz), plain)
    same(read_records(zst), plain)


def test_parquet_refuses_what_jsonl_refuses(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ok = pa.array(["p1", "p2", "p3"])
    feats = pa.array([[{"feature_id": "a", "activation": 1.0}]] * 3)
    bad_text = pa.Array.from_buffers(pa.string(), 3, ok.buffers()[:2] + [pa.py_buffer(b"p1p2p\xe9")])
    pq.write_table(pa.table({"prompt_id": ok, "text": bad_text, "features": feats}), tmp_path / "utf8.parquet")
    with pytest.raises(InputError, match=r"utf8.parquet: row 3: field text: invalid UTF-8"):
        read_records(tmp_path / "utf8.parquet")
    sig = pa.array([[{"feature_id": "a", "activation": 1.0, "decoder_signature": v}]
                    for v in ([0.1], [0.2, float("nan")], [0.3])])
    pq.write_table(pa.table({"prompt_id": ok, "features": sig}), tmp_path / "nan.parquet")
    with pytest.raises(InputError, match=r"nan.parquet: row 2: field features.decoder_signature: expected a list "
                                         r"of finite numbers"):
        read_records(tmp_path / "nan.parquet")
    cov = pa.StructArray.from_arrays([pa.array([1.0, float("inf"), 2.0])], names=["len"])
    pq.write_table(pa.table({"prompt_id": ok, "features": feats,
                             "metadata": pa.StructArray.from_arrays([cov], names=["covariates"])}),
                   tmp_path / "cov.parquet")
    with pytest.raises(InputError, match=r"cov.parquet: row 2: field metadata.covariates.len: expected a finite"):
        read_records(tmp_path / "cov.parquet")


def test_a_zstd_file_cut_at_a_block_boundary_is_refused(tmp_path):
    # 128-byte lines: zstd's 128 KiB blocks end on a line boundary, so the rows before the cut are
    # whole (python-zstandard's reader stopped there silently: 4096 of 5000 rows read, no error)
    def line(i):
        b = msgspec.json.encode({"prompt_id": f"p{i}", "text": "", "features": [{"feature_id": "a", "activation": 1.0}]})
        return b.replace(b'"text":""', b'"text":"' + b"x" * (127 - len(b)) + b'"') + b"\n"

    body = b"".join(line(i) for i in range(5000))
    assert {len(x) for x in body.splitlines(keepends=True)} == {128}
    p = tmp_path / "cut.jsonl.zst"
    p.write_bytes(zstandard.ZstdCompressor(level=1).compress(body)[:-10])
    with pytest.raises(InputError, match=r"cut.jsonl.zst: cannot decompress past line \d+ \(Truncated compressed "
                                         r"stream\): the file is cut short or corrupt"):
        read_records(p)
