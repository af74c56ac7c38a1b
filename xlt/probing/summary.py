"""Layer curves and the peak-layer table: where each property peaks, with bootstrap CIs over sentences.

A :class:`LayerCurve` is one metric of one property for one group (a language, or a language pair) at every
probed layer, with the per-sentence statistics it was computed from when the metric decomposes over sentences
(accuracy, UUAS, root accuracy, P@1). The peak table resamples *sentences* (shared across layers, so the layers
stay paired) with :func:`xlt.evaluation.bootstrap.bootstrap_distribution`, takes each resample's best layer,
and reports the observed peak layer, its score's CI and the CI of the peak layer itself — the layer-localisation
claim as one table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xlt.evaluation.bootstrap import PerExample, Statistic, bootstrap_distribution, percentile_interval
from xlt.seeding import derive_seed

_SAFE = str.maketrans({c: "_" for c in "!\"#$%&'()*+,:;<=>?@[\\]^`{|}~"})


@dataclass
class LayerCurve:
    """One metric of one property for one group, at every probed layer.

    Attributes:
        property: what is probed (``upos``, ``deprel``, ``distance``, ``depth``, ``retrieval``, ``cka`` ...).
        metric: ``acc``, ``control_acc``, ``selectivity``, ``uuas``, ``spearman``, ``root_acc``, ``p1`` ...
        group: a language code or a pair ``<a>-<b>`` (``<target>-<source>`` for retrieval directions).
        layers: hidden-state indices (0 = embeddings).
        values: the metric at each layer, ``[n_layers]``.
        per_sentence: ``[n_layers, n_sentences, k]`` statistics behind ``values`` (``None`` when the metric does
            not decompose over sentences, e.g. length-averaged Spearman or CKA).
        statistic: how ``per_sentence`` columns give the metric (:mod:`xlt.evaluation.bootstrap`).
    """

    property: str
    metric: str
    group: str
    layers: list[int]
    values: np.ndarray
    per_sentence: np.ndarray | None = None
    statistic: Statistic = "mean"

    @property
    def name(self) -> str:
        """The MLflow metric name ``probe/<property>/<metric>/<group>`` (logged with step = layer index)."""
        return "/".join(part.translate(_SAFE) for part in ("probe", self.property, self.metric, self.group))


@dataclass(frozen=True)
class Peak:
    """Where one curve peaks: the layer, its score, and bootstrap CIs (``None`` without per-sentence data)."""

    curve: LayerCurve
    layer: int
    score: float
    score_low: float | None
    score_high: float | None
    layer_low: float | None
    layer_high: float | None


def peak(curve: LayerCurve, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> Peak:
    """The best layer of ``curve`` (ties: the lowest layer) with percentile bootstrap CIs over sentences."""
    best = int(np.nanargmax(curve.values))
    layer, score = curve.layers[best], float(curve.values[best])
    if curve.per_sentence is None or curve.per_sentence.shape[1] < 2:
        return Peak(curve, layer, score, None, None, None, None)
    stats = [PerExample(curve.per_sentence[i], curve.statistic) for i in range(len(curve.layers))]
    rng = np.random.default_rng(derive_seed("probe-peak", seed, curve.name))
    distribution = bootstrap_distribution(stats[0], n_boot, rng, paired_with=stats[1:])  # [n_layers, n_boot]
    low, high = percentile_interval(distribution[best], confidence)
    best_layers = np.asarray(curve.layers)[np.argmax(distribution, axis=0)]
    layer_low, layer_high = percentile_interval(best_layers.astype(np.float64), confidence)
    return Peak(curve, layer, score, low, high, layer_low, layer_high)


def peak_table(curves: list[LayerCurve], n_boot: int = 1000, seed: int = 0) -> list[Peak]:
    """The peak of every curve with a value, in the curves' order (a curve of NaNs, e.g. Spearman without a
    sentence of 5–50 words, has no peak)."""
    return [peak(curve, n_boot=n_boot, seed=seed) for curve in curves if np.isfinite(curve.values).any()]


def peak_markdown(peaks: list[Peak]) -> str:
    """The peak table as Markdown: property, metric, group, peak layer [CI], score [CI]."""
    lines = ["| property | metric | group | peak layer | layer 95% CI | score | score 95% CI |",
             "|---|---|---|---:|---|---:|---|"]
    for p in peaks:
        layer_ci = "" if p.layer_low is None else f"[{p.layer_low:g}, {p.layer_high:g}]"
        score_ci = "" if p.score_low is None else f"[{p.score_low:.3f}, {p.score_high:.3f}]"
        lines.append(f"| {p.curve.property} | {p.curve.metric} | {p.curve.group} | {p.layer} | {layer_ci} | "
                     f"{p.score:.3f} | {score_ci} |")
    return "\n".join(lines) + "\n"
