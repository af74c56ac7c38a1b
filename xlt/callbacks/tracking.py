"""MLflow tracking: the default logger, the resolved config and git commit as artifacts, realised language mix,
and one MLflow run per training job: a fit resumed from a checkpoint continues the checkpoint's run."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol, get_filesystem
from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_only, rank_zero_warn

from xlt.mlflow_store import (
    artifact_location,
    canonical_tracking_uri,
    default_tracking_uri,
    get_or_create_experiment,
    stage_run,
    ui_address,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

CHECKPOINT_KEY = "xlt_mlflow_runs"
"""Checkpoint entry naming the MLflow run(s) that trained it: a list of plain dicts (``tracking_uri``,
``experiment``, ``experiment_id``, ``run_id``), so that ``torch.load(..., weights_only=True)`` reads it."""


class TrackingLogger(MLFlowLogger):
    """Lightning's ``MLFlowLogger`` with xlt's defaults: a real SQLite store, artifacts beside it, experiments
    tagged for MLflow's model-training view, and resumed fits continuing their run.

    Args:
        experiment_name: MLflow experiment that groups comparable runs.
        run_name: name shown in the MLflow UI; defaults to MLflow's generated name.
        tracking_uri: MLflow store; ``None`` uses ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``.
        tags: extra run tags (e.g. ``{vocab: d, scale: cpu_tiny}``) to filter runs in reports.
        run_id: continue an existing MLflow run instead of creating one.
    """

    def __init__(
        self,
        experiment_name: str = "xlt",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> None:
        uri = tracking_uri or default_tracking_uri()
        experiment_name, tags = stage_run(experiment_name, tags)  # inside `xlt experiment run`: its experiment
        super().__init__(
            experiment_name=experiment_name,
            run_name=run_name,
            tracking_uri=uri,
            tags=tags,
            artifact_location=artifact_location(uri, experiment_name),
            run_id=run_id,
            log_model=False,
        )
        self.continued = run_id is not None  # logging into a run that already existed
        self.resumed_step: int | None = None  # global step of the checkpoint a continued fit resumed from
        self._resume: tuple[list[dict[str, Any]], int | None, str] | None = None

    def resume_from(self, runs: list[dict[str, Any]], step: int | None, checkpoint: str) -> None:
        """Continue the run of ``runs`` (a checkpoint's :data:`CHECKPOINT_KEY`) that lives in this logger's store
        and experiment, once the run is first needed; otherwise a new run starts, with a warning. Does nothing
        when a run is already open or a ``run_id`` was given."""
        if not self._initialized and self._run_id is None:
            self._resume = (list(runs), step, checkpoint)

    @property
    @rank_zero_experiment
    def experiment(self) -> MlflowClient:
        if self._initialized:
            return self._mlflow_client
        if self._resume is not None:
            self._pick_resumed_run(*self._resume)
            self._resume = None
        if self._run_id is None and self._experiment_id is None:
            self._experiment_id = get_or_create_experiment(self._mlflow_client, self._experiment_name,
                                                           self._tracking_uri)
        client = super().experiment
        if self.continued and client.get_run(self._run_id).info.status != "RUNNING":
            client.update_run(self._run_id, status="RUNNING")  # a killed run stays RUNNING; a crashed one FAILED
        rank_zero_info(f"MLflow: run {self._run_id} of experiment {self._experiment_id} in {self._tracking_uri} "
                       f"(mlflow ui: {ui_address(self._experiment_id, self._run_id)})")
        return client

    def _pick_resumed_run(self, runs: list[dict[str, Any]], step: int | None, checkpoint: str) -> None:
        from mlflow.exceptions import MlflowException

        uri = canonical_tracking_uri(self._tracking_uri)
        if not runs:
            rank_zero_warn(f"checkpoint {checkpoint} names no MLflow run (written without MLflow or by an older "
                           "xlt): the resumed fit logs to a new run")
            return
        here = [entry for entry in runs if entry.get("tracking_uri") == uri]
        if not here:
            rank_zero_warn(f"checkpoint {checkpoint} was tracked in MLflow run {runs[0].get('run_id')} of "
                           f"{runs[0].get('tracking_uri')}, but this fit logs to {uri}: starting a new run")
            return
        entry = here[0]
        run_id = str(entry.get("run_id"))
        try:
            run = self._mlflow_client.get_run(run_id)
        except MlflowException:
            rank_zero_warn(f"checkpoint {checkpoint} was tracked in MLflow run {run_id}, which is not in {uri}: "
                           "starting a new run")
            return
        experiment = self._mlflow_client.get_experiment_by_name(self._experiment_name)
        if run.info.lifecycle_stage != "active":
            rank_zero_warn(f"checkpoint {checkpoint} was tracked in MLflow run {run_id}, which is deleted: "
                           "starting a new run")
            return
        if experiment is None or experiment.experiment_id != run.info.experiment_id:
            rank_zero_warn(f"checkpoint {checkpoint} was tracked in MLflow run {run_id} of experiment "
                           f"'{entry.get('experiment')}', but this fit logs to experiment '{self._experiment_name}'"
                           ": starting a new run")
            return
        self._run_id, self.continued, self.resumed_step = run_id, True, step
        rank_zero_info(f"MLflow: continuing run {run_id} ({run.info.run_name}, {run.info.status}) from the "
                       f"checkpoint's step {step}")

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Any) -> None:
        """As ``MLFlowLogger``'s, except that a continued run keeps its parameters: MLflow parameters cannot change,
        so a resumed fit logs only parameters the run does not have yet and warns about changed values."""
        if self.continued:
            flat = _flatten_dict(_convert_params(params))
            existing = self.experiment.get_run(self.run_id).data.params
            changed = sorted(k for k, v in flat.items() if k in existing and existing[k] != str(v)[:250])
            if changed:
                rank_zero_warn(f"resumed fit: {len(changed)} parameter(s) differ from MLflow run {self.run_id}'s and "
                               f"keep the run's values (MLflow parameters cannot change): {', '.join(changed)}")
            params = {k: v for k, v in flat.items() if k not in existing}
            if not params:
                return
        super().log_hyperparams(params)


def checkpoint_runs(trainer: Trainer) -> list[dict[str, Any]]:
    """The MLflow runs this trainer logs to, as stored in its checkpoints (only opened runs; none off rank 0)."""
    return [
        {"tracking_uri": canonical_tracking_uri(logger._tracking_uri), "experiment": logger._experiment_name,
         "experiment_id": str(logger._experiment_id), "run_id": str(logger._run_id)}
        for logger in mlflow_loggers(trainer) if logger._initialized and logger._run_id is not None
    ]


def resolve_checkpoint(trainer: Trainer, ckpt_path: str | os.PathLike[str] | None) -> str | None:
    """The checkpoint a fit with ``ckpt_path`` resumes from, as Lightning will choose it (``last``: the newest
    ``last*.ckpt`` of the ModelCheckpoint directories), without opening a logger's run; ``None`` when it starts
    fresh or the choice depends on the run (``best``, ``hpc``, a ModelCheckpoint without ``dirpath``)."""
    if ckpt_path is None:
        return None
    ckpt_path = str(ckpt_path)
    if ckpt_path in ("best", "hpc") or ckpt_path.startswith("registry"):
        return None
    if ckpt_path != "last":
        return ckpt_path
    from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint

    candidates = {cb.ckpt_path for cb in trainer.callbacks if isinstance(cb, OnExceptionCheckpoint)}
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is not None:  # else the dir names the run
            candidates |= callback._find_last_checkpoints(trainer)
    found = {path: get_filesystem(path).modified(path) for path in candidates if get_filesystem(path).exists(path)}
    return max(found, key=found.__getitem__) if found else None


def checkpoint_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's dictionary without trusting it (``weights_only=True``): a single file (tensors memory-mapped,
    not read) or, for a sharded FSDP2/ModelParallel checkpoint directory, its ``meta.pt``."""
    path = str(path)
    fs = get_filesystem(path)
    if fs.isdir(path):
        path = os.path.join(path, "meta.pt")
    if _is_local_file_protocol(path):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # not in the zip format that mmap needs
            return torch.load(path, map_location="cpu", weights_only=True)
    with fs.open(path, "rb") as f:
        return torch.load(f, map_location="cpu", weights_only=True)


def continue_checkpoint_runs(trainer: Trainer, ckpt_path: str | os.PathLike[str] | None) -> None:
    """Before ``trainer.fit(ckpt_path=...)``: every :class:`TrackingLogger` continues the MLflow run recorded in
    the checkpoint (same run id, metrics continuing at their global steps) when that run is in the logger's store
    and experiment; otherwise (or with a warning when the checkpoint cannot be read) it opens a new run."""
    loggers = [lg for lg in trainer.loggers if isinstance(lg, TrackingLogger) and not lg._initialized
               and lg._run_id is None]
    path = resolve_checkpoint(trainer, ckpt_path) if loggers else None
    if path is None:
        return
    try:
        checkpoint = checkpoint_metadata(path)
    except Exception as exc:  # noqa: BLE001 - Lightning reports an unreadable checkpoint itself
        rank_zero_warn(f"could not read the MLflow run of checkpoint {path} ({type(exc).__name__}: {exc}): "
                       "the resumed fit logs to a new run")
        return
    runs = checkpoint.get(CHECKPOINT_KEY) or []
    step = checkpoint.get("global_step")
    for logger in loggers:
        logger.resume_from(runs, int(step) if step is not None else None, path)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
            text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): tree}


