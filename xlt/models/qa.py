"""Extractive QA head (TyDi QA GoldP, XQuAD, MLQA): ``AutoModelForQuestionAnswering``.

Training uses the windows' ``start_positions`` / ``end_positions`` (``<s>`` when the answer is outside the
window). Evaluation follows the usual SQuAD post-processing: for every window of a question the ``n_best``
highest start and end logits among context tokens are paired, pairs with ``start <= end`` and at most
``max_answer_length`` tokens are scored ``start_logit + end_logit``, and the best pair over all windows gives
the answer ``context[offset_start[start]:offset_end[end]]`` — always a substring of the context. The data
module (:class:`~xlt.datamodules.qa.QADataModule`) keeps all windows of a question in one evaluation batch,
so answers are final within a batch, on any rank.

Metrics: SQuAD ``f1`` and ``em`` (:class:`~xlt.evaluation.metrics.SquadF1EM`). Answers are normalised the way
each language's benchmark is officially scored (``answer_normalisation: auto``, from
:meth:`~xlt.datamodules.qa.QADataModule.official_normalization`): the SQuAD v1.1 script (``squad_v1``) for XQuAD,
TyDi QA GoldP, SQuAD and the synthetic panel — what XTREME reports — and MLQA's language-aware script (``mlqa``)
for MLQA; ``squad_v1`` or ``mlqa`` force one protocol for every language. The protocol is recorded as run tag
``xlt.qa_normalization`` (per language when they differ), with ``xlt.qa_normalization.note`` naming languages that
``mlqa`` scores with its generic rule because MLQA's script does not define them (``xlt report`` prints both).
Prediction files hold ``{question id: answer}`` per language (``test-<lang>.json``, XTREME's layout).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics import Metric
from transformers import AutoModelForQuestionAnswering

from xlt.datamodules.qa import NORMALIZATION_NOTE_TAG, NORMALIZATION_TAG
from xlt.errors import XltError
from xlt.evaluation.metrics import (
    QA_NORMALIZATION_RULES,
    QANormalization,
    SquadF1EM,
    mlqa_undefined_note,
)
from xlt.models.task import TaskModule

Normalisation = Literal["auto", "squad_v1", "mlqa", "squad"]
_STAGE_SPLIT = {"val": "dev", "test": "test", "predict": "test"}


@dataclass(frozen=True)
class Answer:
    """A predicted answer: text, character span in the context (``-1`` when empty) and score."""

    text: str
    start: int
    end: int
    score: float


NO_ANSWER = Answer("", -1, -1, float("-inf"))


def best_window_span(start_logits: Tensor, end_logits: Tensor, offset_start: Tensor, n_best: int,
                     max_answer_length: int) -> tuple[float, int, int] | None:
    """``(score, start token, end token)`` of a window's best span among its context tokens
    (``offset_start >= 0``): the top ``n_best`` starts and ends paired, ``start <= end``, at most
    ``max_answer_length`` tokens; ``None`` when no pair qualifies."""
    valid = offset_start >= 0
    count = int(valid.sum())
    if count == 0:
        return None
    k = min(n_best, count)
    start_logits, end_logits = start_logits.float(), end_logits.float()
    start_val, start_idx = start_logits.masked_fill(~valid, float("-inf")).topk(k)
    end_val, end_idx = end_logits.masked_fill(~valid, float("-inf")).topk(k)
    length = end_idx[None, :] - start_idx[:, None] + 1
    allowed = (length >= 1) & (length <= max_answer_length)
    if not bool(allowed.any()):
        return None
    scores = (start_val[:, None] + end_val[None, :]).masked_fill(~allowed, float("-inf"))
    best = int(scores.argmax())
    i, j = divmod(best, k)
    return float(scores[i, j]), int(start_idx[i]), int(end_idx[j])


def extract_answer(windows: Sequence[tuple[Tensor, Tensor, Tensor, Tensor]], context: str, n_best: int = 20,
                   max_answer_length: int = 30) -> Answer:
    """The best answer of one question over its windows ``(start_logits, end_logits, offset_start,
    offset_end)`` (see the module docstring); the empty answer when no window has a valid span."""
    best = NO_ANSWER
    for start_logits, end_logits, offset_start, offset_end in windows:
        found = best_window_span(start_logits, end_logits, offset_start, n_best, max_answer_length)
        if found is not None and found[0] > best.score:
            score, s, e = found
            start_char, end_char = int(offset_start[s]), int(offset_end[e])
            best = Answer(context[start_char:end_char], start_char, end_char, score)
    return best


class SpanExtraction(TaskModule):
    """Fine-tunes a start/end span head on SQuAD-format QA; metrics ``f1`` and ``em``."""

    auto_class = AutoModelForQuestionAnswering
    metric_names = ("f1", "em")

    def __init__(self, *, max_answer_length: int = 30, n_best: int = 20,
                 answer_normalisation: Normalisation = "auto", **kwargs: Any) -> None:
        """Set up the QA module; other arguments are those of :class:`~xlt.models.task.TaskModule`.

        Args:
            max_answer_length: longest predicted answer in tokens.
            n_best: start and end candidates per window considered in post-processing.
            answer_normalisation: how answers are normalised before F1/EM. ``auto`` (default): each language's
                benchmark's official protocol — ``squad_v1`` for XQuAD, TyDi QA GoldP, SQuAD and the synthetic
                panel (as XTREME scores them), ``mlqa`` for MLQA. ``squad_v1``: the official SQuAD v1.1 rule for
                every language (lowercase, ASCII punctuation and English articles removed, whitespace tokens).
                ``mlqa``: MLQA's language-aware rule (Unicode punctuation, the language's articles, Chinese
                character segmentation; languages MLQA does not define get its generic rule). ``squad`` is an
                alias of ``squad_v1``. Logged as run tag ``xlt.qa_normalization``.
        """
        super().__init__(**kwargs)
        for name, value in (("max_answer_length", max_answer_length), ("n_best", n_best)):
            if value < 1:
                raise XltError(f"model.{name} {value} must be a positive integer")
        if answer_normalisation not in ("auto", "squad_v1", "mlqa", "squad"):
            raise XltError(f"model.answer_normalisation {answer_normalisation!r} must be 'auto', 'squad_v1' or "
                           "'mlqa'")
        self.max_answer_length, self.n_best = int(max_answer_length), int(n_best)
        self.answer_normalisation = "squad_v1" if answer_normalisation == "squad" else answer_normalisation
        #: language -> ``(normalisation, why)`` resolved in ``setup``
        self.normalizations: dict[str, tuple[QANormalization, str]] = {}

    # ------------------------------------------------------------------------------------------ metrics
    def normalization_of(self, code: str) -> QANormalization:
        """The answer normalisation of language ``code`` (``answer_normalisation``, or its benchmark's under
        ``auto``; ``squad_v1`` before ``setup`` has seen the data)."""
        if self.answer_normalisation != "auto":
            return self.answer_normalisation  # type: ignore[return-value]
        return self.normalizations.get(code, ("squad_v1", ""))[0]

    def new_metric(self, code: str | None = None) -> Metric:
        """SQuAD F1/EM for language ``code`` with its normalisation (:meth:`normalization_of`)."""
        if code is None:
            return SquadF1EM()
        return SquadF1EM(lang=code, normalization=self.normalization_of(code))

    def setup(self, stage: str) -> None:
        """The base setup, then each language's normalisation and one metric per language and stage."""
        super().setup(stage)
        datamodule = self.trainer.datamodule
        if datamodule.task != "qa":
            raise XltError(f"{type(self).__name__} needs QA data (data.class_path: xlt.datamodules.qa.QADataModule), "
                           f"not {datamodule.task}")
        official = getattr(datamodule, "official_normalization", None)
        for code in self.languages:
            if self.answer_normalisation != "auto":
                self.normalizations[code] = (self.answer_normalisation, "model.answer_normalisation")
            elif official is not None:
                normalization, benchmark = official(code)
                self.normalizations[code] = (normalization, f"auto: {benchmark}")
            else:
                self.normalizations[code] = ("squad_v1", "auto: SQuAD-format data")
        for key in list(self.metrics):
            code = key.split("_", 1)[1]
            metric = self.metrics[key]
            if (metric.lang, metric.normalization) != (code, self.normalization_of(code)):
                self.metrics[key] = self.new_metric(code)

    def run_tags(self, languages: Sequence[str] | None = None) -> dict[str, str]:
        """Run tags of the answer normalisation of ``languages`` (default: the last test's languages, else all):
        ``xlt.qa_normalization`` (``squad_v1``, ``mlqa``, or ``<lang>=<protocol>,...`` when they differ) and,
        when ``mlqa`` scores a language MLQA's script does not define, ``xlt.qa_normalization.note``."""
        if languages is None:
            languages = [row.group for row in self.results[0].languages] if self.results else self.languages
        protocols = {code: self.normalization_of(code) for code in languages}
        distinct = sorted(set(protocols.values()))
        value = distinct[0] if len(distinct) == 1 else ",".join(f"{c}={p}" for c, p in protocols.items())
        tags = {NORMALIZATION_TAG: value}
        note = mlqa_undefined_note([c for c, p in protocols.items() if p == "mlqa"])
        if note is not None:
            tags[NORMALIZATION_NOTE_TAG] = note
        return tags

    def describe_normalization(self, languages: Sequence[str] | None = None) -> str:
        """One line naming the protocol(s) and their rules, e.g. for logs and the test printout."""
        tags = self.run_tags(languages)
        value = tags[NORMALIZATION_TAG]
        rules = "; ".join(f"{p}: {QA_NORMALIZATION_RULES[p]}" for p in QA_NORMALIZATION_RULES
                          if p == value or f"={p}" in value)
        line = f"QA answer normalisation: {value} ({rules})"
        if NORMALIZATION_NOTE_TAG in tags:
            line += f"; {tags[NORMALIZATION_NOTE_TAG]}"
        return line + "."

    def on_test_epoch_end(self) -> None:
        """The base's disaggregation and logging (with :meth:`run_tags`), then the normalisation in words."""
        super().on_test_epoch_end()
        if self.results and self._updated("test"):
            self.print(self.describe_normalization())

    def per_example(self, metric: Metric, name: str) -> Any:
        """Per-question ``f1`` or ``em`` scores."""
        return metric.per_example(name)

    # ------------------------------------------------------------------------------------------ steps
    def training_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Mean cross-entropy of the start and end positions."""
        return self.model(**self.model_inputs(batch), start_positions=batch["start_positions"],
                          end_positions=batch["end_positions"]).loss

    def answers(self, batch: dict[str, Tensor], split: str) -> list[tuple[int, dict[str, Any], Answer]]:
        """``(question row, question record, answer)`` for every question of an evaluation batch."""
        datamodule = self.trainer.datamodule
        code = self.languages[int(batch["lang"][0])]
        rows = datamodule.splits[split][code]
        output = self.model(**self.model_inputs(batch))
        start_logits, end_logits = output.start_logits.detach().cpu(), output.end_logits.detach().cpu()
        offset_start, offset_end = batch["offset_start"].cpu(), batch["offset_end"].cpu()
        windows: dict[int, list[int]] = {}
        for f, question in enumerate(batch["index"].tolist()):
            windows.setdefault(int(question), []).append(f)
        results = []
        for question, features in windows.items():
            expected = int(batch["windows"][features[0]])
            if len(features) != expected:
                raise RuntimeError(f"question {question} ({code}) has {len(features)} of its {expected} windows in "
                                   "this batch — evaluation batches must keep a question's windows together")
            record = rows[question]
            answer = extract_answer([(start_logits[f], end_logits[f], offset_start[f], offset_end[f])
                                     for f in features], record["context"], self.n_best, self.max_answer_length)
            results.append((question, record, answer))
        return results

    def evaluate_batch(self, batch: dict[str, Tensor], metric: Metric, code: str, stage: str) -> None:
        """Best answer per question (over its windows) against its gold answers; recorded when testing."""
        results = self.answers(batch, _STAGE_SPLIT[stage])
        metric.update([a.text for _, _, a in results], [list(r["answers"]["text"]) for _, r, _ in results])
        if stage == "test":
            self.record(code, torch.tensor([q for q, _, _ in results]), [(r["id"], a.text) for _, r, a in results])

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> list[dict[str, Any]]:
        """Answers of a test batch: language, question row and id, answer text, character span and score."""
        code = self.languages[int(batch["lang"][0])]
        return [{"lang": code, "index": q, "id": r["id"], "answer": a.text, "start": a.start, "end": a.end,
                 "score": a.score} for q, r, a in self.answers(batch, "test")]

    def prediction_file(self, code: str, predictions: dict[int, Any]) -> tuple[str, str]:
        """``test-<lang>.json``: ``{question id: answer text}`` (XTREME's QA layout)."""
        answers = {qid: text for _, (qid, text) in sorted(predictions.items())}
        return f"test-{code}.json", json.dumps(answers, ensure_ascii=False, indent=1) + "\n"
