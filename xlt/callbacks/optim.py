"""Optimizer metrics under xlt's naming convention: ``train/optim/lr/<group>`` per parameter group.

Replaces Lightning's ``LearningRateMonitor``, whose ``lr-AdamW/pg1`` names break the
``<stage>/<task>/<metric>/<group>`` convention.
"""

from __future__ import annotations

import re
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from torch.optim import AdamW, Optimizer

ADAMW_GROUP_NAMES = ("decay", "no_decay")
"""Names of the two groups of :func:`xlt.models.optimization.adamw_param_groups`, in its order."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_. -]+")


def is_xlt_adamw_layout(optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` is an AdamW over :func:`~xlt.models.optimization.adamw_param_groups`: matrices first
    (decayed), then biases and LayerNorm weights with ``weight_decay`` 0."""
    groups = optimizer.param_groups
    if not isinstance(optimizer, AdamW) or len(groups) != 2 or groups[1].get("weight_decay") != 0.0:
        return False
    decay, no_decay = (group["params"] for group in groups)
    return all(p.ndim >= 2 for p in decay) and all(p.ndim < 2 for p in no_decay)


def param_group_names(optimizer: Optimizer, prefix: str = "") -> list[str]:
    """One metric group name per parameter group: the group's own ``name`` if it has one, ``decay``/``no_decay``
    for xlt's AdamW groups, else ``pg<i>``; ``prefix`` tells several optimizers apart."""
    xlt_layout = is_xlt_adamw_layout(optimizer)
    names: list[str] = []
    for i, group in enumerate(optimizer.param_groups):
        own = group.get("name")
        if isinstance(own, str) and _UNSAFE.sub("_", own).strip("_ "):
            name = _UNSAFE.sub("_", own).strip("_ ")
        else:
            name = ADAMW_GROUP_NAMES[i] if xlt_layout else f"pg{i}"
        if prefix + name in names:  # two groups of the same name stay apart
            name = f"{name}_pg{i}"
        names.append(prefix + name)
    return names


class LearningRateLogger(Callback):
    """Logs each parameter group's learning rate as ``train/optim/lr/<group>`` (``decay``/``no_decay`` for xlt's
    AdamW groups, ``pg0``, ``pg1``… otherwise; ``opt<k>_`` before the group for a second optimizer), every
    ``every_n_steps`` optimizer steps: the rate the step about to run uses, logged at that step.

    Args:
        every_n_steps: Log at steps ``s`` with ``(s + 1) % every_n_steps == 0`` (as Lightning's own step
            metrics); ``None`` follows ``trainer.log_every_n_steps``.
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._last_step: int | None = None

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any,
                             batch_idx: int) -> None:
        step = trainer.global_step
        every = self.every_n_steps or trainer.log_every_n_steps or 1
        if step == self._last_step or (step + 1) % every != 0 or not trainer.loggers:
            return  # gradient accumulation: several batches share a step; log once
        self._last_step = step
        if trainer.is_global_zero:
            metrics = self.learning_rates(trainer)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)

    @staticmethod
    def learning_rates(trainer: Trainer) -> dict[str, float]:
        """``{"train/optim/lr/<group>": lr}`` for every parameter group of every optimizer, now."""
        metrics: dict[str, float] = {}
        for k, optimizer in enumerate(trainer.optimizers):
            names = param_group_names(optimizer, prefix=f"opt{k}_" if k else "")
            for name, group in zip(names, optimizer.param_groups, strict=True):
                metrics[f"train/optim/lr/{name}"] = float(group["lr"])
        return metrics
