"""Tokenizer audit numbers: how well does a vocabulary serve each language? Several tokenizers side by side.

Per (tokenizer, language), on a fixed text sample (the same texts for every tokenizer):

* ``fertility``: subword pieces per whitespace word (each distinct word is encoded on its own, as the first
  word of a text: SentencePiece pieces never cross whitespace, so this is the word's share of a sentence's
  ids, a lone ``▁`` piece included); ``continued_words``: share of those words split into >= 2 pieces;
* ``gold_fertility`` / ``gold_continued_words``: the same on gold words (CoNLL-U word lines, multiword
  ranges excluded) where UD data is given — the meaningful number for scripts written without spaces (Han);
* ``unk_rate`` and ``byte_fallback_rate``: share of the sample's ids that are ``<unk>`` / byte pieces
  (``<0xNN>``), texts encoded whole;
* ``mean_seq_len``: ids per text (no special tokens);
* ``vocab_share``: distinct ids the sample uses / the ids available to the language (the vocabulary; for
  a language-aware tokenizer the shared vocabulary plus the language's own block);
* ``char_coverage``: share of the (NFKC-normalised, non-whitespace) characters covered by a real piece,
  i.e. neither byte fallback nor ``<unk>``; ``coverage_by_script`` splits it by the characters' Unicode
  script (:func:`char_script`). A character is covered when encoding it alone gives no byte/unk piece —
  exact for SentencePiece unigram models, which keep every covered character as a piece of its own.

:func:`audit_tokenizers` returns one :class:`AuditRow` per (tokenizer, language) and writes nothing;
:func:`aggregate` and :func:`pooled_script_coverage` give group means. The files and the MLflow run are
:mod:`xlt.tokenization.audit_report`; the text sample and ``xlt tokenizer audit`` are
:mod:`xlt.tokenization.audit_command`.

The audit needs only ``encode(texts, lang)``, ``vocab_size``, ``unk_id`` and ``id_to_piece`` from a
tokenizer, so language-aware tokenizers are audited with each language's own routing.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xlt.errors import XltError
from xlt.languages import Panel

__all__ = ["METRICS", "UNSAFE_NAME", "AuditRow", "aggregate", "audit_tokenizer", "audit_tokenizers", "char_script",
           "check_code", "pooled_script_coverage"]

#: Per-language metrics, in table order (``gold_*`` are ``None`` without UD data).
METRICS = ("fertility", "continued_words", "gold_fertility", "gold_continued_words", "unk_rate",
           "byte_fallback_rate", "mean_seq_len", "vocab_share", "char_coverage")
#: Characters not allowed in tokenizer names and language codes (both become parts of metric names).
UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")

# First word(s) of Unicode character names -> script. Unlisted names fall back to their first word for
# letters and marks ("JAVANESE LETTER KA" -> Javanese); punctuation, digits, symbols are Common.
_SCRIPT_PREFIXES = {
    "LATIN": "Latin", "CYRILLIC": "Cyrillic", "GREEK": "Greek", "ARMENIAN": "Armenian", "HEBREW": "Hebrew",
    "ARABIC": "Arabic", "SYRIAC": "Syriac", "THAANA": "Thaana", "NKO": "Nko", "DEVANAGARI": "Devanagari",
    "BENGALI": "Bengali", "GURMUKHI": "Gurmukhi", "GUJARATI": "Gujarati", "ORIYA": "Odia", "TAMIL": "Tamil",
    "TELUGU": "Telugu", "KANNADA": "Kannada", "MALAYALAM": "Malayalam", "SINHALA": "Sinhala", "THAI": "Thai",
    "LAO": "Lao", "TIBETAN": "Tibetan", "MYANMAR": "Myanmar", "GEORGIAN": "Georgian", "HANGUL": "Hangul",
    "ETHIOPIC": "Ethiopic", "CHEROKEE": "Cherokee", "KHMER": "Khmer", "MONGOLIAN": "Mongolian",
    "HIRAGANA": "Hiragana", "KATAKANA": "Katakana", "CJK": "Han", "KANGXI": "Han", "TIFINAGH": "Tifinagh",
    "COMBINING": "Inherited", "ZERO WIDTH": "Inherited", "VARIATION SELECTOR": "Inherited",
}
_SCRIPT_WORDS = ("LETTER", "SIGN", "SYLLABLE", "VOWEL", "LIGATURE", "IDEOGRAPH", "DIGIT")
_NON_SCRIPTS = ("Common", "Inherited", "Unknown")


def char_script(ch: str) -> str:
    """The writing system of one character from its Unicode name: ``Latin``, ``Cyrillic``, ``Devanagari``,
    ``Arabic``, ``Han``, ``Sinhala``, ``Greek``, ``Tamil``, ``Bengali``...; ``Common`` for punctuation,
    symbols and ASCII digits, ``Inherited`` for combining marks and zero-width joiners, ``Unknown`` for
    unnamed code points."""
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return "Common" if unicodedata.category(ch)[0] in "ZC" else "Unknown"
    for prefix, script in _SCRIPT_PREFIXES.items():
        if name.startswith(prefix + " ") or name == prefix:
            return script
    category = unicodedata.category(ch)
    first = name.split(" ", 1)[0]
    if category[0] in "LMN" and first.isalpha() and any(w in name.split() for w in _SCRIPT_WORDS) \
            and first not in ("DIGIT", "MODIFIER", "SUPERSCRIPT", "SUBSCRIPT", "FULLWIDTH", "HALFWIDTH",
                              "CIRCLED", "PARENTHESIZED", "VULGAR", "ROMAN", "MATHEMATICAL"):
        return first.title()
    return "Common"


@dataclass
class AuditRow:
    """Audit numbers of one tokenizer on one language (see the module docstring for the definitions).

    Attributes:
        tokenizer: the tokenizer's name (its directory name by default).
        language: ISO 639-3 code.
        script: the language's script (panel; else the dominant Unicode script of its sample).
        bucket: resource bucket (panel; ``unknown`` without one).
        family: language family (panel; ``unknown`` without one).
        texts: texts in the sample.
        words: whitespace words in the sample.
        pieces: ids of the sample, texts encoded whole.
        gold_words: gold (UD) words audited; 0 without UD data.
        vocab_used: distinct ids of the sample.
        vocab_size: ids available to the language: the vocabulary size, or for a language-aware tokenizer
            the shared vocabulary plus the language's own block (other languages' blocks excluded).
        chars: non-whitespace characters of the NFKC-normalised sample.
        coverage_by_script: Unicode script -> share of that script's characters covered by a real piece.
        chars_by_script: Unicode script -> characters of that script in the sample.
    """

    tokenizer: str
    language: str
    script: str
    bucket: str
    family: str
    texts: int
    words: int
    pieces: int
    gold_words: int
    vocab_used: int
    vocab_size: int
    chars: int
    fertility: float
    continued_words: float
    gold_fertility: float | None
    gold_continued_words: float | None
    unk_rate: float
    byte_fallback_rate: float
    mean_seq_len: float
    vocab_share: float
    char_coverage: float
    coverage_by_script: dict[str, float] = field(default_factory=dict)
    chars_by_script: dict[str, int] = field(default_factory=dict)

    def metric(self, name: str) -> float | None:
        """The value of one of :data:`METRICS`."""
        return getattr(self, name)


class _PieceKinds:
    """Which ids of a tokenizer are byte pieces or ``<unk>`` (looked up lazily, only for ids that occur)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.unk_id = int(getattr(tokenizer, "unk_id", 3))
        self._byte: dict[int, bool] = {}

    def is_byte(self, token_id: int) -> bool:
        known = self._byte.get(token_id)
        if known is None:
            known = bool(_BYTE_PIECE.match(str(self.tokenizer.id_to_piece(int(token_id)))))
            self._byte[token_id] = known
        return known

    def is_fallback(self, token_id: int) -> bool:
        return token_id == self.unk_id or self.is_byte(token_id)


