"""Extractive question answering data (TyDi QA GoldP, XQuAD, MLQA; the synthetic panel's ``qa/<code>/``).

SQuAD v1.1 JSON is read by :func:`xlt.formats.read_squad_json` (which checks that every answer
sits at its ``answer_start``) and encoded the standard Hugging Face way with the fast tokenizer: question
first, context second, ``truncation="only_second"``, sliding windows of ``max_length`` tokens overlapping by
``doc_stride`` tokens. Every window is one feature:

- ``input_ids``; ``index`` — the question's row in the split (shared by all windows of a question);
  ``window`` / ``windows`` — the window's number and the question's window count;
- ``offset_start`` / ``offset_end`` — per token, the character span in the *context* (``-1`` for question,
  special and whitespace-only tokens, and as padding), so a predicted token span maps back to
  ``context[offset_start[s]:offset_end[e]]``;
- training features only: ``start_positions`` / ``end_positions`` — the answer's first and last token, or
  ``0`` (the ``<s>`` token) both when the answer is not entirely inside the window.

Offsets are refined at the character level: spans are trimmed of whitespace (SentencePiece's ``▁`` carries the
preceding space) and byte-fallback tokens (``<0xE5>``), to which the tokenizer gives the offsets of a whole
run of unknown characters, get the span of the one character their byte belongs to.

Each language's source also names its benchmark's official answer normalisation
(:meth:`QADataModule.official_normalization`): XQuAD, TyDi QA GoldP, SQuAD and the synthetic panel are scored
with the SQuAD v1.1 script (``squad_v1``, as XTREME does), MLQA with MLQA's language-aware script (``mlqa``); the
span-extraction module applies it unless ``model.answer_normalisation`` says otherwise.

Evaluation batches keep all windows of a question together
(:class:`~xlt.datamodules.task_data.LengthBucketBatches` with the question as group, length-bucketed per language
like the other tasks), so the task module can pick each question's best span across its windows within one
batch — on any rank.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from datasets import Dataset
from torch.utils.data import DataLoader

from xlt.datamodules.task_data import LengthBucketBatches, TaskDataModule
from xlt.datamodules.task_spec import ScoringProtocol, TaskSpec
from xlt.errors import XltError
from xlt.evaluation.metrics import QANormalization
from xlt.formats import SQUAD_FEATURES, read_squad_json

CLS_INDEX = 0
NO_OFFSET = -1
_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


QA_BENCHMARKS: tuple[tuple[str, str, QANormalization], ...] = (
    ("mlqa", "MLQA", "mlqa"),
    ("xquad", "XQuAD", "squad_v1"),
    ("tydi", "TyDi QA GoldP", "squad_v1"),
    ("squad", "SQuAD", "squad_v1"),
)
"""``(name fragment, benchmark, official normalisation)``: a source whose file, directory or hub id contains the
fragment (case-insensitive) is that benchmark; scored as its official evaluation script does (XTREME scores
XQuAD and TyDi QA GoldP with the SQuAD v1.1 script in every language, MLQA with MLQA's script)."""


NORMALIZATION_TAG = "xlt.qa_normalization"
"""Run tag of the answer normalisation: ``squad_v1``, ``mlqa``, or ``<lang>=<protocol>,...`` when languages differ
(written by :class:`~xlt.models.qa.SpanExtraction`)."""
NORMALIZATION_NOTE_TAG = "xlt.qa_normalization.note"
"""Run tag naming the languages ``mlqa`` scored with its generic rule (absent when there are none)."""


def _read(path: Path, language: str | None, target: str | Path | None) -> Dataset:
    return read_squad_json(path)


def _hub_row(row: dict) -> dict:
    """SQuAD columns; raw SQuAD answers (a list of ``{text, answer_start}``) become the columnar form."""
    answers = row["answers"]
    if isinstance(answers, list):  # raw SQuAD: a list of {text, answer_start}
        answers = {"text": [a["text"] for a in answers], "answer_start": [a["answer_start"] for a in answers]}
    return {"id": str(row["id"]), "title": row.get("title") or "", "context": row["context"],
            "question": row["question"], "answers": {"text": list(answers["text"]),
                                                     "answer_start": list(answers["answer_start"])}}


QA = TaskSpec(
    name="qa", header="QA", metrics=("f1", "em"), synthetic_folder="qa", aliases=("squad", "xquad", "mlqa", "tydiqa"),
    features=SQUAD_FEATURES, read=_read,
    # synthetic panel: <split>.json; XQuAD: xquad.<lang>.json
    file_patterns=("{split}.json", "*.{lang}.json", "*{split}*.{lang}.json"),
    hub_columns={"id": ("id",), "title": ("title",), "context": ("context",), "question": ("question",),
                 "answers": ("answers",)},
    hub_row=_hub_row, optional_columns=("title",),
    protocol=ScoringProtocol(
        tag=NORMALIZATION_TAG, note_tag=NORMALIZATION_NOTE_TAG,
        rules={"squad_v1": "official SQuAD v1.1 script, as XTREME scores XQuAD and TyDi QA GoldP",
               "mlqa": "MLQA's language-aware script"},
        unrecorded="not recorded (the run predates the xlt.qa_normalization tag; xlt then defaulted to mlqa)"),
)
"""Extractive QA: SQuAD v1.1 JSON (:func:`~xlt.formats.read_squad_json`); metrics F1 (primary) and exact match;
runs record their answer normalisation (:data:`NORMALIZATION_TAG`)."""


def qa_benchmark(source: str | Path) -> tuple[str, QANormalization] | None:
    """``(benchmark, official normalisation)`` of a QA source (file, directory or hub id), ``None`` when no part
    of it names a benchmark of :data:`QA_BENCHMARKS`. The most specific part decides: a directory's JSON file
    names first, then the last three components of its path (or hub id), deepest first."""
    path = Path(source).expanduser()
    parts: list[str] = []
    if path.is_dir():
        parts += sorted(p.name for p in path.glob("*.json"))
    components = path.parts if path.exists() else str(source).split("/")
    parts += list(reversed(components))[:3]  # file, folder, parent: not the user's own project folders above
    for part in parts:
        name = part.lower()
        for fragment, benchmark, normalization in QA_BENCHMARKS:
            if fragment in name:
                return benchmark, normalization
    return None


def _byte_chars(run: bytes, text: str, normalize: Callable[[str], str] | None) -> np.ndarray | None:
    """Per byte of ``run``, the index of the character of ``text`` it encodes, when ``run`` is the UTF-8
    encoding of ``text`` (character by character after ``normalize``, or as it is); else ``None``."""
    for norm in ([normalize] if normalize is not None else []) + [None]:
        pieces = [(norm(c) if norm is not None else c).encode("utf-8") for c in text]
        if b"".join(pieces) == run:
            return np.repeat(np.arange(len(text)), [len(p) for p in pieces])
    return None


def char_normalizer(tokenizer: Any) -> Callable[[str], str] | None:
    """The normalizer of a fast tokenizer as a string function (``None`` when it has none)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    normalizer = getattr(backend, "normalizer", None)
    return normalizer.normalize_str if normalizer is not None else None


def refine_offsets(tokens: Sequence[str], offsets: Sequence[tuple[int, int]], text: str,
                   normalize: Callable[[str], str] | None = None) -> list[tuple[int, int]]:
    """Character spans of ``tokens`` in ``text``: byte-fallback runs split per character, whitespace trimmed.

    A run of consecutive byte tokens (``<0xE5>``) sharing one span whose bytes are the UTF-8 encoding of that
    span (after the tokenizer's per-character ``normalize``, e.g. NFKC) gets, per token, the span of the
    character holding its byte. Spans are then trimmed of whitespace at both ends; a token covering only
    whitespace (or nothing) gets ``(-1, -1)``.
    """
    spans = np.asarray(offsets, dtype=np.int64).reshape(-1, 2).copy()
    i = 0
    while i < len(tokens):
        if _BYTE_TOKEN.match(tokens[i]) is None:
            i += 1
            continue
        j = i + 1
        while j < len(tokens) and (spans[j] == spans[i]).all() and _BYTE_TOKEN.match(tokens[j]):
            j += 1
        start, end = int(spans[i, 0]), int(spans[i, 1])
        run = bytes(int(tokens[k][3:5], 16) for k in range(i, j))
        chars = _byte_chars(run, text[start:end], normalize)
        if chars is not None:
            spans[i:j, 0] = start + chars
            spans[i:j, 1] = start + chars + 1
        i = j
    # trim whitespace: next non-space at or after the start, one past the last non-space before the end
    solid = np.fromiter((not c.isspace() for c in text), dtype=bool, count=len(text))
    positions = np.flatnonzero(solid)
    starts = np.searchsorted(positions, spans[:, 0], side="left")
    ends = np.searchsorted(positions, spans[:, 1], side="left")
    new_start = np.append(positions, len(text))[starts]
    new_end = np.where(ends > 0, np.append(-1, positions)[ends] + 1, 0)
    keep = new_start < new_end
    return [(int(s), int(e)) if k else (NO_OFFSET, NO_OFFSET)
            for s, e, k in zip(new_start.tolist(), new_end.tolist(), keep.tolist(), strict=True)]


def answer_token_span(offset_start: Sequence[int], offset_end: Sequence[int], start_char: int,
                      end_char: int) -> tuple[int, int] | None:
    """First and last token of the character span ``[start_char, end_char)`` in one window, or ``None`` when
    the span is not entirely inside the window's context tokens (those with offsets ``>= 0``)."""
    valid = [t for t, s in enumerate(offset_start) if s >= 0]
    if not valid or offset_start[valid[0]] > start_char or offset_end[valid[-1]] < end_char:
        return None
    first = next(t for t in valid if offset_end[t] > start_char)
    last = next(t for t in reversed(valid) if offset_start[t] < end_char)
    return (first, last) if first <= last else None


def stripped_answer(text: str, start: int) -> tuple[int, int]:
    """``(start_char, end_char)`` of an answer without its leading and trailing whitespace."""
    end = start + len(text)
    return start + len(text) - len(text.lstrip()), end - (len(text) - len(text.rstrip()))


def truncate_questions(tokenizer: Any, questions: Sequence[str], max_tokens: int) -> list[str]:
    """``questions`` cut to at most ``max_tokens`` tokens each (at a character boundary)."""
    out = list(questions)
    encoded = tokenizer(out, add_special_tokens=False, return_offsets_mapping=True)
    long = [i for i, ids in enumerate(encoded["input_ids"]) if len(ids) > max_tokens]
    normalize = char_normalizer(tokenizer)
    for i in long:
        spans = refine_offsets(tokenizer.convert_ids_to_tokens(encoded["input_ids"][i]), encoded["offset_mapping"][i],
                               out[i], normalize)
        out[i] = out[i][: max([e for _, e in spans[:max_tokens]] + [0])]
    while long:  # a different segmentation at the cut can add tokens: shorten further
        lengths = tokenizer([out[i] for i in long], add_special_tokens=False, return_length=True)["length"]
        long = [i for i, n in zip(long, lengths, strict=True) if n > max_tokens]
        for i in long:
            out[i] = out[i][:-1]
    return out


def encode_windows(tokenizer: Any, questions: Sequence[str], contexts: Sequence[str], max_length: int,
                   doc_stride: int, max_question_length: int) -> dict[str, list]:
    """Sliding-window features of questions and contexts (see the module docstring): ``input_ids``,
    ``index`` (question row), ``window``, ``windows``, ``offset_start``, ``offset_end``.

    Questions longer than ``max_question_length`` tokens are cut to that length.
    """
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    if max_length - specials - max_question_length <= doc_stride:
        raise XltError(f"data.max_length {max_length} leaves {max_length - specials - max_question_length} context "
                       f"tokens after a {max_question_length}-token question and {specials} special tokens, not more "
                       f"than data.doc_stride {doc_stride} — raise max_length or lower doc_stride / "
                       "max_question_length")
    contexts, normalize = list(contexts), char_normalizer(tokenizer)
    questions = truncate_questions(tokenizer, [q.strip() for q in questions], max_question_length)
    unique = {context: i for i, context in enumerate(dict.fromkeys(contexts))}
    alone = tokenizer(list(unique), add_special_tokens=False, return_offsets_mapping=True)
    refined: dict[int, list[tuple[int, int]]] = {}
    encoded = tokenizer(questions, contexts, truncation="only_second", max_length=max_length,
                        stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    out: dict[str, list] = {k: [] for k in ("input_ids", "index", "window", "windows", "offset_start",
                                            "offset_end")}
    sample = encoded["overflow_to_sample_mapping"]
    counts = np.bincount(np.asarray(sample, dtype=np.int64), minlength=len(questions))
    position, previous = 0, -1
    for f, row in enumerate(sample):
        ids = encoded["input_ids"][f]
        sequence = encoded.sequence_ids(f)
        first = sequence.index(1) if 1 in sequence else 0
        context_tokens = range(first, first + sequence.count(1))  # contiguous
        u = unique[contexts[row]]
        full_ids = alone["input_ids"][u]
        if u not in refined:
            refined[u] = refine_offsets(tokenizer.convert_ids_to_tokens(full_ids), alone["offset_mapping"][u],
                                        contexts[row], normalize)
        window = 0 if row != previous else out["window"][-1] + 1
        if window == 0:
            position = 0
        window_ids = [ids[t] for t in context_tokens]
        if full_ids[position:position + len(window_ids)] != window_ids:  # not where the stride says: search
            position = next((p for p in range(len(full_ids) - len(window_ids) + 1)
                             if full_ids[p:p + len(window_ids)] == window_ids), -1)
        if position >= 0:
            spans = refined[u][position:position + len(window_ids)]
        else:  # the window's own offsets, trimmed (not seen with Hugging Face tokenizers)
            raw = [encoded["offset_mapping"][f][t] for t in context_tokens]
            spans = refine_offsets(tokenizer.convert_ids_to_tokens(window_ids), raw, contexts[row], normalize)
        starts, ends = [NO_OFFSET] * len(ids), [NO_OFFSET] * len(ids)
        for t, (s, e) in zip(context_tokens, spans, strict=True):
            starts[t], ends[t] = s, e
        out["input_ids"].append(ids)
        out["index"].append(int(row))
        out["window"].append(window)
        out["windows"].append(int(counts[row]))
        out["offset_start"].append(starts)
        out["offset_end"].append(ends)
        position = max(position, 0) + len(window_ids) - doc_stride
        previous = row
    return out


def answer_labels(offset_start: Sequence[Sequence[int]], offset_end: Sequence[Sequence[int]],
                  answers: Sequence[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """``start_positions`` / ``end_positions`` of windows whose question's answer span (characters) is
    ``answers[i]``; :data:`CLS_INDEX` when the answer is not inside the window."""
    starts, ends = [], []
    for s_off, e_off, (start_char, end_char) in zip(offset_start, offset_end, answers, strict=True):
        span = answer_token_span(s_off, e_off, start_char, end_char)
        starts.append(span[0] if span else CLS_INDEX)
        ends.append(span[1] if span else CLS_INDEX)
    return starts, ends


class QADataModule(TaskDataModule):
    """Extractive QA (SQuAD v1.1 format); metrics F1 and exact match of the answer text.

    Reads TyDi QA GoldP / XQuAD / MLQA JSON files (e.g. ``data: data/qa/xquad`` with ``xquad.<lang>.json``),
    the synthetic panel's ``qa/<code>/{train,dev,test}.json`` and hub datasets with SQuAD columns. Few-shot
    samples draw ``k`` questions (all their windows).
    """

    spec = QA
    stratify_column: ClassVar[str | None] = None
    pad_keys: ClassVar[dict[str, int]] = {"offset_start": NO_OFFSET, "offset_end": NO_OFFSET}

    def __init__(self, *, doc_stride: int = 32, max_question_length: int = 64, **kwargs: Any) -> None:
        """Configure QA data; the other arguments are those of :class:`~xlt.datamodules.task_data.TaskDataModule`.

        Args:
            doc_stride: tokens shared by consecutive windows of a long context (less than ``max_length``).
            max_question_length: questions are cut to this many tokens.
        """
        super().__init__(**kwargs)
        if not 0 <= doc_stride < self.max_length:
            raise XltError(f"data.doc_stride {doc_stride} must be >= 0 and < data.max_length {self.max_length} — "
                           "lower it")
        if max_question_length < 1:
            raise XltError(f"data.max_question_length {max_question_length} must be a positive integer")
        self.doc_stride, self.max_question_length = int(doc_stride), int(max_question_length)

    def official_normalization(self, code: str) -> tuple[QANormalization, str]:
        """``(normalisation, benchmark)`` of language ``code``'s source: ``squad_v1`` for XQuAD, TyDi QA GoldP,
        SQuAD and the synthetic panel, ``mlqa`` for MLQA (:data:`QA_BENCHMARKS`); other SQuAD-format sources get
        ``squad_v1``, the format's own script (benchmark ``SQuAD-format data``)."""
        if self.is_synthetic(code):
            return "squad_v1", "synthetic panel"
        found = qa_benchmark(self.source_of(code)[0])
        if found is None:
            return "squad_v1", "SQuAD-format data"
        benchmark, normalization = found
        return normalization, benchmark

    def encode(self, rows: Dataset, code: str, split: str) -> Dataset:
        """Sliding-window features (module docstring); answer token labels for the train split."""
        tokenizer = self.tokenizer_for(code)
        columns = rows.column_names

        def tokenize(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
            out = encode_windows(tokenizer, batch["question"], batch["context"], self.max_length,
                                 self.doc_stride, self.max_question_length)
            rows_of = out["index"]
            out["index"] = [indices[r] for r in rows_of]
            if split == "train":
                spans = []
                for r in rows_of:
                    answers = batch["answers"][r]
                    if not answers["text"]:
                        raise XltError(f"{self.source_of(code)[0]}: training question {batch['id'][r]} of language "
                                       f"'{code}' has no answer — remove it or give its answer")
                    spans.append(stripped_answer(answers["text"][0], answers["answer_start"][0]))
                out["start_positions"], out["end_positions"] = answer_labels(out["offset_start"],
                                                                             out["offset_end"], spans)
            return out

        return rows.map(tokenize, batched=True, with_indices=True, remove_columns=columns, desc=None)

    def _eval_loader(self, split: str) -> DataLoader:
        """Length-bucketed evaluation batches that keep every question's windows together."""
        if split not in self.features:
            self.setup({"dev": "validate", "test": "test"}[split])
        features = self.features[split].with_format(None)
        empty = len(features) == 0
        batches = LengthBucketBatches([len(ids) for ids in features["input_ids"]] if not empty else [],
                                      features["lang"] if not empty else [], self.eval_max_tokens,
                                      self.eval_max_rows, self._rank, self._world,
                                      groups=features["index"] if not empty else [])
        return DataLoader(features, batch_sampler=batches, collate_fn=self.collate, num_workers=self.num_workers)
