"""Per-example scores from prediction files, in test-file order, for paired comparisons.

A test run with ``predictions_dir`` writes one file per language in XTREME's layout (``test-<lang>.tsv``: a label
per line for sentence classification, a tag per word and a blank line per sentence for tagging, the nearest pivot
row per line for retrieval; ``test-<lang>.json``: ``{question id: answer}`` for QA). Scoring such a file against
the gold test split gives the :class:`~xlt.evaluation.bootstrap.PerExample` statistics of the run's metric *in
row order*. In-run statistics cannot be paired across runs or languages: evaluation batches are bucketed by
length, so their order depends on the tokenizer and the language. Rows in file order can be paired across any two
runs on the same test file, and across languages of a parallel test set (the synthetic panel's, XNLI's, XQuAD's,
Tatoeba's), which is what :mod:`xlt.evaluation.compare` does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from datasets import Dataset

from xlt.errors import XltError
from xlt.evaluation.bootstrap import PerExample
from xlt.evaluation.metrics import span_counts, squad_f1

PREDICTION_FILE = re.compile(r"^test-(?P<lang>[^.]+)\.(?P<ext>tsv|json)$")
"""Names of prediction files: ``test-<lang>.tsv`` or ``test-<lang>.json``."""

METRICS = {"xnli": "acc", "pawsx": "acc", "udpos": "acc", "ner": "f1", "qa": "f1", "retrieval": "p1"}
"""The metric a prediction file is scored with, per task (each head's primary metric)."""


def prediction_file_name(task: str, code: str) -> str:
    """The name a test run gives language ``code``'s prediction file: ``test-<code>.json`` for QA, ``.tsv`` else."""
    return f"test-{code}.{'json' if task == 'qa' else 'tsv'}"


def prediction_language(path: str | Path) -> str:
    """The language code in a prediction file's name (``test-qaj.tsv`` → ``qaj``)."""
    match = PREDICTION_FILE.match(Path(path).name)
    if match is None:
        raise XltError(f"{path} is not a prediction file (test-<lang>.tsv or test-<lang>.json) — pass the files a "
                       "test run wrote to its predictions_dir")
    return match["lang"]


def require_prediction_file(path: str | Path) -> Path:
    """``path`` as a :class:`~pathlib.Path`, or a one-line error when no such file exists."""
    path = Path(path)
    if not path.is_file():
        raise XltError(f"prediction file {path} not found — run `xlt test` with --model.predictions_dir first")
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def _sentences(path: Path) -> list[list[str]]:
    sentences, current = [], []
    for line in _lines(path):
        if line:
            current.append(line)
        else:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def _check_rows(path: Path, predicted: int, gold: int, unit: str) -> None:
    if predicted != gold:
        raise XltError(f"{path} has {predicted} {unit} but the gold test split has {gold} — score it against the "
                       "test data the run was evaluated on (--data)")


def score_predictions(task: str, path: str | Path, gold: Dataset) -> PerExample:
    """The per-example statistics of the prediction file ``path`` of ``task`` against ``gold`` (the language's
    test split in the task's schema), in row order: accuracy as ``(correct, 1)`` per pair or ``(correct, total)``
    per sentence (ratio), NER as ``(tp, fp, fn)`` per sentence (micro F1), QA as SQuAD v1.1 F1 per question,
    retrieval as a hit per source sentence (P@1, source → pivot)."""
    path = require_prediction_file(path)
    if task in ("xnli", "pawsx"):
        predicted = _lines(path)
        _check_rows(path, len(predicted), len(gold), "lines")
        correct = [p == str(g) for p, g in zip(predicted, gold["label"], strict=True)]
        return PerExample.ratio(correct, np.ones(len(correct)))
    if task in ("udpos", "ner"):
        column = "upos" if task == "udpos" else "ner_tags"
        sentences = _sentences(path)
        _check_rows(path, len(sentences), len(gold), "sentences")
        if task == "udpos":
            correct = [sum(p == g for p, g in zip(pred, tags, strict=False))
                       for pred, tags in zip(sentences, gold[column], strict=True)]
            return PerExample.ratio(correct, [len(tags) for tags in gold[column]])
        counts = np.array([span_counts(pred, tags) for pred, tags in zip(sentences, gold[column], strict=True)])
        return PerExample.f1(counts[:, 0], counts[:, 1], counts[:, 2])
    if task == "qa":
        answers = json.loads(path.read_text(encoding="utf-8"))
        missing = [qid for qid in gold["id"] if qid not in answers]
        if missing:
            raise XltError(f"{path} has no answer for {len(missing)} of the {len(gold)} gold questions (e.g. "
                           f"'{missing[0]}') — score it against the test data the run was evaluated on (--data)")
        return PerExample.mean([squad_f1(answers[qid], row["text"])
                                for qid, row in zip(gold["id"], gold["answers"], strict=True)])
    if task == "retrieval":
        nearest = _lines(path)
        _check_rows(path, len(nearest), len(gold), "lines")
        return PerExample.mean([int(row) == i for i, row in enumerate(nearest)])
    raise XltError(f"unknown task '{task}' for prediction files — use one of: {', '.join(METRICS)}")
