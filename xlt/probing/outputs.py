"""What a probing round leaves behind: CSV/Markdown tables, PNG plots and MLflow metrics.

``xlt probe`` logs every curve as ``probe/<property>/<metric>/<group>`` with step = layer index. During
pretraining the MLflow step is the training step, so the callback logs each layer as its own series,
``probe/<property>/<metric>/<group>/layer<k>``, and the peak layer as ``…/<group>/peak_layer``: curves over
training steps for every layer, which show where a property emerges.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from xlt.atomic import atomic_file
from xlt.evaluation.plots import plot_heatmap, save_png
from xlt.probing.analysis import ProbingRound
from xlt.probing.summary import LayerCurve, Peak, peak_markdown

_BATCH = 1000


def _write(path: Path, text: str) -> Path:
    with atomic_file(path) as handle:
        handle.write(text)
    return path


def curves_csv(curves: list[LayerCurve]) -> str:
    """Long format: property, metric, group, layer, value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["property", "metric", "group", "layer", "value"])
    for c in curves:
        writer.writerows([c.property, c.metric, c.group, layer, repr(float(v))] for layer, v in zip(c.layers, c.values,
                                                                                                  strict=True))
    return out.getvalue()


def peaks_csv(peaks: list[Peak]) -> str:
    """The peak table in long format (CI bounds empty where the metric has no per-sentence statistics)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["property", "metric", "group", "peak_layer", "layer_ci_low", "layer_ci_high", "score",
                     "score_ci_low", "score_ci_high"])
    for p in peaks:
        writer.writerow([p.curve.property, p.curve.metric, p.curve.group, p.layer, p.layer_low, p.layer_high,
                         p.score, p.score_low, p.score_high])
    return out.getvalue()


def curve_figure(curves: list[LayerCurve], title: str) -> Figure:
    """One line per group over layers."""
    fig = Figure(figsize=(6.5, 4.0))
    ax = fig.add_subplot()
    for c in curves:
        ax.plot(c.layers, c.values, marker="o", label=c.group)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel(title.split("/")[-1])
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    return fig


def write_round(result: ProbingRound, peaks: list[Peak], directory: Path) -> list[Path]:
    """Tables and plots of a round into ``directory`` (each file written atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [_write(directory / "curves.csv", curves_csv(result.curves)),
             _write(directory / "peaks.md", peak_markdown(peaks)),
             _write(directory / "peaks.csv", peaks_csv(peaks)),
             _write(directory / "round.json", json.dumps({"skipped": result.skipped, "seconds": result.seconds},
                                                         indent=2) + "\n")]
    groups: dict[tuple[str, str], list[LayerCurve]] = {}
    for c in result.curves:
        groups.setdefault((c.property, c.metric), []).append(c)
    for (prop, metric), curves in groups.items():
        paths.append(save_png(curve_figure(curves, f"{prop}/{metric}"), directory / f"{prop}_{metric}.png"))
    for code, entropy in result.entropy.items():
        rows = [[layer + 1, *map(float, entropy[layer])] for layer in range(len(entropy))]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([["layer", *(f"head{h}" for h in range(entropy.shape[1]))],
                                                        *rows])
        paths.append(_write(directory / f"attention_entropy_{code}.csv", out.getvalue()))
    if result.similarity_matrix is not None:
        languages = result.similarity_languages
        for i, matrix in enumerate(result.similarity_matrix):
            paths.append(plot_heatmap(matrix, languages, languages, directory / f"cka_matrix_layer{i}.png",
                                      title=f"linear CKA, hidden state {i}", scale=1.0, annotate=len(languages) <= 12))
    return paths


def _log(client: MlflowClient, run_id: str, entries: list[Metric]) -> None:
    for start in range(0, len(entries), _BATCH):
        client.log_batch(run_id, metrics=entries[start:start + _BATCH])


def log_curves(client: MlflowClient, run_id: str, result: ProbingRound) -> int:
    """Every curve with step = layer index, and the skipped-sentence counts; returns the number of values."""
    now = int(time.time() * 1000)
    entries = [Metric(c.name, float(v), now, int(layer)) for c in result.curves
               for layer, v in zip(c.layers, c.values, strict=True) if math.isfinite(float(v))]
    entries += [Metric(f"probe/skipped/{key}", float(n), now, 0) for key, n in result.skipped.items()]
    _log(client, run_id, entries)
    return len(entries)


def step_metrics(result: ProbingRound) -> dict[str, float]:
    """The callback's view of a round: each layer of each curve and its peak layer, as values to log at the
    training step (series ``probe/<property>/<metric>/<group>/layer<k>`` and ``…/peak_layer``), and the round's
    seconds (``probe/seconds/<part>``)."""
    metrics: dict[str, float] = {}
    for c in result.curves:
        metrics.update({f"{c.name}/layer{layer}": float(v) for layer, v in zip(c.layers, c.values, strict=True)
                        if math.isfinite(float(v))})
        if np.isfinite(c.values).any():
            metrics[f"{c.name}/peak_layer"] = float(c.layers[int(np.nanargmax(c.values))])
    metrics.update({f"probe/seconds/{k}": float(v) for k, v in result.seconds.items()})
    return metrics


def history_csv(history: list[tuple[int, ProbingRound]]) -> str:
    """The callback's rounds in long format: step, property, metric, group, layer, value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", "property", "metric", "group", "layer", "value"])
    for step, result in history:
        for c in result.curves:
            writer.writerows([step, c.property, c.metric, c.group, layer, repr(float(v))]
                             for layer, v in zip(c.layers, c.values, strict=True))
    return out.getvalue()


def emergence(history: list[tuple[int, ProbingRound]], name: str) -> tuple[list[int], list[int], np.ndarray]:
    """Steps, layers and the ``[steps, layers]`` values of the curve ``name`` over the rounds (NaN where a round
    lacks it): where a property emerges during training."""
    steps = [step for step, _ in history]
    rows = [{c.name: c for c in result.curves}.get(name) for _, result in history]
    layers = next((c.layers for c in rows if c is not None), [])
    matrix = np.full((len(steps), len(layers)), np.nan)
    for i, c in enumerate(rows):
        if c is not None:
            matrix[i] = c.values
    return steps, layers, matrix


def write_emergence(history: list[tuple[int, ProbingRound]], group: str, directory: Path) -> list[Path]:
    """A steps × layers heatmap (``emergence_<property>_<metric>.png``) of every curve of ``group``."""
    names = sorted({c.name for _, result in history for c in result.curves if c.group == group})
    paths = []
    for name in names:
        steps, layers, matrix = emergence(history, name)
        _, prop, metric, _ = name.split("/", 3)
        paths.append(plot_heatmap(matrix, [str(s) for s in steps], [str(layer) for layer in layers],
                                  directory / f"emergence_{prop}_{metric}.png", title=name, xlabel="layer",
                                  ylabel="training step", scale=1.0, annotate=matrix.size <= 60))
    return paths
