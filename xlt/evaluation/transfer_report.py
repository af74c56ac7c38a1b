"""Transfer views of a report: source × target matrices, % of supervised, few-shot gap recovered.

Derived from the seed-averaged per-language cells of a :class:`~xlt.evaluation.report_tables.Report` whose rows carry
their training languages and few-shot k (:class:`RowInfo`):

- **supervised reference** of target *t* for a model: the zero-shot row of that model trained on *t* alone, else
  the zero-shot row with the fewest training languages that include *t* (e.g. a run trained on every language);
- **% of supervised** of a row: its score on *t* / the supervised score of *t*, per language, and for macro /
  family / script / bucket the ratio of group means over targets outside the row's own training languages
  (:func:`~xlt.evaluation.disaggregation.relative_to_supervised`);
- **gap recovered** of a few-shot row: ``(few − zero) / (supervised − zero)`` against the zero-shot row with the
  same training languages (:func:`~xlt.evaluation.disaggregation.gap_recovered`);
- **transfer matrix** of a model × task when it was fine-tuned on two single source languages or more, with the
  correlation of its off-diagonal cells with typological distance when the runs' panel can be loaded
  (:func:`~xlt.evaluation.transfer.transfer_distance_correlation`); when panel distances stand in for URIEL,
  the line says so and names the languages lang2vec does not know.

Groups (family, script, bucket) need the panel named by the runs' ``xlt.panel`` tag; without it only languages
and ``macro`` are derived.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from xlt.errors import XltError
from xlt.evaluation import markdown
from xlt.evaluation.disaggregation import gap_recovered, group_ratio, relative_to_supervised, sanitize_group
from xlt.evaluation.transfer import TransferCorrelation, TransferMatrix, transfer_distance_correlation
from xlt.languages import BUCKETS, Panel, load_panel


class _Cell(Protocol):
    mean: float


class AggregatedScores(Protocol):
    """What the transfer views read of a :class:`~xlt.evaluation.report_tables.Report` (a protocol, so this module does
    not import the report that renders it)."""

    labels: list[str]
    tasks: list[str]
    metrics: dict[str, str]

    def languages(self, task: str) -> list[str]: ...

    def cell(self, label: str, task: str, group: str = "macro", metric: str | None = None) -> _Cell | None: ...

QUANTITIES = {"of_supervised": "% of supervised", "gap_recovered": "gap recovered (%)"}
"""Derived quantities (``transfer.csv``'s ``quantity`` column) and their titles in ``transfer.md``."""


@dataclass(frozen=True)
class RowInfo:
    """What a report row was trained on.

    Attributes:
        model: the row's model label without training-language or few-shot suffixes.
        sources: training languages (tag ``xlt.train_languages``), empty when unknown.
        few_shot: few-shot examples per target language (0 = zero-shot).
        panel: the runs' panel (tag ``xlt.panel``), ``None`` when unknown.
    """

    model: str
    sources: tuple[str, ...]
    few_shot: int = 0
    panel: str | None = None


@dataclass
class TransferTables:
    """The transfer views of a report (fractions).

    Attributes:
        derived: ``(label, task, quantity)`` -> group -> value, quantity in :data:`QUANTITIES`.
        matrices: ``(model, task)`` -> transfer matrix (single-source zero-shot rows × languages).
        correlations: ``(model, task)`` -> correlation of the matrix with typological distance.
        notes: why something could not be derived.
        labels: language code -> how tables and plots name it (:meth:`~xlt.languages.Panel.label` of the runs'
            panels, ``yor Yoruba``); codes without one are shown bare. CSV files keep the codes.
    """

    derived: dict[tuple[str, str, str], dict[str, float]] = field(default_factory=dict)
    matrices: dict[tuple[str, str], TransferMatrix] = field(default_factory=dict)
    correlations: dict[tuple[str, str], TransferCorrelation] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.derived or self.matrices)

    def to_csv(self) -> str:
        """Long format: label, task, quantity, group, value (fractions at full precision)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["label", "task", "quantity", "group", "value"])
        for (label, task, quantity), groups in self.derived.items():
            for group, value in groups.items():
                writer.writerow([label, task, quantity, group, repr(value)])
        return buffer.getvalue()

    def to_markdown(self, experiment: str, tasks: Sequence[str], metrics: Mapping[str, str]) -> str:
        """Per task: % of supervised and gap recovered by language, the transfer matrices and correlations."""
        lines = [f"**Transfer** — experiment `{experiment}`", ""]
        for task in tasks:
            for quantity, title in QUANTITIES.items():
                rows = {label: groups for (label, t, q), groups in self.derived.items() if t == task and q == quantity}
                if not rows:
                    continue
                groups = list(dict.fromkeys(g for values in rows.values() for g in values))
                languages = [g for g in groups if "." not in g and g != "macro"]
                header = ["Model", *languages, "macro", *sorted((g for g in groups if "." in g), key=_group_order)]
                cells = [[markdown.escape(label), *("–" if g not in values else f"{100 * values[g]:.1f}"
                                                    for g in header[1:])] for label, values in rows.items()]
                shown = [header[0], *(markdown.escape(self.labels.get(g, g)) for g in header[1:])]
                lines += [f"*{task}* ({metrics.get(task, '')}): {title}", "", *markdown.table(shown, cells), ""]
            for (model, t), matrix in self.matrices.items():
                if t != task:
                    continue
                lines += [f"*{task}* ({matrix.metric}, %): transfer matrix of `{model}` (rows: source language)", "",
                          matrix.to_markdown(labels=self.labels).rstrip("\n"), ""]
                corr = self.correlations.get((model, t))
                if corr is not None:
                    lines += [corr.describe(), ""]
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines).rstrip("\n") + "\n"

    def write(self, out: Path, experiment: str, tasks: Sequence[str], metrics: Mapping[str, str]) -> None:
        """Write ``transfer.md`` / ``transfer.csv`` and, per matrix, ``transfer_<task>_<model>.{csv,png}`` plus
        ``distance_<task>_<model>.png`` where a correlation exists (into an atomic report directory)."""
        (out / "transfer.md").write_text(self.to_markdown(experiment, tasks, metrics), encoding="utf-8")
        (out / "transfer.csv").write_text(self.to_csv(), encoding="utf-8")
        for (model, task), matrix in self.matrices.items():
            stem = f"{sanitize_group(task)}_{sanitize_group(model).replace(' ', '_')}"
            (out / f"transfer_{stem}.csv").write_text(matrix.to_csv(), encoding="utf-8")
            matrix.heatmap(out / f"transfer_{stem}.png", title=f"{model}: {task} {matrix.metric} (%)",
                           labels=self.labels)
            corr = self.correlations.get((model, task))
            if corr is not None and corr.pairs:
                corr.plot(out / f"distance_{stem}.png", title=f"{model}: {task}, {corr.summary}")


def transfer_tables(report: AggregatedScores, rows: Mapping[tuple[str, str], RowInfo]) -> TransferTables:
    """Derive % of supervised, gap recovered and transfer matrices from ``report`` (see the module docstring).

    Args:
        report: the aggregated report.
        rows: ``(label, task)`` -> :class:`RowInfo` for every row and task of the report.
    """
    tables = TransferTables()
    panels: dict[str, Panel | None] = {}
    for task in report.tasks:
        languages = report.languages(task)
        task_rows = {label: info for (label, t), info in rows.items() if t == task}
        scores = {label: {c: cell.mean for c in languages if (cell := report.cell(label, task, c)) is not None}
                  for label in report.labels if label in task_rows}
        by_model: dict[str, list[str]] = {}
        for label in scores:
            if scores[label] and task_rows[label].sources:
                by_model.setdefault(task_rows[label].model, []).append(label)
        for model, labels in by_model.items():
            panel = _panel(task_rows[labels[0]].panel, panels, tables.notes)
            if panel is not None:
                tables.labels = panel.labels() | tables.labels  # the first panel that names a code wins
            zero = [lb for lb in labels if task_rows[lb].few_shot == 0]
            supervised = _supervised(zero, task_rows, scores, languages)
            for label in labels:
                info = task_rows[label]
                if any(t not in info.sources for t in supervised):
                    values = _ratios(scores[label], supervised, panel, info.sources)
                    if values:
                        tables.derived[label, task, "of_supervised"] = values
                if info.few_shot:
                    base = next((lb for lb in zero if task_rows[lb].sources == info.sources), None)
                    if base is not None and supervised:
                        values = _ratios(scores[label], supervised, panel, info.sources, baseline=scores[base])
                        if values:
                            tables.derived[label, task, "gap_recovered"] = values
            single = {task_rows[lb].sources[0]: scores[lb] for lb in zero if len(task_rows[lb].sources) == 1}
            if len(single) >= 2:
                order = panel.codes if panel is not None else sorted(languages)
                position = {c: i for i, c in enumerate(order)}
                sources = sorted(single, key=lambda c: (position.get(c, len(order)), c))
                matrix = TransferMatrix.from_scores({s: single[s] for s in sources}, task=task,
                                                    metric=report.metrics[task],
                                                    targets=[c for c in order if c in languages])
                tables.matrices[model, task] = matrix
                if panel is not None:
                    try:
                        tables.correlations[model, task] = transfer_distance_correlation(matrix, panel)
                    except XltError as exc:
                        tables.notes.append(f"{model} / {task}: no distance correlation ({exc}).")
    return tables


def _group_order(group: str) -> tuple[int, int, str]:
    """Family, script, then bucket groups (buckets from high to tail), alphabetically within a kind."""
    kind, _, name = group.partition(".")
    kinds = ("family", "script", "bucket")
    return (kinds.index(kind) if kind in kinds else len(kinds),
            BUCKETS.index(name) if kind == "bucket" and name in BUCKETS else 0, name)


def _supervised(zero: Sequence[str], rows: Mapping[str, RowInfo], scores: Mapping[str, Mapping[str, float]],
                languages: Sequence[str]) -> dict[str, float]:
    """Target -> score of its supervised reference row (trained on it alone, else on the fewest languages)."""
    out = {}
    for target in languages:
        trained = [lb for lb in zero if target in rows[lb].sources and target in scores[lb]]
        if trained:
            best = min(trained, key=lambda lb: (len(rows[lb].sources), lb))
            out[target] = scores[best][target]
    return out


def _ratios(values: Mapping[str, float], reference: Mapping[str, float], panel: Panel | None,
            sources: Sequence[str], baseline: Mapping[str, float] | None = None) -> dict[str, float]:
    """Per-language and group ratios (``gap_recovered`` when ``baseline`` is given), sources left out of groups."""
    codes = [c for c in values if c in reference and (baseline is None or c in baseline)]
    if panel is not None and all(c in panel for c in codes):
        ordered = {c: values[c] for c in panel.codes if c in codes}
        if baseline is None:
            return relative_to_supervised(ordered, reference, panel, exclude=sources)
        return gap_recovered(ordered, baseline, reference, panel, exclude=sources)
    out = {c: r for c in sorted(codes) if (r := group_ratio(values, reference, [c], baseline)) is not None}
    macro = group_ratio(values, reference, [c for c in codes if c not in sources], baseline)
    return out | ({"macro": macro} if macro is not None else {})


def _panel(name: str | None, cache: dict[str, Panel | None], notes: list[str]) -> Panel | None:
    if not name:
        return None
    if name not in cache:
        try:
            cache[name] = load_panel(name)
        except XltError as exc:
            cache[name] = None
            notes.append(f"panel {name!r} of the runs could not be loaded ({exc}); family/script/bucket groups and "
                         "distance correlations left out.")
    return cache[name]
