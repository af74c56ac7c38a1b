"""Fit one SentencePiece unigram model (byte fallback) on per-language text -> a tokenizer directory.

The corpus is never loaded whole: each language's lines are counted in one streaming pass (which also
checks UTF-8), then a seeded sample of at most ``input_sentence_size`` lines in total is streamed to the
SentencePiece trainer. Languages get sample quotas proportional to ``n_l ** language_alpha`` (``1.0`` =
proportional to their line counts, the default shared vocabulary; smaller values balance languages),
capped at ``n_l``.

The output directory (written atomically) holds ``sentencepiece.bpe.model``, ``tokenizer.json`` +
``tokenizer_config.json`` (transformers) and ``manifest.json``; see :mod:`xlt.tokenization.tokenizer`.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from xlt.atomic import atomic_dir
from xlt.errors import XltError
from xlt.tokenization.tokenizer import XltTokenizer

DEFAULT_INPUT_SENTENCE_SIZE = 2_000_000
MIN_VOCAB_SIZE = 3 + 256 + 1  # <unk> <s> </s>, the byte pieces, one real piece
_CHUNK = 1 << 23
# Options that would break the id layout or the byte-fallback contract, or that fit_tokenizer sets itself.
_FIXED = {"model_type": "unigram", "byte_fallback": True, "unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1}
_MANAGED = {"input", "input_format", "model_prefix", "sentence_iterator", "model_writer", "vocab_size"}
_DEFAULTS: dict[str, Any] = {"character_coverage": 0.9995, "shuffle_input_sentence": False}


@dataclass
class _Source:
    """One language's text: a line count and a way to stream chosen lines."""

    name: str
    count: int
    _file: Path | None = None
    _dataset: Any = None
    _column: str = "text"

    def lines(self, indices: np.ndarray | None) -> Iterator[str]:
        """The non-blank lines among ``indices`` (sorted line numbers; ``None`` = all lines)."""
        if self._file is not None:
            yield from _file_lines(self._file, indices)
            return
        ds = self._dataset if indices is None else self._dataset.select(indices)
        for batch in ds.select_columns([self._column]).iter(batch_size=2048):
            for text in batch[self._column]:
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


def _sample_indices(count: int, quota: int, seed: int, language: str) -> np.ndarray | None:
    if quota >= count:
        return None
    rng = np.random.default_rng([seed, zlib.crc32(language.encode("utf-8"))])
    return np.sort(rng.choice(count, size=quota, replace=False))


