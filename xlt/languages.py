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

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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

    def subset(self, codes: list[str]) -> Panel:
        """The panel restricted to ``codes``, in the order given."""
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


def _language_from_record(record: Any, where: str) -> Language:
    if not isinstance(record, dict):
        raise XltError(f"{where}: each language must be a mapping with keys {', '.join(_REQUIRED)}")
    label = record.get("code", "?")
    unknown = set(record) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise XltError(f"{where}: language '{label}' has unknown key(s) {sorted(unknown)} — "
                       f"allowed: {', '.join(_REQUIRED + _OPTIONAL)}")
    for key in _REQUIRED:
        if record.get(key) in (None, ""):
            raise XltError(f"{where}: language '{label}' is missing field '{key}'")
    code = str(record["code"])
    if not _CODE.match(code):
        raise XltError(f"{where}: language code '{code}' is not an ISO 639-3 code (three lowercase letters)")
    if record["bucket"] not in BUCKETS:
        raise XltError(f"{where}: language '{code}' has bucket '{record['bucket']}' — use one of {BUCKETS}")
    size = record.get("size_gib")
    if size is not None and (not isinstance(size, int | float) or size < 0):
        raise XltError(f"{where}: language '{code}' has size_gib {size!r} — use a non-negative number")
    features = record.get("features") or {}
    if not isinstance(features, dict):
        raise XltError(f"{where}: language '{code}' features must be a mapping")
    return Language(
        code=code, name=str(record["name"]), family=str(record["family"]), script=str(record["script"]),
        bucket=str(record["bucket"]), size_gib=None if size is None else float(size),
        designated=bool(record.get("designated", False)),
        features={str(k): str(v) for k, v in features.items()},
    )


def resolve_panel_path(panel: str | Path) -> Path:
    """A panel name (``paper40``) resolves to ``configs/panels/<name>.yaml``; anything else is a path."""
    path = Path(panel)
    if path.suffix not in (".yaml", ".yml") and not path.exists():
        path = PANELS_DIR / f"{panel}.yaml"
    if not path.is_file():
        raise XltError(f"panel file {path} not found — give a YAML path or one of: "
                       f"{', '.join(sorted(p.stem for p in PANELS_DIR.glob('*.yaml')))}")
    return path


def load_panel(panel: str | Path) -> Panel:
    """Load and validate a panel YAML (by path or by name under ``configs/panels``)."""
    path = resolve_panel_path(panel)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise XltError(f"panel file {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("languages"), list) or not data["languages"]:
        raise XltError(f"panel file {path} must contain a non-empty 'languages' list")
    unknown = set(data) - {"name", "source", "languages"}
    if unknown:
        raise XltError(f"panel file {path} has unknown key(s) {sorted(unknown)} — allowed: name, source, languages")
    languages = tuple(_language_from_record(r, str(path)) for r in data["languages"])
    codes = [lang.code for lang in languages]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise XltError(f"panel file {path} lists language(s) {duplicates} more than once")
    return Panel(name=str(data.get("name", path.stem)), languages=languages, source=str(data.get("source", "")))


def save_panel(panel: Panel, path: str | Path) -> None:
    """Write a panel as YAML atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(panel.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")
    tmp.replace(path)
