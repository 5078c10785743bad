"""Splits by document (evidence rule 3): no group feeds two splits, each split holds its share of every
class, held-out holds min_heldout; the corpus is a covariate; fitted directions' stability is out of sample."""

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from interp_lab.criteria.compile import check_criterion, compile_criterion
from interp_lab.errors import InputError
from interp_lab.evidence.rank import RankSettings, rank_associations
from interp_lab.evidence.splits import prompt_groups
from interp_lab.io.prompts import prompt_covariates
from interp_lab.io.record_matrix import RecordMatrix
from interp_lab.io.sparse import Compressed

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted([*ROOT.glob("examples/reports/*/prompts.jsonl"),
                    *ROOT.glob("examples/cross-model/reports/*/prompts.jsonl")])


def read_rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def leaks(rows):
    """(groups in two or more splits, held-out prompts whose group also feeds another split)."""
    groups = prompt_groups(rows)
    splits = defaultdict(set)
    for g, r in zip(groups.index, rows):
        splits[g].add(r["split"])
    bad = {g for g, s in splits.items() if len(s) > 1}
    held = sum(1 for g, r in zip(groups.index, rows) if r["split"] == "heldout" and g in bad)
    return bad, held


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_document_feeds_two_splits_of_a_committed_prompt_set(path):
    rows = read_rows(path)
    bad, held = leaks(rows)
    n_held = sum(r["split"] == "heldout" for r in rows)
    n_bad = len(bad)
    assert n_bad == 0, (f"{n_bad} groups are in two splits; {held} of {n_held} held-out prompts share a document "
                     "with discovery or calibration prompts")


