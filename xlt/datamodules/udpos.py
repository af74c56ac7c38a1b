"""UD POS tagging (XTREME ``udpos``): the 17 universal part-of-speech tags of Universal Dependencies."""

from __future__ import annotations

from datasets import Dataset

from xlt.datamodules.readers import UPOS_TAGS
from xlt.datamodules.tokens import TokenClassificationDataModule


class UDPOSDataModule(TokenClassificationDataModule):
    """UD POS: one UPOS tag per word (``ADJ`` ... ``X``, fixed label set); metric token accuracy.

    Reads CoNLL-U treebanks (``ud/<code>/*-ud-{train,dev,test}.conllu``; multiword-token ranges and empty
    nodes skipped), the synthetic panel's ``ud/<code>/`` and hub datasets with ``tokens`` / ``upos`` columns.
    """

    task = "udpos"
    reader_task = "ud"
    synthetic_folder = "ud"
    tag_column = "upos"

    def label_names_from(self, rows: Dataset) -> list[str]:
        """The 17 UPOS tags in :data:`~xlt.datamodules.readers.UPOS_TAGS` order."""
        return list(UPOS_TAGS)
