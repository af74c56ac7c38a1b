"""Fitting tokenizers: SentencePiece unigram (byte fallback) on per-language text -> a tokenizer directory.

A seeded sample of at most ``input_sentence_size`` lines in total (:mod:`xlt.tokenization.sampling`) is
streamed to the SentencePiece trainer; the corpus is never loaded whole.

The paper's four vocabulary configurations (§III.C; :class:`~xlt.tokenization.vocabulary.VocabularyConfig`,
``xlt tokenizer fit``):

(a) ``shared``: one vocabulary; sample quotas proportional to the languages' line counts.
(b) ``balanced``: same size; quotas ``∝ lines ** alpha`` of the same sample size, small languages' text
    repeated to fill their share (0 = uniform).
(c) ``proportional_2x``: twice the vocabulary, proportional quotas.
(d) ``lang_specific``: the shared vocabulary of (a) plus, per designated language, a block of its own
    pieces (:mod:`xlt.tokenization.blocks`); non-designated languages are segmented exactly as by (a).

The output directory (written atomically) holds ``sentencepiece.bpe.model``, ``languages/<code>.model``
(d), ``tokenizer.json`` + ``tokenizer_config.json`` (transformers), ``hf/<code>/`` (d) and
``manifest.json`` (configuration, sizes, block id ranges, corpus and sample statistics); see
:mod:`xlt.tokenization.tokenizer`. Entry points: :func:`fit_tokenizer` and :func:`fit_configuration` (text
files), :func:`fit_tokenizer_from_datasets` (``datasets.Dataset`` objects).
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import sentencepiece as spm

from xlt.atomic import atomic_dir
from xlt.errors import XltError
from xlt.languages import Panel, load_panel
from xlt.tokenization.blocks import block_candidates, describe_block, language_model, piece_count
from xlt.tokenization.sampling import (
    LanguageText,
    SampleStats,
    balanced_quotas,
    sample_quotas,
    scan_text_file,
    stream_sample,
)
from xlt.tokenization.tokenizer import XltTokenizer
from xlt.tokenization.vocabulary import DEFAULT_INPUT_SENTENCE_SIZE, VocabularyConfig, resolve_designated

__all__ = ["MIN_VOCAB_SIZE", "fit_configuration", "fit_tokenizer", "fit_tokenizer_from_datasets"]

log = logging.getLogger(__name__)

MIN_VOCAB_SIZE = 3 + 256 + 1  # <unk> <s> </s>, the byte pieces, one real piece
# Options that would break the id layout or the byte-fallback contract, or that fit_tokenizer sets itself.
_FIXED = {"model_type": "unigram", "byte_fallback": True, "unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1}
_MANAGED = {"input", "input_format", "model_prefix", "sentence_iterator", "model_writer", "vocab_size"}
_DEFAULTS: dict[str, Any] = {"character_coverage": 0.9995, "shuffle_input_sentence": False}



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


def _train_raw(sentences: Iterator[str], options: dict[str, Any], log_path: Path) -> bytes:
    """Run the SentencePiece trainer on a stream of sentences (its C++ log goes to ``log_path``)."""
    writer = io.BytesIO()
    with open(log_path, "a", encoding="utf-8") as log, _stderr_to(log):
        spm.SentencePieceTrainer.train(sentence_iterator=sentences, model_writer=writer, **options)
    return writer.getvalue()


def _translate(exc: RuntimeError, what: str = "") -> XltError:
    """A user-facing error for a SentencePiece training failure."""
    message = str(exc)
    if match := _TOO_SMALL.search(message):
        return XltError(f"vocab_size {match[1]}{what} is too small for this corpus — it needs at least "
                        f"{match[2]} pieces (specials, 256 bytes and the covered characters); raise "
                        "vocab_size or lower character_coverage")
    if match := _TOO_LARGE.search(message):
        return XltError(f"vocab_size {match[1]}{what} is too large for this corpus — use at most {match[2]} "
                        "or add text")
    return XltError(f"SentencePiece training failed{what}: {message.splitlines()[0]}")


def _train(sources: dict[str, LanguageText], quotas: dict[str, int], seed: int, options: dict[str, Any],
           log_path: Path, what: str = "") -> tuple[bytes, SampleStats]:
    """Train on the sampled lines; returns the model bytes and what the sample held per language."""
    stats = SampleStats.empty(sources)

    def sentences() -> Iterator[str]:
        for lang, source in sources.items():
            yield from stream_sample(source, quotas[lang], seed, lang, stats)

    try:
        proto = _train_raw(sentences(), options, log_path)
    except RuntimeError as exc:
        raise _translate(exc, what) from None
    return proto, stats


def _fit_block(source: LanguageText, language: str, shared_proto: bytes, size: int, seed: int,
               options: dict[str, Any], budget: int, log_path: Path) -> tuple[bytes, dict[str, Any]]:
    """Fit a unigram model on one language's text and keep its ``size`` best pieces missing from the shared
    model; returns the language model and its manifest entry."""
    quota = min(source.count, budget)
    target = 2 * size + MIN_VOCAB_SIZE
    shared_count = piece_count(shared_proto)
    block: list[tuple[str, float]] = []
    fitted = 0
    stats = SampleStats.empty([language])
    for _ in range(3):  # grow the candidate model when too many of its pieces are already shared
        stats = SampleStats.empty([language])
        opts = {**options, "vocab_size": target, "hard_vocab_limit": False}
        try:
            candidate = _train_raw(stream_sample(source, quota, seed, language, stats), opts, log_path)
        except RuntimeError as exc:
            if match := _TOO_SMALL.search(str(exc)):
                target = int(match[2]) + 2 * size
                continue
            raise _translate(exc, f" (block of language '{language}')") from None
        block = block_candidates(shared_proto, candidate, size)
        fitted = piece_count(candidate)
        if len(block) >= size or fitted < target:  # enough pieces, or the text supports no more
            break
        target += 2 * (size - len(block)) + min(target, shared_count)
    if not block:
        raise XltError(f"language '{language}' has no pieces beyond the shared vocabulary — add text for it "
                       "or drop it from designated_languages")
    if len(block) < size:
        log.warning("block of '%s' has %d of the %d requested pieces (its text supports no more)", language,
                    len(block), size)
    entry = describe_block(block, size, fitted)
    entry["sample_lines"] = stats.lines[language]
    return language_model(shared_proto, block), entry


def _fit(sources: dict[str, LanguageText], out_dir: str | Path, vocab_size: int, seed: int, overwrite: bool,
         language_alpha: float, options: Mapping[str, Any], describe: dict[str, str],
         vocabulary: VocabularyConfig | None = None, panel: Panel | None = None) -> XltTokenizer:
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise XltError(f"tokenizer directory {out_dir} already exists — pass overwrite=True (--overwrite) "
                       "or choose another path")
    vocab = vocabulary or VocabularyConfig()
    vocab.check()
    designated = resolve_designated(vocab, list(sources), panel)
    configuration = vocab.configuration
    shared_pieces = vocab_size * (2 if configuration == "proportional_2x" else 1)
    base = XltTokenizer.load(vocab.base_tokenizer) if vocab.base_tokenizer is not None else None
    if base is not None and base.blocks:
        raise XltError(f"base_tokenizer {vocab.base_tokenizer} already has language blocks — use a shared "
                       "tokenizer (configuration a, b or c)")
    spm_opts, budget = _spm_options(base.sp_vocab_size if base is not None else shared_pieces, {
        "character_coverage": vocab.character_coverage, "input_sentence_size": vocab.input_sentence_size,
        **vocab.sentencepiece_options, **options})
    counts = {lang: s.count for lang, s in sources.items()}
    if configuration == "balanced":
        quotas = balanced_quotas(counts, budget, vocab.alpha)
        alpha = vocab.alpha
    else:
        quotas = sample_quotas(counts, budget, language_alpha)
        alpha = language_alpha
    language_models: dict[str, bytes] = {}
    blocks: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="xlt-spm-") as tmp:
        log_path = Path(tmp) / "sentencepiece.log"
        log_path.touch()
        if base is not None:
            proto, stats = base.model_proto, SampleStats.empty(sources)
        else:
            proto, stats = _train(sources, quotas, seed, spm_opts, log_path)
        for lang in designated:
            language_models[lang], blocks[lang] = _fit_block(
                sources[lang], lang, proto, vocab.language_pieces, seed, spm_opts, budget, log_path)
        log_text = log_path.read_text(encoding="utf-8", errors="replace")
    if base is None:
        for lang, used in stats.lines.items():
            if used == 0 and quotas[lang] >= counts[lang]:
                raise XltError(f"corpus for language '{lang}' ({describe.get(lang, lang)}) has no text — "
                               "add text or drop the language")
    manifest = {
        "kind": "sentencepiece-unigram",
        "configuration": configuration,
        "config": {"vocab_size": vocab_size, "shared_pieces": shared_pieces, **asdict(vocab),
                   "designated_languages": designated or vocab.designated_languages},
        "languages": list(sources),
        "corpus_lines": counts,
        "sample_lines": stats.lines,
        "sample_chars": stats.chars,
        "sample_words": stats.words,
        "sources": describe,
        "seed": seed,
        "language_alpha": alpha,
        "input_sentence_size": budget,
        "options": {k: v for k, v in spm_opts.items()
                    if k not in ("num_threads", "vocab_size", "input_sentence_size")},
    }
    if base is not None:
        manifest["base_tokenizer"] = {"path": str(vocab.base_tokenizer), "manifest": base.manifest}
    if blocks:
        manifest["blocks"] = blocks
    tokenizer = XltTokenizer(proto, manifest=manifest, language_models=language_models)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp_dir:
        tokenizer.write_files(tmp_dir)
        (tmp_dir / "sentencepiece.log").write_text(log_text, encoding="utf-8")
    return XltTokenizer.load(out_dir)


def _check_languages(mapping: Mapping[str, Any], what: str) -> None:
    if not mapping:
        raise XltError(f"no {what} given — pass at least one language")


def _file_sources(files: Mapping[str, str | Path]) -> tuple[dict[str, LanguageText], dict[str, str]]:
    _check_languages(files, "text files")
    sources = {}
    for lang, path in files.items():
        count = scan_text_file(path, lang)
        sources[lang] = LanguageText(name=lang, count=count, file=Path(path))
    return sources, {lang: str(Path(path)) for lang, path in files.items()}


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
    sources, describe = _file_sources(files)
    return _fit(sources, out_dir, vocab_size, seed, overwrite, language_alpha, sentencepiece_options,
                describe)


def fit_configuration(files: Mapping[str, str | Path], out_dir: str | Path, vocab_size: int,
                      vocabulary: VocabularyConfig | None = None, *, seed: int = 0, overwrite: bool = False,
                      panel: Panel | str | None = None) -> XltTokenizer:
    """Fit one of the four vocabulary configurations (a–d) on per-language text files.

    Args:
        files: language code -> UTF-8 text file, one sentence per line.
        out_dir: the tokenizer directory to write (atomically; nothing is left behind on failure).
        vocab_size: base SentencePiece pieces of the shared vocabulary (``proportional_2x`` fits twice this;
            ``lang_specific`` adds its blocks on top).
        vocabulary: the configuration (default: ``shared``).
        seed: seed of the line samples.
        overwrite: replace an existing ``out_dir``.
        panel: language panel (name, path or :class:`Panel`) giving the designated languages of
            ``lang_specific`` when ``vocabulary.designated_languages`` is unset.

    Returns:
        The fitted tokenizer (loaded back from ``out_dir``).
    """
    if isinstance(panel, str):
        panel = load_panel(panel)
    vocabulary = vocabulary or VocabularyConfig()
    vocabulary.check()
    out = Path(out_dir)
    if out.exists() and not overwrite:  # before reading any corpus file
        raise XltError(f"tokenizer directory {out} already exists — pass overwrite=True (--overwrite) "
                       "or choose another path")
    resolve_designated(vocabulary, list(files), panel)  # fail before scanning the corpus
    sources, describe = _file_sources(files)
    return _fit(sources, out_dir, vocab_size, seed, overwrite, 1.0, {}, describe, vocabulary, panel)


def fit_tokenizer_from_datasets(datasets: Mapping[str, Any], out_dir: str | Path, vocab_size: int,
                                seed: int = 0, overwrite: bool = False, *, text_column: str = "text",
                                language_alpha: float = 1.0, describe: Mapping[str, str] | None = None,
                                vocabulary: VocabularyConfig | None = None, panel: Panel | None = None,
                                **sentencepiece_options: Any) -> XltTokenizer:
    """Like :func:`fit_tokenizer`, from ``datasets.Dataset`` objects with a text column (one row = one line).

    Args:
        datasets: language code -> dataset.
        out_dir: the tokenizer directory to write (atomically).
        vocab_size: SentencePiece pieces (see :func:`fit_tokenizer`; the base size with ``vocabulary``).
        seed: seed of the row sample.
        overwrite: replace an existing ``out_dir``.
        text_column: the column holding the text.
        language_alpha: sample quotas proportional to ``rows ** language_alpha`` (configurations other
            than ``balanced``).
        describe: language -> a description of its source (recorded in the manifest).
        vocabulary: the vocabulary configuration (a–d; default ``shared``).
        panel: the panel giving ``lang_specific``'s designated languages when the configuration lists none.
        **sentencepiece_options: SentencePiece trainer options (see :func:`fit_tokenizer`).
    """
    _check_languages(datasets, "datasets")
    sources = {}
    for lang, ds in datasets.items():
        if text_column not in ds.column_names:
            raise XltError(f"dataset for language '{lang}' has no column '{text_column}' — columns are "
                           f"{ds.column_names}; set the text source's column (HubText column: ...)")
        if len(ds) == 0:
            raise XltError(f"corpus for language '{lang}' is empty — add text or drop the language")
        sources[lang] = LanguageText(name=lang, count=len(ds), dataset=ds, column=text_column)
    described = {lang: (describe or {}).get(lang, f"dataset:{getattr(ds, '_fingerprint', '?')}")
                 for lang, ds in datasets.items()}
    return _fit(sources, out_dir, vocab_size, seed, overwrite, language_alpha, sentencepiece_options,
                described, vocabulary, panel)
