"""Structural probes (Hewitt & Manning 2019) for every layer at once, scored as the reference code scores them.

* Distance probe: a rank-limited ``B`` per layer; the squared distance ``||B(h_i - h_j)||²`` is trained against
  the tree distance with the L1 loss ``Σ_ij |pred - gold| / n²`` per sentence, averaged over the batch's
  sentences. UUAS: a minimum spanning tree (Kruskal over pairs sorted by predicted distance, ties in row-major
  order) over the sentence's non-punctuation words (UPOS ``PUNCT``), compared as undirected edges with the
  spanning tree of the gold distances over the same words; corpus-level correct / total edges. Spearman: per
  word row of the distance matrix (all words), averaged within each sentence length, then unweighted over the
  lengths 5–50 present (rows with a constant prediction have no correlation and are left out).
* Depth probe: ``||B h_i||²`` against the depth in the tree, L1 loss ``Σ_i |pred - gold| / n`` per sentence.
  Root accuracy: the shallowest non-punctuation word is the gold root (depth 0). Spearman per sentence, same
  averaging over lengths.

The layers' losses are summed, so the batched optimisation equals one per layer (Adam is elementwise); features
are used raw, as in the reference (a depth is a norm, which standardising would move).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path
from scipy.stats import rankdata

from xlt.probing.features import WordFeatures
from xlt.probing.summary import LayerCurve
from xlt.seeding import derive_seed

PUNCT = "PUNCT"
SPEARMAN_LENGTHS = range(5, 51)


class StructuralProbe:
    """Settings of the distance and depth probes."""

    def __init__(self, rank: int = 64, epochs: int = 10, batch_size: int = 32, lr: float = 0.001) -> None:
        """Distance and depth probes.

        Args:
            rank: rank of ``B`` (the reference uses the model width; smaller limits the probe's capacity).
            epochs: passes over the training sentences.
            batch_size: sentences per Adam step.
            lr: Adam learning rate (the reference: 0.001).
        """
        self.rank, self.epochs, self.batch_size, self.lr = int(rank), int(epochs), int(batch_size), float(lr)

    def capacity(self) -> dict[str, object]:
        """What bounds the probes' capacity (logged as run parameters)."""
        return {"kind": "structural", "rank": self.rank}


def tree_distances(heads: Sequence[int]) -> np.ndarray:
    """Path lengths between all words of a tree given 1-based heads (0 = root), ``[n, n]``."""
    n = len(heads)
    children = [i for i, h in enumerate(heads) if h > 0]
    parents = [int(heads[i]) - 1 for i in children]
    graph = csr_matrix((np.ones(len(children)), (children, parents)), shape=(n, n))
    return shortest_path(graph, directed=False, unweighted=True)


def tree_depths(heads: Sequence[int]) -> np.ndarray:
    """Depth of every word (the root, head 0, has depth 0)."""
    distances = tree_distances(heads)
    roots = [i for i, h in enumerate(heads) if h == 0]
    return distances[roots[0]] if roots else np.zeros(len(heads))


def spanning_edges(distances: np.ndarray, keep: np.ndarray) -> set[tuple[int, int]]:
    """Undirected edges ``(i, j)``, ``i < j``, of the minimum spanning tree over the words ``keep`` (Kruskal,
    pairs sorted by distance, ties in row-major order — the reference's ``prims_matrix_to_edges``)."""
    words = np.flatnonzero(keep)
    if len(words) < 2:
        return set()
    i, j = np.triu_indices(len(words), k=1)
    order = np.argsort(distances[words[i], words[j]], kind="stable")
    parent = list(range(len(words)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    edges = set()
    for k in order:
        a, b = find(int(i[k])), find(int(j[k]))
        if a != b:
            parent[a] = b
            edges.add((int(words[i[k]]), int(words[j[k]])))
            if len(edges) == len(words) - 1:
                break
    return edges


def _row_spearman(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Spearman correlation of the last axis of ``pred`` ``[..., n]`` with ``gold`` ``[..., n]`` (broadcast);
    NaN where either side is constant."""
    a = rankdata(pred, axis=-1)
    b = np.broadcast_to(rankdata(gold, axis=-1), a.shape)
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(-1) / denominator, np.nan)


def length_averaged(by_length: dict[int, np.ndarray], n_layers: int) -> np.ndarray:
    """Per layer: the mean within each sentence length (``by_length[n]``: correlations ``[k, n_layers]``), then
    the unweighted mean over the lengths 5–50 present; NaN correlations are left out, NaN where none is left."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: a layer without a correlation
        means = [np.nanmean(by_length[n], axis=0) for n in SPEARMAN_LENGTHS if n in by_length]
        return np.nanmean(np.stack(means), axis=0) if means else np.full(n_layers, np.nan)


@dataclass
class TreeBank:
    """Sentences with gold trees and their word features, padded for batched probes.

    Attributes:
        features: the sentences' word vectors.
        heads: 1-based heads of each kept sentence.
        upos: UPOS tags of each kept sentence (punctuation is excluded from UUAS and root accuracy).
    """

    features: WordFeatures
    heads: list[list[int]]
    upos: list[list[str]]

    def __post_init__(self) -> None:
        self.distances = [tree_distances(h) for h in self.heads]
        self.depths = [tree_depths(h) for h in self.heads]

    def padded(self, sentences: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features ``[n_layers, b, n, hidden]``, mask ``[b, n]``, gold distances ``[b, n, n]``, depths ``[b, n]``."""
        lengths = self.features.lengths[sentences]
        width = int(lengths.max())
        index = torch.zeros((len(sentences), width), dtype=torch.long)
        mask = torch.zeros((len(sentences), width))
        distances = torch.zeros((len(sentences), width, width))
        depths = torch.zeros((len(sentences), width))
        for row, s in enumerate(sentences):
            n = int(lengths[row])
            index[row, :n] = torch.arange(int(self.features.offsets[s]), int(self.features.offsets[s]) + n)
            mask[row, :n] = 1
            distances[row, :n, :n] = torch.as_tensor(self.distances[s])
            depths[row, :n] = torch.as_tensor(self.depths[s])
        x = self.features.layers[:, index.reshape(-1)].reshape(self.features.layers.shape[0], len(sentences),
                                                                width, -1)
        return x, mask, distances, depths


def _predict(b: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distances ``[L, b, n, n]`` and squared norms ``[L, b, n]`` of the projected words."""
    t = x @ b.unsqueeze(1)  # [L, b, n, rank] (matmul: einsum is several times slower on CPU here)
    norms = (t * t).sum(-1)
    distances = norms.unsqueeze(-1) + norms.unsqueeze(-2) - 2 * t @ t.transpose(-1, -2)
    return distances.clamp(min=0), norms


def fit_structural(probe: StructuralProbe, train: TreeBank, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train the distance and depth probes of every layer: ``B_distance``, ``B_depth`` ``[n_layers, hidden, rank]``."""
    n_layers, _, hidden = train.features.layers.shape
    generator = torch.Generator().manual_seed(derive_seed("structural", seed))
    params = [((torch.rand((n_layers, hidden, probe.rank), generator=generator) * 2 - 1) * 0.05).requires_grad_(True)
              for _ in range(2)]
    optimizer = torch.optim.Adam(params, lr=probe.lr)
    rng = np.random.default_rng(derive_seed("structural-order", seed))
    n = len(train.heads)
    for _ in range(probe.epochs):
        order = rng.permutation(n)
        for start in range(0, n, probe.batch_size):
            x, mask, gold_distances, gold_depths = train.padded(order[start:start + probe.batch_size])
            lengths = mask.sum(dim=1)
            pair_mask = mask.unsqueeze(-1) * mask.unsqueeze(-2)
            distances, _ = _predict(params[0], x)
            _, depths = _predict(params[1], x)
            distance_loss = ((distances - gold_distances).abs() * pair_mask).sum((-1, -2)) / lengths ** 2
            depth_loss = ((depths - gold_depths).abs() * mask).sum(-1) / lengths
            loss = distance_loss.mean(dim=1).sum() + depth_loss.mean(dim=1).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return params[0].detach(), params[1].detach()


def evaluate_structural(b_distance: torch.Tensor, b_depth: torch.Tensor, bank: TreeBank, layers: list[int],
                        group: str, batch_size: int = 64) -> list[LayerCurve]:
    """UUAS, distance Spearman, root accuracy and depth Spearman of every layer on ``bank``."""
    n_layers = len(layers)
    uuas_stats, root_stats = [], []
    distance_rho: dict[int, list[np.ndarray]] = defaultdict(list)
    depth_rho: dict[int, list[np.ndarray]] = defaultdict(list)
    lengths = bank.features.lengths
    with torch.no_grad():
        for start in range(0, len(bank.heads), batch_size):
            batch = np.arange(start, min(start + batch_size, len(bank.heads)))
            x, _, _, _ = bank.padded(batch)
            distances = _predict(b_distance, x)[0].numpy()
            depths = _predict(b_depth, x)[1].numpy()
            for row, s in enumerate(batch):
                n = int(lengths[s])
                keep = np.asarray([tag != PUNCT for tag in bank.upos[s]])
                gold_d, gold_depth = bank.distances[s], bank.depths[s]
                gold_edges = spanning_edges(gold_d, keep)
                correct = [len(gold_edges & spanning_edges(distances[layer, row, :n, :n], keep))
                           for layer in range(n_layers)]
                uuas_stats.append(np.stack([correct, np.full(n_layers, len(gold_edges))], axis=-1))
                predicted = np.where(keep, depths[:, row, :n], np.inf).argmin(axis=-1)
                root = int(np.argmin(gold_depth))
                root_stats.append((predicted == root).astype(np.float64)[:, None])
                distance_rho[n].append(_row_spearman(distances[:, row, :n, :n], gold_d))  # [L, n] rows
                depth_rho[n].append(_row_spearman(depths[:, row, :n], gold_depth)[:, None])
    uuas = np.stack(uuas_stats, axis=1)  # [L, S, 2]
    roots = np.stack(root_stats, axis=1)  # [L, S, 1]
    with np.errstate(invalid="ignore"):
        uuas_values = uuas[..., 0].sum(1) / np.maximum(uuas[..., 1].sum(1), 1)
    return [
        LayerCurve("distance", "uuas", group, layers, uuas_values, uuas, "ratio"),
        LayerCurve("distance", "spearman", group, layers, length_averaged(_pooled(distance_rho), n_layers)),
        LayerCurve("depth", "root_acc", group, layers, roots[..., 0].mean(1), roots, "mean"),
        LayerCurve("depth", "spearman", group, layers, length_averaged(_pooled(depth_rho), n_layers)),
    ]


def _pooled(by_length: dict[int, list[np.ndarray]]) -> dict[int, np.ndarray]:
    """Correlations ``[n_layers, k]`` collected per sentence length → ``[all k, n_layers]`` per length."""
    return {n: np.concatenate(parts, axis=1).T for n, parts in by_length.items()}
