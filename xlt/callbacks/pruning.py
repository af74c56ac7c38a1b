"""Pruning a fit from its validations: the Lightning side of ``xlt sweep``.

At the end of every validation (not per epoch: the MLM recipes validate every ``val_check_interval`` steps), rank
0 asks a judge whether to stop, passing ``trainer.global_step`` as the step; the decision is broadcast so that
every rank of a DDP/FSDP2 fit stops at the same step. A pruned fit ends like an early-stopped one (no exception
inside Lightning, so no rank hangs in a collective); the caller reads :attr:`TrialPruning.pruned_at` afterwards.
"""

from __future__ import annotations

from typing import Protocol

from lightning.pytorch import Callback, LightningModule, Trainer

from xlt.errors import XltError


class Judge(Protocol):
    """Decides, on rank 0, whether the fit should stop at a validation."""

    def __call__(self, step: int, trainer: Trainer) -> bool: ...


class TrialPruning(Callback):
    """Stop the fit when the judge says so at a validation (decided on rank 0, broadcast to all ranks).

    Args:
        judge: Called on rank 0 with ``(global_step, trainer)`` after each validation (sanity checks excluded);
            ``None`` on the other ranks, which only receive the decision. An :class:`XltError` it raises (an
            objective metric the run never logs) is raised on every rank.
    """

    def __init__(self, judge: Judge | None) -> None:
        self.judge = judge
        self.pruned_at: int | None = None  # global step at which the fit was stopped

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        step = trainer.global_step
        decision, error = False, None
        if trainer.is_global_zero and self.judge is not None:
            try:
                decision = bool(self.judge(step, trainer))
            except XltError as exc:  # e.g. an objective metric the run never logs: every rank must stop, not hang
                error = str(exc)
        decision, error = trainer.strategy.broadcast((decision, error), src=0)
        if error is not None:
            raise XltError(error)
        if decision:
            self.pruned_at = step
            trainer.should_stop = True
