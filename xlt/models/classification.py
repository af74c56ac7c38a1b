"""Sentence(-pair) classification head (XNLI, PAWS-X): ``AutoModelForSequenceClassification``."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric
from transformers import AutoModelForSequenceClassification

from xlt.evaluation.metrics import Accuracy
from xlt.models.task import TaskModule


class SequenceClassification(TaskModule):
    """Fine-tunes a classifier on the ``<s>`` representation of a sentence pair; metric ``acc``.

    Predictions files hold one label name per line, in the order of the test file (XTREME layout).
    """

    auto_class = AutoModelForSequenceClassification
    metric_names = ("acc",)

    def new_metric(self) -> Metric:
        """Accuracy with per-example correctness (bootstrap CIs)."""
        return Accuracy()

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of the labels."""
        return self.model(**self.model_inputs(batch), labels=batch["label"]).loss

    def evaluate_batch(self, batch: dict[str, torch.Tensor], metric: Metric, code: str, stage: str) -> None:
        """Argmax prediction per example."""
        predicted = self.model(**self.model_inputs(batch)).logits.argmax(dim=-1)
        metric.update(predicted, batch["label"])
        if stage == "test":
            self.record(code, batch["index"], [self.labels[i] for i in predicted.tolist()])

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> list[dict[str, Any]]:
        """Label names and probabilities of a batch, with their language and row."""
        probs = self.model(**self.model_inputs(batch)).logits.softmax(dim=-1)
        return [{"lang": self.languages[int(lang)], "index": int(index), "label": self.labels[int(p.argmax())],
                 "probs": p.tolist()} for lang, index, p in zip(batch["lang"], batch["index"], probs, strict=True)]
