"""The :class:`Report` of ``xlt report`` and its rendering: Table 2 and the per-language tables as Markdown, CSV
and PNG, from its seed-aggregated cells (:class:`Cell`).

A report is built from MLflow runs by :func:`xlt.evaluation.report_runs.collect` and written to disk by
:func:`xlt.evaluation.report.report`; this module only turns one into text and figures.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from xlt.datamodules.tasks import TASKS
from xlt.evaluation import markdown
from xlt.evaluation.plots import save_png
from xlt.evaluation.transfer_report import RowInfo
from xlt.languages import BUCKETS

_CSV_FIELDS = ("label", "task", "metric", "group", "mean", "std", "n_seeds", "ci_low", "ci_high", "run_ids")


@dataclass(frozen=True)
class Cell:
    """A score aggregated over the seeds of one label + task (fractions).

    Attributes:
        mean: mean over seeds.
        std: sample standard deviation (ddof=1), ``None`` for a single seed.
        n_seeds: number of runs aggregated.
        ci_low: mean of the runs' lower CI bounds, ``None`` unless every run has a CI.
        ci_high: mean of the runs' upper CI bounds.
        run_ids: the aggregated runs, in seed order.
    """

    mean: float
    std: float | None
    n_seeds: int
    ci_low: float | None
    ci_high: float | None
    run_ids: tuple[str, ...]

    def format(self, digits: int = 1) -> str:
        """``72.4 ± 0.8 [70.1, 74.6]`` (percent); the ``±`` part only for several seeds, brackets only with a CI."""
        text = _pct(self.mean, digits)
        if self.std is not None:
            text += f" ± {_pct(self.std, digits)}"
        if self.ci_low is not None and self.ci_high is not None:
            text += f" [{_pct(self.ci_low, digits)}, {_pct(self.ci_high, digits)}]"
        return text


@dataclass
class Report:
    """Table 2 and the per-language tables of one experiment.

    Attributes:
        experiment: MLflow experiment name.
        stage: metric stage (``test``).
        labels: rows, in order (each base label followed by its few-shot rows by increasing k).
        tasks: columns, in order.
        metrics: task -> primary metric.
        cells: ``(label, task, metric, group)`` -> :class:`Cell`, for the primary and extra metrics.
        notes: lines shown under the table (duplicates dropped, metric choices).
        rows: ``(label, task)`` -> what the row was trained on for that task (model, training languages,
            few-shot k, panel).
        protocols: ``(label, task)`` -> the row's scoring protocol as shown under the tables (QA's answer
            normalisation, e.g. ``squad_v1 (official SQuAD v1.1 script, ...)``), for tasks that record one.
        language_labels: language code -> how the per-language tables name it (:meth:`~xlt.languages.Panel.label`
            of the runs' panels, ``yor Yoruba``); codes without one are shown bare. CSV files keep the codes.
    """

    experiment: str
    stage: str
    labels: list[str]
    tasks: list[str]
    metrics: dict[str, str]
    cells: dict[tuple[str, str, str, str], Cell]
    notes: list[str] = field(default_factory=list)
    rows: dict[tuple[str, str], RowInfo] = field(default_factory=dict)
    protocols: dict[tuple[str, str], str] = field(default_factory=dict)
    language_labels: dict[str, str] = field(default_factory=dict)

    def protocol_lines(self, tasks: Sequence[str] | None = None, labels: Iterable[str] | None = None) -> list[str]:
        """``QA normalisation, <label>: <protocol>.`` per row (of ``labels``, default all) and task (of ``tasks``,
        default all) that records a protocol."""
        wanted = self.tasks if tasks is None else tasks
        shown = set(self.labels if labels is None else labels)
        return [f"{_task_header(task)} normalisation, {markdown.escape(label)}: "
                f"{self.protocols[label, task]}."
                for task in wanted for label in self.labels if label in shown and (label, task) in self.protocols]

    def header(self, task: str) -> str:
        """Column header: ``XNLI``..., with the metric in parentheses when it is not the task's default."""
        name = _task_header(task)
        default = TASKS[task].primary_metric if task in TASKS else None
        return name if self.metrics[task] == default or default is None else f"{name} ({self.metrics[task]})"

    def cell(self, label: str, task: str, group: str = "macro", metric: str | None = None) -> Cell | None:
        """The aggregated cell of ``label`` × ``task`` for ``group`` (default: the task's primary metric)."""
        return self.cells.get((label, task, metric or self.metrics[task], group))

    def average(self, label: str) -> float | None:
        """Mean over tasks of the row's macro means, ``None`` unless the row has every task."""
        cells = [self.cell(label, task) for task in self.tasks]
        if not cells or any(c is None for c in cells):
            return None
        return float(np.mean([c.mean for c in cells]))

    def languages(self, task: str) -> list[str]:
        """Language codes of the task's primary metric found in any row, sorted."""
        metric = self.metrics[task]
        return sorted({g for (_, t, m, g) in self.cells if t == task and m == metric and _group_kind(g) == "language"})

    def to_markdown(self) -> str:
        """Table 2 as Markdown: one row per label, one column per task, ``Avg`` with two tasks or more."""
        header = ["Model", *(self.header(t) for t in self.tasks)]
        with_avg = len(self.tasks) > 1
        if with_avg:
            header.append("Avg")
        rows = []
        for label in self.labels:
            row = [markdown.escape(label), *(_fmt(self.cell(label, t)) for t in self.tasks)]
            if with_avg:
                avg = self.average(label)
                row.append("–" if avg is None else _pct(avg))
            rows.append(row)
        metrics = ", ".join(f"{_task_header(t)} {self.metrics[t]}" for t in self.tasks)
        legend = (f"Macro average over languages (%) of: {metrics}. Cells: mean ± sample std over seeds "
                  "[mean of the seeds' CI bounds]" + ("; Avg: mean over tasks, for rows that have every task."
                                                      if with_avg else "."))
        lines = [f"**Table 2** — experiment `{self.experiment}`, stage `{self.stage}`", "",
                 *markdown.table(header, rows), "", legend]
        lines += [f"Note: {note}" for note in self.notes]
        lines += [part for line in self.protocol_lines() for part in ("", line)]  # one paragraph each
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """Long format: label, task, metric, group, mean, std, n_seeds, ci_low, ci_high, run_ids (fractions)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_CSV_FIELDS)
        order = {(label, task): i for i, (label, task) in enumerate((lb, t) for lb in self.labels for t in self.tasks)}
        for key in sorted(self.cells, key=lambda k: (order[k[0], k[1]], k[2] != self.metrics[k[1]], k[2],
                                                        _group_key(k[3]))):
            c = self.cells[key]
            writer.writerow([*key, repr(c.mean), _num(c.std), c.n_seeds, _num(c.ci_low), _num(c.ci_high),
                             " ".join(c.run_ids)])
        return buffer.getvalue()

    def language_rows(self, task: str) -> tuple[list[str], list[list[str]]]:
        """Header and formatted rows of the per-language table of ``task`` (labels that ran the task)."""
        groups = [*self.languages(task), "macro"]
        header = ["Model", *groups]
        rows = [[label, *(_fmt(self.cell(label, task, g)) for g in groups)] for label in self.labels
                if any(self.cell(label, task, g) is not None for g in groups)]
        return header, rows

    def language_markdown(self, task: str) -> str:
        """The per-language table of ``task`` as Markdown."""
        header, rows = self.language_rows(task)
        title = f"**{_task_header(task)}** ({self.metrics[task]}, %) by language — experiment " \
                f"`{self.experiment}`, stage `{self.stage}`"
        protocols = self.protocol_lines([task], [r[0] for r in rows])
        header = [header[0], *(markdown.escape(self.language_labels.get(g, g)) for g in header[1:])]
        table = markdown.table(header, [[markdown.escape(r[0]), *r[1:]] for r in rows])
        return "\n".join([title, "", *table, *(part for line in protocols for part in ("", line))]) + "\n"

    def language_csv(self, task: str) -> str:
        """The per-language table of ``task`` as CSV (cells formatted as in the Markdown table)."""
        header, rows = self.language_rows(task)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["label", *header[1:]])
        writer.writerows(rows)
        return buffer.getvalue()

    def plot(self, path: str | Path) -> Path:
        """Grouped bars: one group per task, one bar per label (macro mean, %), CI error bars where known."""
        n = max(len(self.labels), 1)
        width = 0.8 / n
        fig = Figure(figsize=(max(5.0, 1.2 * len(self.tasks) * max(1.0, n / 3) + 2), 3.8))
        ax = fig.add_subplot()
        x = np.arange(len(self.tasks))
        for i, label in enumerate(self.labels):
            cells = [self.cell(label, t) for t in self.tasks]
            heights = np.array([np.nan if c is None else c.mean * 100 for c in cells])
            err = np.array([[c.mean - c.ci_low, c.ci_high - c.mean] if c is not None and c.ci_low is not None
                            and c.ci_high is not None else [np.nan, np.nan] for c in cells]).T * 100
            offset = x - 0.4 + width * (i + 0.5)
            ax.bar(offset, heights, width, label=label)
            ax.errorbar(offset, heights, yerr=np.clip(err, 0, None), fmt="none", ecolor="black", elinewidth=0.8,
                        capsize=2)
        ax.set_xticks(x, labels=[self.header(t) for t in self.tasks])
        ax.set_ylabel("macro score (%)")
        ax.set_title(f"{self.experiment} ({self.stage})")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return save_png(fig, path)


def _task_header(task: str) -> str:
    """The task's Table 2 header (:attr:`~xlt.datamodules.task_spec.TaskSpec.header`), else its name."""
    return TASKS[task].header if task in TASKS else task


def _group_kind(group: str) -> str:
    if group in ("macro", "bottom_decile"):
        return group
    return group.split(".", 1)[0] if "." in group else "language"


def _group_key(group: str) -> tuple:
    kind = _group_kind(group)
    rank = ("language", "macro", "family", "script", "bucket", "bottom_decile")
    rank_of = rank.index(kind) if kind in rank else len(rank)
    name = group.split(".", 1)[1] if "." in group else group
    within = BUCKETS.index(name) if kind == "bucket" and name in BUCKETS else len(BUCKETS)
    return (rank_of, within, group)


def _pct(value: float, digits: int = 1) -> str:
    return f"{value * 100:.{digits}f}"


def _fmt(cell: Cell | None) -> str:
    return "–" if cell is None else cell.format()


def _num(value: float | None) -> str:
    return "" if value is None else repr(value)
