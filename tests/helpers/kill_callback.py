"""A callback that SIGKILLs its own process: simulates a crashed or pre-empted training job."""

from __future__ import annotations

import os
import signal

from lightning.pytorch import Callback, LightningModule, Trainer


class KillAtStep(Callback):
    """Kill the process (no clean-up, no final checkpoint) when ``global_step`` reaches ``step``.

    Args:
        step: the optimizer step at whose start the process dies.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class KillOnceAtStep(KillAtStep):
    """:class:`KillAtStep` the first time only: the kill leaves ``marker`` behind, and a rerun with the same config
    (an experiment's unchanged stage, resumed) trains through.

    Args:
        step: the optimizer step at whose start the process dies.
        marker: a file created just before the kill; while it exists the callback does nothing.
    """

    def __init__(self, step: int, marker: str) -> None:
        super().__init__(step)
        self.marker = marker

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step >= self.step and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
