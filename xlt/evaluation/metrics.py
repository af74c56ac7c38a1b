"""Task metrics as ``torchmetrics.Metric`` subclasses that keep per-example statistics for the bootstrap.

Each metric accumulates *per-example* states (list states reduced with ``cat`` across ranks), so ``compute()``
gives the usual scalar and :meth:`per_example` gives a :class:`~xlt.evaluation.bootstrap.PerExample` for
confidence intervals and paired tests. Use one metric object per evaluation language.

- :class:`Accuracy` — sentence classification (XNLI, PAWS-X) and token classification (POS; per-sentence
  correct/total so a resample keeps sentences whole).
- :class:`SpanF1` — entity-level micro F1 with seqeval's default (conlleval) chunking for IOB2/IOBES, which
  tolerates a stray ``I-X`` after ``O`` or after another type by starting an entity there.
- :class:`SquadF1EM` — SQuAD F1/EM with the official SQuAD v1.1 normalisation (``squad_v1``, XTREME's protocol for
  XQuAD and TyDi QA GoldP) or MLQA's language-aware one (``mlqa``).
- :class:`RetrievalP1` — precision@1 of cosine nearest-neighbour retrieval, both directions (Tatoeba).

The pure functions (:func:`get_entities`, :func:`normalize_answer`, :func:`squad_f1`, :func:`squad_em`,
:func:`retrieval_hits`) are the reference definitions the metric classes apply.
"""

from __future__ import annotations

import functools
import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from xlt.evaluation.bootstrap import PerExample
from xlt.languages import to_iso639_3

IGNORE_INDEX = -100


def _zero() -> Tensor:
    return torch.tensor(0.0, dtype=torch.float64)


