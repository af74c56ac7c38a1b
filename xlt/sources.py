"""Text sources: where the text of each language comes from, as objects injected into the data modules.

A source answers four questions about its text, cheaply and without reading more than it has to:

* **which languages** it has text for (:meth:`TextSource.languages`);
* **the text** of a language: a file path for file-backed sources (:meth:`TextSource.text_file`) and, for every
  source, a ``datasets.Dataset`` whose :attr:`TextSource.column` holds one sentence / record per row
  (:meth:`TextSource.dataset`);
* **whether its inputs are usable** (:meth:`TextSource.check`: existence by default; ``read=True`` also reads
  every local file once, failing on an empty or non-UTF-8 file with its name and line);
* **what it is** for cache keys (:meth:`TextSource.identity` of the whole corpus, decides the fitted tokenizer's
  directory; :meth:`TextSource.language_identity` of one language, decides its tokenized and packed files).

:meth:`TextSource.prepare` makes the text available (the synthetic panel is generated once, into its cache).

The sources:

    SyntheticPanel(seed, scale, cache_dir)       the built-in synthetic panel's ``mlm/<code>.txt``
    TextDirectory(path)                          ``<path>/<code>.txt`` or ``<path>/mlm/<code>.txt``
    HubText(dataset, config, split, column)      a Hugging Face hub dataset, one config per language

The task data modules (:mod:`xlt.datamodules.task_data`) take the same sources for benchmark task data:
:meth:`TextSource.task_location` says where a language's task data is (the panel's task folder, the data
directory, the hub dataset and the language's config), and :func:`as_task_source` reads their short strings
(``synthetic``, a path, a hub dataset id or ``hf:<id>``).

In a LightningCLI config a source is written as an object (``corpus: {class_path: xlt.sources.SyntheticPanel,
init_args: {seed: 0, scale: 1.0}}``); the short strings of the command line stay accepted and are turned into
objects by :func:`as_text_source`: ``synthetic``, a directory path, ``hf:<dataset_id>``.

:func:`find_text_file` and :func:`list_text_files` are the one home of ``<code>.txt`` discovery in a directory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xlt.errors import XltError
from xlt.hub import meant_as_path
from xlt.synthetic import SPECS, cached_panel, cached_panel_dir
from xlt.tokenization.sampling import scan_text_file

__all__ = ["PANEL_FILE", "HubText", "SyntheticPanel", "TextDirectory", "TextSource", "as_task_source",
           "as_text_source", "default_panel", "find_text_file", "list_text_files"]

PANEL_FILE = "panel.yaml"
"""The panel a data directory carries (``xlt synth`` writes one): :meth:`TextSource.panel_file` finds it."""


# ---------------------------------------------------------------------------------------------- discovery
def find_text_file(directory: str | Path, code: str) -> Path | None:
    """The text file of language ``code`` in ``directory``: ``<directory>/<code>.txt``, else
    ``<directory>/mlm/<code>.txt`` (the synthetic panel's layout); ``None`` when neither is a file."""
    root = Path(directory)
    return next((p for p in (root / f"{code}.txt", root / "mlm" / f"{code}.txt") if p.is_file()), None)


def list_text_files(directory: str | Path) -> dict[str, Path]:
    """Every ``<code>.txt`` of a directory, by code (sorted by file name): those of ``<directory>/mlm`` when that
    folder exists (the synthetic panel's layout), else those of ``<directory>`` itself."""
    root = Path(directory)
    base = root / "mlm" if (root / "mlm").is_dir() else root
    return {p.stem: p for p in sorted(base.glob("*.txt")) if p.is_file()}


def _task_root(root: Path, code: str) -> str:
    """``<root>/<code>`` when that is a directory (one sub-directory per language), else ``root``."""
    return str(root / code) if (root / code).is_dir() else str(root)


def _file_identity(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"kind": "file", "path": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns}


# ---------------------------------------------------------------------------------------------- base
class TextSource(ABC):
    """Where the text of each language comes from (subclass it to add a source; see the module docstring).

    Sources are small, cheap objects: constructing one reads nothing. Their constructor arguments are plain
    values (so a LightningCLI config writes them as ``class_path`` / ``init_args``), and :meth:`config` gives them
    back in that form.
    """

    column: str = "text"
    """The column of :meth:`dataset` that holds the text."""

    @abstractmethod
    def _init_args(self) -> dict[str, Any]:
        """The constructor arguments, as plain values."""

    def config(self) -> dict[str, Any]:
        """``{"class_path": ..., "init_args": {...}}`` of this source (plain types, e.g. for checkpoints)."""
        cls = type(self)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": self._init_args()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._init_args().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._init_args() == self._init_args()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self._init_args().items()))))

    def with_cache_dir(self, cache_dir: str | Path) -> TextSource:
        """This source with ``cache_dir`` as its default cache (where a source without one keeps what it makes)."""
        return self

    @property
    def prepared(self) -> bool:
        """Whether the text is at hand without :meth:`prepare` (so :meth:`language_identity` can be stated)."""
        return True

    def prepare(self) -> None:
        """Make the text available (generate it, …); cheap when it is available already."""
        return  # nothing to make by default

    @abstractmethod
    def languages(self, candidates: Sequence[str] | None = None) -> list[str]:
        """The languages of ``candidates`` (in their order) that this source has text for; without candidates,
        every language it has text for."""

    @abstractmethod
    def check(self, languages: Sequence[str] = (), *, read: bool = False) -> None:
        """Raise :class:`XltError` naming the culprit unless the source exists and has text for each of
        ``languages``. Cheap by default (existence only); ``read=True`` also reads every local text file once
        (empty or non-UTF-8 files fail with their name and line)."""

    def text_file(self, code: str, required: bool = False) -> Path | None:
        """The local text file of language ``code`` (one sentence per line); ``None`` when the source has no file
        for it (or is not file-backed); ``required`` raises :class:`XltError` instead."""
        if required:
            raise XltError(f"{self} has no local text file for language '{code}'")
        return None

    def dataset(self, code: str, cache_dir: str | Path) -> Any:
        """Language ``code``'s text as a ``datasets.Dataset`` (one row per line / record; the text in
        :attr:`column`); ``cache_dir`` is the ``datasets`` cache."""
        import datasets

        path = self.text_file(code, required=True)
        return datasets.load_dataset("text", data_files={"train": str(path)}, split="train",
                                     cache_dir=str(cache_dir))

    @abstractmethod
    def identity(self, languages: Sequence[str]) -> dict[str, Any]:
        """What the corpus of ``languages`` is, cheaply (no reading): part of the fitted tokenizer's cache key."""

    def language_identity(self, code: str) -> dict[str, Any]:
        """What language ``code``'s text is, cheaply: part of its tokenized / packed files' cache key (a local file:
        its resolved path, size and modification time)."""
        path = self.text_file(code, required=True)
        assert path is not None
        return _file_identity(path)

    def describe(self, code: str) -> str:
        """Language ``code``'s text in a message (a file path, a dataset and config)."""
        return str(self.text_file(code))

    def task_location(self, folder: str, code: str) -> tuple[str, str | None]:
        """Where language ``code``'s data of a benchmark task is, as
        :func:`xlt.datamodules.task_spec.load_split` takes it: ``(file, directory or hub id, hub config name)``;
        ``folder`` is the task's folder in the synthetic panel (``ud``, ``xnli``, …)."""
        raise XltError(f"{self} holds no task data — give data: synthetic, a data directory or a hub dataset id")

    def local_dir(self) -> Path | None:
        """The local folder the text comes in, with what lies beside it (a ``panel.yaml``, a ``ud/`` folder, …):
        a corpus directory, the synthetic panel's directory (after :meth:`prepare`); ``None`` for a source whose
        text is not in a local folder (a hub dataset: :meth:`dataset` gives its rows, :meth:`text_file` nothing)."""
        return None

    def panel_file(self) -> Path | None:
        """The ``panel.yaml`` the data carries: in :meth:`local_dir` (a directory written by ``xlt synth``) or in
        the folder just above it (a task or ``mlm`` folder inside such a directory, e.g. ``<out>/ud``; for a
        single file, its folder and that folder's parent); ``None`` when there is none. Data modules use it when
        no panel is given."""
        folder = self.local_dir()
        if folder is None:
            return None
        folder = folder.expanduser()
        if folder.is_file():
            folder = folder.parent
        for candidate in (folder / PANEL_FILE, folder.parent / PANEL_FILE):
            if candidate.is_file():
                return candidate
        return None


# ---------------------------------------------------------------------------------------------- local files
class _FileSource(TextSource):
    """Text in ``<code>.txt`` files (one sentence per line) under :meth:`directory`."""

    @abstractmethod
    def directory(self) -> Path:
        """The folder of the ``<code>.txt`` files."""

    def local_dir(self) -> Path | None:
        """The folder of the ``<code>.txt`` files (:meth:`directory`)."""
        return self.directory()

    def text_file(self, code: str, required: bool = False) -> Path | None:
        """``<directory>/<code>.txt`` or ``<directory>/mlm/<code>.txt``; ``required`` raises :class:`XltError`
        naming the file when neither exists."""
        base = self.directory()
        path = find_text_file(base, code)
        if path is None and required:
            raise XltError(f"corpus file {base / f'{code}.txt'} for language '{code}' not found — add it "
                           "(one sentence per line) or drop the language from data.languages")
        return path

    def check(self, languages: Sequence[str] = (), *, read: bool = False) -> None:
        """Each language has a file; ``read=True`` reads each once (missing, empty, non-UTF-8 → :class:`XltError`
        naming the file and line)."""
        for code in languages:
            path = self.text_file(code, required=True)
            if read:
                scan_text_file(path, code)


class TextDirectory(_FileSource):
    """A directory of ``<code>.txt`` files, one sentence per line (``<path>/mlm/<code>.txt`` also works)."""

    def __init__(self, path: str) -> None:
        """A local corpus directory; nothing is read here.

        Args:
            path: the directory holding ``<code>.txt`` (ISO 639-3 code, UTF-8, one sentence per line), or an
                ``mlm/`` folder of them.
        """
        self.path = str(path)

    def _init_args(self) -> dict[str, Any]:
        return {"path": self.path}

    def __str__(self) -> str:
        return f"corpus directory {self.path}"

    def directory(self) -> Path:
        """The directory given (``<code>.txt`` are looked up in it, then in its ``mlm/``)."""
        return Path(self.path)

    def task_location(self, folder: str, code: str) -> tuple[str, str | None]:
        """``<path>/<code>`` when that directory exists, else ``path`` itself (a directory of files named by
        language, such as ``xquad.de.json`` / ``test/aym.tsv``, or one file); no hub config."""
        return _task_root(Path(self.path), code), None

    def _require_directory(self) -> None:
        if not Path(self.path).is_dir():
            raise XltError(f"corpus directory {self.path} not found — give a directory of <code>.txt files, "
                           "'synthetic' or 'hf:<dataset_id>'")

    def languages(self, candidates: Sequence[str] | None = None) -> list[str]:
        """The candidates that have a ``<code>.txt``; without candidates every ``<code>.txt``
        (:func:`list_text_files`)."""
        self._require_directory()
        if candidates is None:
            return list(list_text_files(self.path))
        return [code for code in candidates if self.text_file(code) is not None]

    def check(self, languages: Sequence[str] = (), *, read: bool = False) -> None:
        """The directory exists and each language has a file; ``read=True`` reads each once (empty, non-UTF-8 →
        :class:`XltError` naming the file and line)."""
        self._require_directory()
        super().check(languages, read=read)

    def identity(self, languages: Sequence[str]) -> dict[str, Any]:
        """``{"kind": "dir", "files": {code: [resolved path, size, mtime_ns]}}``."""
        files = {}
        for code in languages:
            f = self.language_identity(code)
            files[code] = [f["path"], f["size"], f["mtime"]]
        return {"kind": "dir", "files": files}


class SyntheticPanel(_FileSource):
    """The built-in synthetic language panel (:mod:`xlt.synthetic`), generated once into a cache and reused."""

    def __init__(self, seed: int = 0, scale: float = 1.0, cache_dir: str | None = None,
                 task_scale: float | None = None) -> None:
        """The synthetic panel of ``(seed, scale, task_scale)``; nothing is generated here.

        Args:
            seed: seed of the generated panel (its output is a pure function of seed and scales).
            scale: corpus size multiplier (1.0: 20000 / 8000 / 3000 / 1000 sentences for high / mid / low / tail
                languages); also the task data's unless ``task_scale`` is set.
            cache_dir: where the panel is generated (``<cache_dir>/synthetic-seed<seed>-scale<scale>``, with
                ``-tasks<task_scale>`` when set); ``None``: the data module's ``cache_dir``.
            task_scale: task data size multiplier (1.0: splits of 600 / 150 / 150 examples); ``None``: ``scale``.
                The lab's task overlays (``configs/tasks/lab/``) use 16 over the MLM corpus of scale 1.
        """
        self.seed, self.scale = int(seed), float(scale)
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.task_scale = None if task_scale is None or float(task_scale) == self.scale else float(task_scale)

    def _init_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"seed": self.seed, "scale": self.scale, "cache_dir": self.cache_dir}
        if self.task_scale is not None:  # only when set: configs of panels without one stay as they were
            args["task_scale"] = self.task_scale
        return args

    def __str__(self) -> str:
        tasks = "" if self.task_scale is None else f", task scale {self.task_scale:g}"
        return f"synthetic panel (seed {self.seed}, scale {self.scale:g}{tasks})"

    def with_cache_dir(self, cache_dir: str | Path) -> SyntheticPanel:
        """This panel, cached under ``cache_dir`` unless it names its own ``cache_dir``."""
        if self.cache_dir is not None:
            return self
        return SyntheticPanel(self.seed, self.scale, str(cache_dir), self.task_scale)

    @property
    def panel_dir(self) -> Path:
        """Where the panel is generated (``<cache_dir>/synthetic-seed<seed>-scale<scale>``; may not exist yet)."""
        if self.cache_dir is None:
            raise XltError("the synthetic panel has no cache_dir — set corpus.init_args.cache_dir")
        return cached_panel_dir(self.cache_dir, self.seed, self.scale, self.task_scale)

    def directory(self) -> Path:
        """The panel's ``mlm/`` folder."""
        return self.panel_dir / "mlm"

    def task_location(self, folder: str, code: str) -> tuple[str, str | None]:
        """The task's folder of the panel: ``<panel_dir>/<folder>/<code>`` (``<panel_dir>/<folder>`` when the
        language has no folder of its own, e.g. Tatoeba's pairs)."""
        return _task_root(self.panel_dir / folder, code), None

    def local_dir(self) -> Path:
        """The panel's directory (:attr:`panel_dir`: ``panel.yaml``, ``mlm/``, ``ud/``, the task folders)."""
        return self.panel_dir

    @property
    def prepared(self) -> bool:
        """Whether the panel's text has been generated."""
        return self.directory().is_dir()

    def prepare(self) -> None:
        """Generate the panel unless it is cached (:func:`xlt.synthetic.cached_panel`)."""
        if self.cache_dir is None:
            raise XltError("the synthetic panel has no cache_dir — set corpus.init_args.cache_dir")
        cached_panel(self.cache_dir, self.seed, self.scale, self.task_scale)

    def languages(self, candidates: Sequence[str] | None = None) -> list[str]:
        """The candidates as given (the panel generates text for the languages its panel lists); without
        candidates, the generator's languages."""
        return [spec.code for spec in SPECS] if candidates is None else list(candidates)

    def check(self, languages: Sequence[str] = (), *, read: bool = False) -> None:
        """Nothing to check: the text is generated by :meth:`prepare`."""

    def identity(self, languages: Sequence[str]) -> dict[str, Any]:
        """``{"kind": "synthetic", "seed": ..., "scale": ...}``: the MLM text is a pure function of both (the task
        scale changes only the task files, so it does not name the tokenizer and block caches)."""
        return {"kind": "synthetic", "seed": self.seed, "scale": self.scale}


