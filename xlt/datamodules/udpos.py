"""UD POS tagging (XTREME ``udpos``): the 17 universal part-of-speech tags of Universal Dependencies."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset

from xlt.datamodules.task_spec import TaskSpec
from xlt.datamodules.token_classification import TokenClassificationDataModule
from xlt.formats import CONLLU_FEATURES, UPOS_TAGS, read_conllu


def _read(path: Path, language: str | None, target: str | Path | None) -> Dataset:
    return read_conllu(path)


def _hub_row(row: dict) -> dict | None:
    """Word rows only: multiword-token ranges and empty nodes (HEAD ``None``/``_``, UPOS ``_``) are dropped."""
    heads, upos = row["heads"], row["upos"]
    keep = [i for i, h in enumerate(heads) if h not in (None, "None", "_", "") and upos[i] != "_"]
    return {"tokens": [row["tokens"][i] for i in keep], "upos": [row["upos"][i] for i in keep],
            "heads": [int(row["heads"][i]) for i in keep], "deprels": [row["deprels"][i] for i in keep]}


UDPOS = TaskSpec(
    name="udpos", header="POS", metrics=("acc",), synthetic_folder="ud",
    aliases=("ud", "pos", "upos", "dep", "conllu"), file_kind="ud", features=CONLLU_FEATURES, read=_read,
    # synthetic panel: <split>.conllu; UD treebanks: <treebank>-ud-<split>.conllu
    file_patterns=("{split}.conllu", "*-ud-{split}.conllu", "*{split}*.conllu"),
    hub_columns={"tokens": ("tokens", "words", "form"), "upos": ("upos", "pos_tags", "pos"),
                 "heads": ("heads", "head"), "deprels": ("deprels", "deprel")},
    hub_row=_hub_row,
)
"""UD POS: CoNLL-U treebanks (:func:`~xlt.formats.read_conllu`), metric token accuracy."""


class UDPOSDataModule(TokenClassificationDataModule):
    """UD POS: one UPOS tag per word (``ADJ`` ... ``X``, fixed label set); metric token accuracy.

    Reads CoNLL-U treebanks (``ud/<code>/*-ud-{train,dev,test}.conllu``; multiword-token ranges and empty
    nodes skipped), the synthetic panel's ``ud/<code>/`` and hub datasets with ``tokens`` / ``upos`` columns.
    """

    spec = UDPOS
    tag_column = "upos"

    def label_names_from(self, rows: Dataset) -> list[str]:
        """The 17 UPOS tags in :data:`~xlt.formats.UPOS_TAGS` order."""
        return list(UPOS_TAGS)