def _word_stats(tokenizer: Any, words: Counter[str], lang: str) -> tuple[float, float]:
    """(pieces per word, share of words with >= 2 pieces) over word occurrences; each distinct word is
    encoded once."""
    distinct = list(words)
    lengths = [len(ids) for ids in tokenizer.encode(distinct, lang=lang)]
    total = sum(words.values())
    pieces = sum(n * words[w] for w, n in zip(distinct, lengths, strict=True))
    continued = sum(words[w] for w, n in zip(distinct, lengths, strict=True) if n >= 2)
    return pieces / total, continued / total


def check_code(code: str, panel: Panel | None) -> None:
    if not isinstance(code, str) or not code or UNSAFE_NAME.search(code):
        raise XltError(f"language code {code!r} is not usable — use an ISO 639-3 code such as 'eng'")
    if panel is not None:
        panel.get(code)  # XltError naming the panel and its codes


def _clean_texts(texts: Sequence[str] | None, lang: str) -> list[str]:
    if isinstance(texts, str):
        raise XltError(f"texts for language '{lang}' must be a list of strings, not one string — wrap it in a list")
    clean = [t for t in (texts or []) if isinstance(t, str) and t.strip()]
    if not clean:
        raise XltError(f"no text for language '{lang}' — give at least one non-blank line or drop the language")
    return clean


