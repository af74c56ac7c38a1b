"""Structural probes: tree metrics by hand (punctuation excluded), length-averaged Spearman, a planted tree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from xlt.probing.features import WordFeatures
from xlt.probing.structural import (
    StructuralProbe,
    TreeBank,
    _row_spearman,
    evaluate_structural,
    fit_structural,
    length_averaged,
    spanning_edges,
    tree_depths,
    tree_distances,
)

# "the dog barks ." : the -> dog -> barks (root) <- .
HEADS = [2, 3, 0, 3]
UPOS = ["DET", "NOUN", "VERB", "PUNCT"]


def edge_embedding(heads: list[int], width: int) -> np.ndarray:
    """Word i -> indicator of the edges (named by their child) on its path to the root: squared Euclidean distance
    = tree distance, squared norm = depth (an isometric embedding in Hewitt & Manning's sense)."""
    out = np.zeros((len(heads), width))
    for i in range(len(heads)):
        node = i
        while heads[node] != 0:
            out[i, node] = 1.0
            node = heads[node] - 1
    return out


def test_tree_distances_and_depths_by_hand() -> None:
    assert tree_distances(HEADS).tolist() == [[0, 1, 2, 3], [1, 0, 1, 2], [2, 1, 0, 1], [3, 2, 1, 0]]
    assert tree_depths(HEADS).tolist() == [2, 1, 0, 1]
    x = edge_embedding(HEADS, 4)
    squared = ((x[:, None] - x[None]) ** 2).sum(-1)
    assert np.array_equal(squared, tree_distances(HEADS)) and np.array_equal((x ** 2).sum(-1), tree_depths(HEADS))


def _bank(sentences: list[tuple[list[int], list[str]]], layers: list[np.ndarray]) -> TreeBank:
    lengths = [len(h) for h, _ in sentences]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    features = WordFeatures(torch.as_tensor(np.stack(layers), dtype=torch.float32), offsets,
                            np.arange(len(sentences)), 0)
    return TreeBank(features, [h for h, _ in sentences], [u for _, u in sentences])


def test_uuas_root_accuracy_and_punctuation_exclusion_by_hand() -> None:
    """Layer 0 is the gold embedding. Layer 1 moves "the" next to "barks" and makes "." the shallowest word.

    Gold non-punctuation edges: the-dog, dog-barks. Layer 1's spanning tree over {the, dog, barks}: the-barks
    (distance 1) then dog-barks: 1 of 2 correct, UUAS 0.5; punctuation never enters either tree. Root: "."
    is shallowest in layer 1 but excluded, so "barks" (depth 0.5) is predicted: correct in both layers.
    """
    gold = edge_embedding(HEADS, 4)
    moved = np.array([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.5 ** 0.5], [0.0, 0.0, 0.0, 0.0]])
    bank = _bank([(HEADS, UPOS)], [gold, moved])
    identity = torch.eye(4).expand(2, 4, 4)
    curves = {(c.property, c.metric): c for c in evaluate_structural(identity, identity, bank, [0, 1], "eng")}
    assert curves["distance", "uuas"].values.tolist() == [1.0, 0.5]
    assert curves["distance", "uuas"].per_sentence.tolist() == [[[2, 2]], [[1, 2]]]
    assert curves["depth", "root_acc"].values.tolist() == [1.0, 1.0]
    assert spanning_edges(tree_distances(HEADS), np.array([True, True, True, False])) == {(0, 1), (1, 2)}
    # with "." counted, the gold tree would have 3 edges
    assert len(spanning_edges(tree_distances(HEADS), np.ones(4, dtype=bool))) == 3


def test_row_spearman_equals_scipy_and_length_averaging_is_unweighted_over_5_to_50() -> None:
    rng = np.random.default_rng(0)
    pred, gold = rng.random((3, 7)), rng.random((3, 7))
    expected = [spearmanr(p, g).statistic for p, g in zip(pred, gold, strict=True)]
    assert _row_spearman(pred, gold) == pytest.approx(expected)
    # length 5: rows 1.0 and 0.5 (mean 0.75); length 6: one row 0.0; length 3 (outside 5-50) ignored
    by_length = {5: np.array([[1.0], [0.5]]), 6: np.array([[0.0]]), 3: np.array([[-1.0]])}
    assert length_averaged(by_length, 1).tolist() == [0.375]
    assert np.isnan(length_averaged({4: np.array([[1.0]])}, 1)).all()


def _random_tree(n: int, rng: np.random.Generator) -> list[int]:
    order = rng.permutation(n)
    heads = [0] * n
    for k in range(1, n):
        heads[order[k]] = int(order[rng.integers(0, k)]) + 1
    return heads


def test_planted_isometric_tree_layer_is_found_by_the_trained_probes() -> None:
    """Layer 1 embeds each tree isometrically (plus a nuisance dimension); layer 0 is noise of the same scale."""
    rng = np.random.default_rng(1)
    width = 12
    sentences = []
    for _ in range(160):
        n = int(rng.integers(5, width + 1))
        heads = _random_tree(n, rng)
        upos = ["PUNCT" if rng.random() < 0.1 and heads[i] != 0 else "NOUN" for i in range(n)]
        sentences.append((heads, upos))
    planted = np.concatenate([np.concatenate([edge_embedding(h, width), rng.normal(size=(len(h), 4))], axis=1)
                              for h, _ in sentences])
    noise = rng.normal(size=planted.shape) * planted.std()
    bank = _bank(sentences, [noise, planted])
    train, test = _subset(bank, range(0, 120)), _subset(bank, range(120, 160))
    b_distance, b_depth = fit_structural(StructuralProbe(rank=width, epochs=40, batch_size=20, lr=0.01), train, seed=0)
    curves = {(c.property, c.metric): c.values for c in evaluate_structural(b_distance, b_depth, test, [0, 1], "x")}
    assert curves["distance", "uuas"][1] > 0.95 and curves["distance", "uuas"][0] < 0.6
    assert curves["depth", "root_acc"][1] > 0.95 and curves["depth", "root_acc"][0] < 0.5
    assert curves["distance", "spearman"][1] > 0.9 and curves["depth", "spearman"][1] > 0.9


def _subset(bank: TreeBank, indices: range) -> TreeBank:
    rows = [bank.features.layers[:, bank.features.offsets[i]:bank.features.offsets[i + 1]] for i in indices]
    lengths = [r.shape[1] for r in rows]
    features = WordFeatures(torch.cat(rows, dim=1), np.concatenate([[0], np.cumsum(lengths)]),
                            np.arange(len(rows)), 0)
    return TreeBank(features, [bank.heads[i] for i in indices], [bank.upos[i] for i in indices])
