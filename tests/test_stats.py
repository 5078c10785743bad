"""The vectorized statistics agree with scipy on sparse data with ties, negatives and empty columns."""

import numpy as np
import pytest
from scipy import stats

from interp_lab.evidence.bootstrap import bootstrap_stats, bootstrap_weights
from interp_lab.evidence.stats import bh_qvalues, column_stats, partial_correlation, top_activation_stats
from interp_lab.io.sparse import Compressed


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    n, F = 300, 40
    D = rng.normal(size=(n, F)).round(1)  # rounding makes many ties
    D[rng.random((n, F)) < 0.7] = 0
    D[:, 3] = 0  # a feature that never fires
    D[:, 4] = np.abs(D[:, 4])
    D = D.astype(np.float32).astype(np.float64)  # activations are stored as float32
    rows = rng.random(n) < 0.7
    return D, Compressed.from_dense(D).tocsc(), rows, rng


def test_auroc_p_and_point_biserial_match_scipy(data):
    D, X, rows, rng = data
    y = (rng.random(D.shape[0]) < 0.4).astype(float)
    cs = column_stats(X, rows, y)
    assert cs.binary
    for j in range(D.shape[1]):
        x, yy = D[rows, j], y[rows]
        if x.std() == 0:
            assert cs.auroc[j] == 0.5 and cs.p[j] == 1.0 and cs.r[j] == 0.0
            continue
        u = stats.mannwhitneyu(x[yy == 1], x[yy == 0], method="asymptotic", use_continuity=False)
        assert cs.auroc[j] == pytest.approx(u.statistic / ((yy == 1).sum() * (yy == 0).sum()), abs=1e-12)
        assert cs.p[j] == pytest.approx(u.pvalue, rel=1e-9)
        assert cs.r[j] == pytest.approx(stats.pearsonr(x, yy).statistic, abs=1e-12)
        d = (x[yy == 1].mean() - x[yy == 0].mean()) / np.sqrt(
            ((yy == 1).sum() - 1) * x[yy == 1].var(ddof=1) / (len(x) - 2)
            + ((yy == 0).sum() - 1) * x[yy == 0].var(ddof=1) / (len(x) - 2))
        assert cs.smd[j] == pytest.approx(d, abs=1e-9)


def test_spearman_matches_scipy_for_graded_scores(data):
    D, X, rows, rng = data
    y = rng.random(D.shape[0]).round(2)
    cs = column_stats(X, rows, y)
    assert not cs.binary
    for j in range(D.shape[1]):
        x = D[rows, j]
        if x.std() == 0:
            assert cs.spearman[j] == 0.0
            continue
        s = stats.spearmanr(x, y[rows])
        assert cs.spearman[j] == pytest.approx(s.statistic, abs=1e-12)
        assert cs.p[j] == pytest.approx(s.pvalue, rel=1e-6)


def test_absent_features_count_as_zeros():
    # fires on 15% of rows, every one of them positive: the best feature there is
    n = 1000
    y = np.r_[np.ones(500), np.zeros(500)]
    x = np.zeros(n)
    x[:150] = 1.0
    cs = column_stats(Compressed.from_dense(x[:, None]).tocsc(), np.ones(n, bool), y)
    assert cs.auroc[0] == pytest.approx(0.5 + 0.5 * 150 / 500)
    assert cs.effect[0] > 0.29 and cs.p[0] < 1e-30


def test_bootstrap_with_unit_weights_reproduces_point_estimates(data):
    D, X, rows, rng = data
    idx = np.flatnonzero(rows)
    cols = np.array([0, 1, 3, 4])
    for y in ((rng.random(D.shape[0]) < 0.5).astype(float), rng.random(D.shape[0])):
        cs = column_stats(X, rows, y)
        b = bootstrap_stats(X, cols, idx, y, np.ones((2, len(idx)), np.float32))
        np.testing.assert_allclose(b["effect"][0], cs.effect[cols], atol=1e-12)
        np.testing.assert_allclose(b["r"][0], cs.r[cols], atol=1e-12)


