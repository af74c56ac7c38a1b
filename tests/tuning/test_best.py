"""xlt sweep best's rule on planted values: best on the chosen objective among Pareto trials within the limits."""

from __future__ import annotations

import optuna
import pytest

from xlt.errors import XltError
from xlt.tuning.best import best_config, choose
from xlt.tuning.objectives import Objective, Objectives
from xlt.tuning.trial_run import CONFIG_ATTR

OBJECTIVES = Objectives([Objective(name="tail_loss", metric="t"), Objective(name="high_loss", metric="h")])
# (tail, high): trial 3 is dominated by trial 1; the front is 0, 1, 2.
PLANTED = [(3.0, 1.0), (2.0, 2.0), (1.0, 4.0), (2.5, 2.5)]


@pytest.fixture
def study() -> optuna.Study:
    study = optuna.create_study(study_name="planted", directions=["minimize", "minimize"])
    for number, values in enumerate(PLANTED):
        trial = study.ask()
        trial.set_user_attr(CONFIG_ATTR, f"seed_everything: {number}\n")
        study.tell(trial, list(values))
    return study


@pytest.mark.parametrize(("objective", "limits", "expected"), [
    (None, None, 2),                        # lowest tail loss
    (None, {"high_loss": 3.0}, 1),          # lowest tail loss with high loss <= 3
    (None, {"high_loss": 1.5}, 0),
    ("high_loss", None, 0),
    ("high_loss", {"tail_loss": 2.2}, 1),   # trial 3 (2.5, 2.5) is off the front, never chosen
])
def test_rule(study: optuna.Study, objective: str | None, limits: dict[str, float] | None, expected: int) -> None:
    assert choose(study, OBJECTIVES, objective, limits).number == expected


def test_no_trial_within_limits_or_unknown_name_is_a_user_error(study: optuna.Study) -> None:
    with pytest.raises(XltError, match=r"no trial .* meets limits \{'high_loss': 0.5\}.*trial 2: tail_loss=1"):
        choose(study, OBJECTIVES, None, {"high_loss": 0.5})
    with pytest.raises(XltError, match="'acc' is not a value of study 'planted'"):
        choose(study, OBJECTIVES, "acc")


def test_output_is_the_trials_config_with_a_header(study: optuna.Study) -> None:
    trial = choose(study, OBJECTIVES)
    assert best_config(trial, study, OBJECTIVES.value_names) == \
        "# xlt sweep best: study planted, trial 2 (tail_loss=1, high_loss=4)\nseed_everything: 2\n"
