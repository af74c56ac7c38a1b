"""A callback that records, per rank, what a (distributed) training run did: for tests/models/test_distributed.py."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer


class RecordSteps(Callback):
    """Write ``<out>/rank<r>.json``: every step's global loss and batch, local shard sizes, tying, world size.

    Args:
        out: Directory for the per-rank JSON files.
    """

    def __init__(self, out: str) -> None:
        self.out = out
        self.record: dict = {"steps": []}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from xlt.models.sharding import is_sharded, local_shard_sizes

        model = pl_module.model
        self.record.update(
            rank=trainer.global_rank, world=trainer.world_size, start_step=trainer.global_step,
            sharded=is_sharded(model), shards=local_shard_sizes(model),
            tied=model.lm_head.decoder.weight is model.base_model.embeddings.word_embeddings.weight,
            strategy=type(trainer.strategy).__name__,
        )

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        self.record["steps"].append({
            "step": trainer.global_step,
            "loss": float(trainer.callback_metrics["train/mlm/loss"]),
            "input_ids": batch["input_ids"].tolist(),
            "lang": batch["lang"].tolist(),
        })

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        self.record.setdefault("val", []).append({"step": trainer.global_step, **values})

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        Path(self.out).mkdir(parents=True, exist_ok=True)
        (Path(self.out) / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.record))
