"""Tatoeba-style bitext retrieval data: line-aligned translation pairs of each language with a pivot language.

Each evaluation language ``<code>`` has one pair of line-aligned files, ``tatoeba.<code>-<pivot>.<code>`` and
``tatoeba.<code>-<pivot>.<pivot>`` (line ``i`` of each are translations). The pivot is the data module's
source language: ``eng`` when the panel has it, else the panel's first language (``qaa`` on the synthetic
panel); ``data.train_languages: [<code>]`` names another one. The default evaluation languages are the panel
languages with a pair file, the pivot excluded.

There is nothing to train: ``xlt fit`` is refused, ``xlt test`` evaluates every evaluation language, and
``xlt validate`` evaluates the *same* pairs (Tatoeba has no dev split).

A feature holds both sides of a pair, each tokenized on its own (``<s> sentence </s>`` for XLM-R):
``input_ids`` / ``special_tokens_mask`` for the evaluation language's sentence (with that language's
tokenizer) and ``pivot_ids`` / ``pivot_special_tokens_mask`` for its translation (with the pivot's tokenizer).
Batches pad the two sides separately (``attention_mask`` and ``pivot_attention_mask``), and evaluation batches
are cut by the longer side, so neither side's forward pass exceeds ``eval_max_tokens`` padded tokens.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import torch
from datasets import Dataset, Features, List, Value
from lightning.pytorch.trainer.states import TrainerFn

from xlt.datamodules.task_data import TaskDataModule, pad_batch
from xlt.datamodules.task_spec import TaskSpec, same_language
from xlt.errors import XltError
from xlt.formats import BITEXT_FEATURES, read_tatoeba
from xlt.languages import to_iso639_3
from xlt.seeding import derive_seed

_PAIR_FILE = re.compile(r"^tatoeba\.([^.-]+)-([^.-]+)\.([^.]+)$")
_PAIR_SIDE = re.compile(r"^(.*\.)([^.-]+)-([^.-]+)\.([^.]+)$")
FEATURES = Features({key: List(Value("int32")) for key in
                     ("input_ids", "special_tokens_mask", "pivot_ids", "pivot_special_tokens_mask")})


def tatoeba_pairs(directory: Path) -> list[tuple[str, str, Path, Path]]:
    """``(language code, pivot code, language file, pivot file)`` of every Tatoeba pair in ``directory``
    (``tatoeba.<code>-<pivot>.<code>`` with its ``.<pivot>`` side present), in file name order."""
    pairs = []
    for path in sorted(directory.glob("tatoeba.*-*.*")):
        m = _PAIR_FILE.match(path.name)
        if m and m.group(3) == m.group(1):
            other = path.with_name(f"tatoeba.{m.group(1)}-{m.group(2)}.{m.group(2)}")
            if other.is_file():
                pairs.append((m.group(1), m.group(2), path, other))
    return pairs


def pair_files(directory: Path, code: str) -> dict[str, tuple[Path, Path]]:
    """The Tatoeba pair files of language ``code`` in ``directory``: pivot code (as written in the file name)
    -> ``(language file, pivot file)``. Dataset codes are matched through ISO 639-3 (``cmn`` is ``zho``)."""
    return {pivot: (path, other) for language, pivot, path, other in tatoeba_pairs(directory)
            if to_iso639_3(language) == to_iso639_3(code)}


def _locate(directory: Path, split: str, language: str | None) -> tuple[Path, Path] | None:
    """The pair of ``language`` in a directory (any split: Tatoeba has one); without a language, the only pair."""
    pairs = tatoeba_pairs(directory)
    if language is None:
        if len(pairs) == 1:
            return pairs[0][2], pairs[0][3]
        if pairs:
            raise XltError(f"{directory} holds Tatoeba pairs for {', '.join(p[0] for p in pairs)} — "
                           "pass a language")
        return None
    for code, _, path, other in pairs:
        if same_language(code, language):
            return path, other
    return None


def _read(path: Path, language: str | None, target: str | Path | None) -> Dataset:
    """A pair from one side's file; the other side is ``target`` or, by default, derived from the Tatoeba name
    (``tatoeba.deu-eng.deu`` -> ``tatoeba.deu-eng.eng``)."""
    if target is None:
        m = _PAIR_SIDE.match(path.name)
        if not m or m.group(4) not in (m.group(2), m.group(3)):
            raise XltError(f"{path}: cannot tell the other side of this retrieval pair — pass target=<file>")
        other = m.group(3) if m.group(4) == m.group(2) else m.group(2)
        target = path.with_name(f"{m.group(1)}{m.group(2)}-{m.group(3)}.{other}")
    return read_tatoeba(path, target)


RETRIEVAL = TaskSpec(
    name="retrieval", header="Tatoeba", metrics=("p1",), synthetic_folder="tatoeba", aliases=("tatoeba", "bitext"),
    features=BITEXT_FEATURES, read=_read, locate=_locate,
    hub_columns={"source": ("source", "sentence1", "src"), "target": ("target", "sentence2", "tgt")},
)
"""Tatoeba bitext retrieval: line-aligned pairs (:func:`~xlt.formats.read_tatoeba`), metric P@1."""


class RetrievalDataModule(TaskDataModule):
    """Tatoeba bitext retrieval (no training): every evaluation language against the pivot; metric P@1.

    Reads ``tatoeba.<code>-<pivot>.{<code>,<pivot>}`` from ``data`` (real Tatoeba/LASER files, the synthetic
    panel's ``tatoeba/`` folder) or ``data_per_language`` (a file, the other side derived from its name, or a
    hub dataset with ``source``/``target`` columns).
    """

    spec = RETRIEVAL
    trainable = False
    pad_keys: ClassVar[dict[str, int]] = {"special_tokens_mask": 1}

    @property
    def pivot(self) -> str:
        """The language every evaluation language is paired with (the source language)."""
        return self.source_language

    def _refuse_fit(self) -> None:
        raise XltError(f"{self.task} has nothing to train (sentence embeddings of a frozen encoder) — run "
                       "`xlt test` (or `xlt validate`) instead of `xlt fit`")

    def prepare_data(self) -> None:
        """Refuse ``fit`` before any work; otherwise generate the synthetic panel once."""
        if self.trainer is not None and self.trainer.state.fn == TrainerFn.FITTING:
            self._refuse_fit()
        super().prepare_data()

    def setup(self, stage: str | None = None) -> None:
        """Read and tokenize the pairs of every evaluation language; ``validate`` uses the same pairs."""
        if stage == "fit":
            self._refuse_fit()
        super().setup("test" if stage in (None, "validate") else stage)
        if "dev" not in self.features:
            self.splits["dev"], self.features["dev"] = self.splits["test"], self.features["test"]

    # ------------------------------------------------------------------------------------------ sources
    def read(self, code: str, split: str, required: bool = True) -> Dataset | None:
        """The pairs of language ``code`` with the pivot (all splits read the same pairs).

        In a directory, the file pair naming the pivot is read; pairs of the language with another pivot only
        are an error (``data.train_languages`` sets the pivot). Other sources go through the base reader.
        """
        source, _ = self.source_of(code)
        directory = Path(source)
        pairs = pair_files(directory, code) if directory.is_dir() else {}
        if not pairs:
            return super().read(code, split, required)
        chosen = [files for name, files in pairs.items() if to_iso639_3(name) == to_iso639_3(self.pivot)]
        if not chosen:
            raise XltError(f"{directory} pairs language '{code}' with {sorted(pairs)}, not with the pivot "
                           f"'{self.pivot}' — set data.train_languages: [{next(iter(pairs))}] to use that pivot")
        return read_tatoeba(*chosen[0])  # files that exist but are malformed are errors even when probing

    def eval_languages(self) -> list[str]:
        """The evaluation languages (default: every panel language with a pair file, the pivot excluded)."""
        if self.eval_languages_arg is not None:
            if self.pivot in self.eval_languages_arg:
                raise XltError(f"data.eval_languages lists the pivot '{self.pivot}', the other side of every pair "
                               "— remove it")
            return list(self.eval_languages_arg)
        return [c for c in self.panel.codes if c != self.pivot and self.read(c, "test", required=False) is not None]

    # ------------------------------------------------------------------------------------------ features
    def encode(self, rows: Dataset, code: str, split: str) -> Dataset:
        """Both sides of each pair, tokenized separately (truncated to ``max_length``), with special-token masks."""
        language, pivot = self.tokenizer_for(code), self.tokenizer_for(self.pivot)

        def tokenize(batch: dict[str, list]) -> dict[str, list]:
            own = language(batch["source"], truncation=True, max_length=self.max_length,
                           return_special_tokens_mask=True)
            other = pivot(batch["target"], truncation=True, max_length=self.max_length,
                          return_special_tokens_mask=True)
            return {"input_ids": own["input_ids"], "special_tokens_mask": own["special_tokens_mask"],
                    "pivot_ids": other["input_ids"], "pivot_special_tokens_mask": other["special_tokens_mask"]}

        # an explicit fingerprint: hashing the closure would pickle this module and its tokenizers (seconds)
        key = ("retrieval", self.source_of(code), self.tokenizer_dir, code, self.pivot, self.max_length, len(rows))
        fingerprint = f"{derive_seed(*key):016x}"
        return rows.map(tokenize, batched=True, remove_columns=rows.column_names, features=FEATURES,
                        new_fingerprint=fingerprint, desc=None)

    def feature_lengths(self, features: Dataset) -> list[int]:
        """The longer side of each pair (both sides of a batch go through the encoder)."""
        return [max(len(a), len(b)) for a, b in zip(features["input_ids"], features["pivot_ids"], strict=True)]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Pad the language side (``input_ids``, ``attention_mask``, ``special_tokens_mask``) and, separately,
        the pivot side (``pivot_ids``, ``pivot_attention_mask``, ``pivot_special_tokens_mask``)."""
        batch = pad_batch(features, self.pad_id, dict(self.pad_keys))
        pivot = pad_batch([{"input_ids": f["pivot_ids"], "special_tokens_mask": f["pivot_special_tokens_mask"]}
                           for f in features], self.pad_id, dict(self.pad_keys))
        batch["pivot_ids"], batch["pivot_attention_mask"] = pivot["input_ids"], pivot["attention_mask"]
        batch["pivot_special_tokens_mask"] = pivot["special_tokens_mask"]
        return batch
