"""Named entity recognition (XTREME ``panx`` / WikiANN, MasakhaNER): IOB2 tags per word, entity span F1."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset

from xlt.datamodules.task_spec import TaskSpec
from xlt.datamodules.token_classification import TokenClassificationDataModule
from xlt.formats import CONLL_NER_FEATURES, read_conll_ner


def _read(path: Path, language: str | None, target: str | Path | None) -> Dataset:
    return read_conll_ner(path)


NER = TaskSpec(
    name="ner", header="NER", metrics=("f1",), synthetic_folder="ner", aliases=("panx", "masakhaner"),
    features=CONLL_NER_FEATURES, read=_read,
    file_patterns=("{split}.txt", "{split}.conll"),  # MasakhaNER and the synthetic panel: <split>.txt
    hub_columns={"tokens": ("tokens", "words"), "ner_tags": ("ner_tags", "tags", "labels", "ner")},
)
"""NER: CoNLL files (:func:`~xlt.formats.read_conll_ner`), metric entity span F1."""


class NERDataModule(TokenClassificationDataModule):
    """NER: IOB2 tags (``O``, ``B-X``, ``I-X``); metric entity-level span F1 (seqeval semantics).

    The label set is that of the training languages' train split, after ``label_map`` (``O`` first, then the
    other tags sorted). Evaluation languages must use tags of that set after ``label_map``, e.g. MasakhaNER's
    ``DATE`` (absent from WikiANN) is dropped with ``label_map: {B-DATE: O, I-DATE: O}``. Reads CoNLL files
    (``ner/<code>/{train,dev,test}.txt``), the synthetic panel's ``ner/<code>/`` and hub datasets with
    ``tokens`` / ``ner_tags`` columns.
    """

    spec = NER
    tag_column = "ner_tags"

    def label_names_from(self, rows: Dataset) -> list[str]:
        """``O`` and the sorted other tags of ``rows`` (the first training language's train split) and of the
        other training languages' train splits, after ``label_map``."""
        tags = self.tags_in(rows)
        for code in self.train_languages[1:]:
            extra = self.read(code, "train", required=False)
            if extra is not None:
                tags |= self.tags_in(extra)
        return ["O", *sorted(tags - {"O"})]
