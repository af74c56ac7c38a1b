"""Pruning decisions for a trial at a validation step.

Single-objective studies use Optuna's own pruners (``MedianPruner``, ``HyperbandPruner``, …) through
``trial.report(value, global_step)`` / ``trial.should_prune()``. Optuna has none for multi-objective studies
(``report``/``should_prune`` raise there), so xlt states its own rule, :class:`DominatedPruner`:

    A trial is pruned at validation step s (s ≥ ``warmup_steps``) when its vector of objective values at s is
    dominated by the vectors at the same step s of at least ``k`` completed trials — dominated meaning the other
    trial is at least as good on every objective and strictly better on one (per each objective's direction).

Intermediate vectors are stored per trial as the user attribute ``xlt.intermediate.<step>`` (a list of floats), so
every worker sharing the storage sees them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

INTERMEDIATE_PREFIX = "xlt.intermediate."


def intermediate_key(step: int) -> str:
    """The user attribute holding a trial's objective vector at ``step``."""
    return f"{INTERMEDIATE_PREFIX}{step}"


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """Whether ``a`` dominates ``b``: no worse on every objective, strictly better on at least one."""
    sign = [1.0 if d == "minimize" else -1.0 for d in directions]
    no_worse = all(s * x <= s * y for s, x, y in zip(sign, a, b, strict=True))
    better = any(s * x < s * y for s, x, y in zip(sign, a, b, strict=True))
    return no_worse and better


@dataclass(frozen=True)
class DominatedPruner:
    """Multi-objective pruning rule: prune a trial whose objective vector at a step is dominated by at least ``k``
    completed trials at the same step.

    Args:
        k: How many completed trials must dominate the trial (1 = any; larger is more cautious).
        warmup_steps: No pruning at validation steps below this ``global_step``.
    """

    k: int = 2
    warmup_steps: int = 0

    def should_prune(self, study: optuna.Study, trial_number: int, step: int, values: Sequence[float]) -> bool:
        """Decide for trial ``trial_number`` whose objective vector at ``step`` is ``values``."""
        if step < self.warmup_steps:
            return False
        key = intermediate_key(step)
        directions = [d.name.lower() for d in study.directions]
        others = [t.user_attrs[key] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if t.number != trial_number and key in t.user_attrs]
        return sum(dominates(other, values, directions) for other in others) >= self.k