class _PerExampleMetric(Metric):
    """Shared plumbing: synced access to the concatenated list states.

    ``compute()`` values are float64 tensors (the per-example states are summed in float64), so a logged score is
    the exact mean of the per-example scores, as :meth:`per_example`'s ``score()``; log them as float64 tensors
    (``self.log(name, value)`` of a Python float would round to float32).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def _cat(self, name: str, dtype: torch.dtype = torch.float64) -> Tensor:
        state = getattr(self, name)
        if isinstance(state, list) and not state:
            return torch.zeros(0, dtype=dtype)
        return dim_zero_cat(state).detach().to("cpu", dtype)

    def _synced_states(self, *names: str) -> list[np.ndarray]:
        """The named states concatenated over updates and (when distributed) over ranks, as numpy arrays."""
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync,
                               should_unsync=self._should_unsync):
            return [self._cat(name).numpy() for name in names]


# --------------------------------------------------------------------------------------------- accuracy


class Accuracy(_PerExampleMetric):
    """Accuracy that keeps per-example correctness.

    ``update(preds, target)``: ``preds`` are class ids ``[N]`` or logits ``[N, C]`` (argmax taken) for sentence
    classification; for token classification ``preds`` ``[B, T]`` (or logits ``[B, T, C]``) and ``target``
    ``[B, T]`` with ``ignore_index`` on positions that are not scored (padding, non-first sub-tokens). Each
    row of a 2-d target is one example with ``correct`` and ``total`` counts, so token accuracy is
    ``sum(correct) / sum(total)`` (micro over tokens) and the bootstrap resamples sentences.

    Args:
        ignore_index: target value of positions that are not scored.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ignore_index = ignore_index
        self.add_state("correct", default=[], dist_reduce_fx="cat")
        self.add_state("total", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch (see the class docstring for shapes)."""
        if preds.ndim == target.ndim + 1:
            preds = preds.argmax(dim=-1)
        if preds.shape != target.shape:
            raise ValueError(f"Accuracy: preds {tuple(preds.shape)} and target {tuple(target.shape)} differ")
        if target.ndim == 1:
            target, preds = target[:, None], preds[:, None]
        elif target.ndim != 2:
            raise ValueError(f"Accuracy: target must be [N] or [B, T], got {tuple(target.shape)}")
        mask = target != self.ignore_index
        self.correct.append(((preds == target) & mask).sum(dim=1).to(torch.long))
        self.total.append(mask.sum(dim=1).to(torch.long))

    def compute(self) -> Tensor:
        """Micro accuracy over all scored positions (0 when nothing was scored)."""
        correct, total = self._cat("correct").sum(), self._cat("total").sum()
        return correct / total if total > 0 else _zero()

    def per_example(self) -> PerExample:
        """Per-example ``(correct, total)`` rows, statistic ``ratio`` (examples with nothing scored dropped)."""
        correct, total = self._synced_states("correct", "total")
        keep = total > 0
        return PerExample.ratio(correct[keep], total[keep])


# --------------------------------------------------------------------------------------------- span F1


def _split_tag(tag: str) -> tuple[str, str]:
    """seqeval's (prefix) reading of a tag: first character is the chunk tag, the rest after ``-`` the type."""
    return tag[:1], tag[1:].split("-", maxsplit=1)[-1] or "_"


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def get_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities ``(type, start, end_inclusive)`` of one tag sequence, with seqeval's default chunking.

    This is conlleval's rule set as implemented by ``seqeval.metrics.sequence_labeling.get_entities`` (the
    non-strict mode used by ``seqeval.metrics.f1_score``): ``I-X`` after ``O`` (or after a different type)
    starts a new ``X`` entity; ``B-X I-Y`` gives two entities. IOBES tags are read the same way.
    """
    prev_tag, prev_type, begin = "O", "", 0
    chunks: list[tuple[str, int, int]] = []
    for i, label in enumerate([*tags, "O"]):
        tag, type_ = _split_tag(label)
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def span_counts(pred_tags: Sequence[str], gold_tags: Sequence[str]) -> tuple[int, int, int]:
    """``(tp, fp, fn)`` of exact entity matches (type and boundaries) between two tag sequences of one sentence."""
    if len(pred_tags) != len(gold_tags):
        raise ValueError(f"span_counts: {len(pred_tags)} predicted tags for {len(gold_tags)} gold tags")
    pred, gold = set(get_entities(pred_tags)), set(get_entities(gold_tags))
    tp = len(pred & gold)
    return tp, len(pred) - tp, len(gold) - tp


class SpanF1(_PerExampleMetric):
    """Entity-level micro F1 (``seqeval.metrics.f1_score`` semantics), keeping per-sentence tp/fp/fn.

    ``update(preds, target)`` takes either tag strings (``list[list[str]]``, one list per sentence) or id tensors
    ``[B, T]`` (logits ``[B, T, C]`` are argmaxed) with ``target == ignore_index`` on positions that are not
    scored; ids map to tags through ``labels``. Each sentence keeps its own ``(tp, fp, fn)`` so the bootstrap
    resamples sentences and recomputes micro F1.

    Args:
        labels: tag of each label id, e.g. ``["O", "B-PER", "I-PER", ...]``; needed for tensor input.
        ignore_index: target value of positions that are not scored.
    """

    def __init__(self, labels: Sequence[str] | None = None, ignore_index: int = IGNORE_INDEX, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.labels = list(labels) if labels is not None else None
        if self.labels is not None:
            bad = [t for t in self.labels if t != "O" and not re.match(r"^[BIES]-.+", t)]
            if bad:
                raise ValueError(f"SpanF1: labels {bad} are not IOB2/IOBES tags (O, B-X, I-X, E-X, S-X)")
        self.ignore_index = ignore_index
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def _to_tags(self, preds: Tensor, target: Tensor) -> tuple[list[list[str]], list[list[str]]]:
        if self.labels is None:
            raise ValueError("SpanF1: pass labels=[...] to update with id tensors")
        if preds.ndim == target.ndim + 1:
            preds = preds.argmax(dim=-1)
        if preds.shape != target.shape or target.ndim != 2:
            raise ValueError(f"SpanF1: preds {tuple(preds.shape)} and target {tuple(target.shape)} must be [B, T]")
        pred_tags, gold_tags = [], []
        for p_row, t_row in zip(preds.tolist(), target.tolist(), strict=True):
            pairs = [(p, t) for p, t in zip(p_row, t_row, strict=True) if t != self.ignore_index]
            pred_tags.append([self.labels[p] for p, _ in pairs])
            gold_tags.append([self.labels[t] for _, t in pairs])
        return pred_tags, gold_tags

    def update(self, preds: Tensor | Sequence[Sequence[str]], target: Tensor | Sequence[Sequence[str]]) -> None:
        """Add a batch of sentences (tag strings or id tensors; see the class docstring)."""
        if isinstance(preds, Tensor) or isinstance(target, Tensor):
            preds, target = self._to_tags(torch.as_tensor(preds), torch.as_tensor(target))
        if len(preds) != len(target):
            raise ValueError(f"SpanF1: {len(preds)} predicted sentences for {len(target)} gold sentences")
        counts = torch.tensor([span_counts(p, t) for p, t in zip(preds, target, strict=True)],
                              dtype=torch.long).reshape(-1, 3)
        self.tp.append(counts[:, 0])
        self.fp.append(counts[:, 1])
        self.fn.append(counts[:, 2])

    def compute(self) -> Tensor:
        """Micro F1 over all sentences (0 when there are no entities at all, as seqeval)."""
        tp, fp, fn = (float(self._cat(n).sum()) for n in ("tp", "fp", "fn"))
        den = 2 * tp + fp + fn
        return torch.tensor(2 * tp / den if den else 0.0, dtype=torch.float64)

    def per_example(self) -> PerExample:
        """Per-sentence ``(tp, fp, fn)``, statistic ``f1``."""
        return PerExample.f1(*self._synced_states("tp", "fp", "fn"))


# --------------------------------------------------------------------------------------------- SQuAD / MLQA

QANormalization = Literal["squad_v1", "mlqa"]
"""Answer normalisation protocol of SQuAD F1/EM: ``squad_v1`` (the official SQuAD v1.1 script, which XTREME applies
to XQuAD and TyDi QA GoldP in every language) or ``mlqa`` (MLQA's language-aware script)."""

QA_NORMALIZATIONS: tuple[str, ...] = ("squad_v1", "mlqa")

QA_NORMALIZATION_RULES = {
    "squad_v1": "official SQuAD v1.1 script: lowercase, ASCII punctuation and English articles a/an/the removed, "
                "whitespace tokens, for every language",
    "mlqa": "MLQA's script: lowercase, Unicode punctuation removed, the language's articles removed, whitespace "
            "tokens (Chinese: one token per CJK character)",
}
"""One-line description of each protocol (for run tags and reports)."""

MLQA_LANGUAGES = ("eng", "spa", "deu", "ara", "hin", "vie", "zho")
"""The languages MLQA's evaluation script defines (en, es, de, ar, hi, vi, zh; its script raises for any other)."""

MLQA_GENERIC_RULE = ("generic rule (lowercase, Unicode punctuation removed, no article removal, "
                     "whitespace tokens)")
"""What xlt applies under ``mlqa`` to a language MLQA's script does not define."""


def mlqa_defines(lang: str) -> bool:
    """Whether MLQA's evaluation script has rules for ``lang`` (ISO 639-3 or a dataset code such as ``zh``)."""
    return to_iso639_3(lang) in MLQA_LANGUAGES


def mlqa_undefined_note(languages: Sequence[str]) -> str | None:
    """The note naming the languages scored under ``mlqa`` that MLQA's script does not define (``None`` if none),
    e.g. ``mlqa: rus, tur scored with the generic rule (...)``."""
    undefined = [code for code in languages if not mlqa_defines(code)]
    if not undefined:
        return None
    return (f"mlqa: {', '.join(undefined)} scored with the {MLQA_GENERIC_RULE} — MLQA's script defines only "
            "en, es, de, ar, hi, vi, zh")


@functools.cache
def unicode_punctuation() -> frozenset[str]:
    """Characters removed by MLQA's normalisation: Unicode category P* plus ASCII punctuation (``$+<=>^`|~`` are S*).

    Built once on first use (it scans every code point).
    """
    return frozenset(
        chr(i) for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i)).startswith("P")
    ) | frozenset(string.punctuation)


