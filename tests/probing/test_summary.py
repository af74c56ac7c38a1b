"""The peak-layer table: the best layer, bootstrap CIs over sentences of its score and of the peak layer itself."""

from __future__ import annotations

import numpy as np

from xlt.probing.summary import LayerCurve, peak, peak_markdown, peak_table


def _curve(rates: list[float], n: int = 400, seed: int = 0) -> LayerCurve:
    """Per-sentence (correct, total) with 10 words per sentence, layer l correct with probability rates[l]."""
    rng = np.random.default_rng(seed)
    correct = np.stack([rng.binomial(10, r, n) for r in rates]).astype(np.float64)
    stats = np.stack([correct, np.full_like(correct, 10.0)], axis=-1)
    return LayerCurve("upos", "acc", "deu", list(range(len(rates))), correct.sum(1) / (10 * n), stats, "ratio")


def test_a_clear_peak_has_a_one_layer_interval_and_a_ci_around_its_score() -> None:
    result = peak(_curve([0.3, 0.5, 0.9, 0.6]), n_boot=300)
    assert result.layer == 2 and (result.layer_low, result.layer_high) == (2, 2)
    assert result.score_low < result.score < result.score_high and result.score_high - result.score_low < 0.03


def test_two_equally_good_layers_give_an_interval_spanning_both() -> None:
    result = peak(_curve([0.2, 0.7, 0.7, 0.3]), n_boot=300)
    assert result.layer in (1, 2) and (result.layer_low, result.layer_high) == (1, 2)


def test_a_curve_without_per_sentence_statistics_has_its_peak_but_no_intervals() -> None:
    curve = LayerCurve("similarity", "cka", "deu-eng", [0, 1, 2], np.array([0.2, np.nan, 0.4]))
    result = peak(curve)
    assert (result.layer, result.score, result.layer_low, result.score_low) == (2, 0.4, None, None)
    assert curve.name == "probe/similarity/cka/deu-eng"
    assert "| similarity | cka | deu-eng | 2 |  | 0.400 |  |" in peak_markdown([result])


def test_the_table_leaves_out_curves_without_any_value() -> None:
    empty = LayerCurve("depth", "spearman", "yor", [0, 1], np.array([np.nan, np.nan]))
    assert [p.curve.group for p in peak_table([empty, _curve([0.1, 0.9])], n_boot=50)] == ["deu"]
