"""The statistics of a comparison: per-method summaries and two-sample t-tests."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

import lrenv  # noqa: F401  (registers the environments, here and in every worker)
from agents.jobs import RunResult
from agents.tasks import METHODS

SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class TTest:
    """An independent two-sample t-test (two-sided): Student's, or Welch's."""

    statistic: float
    pvalue: float
    df: float

    @property
    def significant(self) -> bool:
        """p < 0.05."""
        return self.pvalue < SIGNIFICANCE


def t_test(a: Sequence[float], b: Sequence[float], equal_var: bool = True) -> TTest:
    """Student's (``equal_var``) or Welch's two-sample t-test (``scipy.stats.ttest_ind``).

    Student's: ``t = (mean(a) - mean(b)) / sqrt(s2 * (1/na + 1/nb))`` with the pooled
    variance ``s2 = ((na-1) var(a) + (nb-1) var(b)) / (na + nb - 2)`` and ``df = na + nb -
    2``. Welch's: ``t = (mean(a) - mean(b)) / sqrt(var(a)/na + var(b)/nb)`` with the
    Welch-Satterthwaite degrees of freedom; it does not assume equal spreads, which a
    learned controller and a fixed schedule need not have. Both two-sided.

    When a sample has no spread at all (ten runs that all end at the same accuracy, say)
    the same formulas are computed here, because scipy would warn about precision loss:
    two such samples give p = 1 for equal means and p = 0 otherwise. Fewer than two values
    in a sample give NaN (no test is possible).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return TTest(math.nan, math.nan, na + nb - 2)
    if np.ptp(a) > 0 and np.ptp(b) > 0:
        result = stats.ttest_ind(a, b, equal_var=equal_var)
        return TTest(float(result.statistic), float(result.pvalue), float(result.df))
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
    if equal_var:
        df = na + nb - 2
        pooled = ((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / df
        se2 = pooled * (1 / na + 1 / nb)
    else:
        se2 = va + vb
        df = se2**2 / (va**2 / (na - 1) + vb**2 / (nb - 1)) if se2 > 0 else na + nb - 2
    if se2 == 0:
        return TTest(math.copysign(math.inf, diff) if diff else 0.0, 0.0 if diff else 1.0, df)
    t = diff / math.sqrt(se2)
    return TTest(t, float(2 * stats.t.sf(abs(t), df)), df)


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> TTest:
    """The paired t-test (two-sided, ``scipy.stats.ttest_rel``) of ``a`` against ``b``, run
    for run on the same seeds: ``t = mean(d) / (std(d) / sqrt(n))`` over ``d = a - b``,
    ``df = n - 1``. Differences with no spread give p = 1 when they are all 0 and p = 0
    otherwise (scipy would warn about precision loss); fewer than two pairs give NaN."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(d)
    if n < 2 or not np.isfinite(d).all():
        return TTest(math.nan, math.nan, n - 1)
    if np.ptp(d) > 0:
        result = stats.ttest_rel(a, b)
        return TTest(float(result.statistic), float(result.pvalue), float(n - 1))
    mean = float(d.mean())
    return TTest(math.copysign(math.inf, mean) if mean else 0.0, 0.0 if mean else 1.0, n - 1)


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of ``values``; the std is NaN for one."""
    array = np.array(list(values), dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else math.nan


def summarize(results: Sequence[RunResult]) -> dict[str, dict[str, float]]:
    """Per method: runs, mean and sample std (n - 1) of test loss and accuracy, divergences."""
    summary = {}
    for method in methods_in(results):
        runs = [r for r in results if r.method == method]
        entry: dict[str, float] = {"runs": len(runs), "diverged": sum(r.diverged for r in runs)}
        for key in ("test_loss", "test_accuracy", "best_val_loss"):
            entry[f"{key}_mean"], entry[f"{key}_std"] = mean_std(getattr(r, key) for r in runs)
        summary[method] = entry
    return summary


def compare_methods(
    results: Sequence[RunResult], reference: str
) -> dict[str, dict[str, dict[str, float]]]:
    """t-tests of ``reference`` against every other method, on test loss and accuracy:
    Student's (``t``, ``p``, ``df``) and Welch's (``welch_t``, ``welch_p``, ``welch_df``)."""
    by_method = {m: [r for r in results if r.method == m] for m in methods_in(results)}
    tests = {}
    for method, runs in by_method.items():
        if method == reference:
            continue
        tests[method] = {}
        for key in ("test_loss", "test_accuracy"):
            ours = [getattr(r, key) for r in by_method[reference]]
            theirs = [getattr(r, key) for r in runs]
            student, welch = t_test(ours, theirs), t_test(ours, theirs, equal_var=False)
            tests[method][key] = {
                "t": student.statistic,
                "p": student.pvalue,
                "df": student.df,
                "welch_t": welch.statistic,
                "welch_p": welch.pvalue,
                "welch_df": welch.df,
            }
    return tests


def methods_in(results: Iterable[RunResult]) -> list[str]:
    present = {r.method for r in results}
    return [m for m in METHODS if m in present]