def _spm_options(vocab_size: int, options: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    if vocab_size < MIN_VOCAB_SIZE:
        raise XltError(f"vocab_size {vocab_size} is too small — byte fallback alone needs "
                       f"{MIN_VOCAB_SIZE - 1} pieces (3 specials + 256 bytes); use at least "
                       f"{MIN_VOCAB_SIZE} plus the characters of your scripts")
    opts = dict(options)
    for key in sorted(opts):
        if key in _MANAGED:
            raise XltError(f"SentencePiece option '{key}' is set by fit_tokenizer — remove it")
        if key in _FIXED and opts[key] != _FIXED[key]:
            raise XltError(f"SentencePiece option {key}={opts[key]!r} is not supported — xlt tokenizers use "
                           f"{key}={_FIXED[key]!r} (XLM-R id layout, byte fallback)")
    budget = int(opts.pop("input_sentence_size", DEFAULT_INPUT_SENTENCE_SIZE) or DEFAULT_INPUT_SENTENCE_SIZE)
    merged = {**_DEFAULTS, "num_threads": max(1, os.cpu_count() or 1), **opts, **_FIXED,
              "vocab_size": int(vocab_size), "input_sentence_size": 0}
    return merged, budget


@contextmanager
def _stderr_to(log: Any) -> Iterator[None]:
    """Send file descriptor 2 (SentencePiece's C++ logging) to ``log`` for the duration of the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_TOO_SMALL = re.compile(r"smaller than required_chars\. (\d+) vs (\d+)")
_TOO_LARGE = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")


def _train(sources: dict[str, _Source], quotas: dict[str, int], seed: int, options: dict[str, Any],
           log_path: Path) -> tuple[bytes, dict[str, int]]:
    """Train on the sampled lines; returns the model bytes and the number of lines used per language."""
    sampled = dict.fromkeys(sources, 0)

    def sentences() -> Iterator[str]:
        for lang, source in sources.items():
            for text in source.lines(_sample_indices(source.count, quotas[lang], seed, lang)):
                sampled[lang] += 1
                yield text

    writer = io.BytesIO()
    with open(log_path, "w", encoding="utf-8") as log, _stderr_to(log):
        try:
            spm.SentencePieceTrainer.train(sentence_iterator=sentences(), model_writer=writer, **options)
        except RuntimeError as exc:
            message = str(exc)
            if match := _TOO_SMALL.search(message):
                raise XltError(f"vocab_size {match[1]} is too small for this corpus — it needs at least "
                               f"{match[2]} pieces (specials, 256 bytes and the covered characters); raise "
                               "vocab_size or lower character_coverage") from None
            if match := _TOO_LARGE.search(message):
                raise XltError(f"vocab_size {match[1]} is too large for this corpus — use at most {match[2]} "
                               "or add text") from None
            raise XltError(f"SentencePiece training failed: {message.splitlines()[0]}") from None
    return writer.getvalue(), sampled


def _fit(sources: dict[str, _Source], out_dir: str | Path, vocab_size: int, seed: int, overwrite: bool,
         language_alpha: float, options: Mapping[str, Any], describe: dict[str, str]) -> XltTokenizer:
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise XltError(f"tokenizer directory {out_dir} already exists — pass overwrite=True (--overwrite) "
                       "or choose another path")
    spm_opts, budget = _spm_options(vocab_size, options)
    counts = {lang: s.count for lang, s in sources.items()}
    quotas = sample_quotas(counts, budget, language_alpha)
    with tempfile.TemporaryDirectory(prefix="xlt-spm-") as tmp:
        proto, sampled = _train(sources, quotas, seed, spm_opts, Path(tmp) / "sentencepiece.log")
        log_text = (Path(tmp) / "sentencepiece.log").read_text(encoding="utf-8", errors="replace")
    for lang, used in sampled.items():
        if used == 0 and quotas[lang] >= counts[lang]:
            raise XltError(f"corpus for language '{lang}' ({describe.get(lang, lang)}) has no text — "
                           "add text or drop the language")
    manifest = {
        "kind": "sentencepiece-unigram",
        "languages": list(sources),
        "corpus_lines": counts,
        "sample_lines": sampled,
        "sources": describe,
        "seed": seed,
        "language_alpha": language_alpha,
        "input_sentence_size": budget,
        "options": {k: v for k, v in spm_opts.items()
                    if k not in ("num_threads", "vocab_size", "input_sentence_size")},
    }
    tokenizer = XltTokenizer(proto, manifest=manifest)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp_dir:
        tokenizer.write_files(tmp_dir)
        (tmp_dir / "sentencepiece.log").write_text(log_text, encoding="utf-8")
    return XltTokenizer.load(out_dir)


def _check_languages(mapping: Mapping[str, Any], what: str) -> None:
    if not mapping:
        raise XltError(f"no {what} given — pass at least one language")


def fit_tokenizer(files: Mapping[str, str | Path], out_dir: str | Path, vocab_size: int, seed: int = 0,
                  overwrite: bool = False, *, language_alpha: float = 1.0,
                  **sentencepiece_options: Any) -> XltTokenizer:
    """Fit a SentencePiece unigram tokenizer (byte fallback) on per-language text files.

    Args:
        files: language code -> UTF-8 text file, one sentence per line (blank lines are skipped).
        out_dir: the tokenizer directory to write (atomically).
        vocab_size: SentencePiece pieces, including ``<unk>``, ``<s>``, ``</s>`` and the 256 byte pieces;
            the tokenizer has ``vocab_size + 2`` ids (``<pad>`` and ``<mask>`` added, as in XLM-R).
        seed: seed of the line sample.
        overwrite: replace an existing ``out_dir``.
        language_alpha: sample quotas proportional to ``lines ** language_alpha`` (1 = proportional).
        **sentencepiece_options: SentencePiece trainer options (``character_coverage``, ``num_threads``,
            ``input_sentence_size`` = total sampled lines, default 2,000,000 ...). The id layout and
            ``model_type=unigram``, ``byte_fallback=True`` are fixed.

    Returns:
        The fitted tokenizer (loaded back from ``out_dir``).
    """
    _check_languages(files, "text files")
    sources = {}
    for lang, path in files.items():
        count = scan_text_file(path, lang)
        sources[lang] = _Source(name=lang, count=count, _file=Path(path))
    describe = {lang: str(Path(path)) for lang, path in files.items()}
    return _fit(sources, out_dir, vocab_size, seed, overwrite, language_alpha, sentencepiece_options,
                describe)


def fit_tokenizer_from_datasets(datasets: Mapping[str, Any], out_dir: str | Path, vocab_size: int,
                                seed: int = 0, overwrite: bool = False, *, text_column: str = "text",
                                language_alpha: float = 1.0, describe: Mapping[str, str] | None = None,
                                **sentencepiece_options: Any) -> XltTokenizer:
    """Like :func:`fit_tokenizer`, from ``datasets.Dataset`` objects with a text column (one row = one line).

    Args:
        datasets: language code -> dataset.
        out_dir: the tokenizer directory to write (atomically).
        vocab_size: SentencePiece pieces (see :func:`fit_tokenizer`).
        seed: seed of the row sample.
        overwrite: replace an existing ``out_dir``.
        text_column: the column holding the text.
        language_alpha: sample quotas proportional to ``rows ** language_alpha``.
        describe: language -> human-readable source, recorded in the manifest.
        **sentencepiece_options: SentencePiece trainer options (see :func:`fit_tokenizer`).
    """
    _check_languages(datasets, "datasets")
    sources = {}
    for lang, ds in datasets.items():
        if text_column not in ds.column_names:
            raise XltError(f"dataset for language '{lang}' has no column '{text_column}' — columns are "
                           f"{ds.column_names}; set text_column")
        if len(ds) == 0:
            raise XltError(f"corpus for language '{lang}' is empty — add text or drop the language")
        sources[lang] = _Source(name=lang, count=len(ds), _dataset=ds, _column=text_column)
    described = {lang: (describe or {}).get(lang, f"dataset:{getattr(ds, '_fingerprint', '?')}")
                 for lang, ds in datasets.items()}
    return _fit(sources, out_dir, vocab_size, seed, overwrite, language_alpha, sentencepiece_options,
                described)
