"""MLflow tracking: the default logger, the resolved config and git commit as artifacts, realised language mix."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import MLFlowLogger

from xlt.mlflow_store import artifact_location, default_tracking_uri


class TrackingLogger(MLFlowLogger):
    """Lightning's ``MLFlowLogger`` with xlt's defaults: a real SQLite store, artifacts beside it.

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
        super().__init__(
            experiment_name=experiment_name,
            run_name=run_name,
            tracking_uri=uri,
            tags=tags,
            artifact_location=artifact_location(uri, experiment_name),
            run_id=run_id,
            log_model=False,
        )


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
    and the git commit (tag ``mlflow.source.git.commit`` and ``git_commit.txt``).

    Writing ``config.yaml`` into a log directory is skipped: with an MLflow-only logger Lightning has none.
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
            client.log_text(run_id, text, "config.yaml")
            logger.log_hyperparams(params)
            client.set_tag(run_id, "xlt.stage", stage)
            if commit:
                client.set_tag(run_id, "mlflow.source.git.commit", commit)
                client.log_text(run_id, commit + "\n", "git_commit.txt")


class LanguageMixLogger(Callback):
    """Logs the realised per-language share of training blocks (``train/sampling/share/<lang>``) next to the
    sampler's target distribution (``train/sampling/target/<lang>``), at the end of every training epoch and fit.

    Needs a datamodule with ``language_codes`` and batches with a ``lang`` tensor; does nothing otherwise.
    """

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()

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
        metrics = {f"train/sampling/share/{code}": float(counts[i]) / total for i, code in enumerate(codes)}
        target = getattr(trainer.datamodule, "sampling_distribution", None)
        if callable(target):
            metrics.update({f"train/sampling/target/{code}": p for code, p in target().items()})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
