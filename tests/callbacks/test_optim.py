"""LearningRateLogger: ``train/optim/lr/<group>`` with the schedule's values, at log_every_n_steps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from tests.helpers.recording_logger import RecordingLogger
from xlt.callbacks.optim import LearningRateLogger, param_group_names
from xlt.models.mlm import MLMPretraining

TINY = {"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 34}


def fit(tmp_path: Path, **callback_args: Any) -> RecordingLogger:
    ids = torch.randint(4, 63, (20, 16), generator=torch.Generator().manual_seed(0))
    items = [{"input_ids": ids[i], "lang": torch.tensor(0)} for i in range(len(ids))]
    logger = RecordingLogger()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=10, log_every_n_steps=2, logger=logger,
                         callbacks=[LearningRateLogger(**callback_args)], enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                         default_root_dir=tmp_path)
    module = MLMPretraining(config=dict(TINY), seed=3, lr=1e-3, warmup_steps=4, schedule="linear")
    trainer.fit(module, DataLoader(items, batch_size=2))
    return logger


def test_tiny_fit_logs_each_adamw_group_with_the_schedule_at_log_every_n_steps(tmp_path: Path) -> None:
    logger = fit(tmp_path)
    # warmup 4 steps then linear decay to 0 at step 10: factor(s) = s/4, then (10 - s)/6; logged at s+1 ≡ 0 mod 2
    expected = {1: 0.25, 3: 0.75, 5: 5 / 6, 7: 3 / 6, 9: 1 / 6}
    for group in ("decay", "no_decay"):
        lrs = logger.series(f"train/optim/lr/{group}")
        assert lrs.keys() == expected.keys(), group
        assert [lrs[s] for s in expected] == pytest.approx([1e-3 * f for f in expected.values()]), group
    names = {name for _, metrics in logger.logged for name in metrics}
    assert not any(name.startswith("lr-") for name in names)
    assert all(re.fullmatch(r"[A-Za-z0-9_/. -]+", name) for name in names), names


def test_every_n_steps_overrides_the_trainer(tmp_path: Path) -> None:
    assert sorted(fit(tmp_path, every_n_steps=5).series("train/optim/lr/decay")) == [4, 9]


def test_group_names_other_optimizers() -> None:
    a, b = torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))
    plain = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1)
    assert param_group_names(plain) == ["pg0", "pg1"]  # not AdamW: no decay/no_decay names
    adamw = torch.optim.AdamW([{"params": [a], "weight_decay": 0.01}, {"params": [b], "weight_decay": 0.0}])
    assert param_group_names(adamw) == ["decay", "no_decay"]
    assert param_group_names(adamw, prefix="opt1_") == ["opt1_decay", "opt1_no_decay"]
    named = torch.optim.AdamW([{"params": [a], "name": "encoder/body"}, {"params": [b], "name": "encoder/body"}])
    assert param_group_names(named) == ["encoder_body", "encoder_body_pg1"]
    with pytest.raises(ValueError, match="every_n_steps"):
        LearningRateLogger(every_n_steps=0)
