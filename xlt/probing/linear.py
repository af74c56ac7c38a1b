"""Classifier probes for every layer at once, control tasks and selectivity (Hewitt & Liang 2019).

A probe family (:class:`LinearProbe`, :class:`MLPProbe`) holds one probe per layer as stacked parameters
``[n_layers, ...]`` and trains them in one vectorised optimisation: the loss is the *sum* of the layers' mean
cross-entropies, so each layer's gradient is its own, and Adam's updates are elementwise — the batched run is the
per-layer loop run side by side (``fit_probes(..., batched=False)`` is that loop, same solver, same seeds).
Features are standardised per layer and dimension with the training set's statistics; probes only read features
(computed without gradients), so nothing flows back into the encoder.

Control task: each word *type* (its form, case kept) gets one label drawn from the training set's empirical
label distribution with a seed derived from the type, so a type has the same control label in every sentence,
split and language; selectivity = task accuracy − control accuracy, per layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from xlt.seeding import derive_seed


class ProbeFamily:
    """Per-layer classifier probes with stacked parameters; subclasses define parameters and logits."""

    def __init__(self, steps: int = 300, lr: float = 0.01, weight_decay: float = 0.0) -> None:
        """Training settings shared by the probe families.

        Args:
            steps: full-batch Adam steps.
            lr: Adam learning rate.
            weight_decay: L2 penalty on the weights (added to the loss, so it stays per layer).
        """
        self.steps, self.lr, self.weight_decay = int(steps), float(lr), float(weight_decay)

    def capacity(self) -> dict[str, object]:
        """What bounds the probe's capacity (logged as run parameters)."""
        raise NotImplementedError

    def init_params(self, hidden: int, n_classes: int, generator: torch.Generator) -> list[torch.Tensor]:
        """One layer's parameters."""
        raise NotImplementedError

    def logits(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``[n_layers, n, n_classes]`` from stacked ``params`` and features ``[n_layers, n, hidden]``."""
        raise NotImplementedError


def _init(shape: tuple[int, ...], fan_in: int, generator: torch.Generator) -> torch.Tensor:
    bound = 1.0 / fan_in ** 0.5
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


class LinearProbe(ProbeFamily):
    """A linear softmax classifier per layer; with ``rank``, its weight matrix is a product of rank ``rank``."""

    def __init__(self, rank: int | None = None, steps: int = 300, lr: float = 0.01, weight_decay: float = 0.0) -> None:
        """Linear probes.

        Args:
            rank: limit the ``hidden x classes`` weight to this rank (``W = U V``); ``None``: full rank.
            steps: full-batch Adam steps.
            lr: Adam learning rate.
            weight_decay: L2 penalty on the weights.
        """
        super().__init__(steps, lr, weight_decay)
        self.rank = None if rank is None else int(rank)

    def capacity(self) -> dict[str, object]:
        return {"kind": "linear", "rank": self.rank if self.rank is not None else "full"}

    def init_params(self, hidden: int, n_classes: int, generator: torch.Generator) -> list[torch.Tensor]:
        bias = torch.zeros(n_classes)
        if self.rank is None:
            return [_init((hidden, n_classes), hidden, generator), bias]
        return [_init((hidden, self.rank), hidden, generator), _init((self.rank, n_classes), self.rank, generator),
                bias]

    def logits(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        if self.rank is None:
            weight, bias = params
            return torch.bmm(x, weight) + bias.unsqueeze(1)
        u, v, bias = params
        return torch.bmm(torch.bmm(x, u), v) + bias.unsqueeze(1)


class MLPProbe(ProbeFamily):
    """One hidden ReLU layer per layer (Hewitt & Liang's MLP probe); the input projection has rank ``rank``."""

    def __init__(self, hidden: int = 64, rank: int | None = None, steps: int = 300, lr: float = 0.01,
                 weight_decay: float = 0.0) -> None:
        """MLP probes.

        Args:
            hidden: width of the hidden layer.
            rank: limit the input projection ``features x hidden`` to this rank; ``None``: full rank.
            steps: full-batch Adam steps.
            lr: Adam learning rate.
            weight_decay: L2 penalty on the weights.
        """
        super().__init__(steps, lr, weight_decay)
        self.hidden, self.rank = int(hidden), None if rank is None else int(rank)

    def capacity(self) -> dict[str, object]:
        return {"kind": "mlp", "hidden": self.hidden, "rank": self.rank if self.rank is not None else "full"}

    def init_params(self, hidden: int, n_classes: int, generator: torch.Generator) -> list[torch.Tensor]:
        if self.rank is None:
            project = [_init((hidden, self.hidden), hidden, generator)]
        else:
            project = [_init((hidden, self.rank), hidden, generator),
                       _init((self.rank, self.hidden), self.rank, generator)]
        return [*project, torch.zeros(self.hidden), _init((self.hidden, n_classes), self.hidden, generator),
                torch.zeros(n_classes)]

    def logits(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        *project, b1, w2, b2 = params
        h = x
        for weight in project:
            h = torch.bmm(h, weight)
        return torch.bmm(torch.relu(h + b1.unsqueeze(1)), w2) + b2.unsqueeze(1)


@dataclass
class FittedProbes:
    """Trained probes of every layer: the family, stacked parameters and the training features' statistics."""

    family: ProbeFamily
    params: list[torch.Tensor]
    mean: torch.Tensor
    std: torch.Tensor

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted classes ``[n_layers, n]`` for features ``[n_layers, n, hidden]``."""
        with torch.no_grad():
            return self.family.logits(self.params, (x - self.mean) / self.std).argmax(dim=-1)


def _train(family: ProbeFamily, x: torch.Tensor, y: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    params = [p.clone().requires_grad_(True) for p in params]
    optimizer = torch.optim.Adam(params, lr=family.lr)
    targets = y.expand(x.shape[0], -1).reshape(-1)
    for _ in range(family.steps):
        optimizer.zero_grad(set_to_none=True)
        logits = family.logits(params, x)
        per_layer = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets, reduction="none")
        loss = per_layer.view(x.shape[0], -1).mean(dim=1).sum()  # a sum of layers: each gradient stays its own
        if family.weight_decay:
            loss = loss + family.weight_decay * sum((p ** 2).sum() for p in params if p.dim() > 1)
        loss.backward()
        optimizer.step()
    return [p.detach() for p in params]


def fit_probes(family: ProbeFamily, x: torch.Tensor, y: torch.Tensor | np.ndarray, n_classes: int, seed: int,
               batched: bool = True) -> FittedProbes:
    """Train one probe per layer on features ``x`` ``[n_layers, n, hidden]`` and labels ``y`` ``[n]``.

    Args:
        family: the probe family (capacity and optimiser settings).
        x: training features of every layer.
        y: class ids in ``0 .. n_classes - 1``.
        n_classes: number of classes.
        seed: seed of the initialisation (layer ``i`` is initialised from ``derive_seed("probe", seed, i)``).
        batched: train all layers in one optimisation (default), or loop over layers (the same result; the
            baseline of ``benchmarks/probing_overhead.py``).
    """
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    mean = x.mean(dim=1, keepdim=True)
    std = x.std(dim=1, keepdim=True).clamp(min=1e-6)
    z = (x - mean) / std
    per_layer = []
    for layer in range(x.shape[0]):
        generator = torch.Generator().manual_seed(derive_seed("probe", seed, layer))
        per_layer.append(family.init_params(x.shape[-1], n_classes, generator))
    if batched:
        params = _train(family, z, y, [torch.stack(parts) for parts in zip(*per_layer, strict=True)])
    else:
        trained = [_train(family, z[layer:layer + 1], y, [p.unsqueeze(0) for p in per_layer[layer]])
                   for layer in range(x.shape[0])]
        params = [torch.cat(parts) for parts in zip(*trained, strict=True)]
    return FittedProbes(family, params, mean, std)


def control_labels(words: Sequence[str], distribution: np.ndarray, seed: int) -> np.ndarray:
    """Hewitt & Liang's control task: word type ``w`` gets one label drawn from ``distribution`` with the seed
    ``derive_seed("control", seed, w)`` — fixed per type, independent of the other words."""
    cumulative = np.cumsum(distribution / distribution.sum())
    cache: dict[str, int] = {}
    out = np.empty(len(words), dtype=np.int64)
    for i, word in enumerate(words):
        if word not in cache:
            draw = np.random.default_rng(derive_seed("control", seed, word)).random()
            cache[word] = int(min(np.searchsorted(cumulative, draw, side="right"), len(cumulative) - 1))
        out[i] = cache[word]
    return out


def label_distribution(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The empirical label distribution of the training labels."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return counts / counts.sum()


def sentence_correct(predictions: torch.Tensor, labels: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``[n_layers, n_sentences, 2]``: correct words and words of each sentence (statistic ``ratio``)."""
    correct = (predictions == torch.as_tensor(labels).unsqueeze(0)).double().numpy()
    sums = np.add.reduceat(correct, offsets[:-1], axis=1) if len(offsets) > 1 else np.zeros((correct.shape[0], 0))
    totals = np.broadcast_to(np.diff(offsets).astype(np.float64), sums.shape)
    return np.stack([sums, totals], axis=-1)
