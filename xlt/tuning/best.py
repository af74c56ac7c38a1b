"""``xlt sweep best``: the chosen trial's fit config, as YAML that ``xlt fit --config`` accepts.

The rule: among the study's COMPLETE trials — for a multi-objective study, those on its Pareto front — keep the
ones within every ``limits`` bound (an upper bound on a minimised objective, a lower bound on a maximised one),
then take the best on ``objective`` (default: the study's first value). For the paper's trade-off: the lowest
tail-bucket loss whose high-bucket loss stays under a ceiling (``--limits '{high_loss: 3.2}'``).
"""

from __future__ import annotations

from collections.abc import Mapping

import optuna
from optuna.trial import FrozenTrial, TrialState

from xlt.errors import XltError
from xlt.tuning.objectives import Objectives
from xlt.tuning.trial_run import CONFIG_ATTR


def choose(study: optuna.Study, objectives: Objectives, objective: str | None = None,
           limits: Mapping[str, float] | None = None) -> FrozenTrial:
    """The trial the rule above picks; :class:`XltError` when none qualifies."""
    names = objectives.value_names
    objective = objective or names[0]
    limits = dict(limits or {})
    for name in [objective, *limits]:
        if name not in names:
            raise XltError(f"'{name}' is not a value of study '{study.study_name}' — use one of {', '.join(names)}")
    directions = [d.name.lower() for d in study.directions]
    candidates = study.best_trials if len(directions) > 1 else \
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not candidates:
        raise XltError(f"study '{study.study_name}' has no completed trial yet — run xlt sweep first")

    def within(trial: FrozenTrial) -> bool:
        for name, bound in limits.items():
            i = names.index(name)
            value = trial.values[i]
            if (value > bound) if directions[i] == "minimize" else (value < bound):
                return False
        return True

    kept = [t for t in candidates if within(t)]
    if not kept:
        shown = "; ".join(f"trial {t.number}: " + ", ".join(f"{n}={v:.4g}" for n, v in zip(names, t.values,
                                                                                              strict=True))
                          for t in candidates)
        raise XltError(f"no trial of study '{study.study_name}' meets limits {limits} ({shown}) — loosen them")
    i = names.index(objective)
    sign = 1.0 if directions[i] == "minimize" else -1.0
    return min(kept, key=lambda t: (sign * t.values[i], t.number))


def best_config(trial: FrozenTrial, study: optuna.Study, names: list[str]) -> str:
    """The trial's fit config YAML, headed by a comment naming the study, the trial and its values."""
    values = ", ".join(f"{n}={v:.6g}" for n, v in zip(names, trial.values, strict=True))
    return f"# xlt sweep best: study {study.study_name}, trial {trial.number} ({values})\n" + \
        str(trial.user_attrs[CONFIG_ATTR])
