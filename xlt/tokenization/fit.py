"""Fitting tokenizers: SentencePiece unigram (byte fallback) on per-language text -> a tokenizer directory.

The corpus is never loaded whole: each language's lines are counted in one streaming pass (which also
checks UTF-8), then a seeded sample of at most ``input_sentence_size`` lines in total is streamed to the
SentencePiece trainer.

The paper's four vocabulary configurations (§III.C; :class:`VocabularyConfig`, ``xlt tokenizer fit``):

(a) ``shared``: one vocabulary; sample quotas proportional to the languages' line counts.
(b) ``balanced``: same size; quotas ``∝ lines ** alpha`` of the same sample size, small languages' text
    repeated to fill their share (0 = uniform).
(c) ``proportional_2x``: twice the vocabulary, proportional quotas.
(d) ``lang_specific``: the shared vocabulary of (a) plus, per designated language, a block of its own
    pieces (:mod:`xlt.tokenization.blocks`); non-designated languages are segmented exactly as by (a).

The output directory (written atomically) holds ``sentencepiece.bpe.model``, ``languages/<code>.model``
(d), ``tokenizer.json`` + ``tokenizer_config.json`` (transformers), ``hf/<code>/`` (d) and
``manifest.json`` (configuration, sizes, block id ranges, corpus and sample statistics); see
:mod:`xlt.tokenization.tokenizer`.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import sys
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import sentencepiece as spm

from xlt.atomic import atomic_dir
from xlt.errors import XltError
from xlt.languages import Panel, load_panel
from xlt.tokenization.blocks import block_candidates, describe_block, language_model, piece_count
from xlt.tokenization.tokenizer import XltTokenizer

log = logging.getLogger(__name__)

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


@dataclass
class _SampleStats:
    """What the fitting sample held, per language."""

    lines: dict[str, int]
    chars: dict[str, int]
    words: dict[str, int]

    @classmethod
    def empty(cls, languages: Iterable[str]) -> _SampleStats:
        languages = list(languages)
        return cls(dict.fromkeys(languages, 0), dict.fromkeys(languages, 0), dict.fromkeys(languages, 0))


def _stream(source: _Source, quota: int, seed: int, language: str, stats: _SampleStats) -> Iterator[str]:
    """``quota`` lines of a language: whole passes over its lines, then a seeded sample of the remainder.

    ``quota <= count`` is a plain sample without repetition; a larger quota (balanced fitting of a small
    language) repeats the language's text.
    """
    full, rest = divmod(quota, source.count) if source.count else (0, 0)
    passes = [None] * full + ([_sample_indices(source.count, rest, seed, language)] if rest else [])
    for indices in passes:
        for text in source.lines(indices):
            stats.lines[language] += 1
            stats.chars[language] += len(text)
            stats.words[language] += len(text.split())
            yield text


def _train(sources: dict[str, _Source], quotas: dict[str, int], seed: int, options: dict[str, Any],
           log_path: Path, what: str = "") -> tuple[bytes, _SampleStats]:
    """Train on the sampled lines; returns the model bytes and what the sample held per language."""
    stats = _SampleStats.empty(sources)

    def sentences() -> Iterator[str]:
        for lang, source in sources.items():
            yield from _stream(source, quotas[lang], seed, lang, stats)

    try:
        proto = _train_raw(sentences(), options, log_path)
    except RuntimeError as exc:
        raise _translate(exc, what) from None
    return proto, stats


# ---------------------------------------------------------------------------------------------- configurations
CONFIGURATIONS = ("shared", "balanced", "proportional_2x", "lang_specific")
Configuration = Literal["shared", "balanced", "proportional_2x", "lang_specific"]


@dataclass
class VocabularyConfig:
    """How a vocabulary is fitted: one of the paper's four configurations (§III.C) and its settings.

    Args:
        configuration: ``shared`` (a): one vocabulary, fitting sample proportional to corpus size;
            ``balanced`` (b): same size, per-language sample quotas ``∝ lines ** alpha`` (small languages'
            text is repeated to reach their quota); ``proportional_2x`` (c): twice the vocabulary size,
            proportional sample; ``lang_specific`` (d): the shared vocabulary of (a) plus a block of
            ``language_pieces`` pieces for each designated language.
        alpha: ``balanced`` only: quota exponent (0 = uniform over languages, 0.3 = XLM-R-style temperature,
            1 = proportional).
        language_pieces: ``lang_specific`` only: pieces per designated language's block (the paper: 50,000).
        designated_languages: ``lang_specific`` only: languages that get a block (default: the panel's
            ``designated: true`` languages present in the corpus).
        character_coverage: SentencePiece character coverage of every model fitted.
        input_sentence_size: lines in the fitting sample (bounded memory; per-language quotas come out of
            it).
        base_tokenizer: ``lang_specific`` only: an existing shared tokenizer directory (e.g. configuration a,
            the vocabulary of a checkpoint to extend) to add the blocks to, instead of fitting the shared
            model.
        sentencepiece_options: further SentencePiece trainer options (``num_threads``, ``split_digits`` ...).
    """

    configuration: Configuration = "shared"
    alpha: float = 0.0
    language_pieces: int = 1000
    designated_languages: list[str] | None = None
    character_coverage: float = 0.9995
    input_sentence_size: int = DEFAULT_INPUT_SENTENCE_SIZE
    base_tokenizer: str | None = None
    sentencepiece_options: dict[str, Any] = field(default_factory=dict)

    def check(self, where: str = "") -> None:
        """Raise :class:`XltError` (naming ``where``, e.g. ``data.tokenizer_fit.``) for invalid settings."""
        if self.configuration not in CONFIGURATIONS:
            raise XltError(f"{where}configuration '{self.configuration}' is unknown — use one of "
                           f"{', '.join(CONFIGURATIONS)}")
        if not (self.alpha >= 0 and math.isfinite(self.alpha)):
            raise XltError(f"{where}alpha {self.alpha} must be >= 0 (0 = uniform, 1 = proportional)")
        if self.language_pieces < 1:
            raise XltError(f"{where}language_pieces {self.language_pieces} must be a positive integer")
        if not 0 < self.character_coverage <= 1:
            raise XltError(f"{where}character_coverage {self.character_coverage} must be in (0, 1]")
        if self.input_sentence_size < 1:
            raise XltError(f"{where}input_sentence_size {self.input_sentence_size} must be positive")
        if self.base_tokenizer is not None and self.configuration != "lang_specific":
            raise XltError(f"{where}base_tokenizer is only used by configuration lang_specific — remove it "
                           f"or set configuration: lang_specific")
        if self.designated_languages is not None and len(set(self.designated_languages)) != len(
                self.designated_languages):
            raise XltError(f"{where}designated_languages {self.designated_languages} lists a language twice")

    def identity(self) -> dict[str, Any]:
        """The settings that change the fitted vocabulary (for cache keys); irrelevant ones are dropped."""
        out: dict[str, Any] = {"configuration": self.configuration,
                               "character_coverage": self.character_coverage,
                               "input_sentence_size": self.input_sentence_size,
                               "sentencepiece_options": dict(sorted(self.sentencepiece_options.items()))}
        if self.configuration == "balanced":
            out["alpha"] = self.alpha
        if self.configuration == "lang_specific":
            out.update(language_pieces=self.language_pieces, designated_languages=self.designated_languages,
                       base_tokenizer=self.base_tokenizer)
        return out


def resolve_designated(vocabulary: VocabularyConfig, languages: Sequence[str], panel: Panel | None,
                       where: str = "") -> list[str]:
    """The designated languages of a ``lang_specific`` fit, in corpus order; ``[]`` for other configurations.

    Explicit ``designated_languages`` must all be in ``languages`` (the corpus); otherwise the panel's
    ``designated: true`` languages present in the corpus are used, and there must be at least one.
    """
    if vocabulary.configuration != "lang_specific":
        return []
    if vocabulary.designated_languages is not None:
        absent = [code for code in vocabulary.designated_languages if code not in languages]
        if absent:
            raise XltError(f"{where}designated_languages {', '.join(absent)} not in the corpus (languages: "
                           f"{', '.join(languages)}) — add their text or drop them from designated_languages")
        if not vocabulary.designated_languages:
            raise XltError(f"{where}designated_languages is empty — list at least one language or use "
                           "configuration shared")
        chosen = set(vocabulary.designated_languages)
    else:
        marked = {lang.code for lang in panel if lang.designated} if panel is not None else set()
        chosen = marked & set(languages)
        if not chosen:
            name = f"panel '{panel.name}'" if panel is not None else "no panel"
            raise XltError(f"{where}designated_languages is unset and {name} marks none of the corpus languages "
                           "designated — set designated_languages (e.g. the tail languages) or mark "
                           "languages `designated: true` in the panel")
    return [code for code in languages if code in chosen]


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


def _fit_block(source: _Source, language: str, shared_proto: bytes, size: int, seed: int,
               options: dict[str, Any], budget: int, log_path: Path) -> tuple[bytes, dict[str, Any]]:
    """Fit a unigram model on one language's text and keep its ``size`` best pieces missing from the shared
    model; returns the language model and its manifest entry."""
    quota = min(source.count, budget)
    target = 2 * size + MIN_VOCAB_SIZE
    shared_count = piece_count(shared_proto)
    block: list[tuple[str, float]] = []
    fitted = 0
    stats = _SampleStats.empty([language])
    for _ in range(3):  # grow the candidate model when too many of its pieces are already shared
        stats = _SampleStats.empty([language])
        opts = {**options, "vocab_size": target, "hard_vocab_limit": False}
        try:
            candidate = _train_raw(_stream(source, quota, seed, language, stats), opts, log_path)
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


def _fit(sources: dict[str, _Source], out_dir: str | Path, vocab_size: int, seed: int, overwrite: bool,
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
            proto, stats = base.model_proto, _SampleStats.empty(sources)
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


def _file_sources(files: Mapping[str, str | Path]) -> tuple[dict[str, _Source], dict[str, str]]:
    _check_languages(files, "text files")
    sources = {}
    for lang, path in files.items():
        count = scan_text_file(path, lang)
        sources[lang] = _Source(name=lang, count=count, _file=Path(path))
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
                           f"{ds.column_names}; set text_column")
        if len(ds) == 0:
            raise XltError(f"corpus for language '{lang}' is empty — add text or drop the language")
        sources[lang] = _Source(name=lang, count=len(ds), _dataset=ds, _column=text_column)
    described = {lang: (describe or {}).get(lang, f"dataset:{getattr(ds, '_fingerprint', '?')}")
                 for lang, ds in datasets.items()}
    return _fit(sources, out_dir, vocab_size, seed, overwrite, language_alpha, sentencepiece_options,
                described, vocabulary, panel)


# ---------------------------------------------------------------------------------------------- command line
def corpus_files(corpus: str, languages: Sequence[str] | None, panel: Panel | None) -> dict[str, Path]:
    """Language -> text file of a corpus directory (``<dir>/<code>.txt`` or ``<dir>/mlm/<code>.txt``).

    With ``languages`` every listed language must have a file; otherwise the panel's languages that have one
    (or, without a panel, every ``<code>.txt``).
    """
    root = Path(corpus)
    if not root.is_dir():
        raise XltError(f"corpus directory {corpus} not found — give a directory of <code>.txt files or "
                       "'synthetic'")

    def find(code: str) -> Path | None:
        return next((p for p in (root / f"{code}.txt", root / "mlm" / f"{code}.txt") if p.is_file()), None)

    if languages is not None:
        if not languages:
            raise XltError("languages is empty — list at least one language code or leave it unset")
        missing = [code for code in languages if find(code) is None]
        if missing:
            raise XltError(f"corpus file {root / (missing[0] + '.txt')} for language '{missing[0]}' not found — "
                           "add it (one sentence per line) or drop the language from languages")
        return {code: find(code) for code in languages}  # type: ignore[misc]
    if panel is not None:
        files = {code: path for code in panel.codes if (path := find(code)) is not None}
    else:
        base = root / "mlm" if (root / "mlm").is_dir() else root
        files = {p.stem: p for p in sorted(base.glob("*.txt"))}
    if not files:
        raise XltError(f"corpus directory {corpus} has no <code>.txt file"
                       + (f" for any language of panel '{panel.name}'" if panel is not None else "")
                       + " — add text files (one sentence per line)")
    return files


def synthetic_corpus(cache_dir: str | Path, seed: int = 0, scale: float = 1.0) -> Path:
    """The synthetic panel's directory under ``cache_dir`` (generated on first use; the corpus DataModule
    uses the same place)."""
    from xlt.synthetic import cached_panel

    return cached_panel(cache_dir, seed, scale)


def fit_command(
    output: str | None = None,
    corpus: str = "synthetic",
    configuration: Configuration = "shared",
    vocab_size: int = 8000,
    panel: str | None = None,
    languages: list[str] | None = None,
    alpha: float = 0.0,
    language_pieces: int = 1000,
    designated_languages: list[str] | None = None,
    character_coverage: float = 0.9995,
    input_sentence_size: int = DEFAULT_INPUT_SENTENCE_SIZE,
    base_tokenizer: str | None = None,
    sentencepiece_options: dict[str, Any] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    cache_dir: str = "runs/cache",
    synthetic_seed: int = 0,
    synthetic_scale: float = 1.0,
) -> None:
    """Fit a tokenizer in one of the paper's four vocabulary configurations and write its directory.

    (a) shared, (b) balanced, (c) proportional_2x, (d) lang_specific (§III.C); configs/tokenizer/*.yaml hold
    one recipe each. The directory (written atomically) holds the SentencePiece model(s), manifest.json and
    transformers tokenizer files; load it with xlt.tokenization.tokenizer.XltTokenizer.load.

    Args:
        output: Tokenizer directory to write (default: ``runs/tokenizers/<configuration>``).
        corpus: ``synthetic`` (the synthetic panel, generated into ``cache_dir``) or a directory of
            ``<code>.txt`` files (one sentence per line; ``<dir>/mlm/<code>.txt`` also works).
        configuration: ``shared`` (a), ``balanced`` (b), ``proportional_2x`` (c) or ``lang_specific`` (d).
        vocab_size: Base SentencePiece pieces of the shared vocabulary (ids = pieces + 2); ``proportional_2x``
            fits twice this, ``lang_specific`` adds its blocks on top.
        panel: Language panel (name under configs/panels or a YAML path) for the language list and the
            designated languages; default: ``synthetic`` for the synthetic corpus, else the corpus
            directory's ``panel.yaml`` if any.
        languages: Language codes to fit on (default: the panel's languages that have a text file).
        alpha: ``balanced`` only: sample quotas ``∝ lines ** alpha`` (0 = uniform, 0.3 = temperature).
        language_pieces: ``lang_specific`` only: pieces per designated language's block.
        designated_languages: ``lang_specific`` only: the languages that get a block (overrides the panel's
            ``designated: true``).
        character_coverage: SentencePiece character coverage.
        input_sentence_size: Lines in the bounded fitting sample.
        base_tokenizer: ``lang_specific`` only: an existing shared tokenizer directory to extend with blocks
            (the vocabulary of a checkpoint for continued pretraining) instead of fitting a shared model.
        sentencepiece_options: Further SentencePiece trainer options (``num_threads``, ``split_digits`` ...).
        seed: Seed of the line samples.
        overwrite: Replace an existing output directory.
        cache_dir: Where the synthetic panel is generated (shared with the corpus DataModule).
        synthetic_seed: Seed of the synthetic panel.
        synthetic_scale: Corpus size multiplier of the synthetic panel.
    """
    import time

    vocabulary = VocabularyConfig(
        configuration=configuration, alpha=alpha, language_pieces=language_pieces,
        designated_languages=designated_languages, character_coverage=character_coverage,
        input_sentence_size=input_sentence_size, base_tokenizer=base_tokenizer,
        sentencepiece_options=dict(sentencepiece_options or {}))
    vocabulary.check()
    output = output or f"runs/tokenizers/{configuration}"
    if Path(output).exists() and not overwrite:
        raise XltError(f"tokenizer directory {output} already exists — pass --overwrite true or choose another path")
    if corpus == "synthetic":
        root = synthetic_corpus(cache_dir, synthetic_seed, synthetic_scale)
        corpus_dir, panel_obj = str(root / "mlm"), load_panel(panel or str(root / "panel.yaml"))
    else:
        corpus_dir = corpus
        default_panel = Path(corpus) / "panel.yaml"
        panel_obj = load_panel(panel) if panel else (load_panel(str(default_panel)) if default_panel.is_file()
                                                     else None)
    if languages is not None and panel_obj is not None:
        for code in languages:
            panel_obj.get(code)  # XltError naming the panel for unknown codes
    files = corpus_files(corpus_dir, languages, panel_obj)
    start = time.perf_counter()
    tokenizer = fit_configuration(files, output, vocab_size, vocabulary, seed=seed, overwrite=overwrite,
                                  panel=panel_obj)
    seconds = time.perf_counter() - start
    blocks = ", ".join(f"{code} [{a}, {b})" for code, (a, b) in tokenizer.blocks.items())
    print(f"wrote {output}: configuration {configuration}, {tokenizer.shared_vocab_size} shared ids"
          + (f" + blocks {blocks}" if blocks else "") + f" = {tokenizer.vocab_size} ids, "
          f"{len(files)} languages, {seconds:.1f} s")
