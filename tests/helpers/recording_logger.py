"""A Lightning logger that keeps every ``log_metrics`` call in memory, for tests of what callbacks log."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import Logger


class RecordingLogger(Logger):
    """Keeps every ``log_metrics`` call in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[int, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.logged.append((int(step or 0), dict(metrics)))

    def series(self, name: str) -> dict[int, float]:
        """``step -> value`` of one metric."""
        return {step: metrics[name] for step, metrics in self.logged if name in metrics}
