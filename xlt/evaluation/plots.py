"""PNG plots for evaluation artifacts, drawn with matplotlib's object API (``Figure`` rendered by Agg; no pyplot,
so no global backend or figure state is touched) and written atomically (temporary sibling, then rename)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from xlt.atomic import atomic_file

if TYPE_CHECKING:
    from xlt.evaluation.disaggregation import EvaluationResult

BUCKET_COLOURS = {"high": "#1b9e77", "mid": "#7570b3", "low": "#d95f02", "tail": "#e7298a"}


def save_png(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically and return the path."""
    path = Path(path)
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
    return path


def plot_heatmap(values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], path: str | Path,
                 title: str = "", xlabel: str = "", ylabel: str = "", scale: float = 100.0, annotate: bool = True,
                 cmap: str = "viridis") -> Path:
    """Write :func:`heatmap_figure` (same arguments) as a PNG to ``path`` atomically and return the path."""
    return save_png(heatmap_figure(values, row_labels, col_labels, title, xlabel, ylabel, scale, annotate, cmap),
                    path)


def heatmap_figure(values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "",
                   xlabel: str = "", ylabel: str = "", scale: float = 100.0, annotate: bool = True,
                   cmap: str = "viridis") -> Figure:
    """A heatmap of ``values`` ``[rows, cols]`` (NaN cells blank), annotated with ``value * scale``.

    Args:
        values: the matrix (e.g. a transfer matrix, sources × targets).
        row_labels: one label per row.
        col_labels: one label per column.
        title: figure title.
        xlabel: x axis label.
        ylabel: y axis label.
        scale: multiplier for annotations (100 for percent).
        annotate: write each value in its cell.
        cmap: matplotlib colormap name.
    """
    values = np.asarray(values, dtype=float)
    if values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"plot_heatmap: values {values.shape} vs {len(row_labels)} x {len(col_labels)} labels")
    fig = Figure(figsize=(max(4.0, 0.55 * len(col_labels) + 2), max(3.0, 0.45 * len(row_labels) + 1.5)))
    ax = fig.add_subplot()
    masked = np.ma.masked_invalid(values * scale)
    image = ax.imshow(masked, cmap=cmap, aspect="auto")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(col_labels)), labels=list(col_labels), rotation=45, ha="right")
    ax.set_yticks(range(len(row_labels)), labels=list(row_labels))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if annotate and values.size <= 2500:
        finite = masked.compressed()
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if np.isfinite(values[i, j]):
                    v = values[i, j] * scale
                    ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
                            color="white" if v < middle else "black")
    return fig


def plot_language_scores(result: EvaluationResult, path: str | Path, buckets: dict[str, str] | None = None,
                         title: str | None = None) -> Path:
    """Write :func:`language_scores_figure` (same arguments) as a PNG to ``path`` atomically and return the path."""
    return save_png(language_scores_figure(result, buckets, title), path)


def language_scores_figure(result: EvaluationResult, buckets: dict[str, str] | None = None,
                           title: str | None = None) -> Figure:
    """Per-language bar chart with CI error bars, coloured by resource bucket, with the macro average as a line;
    bars are labelled with the panel's names (:meth:`~xlt.languages.Panel.label`, ``yor Yoruba``).

    Args:
        result: a disaggregated evaluation result.
        buckets: language -> bucket for colours (default: from the result's ``bucket.*`` groups).
        title: figure title (default ``stage/task/metric``).
    """
    rows = result.languages
    if buckets is None:
        buckets = {c: g.group.split(".", 1)[1] for g in result.groups.values() if g.kind == "bucket"
                   for c in g.languages}
    fig = Figure(figsize=(max(4.0, 0.35 * len(rows) + 2), 3.5))
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    scores = np.array([r.score for r in rows]) * 100
    colours = [BUCKET_COLOURS.get(buckets.get(r.group, ""), "#666666") for r in rows]
    ax.bar(x, scores, color=colours)
    if all(r.low is not None for r in rows) and rows:
        err = np.array([[r.score - r.low, r.high - r.score] for r in rows]).T * 100
        ax.errorbar(x, scores, yerr=np.clip(err, 0, None), fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    if "macro" in result.groups:
        ax.axhline(result.macro.score * 100, color="black", linestyle="--", linewidth=1, label="macro")
    for bucket, colour in BUCKET_COLOURS.items():
        if bucket in buckets.values():
            ax.bar([0], [0], color=colour, label=bucket)
    ax.legend(fontsize=7, ncols=5, loc="upper right")
    ax.set_xticks(x, labels=[result.label(r.group) for r in rows], rotation=90)
    ax.set_ylabel(f"{result.metric} (%)")
    ax.set_title(title or f"{result.stage}/{result.task}/{result.metric}")
    return fig


def plot_distance_scatter(distances: Sequence[float], scores: Sequence[float], method: str, title: str,
                          path: str | Path) -> Path:
    """Transfer score against typological distance, one point per (source, target) pair.

    Args:
        distances: distance of each pair.
        scores: transfer score of each pair (fraction; plotted in %).
        method: the distance (``uriel`` or ``panel``), for the x axis label.
        title: figure title (:meth:`~xlt.evaluation.transfer.TransferCorrelation.plot` puts r and ρ there).
        path: output PNG.
    """
    fig = Figure(figsize=(4.5, 3.5))
    ax = fig.add_subplot()
    ax.scatter(list(distances), [s * 100 for s in scores], s=14)
    ax.set_xlabel(f"typological distance ({method})")
    ax.set_ylabel("transfer score (%)")
    ax.set_title(title)
    return save_png(fig, path)
