"""AdamW parameter groups and the learning-rate schedules shared by MLM pretraining and task fine-tuning."""

from __future__ import annotations

import math
from typing import Any

from torch import nn


def lr_factor(step: int, warmup_steps: int, total_steps: float, schedule: str) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based).

    Linear warmup ``step / warmup_steps``, then ``linear`` (to 0 at ``total_steps``), ``cosine``
    (half cosine to 0 at ``total_steps``) or ``constant`` (1).
    """
    if step < warmup_steps:
        return step / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1.0, total_steps - warmup_steps))
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}")


def adamw_param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: matrices (decayed), biases and LayerNorm weights (not decayed); tied weights once."""
    decay, no_decay = [], []
    for parameter in module.parameters():  # deduplicated: a tied weight appears once
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
