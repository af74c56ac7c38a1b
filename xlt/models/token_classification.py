"""Token classification head (UD POS, NER): ``AutoModelForTokenClassification``.

The head predicts a tag per sub-token; only a word's first sub-token counts (the data's ``labels`` are -100
elsewhere). The metric follows the label set: IOB2/IOBES tags (``O``, ``B-X``, ``I-X``...) are scored with
entity span F1 (:class:`~xlt.evaluation.metrics.SpanF1`, seqeval semantics) on each sentence's word tag
sequence, any other label set (UPOS) with token accuracy (:class:`~xlt.evaluation.metrics.Accuracy`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import Metric
from transformers import AutoModelForTokenClassification

from xlt.datamodules.task_data import IGNORE_INDEX
from xlt.evaluation.metrics import Accuracy, SpanF1
from xlt.models.task import TaskModule

_SPAN_TAG = re.compile(r"^[BIES]-.+")


def is_span_labels(labels: Sequence[str] | None) -> bool:
    """Whether ``labels`` are IOB2/IOBES entity tags (``O`` and ``B-/I-/E-/S-`` tags, at least one of them)."""
    if not labels:
        return False
    return all(t == "O" or _SPAN_TAG.match(t) for t in labels) and any(t != "O" for t in labels)


def word_tags(predicted: Sequence[int], word_ids: Sequence[int], labels: Sequence[str]) -> dict[int, str]:
    """Word index -> predicted tag of one sentence, read at each word's first sub-token."""
    return {int(w): labels[int(p)] for p, w in zip(predicted, word_ids, strict=True) if w != IGNORE_INDEX}


class TokenClassification(TaskModule):
    """Fine-tunes a tagger on first sub-tokens; metric ``acc`` (UD POS) or ``f1`` (NER, entity spans).

    Prediction files (XTREME layout, ``test-<lang>.tsv``) hold one tag per word and line, a blank line after
    each sentence, in the order of the test file. Words cut off by ``data.max_length`` are not evaluated; they
    get :meth:`fallback_tag` in prediction files so the files line up with the test data.
    """

    auto_class = AutoModelForTokenClassification

    @property
    def is_span_task(self) -> bool:
        """Whether the labels are entity tags (span F1) rather than word classes (accuracy)."""
        return is_span_labels(self.labels)

    @property
    def metric_names(self) -> tuple[str, ...]:  # type: ignore[override]
        """``("f1",)`` for entity tags, else ``("acc",)``."""
        return ("f1",) if self.is_span_task else ("acc",)

    def new_metric(self) -> Metric:
        """Span F1 over the label set (entity tags) or token accuracy (per-sentence correct/total)."""
        return SpanF1(labels=self.labels) if self.is_span_task else Accuracy(ignore_index=IGNORE_INDEX)

    def fallback_tag(self) -> str:
        """Tag written for words beyond ``max_length``: ``O`` for entity tags, ``X`` (other) for UPOS, else the
        first label."""
        assert self.labels, "labels are set in setup()"
        for tag in ("O", "X"):
            if tag in self.labels:
                return tag
        return self.labels[0]

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy over first sub-tokens (``labels`` -100 elsewhere)."""
        return self.model(**self.model_inputs(batch), labels=batch["labels"]).loss

    def sentence_tags(self, predicted: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[list[str]]:
        """One predicted tag per word for each sentence of the batch (fallback tag for truncated words)."""
        fallback = self.fallback_tag()
        out = []
        for row, word_ids, n_words in zip(predicted.tolist(), batch["word_ids"].tolist(),
                                          batch["n_words"].tolist(), strict=True):
            tags = word_tags(row, word_ids, self.labels)
            out.append([tags.get(w, fallback) for w in range(int(n_words))])
        return out

    def evaluate_batch(self, batch: dict[str, torch.Tensor], metric: Metric, code: str, stage: str) -> None:
        """Argmax tag per sub-token; accuracy on first sub-tokens or span F1 on each sentence's word tags."""
        predicted = self.model(**self.model_inputs(batch)).logits.argmax(dim=-1)
        if isinstance(metric, SpanF1):
            preds, golds = [], []
            for p_row, t_row, w_row in zip(predicted.tolist(), batch["labels"].tolist(), batch["word_ids"].tolist(),
                                           strict=True):
                scored = sorted((w, p, t) for p, t, w in zip(p_row, t_row, w_row, strict=True) if w != IGNORE_INDEX)
                preds.append([self.labels[p] for _, p, _ in scored])
                golds.append([self.labels[t] for _, _, t in scored])
            metric.update(preds, golds)
        else:
            metric.update(predicted, batch["labels"])
        if stage == "test":
            self.record(code, batch["index"], self.sentence_tags(predicted, batch))

    def prediction_file(self, code: str, predictions: dict[int, Any]) -> tuple[str, str]:
        """``test-<code>.tsv``: one tag per word and line, a blank line after each sentence, in test-file order."""
        return f"test-{code}.tsv", "".join("".join(f"{tag}\n" for tag in predictions[i]) + "\n"
                                           for i in sorted(predictions))

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> list[dict[str, Any]]:
        """Per sentence: language, row and one predicted tag per word."""
        predicted = self.model(**self.model_inputs(batch)).logits.argmax(dim=-1)
        return [{"lang": self.languages[int(lang)], "index": int(index), "tags": tags}
                for lang, index, tags in zip(batch["lang"], batch["index"], self.sentence_tags(predicted, batch),
                                             strict=True)]
