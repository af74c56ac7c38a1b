"""Sentence-pair classification data (the shared part of XNLI and PAWS-X).

Both sentences are encoded as one pair (``<s> a </s></s> b </s>`` for XLM-R), truncating the longer one
first to ``max_length`` tokens; the label becomes its index in the training label set.
"""

from __future__ import annotations

from typing import ClassVar

from datasets import Dataset

from xlt.datamodules.task_data import TaskDataModule
from xlt.errors import XltError


class PairClassificationDataModule(TaskDataModule):
    """Sentence pairs with one label each; subclasses name the columns and the label set."""

    first_column: ClassVar[str] = "premise"
    second_column: ClassVar[str] = "hypothesis"
    stratify_column: ClassVar[str | None] = "label"
    #: the task's label names in label-id order
    labels: ClassVar[tuple[str, ...]] = ()

    def label_names_from(self, rows: Dataset) -> list[str]:
        """The task's fixed label set."""
        return list(self.labels)

    def label_of(self, value: object) -> str:
        """A dataset label as a label name (after ``label_map``)."""
        name = str(value)
        return self.label_map.get(name, name)

    def map_labels(self, rows: Dataset, code: str, split: str) -> Dataset:
        """Check that every label (after ``label_map``) belongs to the task's label set."""
        found = {self.label_of(v) for v in rows.unique("label")}
        unknown = sorted(found - set(self.labels))
        if unknown:
            source, _ = self.source_of(code)
            raise XltError(f"{source}: {split} labels {unknown} of language '{code}' are not in the {self.task} "
                           f"label set {list(self.labels)} — map them with data.label_map")
        return rows

    def encode(self, rows: Dataset, code: str, split: str) -> Dataset:
        """``input_ids`` of the pair and ``label`` (index in :attr:`labels`)."""
        tokenizer = self.tokenizer_for(code)
        index = {name: i for i, name in enumerate(self.labels)}

        def tokenize(batch: dict[str, list]) -> dict[str, list]:
            encoded = tokenizer(batch[self.first_column], batch[self.second_column], truncation="longest_first",
                                max_length=self.max_length)
            return {"input_ids": encoded["input_ids"], "label": [index[self.label_of(v)] for v in batch["label"]]}

        return rows.map(tokenize, batched=True, remove_columns=rows.column_names, desc=None)
