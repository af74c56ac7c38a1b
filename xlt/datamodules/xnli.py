"""XNLI (and AmericasNLI): three-way natural language inference, premise/hypothesis pairs."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset

from xlt.datamodules.classification import PairClassificationDataModule
from xlt.datamodules.task_spec import TaskSpec
from xlt.formats import NLI_FEATURES, NLI_LABELS, nli_label_name, read_nli_tsv


def _read(path: Path, language: str | None, target: str | Path | None) -> Dataset:
    return read_nli_tsv(path, language=language)


def _hub_row(row: dict) -> dict | None:
    """ClassLabel ids and label strings as :data:`~xlt.formats.NLI_LABELS` names; unlabelled rows (-1) dropped."""
    label = row["label"]
    if isinstance(label, int):
        if not 0 <= label < 3:
            return None  # -1: unlabelled
        label = NLI_LABELS[label]
    return {"premise": row["premise"], "hypothesis": row["hypothesis"], "label": nli_label_name(str(label))}


XNLI = TaskSpec(
    name="xnli", header="XNLI", metrics=("acc",), synthetic_folder="xnli", aliases=("nli", "americasnli"),
    file_kind="nli", features=NLI_FEATURES, read=_read,
    # XNLI / synthetic panel: <split>.tsv; AmericasNLI: <split>/<lang>.tsv; XNLI-1.0: xnli.<split>.<lang>.tsv
    file_patterns=("{split}.tsv", "{split}.txt", "{split}/{lang}.tsv", "*.{split}.{lang}.tsv"),
    hub_columns={"premise": ("premise", "sentence1"), "hypothesis": ("hypothesis", "hypo", "sentence2"),
                 "label": ("label", "gold_label", "labels")},
    hub_row=_hub_row,
)
"""XNLI: TSV files (:func:`~xlt.formats.read_nli_tsv`), metric accuracy."""


class XNLIDataModule(PairClassificationDataModule):
    """XNLI-style NLI: labels ``entailment``, ``neutral``, ``contradiction``; metric accuracy.

    Reads XNLI/AmericasNLI TSV files, the synthetic panel's ``xnli/<code>/`` and hub datasets (e.g.
    ``facebook/xnli``, whose configs are two-letter codes: one :class:`~xlt.sources.HubText` per language through
    ``data_per_language``, ``{deu: {class_path: xlt.sources.HubText, init_args: {dataset: facebook/xnli,
    config: de}}}``).
    """

    spec = XNLI
    first_column = "premise"
    second_column = "hypothesis"
    labels = NLI_LABELS
