"""XNLI (and AmericasNLI): three-way natural language inference, premise/hypothesis pairs."""

from __future__ import annotations

from xlt.datamodules.pairs import PairClassificationDataModule
from xlt.datamodules.readers import NLI_LABELS


class XNLIDataModule(PairClassificationDataModule):
    """XNLI-style NLI: labels ``entailment``, ``neutral``, ``contradiction``; metric accuracy.

    Reads XNLI/AmericasNLI TSV files, the synthetic panel's ``xnli/<code>/`` and hub datasets (e.g.
    ``facebook/xnli`` with ``hub_config: "{code}"``-style names through ``data_per_language``).
    """

    task = "xnli"
    reader_task = "nli"
    synthetic_folder = "xnli"
    first_column = "premise"
    second_column = "hypothesis"
    labels = NLI_LABELS
