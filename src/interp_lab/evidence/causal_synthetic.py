"""Planted reports for measuring the causal rule's size and power (evidence.md rule 7, issue 21).

A synthetic *test* is one feature and its controls, each an edit whose effect is measured on the same
held-out prompts:

- ``controls`` (20) controls per test, ``prompts`` (300) prompts;
- a control's true effect is a draw from Student's t with ``df`` (3) degrees of freedom (scale 1, so the
  between-control SD is sqrt(df / (df - 2)) = sqrt(3));
- every (edit, prompt) value is its edit's true effect plus normal noise of SD
  sqrt(prompts) x the between-control SD, so a mean over the prompts carries noise of one
  between-control SD;
- a null feature is one more control (its true effect a t draw); a planted feature's true effect is
  ``delta`` control-SDs in the claimed direction, where one **control-SD** is the population SD of a
  control's observed mean effect, sqrt(var(t_df) + noise SD^2 / prompts) = sqrt(6) here (with
  ``own_draw`` the planted feature also carries a t draw of its own on top: a harder alternative);
- a *report* holds ``tests`` (14) tests, 0, 1 or 4 of them planted, and the rule's Benjamini-Hochberg
  step runs within each report.

``measure`` judges every test with the functions ``evidence.causal`` uses (``causal_stats``) and returns
the share of null tests called strong (the size) and of planted ones (the power). Everything is
vectorized over tests; reports are generated and judged in chunks so memory stays small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from interp_lab.evidence import causal_stats as cs
from interp_lab.evidence.bootstrap import bootstrap_weights


@dataclass(frozen=True)
class PlantedDesign:
    controls: int = 20
    prompts: int = 300
    tests: int = 14  # per report
    df: float = 3.0
    planted_per_report: tuple[int, ...] = (0, 1, 4)  # report types, in turn
    own_draw: bool = False  # planted features also carry a control-like t draw

    @property
    def between_sd(self) -> float:
        return math.sqrt(self.df / (self.df - 2.0))

    @property
    def noise_sd(self) -> float:
        return math.sqrt(self.prompts) * self.between_sd

    @property
    def control_sd(self) -> float:
        """The unit of ``delta``: the population SD of a control's observed mean effect."""
        return math.sqrt(self.between_sd**2 + self.noise_sd**2 / self.prompts)


@dataclass(frozen=True)
class Measured:
    """Shares of tests called strong_causal, with 95% Wilson intervals."""

    delta: float
    null_tests: int
    null_strong: int
    planted_tests: int
    planted_strong: int

    @property
    def size(self) -> float:
        return self.null_strong / self.null_tests if self.null_tests else math.nan

    @property
    def power(self) -> float:
        return self.planted_strong / self.planted_tests if self.planted_tests else math.nan

    @property
    def size_ci(self) -> tuple[float, float]:
        return wilson(self.null_strong, self.null_tests)

    @property
    def power_ci(self) -> tuple[float, float]:
        return wilson(self.planted_strong, self.planted_tests)


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a binomial share k / n."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def simulate(design: PlantedDesign, planted: np.ndarray, delta: float, rng: np.random.Generator) -> np.ndarray:
    """Per-prompt effects [reports, tests, 1 + controls, prompts] (series 0 the feature), for reports whose
    first ``planted[r]`` tests are planted at ``delta`` control-SDs."""
    R, T, k, n = len(planted), design.tests, design.controls, design.prompts
    true = rng.standard_t(design.df, size=(R, T, 1 + k))
    is_planted = np.arange(T)[None, :] < np.asarray(planted)[:, None]
    shift = delta * design.control_sd
    true[..., 0] = np.where(is_planted, shift + (true[..., 0] if design.own_draw else 0.0), true[..., 0])
    noise = rng.standard_normal((R, T, 1 + k, n), dtype=np.float64)
    noise *= design.noise_sd
    return noise + true[..., None]


def judge(values: np.ndarray, rng: np.random.Generator, bootstrap: int, alpha: float = 0.05) -> np.ndarray:
    """strong_causal [reports, tests] for effects [reports, tests, 1 + controls, prompts] (claimed direction
    positive; n = prompts is enough): (a) BH q < alpha within each report, (b) the paired lower bound above
    zero, and the held-out sign the claimed one."""
    R, T, S, n = values.shape
    means = values.mean(-1)  # [R, T, S]
    p, _, _ = cs.control_p_values(means[..., 0], means[..., 1:])
    q = cs.bh_rows(p)
    W = bootstrap_weights(n, bootstrap, rng)  # one resample of the prompts per replicate, shared by every test
    flat = values.reshape(R * T * S, n).T  # [n, tests x series]
    star = cs.resampled_means(flat, W).reshape(bootstrap, R, T, S).transpose(1, 2, 0, 3)  # [R, T, B, S]
    lb = cs.paired_lower_bound(means[..., 0], means[..., 1:], star[..., 0], star[..., 1:])
    return cs.strong_verdict(q, lb, sign_ok=means[..., 0] > 0, n_ok=True, alpha=alpha)


def measure(delta: float, reports_per_type: int, design: PlantedDesign = PlantedDesign(), seed: int = 0,
            bootstrap: int = 1000, chunk: int = 6) -> Measured:
    """Size and power over ``reports_per_type`` reports of each type of ``design.planted_per_report``."""
    rng = np.random.default_rng(seed)
    planted = np.tile(np.asarray(design.planted_per_report), reports_per_type)
    null_n = null_k = planted_n = planted_k = 0
    for a in range(0, len(planted), chunk):
        part = planted[a:a + chunk]
        strong = judge(simulate(design, part, delta, rng), rng, bootstrap)
        mask = np.arange(design.tests)[None, :] < part[:, None]
        null_n += int((~mask).sum())
        null_k += int(strong[~mask].sum())
        planted_n += int(mask.sum())
        planted_k += int(strong[mask].sum())
    return Measured(delta, null_n, null_k, planted_n, planted_k)


# The rule's size and power, from ``python benchmarks/causal_calibration.py --reports 150 --json`` at the commit
# named (142 s on 2 cores); reports carry them in settings.causal_rule.measured. Rerun it when the rule changes.
MEASURED: dict = {
    "design": ("450 synthetic reports per planted size of 14 tests (0, 1, 4 planted), 20 controls with t(3) "
               "effects, 300 prompts, noise SD sqrt(300) x the between-control SD; one control-SD = the SD of a "
               "control's observed mean effect"),
    "size": {"rate": 0.01018, "ci": [0.00894, 0.01159], "tests": 22200},
    "power": {"2": {"rate": 0.236, "ci": [0.207, 0.2677], "tests": 750},
              "3": {"rate": 0.7, "ci": [0.6663, 0.7317], "tests": 750},
              "4": {"rate": 0.9467, "ci": [0.9282, 0.9606], "tests": 750},
              "6": {"rate": 0.9987, "ci": [0.9925, 0.9998], "tests": 750}},
    "power_with_own_draw": {"2": 0.2693, "3": 0.6973, "4": 0.9133, "6": 0.996},
    "by": "benchmarks/causal_calibration.py",
    "commit": "cea254cb6b11cc6fac5c777871919ed1c1948594",
}
