"""Probing data: UD treebanks (CoNLL-U with heads) and Tatoeba-style parallel files from one data directory.

The directory has the layout of both the real data (``ud/<code>/<treebank>-ud-<split>.conllu``,
``tatoeba/tatoeba.<code>-<pivot>.<side>``) and the synthetic panel (``ud/<code>/<split>.conllu``, the same
Tatoeba names), so ``xlt probe`` runs on either; files are found by the UD task's patterns
(:data:`xlt.datamodules.udpos.UDPOS`) and :func:`xlt.datamodules.retrieval.tatoeba_pairs`, parsed by
:mod:`xlt.formats`. Probes train on the source language's ``train`` split (else ``dev``) and are evaluated on
every language's ``test`` split (else ``dev``). Each split is capped at ``max_sentences`` by a seeded sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xlt.datamodules.retrieval import tatoeba_pairs
from xlt.datamodules.udpos import UDPOS
from xlt.errors import XltError
from xlt.formats import read_conllu, read_tatoeba
from xlt.languages import to_iso639_3
from xlt.seeding import derive_seed

EVAL_SPLITS = ("test", "dev")
TRAIN_SPLITS = ("train", "dev")


@dataclass
class Treebank:
    """Sentences of one UD split: words, UPOS, 1-based heads (0 = root) and dependency relations."""

    code: str
    path: Path
    tokens: list[list[str]]
    upos: list[list[str]]
    heads: list[list[int]]
    deprels: list[list[str]]

    def subset(self, indices: Sequence[int]) -> Treebank:
        """The sentences at ``indices`` (e.g. those the feature extractor kept)."""
        pick = [int(i) for i in indices]
        return Treebank(self.code, self.path, [self.tokens[i] for i in pick], [self.upos[i] for i in pick],
                        [self.heads[i] for i in pick], [self.deprels[i] for i in pick])


@dataclass
class Bitext:
    """Line-aligned translations: ``lines`` of language ``code``, ``pivot_lines`` of language ``pivot``."""

    code: str
    pivot: str
    lines: list[str]
    pivot_lines: list[str]


@dataclass
class ProbingData:
    """What one probing round reads.

    Attributes:
        root: the data directory.
        source: the language probes are trained on.
        train: the source language's training treebank (``None`` when the directory has no treebanks).
        treebanks: evaluation treebank per language (the source's included).
        bitexts: parallel data per language (with its pivot).
    """

    root: Path
    source: str
    train: Treebank | None
    treebanks: dict[str, Treebank] = field(default_factory=dict)
    bitexts: dict[str, Bitext] = field(default_factory=dict)


def _sample(n: int, cap: int | None, *key: object) -> np.ndarray:
    if cap is None or n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(derive_seed("probe-data", *key)).choice(n, cap, replace=False))


def _treebank(directory: Path, code: str, splits: Sequence[str], cap: int | None, seed: int,
              exclude: Path | None = None) -> Treebank | None:
    for split in splits:
        found = UDPOS.find(directory, split, None)
        if found is None or found[0] == exclude:
            continue
        rows = read_conllu(found[0])
        pick = _sample(len(rows), cap, seed, code, split)
        rows = rows.select(pick)
        return Treebank(code, found[0], rows["tokens"], rows["upos"], [list(map(int, h)) for h in rows["heads"]],
                        [[d.split(":")[0] for d in sentence] for sentence in rows["deprels"]])
    return None


def ud_languages(root: Path) -> list[str]:
    """Language codes with a ``ud/<code>/`` folder, sorted."""
    folder = root / "ud"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def load_probing_data(root: str | Path, source: str | None = None, languages: Sequence[str] | None = None,
                      max_sentences: int | None = 500, seed: int = 0, need_trees: bool = True,
                      need_bitext: bool = True) -> ProbingData:
    """Read the probing data of ``root`` (checked before anything is written).

    Args:
        root: a directory with ``ud/`` and/or ``tatoeba/`` (the real data, or a synthetic panel's directory).
        source: the probes' training language; default ``eng`` when present, else the Tatoeba pivot, else the
            first UD language.
        languages: evaluation languages (default: every language with a treebank or a Tatoeba pair).
        max_sentences: cap of each split (a seeded sample); ``None``: all.
        seed: seed of the samples.
        need_trees: the analysis probes treebanks (UPOS, relations, trees): a missing ``ud/`` is an error.
        need_bitext: the analysis needs parallel data (retrieval, similarity): no Tatoeba pair is an error.

    Raises:
        XltError: a missing directory, annotation an analysis needs, or a source without a training split.
    """
    root = Path(root)
    if not root.is_dir():
        raise XltError(f"probing data directory {root} not found — give a directory with ud/ and tatoeba/ "
                       "(e.g. ../shared/data) or the synthetic panel")
    pairs = tatoeba_pairs(root / "tatoeba") if (root / "tatoeba").is_dir() else []
    ud = ud_languages(root)
    if need_trees and not ud:
        raise XltError(f"{root} has no ud/<code>/ treebanks — UPOS, relation and structural probes need CoNLL-U "
                       "files with heads; leave them out of 'properties' to probe parallel data only")
    if need_bitext and not pairs:
        raise XltError(f"{root} has no tatoeba/tatoeba.<code>-<pivot>.* pairs — retrieval and similarity need "
                       "parallel sentences; leave them out of 'properties' to probe treebanks only")
    pivots = sorted({to_iso639_3(p[1]) for p in pairs})
    if source is None:
        source = "eng" if "eng" in ud or "eng" in pivots else (pivots[0] if pivots else ud[0])
    source = to_iso639_3(source)
    wanted = None if languages is None else {to_iso639_3(code) for code in languages} | {source}
    train = None
    treebanks: dict[str, Treebank] = {}
    if need_trees:
        if source not in ud:
            raise XltError(f"source language {source} has no treebank under {root / 'ud'} — choose one of "
                           f"{', '.join(ud)}")
        evaluation = _treebank(root / "ud" / source, source, EVAL_SPLITS, max_sentences, seed)
        train = _treebank(root / "ud" / source, source, TRAIN_SPLITS, max_sentences, seed,
                          exclude=None if evaluation is None else evaluation.path)
        if train is None:
            raise XltError(f"source language {source} has no train or dev split under {root / 'ud' / source} "
                           "(probes train on one split and are evaluated on another) — choose another source")
        for code in ud:
            if wanted is None or to_iso639_3(code) in wanted:
                bank = _treebank(root / "ud" / code, to_iso639_3(code), EVAL_SPLITS, max_sentences, seed)
                if bank is not None:
                    treebanks[bank.code] = bank
        missing = sorted((wanted or set()) - set(treebanks) - {to_iso639_3(p[0]) for p in pairs})
        if missing:
            raise XltError(f"languages {', '.join(missing)} have neither a treebank nor a Tatoeba pair in {root}")
    bitexts: dict[str, Bitext] = {}
    if need_bitext:
        for code, pivot, path, other in pairs:
            iso = to_iso639_3(code)
            if wanted is None or iso in wanted:
                rows = read_tatoeba(path, other)
                pick = _sample(len(rows), max_sentences, seed, "tatoeba")  # same lines of multi-parallel files
                rows = rows.select(pick)
                bitexts[iso] = Bitext(iso, to_iso639_3(pivot), rows["source"], rows["target"])
    return ProbingData(root, source, train, treebanks, bitexts)