# MLQA's article lists (mlqa_evaluation_v1.py), keyed by ISO 639-3. Arabic removes every "ال" like the script does.
MLQA_ARTICLES = {
    "eng": r"\b(a|an|the)\b",
    "spa": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "vie": r"\b(của|là|cái|chiếc|những)\b",
    "deu": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "ara": r"\sال^|ال",
}
MIXED_SEGMENTATION = frozenset({"zho"})
"""Languages tokenised by MLQA's mixed segmentation (each CJK ideograph ``U+4E00..U+9FA5`` is a token)."""
_CJK = re.compile(r"[\u4e00-\u9fa5]")


def mixed_segmentation(text: str) -> list[str]:
    """MLQA's tokenisation for Chinese: every CJK character and punctuation mark alone, other runs split on spaces."""
    punctuation = unicode_punctuation()
    tokens: list[str] = []
    run = ""
    for char in text:
        if _CJK.match(char) or char in punctuation:
            tokens.extend(run.split())
            run = ""
            tokens.append(char)
        else:
            run += char
    tokens.extend(run.split())
    return tokens


def normalize_answer(text: str, lang: str | None = None) -> str:
    """Normalise an answer string before comparison.

    ``lang=None``: the official SQuAD v1.1 rule (``squad_v1``) — lowercase, drop ASCII punctuation, drop English
    articles ``a|an|the``, collapse whitespace. With a language code (ISO 639-3 or a dataset code such as ``zh``):
    MLQA's rule (``mlqa``) — lowercase, drop Unicode punctuation, drop that language's articles (English, Spanish,
    German, Vietnamese, Arabic; none for Hindi and Chinese), then whitespace tokenisation, or mixed segmentation
    for Chinese. Languages outside MLQA's seven (where its script raises) get :data:`MLQA_GENERIC_RULE`.
    """
    text = text.lower()
    if lang is None:
        text = "".join(ch for ch in text if ch not in string.punctuation)
        text = re.sub(r"\b(a|an|the)\b", " ", text)
        return " ".join(text.split())
    code = to_iso639_3(lang)
    punctuation = unicode_punctuation()
    text = "".join(ch for ch in text if ch not in punctuation)
    if code in MLQA_ARTICLES:
        text = re.sub(MLQA_ARTICLES[code], " ", text)
    tokens = mixed_segmentation(text) if code in MIXED_SEGMENTATION else text.split()
    return " ".join(t for t in tokens if t.strip())