def mlflow_loggers(trainer: Trainer) -> list[MLFlowLogger]:
    return [logger for logger in trainer.loggers if isinstance(logger, MLFlowLogger)]


class ResolvedConfigToMLflow(SaveConfigCallback):
    """Logs the resolved LightningCLI config to every MLflow logger: ``config.yaml`` artifact, flattened params,
    and the git commit (tag ``mlflow.source.git.commit`` and ``git_commit.txt``); records the MLflow run in every
    checkpoint (:data:`CHECKPOINT_KEY`) so that a resumed fit continues it.

    A continued run keeps its first ``config.yaml`` and commit; a resumed fit's go to ``resumed/step_<k>/``, and
    the run gets the tag ``xlt.resumed_from_step``. Writing ``config.yaml`` into a log directory is skipped: with
    an MLflow-only logger Lightning has none.
    """

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        loggers = mlflow_loggers(trainer)
        if not loggers:
            return
        text = self.parser.dump(self.config, skip_none=False)
        params = {f"config.{k}": v for k, v in _flatten(yaml.safe_load(text)).items() if v not in (None, "", [], {})}
        commit = _git_commit()
        for logger in loggers:
            client, run_id = logger.experiment, logger.run_id
            step = getattr(logger, "resumed_step", None)
            prefix = "" if step is None else f"resumed/step_{step}/"
            client.log_text(run_id, text, prefix + "config.yaml")
            logger.log_hyperparams(params)
            client.set_tag(run_id, "xlt.stage", stage)
            if step is not None:
                client.set_tag(run_id, "xlt.resumed_from_step", str(step))
            if commit:
                if step is None or "mlflow.source.git.commit" not in client.get_run(run_id).data.tags:
                    client.set_tag(run_id, "mlflow.source.git.commit", commit)
                client.log_text(run_id, commit + "\n", prefix + "git_commit.txt")

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        runs = checkpoint_runs(trainer)
        if runs:
            checkpoint[CHECKPOINT_KEY] = runs


