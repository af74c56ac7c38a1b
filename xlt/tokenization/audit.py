"""Tokenizer audit: how well does a vocabulary serve each language? Several tokenizers side by side.

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

Outputs (:func:`write_audit`, atomic): ``audit.csv`` (one row per tokenizer x language, full precision,
read back by :func:`read_audit_csv`), ``audit.md`` (side-by-side tables), ``fertility_by_script.png`` and
``fertility_by_bucket.png`` (grouped bars, one bar per tokenizer). :func:`log_audit_to_mlflow` logs the
same numbers as one MLflow run: ``audit/<tokenizer>/<metric>/<lang>``, the group means
``audit/<tokenizer>/<metric>/{macro,script.<S>,bucket.<b>,family.<f>}`` over languages (panel script,
bucket, family), ``audit/<tokenizer>/char_coverage.<S>/<lang>`` and, pooling the characters of all
languages by Unicode script, ``audit/<tokenizer>/char_coverage/script.<S>``; the output files are its
artifacts. :func:`audit_command` is ``xlt tokenizer audit``.

The audit needs only ``encode(texts, lang)``, ``vocab_size``, ``unk_id`` and ``id_to_piece`` from a
tokenizer, so language-aware tokenizers are audited with each language's own routing.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from xlt.atomic import atomic_dir
from xlt.errors import XltError
from xlt.languages import BUCKETS, Panel, load_panel, to_iso639_3
from xlt.mlflow_store import default_tracking_uri, get_or_create_experiment

__all__ = [
    "AuditRow", "METRICS", "aggregate", "audit_command", "audit_tokenizer", "audit_tokenizers", "char_script",
    "audit_argv", "audit_metrics", "discover_texts", "discover_ud", "log_audit_to_mlflow", "pooled_script_coverage",
    "read_audit_csv", "write_audit",
]

#: Per-language metrics, in table order (``gold_*`` are ``None`` without UD data).
METRICS = ("fertility", "continued_words", "gold_fertility", "gold_continued_words", "unk_rate",
           "byte_fallback_rate", "mean_seq_len", "vocab_share", "char_coverage")
_LABELS = {"fertility": "fertility", "continued_words": "continued", "gold_fertility": "gold fertility",
           "gold_continued_words": "gold continued", "unk_rate": "unk", "byte_fallback_rate": "byte fallback",
           "mean_seq_len": "mean len", "vocab_share": "vocab share", "char_coverage": "char coverage"}
CSV_FILE, MARKDOWN_FILE = "audit.csv", "audit.md"
PLOT_FILES = {"script": "fertility_by_script.png", "bucket": "fertility_by_bucket.png"}
_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_METRIC_CHARS = re.compile(r"[^A-Za-z0-9_/. -]")

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


# --------------------------------------------------------------------------------------------------
# Computing the numbers
# --------------------------------------------------------------------------------------------------


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


def _check_code(code: str, panel: Panel | None) -> None:
    if not isinstance(code, str) or not code or _SAFE.search(code):
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
        _check_code(code, panel)
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
        if not name or _SAFE.search(name):
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


# --------------------------------------------------------------------------------------------------
# Tables, plots
# --------------------------------------------------------------------------------------------------

_INT_FIELDS = {f.name for f in fields(AuditRow) if f.type in ("int", int)}
_STR_FIELDS = ("tokenizer", "language", "script", "bucket", "family")
_COLUMNS = [f.name for f in fields(AuditRow) if f.name not in ("coverage_by_script", "chars_by_script")]


def _scripts(rows: Sequence[AuditRow]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row.coverage_by_script))
    return sorted(seen)


def _write_csv(rows: Sequence[AuditRow], path: Path) -> None:
    scripts = _scripts(rows)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_COLUMNS + [f"char_coverage.{s}" for s in scripts] + [f"chars.{s}" for s in scripts])
        for row in rows:
            values = [getattr(row, c) for c in _COLUMNS]
            values += [row.coverage_by_script.get(s) for s in scripts]
            values += [row.chars_by_script.get(s) for s in scripts]
            writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in values])


def read_audit_csv(path: str | Path) -> list[AuditRow]:
    """Read ``audit.csv`` back into rows (floats round-trip exactly)."""
    path = Path(path)
    if not path.is_file():
        raise XltError(f"audit table {path} not found — run `xlt tokenizer audit` first")
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        for record in csv.DictReader(handle):
            kwargs: dict[str, Any] = {}
            for column in _COLUMNS:
                text = record[column]
                if column in _STR_FIELDS:
                    kwargs[column] = text
                elif column in _INT_FIELDS:
                    kwargs[column] = int(text)
                else:
                    kwargs[column] = None if text == "" else float(text)
            kwargs["coverage_by_script"] = {k.split(".", 1)[1]: float(v) for k, v in record.items()
                                            if k.startswith("char_coverage.") and v != ""}
            kwargs["chars_by_script"] = {k.split(".", 1)[1]: int(v) for k, v in record.items()
                                         if k.startswith("chars.") and v != ""}
            rows.append(AuditRow(**kwargs))
    return rows


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def _md_table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines + [""]


def _order(values: Iterable[str], preferred: Sequence[str] = ()) -> list[str]:
    distinct = list(dict.fromkeys(values))
    return [v for v in preferred if v in distinct] + [v for v in distinct if v not in preferred]


def _markdown(rows: Sequence[AuditRow], title: str, notes: Sequence[str]) -> str:
    tokenizers = _order(r.tokenizer for r in rows)
    languages = _order(r.language for r in rows)
    by_key = {(r.tokenizer, r.language): r for r in rows}
    first = {r.language: r for r in reversed(rows)}
    lines = [f"# {title}", ""] + [f"- {n}" for n in notes] + [""]

    def pivot(metric: str, heading: str) -> None:
        if all(r.metric(metric) is None for r in rows):
            return
        lines.extend([f"## {heading}", ""])
        body = [[lang, first[lang].script, first[lang].bucket]
                + [_fmt(by_key[(t, lang)].metric(metric)) if (t, lang) in by_key else "" for t in tokenizers]
                for lang in languages]
        means = aggregate(rows, metric, "macro")
        body.append(["**macro**", "", ""] + [_fmt(means.get((t, "macro"))) for t in tokenizers])
        lines.extend(_md_table(["language", "script", "bucket", *tokenizers], body))

    pivot("fertility", "Fertility (pieces per whitespace word)")
    pivot("gold_fertility", "Fertility on gold (UD) words")
    for by in ("script", "bucket"):
        means = aggregate(rows, "fertility", by)
        groups = _order((g for _, g in means), BUCKETS if by == "bucket" else ())
        lines.extend([f"## Mean fertility by {by}", ""])
        lines.extend(_md_table([by, *tokenizers], [[g] + [_fmt(means.get((t, g))) for t in tokenizers]
                                                   for g in groups]))
    lines.extend(["## All metrics", ""])
    body = [[r.language, r.tokenizer] + [_fmt(r.metric(m), 4 if m.endswith("rate") else 3) for m in METRICS]
            + [str(r.vocab_used)] for lang in languages for r in rows if r.language == lang]
    lines.extend(_md_table(["language", "tokenizer", *(_LABELS[m] for m in METRICS), "ids used"], body))
    scripts = _scripts(rows)
    lines.extend(["## Character coverage by Unicode script", ""])
    body = [[r.language, r.tokenizer] + [_fmt(r.coverage_by_script.get(s)) if s in r.coverage_by_script else ""
                                         for s in scripts] for lang in languages for r in rows if r.language == lang]
    lines.extend(_md_table(["language", "tokenizer", *scripts], body))
    return "\n".join(lines)


def _plot(rows: Sequence[AuditRow], by: str, path: Path) -> None:
    """Grouped bars of mean fertility per ``by`` group, one bar per tokenizer (and gold words when given)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg canvas

    tokenizers = _order(r.tokenizer for r in rows)
    panels = [("fertility", "whitespace words")]
    if any(r.gold_fertility is not None for r in rows):
        panels.append(("gold_fertility", "gold (UD) words"))
    n_groups = len({getattr(r, by) for r in rows})
    width_in = max(6.0, 2.0 + n_groups * (0.6 + 0.35 * len(tokenizers)))
    fig = Figure(figsize=(width_in, 3.6 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (metric, label) in zip(axes, panels, strict=True):
        means = aggregate(rows, metric, by)
        groups = _order((g for _, g in means), BUCKETS if by == "bucket" else ())
        width = 0.8 / max(1, len(tokenizers))
        for k, tok in enumerate(tokenizers):
            xs = [i + (k - (len(tokenizers) - 1) / 2) * width for i in range(len(groups))]
            ax.bar(xs, [means.get((tok, g), 0.0) for g in groups], width=width, label=tok)
        ax.set_xticks(range(len(groups)), groups, rotation=30 if len(groups) > 6 else 0)
        ax.set_ylabel("pieces per word")
        ax.set_title(f"Fertility on {label}, mean over languages, by {by}")
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def write_audit(rows: Sequence[AuditRow], out_dir: str | Path, overwrite: bool = False,
                title: str = "Tokenizer audit", notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``audit.csv``, ``audit.md`` and the two fertility plots into ``out_dir`` (atomically).

    Args:
        rows: audit rows (several tokenizers side by side).
        out_dir: the output directory; an existing one needs ``overwrite``.
        overwrite: replace an existing ``out_dir``.
        title: the Markdown heading.
        notes: bullet lines under the heading (sources, sample size).

    Returns:
        File kind (``csv``, ``markdown``, ``script``, ``bucket``) -> path.
    """
    if not rows:
        raise XltError("no audit rows to write — audit at least one language")
    out_dir = Path(out_dir)
    names = {"csv": CSV_FILE, "markdown": MARKDOWN_FILE, **PLOT_FILES}
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        _write_csv(rows, tmp / CSV_FILE)
        (tmp / MARKDOWN_FILE).write_text(_markdown(rows, title, notes), encoding="utf-8")
        for by, filename in PLOT_FILES.items():
            _plot(rows, by, tmp / filename)
    return {kind: out_dir / filename for kind, filename in names.items()}


# --------------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------------


def _metric_key(*parts: str) -> str:
    return _METRIC_CHARS.sub("_", "/".join(parts))


def audit_metrics(rows: Sequence[AuditRow]) -> dict[str, float]:
    """The MLflow metrics of an audit (names in the module docstring)."""
    metrics: dict[str, float] = {}
    for row in rows:
        for metric in METRICS:
            value = row.metric(metric)
            if value is not None:
                metrics[_metric_key("audit", row.tokenizer, metric, row.language)] = float(value)
        for script, value in row.coverage_by_script.items():
            metrics[_metric_key("audit", row.tokenizer, f"char_coverage.{script}", row.language)] = float(value)
    for metric in METRICS:
        for by in ("macro", "script", "bucket", "family"):
            if metric == "char_coverage" and by == "script":
                continue  # pooled by Unicode script below
            for (tok, group), value in aggregate(rows, metric, by).items():
                name = group if by == "macro" else f"{by}.{group}"
                metrics[_metric_key("audit", tok, metric, name)] = value
    for (tok, script), value in pooled_script_coverage(rows).items():
        metrics[_metric_key("audit", tok, "char_coverage", f"script.{script}")] = value
    return metrics


def log_audit_to_mlflow(rows: Sequence[AuditRow], artifacts: Mapping[str, Path] | Sequence[Path] = (),
                        experiment_name: str = "tokenizer-audit", tracking_uri: str | None = None,
                        run_name: str | None = None, params: Mapping[str, Any] | None = None,
                        manifests: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """Log an audit as one finished MLflow run; returns its run id.

    Args:
        rows: audit rows.
        artifacts: files to attach (the table and plots written by :func:`write_audit`).
        experiment_name: the MLflow experiment (created with artifacts beside a SQLite store, as
            :class:`~xlt.callbacks.tracking.TrackingLogger` does).
        tracking_uri: the MLflow store; ``None`` uses ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``.
        run_name: the run's name (default ``audit-<tokenizers>``).
        params: run parameters (tokenizer paths, panel, sample size).
        manifests: tokenizer name -> its fitting manifest, logged as ``tokenizers/<name>/manifest.json``.
    """
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    experiment_id = get_or_create_experiment(client, experiment_name, uri)
    tokenizers = _order(r.tokenizer for r in rows)
    tags = {"xlt.stage": "audit", "tokenizers": ",".join(tokenizers),
            "languages": ",".join(_order(r.language for r in rows))}
    run = client.create_run(experiment_id, run_name=run_name or "audit-" + "-".join(tokenizers), tags=tags)
    run_id = run.info.run_id
    try:
        timestamp = int(time.time() * 1000)
        metric_items = [Metric(k, v, timestamp, 0) for k, v in audit_metrics(rows).items()]
        param_items = [Param(str(k), str(v)[:6000]) for k, v in (params or {}).items()]
        for start in range(0, len(param_items), 100):  # MLflow's batch limits: 100 params, 1000 metrics
            client.log_batch(run_id, params=param_items[start:start + 100])
        for start in range(0, len(metric_items), 1000):
            client.log_batch(run_id, metrics=metric_items[start:start + 1000])
        for path in (artifacts.values() if isinstance(artifacts, Mapping) else artifacts):
            client.log_artifact(run_id, str(path))
        for name, manifest in (manifests or {}).items():
            if manifest:
                client.log_text(run_id, json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n",
                                f"tokenizers/{name}/manifest.json")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


# --------------------------------------------------------------------------------------------------
# Text sources (the command)
# --------------------------------------------------------------------------------------------------

_TATOEBA = re.compile(r"^tatoeba\.([^.-]+)-([^.-]+)\.([^.]+)$")


def discover_texts(corpus: str | Path) -> dict[str, list[Path]]:
    """Text files per language (ISO 639-3) in a corpus directory, in reading order.

    Layouts: ``<corpus>/<code>.txt``; the synthetic panel's ``<corpus>/mlm/<code>.txt``; Tatoeba pairs
    ``tatoeba.<x>-<y>.<x>`` (and ``.<y>``) in ``<corpus>`` or ``<corpus>/tatoeba`` — both sides count, so
    the shared source side (``eng``) collects the lines of every pair. Dataset codes (``cmn``, ``swh``,
    ``en``) are mapped to ISO 639-3.
    """
    root = Path(corpus)
    if not root.exists():
        raise XltError(f"corpus directory {root} not found — give a directory of <code>.txt files "
                       "(or the synthetic panel / a Tatoeba directory)")
    if not root.is_dir():
        raise XltError(f"corpus {root} is a file — give a directory of <code>.txt files")
    found: dict[str, list[Path]] = {}
    text_dir = root / "mlm" if (root / "mlm").is_dir() else root
    for path in sorted(text_dir.glob("*.txt")):
        found.setdefault(to_iso639_3(path.stem), []).append(path)
    for directory in (root, root / "tatoeba"):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("tatoeba.*")):
            m = _TATOEBA.match(path.name)
            if m and m[3] in (m[1], m[2]) and path.is_file():
                found.setdefault(to_iso639_3(m[3]), []).append(path)
    return found


def discover_ud(ud: str | Path) -> dict[str, list[Path]]:
    """CoNLL-U files per language: ``<ud>/<code>/*.conllu`` (sorted; codes mapped to ISO 639-3)."""
    root = Path(ud)
    if not root.is_dir():
        raise XltError(f"UD directory {root} not found — give a directory with <code>/*.conllu")
    found: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(sub.glob("*.conllu"))
        if files:
            found.setdefault(to_iso639_3(sub.name), []).extend(files)
    if not found:
        raise XltError(f"UD directory {root} has no <code>/*.conllu files — check the path")
    return found


def _read_sample(paths: Sequence[Path], lang: str, limit: int) -> list[str]:
    """The first ``limit`` distinct non-blank lines of ``paths`` (in order)."""
    seen: dict[str, None] = {}
    for path in paths:
        with open(path, "rb") as handle:
            for lineno, raw in enumerate(handle, 1):
                try:
                    text = raw.decode("utf-8").strip().removeprefix("\ufeff")
                except UnicodeDecodeError:
                    raise XltError(f"{path}:{lineno}: not valid UTF-8 — re-encode the file as UTF-8") from None
                if text:
                    seen[text] = None
                    if len(seen) >= limit:
                        return list(seen)
    if not seen:
        raise XltError(f"corpus file(s) {', '.join(map(str, paths))} for language '{lang}' are empty — "
                       "add text (one sentence per line) or drop the language")
    return list(seen)


def _ud_texts(paths: Sequence[Path], limit: int) -> list[str]:
    """``# text = ...`` lines of CoNLL-U files (the sentences' surface text), at most ``limit``."""
    texts: list[str] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="strict").splitlines():
            if line.startswith("# text =") or line.startswith("# text="):
                texts.append(line.split("=", 1)[1].strip())
                if len(texts) >= limit:
                    return texts
    return texts


def _ud_sample(paths: Sequence[Path], limit: int) -> list[list[str]]:
    """Gold words of the first ``limit`` sentences (:func:`xlt.datamodules.readers.read_conllu`)."""
    from xlt.datamodules.readers import read_conllu

    sentences: list[list[str]] = []
    for path in paths:
        sentences += read_conllu(path)["tokens"][: limit - len(sentences)]
        if len(sentences) >= limit:
            break
    return sentences


def _load_tokenizer(path: str | Path) -> Any:
    from xlt.tokenization.tokenizer import XltTokenizer

    path = Path(path)
    if not path.is_dir():
        raise XltError(f"tokenizer directory {path} not found — fit one with `xlt tokenizer fit` or check the path")
    return XltTokenizer.load(path)  # language blocks (configuration d) included


def _tokenizer_names(paths: Sequence[str]) -> list[str]:
    resolved = [Path(p).resolve() for p in paths]
    repeated = sorted({str(p) for p in resolved if resolved.count(p) > 1})
    if repeated:
        raise XltError(f"tokenizer {repeated[0]} is listed more than once — list each tokenizer once")
    names = [_SAFE.sub("_", p.name) for p in resolved]
    for i, p in enumerate(resolved):
        if names.count(names[i]) > 1:
            names[i] = _SAFE.sub("_", f"{p.parent.name}_{p.name}")
    if len(set(names)) != len(names):
        raise XltError(f"tokenizer directories {list(paths)} have clashing names — rename one of them")
    return names


def audit_argv(argv: Sequence[str], list_options: Sequence[str] = ("--tokenizer", "--languages")) -> list[str]:
    """Let list options take space-separated values (``--tokenizer runs/tok_a runs/tok_d``): the values are
    gathered into one JSON list, which jsonargparse parses (it accepts only ``--tokenizer '[a, b]'``)."""
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        option, eq, value = arg.partition("=")
        if option in list_options:
            values = [value] if eq else []
            i += 1
            while not eq and i < len(args) and not args[i].startswith("-"):
                values.append(args[i])
                i += 1
            if len(values) == 1 and values[0].lstrip().startswith("["):
                out += [option, values[0]]  # already a list
            elif values:
                out += [option, json.dumps(values, ensure_ascii=False)]
            else:
                out.append(option)  # let the parser report the missing value
            continue
        out.append(arg)
        i += 1
    return out


def audit_command(tokenizer: list[str] | None = None, corpus: str = "synthetic", panel: str | None = None,
                  ud: str | None = None, languages: list[str] | None = None, sample_lines: int = 1000,
                  out: str = "runs/audit", experiment_name: str = "tokenizer-audit",
                  tracking_uri: str | None = None, mlflow: bool = True, run_name: str | None = None,
                  overwrite: bool = False, cache_dir: str = "runs/cache", synthetic_seed: int = 0,
                  synthetic_scale: float = 1.0) -> list[AuditRow]:
    """Audit tokenizers side by side: a table (Markdown + CSV) and fertility plots in ``out``, logged to MLflow.

    Example: ``xlt tokenizer audit --tokenizer runs/tok_a runs/tok_d --panel configs/panels/synthetic.yaml``.
    Per language: fertility (pieces per whitespace word, and per gold UD word), continued words, UNK and
    byte-fallback rates, mean sequence length, share of the vocabulary used, character coverage by script.

    Args:
        tokenizer: Tokenizer directories (required; space-separated); each is named after its directory.
        corpus: Text per language: ``synthetic`` (the synthetic panel, generated into ``cache_dir`` once) or
            a directory of ``<code>.txt`` files (``<dir>/mlm/<code>.txt`` and Tatoeba
            ``tatoeba.<x>-eng.<x>`` files in ``<dir>`` or ``<dir>/tatoeba`` work too).
        panel: Panel name or YAML path giving each language's script, bucket and family (default: the
            corpus's ``panel.yaml`` if it has one; without a panel the script is the text's dominant one and
            the bucket ``unknown``).
        ud: UD directory with ``<code>/*.conllu`` for gold-word fertility (default: ``<corpus>/ud`` if it
            exists). Languages with UD data but no corpus text are audited on the UD ``# text`` lines.
        languages: ISO 639-3 codes to audit (default: every language with text, within the panel if any).
        sample_lines: The fixed sample: first N distinct non-blank lines (and N UD sentences) per language.
        out: Output directory (``audit.md``, ``audit.csv``, ``fertility_by_script.png``,
            ``fertility_by_bucket.png``), written atomically.
        experiment_name: MLflow experiment of the audit run.
        tracking_uri: MLflow store (default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``).
        mlflow: Log the audit to MLflow (one run; metrics ``audit/<tokenizer>/<metric>/<lang>``).
        run_name: MLflow run name (default ``audit-<tokenizer names>``).
        overwrite: Replace an existing ``out`` directory.
        cache_dir: Where the synthetic panel is generated (shared with ``xlt tokenizer fit`` and the corpus
            DataModule).
        synthetic_seed: Seed of the synthetic panel.
        synthetic_scale: Size multiplier of the synthetic panel.

    Returns:
        The audit rows (one per tokenizer x language).
    """
    if isinstance(sample_lines, bool) or not isinstance(sample_lines, int) or sample_lines < 1:
        raise XltError(f"sample_lines {sample_lines!r} must be a positive integer — e.g. --sample_lines 1000")
    if not tokenizer:
        raise XltError("no tokenizer given — pass --tokenizer <dir> [<dir> ...]")
    if languages is not None and not languages:
        raise XltError("languages is empty — list at least one language code or leave it unset")
    out_dir = Path(out)
    if out_dir.exists() and not overwrite:
        raise XltError(f"output directory {out_dir} already exists — pass --overwrite true or choose another --out")
    the_panel = load_panel(panel) if panel else None
    if the_panel is not None:
        for code in languages or []:
            the_panel.get(code)  # XltError naming the panel and its codes
    names = _tokenizer_names(tokenizer)
    tokenizers = {name: _load_tokenizer(path) for name, path in zip(names, tokenizer, strict=True)}

    if corpus == "synthetic":
        from xlt.tokenization.fit import synthetic_corpus

        corpus_dir = synthetic_corpus(cache_dir, synthetic_seed, synthetic_scale)
    else:
        corpus_dir = Path(corpus)
    text_files = discover_texts(corpus_dir)
    if the_panel is None and (corpus_dir / "panel.yaml").is_file():
        the_panel = load_panel(corpus_dir / "panel.yaml")
    if ud is None and (corpus_dir / "ud").is_dir():
        ud = str(corpus_dir / "ud")
    ud_files = discover_ud(ud) if ud is not None else {}
    available = set(text_files) | set(ud_files)
    where = f"{corpus_dir}" + (f" or {ud}" if ud else "")
    if languages:
        for code in languages:
            _check_code(code, the_panel)
        missing = [c for c in languages if c not in available]
        if missing:
            raise XltError(f"no text for language '{missing[0]}' in {where} — add {corpus_dir}/{missing[0]}.txt "
                           "or drop it from --languages")
        chosen = list(dict.fromkeys(languages))
    elif the_panel is not None:
        chosen = [c for c in the_panel.codes if c in available]
        skipped = sorted(available - set(the_panel.codes))
        if skipped:
            print(f"xlt: note: skipping language(s) not in panel '{the_panel.name}': {', '.join(skipped)}",
                  file=sys.stderr)
    else:
        chosen = sorted(available)
    if not chosen:
        raise XltError(f"no text for any language{f' of panel {the_panel.name!r}' if the_panel else ''} in "
                       f"{where} — pass --corpus with <code>.txt files (one sentence per line)")

    texts: dict[str, list[str]] = {}
    gold: dict[str, list[list[str]]] = {}
    sources: dict[str, str] = {}
    for code in chosen:
        if code in ud_files:
            gold[code] = _ud_sample(ud_files[code], sample_lines)
        if code in text_files:
            texts[code] = _read_sample(text_files[code], code, sample_lines)
            sources[code] = "text"
        else:
            texts[code] = _ud_texts(ud_files[code], sample_lines) or [" ".join(s) for s in gold[code]]
            sources[code] = "UD # text"
    rows = audit_tokenizers(tokenizers, texts, the_panel, gold)
    ud_only = [c for c, s in sources.items() if s != "text"]
    notes = ["tokenizers: " + ", ".join(f"`{n}` ({p}, vocabulary {tokenizers[n].vocab_size})"
                                         for n, p in zip(names, tokenizer, strict=True)),
             f"panel: {the_panel.name if the_panel else '(none)'}; text: {corpus_dir}" + (f"; UD: {ud}" if ud else "")
             + (f" (UD `# text` lines for {', '.join(ud_only)})" if ud_only else ""),
             f"sample: first {sample_lines} distinct lines (and UD sentences) per language",
             "fertility = pieces per word; continued = share of words split into >= 2 pieces; rates are shares "
             "of ids; mean len = ids per line (no special tokens); vocab share = distinct ids / vocabulary; "
             "char coverage = share of characters not left to byte fallback or <unk>"]
    paths = write_audit(rows, out_dir, overwrite=overwrite, notes=notes)
    message = f"wrote {out_dir} ({', '.join(p.name for p in paths.values())})"
    if mlflow:
        params = {f"tokenizer.{n}": str(p) for n, p in zip(names, tokenizer, strict=True)}
        params.update({"panel": the_panel.name if the_panel else "", "corpus": str(corpus_dir), "ud": str(ud or ""),
                       "sample_lines": sample_lines, "languages": ",".join(chosen)})
        run_id = log_audit_to_mlflow(rows, paths, experiment_name=experiment_name, tracking_uri=tracking_uri,
                                     run_name=run_name, params=params,
                                     manifests={n: getattr(t, "manifest", {}) for n, t in tokenizers.items()})
        message += f"; MLflow run {run_id} in experiment '{experiment_name}'"
    table = (out_dir / MARKDOWN_FILE).read_text(encoding="utf-8").split("## ", 2)[1]
    print("## " + table.rstrip() + "\n\n" + message)
    return rows