# ---------------------------------------------------------------------------------------------- hub
class HubText(TextSource):
    """A Hugging Face hub dataset (Parquet / JSON / CSV; datasets 5 runs no loading scripts), one config per
    language."""

    def __init__(self, dataset: str, config: str = "{code}", split: str = "train", column: str = "text") -> None:
        """A hub dataset; nothing is downloaded here.

        Args:
            dataset: the dataset id, e.g. ``org/name`` (or a local dataset directory ``load_dataset`` reads).
            config: the config of a language; ``{code}`` is replaced by the ISO 639-3 code (``""``: no config).
            split: the split to read.
            column: the column holding the text.
        """
        if not str(dataset).strip():
            raise XltError("HubText names no dataset — give dataset: <dataset_id>")
        self.dataset_id, self.config_template = str(dataset).strip(), config
        self.split, self.column = split, column

    def _init_args(self) -> dict[str, Any]:
        return {"dataset": self.dataset_id, "config": self.config_template, "split": self.split,
                "column": self.column}

    def __str__(self) -> str:
        return f"hub dataset {self.dataset_id}"

    def config_name(self, code: str) -> str | None:
        """The dataset config of language ``code`` (``None``: no config)."""
        return self.config_template.format(code=code) if self.config_template else None

    def languages(self, candidates: Sequence[str] | None = None) -> list[str]:
        """The candidates as given (a hub dataset's configs are not listed without a download)."""
        if candidates is None:
            raise XltError(f"hub dataset {self.dataset_id} cannot list its languages — give the languages")
        return list(candidates)

    def check(self, languages: Sequence[str] = (), *, read: bool = False) -> None:
        """Nothing is checked before loading (that would download): :meth:`dataset` names what fails."""

    def dataset(self, code: str, cache_dir: str | Path) -> Any:
        """``load_dataset(dataset, config, split)`` for language ``code``; a failure, or a missing text column,
        is an :class:`XltError` naming the dataset, config and language."""
        name = self.config_name(code)
        try:
            ds = _load_hub_dataset(self.dataset_id, name, self.split, str(cache_dir))
        except Exception as exc:  # any loading failure is a user-facing error
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise XltError(f"hub dataset {self.dataset_id} (config {name!r}, split {self.split!r}) for language "
                           f"'{code}' could not be loaded: {first} — check the corpus's dataset and config") from None
        if self.column not in ds.column_names:
            raise XltError(f"hub dataset {self.dataset_id} for language '{code}' has no column '{self.column}' "
                           f"(columns: {', '.join(ds.column_names)}) — set the corpus's column")
        return ds

    def identity(self, languages: Sequence[str]) -> dict[str, Any]:
        """``{"kind": "hf", "id", "config" (the template), "split", "column"}``."""
        return {"kind": "hf", "id": self.dataset_id, "config": self.config_template, "split": self.split,
                "column": self.column}

    def language_identity(self, code: str) -> dict[str, Any]:
        """``{"kind": "hf", "id", "config" (the language's), "split", "column"}``."""
        return {"kind": "hf", "id": self.dataset_id, "config": self.config_name(code), "split": self.split,
                "column": self.column}

    def task_location(self, folder: str, code: str) -> tuple[str, str | None]:
        """``(dataset, the language's config)``; the task reads its own splits and maps columns by its spec, so
        ``split`` and ``column`` are not used for task data."""
        return self.dataset_id, self.config_name(code)

    def describe(self, code: str) -> str:
        """``<dataset> config '<config>'``."""
        return f"{self.dataset_id} config {self.config_name(code)!r}"