def squad_f1(prediction: str, ground_truths: str | Sequence[str], lang: str | None = None) -> float:
    """Token F1 of ``prediction`` against the best-matching ground truth (0 when no token is shared);
    ``lang`` as in :func:`normalize_answer` (``None``: ``squad_v1``, a code: ``mlqa``)."""
    best = 0.0
    pred_tokens = normalize_answer(prediction, lang).split()
    for truth in [ground_truths] if isinstance(ground_truths, str) else ground_truths:
        truth_tokens = normalize_answer(truth, lang).split()
        same = sum((Counter(pred_tokens) & Counter(truth_tokens)).values())
        if same:
            precision, recall = same / len(pred_tokens), same / len(truth_tokens)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def squad_em(prediction: str, ground_truths: str | Sequence[str], lang: str | None = None) -> float:
    """1.0 when the normalised prediction equals some normalised ground truth, else 0.0 (``lang`` as in
    :func:`normalize_answer`)."""
    pred = normalize_answer(prediction, lang)
    truths = [ground_truths] if isinstance(ground_truths, str) else ground_truths
    return float(any(pred == normalize_answer(t, lang) for t in truths))


class SquadF1EM(_PerExampleMetric):
    """SQuAD F1 and exact match (max over gold answers), keeping per-question scores.

    ``update(preds, targets)``: predicted answer strings and, per question, its gold answer strings.
    ``compute()`` returns ``{"f1": ..., "em": ...}`` as fractions in [0, 1] (float64).

    Args:
        lang: the questions' language (ISO 639-3 or a dataset code); needed for ``mlqa``.
        normalization: ``squad_v1`` (default; the official SQuAD v1.1 rule for every language, as XTREME scores
            XQuAD and TyDi QA GoldP) or ``mlqa`` (MLQA's language-aware rule for ``lang``; see
            :func:`normalize_answer`).
    """

    def __init__(self, lang: str | None = None, normalization: QANormalization = "squad_v1",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if normalization not in QA_NORMALIZATIONS:
            raise ValueError(f"SquadF1EM: normalization {normalization!r} must be one of {QA_NORMALIZATIONS}")
        if normalization == "mlqa" and lang is None:
            raise ValueError("SquadF1EM: normalization 'mlqa' is language-aware — pass lang=<language code>")
        self.lang, self.normalization = lang, normalization
        self._rule_lang = lang if normalization == "mlqa" else None
        self.add_state("f1", default=[], dist_reduce_fx="cat")
        self.add_state("em", default=[], dist_reduce_fx="cat")

    @property
    def rule(self) -> str:
        """The rule applied: ``squad_v1``, ``mlqa``, or ``mlqa (generic rule ...)`` for a language MLQA's script
        does not define."""
        if self.normalization == "mlqa" and not mlqa_defines(self.lang or ""):
            return f"mlqa ({MLQA_GENERIC_RULE})"
        return self.normalization

    def update(self, preds: Sequence[str], targets: Sequence[str | Sequence[str]]) -> None:
        """Add predicted answers and their gold answers."""
        if len(preds) != len(targets):
            raise ValueError(f"SquadF1EM: {len(preds)} predictions for {len(targets)} questions")
        lang = self._rule_lang
        self.f1.append(torch.tensor([squad_f1(p, t, lang) for p, t in zip(preds, targets, strict=True)],
                                    dtype=torch.float64))
        self.em.append(torch.tensor([squad_em(p, t, lang) for p, t in zip(preds, targets, strict=True)],
                                    dtype=torch.float64))

    def compute(self) -> dict[str, Tensor]:
        """Mean F1 and EM (float64, the same number as ``per_example(...).score()``; 0 when empty)."""
        return {name: torch.tensor(PerExample.mean(values.numpy()).score(), dtype=torch.float64) if values.numel()
                else _zero() for name, values in (("f1", self._cat("f1")), ("em", self._cat("em")))}

    def per_example(self, which: str = "f1") -> PerExample:
        """Per-question scores of ``which`` (``f1`` or ``em``), statistic ``mean``."""
        if which not in ("f1", "em"):
            raise ValueError(f"SquadF1EM.per_example: which must be 'f1' or 'em', got {which!r}")
        (values,) = self._synced_states(which)
        return PerExample.mean(values)


# --------------------------------------------------------------------------------------------- retrieval

DIRECTIONS = ("src2tgt", "tgt2src")


def nearest_neighbours(queries: Tensor, keys: Tensor, chunk_size: int = 4096) -> Tensor:
    """Row index of each query's cosine-nearest key (ties: the lowest index, as ``argmax``), in float64 and chunks
    of ``chunk_size`` queries."""
    q = torch.nn.functional.normalize(queries.double(), dim=1)
    k = torch.nn.functional.normalize(keys.double(), dim=1)
    if not len(q):
        return torch.zeros(0, dtype=torch.long)
    return torch.cat([(q[i:i + chunk_size] @ k.T).argmax(dim=1) for i in range(0, len(q), chunk_size)]).cpu()


def retrieval_hits(source: Tensor, target: Tensor, chunk_size: int = 4096) -> tuple[Tensor, Tensor]:
    """Per-sentence P@1 hits of cosine nearest-neighbour retrieval between aligned embeddings.

    Row ``i`` of ``source`` translates row ``i`` of ``target``. Returns two bool tensors ``[N]``: whether the
    nearest target of source ``i`` is target ``i`` (``src2tgt``) and vice versa (``tgt2src``). Ties go to the
    lowest index, as ``argmax``.
    """
    if source.ndim != 2 or source.shape != target.shape:
        raise ValueError(f"retrieval_hits: source {tuple(source.shape)} and target {tuple(target.shape)} "
                         "must both be [N, D]")
    gold = torch.arange(source.shape[0])
    return (nearest_neighbours(source, target, chunk_size) == gold,
            nearest_neighbours(target, source, chunk_size) == gold)


class RetrievalP1(_PerExampleMetric):
    """Precision@1 of cosine nearest-neighbour retrieval in both directions (Tatoeba-style bitext retrieval).

    ``update(source, target)`` adds aligned sentence embeddings ``[B, D]`` (row i of each is a translation pair);
    retrieval runs over *all* pairs seen (and gathered from all ranks) at ``compute()``. Returns
    ``{"src2tgt": ..., "tgt2src": ..., "mean": ...}``.

    ``center=True`` subtracts each side's mean embedding before the cosine (per-language centring, Libovický et
    al. 2020, "On the Language Neutrality of Pre-trained Multilingual Representations"): a language-specific
    offset shared by all of a side's sentences then no longer dominates the similarity.
    """

    def __init__(self, center: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.center = center
        self.add_state("source", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, source: Tensor, target: Tensor) -> None:
        """Add aligned embeddings of a batch of translation pairs."""
        if source.ndim != 2 or source.shape != target.shape:
            raise ValueError(f"RetrievalP1: source {tuple(source.shape)} and target {tuple(target.shape)} "
                             "must both be [B, D]")
        self.source.append(source.detach().float())
        self.target.append(target.detach().float())

    def embeddings(self) -> tuple[Tensor, Tensor]:
        """Both sides' embeddings as retrieval compares them (centred when ``center``); call within a sync."""
        source, target = self._cat("source"), self._cat("target")
        if self.center and source.numel():
            source, target = source - source.mean(dim=0), target - target.mean(dim=0)
        return source, target

    def _hits(self) -> dict[str, Tensor]:
        source, target = self.embeddings()
        if source.numel() == 0:
            return {d: torch.zeros(0, dtype=torch.bool) for d in DIRECTIONS}
        return dict(zip(DIRECTIONS, retrieval_hits(source, target), strict=True))

    def compute(self) -> dict[str, Tensor]:
        """P@1 per direction and their mean."""
        hits = self._hits()
        out = {d: h.double().mean() if h.numel() else _zero() for d, h in hits.items()}
        out["mean"] = (out["src2tgt"] + out["tgt2src"]) / 2
        return out

    def per_example(self, direction: str = "src2tgt") -> PerExample:
        """Per-query 0/1 hits for ``direction`` (``src2tgt`` or ``tgt2src``), statistic ``mean``."""
        if direction not in DIRECTIONS:
            raise ValueError(f"RetrievalP1.per_example: direction must be one of {DIRECTIONS}, got {direction!r}")
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync,
                               should_unsync=self._should_unsync):
            hits = self._hits()
        return PerExample.mean(hits[direction].double().numpy())
