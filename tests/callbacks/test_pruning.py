"""TrialPruning: the judge is asked at every validation with global_step (sanity checks excluded, several per
epoch), a "prune" stops the fit at that step, a judge's XltError ends the fit."""

from __future__ import annotations

import pytest
from lightning.pytorch import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel

from xlt.callbacks.pruning import TrialPruning
from xlt.errors import XltError


class RecordingJudge:
    def __init__(self, prune_at: int | None = None, fail: bool = False) -> None:
        self.steps: list[int] = []
        self.prune_at, self.fail = prune_at, fail

    def __call__(self, step: int, trainer: Trainer) -> bool:
        if self.fail:
            raise XltError("sweep objective 'x': metric val/x was not logged")
        self.steps.append(step)
        return self.prune_at is not None and step >= self.prune_at


def _fit(callback: TrialPruning) -> Trainer:
    trainer = Trainer(max_steps=10, val_check_interval=2, limit_val_batches=1, num_sanity_val_steps=1,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=[callback])
    trainer.fit(BoringModel())  # 64 batches an epoch: all validations fall inside the first epoch
    return trainer


def test_judge_sees_every_validation_at_its_global_step() -> None:
    judge = RecordingJudge()
    trainer = _fit(TrialPruning(judge))
    assert judge.steps == [2, 4, 6, 8, 10]  # the sanity check is not reported
    assert trainer.global_step == 10


def test_prune_stops_the_fit_at_that_step() -> None:
    judge, callback = RecordingJudge(prune_at=4), None
    callback = TrialPruning(judge)
    trainer = _fit(callback)
    assert callback.pruned_at == 4
    assert trainer.global_step == 4 and judge.steps == [2, 4]


def test_a_judges_user_error_ends_the_fit() -> None:
    with pytest.raises(XltError, match="metric val/x was not logged"):
        _fit(TrialPruning(RecordingJudge(fail=True)))
