"""Percentile bootstrap confidence intervals and paired bootstrap tests, vectorised with numpy.

Every metric in :mod:`xlt.evaluation.metrics` can hand back its per-example statistics as a
:class:`PerExample`: a matrix ``values`` of shape ``[n_examples, k]`` plus the *statistic* that turns the
column means of (a resample of) those rows into the metric:

- ``mean``  (k = 1): the mean of a per-example score (accuracy of a sentence classifier, SQuAD F1, P@1);
- ``ratio`` (k = 2): ``sum(numerator) / sum(denominator)`` (token accuracy from per-sentence correct/total);
- ``f1``    (k = 3): ``2 tp / (2 tp + fp + fn)`` from per-sentence ``tp, fp, fn`` counts (micro entity F1).

A bootstrap resample draws ``n`` rows with replacement (the unit is the *example*: a sentence for tagging, so
tokens of one sentence are never split) and recomputes the statistic. ``n_boot`` resamples are drawn in chunks
as an index matrix, turned into per-example multiplicities (one ``bincount``) and applied to the statistics with
one matrix product, so the whole distribution costs a few vectorised numpy calls.

Random streams: a single evaluation uses ``numpy.random.default_rng(seed)``; per-language streams in macro
bootstraps are ``default_rng([seed, crc32(code)])`` so one language's resamples do not depend on which other
languages are in the panel, and two runs evaluated on the same examples get identical resamples (paired).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Statistic = Literal["mean", "ratio", "f1"]
_WIDTH = {"mean": 1, "ratio": 2, "f1": 3}
_CHUNK_ELEMENTS = 1 << 21  # resamples x examples per chunk: ~2M cells (~50 MiB of temporaries)


def _statistic(name: str, means: np.ndarray) -> np.ndarray:
    """Apply statistic ``name`` to column means ``[..., k]`` (scale-free, so means work as well as sums)."""
    if name == "mean":
        return means[..., 0]
    if name == "ratio":
        num, den = means[..., 0], means[..., 1]
        return np.divide(num, den, out=np.zeros_like(num), where=den != 0)
    if name == "f1":
        tp, fp, fn = means[..., 0], means[..., 1], means[..., 2]
        den = 2 * tp + fp + fn
        return np.divide(2 * tp, den, out=np.zeros_like(tp), where=den != 0)
    raise ValueError(f"unknown statistic {name!r}; use one of {sorted(_WIDTH)}")


@dataclass(frozen=True, eq=False)
class PerExample:
    """Per-example statistics of one evaluation (usually one language), resampled by the bootstrap.

    Attributes:
        values: float array ``[n_examples, k]`` (a 1-d array is read as ``k = 1``).
        statistic: how column means become the metric: ``mean``, ``ratio`` or ``f1`` (see module docstring).
    """

    values: np.ndarray
    statistic: Statistic = "mean"

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        if self.statistic not in _WIDTH:
            raise ValueError(f"unknown statistic {self.statistic!r}; use one of {sorted(_WIDTH)}")
        if values.ndim != 2 or values.shape[1] != _WIDTH[self.statistic]:
            raise ValueError(f"statistic {self.statistic!r} needs values of shape [n, {_WIDTH[self.statistic]}], "
                             f"got {values.shape}")
        object.__setattr__(self, "values", values)

    @classmethod
    def mean(cls, scores: Sequence[float] | np.ndarray) -> PerExample:
        """Per-example scores whose mean is the metric (0/1 correctness, SQuAD F1 per question)."""
        return cls(np.asarray(scores, dtype=np.float64).reshape(-1, 1), "mean")

    @classmethod
    def ratio(cls, numerator: Sequence[float] | np.ndarray, denominator: Sequence[float] | np.ndarray) -> PerExample:
        """Per-example numerator/denominator pairs; the metric is ``sum(num) / sum(den)``."""
        return cls(np.stack([np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)], axis=1),
                   "ratio")

    @classmethod
    def f1(cls, tp: Sequence[float] | np.ndarray, fp: Sequence[float] | np.ndarray,
           fn: Sequence[float] | np.ndarray) -> PerExample:
        """Per-example true positive, false positive and false negative counts; the metric is micro F1."""
        return cls(np.stack([np.asarray(a, np.float64) for a in (tp, fp, fn)], axis=1), "f1")

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def score(self) -> float:
        """The metric on all examples (no resampling)."""
        if not len(self):
            raise ValueError("no examples to score")
        return float(_statistic(self.statistic, self.values.mean(axis=0)))


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate with a percentile bootstrap interval.

    Attributes:
        estimate: the metric on the full sample.
        low: lower percentile bound.
        high: upper percentile bound.
        confidence: nominal coverage (0.95).
        n_boot: number of bootstrap resamples.
    """

    estimate: float
    low: float
    high: float
    confidence: float = 0.95
    n_boot: int = 1000

    @property
    def half_width(self) -> float:
        """Half the interval width (``± half_width`` in tables)."""
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class PairedComparison:
    """Result of a paired bootstrap of run ``a`` minus run ``b`` on the same examples.

    Attributes:
        difference: ``score(a) - score(b)`` on the full sample.
        low: lower percentile bound of the difference.
        high: upper percentile bound of the difference.
        p_value: two-sided bootstrap p-value of "no difference" (see :func:`paired_bootstrap`).
        confidence: nominal coverage of ``[low, high]``.
        n_boot: number of bootstrap resamples.
    """

    difference: float
    low: float
    high: float
    p_value: float
    confidence: float = 0.95
    n_boot: int = 1000

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero (equivalently ``p_value < 1 - confidence``, up to resampling)."""
        return self.low > 0 or self.high < 0


def _as_per_example(stats: PerExample | Sequence[float] | np.ndarray) -> PerExample:
    return stats if isinstance(stats, PerExample) else PerExample.mean(stats)


def language_rng(seed: int, code: str) -> np.random.Generator:
    """The random stream used to resample language ``code`` (independent of the other panel languages)."""
    return np.random.default_rng([int(seed), zlib.crc32(code.encode("utf-8"))])


def bootstrap_distribution(stats: PerExample | Sequence[float] | np.ndarray, n_boot: int = 1000,
                           rng: np.random.Generator | int | None = 0,
                           paired_with: Sequence[PerExample] = ()) -> np.ndarray:
    """The metric on ``n_boot`` resamples of the examples, shape ``[n_boot]``.

    Args:
        stats: per-example statistics (a plain array means per-example scores, statistic ``mean``).
        n_boot: number of resamples.
        rng: a numpy Generator or a seed.
        paired_with: more :class:`PerExample` on the *same* examples; each is resampled with the same indices
            and the result is then ``[1 + len(paired_with), n_boot]``.
    """
    stats = _as_per_example(stats)
    everything = [stats, *paired_with]
    n = len(stats)
    if n == 0:
        raise ValueError("cannot bootstrap an empty sample")
    if any(len(other) != n for other in paired_with):
        raise ValueError(f"paired samples differ in size: {[len(s) for s in everything]}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    out = np.empty((len(everything), n_boot), dtype=np.float64)
    for start in range(0, n_boot, chunk):
        b = min(n_boot, start + chunk) - start
        idx = rng.integers(0, n, size=(b, n))
        # multiplicity of each example in each resample, then one matrix product per statistic
        counts = np.bincount((np.arange(b)[:, None] * n + idx).ravel(), minlength=b * n).reshape(b, n)
        weights = counts.astype(np.float64) / n
        for row, s in enumerate(everything):
            out[row, start:start + b] = _statistic(s.statistic, weights @ s.values)
    return out if paired_with else out[0]


def percentile_interval(distribution: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The ``(1-confidence)/2`` and ``(1+confidence)/2`` percentiles of a bootstrap distribution."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(distribution, [alpha, 1 - alpha], axis=-1)
    return float(low), float(high)


def bootstrap_ci(stats: PerExample | Sequence[float] | np.ndarray, n_boot: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> ConfidenceInterval:
    """Percentile bootstrap CI of a metric computed from per-example statistics (seeded, vectorised).

    Args:
        stats: per-example statistics, or a 1-d array of per-example scores (CI of their mean).
        n_boot: number of resamples.
        confidence: nominal coverage, 0.95 for a 95% interval.
        seed: seed of the resampling stream.
    """
    stats = _as_per_example(stats)
    low, high = percentile_interval(bootstrap_distribution(stats, n_boot, seed), confidence)
    return ConfidenceInterval(stats.score(), low, high, confidence, n_boot)


def _paired_p_value(distribution: np.ndarray, observed: float) -> float:
    """Two-sided p-value of H0 "difference = 0": the bootstrap distribution re-centred on 0 (its shape estimates
    the null distribution) is compared with the observed difference: ``(1 + #{|d* - d| >= |d|}) / (B + 1)``."""
    extreme = np.abs(distribution - observed) >= abs(observed) - 1e-12
    return float((1 + extreme.sum()) / (distribution.size + 1))


def paired_bootstrap(a: PerExample | Sequence[float] | np.ndarray | Mapping[str, PerExample],
                     b: PerExample | Sequence[float] | np.ndarray | Mapping[str, PerExample],
                     n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> PairedComparison:
    """Paired bootstrap of ``score(a) - score(b)`` where ``a`` and ``b`` are two runs on the same examples.

    Both runs are resampled with the same indices, so per-example correlation between the runs is kept (much
    tighter than comparing two independent CIs). Given mappings ``language -> PerExample`` the difference is of
    macro averages over the common languages, each language resampled on its own stream (:func:`language_rng`).

    Args:
        a: per-example statistics of run a (or per-language mapping).
        b: per-example statistics of run b on the same examples in the same order.
        n_boot: number of resamples.
        confidence: coverage of the interval of the difference.
        seed: seed of the resampling stream(s).

    Returns:
        The difference, its percentile interval and the two-sided p-value
        ``(1 + #{|d* - d| >= |d|}) / (n_boot + 1)`` (bootstrap distribution shifted to the null).
    """
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            raise TypeError("paired_bootstrap: give two PerExample (or arrays) or two language mappings")
        codes = [c for c in a if c in b]
        if not codes:
            raise ValueError("paired_bootstrap: the two runs share no language")
        diffs = np.zeros(n_boot)
        observed = 0.0
        for code in codes:
            sa, sb = _as_per_example(a[code]), _as_per_example(b[code])
            dist = bootstrap_distribution(sa, n_boot, language_rng(seed, code), paired_with=[sb])
            diffs += dist[0] - dist[1]
            observed += sa.score() - sb.score()
        diffs /= len(codes)
        observed /= len(codes)
    else:
        sa, sb = _as_per_example(a), _as_per_example(b)
        dist = bootstrap_distribution(sa, n_boot, seed, paired_with=[sb])
        diffs = dist[0] - dist[1]
        observed = sa.score() - sb.score()
    low, high = percentile_interval(diffs, confidence)
    return PairedComparison(observed, low, high, _paired_p_value(diffs, observed), confidence, n_boot)
