"""The numbers behind matched controls (interventions.controls), on planted data: no model needed."""

import numpy as np

from interp_lab.interventions import controls as ctl


def test_realised_edit_rms_per_kind():
    rng = np.random.default_rng(0)
    v = rng.normal(3.0, 2.0, size=(400, 5))
    norms = np.array([1.0, 2.0, 0.5, 1.0, 3.0])
    positive = rng.random(400) < 0.3
    ablate = ctl.edit_rms(v, "ablate", norms, positive)
    np.testing.assert_allclose(ablate, np.sqrt((v ** 2).mean(0)) * norms)
    np.testing.assert_allclose(ctl.edit_rms(v, "mean_ablate", norms, positive), v.std(0) * norms)
    neg, src = ctl.patch_pairs(positive)
    assert positive[src].all() and not positive[neg].any() and len(neg) == (~positive).sum()
    np.testing.assert_allclose(ctl.edit_rms(v, "patch", norms, positive),
                               np.sqrt(((v[src] - v[neg]) ** 2).mean(0)) * norms)


def test_unit_controls_widen_their_tolerance_and_never_return_fewer():
    rng = np.random.default_rng(1)
    rms = np.r_[rng.lognormal(0.0, 0.3, 500), 10.0, 0.0, 0.0]  # an outlier at 500, two dead units
    typical = ctl.pick_units(rms, 7, 20, 0.25, rng)
    assert len(typical.chosen) == 20 and typical.tolerance == 0.25 and not typical.widened
    assert 7 not in typical.chosen and ctl.within(rms[typical.chosen] / rms[7], 0.25).all()
    # the outlier has no unit within 25%: the tolerance widens until 20 are found, and says so
    out = ctl.pick_units(rms, 500, 20, 0.25, rng)
    assert len(out.chosen) == 20 and out.widened and out.tolerance > 0.25
    assert ctl.within(rms[out.chosen] / 10.0, out.tolerance).all()
    assert not (rms[out.chosen] == 0).any()  # widening never admits dead units
    # a space with fewer live units than asked: all of them, the tolerance unbounded
    few = ctl.pick_units(np.r_[1.0, 1.1, 30.0, 0.0], 0, 5, 0.25, rng)
    assert sorted(few.chosen.tolist()) == [1, 2] and few.tolerance is None and few.widened


def test_random_directions_come_from_the_activation_distribution_and_match_the_edit():
    rng = np.random.default_rng(2)
    # 60 activations in 32 dimensions spanning only 10 of them, with a large mean
    basis = np.linalg.qr(rng.normal(size=(32, 10)))[0].T
    x = rng.normal(size=(60, 10)) * np.linspace(0.5, 6, 10) @ basis + 4.0 * basis[0]
    v = ctl.activation_directions(x, 50, rng)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0)
    outside = v - (v @ basis.T) @ basis
    assert np.abs(outside).max() < 1e-9  # never isotropic: inside the span of the centred activations

    def rms_of(w):
        return ctl.edit_rms(x @ w.T, "ablate", np.ones(len(w)), np.zeros(len(x), bool))

    got = ctl.matched_directions(x, rms_of, 3.0, 20, 0.25, rng)
    assert got.chosen.shape == (20, 32) and got.tolerance == 0.25 and not got.widened
    assert ctl.within(rms_of(got.chosen) / 3.0, 0.25).all()
    # a target no direction of the data reaches: widened, still 20, each within what is recorded
    far = ctl.matched_directions(x, rms_of, 500.0, 20, 0.25, rng)
    assert len(far.chosen) == 20 and far.widened
    assert ctl.within(rms_of(far.chosen) / 500.0, far.tolerance).all()


def test_permuted_label_refits_are_unit_placebos():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 16))
    positive = rng.random(200) < 0.5
    x[positive, 0] += 3.0

    def mean_difference(a, y):
        return a[y].mean(0) - a[~y].mean(0)

    v = ctl.permuted_directions(mean_difference, x, positive, 20, rng)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0)
    assert np.abs(v[:, 0]).max() < 0.8  # the planted axis is found by the true labels, not by permuted ones
    assert len({tuple(np.round(r, 6)) for r in v}) == 20


def test_strength_search_reaches_the_target_kl():
    calls = []

    def kl_at(s):  # quadratic at first, saturating later, as KL of a steered model does
        calls.append(s)
        return 3.0 * s ** 2 / (1 + 0.2 * s ** 2)

    for target, start in ((0.7, 1.0), (0.01, 4.0), (9.0, 0.25)):
        calls.clear()
        s, kl, reached = ctl.search_strength(kl_at, target, start, 0.25)
        assert ctl.within(kl / target, 0.25) and reached <= 0.25 and kl == kl_at(s)
        assert len(calls) <= 6
    # an unreachable target: the closest strength tried, the tolerance it reached said
    s, kl, reached = ctl.search_strength(kl_at, 100.0, 1.0, 0.25)
    assert reached > 0.25 and kl < 15.0
