"""The fitting sample: per-language text scanned once, per-language quotas, a seeded stream of lines.

The corpus is never loaded whole: each language's lines are counted in one streaming pass
(:func:`scan_text_file`, which also checks UTF-8), quotas of a bounded sample are shared out among the
languages (:func:`sample_quotas`, proportional and capped; :func:`balanced_quotas`, ``∝ lines ** alpha``
with repetition), and :func:`stream_sample` yields the chosen lines of a language, seeded by the fit seed
and the language code. :mod:`xlt.tokenization.fit` feeds the stream to the SentencePiece trainer.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xlt.errors import XltError

__all__ = ["LanguageText", "SampleStats", "balanced_quotas", "sample_indices", "sample_quotas", "scan_text_file",
           "stream_sample"]

_CHUNK = 1 << 23


@dataclass
class LanguageText:
    """One language's text: a line count and a way to stream chosen lines (from a file or a dataset)."""

    name: str
    count: int
    file: Path | None = None
    dataset: Any = None
    column: str = "text"

    def lines(self, indices: np.ndarray | None) -> Iterator[str]:
        """The non-blank lines among ``indices`` (sorted line numbers; ``None`` = all lines)."""
        if self.file is not None:
            yield from _file_lines(self.file, indices)
            return
        ds = self.dataset if indices is None else self.dataset.select(indices)
        for batch in ds.select_columns([self.column]).iter(batch_size=2048):
            for text in batch[self.column]:
                if text is not None and text.strip():
                    yield text.strip()


def _file_lines(path: Path, indices: np.ndarray | None) -> Iterator[str]:
    wanted = iter(indices.tolist()) if indices is not None else None
    target = next(wanted, None) if wanted is not None else 0
    if wanted is not None and target is None:
        return
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle):
            if wanted is not None:
                if number != target:
                    continue
                target = next(wanted, None)
            text = raw.decode("utf-8").strip()
            if text:
                yield text
            if wanted is not None and target is None:
                return


def scan_text_file(path: str | Path, language: str = "") -> int:
    """Count the lines of a UTF-8 text file in one streaming pass.

    Raises :class:`XltError` when the file is missing, empty (only whitespace), or has a line that is not
    UTF-8 (naming the file and line number).
    """
    path = Path(path)
    label = f" for language '{language}'" if language else ""
    if not path.is_file():
        raise XltError(f"corpus file {path}{label} not found — create it (one sentence per line) "
                       "or drop the language")
    lines = 0
    has_text = False
    tail = b""
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_CHUNK)
            if not block:
                break
            block = tail + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:  # no line end yet: keep reading (a multi-byte character may straddle blocks)
                tail = block
                continue
            body, tail = block[:cut], block[cut:]
            lines, has_text = _check_block(path, body, lines, has_text)
    if tail:
        lines, has_text = _check_block(path, tail, lines, has_text)
        lines += 1
    if not has_text:
        raise XltError(f"corpus file {path}{label} is empty — add text (one sentence per line) "
                       "or drop the language")
    return lines


def _check_block(path: Path, body: bytes, lines: int, has_text: bool) -> tuple[int, bool]:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = lines + body[: exc.start].count(b"\n") + 1
        raise XltError(f"corpus file {path} line {line} is not valid UTF-8 — re-encode the file as UTF-8 "
                       "(e.g. iconv -f <encoding> -t utf-8)") from None
    return lines + body.count(b"\n"), has_text or bool(body.strip())


def sample_quotas(counts: Mapping[str, int], budget: int, alpha: float = 1.0) -> dict[str, int]:
    """Lines to sample per language: shares of ``budget`` proportional to ``n_l ** alpha``, capped at ``n_l``.

    Budget freed by capped (small) languages is redistributed among the others; everything is taken when
    the corpus fits in the budget. Example: counts 900 and 100, budget 500: alpha 1 -> 450 and 50; alpha 0 ->
    equal shares of 250, the small language is capped at its 100 lines and the other gets 400.
    """
    if budget <= 0:
        raise XltError(f"input_sentence_size {budget} must be positive")
    quotas = {k: 0 for k in counts}
    open_ = {k for k, n in counts.items() if n > 0}
    remaining = float(budget)
    while open_:
        weights = {k: float(counts[k]) ** alpha for k in open_}
        total = sum(weights.values())
        share = {k: remaining * w / total for k, w in weights.items()}
        capped = {k for k in open_ if share[k] >= counts[k]}
        if not capped:
            for k in open_:
                quotas[k] = int(share[k])
            break
        for k in capped:
            quotas[k] = counts[k]
            remaining -= counts[k]
        open_ -= capped
    return quotas


def balanced_quotas(counts: Mapping[str, int], budget: int, alpha: float) -> dict[str, int]:
    """Lines per language for a balanced sample: shares ``∝ n_l ** alpha`` of ``min(budget, Σ n_l)`` lines.

    Unlike :func:`sample_quotas`, quotas are not capped at ``n_l``: a small language's text is repeated to
    fill its share, so the sample's language mix is the target mix. Shares are rounded down, and the lines
    lost to rounding go to the languages with the largest remainders (largest first, then name order).
    Example: counts 900 and 100, alpha 0: 1000 lines, 500 each (the small language's text five times).
    """
    if budget <= 0:
        raise XltError(f"input_sentence_size {budget} must be positive")
    live = {k: n for k, n in counts.items() if n > 0}
    total = min(budget, sum(live.values()))
    weights = {k: float(n) ** alpha for k, n in live.items()}
    norm = sum(weights.values()) or 1.0
    exact = {k: total * w / norm for k, w in weights.items()}
    quotas = {k: int(math.floor(v)) for k, v in exact.items()}
    left = total - sum(quotas.values())
    for k in sorted(exact, key=lambda k: (quotas[k] - exact[k], k))[:left]:
        quotas[k] += 1
    return {k: quotas.get(k, 0) for k in counts}


def sample_indices(count: int, quota: int, seed: int, language: str) -> np.ndarray | None:
    """Sorted line numbers of a seeded sample of ``quota`` of ``count`` lines (``None``: all of them)."""
    if quota >= count:
        return None
    rng = np.random.default_rng([seed, zlib.crc32(language.encode("utf-8"))])
    return np.sort(rng.choice(count, size=quota, replace=False))


@dataclass
class SampleStats:
    """What the fitting sample held, per language."""

    lines: dict[str, int]
    chars: dict[str, int]
    words: dict[str, int]

    @classmethod
    def empty(cls, languages: Iterable[str]) -> SampleStats:
        languages = list(languages)
        return cls(dict.fromkeys(languages, 0), dict.fromkeys(languages, 0), dict.fromkeys(languages, 0))


def stream_sample(source: LanguageText, quota: int, seed: int, language: str, stats: SampleStats) -> Iterator[str]:
    """``quota`` lines of a language: whole passes over its lines, then a seeded sample of the remainder.

    ``quota <= count`` is a plain sample without repetition; a larger quota (balanced fitting of a small
    language) repeats the language's text. Every line yielded is counted in ``stats``.
    """
    full, rest = divmod(quota, source.count) if source.count else (0, 0)
    passes = [None] * full + ([sample_indices(source.count, rest, seed, language)] if rest else [])
    for indices in passes:
        for text in source.lines(indices):
            stats.lines[language] += 1
            stats.chars[language] += len(text)
            stats.words[language] += len(text.split())
            yield text