def test_bootstrap_counts_equal_statistics_on_duplicated_rows(data):
    D, X, rows, rng = data
    idx = np.flatnonzero(rows)
    y = (rng.random(D.shape[0]) < 0.5).astype(float)
    W = bootstrap_weights(len(idx), 3, np.random.default_rng(7))
    b = bootstrap_stats(X, np.array([1, 2]), idx, y, W)
    for k in range(3):
        dup = np.repeat(idx, W[k].astype(int))
        for j, c in enumerate((1, 2)):
            x, yy = D[dup, c], y[dup]
            u = stats.mannwhitneyu(x[yy == 1], x[yy == 0])
            assert b["auroc"][k, j] == pytest.approx(u.statistic / ((yy == 1).sum() * (yy == 0).sum()))


def test_grouped_bootstrap_resamples_whole_groups():
    groups = np.repeat(np.arange(5), 3)
    W = bootstrap_weights(15, 20, np.random.default_rng(0), groups)
    assert W.shape == (20, 15)
    for g in range(5):  # rows of one group always share a weight
        assert (W[:, groups == g] == W[:, [g * 3]]).all()


def test_bh_matches_scipy():
    p = np.random.default_rng(0).random(500) ** 3
    np.testing.assert_allclose(bh_qvalues(p), stats.false_discovery_control(p), rtol=1e-12)


def test_partial_correlation_removes_a_confounder():
    rng = np.random.default_rng(0)
    c = rng.normal(size=5000)
    y = c + rng.normal(size=5000)
    x = c + 0.3 * rng.normal(size=5000)  # related to y only through c
    C = np.c_[np.ones(5000), c]
    pr, df = partial_correlation(x[:, None], y, C)
    raw, _ = partial_correlation(x[:, None], y, np.ones((5000, 1)))
    assert raw[0] > 0.6 and abs(pr[0]) < 0.05 and df == 4997


def test_column_blocks_give_the_same_statistics(monkeypatch):
    import interp_lab.evidence.stats as st

    rng = np.random.default_rng(0)
    D = np.where(rng.random((3000, 500)) < 0.05, rng.normal(size=(3000, 500)), 0.0).astype(np.float32)
    X = Compressed.from_dense(D).tocsc()
    rows = rng.random(3000) < 0.6
    for y in ((rng.random(3000) < 0.5).astype(float), rng.random(3000)):
        whole = st.column_stats(X, rows, y)
        monkeypatch.setattr(st, "BLOCK_NNZ", 1000)
        blocks = st.column_stats(X, rows, y)
        monkeypatch.setattr(st, "BLOCK_NNZ", 1 << 20)
        for k, v in whole.__dict__.items():
            if isinstance(v, np.ndarray):
                np.testing.assert_allclose(v, getattr(blocks, k), equal_nan=True, err_msg=k)


def test_top_activation_means_match_a_loop_over_columns(data):
    D, X, rows, rng = data
    y = rng.random(D.shape[0])
    m = 12
    ta = top_activation_stats(X, rows, y, m)
    ys = y[rows]
    base = ys.mean()
    se = ys.std(ddof=1) / np.sqrt(m) * np.sqrt((len(ys) - m) / (len(ys) - 1))
    for j in range(D.shape[1]):
        x = D[rows, j]
        fired = np.flatnonzero(x > 0)  # zero and negative values never count as activating
        top = fired[np.argsort(-x[fired], kind="stable")][:m]
        want = (ys[top].sum() + (m - len(top)) * base) / m
        assert ta.firing[j] == len(fired)
        assert ta.mean[j] == pytest.approx(want, abs=1e-12)
        assert ta.z[j] == pytest.approx((want - base) / se, abs=1e-9)
    assert ta.mean[3] == pytest.approx(base) and ta.p[3] == pytest.approx(1.0)  # never fires: no evidence
