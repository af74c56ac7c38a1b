"""Verdict rules on hand-computed cases: paired bootstrap intervals per seed, and Student-t over paired seeds."""

from __future__ import annotations

import math

import pytest

from xlt.evaluation.bootstrap import PairedComparison
from xlt.experiments.verdicts import from_pairs, from_seed_differences, t_quantile


def pair(difference: float, low: float, high: float) -> PairedComparison:
    return PairedComparison(difference, low, high, p_value=0.01)


def test_pairs_reproduce_only_when_every_seed_is_on_the_claimed_side() -> None:
    assert from_pairs([pair(0.3, 0.1, 0.5), pair(0.2, 0.05, 0.4)], "greater").verdict == "reproduced"
    mixed = from_pairs([pair(0.3, 0.1, 0.5), pair(0.1, -0.05, 0.25)], "greater")
    assert mixed.verdict == "inconclusive" and mixed.detail.startswith("1 of 2")
    assert mixed.effect == pytest.approx(0.2) and (mixed.low, mixed.high) == (-0.05, 0.5)
    # "less" flips the sign: a negative difference with an interval below 0 is the claim
    assert from_pairs([pair(-0.3, -0.5, -0.1)], "less").verdict == "reproduced"
    assert from_pairs([pair(-0.3, -0.5, -0.1)], "greater").verdict == "not reproduced"
    # within a margin: the interval rules out an effect above 2 points in the claimed direction
    assert from_pairs([pair(0.005, -0.01, 0.015)], "greater", margin=0.02).verdict == "not reproduced"
    assert from_pairs([pair(0.005, -0.01, 0.015)], "greater").verdict == "inconclusive"


def test_seed_differences_use_the_student_t_interval() -> None:
    # differences 1, 2, 3: mean 2, sd 1, half-width t(0.975, 2) / sqrt(3) = 4.303 / 1.732 = 2.484
    wide = from_seed_differences([1.0, 2.0, 3.0], "greater")
    assert wide.low == pytest.approx(2 - 4.303 / math.sqrt(3), abs=1e-3) and wide.verdict == "inconclusive"
    tight = from_seed_differences([1.0, 1.1, 0.9], "greater")  # sd 0.1: [0.752, 1.248]
    assert tight.low == pytest.approx(1 - 0.4303 / math.sqrt(3), abs=1e-3) and tight.verdict == "reproduced"
    assert from_seed_differences([-1.0, -1.1, -0.9], "less").verdict == "reproduced"
    assert from_seed_differences([-1.0, -1.1, -0.9], "greater").verdict == "not reproduced"
    single = from_seed_differences([5.0], "greater")
    assert single.verdict == "inconclusive" and "one seed" in single.detail


def test_t_quantiles_are_conservative_between_table_rows() -> None:
    assert t_quantile(2) == pytest.approx(4.303)
    assert t_quantile(11) == pytest.approx(2.228)  # df 11 uses df 10's (larger) quantile
    assert t_quantile(100) == pytest.approx(1.96)


def test_non_inferiority_claims_compare_the_interval_with_the_margin() -> None:
    # a - b = 0.01 +- small over seeds: within a 0.05 margin, so "a does not rise by more than 0.05" holds
    within = from_seed_differences([0.01, 0.02, 0.0], "not_greater", margin=0.05)
    assert within.verdict == "reproduced"
    beyond = from_seed_differences([0.2, 0.21, 0.19], "not_greater", margin=0.05)
    assert beyond.verdict == "not reproduced"
    assert from_seed_differences([0.0, 0.1, 0.05], "not_greater", margin=0.05).verdict == "inconclusive"
    # not_less: a may fall by at most the margin (points as fractions, as the difference view passes them)
    assert from_pairs([pair(-0.005, -0.012, 0.002)], "not_less", margin=0.02).verdict == "reproduced"
    assert from_pairs([pair(-0.05, -0.07, -0.03)], "not_less", margin=0.02).verdict == "not reproduced"


def test_a_margin_is_the_smallest_effect_the_claim_asserts() -> None:
    # "recovers more than half the gap": a share of 0.3 [0.2, 0.4] rules that out; 0.7 [0.6, 0.8] shows it
    assert from_pairs([pair(0.3, 0.2, 0.4)], "greater", margin=0.5).verdict == "not reproduced"
    assert from_pairs([pair(0.7, 0.6, 0.8)], "greater", margin=0.5).verdict == "reproduced"
    assert from_pairs([pair(0.55, 0.45, 0.65)], "greater", margin=0.5).verdict == "inconclusive"
    assert from_seed_differences([0.7, 0.72, 0.68], "greater", margin=0.5).verdict == "reproduced"
