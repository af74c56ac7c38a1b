"""The multi-objective pruning rule: dominated by at least k completed trials at the same step."""

from __future__ import annotations

import optuna
import pytest

from xlt.tuning.pruning import DominatedPruner, dominates, intermediate_key


def test_dominates_per_direction() -> None:
    assert dominates([1.0, 1.0], [2.0, 1.0], ["minimize", "minimize"])
    assert not dominates([1.0, 1.0], [1.0, 1.0], ["minimize", "minimize"])  # equal: not strictly better
    assert not dominates([1.0, 3.0], [2.0, 2.0], ["minimize", "minimize"])  # a trade-off
    assert dominates([1.0, 3.0], [2.0, 2.0], ["minimize", "maximize"])


def _study(vectors_at_step_10: list[list[float]]) -> optuna.Study:
    study = optuna.create_study(directions=["minimize", "minimize"])
    for vector in vectors_at_step_10:
        trial = study.ask()
        trial.set_user_attr(intermediate_key(10), vector)
        trial.set_user_attr(intermediate_key(20), [0.0, 0.0])
        study.tell(trial, [0.0, 0.0])
    running = study.ask()
    running.set_user_attr(intermediate_key(10), [0.0, 0.0])  # RUNNING trials never count
    return study


@pytest.mark.parametrize(("k", "vector", "pruned"), [
    (1, [3.0, 3.0], True),    # dominated by all three
    (3, [3.0, 3.0], True),
    (4, [3.0, 3.0], False),   # only three completed trials
    (2, [1.5, 2.5], True),    # dominated by [1, 2] and [1, 1]
    (3, [1.5, 2.5], False),   # [2, 1] trades off against it
    (1, [0.5, 0.5], False),   # better than all
])
def test_pruned_when_dominated_by_at_least_k_completed_trials_at_that_step(k: int, vector: list[float],
                                                                            pruned: bool) -> None:
    study = _study([[1.0, 2.0], [2.0, 1.0], [1.0, 1.0]])
    assert DominatedPruner(k=k).should_prune(study, trial_number=99, step=10, values=vector) is pruned


def test_other_steps_and_warmup_do_not_count() -> None:
    study = _study([[1.0, 1.0]])
    assert not DominatedPruner(k=1).should_prune(study, 99, step=30, values=[9.0, 9.0])  # nobody reported at 30
    assert not DominatedPruner(k=1, warmup_steps=11).should_prune(study, 99, step=10, values=[9.0, 9.0])
    assert DominatedPruner(k=1, warmup_steps=10).should_prune(study, 99, step=10, values=[9.0, 9.0])
