"""What a sweep optimises: logged validation metrics, each with a direction, optionally averaged over a resource
bucket of the panel (the paper's trade-off: tail-bucket vs high-bucket MLM loss), optionally folded into one
weighted sum.

An objective's ``metric`` is a logged metric name (``val/mlm/loss/macro``) or, with ``bucket``, a pattern with
``{lang}`` (``val/mlm/loss/{lang}``) averaged with equal weight over the bucket's languages in the run. A metric
the run did not log is an :class:`XltError` naming it and listing what was logged — never a silent NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from xlt.errors import XltError
from xlt.languages import BUCKETS

Direction = Literal["minimize", "maximize"]


@dataclass(frozen=True)
class Objective:
    """One objective of a study.

    Args:
        name: Short name (MLflow metric ``sweep/<name>``, ``xlt sweep best --limits``), e.g. ``tail_loss``.
        metric: A logged metric (``val/mlm/loss/macro``), or with ``bucket`` a pattern containing ``{lang}``.
        direction: ``minimize`` (losses) or ``maximize`` (accuracies).
        bucket: Average ``metric`` over the run's languages of this resource bucket (high, mid, low, tail).
    """

    name: str
    metric: str
    direction: Direction = "minimize"
    bucket: str | None = None

    def check(self) -> None:
        """Raise :class:`XltError` for an unknown bucket or a pattern used without one (or the reverse)."""
        if self.bucket is not None and self.bucket not in BUCKETS:
            raise XltError(f"sweep objective '{self.name}': unknown bucket '{self.bucket}' — use one of "
                           f"{', '.join(BUCKETS)}")
        if (self.bucket is None) == ("{lang}" in self.metric):
            raise XltError(f"sweep objective '{self.name}': metric '{self.metric}' — use a pattern with {{lang}} "
                           "together with bucket, and a plain metric name without it")

    def value(self, metrics: Mapping[str, float], buckets: Mapping[str, str]) -> float:
        """The objective from a validation's metrics; ``buckets`` maps the run's language codes to buckets."""
        if self.bucket is None:
            names = [self.metric]
        else:
            names = [self.metric.format(lang=code) for code, bucket in buckets.items() if bucket == self.bucket]
            if not names:
                raise XltError(f"sweep objective '{self.name}': the run has no language of bucket '{self.bucket}' "
                               f"(its languages: {', '.join(f'{c}={b}' for c, b in buckets.items())}) — choose "
                               "another bucket or add languages")
        missing = [name for name in names if name not in metrics]
        if missing:
            logged = ", ".join(sorted(metrics)) or "none"
            raise XltError(f"sweep objective '{self.name}': metric {missing[0]} was not logged by the run (logged: "
                           f"{logged}) — use one of the logged metrics")
        value = sum(float(metrics[name]) for name in names) / len(names)
        if not math.isfinite(value):
            return math.inf if self.direction == "minimize" else -math.inf
        return value


@dataclass(frozen=True)
class Objectives:
    """The study's objectives; with ``weights``, one single-objective study on their weighted sum.

    Args:
        objectives: The objectives, in the order of the study's values.
        weights: Weights of a weighted sum (one per objective, all objectives in the same direction).
    """

    objectives: Sequence[Objective]
    weights: Sequence[float] | None = None

    def check(self) -> None:
        """Names unique, every objective valid, weights matching."""
        if not self.objectives:
            raise XltError("sweep.objectives is empty — give at least one (metric and direction)")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise XltError(f"sweep.objectives: names {names} repeat — give each objective its own name")
        for objective in self.objectives:
            objective.check()
        if self.weights is not None:
            if len(self.weights) != len(self.objectives):
                raise XltError(f"sweep.weights has {len(self.weights)} values for {len(self.objectives)} objectives "
                               "— give one weight per objective")
            if len({o.direction for o in self.objectives}) > 1:
                raise XltError("sweep.weights: a weighted sum needs objectives of one direction — flip a metric's "
                               "sign or drop weights")

    @property
    def directions(self) -> list[Direction]:
        """The study's directions: one per objective, or one for the weighted sum."""
        if self.weights is not None:
            return [self.objectives[0].direction]
        return [o.direction for o in self.objectives]

    @property
    def value_names(self) -> list[str]:
        """Names of the study's values (``weighted_sum`` for a weighted study)."""
        return ["weighted_sum"] if self.weights is not None else [o.name for o in self.objectives]

    def evaluate(self, metrics: Mapping[str, float], buckets: Mapping[str, str]) -> dict[str, float]:
        """Every objective's value, and ``weighted_sum`` when weighted."""
        values = {o.name: o.value(metrics, buckets) for o in self.objectives}
        if self.weights is not None:
            values["weighted_sum"] = sum(w * v for w, v in zip(self.weights, values.values(), strict=True))
        return values

    def study_values(self, values: Mapping[str, float]) -> list[float]:
        """The values Optuna is told, in the order of :attr:`directions`."""
        return [values[name] for name in self.value_names]
