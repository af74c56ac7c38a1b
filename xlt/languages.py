"""Language records and language panels.

A *panel* is the set of languages an experiment trains or evaluates on, loaded from a YAML file
such as ``configs/panels/paper40.yaml``::

    name: paper40
    source: "where the sizes come from"
    languages:
      - {code: eng, name: English, family: Germanic, script: Latin, size_gib: 300.8, bucket: high}
      - {code: yor, name: Yoruba, family: Niger-Congo, script: Latin, size_gib: 0.1, bucket: tail,
         designated: true}

Codes are ISO 639-3 inside xlt; dataset-specific codes are mapped at the reader boundary
(:func:`to_iso639_3`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xlt.atomic import atomic_file
from xlt.errors import XltError

BUCKETS = ("high", "mid", "low", "tail")
PANELS_DIR = Path(__file__).resolve().parents[1] / "configs" / "panels"
_REQUIRED = ("code", "name", "family", "script", "bucket")
_OPTIONAL = ("size_gib", "designated", "features")
_CODE = re.compile(r"^[a-z]{3}$")

# Dataset codes seen at reader boundaries (ISO 639-1, LASER/Tatoeba, AmericasNLI) -> ISO 639-3.
_ALIASES = {
    "en": "eng", "de": "deu", "fr": "fra", "es": "spa", "ru": "rus", "hi": "hin", "ar": "ara",
    "zh": "zho", "cmn": "zho", "id": "ind", "fi": "fin", "tr": "tur", "yo": "yor", "sw": "swa",
    "swh": "swa", "si": "sin", "cy": "cym", "ta": "tam", "bn": "ben", "ur": "urd", "fa": "fas",
    "pes": "fas", "it": "ita", "pt": "por", "nl": "nld", "pl": "pol", "uk": "ukr", "cs": "ces",
    "bg": "bul", "mr": "mar", "ne": "nep", "ha": "hau", "ig": "ibo", "am": "amh", "he": "heb",
    "ms": "msa", "zsm": "msa", "tl": "tgl", "jv": "jav", "my": "mya", "th": "tha", "vi": "vie",
    "ja": "jpn", "ko": "kor", "el": "ell", "et": "est", "eu": "eus", "ka": "kat", "kk": "kaz",
    "te": "tel", "ml": "mal", "af": "afr", "sv": "swe", "da": "dan", "ro": "ron", "gn": "grn",
    "gug": "grn", "sr": "srp", "hr": "hrv", "be": "bel", "ps": "pus", "ku": "kur", "so": "som",
    "no": "nor", "nb": "nor", "nob": "nor", "ca": "cat", "gl": "glg", "mk": "mkd", "sk": "slk",
    "sl": "slv", "hu": "hun", "lt": "lit", "lv": "lav", "is": "isl", "ga": "gle", "gd": "gla",
    "hy": "hye", "az": "aze", "uz": "uzb", "mn": "mon", "gu": "guj", "pa": "pan", "kn": "kan",
    "or": "ori", "as": "asm", "sd": "snd", "km": "khm", "lo": "lao", "xh": "xho", "zu": "zul",
    "om": "orm", "mg": "mlg", "su": "sun", "yi": "yid", "ug": "uig", "ky": "kir", "sa": "san",
    "sq": "sqi", "eo": "epo", "la": "lat", "fy": "fry", "br": "bre", "bs": "bos", "qu": "que",
    # individual-language codes (FLORES, Tatoeba) -> the macrolanguage codes used in xlt panels
    "arb": "ara", "npi": "nep", "pbt": "pus", "fil": "tgl", "ekk": "est", "lvs": "lav", "azj": "aze",
    "uzn": "uzb", "khk": "mon", "gaz": "orm", "plt": "mlg", "ydd": "yid",
}


def to_iso639_3(code: str) -> str:
    """Map a dataset's language code (``en``, ``swh``, ``cmn``) to the ISO 639-3 code used in xlt."""
    code = code.strip().lower().replace("_", "-").split("-")[0]
    return _ALIASES.get(code, code)


