"""One trial = one ``xlt fit``: the recipe with the trial's values at their config paths, run through
:class:`~xlt.lightning_cli.XltCLI` with a pruning callback, logged as an MLflow child run of the study's run.

The trial's fit config (recipe + values + ``seed_everything``) is what ``xlt sweep best`` prints; the config the
fit runs adds only where it logs (the MLflow child run: run name, ``mlflow.parentRunId`` and trial tags) and its
own ``default_root_dir`` (``<recipe root>/trial_<number>``), and is logged as the child run's ``config.yaml``.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import yaml
from jsonargparse import ArgumentError, Namespace
from lightning.pytorch import Trainer

from xlt.atomic import atomic_file
from xlt.callbacks.pruning import TrialPruning
from xlt.errors import XltError
from xlt.lightning_cli import XltCLI
from xlt.tuning.objectives import Objectives
from xlt.tuning.pruning import DominatedPruner, intermediate_key

TRACKING_LOGGER = "xlt.callbacks.tracking.TrackingLogger"
MLFLOW_RUN_ATTR = "xlt.mlflow_run_id"
CONFIG_ATTR = "xlt.fit_config"
ERROR_ATTR = "xlt.error"


def plain_config(recipe: Namespace) -> dict[str, Any]:
    """The parsed recipe as the plain mapping an ``xlt fit --config`` file holds (the list of files it came
    from dropped)."""
    config = recipe.clone().as_dict()
    config.pop("config", None)
    return config


@contextmanager
def _own_arguments() -> Iterator[None]:
    """LightningCLI warns when given arguments while ``sys.argv`` holds others (here: ``xlt sweep …``'s)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python")
        yield


class _FitConfigCheck(XltCLI):
    """Parses a fit config like ``xlt fit`` and runs the preflight checks; instantiates and writes nothing."""

    def _set_seed(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass

    def after_instantiate_classes(self) -> None:
        pass


def check_fit_config(config: Mapping[str, Any], what: str) -> None:
    """Raise :class:`XltError` unless ``xlt fit`` accepts ``config`` (types, unknown keys, the models' and data
    modules' own checks); ``what`` names the source in the message (e.g. a search-space path)."""
    try:
        with _own_arguments():
            _FitConfigCheck(["--config", yaml.safe_dump(dict(config))], run=False)
    except ArgumentError as exc:
        detail = " ".join(str(exc).split())
        raise XltError(f"{what}: xlt fit rejects it ({detail[:300]}) — use a key that xlt fit --print_config "
                       "shows, with a value of its type") from exc


class TrialJudge:
    """Rank 0's view of a running trial: computes the objectives at each validation, stores them as the trial's
    intermediate values, logs ``sweep/<objective>`` to the run, and decides on pruning.

    Args:
        trial: The Optuna trial.
        objectives: The study's objectives.
        multi_objective_pruner: The rule for multi-objective studies (``None``: no pruning there); single-objective
            studies use the study's Optuna pruner.
    """

    def __init__(self, trial: optuna.Trial, objectives: Objectives,
                 multi_objective_pruner: DominatedPruner | None) -> None:
        self.trial, self.objectives, self.multi_objective_pruner = trial, objectives, multi_objective_pruner
        self.values: dict[str, float] | None = None  # the last validation's objectives
        self.step: int | None = None

    def __call__(self, step: int, trainer: Trainer) -> bool:
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
        datamodule = trainer.datamodule
        panel = getattr(datamodule, "panel", None)
        buckets = {code: panel.get(code).bucket for code in getattr(datamodule, "language_codes", [])} if panel else {}
        self.values, self.step = self.objectives.evaluate(metrics, buckets), step
        for logger in trainer.loggers:
            logger.log_metrics({f"sweep/{name}": value for name, value in self.values.items()}, step=step)
        run_id = getattr(trainer.logger, "run_id", None)
        if run_id is not None and MLFLOW_RUN_ATTR not in self.trial.user_attrs:
            self.trial.set_user_attr(MLFLOW_RUN_ATTR, run_id)
        vector = self.objectives.study_values(self.values)
        self.trial.set_user_attr(intermediate_key(step), vector)
        if len(vector) == 1:
            self.trial.report(vector[0] if math.isfinite(vector[0]) else float("inf"), step)
            return self.trial.should_prune()
        if self.multi_objective_pruner is None:
            return False
        return self.multi_objective_pruner.should_prune(self.trial.study, self.trial.number, step, vector)


class _TrialCLI(XltCLI):
    """``xlt fit`` with the trial's pruning callback added to the trainer."""

    def __init__(self, args: list[str], pruning: TrialPruning) -> None:
        self.pruning = pruning
        super().__init__(args)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks.append(self.pruning)
        return trainer


def trial_root(config: Mapping[str, Any], number: int) -> Path:
    """The trial's ``default_root_dir``: ``<recipe's default_root_dir>/trial_<number>``."""
    return Path(config.get("trainer", {}).get("default_root_dir") or ".") / f"trial_{number:04d}"


def run_config(fit_config: Mapping[str, Any], number: int, study_name: str,
               parent_run_id: str | None) -> dict[str, Any]:
    """The config the trial's fit runs: ``fit_config`` with the trial's root directory and, when the recipe logs
    to MLflow with xlt's TrackingLogger, the child-run name and tags."""
    config = copy.deepcopy(dict(fit_config))
    trainer = config.setdefault("trainer", {})
    trainer["default_root_dir"] = str(trial_root(fit_config, number))
    logger = trainer.get("logger")
    if isinstance(logger, dict) and logger.get("class_path") == TRACKING_LOGGER:
        init = logger.setdefault("init_args", {})
        init["run_name"] = f"{study_name}-trial-{number:04d}"
        tags = {**(init.get("tags") or {}), "xlt.study": study_name, "xlt.trial": str(number)}
        if parent_run_id is not None:
            tags["mlflow.parentRunId"] = parent_run_id
        init["tags"] = tags
    return config


def run_trial(config: Mapping[str, Any], number: int, judge: TrialJudge | None) -> tuple[Trainer, TrialPruning]:
    """Run the fit of ``config`` (see :func:`run_config`) on this process; every rank calls this, rank 0 with the
    judge. Its config file is written to ``<trial root>/config.yaml``."""
    path = Path(config["trainer"]["default_root_dir"]) / "config.yaml"
    with atomic_file(path) as handle:
        yaml.safe_dump(dict(config), handle, sort_keys=False)
    pruning = TrialPruning(judge)
    with _own_arguments():
        cli = _TrialCLI(["fit", "--config", str(path)], pruning)
    return cli.trainer, pruning
