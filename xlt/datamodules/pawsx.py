"""PAWS-X: adversarial paraphrase identification, sentence pairs labelled paraphrase or not."""

from __future__ import annotations

from xlt.datamodules.pairs import PairClassificationDataModule


class PAWSXDataModule(PairClassificationDataModule):
    """PAWS-X: labels ``0`` (different meaning) and ``1`` (paraphrase); metric accuracy."""

    task = "pawsx"
    reader_task = "pawsx"
    synthetic_folder = "pawsx"
    first_column = "sentence1"
    second_column = "sentence2"
    labels = ("0", "1")
