"""Objectives: per-bucket means, weighted sums, and a metric the run never logged named loudly."""

from __future__ import annotations

import math

import pytest

from xlt.errors import XltError
from xlt.tuning.objectives import Objective, Objectives

BUCKETS = {"qaa": "high", "qab": "high", "qah": "tail", "qaj": "tail", "qae": "mid"}
METRICS = {"val/mlm/loss/qaa": 2.0, "val/mlm/loss/qab": 4.0, "val/mlm/loss/qah": 5.0, "val/mlm/loss/qaj": 8.0,
           "val/mlm/loss/qae": 100.0, "val/mlm/loss/macro": 3.5}
TAIL = Objective(name="tail_loss", metric="val/mlm/loss/{lang}", bucket="tail")
HIGH = Objective(name="high_loss", metric="val/mlm/loss/{lang}", bucket="high")


def test_bucket_objectives_are_equal_weight_means_of_the_buckets_languages() -> None:
    assert TAIL.value(METRICS, BUCKETS) == 6.5  # (5 + 8) / 2
    assert HIGH.value(METRICS, BUCKETS) == 3.0  # (2 + 4) / 2
    assert Objective(name="macro", metric="val/mlm/loss/macro").value(METRICS, BUCKETS) == 3.5


def test_weighted_sum_is_one_value_in_the_objectives_direction() -> None:
    objectives = Objectives([TAIL, HIGH], weights=[0.25, 0.75])
    objectives.check()
    values = objectives.evaluate(METRICS, BUCKETS)
    assert values["weighted_sum"] == pytest.approx(0.25 * 6.5 + 0.75 * 3.0)
    assert objectives.study_values(values) == [values["weighted_sum"]]
    assert objectives.directions == ["minimize"]
    assert Objectives([TAIL, HIGH]).study_values(values) == [6.5, 3.0]


def test_a_metric_the_run_did_not_log_names_it_and_lists_the_logged_ones() -> None:
    missing = Objective(name="acc", metric="val/xnli/acc/macro", direction="maximize")
    with pytest.raises(XltError, match=r"metric val/xnli/acc/macro was not logged.*logged: val/mlm/loss/macro"):
        missing.value(METRICS, BUCKETS)
    with pytest.raises(XltError, match="no language of bucket 'low'"):
        Objective(name="low", metric="val/mlm/loss/{lang}", bucket="low").value(METRICS, BUCKETS)


def test_a_diverged_run_is_the_worst_value_not_nan() -> None:
    assert Objective(name="m", metric="val/mlm/loss/macro").value({"val/mlm/loss/macro": math.nan}, {}) == math.inf
    up = Objective(name="a", metric="acc", direction="maximize")
    assert up.value({"acc": math.nan}, {}) == -math.inf


@pytest.mark.parametrize(("objectives", "message"), [
    (Objectives([]), "objectives is empty"),
    (Objectives([TAIL, TAIL]), "repeat"),
    (Objectives([Objective(name="x", metric="val/mlm/loss/{lang}")]), "together with bucket"),
    (Objectives([Objective(name="x", metric="m", bucket="huge")]), "unknown bucket 'huge'"),
    (Objectives([TAIL, HIGH], weights=[1.0]), "one weight per objective"),
    (Objectives([TAIL, Objective(name="a", metric="acc", direction="maximize")], weights=[1, 1]), "one direction"),
])
def test_bad_objectives_are_user_errors(objectives: Objectives, message: str) -> None:
    with pytest.raises(XltError, match=message):
        objectives.check()
