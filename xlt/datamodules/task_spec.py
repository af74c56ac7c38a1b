"""What a benchmark task declares about itself (:class:`TaskSpec`), and the one code path that loads a split by it.

Each task data module (:mod:`xlt.datamodules.xnli`, ``pawsx``, ``udpos``, ``ner``, ``qa``, ``retrieval``) owns one
:class:`TaskSpec` as its ``spec`` attribute: the name in metric names and run tags, the Table 2 header, the
metrics (primary first), the synthetic panel's folder, the schema of its rows and the format parser that yields
it (:mod:`xlt.formats`), the split-file patterns of its data directories, and how hub dataset columns map onto
the schema. :mod:`xlt.datamodules.tasks` gathers them (``TASKS``); ``xlt report`` reads its headers and metrics
from there.

:func:`load_split` serves every task the same way: an existing file is parsed by the task's reader; an existing
directory is searched for the split's file (:meth:`TaskSpec.find`: UD, MasakhaNER, AmericasNLI, XNLI, PAWS-X,
XQuAD, Tatoeba and synthetic-panel layouts) and otherwise loaded as a local dataset repository; anything else is
a hub id given to :func:`datasets.load_dataset` (Parquet/JSON/CSV repositories; datasets >= 4 runs no loading
scripts). Hub and local-repository columns are mapped onto the task's schema (:func:`normalise_rows`: ClassLabel
ids become tag names, the task's row rule drops or fixes rows, ``dev`` falls back to ``validation``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from datasets import ClassLabel, Dataset, Features

from xlt.errors import DataNotFound, XltError
from xlt.hub import meant_as_path
from xlt.languages import to_iso639_3

Reader = Callable[[Path, "str | None", "str | Path | None"], Dataset]
"""``(file, language, companion file) -> rows`` in the task's schema (the companion: retrieval's other side)."""
Locator = Callable[[Path, str, "str | None"], "tuple[Path, Path | None] | None"]
"""``(directory, split, language) -> (file, companion file)`` of a split in a data directory, ``None`` if absent."""

_SPLIT_ALIASES = {"validation": "dev", "valid": "dev", "val": "dev"}
_DATA_SUFFIXES = (".conllu", ".txt", ".tsv", ".json", ".jsonl", ".csv", ".parquet", ".arrow")


def _as_is(row: dict) -> dict | None:
    return row


@dataclass(frozen=True)
class ScoringProtocol:
    """How a task's runs record the protocol their scores were computed with (QA: the answer normalisation);
    ``xlt report`` names it under the tables.

    Attributes:
        tag: run tag of the protocol (e.g. ``squad_v1``).
        note_tag: run tag of a note on the protocol (e.g. languages scored by a generic rule).
        rules: protocol value -> its description in the report.
        unrecorded: the report's text for runs without ``tag``.
    """

    tag: str
    note_tag: str
    rules: Mapping[str, str]
    unrecorded: str


@dataclass(frozen=True)
class TaskSpec:
    """Everything specific to one benchmark task, declared once by its data module.

    Attributes:
        name: the task in metric names, run tags and report columns (``xnli``, ``udpos``...).
        header: its column header in Table 2 (``XNLI``, ``POS``...).
        metrics: the metrics ``xlt report`` shows, the primary one (the Table 2 cell) first; the others go to
            ``table2.csv`` next to it.
        synthetic_folder: the task's folder in the synthetic panel (``ud``, ``xnli``, ``tatoeba``...).
        features: the schema of the task's rows (that of its format, :mod:`xlt.formats`).
        read: parses one file into rows of ``features``.
        file_patterns: split files searched in a data directory, first match wins: ``{split}`` is the split
            (``train``, ``dev``, ``test``), ``{lang}`` a language code in the file name.
        hub_columns: our column -> the hub column names it is taken from, first present wins.
        hub_row: normalises one mapped hub row (``None``: drop it).
        optional_columns: columns of ``hub_columns`` a hub dataset may lack.
        aliases: other names :func:`xlt.datamodules.tasks.task_spec` accepts (``ud``, ``tatoeba``...).
        file_kind: how messages name the task's files (``ud`` file, ``nli`` file; default: ``name``).
        locate: finds a split's file in a directory instead of ``file_patterns`` (retrieval's line-aligned pairs).
        protocol: the run tags naming the scoring protocol, for tasks that record one.
    """

    name: str
    header: str
    metrics: tuple[str, ...]
    synthetic_folder: str
    features: Features
    read: Reader
    file_patterns: tuple[str, ...] = ()
    hub_columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    hub_row: Callable[[dict], dict | None] = _as_is
    optional_columns: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    file_kind: str = ""
    locate: Locator | None = None
    protocol: ScoringProtocol | None = None

    @property
    def primary_metric(self) -> str:
        """The Table 2 metric of the task."""
        return self.metrics[0]

    @property
    def names(self) -> tuple[str, ...]:
        """The task's name and aliases."""
        return (self.name, *self.aliases)

    @property
    def kind(self) -> str:
        """How messages name the task's files."""
        return self.file_kind or self.name

    def find(self, directory: Path, split: str, language: str | None) -> tuple[Path, Path | None] | None:
        """``(file, companion)`` of ``split`` (and ``language``) in a local data directory, or ``None``."""
        if self.locate is not None:
            return self.locate(directory, split, language)
        found = find_split_file(directory, self.file_patterns, split, language, self.kind)
        return None if found is None else (found, None)


