"""``xlt sweep`` and ``xlt sweep best``: the recipe of ``xlt fit`` plus a ``sweep:`` section (:class:`SweepSpec`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import optuna
from jsonargparse import ArgumentParser, Namespace

from xlt.errors import XltError
from xlt.tuning.best import best_config, choose
from xlt.tuning.study import SweepSpec, open_storage, run_sweep
from xlt.tuning.trial_run import plain_config


def spec_from_config(value: Namespace | SweepSpec) -> SweepSpec:
    """The ``sweep:`` section as objects (samplers and pruners instantiated from their ``class_path``)."""
    if isinstance(value, SweepSpec):
        return value
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--sweep", type=SweepSpec, required=True)
    return parser.instantiate_classes(parser.parse_object({"sweep": value.as_dict()})).sweep


def sweep_command(recipe: Any, sweep: SweepSpec, n_trials: int = 20) -> optuna.Study | None:
    """Run or resume an Optuna study over an ``xlt fit`` recipe: each trial one fit and one MLflow child run.

    The recipe is read as by ``xlt fit`` (repeated ``--config``; ``--trainer.*``, ``--model.*``, ``--data.*``);
    its ``sweep:`` section says what to search and optimise (see configs/sweeps/oversampling.yaml). Launch with
    torchrun or srun for distributed trials; several launches on one RDB storage share the study. ``xlt sweep best
    --config …`` then prints the chosen trial's fit config.

    Args:
        recipe: The parsed ``xlt fit`` config (the command line fills it).
        sweep: Search space, objectives, sampler, pruning, storage and seed of the study.
        n_trials: Run until the study holds this many COMPLETE, PRUNED or RUNNING trials (FAIL ones do not count).

    Returns:
        The study (on rank 0).
    """
    spec = spec_from_config(sweep)
    study = run_sweep(plain_config(recipe), spec, n_trials)
    if study is not None:
        done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        print(f"study '{spec.name}' in {spec.storage_url}: {len(study.trials)} trials, {done} complete "
              f"(optuna-dashboard {spec.storage_url})", file=sys.stderr)
    return study


def best_command(recipe: Any, sweep: SweepSpec, objective: str | None = None,
               limits: dict[str, float] | None = None) -> str:
    """Print the chosen trial's full fit config as YAML (``xlt sweep best … > best.yaml; xlt fit --config
    best.yaml``).

    Among completed trials (the Pareto front of a multi-objective study) within ``limits``, the best on
    ``objective``.

    Args:
        recipe: The parsed ``xlt fit`` config of the sweep (the command line fills it).
        sweep: The sweep's settings (its name and storage locate the study).
        objective: The study value to optimise (default: the first objective).
        limits: Objective name → bound: an upper bound on a minimised objective, a lower bound on a maximised
            one, e.g. ``{high_loss: 3.2}``.

    Returns:
        The YAML text.
    """
    spec = spec_from_config(sweep)
    spec.objective_set.check()
    study = _load(spec)
    text = best_config(choose(study, spec.objective_set, objective, limits), study, spec.objective_set.value_names)
    sys.stdout.write(text)
    return text


def _load(spec: SweepSpec) -> optuna.Study:
    """The sweep's existing study (nothing is created)."""
    url = spec.storage_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise XltError(f"no study '{spec.name}': {url} does not exist — run xlt sweep with this config first")
    try:
        return optuna.load_study(study_name=spec.name, storage=open_storage(spec, None))
    except KeyError as exc:
        raise XltError(f"no study '{spec.name}' in {url} — run xlt sweep with this config first") from exc