def _gold_words(gold: Sequence[Sequence[str]] | Sequence[str], lang: str) -> list[str]:
    """Flatten gold words given as sentences (lists of words) or as one flat list of words."""
    words: list[str] = []
    for item in gold or []:
        words.extend([item] if isinstance(item, str) else list(item))
    words = [w for w in words if w.strip()]
    if not words:
        raise XltError(f"gold words for language '{lang}' are empty — give UD sentences or leave the language out")
    return words


def _available_ids(tokenizer: Any, lang: str) -> int:
    """Ids a language can produce: the shared vocabulary plus its own block (all ids without blocks)."""
    blocks = getattr(tokenizer, "blocks", None) or {}
    if not blocks:
        return int(tokenizer.vocab_size)
    start, stop = blocks.get(lang, (0, 0))
    return int(tokenizer.shared_vocab_size) + int(stop) - int(start)


def _dominant_script(chars: Counter[str]) -> str:
    scripts: Counter[str] = Counter()
    for ch, n in chars.items():
        script = char_script(ch)
        if script not in _NON_SCRIPTS:
            scripts[script] += n
    return scripts.most_common(1)[0][0] if scripts else "Common"


def audit_tokenizer(tokenizer: Any, texts_by_lang: Mapping[str, Sequence[str]], panel: Panel | None = None,
                    gold_words_by_lang: Mapping[str, Sequence[Sequence[str]] | Sequence[str]] | None = None,
                    name: str = "tokenizer") -> list[AuditRow]:
    """Audit one tokenizer on per-language texts (no side effects: nothing is written or logged).

    Args:
        tokenizer: an :class:`~xlt.tokenization.tokenizer.XltTokenizer` or anything with
            ``encode(texts, lang)``, ``vocab_size``, ``unk_id`` and ``id_to_piece``.
        texts_by_lang: language code -> texts (the fixed sample; blank texts are ignored).
        panel: the languages' panel, for script, bucket and family (every language must be in it).
        gold_words_by_lang: language code -> gold words (UD sentences as word lists, or a flat word list)
            for gold-word fertility; languages without an entry get ``None``.
        name: the tokenizer's name in the rows.

    Returns:
        One :class:`AuditRow` per language, in the order of ``texts_by_lang``.
    """
    if not texts_by_lang:
        raise XltError("no languages to audit — give texts for at least one language")
    gold_words_by_lang = dict(gold_words_by_lang or {})
    for code in list(texts_by_lang) + list(gold_words_by_lang):
        check_code(code, panel)
    stray = sorted(set(gold_words_by_lang) - set(texts_by_lang))
    if stray:
        raise XltError(f"gold words given for language(s) {stray} without texts — add their texts or drop them")
    kinds = _PieceKinds(tokenizer)
    rows = []
    for lang, raw in texts_by_lang.items():
        vocab_size = _available_ids(tokenizer, lang)
        texts = _clean_texts(raw, lang)
        ids = tokenizer.encode(texts, lang=lang)
        flat = [int(i) for seq in ids for i in seq]
        pieces = len(flat)
        used = set(flat)
        n_unk = sum(1 for i in flat if i == kinds.unk_id)
        n_byte = sum(1 for i in flat if kinds.is_byte(i))
        words = Counter(w for t in texts for w in t.split())
        fertility, continued = _word_stats(tokenizer, words, lang)
        gold_fert = gold_cont = None
        n_gold = 0
        if lang in gold_words_by_lang:
            gold = _gold_words(gold_words_by_lang[lang], lang)
            n_gold = len(gold)
            gold_fert, gold_cont = _word_stats(tokenizer, Counter(gold), lang)
        chars = Counter(ch for t in texts for ch in unicodedata.normalize("NFKC", t) if not ch.isspace())
        distinct = list(chars)
        covered = {ch: not any(kinds.is_fallback(int(i)) for i in seq)
                   for ch, seq in zip(distinct, tokenizer.encode(distinct, lang=lang), strict=True)}
        per_script: dict[str, list[int]] = {}
        for ch, n in chars.items():
            tally = per_script.setdefault(char_script(ch), [0, 0])
            tally[0] += n * covered[ch]
            tally[1] += n
        n_chars = sum(chars.values())
        language = panel.get(lang) if panel is not None else None
        rows.append(AuditRow(
            tokenizer=name, language=lang,
            script=language.script if language else _dominant_script(chars),
            bucket=language.bucket if language else "unknown",
            family=language.family if language else "unknown",
            texts=len(texts), words=sum(words.values()), pieces=pieces, gold_words=n_gold,
            vocab_used=len(used), vocab_size=vocab_size, chars=n_chars,
            fertility=fertility, continued_words=continued,
            gold_fertility=gold_fert, gold_continued_words=gold_cont,
            unk_rate=n_unk / pieces if pieces else 0.0,
            byte_fallback_rate=n_byte / pieces if pieces else 0.0,
            mean_seq_len=pieces / len(texts), vocab_share=len(used) / vocab_size,
            char_coverage=sum(c for c, _ in per_script.values()) / n_chars if n_chars else 1.0,
            coverage_by_script={s: c / n for s, (c, n) in sorted(per_script.items())},
            chars_by_script={s: n for s, (_, n) in sorted(per_script.items())},
        ))
    return rows