def same_language(code: str, language: str) -> bool:
    """Whether a dataset's language code names ``language`` (equal, or equal in ISO 639-3)."""
    return code == language or to_iso639_3(code) == to_iso639_3(language)


def find_split_file(directory: Path, patterns: tuple[str, ...], split: str, language: str | None,
                    kind: str) -> Path | None:
    """The file of ``split`` (and ``language``) in ``directory``: the first of ``patterns`` that matches.

    A pattern without ``{lang}`` must match one file (several are an error); with ``{lang}``, the file whose code
    (the second-to-last dot-separated part of its name, else its stem) is ``language``, or the only match when
    no language is given (several are an error that asks for a language).
    """
    for template in patterns:
        pattern = template.replace("{split}", split)
        if "{lang}" in pattern:
            if language is None:
                candidates = sorted(directory.glob(pattern.replace("{lang}", "*")))
                if len(candidates) > 1:
                    raise XltError(f"{directory} holds several {kind} files for split '{split}' "
                                   f"({', '.join(c.name for c in candidates[:6])}) — pass a language")
                if candidates:
                    return candidates[0]
                continue
            for candidate in sorted(directory.glob(pattern.replace("{lang}", "*"))):
                code = candidate.name.split(".")[-2] if candidate.name.count(".") >= 2 else candidate.stem
                if same_language(code, language):
                    return candidate
            continue
        candidates = sorted(directory.glob(pattern))
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise XltError(f"{directory} holds several files matching {pattern}: "
                           f"{', '.join(c.name for c in candidates[:6])} — pass the file path")
    return None


def load_split(source: str | Path, spec: TaskSpec, split: str = "test", language: str | None = None,
               name: str | None = None, target: str | Path | None = None,
               columns: dict[str, str] | None = None) -> Dataset:
    """Load one split of a task from a local file, a local data directory or a hub dataset.

    Args:
        source: a file (parsed by the task's reader), a directory (searched for the split's file, e.g.
            ``ud/eng`` -> ``en_ewt-ud-test.conllu``, ``nli/americasnli`` -> ``test/<language>.tsv``,
            ``qa/xquad`` -> ``xquad.<language>.json``, ``tatoeba`` -> ``tatoeba.<language>-eng.*``; a
            directory without such files is loaded as a local dataset repository), or a hub dataset id.
        spec: the task.
        split: ``train``, ``dev`` (``validation``) or ``test``; ignored when ``source`` is a file.
        language: language to select in a directory, or in a file or hub dataset with a language column
            (ISO 639-3 or the dataset's own code).
        name: hub dataset configuration (e.g. ``de`` for PAWS-X).
        target: for retrieval from a file: the other side (default: derived from the Tatoeba name).
        columns: hub column renames, our name -> theirs (e.g. ``{"source": "sentence1"}``).

    Returns:
        A dataset with the task's schema (``spec.features``).
    """
    local_split = _SPLIT_ALIASES.get(split, split)
    path = Path(source).expanduser()
    if path.is_file():
        return spec.read(path, language, target)
    if path.is_dir():
        found = spec.find(path, local_split, language)
        if found is not None:
            return spec.read(found[0], language, found[1] if found[1] is not None else target)
        if (path / "dataset_dict.json").is_file() or any(path.glob("**/*.parquet")):
            return _load_hub(str(path), spec, split, language, name, columns)
        raise DataNotFound(f"no {spec.kind} file for split '{local_split}'"
                           f"{f' and language {language}' if language else ''} in {path} — "
                           "check the directory, split and language")
    text = str(source)
    if text.endswith(_DATA_SUFFIXES) or meant_as_path(text):  # e.g. a typo in data/<name>
        raise DataNotFound(f"data file {source} not found — check the path (or XLT_DATA_DIR)")
    return _load_hub(text, spec, split, language, name, columns)


