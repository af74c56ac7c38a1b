"""One probing round: features once (one no-grad pass per split), then every analysis on all layers at once.

:class:`ProbingAnalysis` holds the settings (which properties, pooling, layers, probe capacity, seed) and is the
object both ``xlt probe`` and :class:`xlt.callbacks.probing.ProbingCallback` take from their configs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from xlt.errors import XltError
from xlt.formats import UPOS_TAGS
from xlt.probing.attention import attention_entropy
from xlt.probing.data import ProbingData, Treebank
from xlt.probing.encoder import ProbeEncoder
from xlt.probing.features import Pooling, SentenceFeatures, WordFeatures, sentence_features, word_features
from xlt.probing.linear import (
    LinearProbe,
    ProbeFamily,
    control_labels,
    fit_probes,
    label_distribution,
    sentence_correct,
)
from xlt.probing.retrieval import retrieval_hits
from xlt.probing.similarity import linear_cka, svcca
from xlt.probing.structural import StructuralProbe, TreeBank, evaluate_structural, fit_structural
from xlt.probing.summary import LayerCurve

Property = Literal["upos", "deprel", "structure", "retrieval", "similarity", "attention"]
PROPERTIES: tuple[Property, ...] = ("upos", "deprel", "structure", "retrieval", "similarity", "attention")
TREE_PROPERTIES = frozenset({"upos", "deprel", "structure", "attention"})
PARALLEL_PROPERTIES = frozenset({"retrieval", "similarity"})


@dataclass
class ProbingRound:
    """The results of one round.

    Attributes:
        curves: every metric of every property and group over layers.
        skipped: sentences skipped per split (``ud/<code>``, ``train/<code>``, ``tatoeba/<code>``): longer than
            the encoder's positions, or a word without sub-tokens.
        seconds: wall time of ``features`` (forward passes) and ``probes`` (training and scoring).
        entropy: attention entropy ``[n_layers, heads]`` per language.
        similarity_languages: the languages of :attr:`similarity_matrix` (multi-parallel data only).
        similarity_matrix: linear CKA ``[n_layers, languages, languages]`` when every pair shares its pivot lines.
    """

    curves: list[LayerCurve] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    entropy: dict[str, np.ndarray] = field(default_factory=dict)
    similarity_languages: list[str] = field(default_factory=list)
    similarity_matrix: np.ndarray | None = None


class ProbingAnalysis:
    """What a probing round computes and how (injected with ``class_path`` into ``xlt probe`` and the callback)."""

    def __init__(self, properties: list[Property] | None = None, pooling: Pooling = "first",
                 layers: list[int] | None = None, probe: ProbeFamily | None = None,
                 structural: StructuralProbe | None = None, control: bool = True, svcca_dims: int = 20,
                 batch_size: int = 32, seed: int = 0) -> None:
        """Settings of a probing round.

        Args:
            properties: what to analyse: ``upos`` and ``deprel`` (classifier probes with control tasks),
                ``structure`` (distance and depth probes), ``retrieval`` (P@1 both directions), ``similarity``
                (CKA / SVCCA), ``attention`` (entropy per head); default all.
            pooling: word vector from the ``first`` sub-token or the ``mean`` of a word's sub-tokens.
            layers: hidden-state indices to probe (0 = embeddings); default all.
            probe: the classifier probe family and capacity (default :class:`~xlt.probing.linear.LinearProbe`).
            structural: the structural probes' settings (default :class:`~xlt.probing.structural.StructuralProbe`).
            control: also train control-task probes and report selectivity.
            svcca_dims: singular directions SVCCA keeps per side.
            batch_size: sentences per forward pass.
            seed: seed of the probes' initialisation, control labels and data order.
        """
        chosen = list(PROPERTIES if properties is None else properties)
        unknown = sorted(set(chosen) - set(PROPERTIES))
        if unknown:
            raise XltError(f"unknown probing properties {unknown} — choose from {', '.join(PROPERTIES)}")
        self.properties = chosen
        self.pooling: Pooling = pooling
        self.layers = None if layers is None else [int(layer) for layer in layers]
        self.probe = probe if probe is not None else LinearProbe()
        self.structural = structural if structural is not None else StructuralProbe()
        self.control = bool(control)
        self.svcca_dims = int(svcca_dims)
        self.batch_size = int(batch_size)
        self.seed = int(seed)

    @property
    def needs_trees(self) -> bool:
        """Whether the round reads treebanks."""
        return bool(TREE_PROPERTIES & set(self.properties))

    @property
    def needs_bitext(self) -> bool:
        """Whether the round reads parallel data."""
        return bool(PARALLEL_PROPERTIES & set(self.properties))

    def params(self) -> dict[str, object]:
        """The settings as flat run parameters (probe capacity included)."""
        out: dict[str, object] = {"properties": ",".join(self.properties), "pooling": self.pooling,
                                  "layers": "all" if self.layers is None else ",".join(map(str, self.layers)),
                                  "control": self.control, "svcca_dims": self.svcca_dims, "seed": self.seed}
        out.update({f"probe.{k}": v for k, v in self.probe.capacity().items()})
        out.update({"probe.steps": self.probe.steps, "probe.lr": self.probe.lr})
        out.update({f"structural.{k}": v for k, v in self.structural.capacity().items()})
        return out

    def run(self, encoder: ProbeEncoder, data: ProbingData) -> ProbingRound:
        """Extract features once, then run every selected analysis on all layers."""
        layers = encoder.check_layers(self.layers)
        result = ProbingRound()
        start = time.perf_counter()
        words: dict[str, tuple[Treebank, WordFeatures]] = {}
        if self.needs_trees and data.train is not None:
            for key, bank in [("train", data.train), *(("ud", b) for b in data.treebanks.values())]:
                features = word_features(encoder, bank.tokens, layers, self.pooling, self.batch_size)
                result.skipped[f"{key}/{bank.code}"] = features.skipped
                if len(features.kept):  # a language whose every sentence was skipped gets no curve, only its count
                    words[f"{key}/{bank.code}"] = (bank.subset(features.kept), features)
                elif key == "train":
                    raise XltError(f"no training sentence of {bank.path} fits the encoder's {encoder.max_tokens} "
                                   "positions — give shorter sentences or a source language with some")
        sentences = self._sentence_features(encoder, data, layers, result) if self.needs_bitext else {}
        result.seconds["features"] = time.perf_counter() - start
        start = time.perf_counter()
        train = words.get(f"train/{data.source}")
        evaluation = {key.split("/", 1)[1]: value for key, value in words.items() if key.startswith("ud/")}
        if train is not None:
            for name in ("upos", "deprel"):
                if name in self.properties:
                    result.curves += self._classifier(name, train, evaluation, layers)
            if "structure" in self.properties:
                probe_b = fit_structural(self.structural, TreeBank(train[1], train[0].heads, train[0].upos), self.seed)
                for code, (bank, features) in evaluation.items():
                    result.curves += evaluate_structural(*probe_b, TreeBank(features, bank.heads, bank.upos), layers,
                                                         code)
        if sentences:
            result.curves += self._parallel(data, sentences, layers, result)
        result.seconds["probes"] = time.perf_counter() - start
        if "attention" in self.properties:
            start = time.perf_counter()
            for code, bank in data.treebanks.items():
                entropy, skipped = attention_entropy(encoder, [" ".join(t) for t in bank.tokens], self.batch_size)
                result.skipped[f"attention/{code}"] = skipped
                if not entropy.size:  # every sentence too long: only the count
                    continue
                result.entropy[code] = entropy
                result.curves.append(LayerCurve("attention", "entropy", code, list(range(1, len(entropy) + 1)),
                                                entropy.mean(axis=1)))
            result.seconds["attention"] = time.perf_counter() - start
        return result

    def _classifier(self, name: str, train: tuple[Treebank, WordFeatures],
                    evaluation: dict[str, tuple[Treebank, WordFeatures]], layers: list[int]) -> list[LayerCurve]:
        """UPOS or relation probes trained on the source, scored on every language, with control tasks."""
        def labels_of(bank: Treebank) -> list[str]:
            return [tag for sentence in (bank.upos if name == "upos" else bank.deprels) for tag in sentence]

        classes = list(UPOS_TAGS) if name == "upos" else sorted(set(labels_of(train[0])))
        index = {label: i for i, label in enumerate(classes)}

        def ids(bank: Treebank) -> np.ndarray:  # a relation unseen in training can never be predicted: -1
            return np.asarray([index.get(label, -1) for label in labels_of(bank)], dtype=np.int64)

        def types(bank: Treebank) -> list[str]:
            return [word for sentence in bank.tokens for word in sentence]

        y = ids(train[0])
        task = fit_probes(self.probe, train[1].layers, y, len(classes), self.seed)
        control = None
        distribution = label_distribution(y, len(classes))
        if self.control:
            y_control = control_labels(types(train[0]), distribution, self.seed)
            control = fit_probes(self.probe, train[1].layers, y_control, len(classes), self.seed)
        curves = []
        for code, (bank, features) in evaluation.items():
            stats = sentence_correct(task.predict(features.layers), ids(bank), features.offsets)
            curves.append(LayerCurve(name, "acc", code, layers, _ratio(stats), stats, "ratio"))
            if control is not None:
                control_stats = sentence_correct(control.predict(features.layers),
                                                 control_labels(types(bank), distribution, self.seed),
                                                 features.offsets)
                selectivity = np.stack([stats[..., 0] - control_stats[..., 0], stats[..., 1]], axis=-1)
                curves.append(LayerCurve(name, "control_acc", code, layers, _ratio(control_stats), control_stats,
                                         "ratio"))
                curves.append(LayerCurve(name, "selectivity", code, layers, _ratio(selectivity), selectivity,
                                         "ratio"))
        return curves

    def _sentence_features(self, encoder: ProbeEncoder, data: ProbingData, layers: list[int],
                           result: ProbingRound) -> dict[str, tuple[SentenceFeatures, SentenceFeatures]]:
        """Both sides of every bitext; a pivot side shared by several pairs is encoded once."""
        cache: dict[tuple[str, ...], SentenceFeatures] = {}
        out = {}
        for code, bitext in data.bitexts.items():
            own = sentence_features(encoder, bitext.lines, layers, self.batch_size)
            key = tuple(bitext.pivot_lines)
            if key not in cache:
                cache[key] = sentence_features(encoder, bitext.pivot_lines, layers, self.batch_size)
            result.skipped[f"tatoeba/{code}"] = own.skipped
            result.skipped[f"tatoeba/{code}-{bitext.pivot}.{bitext.pivot}"] = cache[key].skipped
            out[code] = (own, cache[key])
        return out

    def _parallel(self, data: ProbingData, sentences: dict[str, tuple[SentenceFeatures, SentenceFeatures]],
                  layers: list[int], result: ProbingRound) -> list[LayerCurve]:
        """Retrieval both directions and CKA / SVCCA of every pair; the language matrix on multi-parallel data."""
        curves = []
        for code, (own, pivot) in sentences.items():
            a, b = _aligned(own, pivot)
            if a.shape[1] < 4:
                continue
            other = data.bitexts[code].pivot
            if "retrieval" in self.properties:
                directions = ((f"{code}-{other}", retrieval_hits(a, b)), (f"{other}-{code}", retrieval_hits(b, a)))
                for group, hits in directions:  # group <queries>-<candidates>
                    curves.append(LayerCurve("retrieval", "p1", group, layers, hits.mean(1), hits[..., None], "mean"))
            if "similarity" in self.properties:
                curves.append(LayerCurve("similarity", "cka", f"{code}-{other}", layers, linear_cka(a, b).numpy()))
                curves.append(LayerCurve("similarity", "svcca", f"{code}-{other}", layers,
                                         svcca(a, b, self.svcca_dims).numpy()))
        if "similarity" in self.properties:
            self._language_matrix(data, sentences, result)
        return curves

    def _language_matrix(self, data: ProbingData, sentences: dict[str, tuple[SentenceFeatures, SentenceFeatures]],
                         result: ProbingRound) -> None:
        pivots = {tuple(b.pivot_lines) for b in data.bitexts.values()}
        if len(pivots) != 1 or len(data.bitexts) < 2 or len({b.pivot for b in data.bitexts.values()}) != 1:
            return  # not multi-parallel: only each language's similarity to its pivot
        codes = sorted(sentences)
        pivot = data.bitexts[codes[0]].pivot
        sides = {pivot: sentences[codes[0]][1], **{code: sentences[code][0] for code in codes}}
        common = set.intersection(*(set(s.kept.tolist()) for s in sides.values()))
        if len(common) < 4:
            return
        rows = np.asarray(sorted(common))
        vectors = {code: s.layers[:, np.searchsorted(s.kept, rows)] for code, s in sides.items()}
        languages = [pivot, *codes]
        matrix = np.ones((next(iter(vectors.values())).shape[0], len(languages), len(languages)))
        for i, first in enumerate(languages):
            for j in range(i + 1, len(languages)):
                matrix[:, i, j] = matrix[:, j, i] = linear_cka(vectors[first], vectors[languages[j]]).numpy()
        result.similarity_languages, result.similarity_matrix = languages, matrix


def _ratio(stats: np.ndarray) -> np.ndarray:
    return stats[..., 0].sum(1) / np.maximum(stats[..., 1].sum(1), 1)


def _aligned(own: SentenceFeatures, pivot: SentenceFeatures) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of both sides whose lines were kept on both sides (over-long lines are skipped on either)."""
    common = np.intersect1d(own.kept, pivot.kept)
    return own.layers[:, np.searchsorted(own.kept, common)], pivot.layers[:, np.searchsorted(pivot.kept, common)]
