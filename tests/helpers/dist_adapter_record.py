"""RecordSteps plus what adapter training holds per rank: trainable parameter names and the number of parameters
with optimizer state (for the adapter FSDP2 tests in tests/models/test_distributed.py)."""

from __future__ import annotations

from dist_record import RecordSteps
from lightning.pytorch import LightningModule, Trainer


class RecordAdapterSteps(RecordSteps):
    """``RecordSteps`` with ``trainable`` (names) and ``optimizer_state`` (parameters with AdamW state)."""

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        named = dict(pl_module.model.named_parameters())
        self.record["trainable"] = sorted(name for name, p in named.items() if p.requires_grad)
        self.record["optimizer_state"] = len(trainer.optimizers[0].state)
        super().on_train_end(trainer, pl_module)