def _label_names(feature: Any) -> list[str] | None:
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    inner = getattr(feature, "feature", None)
    if isinstance(inner, ClassLabel):
        return list(inner.names)
    return None


def _load_hub(source: str, spec: TaskSpec, split: str, language: str | None, name: str | None,
              columns: dict[str, str] | None) -> Dataset:
    """``datasets.load_dataset`` (hub id or local dataset repository), then the column mapping."""
    splits = [split] + (["validation"] if split == "dev" else ["dev"] if split == "validation" else [])
    error: Exception | None = None
    ds = None
    for candidate in splits:
        try:
            if (Path(source) / "dataset_dict.json").is_file():  # DatasetDict.save_to_disk layout
                saved = datasets.load_from_disk(source)
                if candidate not in saved:
                    error = ValueError(f"unknown split {candidate!r}; available: {list(saved)}")
                    continue
                ds = saved[candidate]
            else:
                ds = datasets.load_dataset(source, name, split=candidate)
            break
        except ValueError as exc:  # an unknown split: try its alias
            error = exc
            if "split" not in str(exc).lower():
                break
        except Exception as exc:  # hub, network and format errors all mean: this source cannot be loaded
            error = exc
            break
    if ds is None:
        first = str(error).strip().splitlines()[0] if error and str(error).strip() else type(error).__name__
        raise XltError(f"dataset '{source}' (config {name}, split {split}) could not be loaded: {first} — "
                       "check the id, config and split, or pass a local file")
    return normalise_rows(ds, spec, language=language, columns=columns, where=source)


def normalise_rows(ds: Dataset, spec: TaskSpec, language: str | None = None,
                   columns: dict[str, str] | None = None, where: str = "dataset") -> Dataset:
    """Map a hub-style dataset onto the task's schema (column names, ClassLabel ids, the task's row rule)."""
    if language:
        lang_col = next((c for c in ("language", "lang") if c in ds.column_names), None)
        if lang_col is not None:
            ds = ds.filter(lambda v: same_language(str(v), language), input_columns=lang_col)
    mapping: dict[str, str] = {}
    for ours, aliases in spec.hub_columns.items():
        theirs = (columns or {}).get(ours) or next((a for a in aliases if a in ds.column_names), None)
        if theirs is not None and theirs not in ds.column_names:
            theirs = None
        if theirs is None and ours not in spec.optional_columns:
            raise XltError(f"{where} has columns {ds.column_names}, none of them is '{ours}' — "
                           f"pass columns={{'{ours}': '<column>'}}")
        if theirs is not None:
            mapping[ours] = theirs
    names = {ours: _label_names(ds.features[theirs]) for ours, theirs in mapping.items()}
    convert = spec.hub_row

    def batch_fn(batch: dict[str, list]) -> dict[str, list]:
        n = len(next(iter(batch.values())))
        out: dict[str, list] = {k: [] for k in spec.features}
        for i in range(n):
            row = {ours: batch[theirs][i] for ours, theirs in mapping.items()}
            for ours, label_names in names.items():
                if label_names is not None:
                    row[ours] = _decode(row[ours], label_names)
            record = convert(row)
            if record is not None:
                for k in out:
                    out[k].append(record[k])
        return out

    return ds.map(batch_fn, batched=True, remove_columns=ds.column_names, features=spec.features)


def _decode(value: Any, label_names: list[str]) -> Any:
    if isinstance(value, list):
        return [label_names[v] if isinstance(v, int) and 0 <= v < len(label_names) else v for v in value]
    return label_names[value] if isinstance(value, int) and 0 <= value < len(label_names) else value
