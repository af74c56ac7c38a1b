"""The benchmark tasks: each task data module's :class:`~xlt.datamodules.task_spec.TaskSpec`, in Table 2 order.

``xlt report`` takes headers, primary and secondary metrics and scoring-protocol tags from :data:`TASKS`; data
loading by task name (:func:`load_task_dataset`, aliases such as ``ud`` or ``tatoeba`` included) resolves the
name here. A new task is one module under ``xlt/datamodules/`` whose data module declares a ``spec``, plus its
line below (and, if no existing head fits, one head under ``xlt/models/`` of the same name).
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, Features

from xlt.datamodules.ner import NERDataModule
from xlt.datamodules.pawsx import PAWSXDataModule
from xlt.datamodules.qa import QADataModule
from xlt.datamodules.retrieval import RetrievalDataModule
from xlt.datamodules.task_data import TaskDataModule
from xlt.datamodules.task_spec import TaskSpec, load_split
from xlt.datamodules.udpos import UDPOSDataModule
from xlt.datamodules.xnli import XNLIDataModule
from xlt.errors import XltError

__all__ = ["DATA_MODULES", "TASKS", "TASK_FEATURES", "load_task_dataset", "task_spec"]

DATA_MODULES: dict[str, type[TaskDataModule]] = {
    dm.spec.name: dm for dm in (XNLIDataModule, UDPOSDataModule, NERDataModule, PAWSXDataModule, QADataModule,
                                RetrievalDataModule)
}
"""Task name -> its data module class, in Table 2's column order."""

TASKS: dict[str, TaskSpec] = {name: dm.spec for name, dm in DATA_MODULES.items()}
"""Task name -> :class:`~xlt.datamodules.task_spec.TaskSpec`, in Table 2's column order."""

_BY_NAME: dict[str, TaskSpec] = {alias: spec for spec in TASKS.values() for alias in spec.names}


def task_spec(task: str | TaskSpec) -> TaskSpec:
    """The task named ``task`` (a name or alias such as ``ud``, ``nli``, ``tatoeba``; any case)."""
    if isinstance(task, TaskSpec):
        return task
    spec = _BY_NAME.get(str(task).lower())
    if spec is None:
        raise XltError(f"unknown task '{task}' — use one of: {', '.join(sorted(_BY_NAME))}")
    return spec


TASK_FEATURES: dict[str, Features] = {alias: spec.features for alias, spec in _BY_NAME.items()}
"""Task name or alias (``udpos``, ``ud``...) -> the schema of its rows (e.g. ``TASK_FEATURES["ud"]``)."""


def load_task_dataset(source: str | Path, task: str | TaskSpec, split: str = "test", language: str | None = None,
                      name: str | None = None, target: str | Path | None = None,
                      columns: dict[str, str] | None = None) -> Dataset:
    """One split of ``task`` (a name, alias or spec) from a file, a data directory or a hub dataset; arguments as
    for :func:`~xlt.datamodules.task_spec.load_split`."""
    return load_split(source, task_spec(task), split, language=language, name=name, target=target,
                      columns=columns)

