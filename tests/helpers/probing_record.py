"""A probing callback that also writes, per rank, which rounds it computed and logged: for
tests/callbacks/test_probing.py's multi-process runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer

from xlt.callbacks.probing import ProbingCallback
from xlt.probing.analysis import ProbingRound


class RecordedProbing(ProbingCallback):
    """:class:`ProbingCallback` writing ``<out>/rank<r>.json``: computed rounds (step, curves) and logged steps.

    Args:
        out: Directory for the per-rank JSON files.
        **kwargs: ProbingCallback's arguments.
    """

    def __init__(self, out: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.out = out
        self.computed: list[dict] = []

    def probe_round(self, trainer: Trainer, pl_module: LightningModule) -> ProbingRound:
        result = super().probe_round(trainer, pl_module)
        self.computed.append({"step": trainer.global_step,
                              "curves": {c.name: [float(v) for v in c.values] for c in result.curves}})
        return result

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        Path(self.out).mkdir(parents=True, exist_ok=True)
        record = {"computed": self.computed, "logged": [step for step, _ in self.history]}
        (Path(self.out) / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
