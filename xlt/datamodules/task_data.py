"""The shared base of the benchmark task data modules: languages, sources, few-shot sampling, batching.

A task data module (:mod:`xlt.datamodules.xnli`, ``pawsx``, ``udpos``, ``ner``, ``qa``, ``retrieval``) reads
one split per language through :func:`xlt.datamodules.task_spec.load_split` (real files, the synthetic
panel and hub datasets on one code path), tokenizes it with the encoder's tokenizer (a Hugging Face *fast*
tokenizer: word ids and character offsets come from it) and serves:

- **train**: the training languages' train split (default ``[eng]``; the synthetic panel's source is ``qaa``)
  plus, with ``few_shot = k``, exactly ``k`` examples of every few-shot language's train split — a seeded
  sample of sentences (not the first ``k`` features), stratified by label where the task has sentence labels,
  drawn on a stream of its own per language so one language's sample does not depend on the others;
- **val**: the dev split of the training languages (``model_selection: source``, the default) or of the
  target languages (``target``), the explicit XTREME choice;
- **test**: the test split of every evaluation language (default: every panel language with test data).

Evaluation batches hold one language each and are *length-bucketed*: a language's examples are sorted by
length and cut into batches of at most ``eval_max_tokens`` padded tokens, so little compute goes to padding.
Every batch carries ``lang`` (index into :attr:`language_codes`) and ``index`` (row of the split), which the
task module uses for per-language metrics and for mapping predictions back to examples.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from torch.utils.data import DataLoader, Sampler

from xlt.datamodules.task_spec import TaskSpec, load_split
from xlt.errors import DataNotFound, XltError
from xlt.hub import require_local_or_hub
from xlt.languages import Panel, load_panel
from xlt.progress import quiet_progress_bars
from xlt.seeding import derive_seed
from xlt.sources import SyntheticPanel, TextSource, as_task_source, default_panel

ModelSelection = Literal["source", "target"]
IGNORE_INDEX = -100
HF_LANGUAGE_DIR = "hf"


def few_shot_indices(n: int, k: int, seed: int, labels: Sequence[Any] | None = None) -> list[int]:
    """``k`` distinct row indices of ``n`` drawn with ``seed``, stratified by ``labels`` when given.

    Stratification gives each label ``round(k · share)`` rows (largest remainders, ties by label order), so a
    label with at least one row in ``n`` but a tiny share may get none when ``k`` is small. Returns sorted
    indices; all ``n`` rows when ``k >= n``.
    """
    if k >= n:
        return list(range(n))
    rng = np.random.default_rng(seed)
    if labels is None:
        return sorted(rng.choice(n, size=k, replace=False).tolist())
    values = np.asarray([str(v) for v in labels])
    names = sorted(set(values.tolist()))
    counts = np.array([(values == name).sum() for name in names], dtype=float)
    quota = counts / counts.sum() * k
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take), kind="stable")[: k - int(take.sum())]:
        take[i] += 1
    chosen: list[int] = []
    for name, count in zip(names, take, strict=True):
        rows = np.flatnonzero(values == name)
        chosen.extend(rng.choice(rows, size=min(int(count), len(rows)), replace=False).tolist())
    return sorted(chosen)


def load_fast_tokenizer(source: str, lang: str | None = None) -> Any:
    """The Hugging Face fast tokenizer of ``source`` (xlt tokenizer dir, export dir or hub id) for ``lang``.

    An xlt tokenizer with language-specific blocks (configuration d) keeps one tokenizer per designated
    language under ``hf/<code>/``; other languages use the shared one at the top level.
    """
    from transformers import AutoTokenizer

    path = Path(source)
    if lang is not None and (path / HF_LANGUAGE_DIR / lang / "tokenizer.json").is_file():
        path = path / HF_LANGUAGE_DIR / lang
    require_local_or_hub(source, "data.tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path) if path.exists() else source)
    except (OSError, ValueError) as error:
        raise XltError(f"tokenizer {source!r} could not be loaded ({type(error).__name__}) — pass data.tokenizer: "
                       "an xlt tokenizer directory, an export directory or a hub id") from error
    if not getattr(tokenizer, "is_fast", False):
        raise XltError(f"tokenizer {source!r} has no fast (Rust) version — task data needs word ids and character "
                       "offsets; export it with tokenizer.json")
    return tokenizer


class LengthBucketBatches(Sampler[list[int]]):
    """Evaluation batches of one language each, rows sorted by length, at most ``max_tokens`` padded tokens.

    Batches are cut per language in length order, then dealt round-robin to ranks (rank ``r`` of ``W`` takes
    batches ``r, r + W, ...``), so every example is evaluated exactly once across ranks. With ``groups`` (e.g. the
    question of each QA window), rows of one group are never split: groups are sorted by their longest row and
    a group larger than the limits gets a batch of its own.
    """

    def __init__(self, lengths: Sequence[int], langs: Sequence[int], max_tokens: int, max_rows: int,
                 rank: int = 0, world_size: int = 1, groups: Sequence[int] | None = None) -> None:
        lengths_arr = np.asarray(lengths, dtype=np.int64)
        langs_arr = np.asarray(langs, dtype=np.int64)
        group_ids = np.arange(len(lengths_arr)) if groups is None else np.asarray(groups, dtype=np.int64)
        batches: list[list[int]] = []
        for lang in dict.fromkeys(langs_arr.tolist()):
            rows = np.flatnonzero(langs_arr == lang)
            # units (groups) in first-seen order, each with its rows and its longest row, then stably by length
            _, first, unit_of_row = np.unique(group_ids[rows], return_index=True, return_inverse=True)
            unit_length = np.zeros(len(first), dtype=np.int64)
            np.maximum.at(unit_length, unit_of_row, lengths_arr[rows])
            seen = np.argsort(first, kind="stable")
            order = seen[np.argsort(unit_length[seen], kind="stable")]
            by_unit = rows[np.argsort(unit_of_row, kind="stable")].tolist()  # unit u: by_unit[start[u]:start[u+1]]
            start = np.concatenate([[0], np.cumsum(np.bincount(unit_of_row, minlength=len(first)))]).tolist()
            current: list[int] = []
            longest = 0
            for unit, length in zip(order.tolist(), unit_length[order].tolist(), strict=True):
                unit_rows = by_unit[start[unit]:start[unit + 1]]
                longest_if = max(longest, length)
                if current and (longest_if * (len(current) + len(unit_rows)) > max_tokens
                                or len(current) + len(unit_rows) > max_rows):
                    batches.append(current)
                    current, longest_if = [], length
                current.extend(unit_rows)
                longest = longest_if
            if current:
                batches.append(current)
        self.batches = batches[rank::world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def pad_batch(features: list[dict[str, Any]], pad_id: int, pad_keys: dict[str, int]) -> dict[str, torch.Tensor]:
    """Collate feature dicts: ``input_ids`` padded with ``pad_id`` (+ ``attention_mask``), each key of
    ``pad_keys`` padded with its value, other numeric keys stacked; strings and lists of strings are dropped."""
    width = max(len(f["input_ids"]) for f in features)
    batch: dict[str, torch.Tensor] = {}
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for i, f in enumerate(features):
        ids[i, : len(f["input_ids"])] = torch.tensor(f["input_ids"], dtype=torch.long)
        mask[i, : len(f["input_ids"])] = 1
    batch["input_ids"], batch["attention_mask"] = ids, mask
    for key in features[0]:
        if key in ("input_ids", "attention_mask"):
            continue
        values = [f[key] for f in features]
        if key in pad_keys:
            padded = torch.full((len(features), width), pad_keys[key], dtype=torch.long)
            for i, v in enumerate(values):
                padded[i, : len(v)] = torch.tensor(v, dtype=torch.long)
            batch[key] = padded
        elif isinstance(values[0], (int, float, bool, np.integer, np.floating)):
            batch[key] = torch.tensor(values)
    return batch


class TaskDataModule(L.LightningDataModule):
    """Base of the task data modules (see the module docstring); subclasses set the class attributes and
    implement :meth:`encode` (and :meth:`label_names_from` for labelled tasks)."""

    #: everything specific to the task (name, header, metrics, reader, file patterns, synthetic folder...)
    spec: ClassVar[TaskSpec]
    #: sentence-level label column used to stratify few-shot samples (None: no stratification)
    stratify_column: ClassVar[str | None] = None
    #: splits the task trains on (retrieval has none)
    trainable: ClassVar[bool] = True
    #: keys padded like input ids, with their padding value
    pad_keys: ClassVar[dict[str, int]] = {}

    def __init__(
        self,
        data: TextSource | str = "synthetic",
        tokenizer: str | None = None,
        panel: str | None = None,
        train_languages: list[str] | None = None,
        eval_languages: list[str] | None = None,
        few_shot: int = 0,
        few_shot_languages: list[str] | None = None,
        model_selection: ModelSelection = "source",
        max_length: int = 128,
        batch_size: int = 32,
        eval_max_tokens: int = 16384,
        eval_max_rows: int = 256,
        data_per_language: dict[str, TextSource | str] | None = None,
        label_map: dict[str, str] | None = None,
        seed: int | None = None,
        cache_dir: str = "runs/cache",
        num_workers: int = 0,
    ) -> None:
        """Configure the task data; nothing is read until ``setup``.

        Args:
            data: where the task data comes from, a source (:mod:`xlt.sources`):
                ``{class_path: xlt.sources.SyntheticPanel, init_args: {seed: 0, scale: 1.0}}`` (the built-in
                panel's task folder, generated into ``cache_dir``; task splits 600/150/150 at scale 1.0),
                ``xlt.sources.TextDirectory`` (``path``: a local directory with one sub-directory per language
                code, e.g. ``data/ud/eng/``, or files named by language such as ``xquad.de.json`` /
                ``test/aym.tsv`` / ``tatoeba.deu-eng.*``) or ``xlt.sources.HubText`` (``dataset``, ``config``: a
                hub dataset id and the config of a language, ``{code}`` replaced by its code; ``""``: none).
                Short forms: ``synthetic``, a path, a hub dataset id (any other string; also ``hf:<id>``).
            tokenizer: the encoder's tokenizer: an xlt tokenizer directory, an export directory or a hub id.
                Default: the model's ``encoder`` when it is a directory or hub id (set by ``xlt fit``).
            panel: language panel (name under configs/panels or a YAML path) for language groups; default
                ``synthetic`` for synthetic data, else the ``panel.yaml`` the data directory carries (``xlt
                synth`` writes one; also found from a task folder inside it, e.g. ``<out>/ud``), else ``paper40``.
            train_languages: languages whose train split is fine-tuned on. Default ``[eng]``, or the panel's
                first language when it lacks English (``qaa``, the source language of the synthetic panel).
            eval_languages: languages evaluated on their test split. Default: every panel language with test
                data.
            few_shot: ``k`` > 0 adds exactly ``k`` seeded examples of each few-shot language's train split.
            few_shot_languages: languages sampled for few-shot (default: evaluation languages minus training
                languages).
            model_selection: dev data for validation and checkpoint selection: ``source`` (training languages'
                dev split) or ``target`` (evaluation languages' dev split).
            max_length: longest input in tokens (longer inputs are truncated; QA uses sliding windows).
            batch_size: training examples per batch and process.
            eval_max_tokens: padded tokens per evaluation batch (length-bucketed batches).
            eval_max_rows: examples per evaluation batch at most.
            data_per_language: per-language source overriding ``data``: a file, directory or hub id (used as
                given), or a source object.
            label_map: maps a dataset's label names onto the training label set (e.g. ``{B-DATE: O}``).
            seed: seed of training order and few-shot samples. Default: ``seed_everything``'s seed, else 0.
            cache_dir: the cache of sources without one of their own (where the synthetic panel is generated).
            num_workers: DataLoader workers.
        """
        super().__init__()
        self.save_hyperparameters(logger=False)
        if few_shot < 0:
            raise XltError(f"data.few_shot {few_shot} must be >= 0")
        for name, value in (("max_length", max_length), ("batch_size", batch_size),
                            ("eval_max_tokens", eval_max_tokens), ("eval_max_rows", eval_max_rows)):
            if value < 1:
                raise XltError(f"data.{name} {value} must be a positive integer")
        if eval_max_tokens < max_length:
            raise XltError(f"data.eval_max_tokens {eval_max_tokens} < data.max_length {max_length} — raise it")
        # checkpoints hold plain types (they load with weights_only=True): source objects as their config
        if isinstance(data, TextSource):
            self.hparams["data"] = data.config()
        if any(isinstance(v, TextSource) for v in (data_per_language or {}).values()):
            self.hparams["data_per_language"] = {code: v.config() if isinstance(v, TextSource) else v
                                                 for code, v in (data_per_language or {}).items()}
        #: where the task data comes from (a source without a cache uses ``cache_dir``)
        self.data: TextSource = as_task_source(data, cache_dir)
        panel = panel or default_panel(self.data, "paper40")
        self.panel: Panel = load_panel(panel)
        #: the panel as runs record it (tag ``xlt.panel``): a built-in name, else the file's absolute path
        self.panel_spec = str(Path(panel).resolve()) if Path(panel).is_file() else panel
        default_train = ["eng"] if "eng" in self.panel else [self.panel.codes[0]]
        self.train_languages = list(train_languages or default_train) if self.trainable else []
        self.source_language = (train_languages or default_train)[0]
        self.eval_languages_arg = list(eval_languages) if eval_languages else None
        self.few_shot, self.few_shot_languages_arg = int(few_shot), few_shot_languages
        self.model_selection = model_selection
        self.max_length, self.batch_size = int(max_length), int(batch_size)
        self.eval_max_tokens, self.eval_max_rows = int(eval_max_tokens), int(eval_max_rows)
        #: per-language overrides: strings as given (file, directory or hub id), or sources
        self.data_per_language: dict[str, TextSource | str] = {
            code: v if isinstance(v, str) else as_task_source(v, cache_dir)
            for code, v in (data_per_language or {}).items()}
        self.label_map = dict(label_map or {})
        self.seed = int(seed if seed is not None else os.environ.get("PL_GLOBAL_SEED", 0))
        self.num_workers = int(num_workers)
        self.cache_root = Path(cache_dir)
        for code in [*self.train_languages, *(eval_languages or []), *(few_shot_languages or [])]:
            self.panel.get(code)  # unknown codes: one line naming the panel
        self.tokenizer_dir: str | None = tokenizer
        self.language_codes: list[str] = list(self.panel.codes)
        self.label_names: list[str] | None = None
        self.splits: dict[str, dict[str, Dataset]] = {}  # split -> language -> raw rows
        self.features: dict[str, Dataset] = {}  # split -> tokenized rows with `lang` and `index`
        self._tokenizers: dict[str, Any] = {}
        self._rank, self._world = 0, 1

    @property
    def task(self) -> str:
        """The task's name in metric names and run tags (``spec.name``: ``xnli``, ``udpos``...)."""
        return self.spec.name

    # ------------------------------------------------------------------------------------------ sources
    def source(self, code: str) -> TextSource | str:
        """The source of language ``code``: its ``data_per_language`` entry, else ``data``."""
        return self.data_per_language.get(code, self.data)

    def is_synthetic(self, code: str) -> bool:
        """Whether language ``code`` is read from the synthetic panel."""
        return isinstance(self.source(code), SyntheticPanel)

    def prepare_data(self) -> None:
        """Make the sources' data available: the synthetic panel is generated once (atomic; reused when
        present)."""
        for source in dict.fromkeys(s for s in (self.data, *self.data_per_language.values())
                                    if isinstance(s, TextSource)):
            source.prepare()

    def source_of(self, code: str) -> tuple[str, str | None]:
        """Where language ``code`` is read from: ``(file, directory or hub id, hub config name)``
        (:meth:`xlt.sources.TextSource.task_location`; a ``data_per_language`` string as given)."""
        source = self.source(code)
        if isinstance(source, str):
            return source, None
        return source.task_location(self.spec.synthetic_folder, code)

    def read(self, code: str, split: str, required: bool = True) -> Dataset | None:
        """One split of one language in the task's schema; ``None`` (or an error when ``required``) if absent."""
        source, name = self.source_of(code)
        try:
            ds = load_split(source, self.spec, split, language=code, name=name)
        except DataNotFound as error:  # malformed data always raises; absent data only when required
            if required:
                raise XltError(f"no {split} data for language '{code}' ({self.task}): {error}") from error
            return None
        except XltError as error:  # malformed: name the language as well as the file
            raise XltError(f"{split} data of language '{code}' ({self.task}): {error}") from error
        if len(ds) == 0:
            if required:
                raise XltError(f"the {split} data of language '{code}' in {source} is empty ({self.task}) — "
                               "remove the language or fix the source")
            return None
        return ds

    def eval_languages(self) -> list[str]:
        """The evaluation languages (default: every panel language with test data)."""
        if self.eval_languages_arg is not None:
            return self.eval_languages_arg
        return [c for c in self.panel.codes if self.read(c, "test", required=False) is not None]

    def few_shot_languages(self) -> list[str]:
        """Languages sampled for few-shot training (default: evaluation languages minus training languages)."""
        if self.few_shot_languages_arg is not None:
            return list(self.few_shot_languages_arg)
        return [c for c in self.eval_languages() if c not in self.train_languages]

    # ------------------------------------------------------------------------------------------ tokenizer
    def tokenizer_for(self, code: str) -> Any:
        """The fast tokenizer of language ``code`` (configuration d: the language's own block tokenizer)."""
        if self.tokenizer_dir is None:
            raise XltError("data.tokenizer is not set — give the encoder's tokenizer (a directory or hub id), or a "
                           "model.encoder directory / hub id it can be taken from")
        key = code if (Path(self.tokenizer_dir) / HF_LANGUAGE_DIR / code).is_dir() else ""
        if key not in self._tokenizers:
            self._tokenizers[key] = load_fast_tokenizer(self.tokenizer_dir, code if key else None)
        return self._tokenizers[key]

    @property
    def pad_id(self) -> int:
        """Padding id of the tokenizer."""
        tokenizer = self.tokenizer_for(self.source_language)
        return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)

    @property
    def vocab_size(self) -> int:
        """Ids the tokenizer can produce (all languages' blocks included)."""
        return max(len(self.tokenizer_for(code)) for code in self.language_codes)

    # ------------------------------------------------------------------------------------------ subclass API
    def encode(self, rows: Dataset, code: str, split: str) -> Dataset:
        """Tokenize one language's rows into features (``input_ids`` + task targets)."""
        raise NotImplementedError

    def label_names_from(self, rows: Dataset) -> list[str] | None:
        """The label set found in a dataset (``None`` for tasks without a label set)."""
        return None

    def labels_of(self, rows: Dataset) -> list[Any] | None:
        """Per-row labels for stratified few-shot sampling."""
        return rows[self.stratify_column] if self.stratify_column else None

    def map_labels(self, rows: Dataset, code: str, split: str) -> Dataset:
        """Apply ``label_map`` and check the labels against the training label set."""
        return rows

    # ------------------------------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        """Read, sample and tokenize the splits the stage needs (idempotent)."""
        if self.trainer is not None:
            self._rank, self._world = int(self.trainer.global_rank), int(self.trainer.world_size)
        else:  # used from Python: Lightning calls prepare_data itself
            self.prepare_data()
        if self.label_names is None:
            self.label_names = self._training_label_names()
        wanted = {"fit": ["train", "dev"], "validate": ["dev"], "test": ["test"], "predict": ["test"]}
        for split in wanted.get(stage or "fit", ["train", "dev", "test"]):
            if split not in self.features:
                self._build(split)

    def _training_label_names(self) -> list[str] | None:
        if type(self).label_names_from is TaskDataModule.label_names_from:  # a task without labels: read nothing
            return None
        probe = self.train_languages[:1] or [self.source_language]
        split = "train" if self.trainable else "test"
        rows = self.read(probe[0], split, required=False) if self.trainable else None
        if rows is None and self.trainable:
            rows = self.read(probe[0], "test", required=False)
        return self.label_names_from(rows) if rows is not None else self.label_names_from(Dataset.from_dict({}))

    def split_languages(self, split: str) -> list[str]:
        """Languages of a split: train = training languages (+ few-shot), dev per ``model_selection``, test =
        evaluation languages."""
        if split == "train":
            extra = self.few_shot_languages() if self.few_shot else []
            return [*self.train_languages, *[c for c in extra if c not in self.train_languages]]
        if split == "dev":
            if self.model_selection == "target":
                return [c for c in self.eval_languages() if c not in self.train_languages] or self.eval_languages()
            return list(self.train_languages)
        return self.eval_languages()

    def _rows(self, code: str, split: str) -> Dataset:
        if split == "train" and code not in self.train_languages:  # few-shot language
            rows = self.read(code, "train")
            if self.few_shot > len(rows):
                raise XltError(f"data.few_shot {self.few_shot} > the {len(rows)} train examples of language "
                               f"'{code}' — lower data.few_shot")
            picked = few_shot_indices(len(rows), self.few_shot, derive_seed("few_shot", self.seed, code),
                                      self.labels_of(rows))
            return rows.select(picked)
        return self.read(code, split)

    def _build(self, split: str) -> None:
        if split in ("train", "dev") and not self.trainable:
            return
        with quiet_progress_bars():  # one bar per language and split is noise
            self._build_split(split)

    def _build_split(self, split: str) -> None:
        parts = []
        raw: dict[str, Dataset] = {}
        for code in self.split_languages(split):
            rows = self.map_labels(self._rows(code, split), code, split)
            raw[code] = rows
            features = self.encode(rows, code, split)
            lang_id = self.language_codes.index(code)
            if "index" not in features.column_names:
                features = features.add_column("index", list(range(len(features))))
            features = features.add_column("lang", [lang_id] * len(features))
            parts.append(features)
        self.splits[split] = raw
        self.features[split] = concatenate_datasets(parts) if parts else Dataset.from_dict({})

    # ------------------------------------------------------------------------------------------ loaders
    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Pad a list of features into a batch."""
        return pad_batch(features, self.pad_id, dict(self.pad_keys))

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches (seeded), dynamically padded."""
        if "train" not in self.features:
            self.setup("fit")
        generator = torch.Generator().manual_seed(derive_seed("train_order", self.seed))
        return DataLoader(self.features["train"].with_format(None), batch_size=self.batch_size, shuffle=True,
                          generator=generator, collate_fn=self.collate, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def feature_lengths(self, features: Dataset) -> list[int]:
        """Tokens per feature that evaluation batches are cut by (``input_ids``; retrieval: its longer side)."""
        return [len(ids) for ids in features["input_ids"]]

    def _eval_loader(self, split: str) -> DataLoader:
        if split not in self.features:
            self.setup({"dev": "validate", "test": "test"}[split])
        features = self.features[split].with_format(None)
        lengths = self.feature_lengths(features) if len(features) else []
        batches = LengthBucketBatches(lengths, features["lang"] if len(features) else [], self.eval_max_tokens,
                                      self.eval_max_rows, self._rank, self._world)
        return DataLoader(features, batch_sampler=batches, collate_fn=self.collate, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        """Length-bucketed dev batches of the model-selection languages."""
        return self._eval_loader("dev")

    def test_dataloader(self) -> DataLoader:
        """Length-bucketed test batches of every evaluation language."""
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        """The test batches (predictions are written in XTREME's layout by the task module)."""
        return self._eval_loader("test")

    def describe(self) -> dict[str, Any]:
        """Sizes per split and language (examples and features), for logs and tests."""
        out: dict[str, Any] = {}
        for split, per_lang in self.splits.items():
            out[split] = {code: len(rows) for code, rows in per_lang.items()}
        return out