class LanguageMixLogger(Callback):
    """Logs the realised per-language share of training blocks (``train/sampling/share/<lang>``) next to the
    sampler's target distribution (``train/sampling/target/<lang>``), at the end of every training epoch and fit.

    Needs a datamodule with ``language_codes`` and batches with a ``lang`` tensor; does nothing otherwise.
    """

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.last_shares: dict[str, float] = {}  # the realised shares last logged (rank 0), for the run summary

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if isinstance(batch, dict) and "lang" in batch:
            self.counts.update(batch["lang"].tolist())

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer)

    def _log(self, trainer: Trainer) -> None:
        codes = getattr(trainer.datamodule, "language_codes", None)
        if not codes:
            return
        local = torch.tensor([float(self.counts[i]) for i in range(len(codes))])
        counts = trainer.strategy.reduce(local.to(trainer.strategy.root_device), reduce_op="sum").cpu()
        total = float(counts.sum())
        if not trainer.is_global_zero or not total:
            return
        self.last_shares = {code: float(counts[i]) / total for i, code in enumerate(codes)}
        metrics = {f"train/sampling/share/{code}": share for code, share in self.last_shares.items()}
        target = getattr(trainer.datamodule, "sampling_distribution", None)
        if callable(target):
            metrics.update({f"train/sampling/target/{code}": p for code, p in target().items()})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