@dataclass(frozen=True)
class Language:
    """One language of a panel.

    Attributes:
        code: ISO 639-3 code (``eng``, ``yor``).
        name: English name.
        family: language family or genus used for grouped reporting (``Germanic``, ``Niger-Congo``).
        script: writing system (``Latin``, ``Cyrillic``, ``Devanagari``...).
        bucket: resource bucket, one of ``high``, ``mid``, ``low``, ``tail`` (bottom decile).
        size_gib: pretraining corpus size in GiB (CC-100 as published for XLM-R where known).
        designated: whether the language gets a language-specific vocabulary block (configuration d).
        features: free typological features (``word_order: SOV``, ``morphology: agglutinative``).
    """

    code: str
    name: str
    family: str
    script: str
    bucket: str
    size_gib: float | None = None
    designated: bool = False
    features: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Panel:
    """An ordered set of languages; the order defines the integer language ids used in batches."""

    name: str
    languages: tuple[Language, ...]
    source: str = ""

    def __iter__(self) -> Iterator[Language]:
        return iter(self.languages)

    def __len__(self) -> int:
        return len(self.languages)

    def __contains__(self, code: object) -> bool:
        return code in self.codes

    @property
    def codes(self) -> list[str]:
        return [lang.code for lang in self.languages]

    def get(self, code: str) -> Language:
        """The language with this code; an :class:`XltError` naming the panel if it is absent."""
        for lang in self.languages:
            if lang.code == code:
                return lang
        raise XltError(
            f"unknown language code '{code}' for panel '{self.name}' — use one of: {', '.join(self.codes)}"
        )

    def label(self, code: str) -> str:
        """How tables and plots name a language: the code, then the panel's name for it (``yor Yoruba``,
        ``qai Greek Anglish``); the bare code for a language outside the panel or without a distinct name."""
        for lang in self.languages:
            if lang.code == code:
                name = lang.name.strip()
                return code if not name or name.lower() == code.lower() else f"{code} {name}"
        return code

    def labels(self, codes: Iterable[str] | None = None) -> dict[str, str]:
        """Code -> :meth:`label` for ``codes`` (default: the panel's languages, in panel order)."""
        return {code: self.label(code) for code in (self.codes if codes is None else codes)}

    def subset(self, codes: list[str]) -> Panel:
        """The panel restricted to ``codes``, in the order given (each code at most once)."""
        repeated = sorted({c for c in codes if codes.count(c) > 1})
        if repeated:
            raise XltError(f"language code(s) {repeated} listed more than once for panel '{self.name}' — "
                           "list each language once")
        return Panel(self.name, tuple(self.get(c) for c in codes), self.source)

    def to_dict(self) -> dict[str, Any]:
        langs = []
        for lang in self.languages:
            record: dict[str, Any] = {k: getattr(lang, k) for k in _REQUIRED}
            if lang.size_gib is not None:
                record["size_gib"] = lang.size_gib
            if lang.designated:
                record["designated"] = True
            if lang.features:
                record["features"] = dict(lang.features)
            langs.append(record)
        return {"name": self.name, "source": self.source, "languages": langs}


