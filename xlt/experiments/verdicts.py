"""Verdicts on a claim, decided by intervals, never by eye.

Two kinds of evidence:

- **paired over examples** (:func:`from_pairs`): one paired bootstrap per seed of the claimed difference ``a - b``
  (:func:`xlt.evaluation.bootstrap.paired_bootstrap`). ``margin`` is the smallest effect the claim asserts (0:
  any effect in the claimed direction). *Reproduced* when every seed's interval lies above the margin in the
  claimed direction, *not reproduced* when every seed's interval rules out an effect above it, *inconclusive*
  otherwise.
- **paired over seeds** (:func:`from_seed_differences`): for numbers without per-example statistics (an MLM
  validation loss, a fertility), the differences of paired seeds and their two-sided Student-t interval; one seed
  gives no spread to judge by, so it is always *inconclusive*.

A non-inferiority claim (``not_greater``: "oversampling does not raise the high languages' loss by more than
0.05") is *reproduced* when the whole interval of ``a - b`` is below the margin, *not reproduced* when it is
above it, *inconclusive* when it straddles it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from xlt.evaluation.bootstrap import PairedComparison

Expect = Literal["greater", "less", "not_greater", "not_less"]
"""``greater``: a > b claimed; ``less``: a < b; ``not_greater``: a − b ≤ margin (a does not rise by more than the
margin: a non-inferiority claim); ``not_less``: a − b ≥ −margin."""
Verdict = Literal["reproduced", "not reproduced", "inconclusive", "not run"]

# two-sided 95 % Student-t quantiles t_{0.975, df}; beyond the table the normal 1.96 is within 4 %
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t_quantile(df: int) -> float:
    """t_{0.975, df} (the next smaller tabulated df: conservative)."""
    if df < 1:
        raise ValueError("t_quantile needs df >= 1")
    return _T975[max(k for k in _T975 if k <= df)] if df <= 30 else 1.96


@dataclass(frozen=True)
class Evidence:
    """The claimed difference in the claim's direction (positive = as claimed), its interval and the verdict.

    Attributes:
        verdict: reproduced / not reproduced / inconclusive.
        effect: mean difference, signed so that positive is the claimed direction.
        low: lower bound of that signed difference (over seeds: the t interval; over examples: the smallest
            per-seed lower bound).
        high: upper bound (over examples: the largest per-seed upper bound).
        n: seeds.
        detail: one sentence: how the verdict was reached.
    """

    verdict: Verdict
    effect: float
    low: float
    high: float
    n: int
    detail: str


def _bounded(effect: float, low: float, high: float, margin: float, n: int, how: str) -> Evidence:
    """A non-inferiority verdict on the signed difference (positive = the bad direction): within the margin when
    the whole interval is below it, refuted when the whole interval is above it."""
    if high < margin:
        verdict: Verdict = "reproduced"
        detail = f"{how}: the interval stays within the margin {margin:g}"
    elif low > margin:
        verdict, detail = "not reproduced", f"{how}: the interval is beyond the margin {margin:g}"
    else:
        verdict, detail = "inconclusive", f"{how}: the interval straddles the margin {margin:g}"
    return Evidence(verdict, -effect, -high, -low, n, detail)


def _signed(expect: Expect) -> float:
    return 1.0 if expect in ("greater", "not_greater") else -1.0


def from_pairs(pairs: Sequence[PairedComparison], expect: Expect, margin: float = 0.0) -> Evidence:
    """The verdict from one paired bootstrap per seed (see the module docstring)."""
    sign = _signed(expect)
    if expect.startswith("not_"):
        bounds = [sorted((sign * p.low, sign * p.high)) for p in pairs]
        return _bounded(statistics.mean(sign * p.difference for p in pairs), min(b[0] for b in bounds),
                        max(b[1] for b in bounds), margin, len(pairs), "every seed's paired bootstrap")
    bounds = [sorted((sign * p.low, sign * p.high)) for p in pairs]
    effect = statistics.mean(sign * p.difference for p in pairs)
    low, high = min(b[0] for b in bounds), max(b[1] for b in bounds)
    if all(b[0] > margin for b in bounds):
        verdict: Verdict = "reproduced"
        detail = (f"every seed's {pairs[0].confidence:.0%} bootstrap interval is above {margin:g} in the claimed "
                  "direction")
    elif all(b[1] <= margin for b in bounds):
        verdict = "not reproduced"
        detail = f"every seed's interval rules out an effect above {margin:g} in the claimed direction"
    else:
        verdict = "inconclusive"
        agree = sum(b[0] > margin for b in bounds)
        detail = f"{agree} of {len(bounds)} seeds' intervals are above {margin:g} in the claimed direction"
    return Evidence(verdict, effect, low, high, len(pairs), detail)


def from_seed_differences(differences: Sequence[float], expect: Expect, margin: float = 0.0) -> Evidence:
    """The verdict from per-seed differences ``a - b`` of paired seeds (see the module docstring)."""
    sign = _signed(expect)
    signed = [sign * d for d in differences]
    effect = statistics.mean(signed)
    if len(signed) < 2:
        return Evidence("inconclusive", effect, -math.inf, math.inf, len(signed),
                        "one seed: no spread to judge the difference by (run the stage with seeds: [0, 1, 2])")
    half = t_quantile(len(signed) - 1) * statistics.stdev(signed) / math.sqrt(len(signed))
    low, high = effect - half, effect + half
    if expect.startswith("not_"):
        return _bounded(effect, low, high, margin, len(signed), f"95 % t interval over {len(signed)} paired seeds")
    if low > margin:
        verdict: Verdict = "reproduced"
        detail = f"the 95 % t interval over {len(signed)} paired seeds is above {margin:g} in the claimed direction"
    elif high <= margin:
        verdict = "not reproduced"
        detail = f"the 95 % t interval over {len(signed)} paired seeds rules out an effect above {margin:g}"
    else:
        verdict = "inconclusive"
        detail = f"the 95 % t interval over {len(signed)} paired seeds includes 0"
    return Evidence(verdict, effect, low, high, len(signed), detail)
