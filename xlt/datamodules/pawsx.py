"""PAWS-X: adversarial paraphrase identification, sentence pairs labelled paraphrase or not."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset

from xlt.datamodules.classification import PairClassificationDataModule
from xlt.datamodules.task_spec import TaskSpec
from xlt.formats import PAWSX_FEATURES, read_pawsx_tsv


def _read(path: Path, language: str | None, target: str | Path | None) -> Dataset:
    return read_pawsx_tsv(path)


PAWSX = TaskSpec(
    name="pawsx", header="PAWS-X", metrics=("acc",), synthetic_folder="pawsx", aliases=("paws-x", "paraphrase"),
    features=PAWSX_FEATURES, read=_read,
    file_patterns=("{split}.tsv", "{split}_2k.tsv"),  # synthetic panel; PAWS-X release (dev_2k.tsv, test_2k.tsv)
    hub_columns={"sentence1": ("sentence1",), "sentence2": ("sentence2",), "label": ("label", "labels")},
    hub_row=lambda row: {"sentence1": row["sentence1"], "sentence2": row["sentence2"], "label": int(row["label"])},
)
"""PAWS-X: TSV files (:func:`~xlt.formats.read_pawsx_tsv`), metric accuracy."""


class PAWSXDataModule(PairClassificationDataModule):
    """PAWS-X: labels ``0`` (different meaning) and ``1`` (paraphrase); metric accuracy."""

    spec = PAWSX
    first_column = "sentence1"
    second_column = "sentence2"
    labels = ("0", "1")