def _language_from_record(record: Any, where: str, index: int) -> Language:
    """Validate one entry of a panel's ``languages`` list (``index`` counts from 1, for messages)."""
    if not isinstance(record, dict):
        raise XltError(f"{where}: language #{index} is {type(record).__name__} {record!r}, not a mapping — "
                       f"write it as {{code: ..., name: ..., family: ..., script: ..., bucket: ...}}")
    label = f"'{record['code']}'" if record.get("code") not in (None, "") else f"#{index}"
    unknown = set(record) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise XltError(f"{where}: language {label} has unknown key(s) {sorted(map(str, unknown))} — "
                       f"allowed: {', '.join(_REQUIRED + _OPTIONAL)}")
    for key in _REQUIRED:
        if record.get(key) in (None, ""):
            raise XltError(f"{where}: language {label} is missing field '{key}' — add it to the entry")
    code = record["code"]
    if not isinstance(code, str) or not _CODE.match(code):
        hint = to_iso639_3(code) if isinstance(code, str) else ""
        did_you_mean = f" (did you mean '{hint}'?)" if hint != code and _CODE.match(hint) else ""
        raise XltError(f"{where}: language code {code!r} is not an ISO 639-3 code{did_you_mean} — "
                       "use three lowercase letters such as 'eng'")
    if record["bucket"] not in BUCKETS:
        raise XltError(f"{where}: language '{code}' has bucket {record['bucket']!r} — "
                       f"use one of {', '.join(BUCKETS)}")
    size = record.get("size_gib")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int | float)
                             or not math.isfinite(size) or size < 0):
        raise XltError(f"{where}: language '{code}' has size_gib {size!r} — use a non-negative number "
                       "or leave it out")
    designated = record.get("designated", False)
    if not isinstance(designated, bool):
        raise XltError(f"{where}: language '{code}' has designated {designated!r} — use true or false")
    features = record.get("features") or {}
    if not isinstance(features, dict) or any(isinstance(v, dict | list) for v in features.values()):
        raise XltError(f"{where}: language '{code}' features must be a flat mapping such as "
                       f"{{word_order: SOV}} — got {features!r}")
    return Language(
        code=code, name=str(record["name"]), family=str(record["family"]), script=str(record["script"]),
        bucket=str(record["bucket"]), size_gib=None if size is None else float(size),
        designated=designated,
        features={str(k): str(v) for k, v in features.items()},
    )


def resolve_panel_path(panel: str | Path) -> Path:
    """A panel name (``paper40``) resolves to ``configs/panels/<name>.yaml``; anything else is a path."""
    path = Path(panel)
    if not path.is_file() and path.suffix not in (".yaml", ".yml"):
        path = PANELS_DIR / f"{panel}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PANELS_DIR.glob("*.yaml"))) or f"(none in {PANELS_DIR})"
        raise XltError(f"panel file {path} not found — give a YAML path or one of: {known}")
    return path


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line describing a YAML syntax error, with its position when PyYAML knows it."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def load_panel(panel: str | Path) -> Panel:
    """Load and validate a panel YAML (by path or by name under ``configs/panels``).

    Every mistake in the file raises an :class:`XltError` naming the file and the culprit
    (the language and field, the unknown key, the duplicated code).
    """
    path = resolve_panel_path(panel)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise XltError(f"panel file {path} is not valid YAML: {_yaml_problem(exc)} — fix the syntax") from exc
    except UnicodeDecodeError as exc:
        raise XltError(f"panel file {path} is not UTF-8 text — save it as UTF-8") from exc
    if not isinstance(data, dict):
        raise XltError(f"panel file {path} must be a mapping with keys name, source, languages — "
                       f"got {type(data).__name__}")
    unknown = set(data) - {"name", "source", "languages"}
    if unknown:
        raise XltError(f"panel file {path} has unknown key(s) {sorted(map(str, unknown))} — "
                       "allowed: name, source, languages")
    if not isinstance(data.get("languages"), list) or not data["languages"]:
        raise XltError(f"panel file {path} must contain a non-empty 'languages' list — "
                       f"got {type(data.get('languages')).__name__}")
    records = enumerate(data["languages"], start=1)
    languages = tuple(_language_from_record(record, f"panel file {path}", i) for i, record in records)
    codes = [lang.code for lang in languages]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise XltError(f"panel file {path} lists language(s) {duplicates} more than once — "
                       "keep one entry per language")
    name = data.get("name")
    source = data.get("source")
    return Panel(name=path.stem if name in (None, "") else str(name), languages=languages,
                 source="" if source is None else str(source))


def save_panel(panel: Panel, path: str | Path) -> None:
    """Write a panel as YAML atomically (temporary sibling, then rename); :func:`load_panel` reads it back."""
    text = yaml.safe_dump(panel.to_dict(), sort_keys=False, allow_unicode=True, width=1000)
    with atomic_file(path) as handle:
        handle.write(text)
