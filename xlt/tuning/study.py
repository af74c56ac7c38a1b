"""A sweep's study: its settings (:class:`SweepSpec`), RDB storage with heartbeats, create-or-resume, and the
trial loop — rank 0 asks the study and broadcasts each trial's config, every rank runs the same fit.

Resuming: a worker counts the study's COMPLETE and PRUNED trials plus those RUNNING elsewhere and stops once
they reach ``n_trials``, so rerunning after a crash continues up to the requested count and several workers
share it (two workers finishing at the same moment may add one trial each beyond it; FAIL trials never count).
A killed worker's trial is found by its stale heartbeat when any worker next starts a trial and set to FAIL (or
retried, ``max_retry``). Seeds: trial ``n`` fits with ``seed_everything = derive_seed("sweep-trial", seed, n)
mod 2**31``; its sampler draws with ``derive_seed("sweep-sampler", seed, n)`` (:mod:`xlt.tuning.sampler`).

Distributed trials: launched by ``torchrun``/``srun`` (``WORLD_SIZE`` > 1 in the environment), all ranks run
``xlt sweep``; the default process group is created here (gloo on CPU, NCCL for CUDA tensors) and Lightning's
strategy reuses it. Only rank 0 talks to the storage and MLflow. Lightning spawning the processes itself
(``trainer.devices`` > 1 without a launcher) is refused: its children would re-run ``xlt sweep`` and ask the study.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from optuna.trial import TrialState

from xlt.errors import XltError
from xlt.seeding import derive_seed
from xlt.tuning.objectives import Objective, Objectives
from xlt.tuning.pruning import DominatedPruner
from xlt.tuning.sampler import SamplerSpec, TrialSeededSampler
from xlt.tuning.space import Range, Simplex, apply, check_space, examples, suggest
from xlt.tuning.tracking import (
    StaleTrialHandler,
    log_study,
    parent_run,
    tag_trial_run,
)
from xlt.tuning.trial_run import (
    CONFIG_ATTR,
    ERROR_ATTR,
    MLFLOW_RUN_ATTR,
    TRACKING_LOGGER,
    TrialJudge,
    check_fit_config,
    run_config,
    run_trial,
)

SCHEMES = ("sqlite", "postgresql", "mysql")


def _without_user_error_traceback(record: logging.LogRecord) -> bool:
    """Optuna logs a failed trial's exception with its traceback; for an :class:`XltError` (a user mistake, whose
    one-line message the CLI prints) the warning keeps the message and drops the traceback."""
    if record.exc_info and isinstance(record.exc_info[1], XltError):
        record.exc_info = None
    return True


logging.getLogger("optuna.study._optimize").addFilter(_without_user_error_traceback)


@dataclass
class SweepSpec:
    """What to search, what to optimise, where the study lives.

    Args:
        name: Study name (in the storage and as the MLflow parent run's name).
        space: Config path (as in ``xlt fit --print_config``) → its range, e.g. ``data.init_args.alpha``.
        simplices: Groups of config paths set together to a point on the simplex.
        objectives: The objectives (several: a multi-objective study with a Pareto front).
        weights: Fold the objectives into one weighted sum (a single-objective study).
        sampler: Optuna sampler class, e.g. ``optuna.samplers.NSGAIISampler``. Made afresh per trial, seeded
            from ``seed`` and the trial's number (:mod:`xlt.tuning.sampler`).
        sampler_args: The sampler's keyword arguments (not ``seed``), e.g. ``{population_size: 8}``.
        pruner: Optuna pruner for single-objective studies (``optuna.pruners.MedianPruner``, …); default none.
        multi_objective_pruner: xlt's rule for multi-objective studies (Optuna has none); default none.
        storage: RDB URL (``sqlite:///…``, ``postgresql://…``, ``mysql://…``); default
            ``sqlite:///runs/sweeps/<name>.db``.
        seed: Study seed: the trials' fit seeds and sampler seeds derive from it.
        heartbeat_interval: Seconds between a running trial's heartbeats.
        grace_period: Seconds without a heartbeat after which a trial counts as dead (default 2 × interval).
        max_retry: Run a dead worker's trial again (same parameters) up to this many times; 0 leaves it FAIL.
    """

    objectives: list[Objective]
    space: dict[str, Range] = field(default_factory=dict)
    simplices: list[Simplex] = field(default_factory=list)
    name: str = "sweep"
    weights: list[float] | None = None
    sampler: str = "optuna.samplers.TPESampler"
    sampler_args: dict[str, Any] = field(default_factory=dict)
    pruner: optuna.pruners.BasePruner | None = None
    multi_objective_pruner: DominatedPruner | None = None
    storage: str | None = None
    seed: int = 0
    heartbeat_interval: int = 60
    grace_period: int | None = None
    max_retry: int = 0

    @property
    def objective_set(self) -> Objectives:
        return Objectives(self.objectives, self.weights)

    @property
    def sampler_spec(self) -> SamplerSpec:
        return SamplerSpec(self.sampler, self.sampler_args)

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///runs/sweeps/{self.name}.db"


def trial_seed(seed: int, number: int) -> int:
    """``seed_everything`` of trial ``number``."""
    return derive_seed("sweep-trial", seed, number) % 2**31


def check_storage_url(url: str) -> None:
    """A well-formed URL of a supported database; a SQLite file's directory must exist (the default's is made)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise XltError(f"sweep.storage '{url}' is not a database URL — use e.g. sqlite:///runs/sweeps/x.db or "
                       "postgresql://user@host/db") from exc
    if parsed.get_backend_name() not in SCHEMES:
        raise XltError(f"sweep.storage '{url}': unsupported database '{parsed.get_backend_name()}' — use "
                       f"{', '.join(SCHEMES)}")
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise XltError(f"sweep.storage '{url}' names no SQLite file — use sqlite:///path/to/study.db")


def _shown_url(url: str) -> str:
    """The storage URL without its password (for tags and messages)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def open_storage(spec: SweepSpec, tracking_uri: str | None) -> optuna.storages.RDBStorage:
    """The RDB storage with heartbeats; an unreachable server or unwritable file is an :class:`XltError`."""
    from sqlalchemy.exc import SQLAlchemyError

    url = spec.storage_url
    check_storage_url(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        if spec.storage is None:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if not Path(url.removeprefix("sqlite:///")).parent.is_dir():
            raise XltError(f"sweep.storage '{url}': directory {Path(url.removeprefix('sqlite:///')).parent} does "
                           "not exist — create it or choose another path")
        engine_kwargs = {"connect_args": {"timeout": 60}}  # several workers on one file wait for its lock
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    def connect() -> optuna.storages.RDBStorage:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5; they are why we use RDB storage
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=spec.heartbeat_interval,
                grace_period=spec.grace_period,
                heartbeat_stale_trial_callback=StaleTrialHandler(tracking_uri, spec.max_retry))

    try:
        try:
            return connect()
        except (IntegrityError, ProgrammingError):  # workers started together created the same tables at once
            time.sleep(2.0)
            return connect()
    except ImportError as exc:  # the database's driver (psycopg for PostgreSQL: pip install 'xlt[postgres]')
        raise XltError(f"sweep.storage '{_shown_url(url)}' needs the Python driver {exc.name} — install it (for "
                       "PostgreSQL: pip install 'xlt[postgres]')") from exc
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise XltError(f"sweep.storage '{_shown_url(url)}' cannot be opened ({first}) — check the server, user and "
                       "database") from exc


def create_or_load(spec: SweepSpec, storage: optuna.storages.RDBStorage) -> optuna.Study:
    """The study, created when missing (a study made beforehand, e.g. to enqueue trials, is used as it is)."""
    directions = spec.objective_set.directions
    sampler = TrialSeededSampler(spec.sampler_spec, spec.seed)
    try:
        study = optuna.create_study(storage=storage, study_name=spec.name, directions=directions, sampler=sampler,
                                    pruner=spec.pruner, load_if_exists=False)
        with warnings.catch_warnings():  # "experimental" since Optuna 3.2; the dashboard and plots show the names
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(spec.objective_set.value_names)
        return study
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=spec.pruner)
    existing = [d.name.lower() for d in study.directions]
    if existing != directions:
        raise XltError(f"study '{spec.name}' in {spec.storage_url} optimises {existing}, this sweep {directions} — "
                       "give the sweep another name")
    return study


def counted(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials``: finished (COMPLETE, PRUNED) or RUNNING."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)))


def _tracking(config: dict[str, Any]) -> tuple[str, str] | None:
    """The recipe's MLflow store and experiment when it logs with xlt's TrackingLogger, else ``None``."""
    from xlt.mlflow_store import default_tracking_uri

    logger = config.get("trainer", {}).get("logger")
    if not isinstance(logger, dict) or logger.get("class_path") != TRACKING_LOGGER:
        return None
    init = logger.get("init_args") or {}
    return init.get("tracking_uri") or default_tracking_uri(), init.get("experiment_name") or "xlt"


def _world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def validate(config: dict[str, Any], spec: SweepSpec, n_trials: int) -> None:
    """Every check that needs no storage: count, space, objectives, the fit config with the space's values, the
    launch. Runs before any study, store or file exists."""
    if n_trials <= 0:
        raise XltError(f"n_trials {n_trials} must be > 0 — the study runs until it has that many trials")
    check_space(spec.space, spec.simplices)
    spec.objective_set.check()
    spec.sampler_spec.make(0)
    values = examples(spec.space, spec.simplices)
    try:
        check_fit_config(apply(config, values), "sweep.space")
    except XltError:  # name the path at fault: check them one by one (costs a parse each, on failure only)
        for path, value in values.items():
            check_fit_config(apply(config, {path: value}), f"sweep.space: '{path}'")
        raise
    trainer = config.get("trainer", {})
    devices = trainer.get("devices")
    processes = (devices if isinstance(devices, int) else 1) * int(trainer.get("num_nodes") or 1)
    if processes > 1 and _world()[1] == 1:
        raise XltError(f"trainer.devices × num_nodes = {processes} processes, but xlt sweep was not launched by "
                       "torchrun or srun — launch it like a distributed xlt fit (torchrun --nproc-per-node "
                       f"{devices} -m xlt sweep …)")
    check_storage_url(spec.storage_url)


def run_sweep(config: dict[str, Any], spec: SweepSpec, n_trials: int) -> optuna.Study | None:
    """Run or resume the study until it holds ``n_trials`` counted trials; returns it on rank 0."""
    validate(config, spec, n_trials)
    rank, world = _world()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    if rank != 0:
        _follow()
        return None
    try:
        return _lead(config, spec, n_trials)
    finally:
        _broadcast(None)  # the other ranks stop


def _broadcast(message: dict[str, Any] | None) -> dict[str, Any] | None:
    if not torch.distributed.is_initialized():
        return message
    box = [message]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _follow() -> None:
    """Ranks > 0: run every trial rank 0 announces, until it says stop."""
    while (message := _broadcast(None)) is not None:
        run_trial(message["config"], message["number"], None)


def _lead(config: dict[str, Any], spec: SweepSpec, n_trials: int) -> optuna.Study:
    from mlflow.tracking import MlflowClient

    tracking = _tracking(config)
    storage = open_storage(spec, tracking[0] if tracking else None)
    study = create_or_load(spec, storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    client = MlflowClient(tracking[0]) if tracking else None
    parent = None
    if client is not None and tracking is not None:
        parent = parent_run(client, *tracking, study, _shown_url(spec.storage_url))
        client.update_run(parent, status="RUNNING")
    objectives = spec.objective_set

    def objective(trial: optuna.Trial) -> list[float]:
        values = suggest(trial, spec.space, spec.simplices)
        fit_config = apply(config, values)
        fit_config["seed_everything"] = trial_seed(spec.seed, trial.number)
        trial.set_user_attr(CONFIG_ATTR, yaml.safe_dump(fit_config, sort_keys=False))
        message = {"number": trial.number, "config": run_config(fit_config, trial.number, spec.name, parent)}
        _broadcast(message)
        judge = TrialJudge(trial, objectives, spec.multi_objective_pruner)
        try:
            _, pruning = run_trial(message["config"], trial.number, judge)
            if judge.values is None:
                raise XltError(f"trial {trial.number} ran no validation, so it has no objective values — set "
                               "trainer.val_check_interval so that validation runs before max_steps")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr(ERROR_ATTR, error[:5000])
            if client is not None:
                tag_trial_run(client, trial.user_attrs.get(MLFLOW_RUN_ATTR), "FAIL", error)
            raise
        state = "PRUNED" if pruning.pruned_at is not None else "COMPLETE"
        if client is not None:
            tag_trial_run(client, trial.user_attrs.get(MLFLOW_RUN_ATTR), state)
        if pruning.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at step {pruning.pruned_at}")
        return objectives.study_values(judge.values)

    def stop_when_counted(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        if counted(study) >= n_trials:
            study.stop()

    try:
        if counted(study) < n_trials:
            study.optimize(objective, callbacks=[stop_when_counted])
    finally:
        if client is not None and parent is not None:
            log_study(client, parent, study, objectives.value_names)
            client.update_run(parent, status="FINISHED")
    return study