def audit_tokenizers(tokenizers: Mapping[str, Any], texts_by_lang: Mapping[str, Sequence[str]],
                     panel: Panel | None = None,
                     gold_words_by_lang: Mapping[str, Sequence[Sequence[str]] | Sequence[str]] | None = None,
                     ) -> list[AuditRow]:
    """Audit several tokenizers on the same texts: :func:`audit_tokenizer` for each, rows concatenated.

    Args:
        tokenizers: name -> tokenizer (names appear in tables and metric names; ``[A-Za-z0-9_.-]`` only).
        texts_by_lang: language code -> texts.
        panel: the languages' panel.
        gold_words_by_lang: language code -> gold words.
    """
    if not tokenizers:
        raise XltError("no tokenizer to audit — pass at least one tokenizer directory")
    rows = []
    for name, tokenizer in tokenizers.items():
        if not name or UNSAFE_NAME.search(name):
            raise XltError(f"tokenizer name {name!r} is not usable in metric names — use letters, digits, _ . -")
        rows += audit_tokenizer(tokenizer, texts_by_lang, panel, gold_words_by_lang, name=name)
    return rows


def aggregate(rows: Iterable[AuditRow], metric: str, by: str) -> dict[tuple[str, str], float]:
    """Mean of ``metric`` over languages, per (tokenizer, group).

    Args:
        rows: audit rows.
        metric: one of :data:`METRICS`.
        by: ``macro`` (one group named ``macro``), ``script``, ``bucket`` or ``family`` (the row's field).
    """
    sums: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        value = row.metric(metric)
        if value is None:
            continue
        group = "macro" if by == "macro" else str(getattr(row, by))
        sums.setdefault((row.tokenizer, group), []).append(float(value))
    return {key: sum(values) / len(values) for key, values in sums.items()}


def pooled_script_coverage(rows: Iterable[AuditRow]) -> dict[tuple[str, str], float]:
    """Character coverage per (tokenizer, Unicode script), pooling the characters of all languages."""
    tallies: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        for script, share in row.coverage_by_script.items():
            tally = tallies.setdefault((row.tokenizer, script), [0.0, 0.0])
            tally[0] += share * row.chars_by_script.get(script, 0)
            tally[1] += row.chars_by_script.get(script, 0)
    return {key: c / n for key, (c, n) in tallies.items() if n}