def documents(tmp_path, n_docs=90, seed=0, split=None):
    """A labelled prompt set of documents of 1..40 passages, some mostly positive, some mostly negative,
    some mixed, plus lone prompts without a document."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_docs):
        size = int(rng.choice([1, 1, 2, 3, 5, 8, 13, 40]))
        p_pos = rng.choice([0.05, 0.5, 0.95])
        for k in range(size):
            rows.append({"prompt_id": f"d{d}@{k}", "text": f"passage {k} of document {d}",
                         "criterion_score": float(rng.random() < p_pos),
                         "metadata": {"doc": f"d{d}", "source": "lee" if d % 3 else "enwiki"}})
    rows += [{"prompt_id": f"lone{i}", "text": f"a lone prompt {i}", "criterion_score": float(i % 2)}
             for i in range(40)]
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    if split is not None:
        for r in rows:
            r["split"] = split(r)
    path = tmp_path / f"docs{seed}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def labelled(tmp_path, path, min_heldout=50, extra=""):
    spec = tmp_path / "c.yaml"
    spec.write_text(f"criterion: positive\nkind: labelled\nprompts: {path}\nmin_heldout: {min_heldout}\n{extra}")
    return compile_criterion(str(spec))


def test_splits_keep_documents_whole_and_hold_their_share_of_each_class(tmp_path):
    path, rows = documents(tmp_path)
    c = labelled(tmp_path, path)
    bad, _ = leaks(c.rows)
    assert not bad  # no document in two splits (on main: hashed by prompt id, most documents were)
    n = len(c.rows)
    largest = max(Counter(r["metadata"].get("doc", r["prompt_id"]) for r in c.rows).values())
    cls = Counter((r["split"], r["criterion_score"]) for r in c.rows)
    total = Counter(r["criterion_score"] for r in c.rows)
    for s, f in {"discovery": 0.4, "calibration": 0.2, "heldout": 0.4}.items():
        for y in (0.0, 1.0):
            # within a few prompts of the split's share of the class, although documents hold up to 40
            assert abs(cls[s, y] - f * total[y]) <= 2, (s, y, cls[s, y], f * total[y], largest)
    info = c.info["splits"]
    assert info["by"] == "metadata.doc / prompt_id" and info["method"] == "dealt by group"
    assert info["stratified_by"] == "class and source"  # two corpora: each split gets its share of each
    src = Counter((r["split"], r["metadata"].get("source")) for r in c.rows)
    lee = sum(v for (_, s), v in src.items() if s == "lee")
    assert all(abs(src[s, "lee"] - f * lee) <= 3 for s, f in {"discovery": 0.4, "heldout": 0.4}.items())
    assert sum(info["positives"].values()) == total[1.0] and sum(info["groups"].values()) == len(prompt_groups(rows))
    assert c.counts["heldout"] >= 50 and n == len(rows)
    # deterministic, and not by file order: the same prompts in another order get the same splits
    again = labelled(tmp_path, path)
    assert [r["split"] for r in again.rows] == [r["split"] for r in c.rows]
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    other = {r["prompt_id"]: r["split"] for r in labelled(tmp_path, shuffled).rows}
    assert other == {r["prompt_id"]: r["split"] for r in c.rows}


def test_metadata_group_overrides_the_document_and_pairs_join_groups(tmp_path):
    path, rows = documents(tmp_path, seed=1)
    for r in rows:  # a coarser grouping: every document of a source together with its neighbours
        if "metadata" in r:
            r["metadata"]["group"] = f"g{int(r['metadata']['doc'][1:]) // 10}"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    c = labelled(tmp_path, path)
    by_group = defaultdict(set)
    for r in c.rows:
        by_group[r["metadata"].get("group", r["prompt_id"])].add(r["split"])
    assert all(len(s) == 1 for s in by_group.values()) and c.info["splits"]["by"].startswith("metadata.group")
    pairs = [{"prompt_id": f"a{i}", "text": f"yes {i}", "criterion_score": 1, "labels": {"pair": i},
              "metadata": {"doc": f"x{i}"}} for i in range(150)]
    pairs += [{"prompt_id": f"b{i}", "text": f"no {i}", "criterion_score": 0, "labels": {"pair": i},
               "metadata": {"doc": f"y{i % 7}"}} for i in range(150)]  # pairs chain documents together
    p = tmp_path / "pairs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in pairs))
    spec = tmp_path / "contrast.yaml"
    spec.write_text(f"criterion: affirmation\nkind: contrast\nprompts: {p}\nmin_heldout: 30\n")
    split = {r["prompt_id"]: r["split"] for r in compile_criterion(str(spec)).rows}
    assert all(split[f"a{i}"] == split[f"b{i}"] for i in range(150))
    docs = defaultdict(set)
    for r in pairs:
        docs[r["metadata"]["doc"]].add(split[r["prompt_id"]])
    assert all(len(s) == 1 for s in docs.values())


def test_min_heldout_raises_the_held_out_share_or_stops(tmp_path, cli):
    path, rows = documents(tmp_path, n_docs=30, seed=2)
    n = len(rows)
    want = int(0.45 * n)  # more than 40% of the prompts
    c = labelled(tmp_path, path, min_heldout=want)
    assert c.counts["heldout"] >= want and "held-out raised from 40%" in c.info["splits"]["note"]
    f = c.info["splits"]["fractions"]
    assert f["discovery"] == pytest.approx(2 * f["calibration"], rel=1e-3)  # the rest keeps its proportions
    spec = tmp_path / "c.yaml"
    spec.write_text(f"criterion: positive\nkind: labelled\nprompts: {path}\nmin_heldout: {n // 2 + 1}\n")
    code, _, err = cli("compile-criterion", "--criterion", spec, "--out", tmp_path / "o.jsonl")
    assert code == 2 and err.count("\n") == 1 and f"min_heldout {n // 2 + 1}" in err and "field min_heldout" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_given_splits_are_kept_but_a_document_in_two_splits_is_refused(tmp_path, cli):
    by_doc = lambda r: "heldout" if int(r["metadata"]["doc"][1:]) % 2 else "discovery"  # noqa: E731
    path, rows = documents(tmp_path, seed=3, split=lambda r: by_doc(r) if "metadata" in r else None)
    c = labelled(tmp_path, path)
    assert all(r["split"] == by_doc(r) for r in c.rows if "doc" in r["metadata"])
    assert c.info["splits"]["method"] == "given, the rest dealt by group"
    leaky = [dict(r, split="discovery" if i % 2 else "heldout") for i, r in enumerate(rows)]
    path.write_text("".join(json.dumps(r) + "\n" for r in leaky))
    spec = tmp_path / "c.yaml"
    spec.write_text(f"criterion: positive\nkind: labelled\nprompts: {path}\nmin_heldout: 10\n")
    with pytest.raises(InputError) as err:
        compile_criterion(str(spec))
    assert err.value.field == "split" and err.value.line is not None and "two splits" in err.value.message
    line = json.loads(path.read_text().splitlines()[err.value.line - 1])
    assert line["split"] != next(r["split"] for r in leaky if r.get("metadata", {}).get("doc") ==
                                 line["metadata"]["doc"])  # the line named is the one that disagrees
    code, _, text = cli("compile-criterion", "--criterion", spec, "--out", tmp_path / "o.jsonl")
    assert code == 2 and text.count("\n") == 1 and "field split" in text
    with pytest.raises(InputError, match="two splits"):  # what commands check before loading a model
        check_criterion(str(spec))


def matrix(X, scores, prompt_ids, covariates=None, feature_ids=None, splits=None):
    n, F = X.shape
    X = np.ascontiguousarray(X, dtype=np.float32)
    C = Compressed(X.ravel(), np.tile(np.arange(F, dtype=np.int32), n), np.arange(n + 1, dtype=np.int64) * F,
                   (n, F), "csr")
    C.eliminate_zeros()
    return RecordMatrix(path="test", X=C, feature_ids=np.array(feature_ids or [f"L0:N{j}" for j in range(F)], object),
                        prompt_ids=np.array(prompt_ids, object), token_index=np.full(n, -1, np.int64),
                        scores=np.asarray(scores, float),
                        splits=np.full(n, -1, np.int8) if splits is None else np.asarray(splits, np.int8),
                        texts=pa.chunked_array([pa.array([None] * n, pa.string())]), tokens=None,
                        covariates=covariates or {}, models=["m"], sources=["test"], hooks=["h"])


def test_the_corpus_is_a_covariate_and_a_feature_that_only_tracks_it_is_confounded():
    rng = np.random.default_rng(0)
    n = 1200
    rows = [{"prompt_id": f"p{i}", "metadata": {"source": "lee" if i % 3 == 0 else "enwiki"}} for i in range(n)]
    assert prompt_covariates(rows[:1] * 5) == {}  # one corpus: nothing to adjust for
    cov = prompt_covariates(rows)
    lee = cov["source"] == "lee"
    y = (rng.random(n) < np.where(lee, 0.8, 0.3)).astype(float)  # lee is mostly positive
    X = rng.normal(size=(n, 30))
    X[:, 0] = lee + 0.3 * rng.normal(size=n)  # tracks the corpus, nothing else
    X[:, 1] = y + 0.8 * rng.normal(size=n)  # tracks the criterion
    settings = RankSettings(top_k=5, bootstrap=50, stability_resamples=20)
    pids = [r["prompt_id"] for r in rows]
    res = rank_associations(matrix(X, y, pids, cov), settings, force=[0, 1])
    assert res.covariates == ["source"]
    assert "confounded" in res.evidence[0]["flags"] and "confounded" not in res.evidence[1]["flags"]
    plain = rank_associations(matrix(X, y, pids), settings, force=[0, 1])
    assert "confounded" not in plain.evidence[0]["flags"]  # without the covariate it truly correlates


def test_a_fitted_direction_gets_its_stability_out_of_sample():
    """A column fitted on the discovery rows (perfect there, noise on the rest) got stability 1.0 from
    resampling those rows; measured on held-out rows it is low, and a direction that generalizes stays high."""
    rng = np.random.default_rng(1)
    n = 1000
    y = (rng.random(n) < 0.5).astype(float)
    splits = np.where(np.arange(n) % 2 == 0, 0, 2).astype(np.int8)  # discovery / held-out
    X = rng.normal(size=(n, 60))
    X[:, :8] += 0.6 * y[:, None]  # eight real units
    overfit = np.where(splits == 0, y + 0.1 * rng.normal(size=n), rng.normal(size=n))
    general = 2.0 * y + rng.normal(size=n)
    X = np.hstack([X, overfit[:, None], general[:, None]])
    ids = [f"L0:N{j}" for j in range(60)] + ["L0:D0", "L0:D1"]
    selectable = np.array([not f.startswith("L0:D") for f in ids])
    res = rank_associations(matrix(X, y, [f"p{i}" for i in range(n)], feature_ids=ids, splits=splits),
                            RankSettings(top_k=5, bootstrap=50, stability_resamples=50), force=[60, 61],
                            selectable=selectable)
    d0, d1 = res.evidence[60]["stability"], res.evidence[61]["stability"]
    assert d0["rows"] == d1["rows"] == "heldout" and "out of sample" in d0["method"]
    assert d0["score"] <= 0.1 and d1["score"] >= 0.9
    unit = res.evidence[res.candidates[0]]["stability"]
    assert unit["rows"] == "discovery" and unit["score"] > 0.5  # units still judged on discovery resamples