def _load_hub_dataset(dataset_id: str, config: str | None, split: str, cache_dir: str) -> Any:
    """``datasets.load_dataset`` for one language (a seam for tests)."""
    import datasets

    return datasets.load_dataset(dataset_id, config, split=split, cache_dir=cache_dir)


# ---------------------------------------------------------------------------------------------- shorthand
_CLASSES = {cls.__name__: cls for cls in (SyntheticPanel, TextDirectory, HubText)}


def default_panel(source: TextSource, fallback: str) -> str:
    """The panel of a data module given none: ``synthetic`` for the synthetic panel, else the ``panel.yaml`` the
    source's directory carries (:meth:`TextSource.panel_file`, as a path), else ``fallback``."""
    if isinstance(source, SyntheticPanel):
        return "synthetic"
    found = source.panel_file()
    return str(found) if found is not None else fallback


def as_text_source(value: TextSource | str | Mapping[str, Any], cache_dir: str | Path) -> TextSource:
    """A text source from what a user wrote, with ``cache_dir`` as the default cache of sources without one.

    Accepts a :class:`TextSource`; the shorthand strings ``synthetic`` (:class:`SyntheticPanel` with seed 0,
    scale 1.0), ``hf:<dataset_id>`` (:class:`HubText` with its defaults) and any other string as a directory
    (:class:`TextDirectory`); or a ``{"class_path", "init_args"}`` mapping (as :meth:`TextSource.config` writes,
    e.g. from a checkpoint's hyperparameters).
    """
    if isinstance(value, TextSource):
        source = value
    elif isinstance(value, Mapping):
        class_path = str(value.get("class_path", ""))
        cls = _CLASSES.get(class_path.rsplit(".", 1)[-1])
        if cls is None or class_path not in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}"):
            raise XltError(f"corpus class_path {class_path!r} is not a text source — use one of "
                           + ", ".join(f"{__name__}.{name}" for name in _CLASSES))
        source = cls(**dict(value.get("init_args") or {}))
    elif isinstance(value, str | Path):
        text = str(value)
        if text == "synthetic":
            source = SyntheticPanel()
        elif text.startswith("hf:"):
            if not text[3:].strip():
                raise XltError(f"corpus '{text}' names no dataset — use hf:<dataset_id>")
            source = HubText(text[3:].strip())
        else:
            source = TextDirectory(text)
    else:
        raise XltError(f"corpus {value!r} is not a text source — give 'synthetic', a directory of <code>.txt "
                       "files, 'hf:<dataset_id>' or a class_path of xlt.sources")
    return source.with_cache_dir(cache_dir)


def as_task_source(value: TextSource | str | Mapping[str, Any], cache_dir: str | Path) -> TextSource:
    """A source of benchmark task data from what a user wrote, with ``cache_dir`` as the default cache.

    Like :func:`as_text_source` (objects, ``{"class_path", "init_args"}`` mappings, ``synthetic``), except for
    plain strings, which name task data as :func:`xlt.datamodules.task_spec.load_split` takes it: an existing
    path, or a string written as one (``./…``, ``/…``, ``~…``, not a hub id, or under an existing directory), is a
    :class:`TextDirectory` (a directory or a file); any other string is a hub dataset id (:class:`HubText` without
    a config), as is ``hf:<dataset_id>``.
    """
    if isinstance(value, str | Path) and str(value) != "synthetic":
        text = str(value)
        if text.startswith("hf:"):
            if not text[3:].strip():
                raise XltError(f"data '{text}' names no dataset — use hf:<dataset_id>")
            return HubText(text[3:].strip(), config="")
        if Path(text).expanduser().exists() or meant_as_path(text):
            return TextDirectory(text)
        return HubText(text, config="")
    return as_text_source(value, cache_dir)
