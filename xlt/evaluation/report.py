"""``xlt report``: the paper's Table 2 (one row per model, one column per task) rendered from MLflow task runs.

A task run logs ``<stage>/<task>/<metric>/<group>`` metrics (group = language code, ``macro``, ``family.*``,
``script.*``, ``bucket.*``, ``bottom_decile``) with CI bounds ``<metric>_ci_low`` / ``_ci_high`` (see
:mod:`xlt.evaluation.mlflow_logging`) and tags ``xlt.task``, ``xlt.encoder``, ``xlt.few_shot``, ``xlt.seed`` plus the
logger's own tags (``model``, ``vocab``, ``recipe``...). The report

- labels each run by its ``label_tags`` (``quickstart / shared``), else its ``xlt.encoder`` tag, else its run
  name; few-shot runs get their own rows (``quickstart / shared (few-shot 10)``), and so do runs fine-tuned on
  other languages than the report's source languages (``quickstart / shared [train deu]``; tag
  ``xlt.train_languages``);
- keeps the latest run of each label + task + seed (seed from tag ``xlt.seed`` or param
  ``config.seed_everything``) and aggregates seeds: mean ± sample std (ddof=1) of the score, and the mean of the
  seeds' CI bounds: ``72.4 ± 0.8 [70.1, 74.6]`` (one seed: ``72.4 [70.1, 74.6]``; no CI: no brackets);
- names each QA row's answer normalisation (run tags ``xlt.qa_normalization`` / ``.note``: ``squad_v1``, the
  official SQuAD v1.1 script XTREME uses for XQuAD and TyDi QA GoldP, or ``mlqa``) in a line under Table 2 and
  the QA per-language table, so numbers are compared with published ones scored the same way;
- writes ``table2.md`` (Table 2: macro average of each task's primary metric, plus ``Avg`` over tasks for rows
  that have every task), ``table2.csv`` (long format, every group, fractions at full precision),
  ``table2.png`` (grouped bars with CI error bars) and ``languages_<task>.md`` / ``.csv`` (one row per label,
  one column per language plus ``macro``, cells formatted as in Table 2);
- adds the transfer views of :mod:`xlt.evaluation.transfer_report` (``transfer.md`` / ``.csv``: % of supervised,
  few-shot gap recovered; ``transfer_<task>_<model>.csv`` / ``.png``: source × target matrix;
  ``distance_<task>_<model>.png``) when runs of a model were fine-tuned on the targets themselves;
- logs the whole directory as the artifacts of a run named ``report`` (tag ``xlt.report = table2``) in the same
  experiment, so reports sit in MLflow next to the runs they summarise.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from mlflow.entities import Experiment, Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from xlt.atomic import atomic_dir, atomic_file
from xlt.datamodules.tasks import TASKS
from xlt.errors import XltError
from xlt.evaluation import markdown
from xlt.evaluation.disaggregation import sanitize_group
from xlt.evaluation.plots import save_png
from xlt.evaluation.transfer_report import RowInfo, transfer_tables
from xlt.languages import BUCKETS, load_panel

_METRIC_PREFERENCE = ("acc", "f1", "p1", "em")
_NOT_SCORES = ("_ci_low", "_ci_high", "_of_supervised", "_gap_recovered", "_distance_pearson", "_distance_spearman")
_OUTPUT = re.compile(r"^(table2\.(md|csv|png)|languages_.+\.(md|csv)|transfer(_.+)?\.(md|csv|png)|distance_.+\.png)$")
NORMALIZATION_TAGS = {name: (spec.protocol.tag, spec.protocol.note_tag) for name, spec in TASKS.items()
                      if spec.protocol is not None}
"""Per task, the run tags of its scoring protocol and of the note on it, as the task declares them
(:attr:`~xlt.datamodules.task_spec.TaskSpec.protocol`; QA: the answer normalisation and the languages scored by a
generic rule, written by :class:`~xlt.models.qa.SpanExtraction`)."""
REPORT_TAG = "xlt.report"
"""Tag of the MLflow run that holds a report's files (never read back as a task run)."""
_PAGE = 1000
_CSV_FIELDS = ("label", "task", "metric", "group", "mean", "std", "n_seeds", "ci_low", "ci_high", "run_ids")


@dataclass(frozen=True)
class Score:
    """One logged score of one run, with its CI bounds when the run logged them (fractions)."""

    value: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class TaskRun:
    """The scores of one MLflow run for one task.

    Attributes:
        run_id: MLflow run id.
        label: the report row (label tags, encoder or run name; few-shot suffix included; training languages are
            added by :func:`collect` when they are not the report's source languages).
        task: task name (second part of the metric names).
        seed: the run's seed as a string, ``None`` when the run records none.
        few_shot: few-shot examples per language (0 = zero-shot).
        start_time: run start in ms (the latest run of a label + task + seed wins).
        scores: metric -> group -> :class:`Score`.
        model: the label without suffixes.
        sources: training languages (tag ``xlt.train_languages``), empty when not recorded.
        panel: the run's panel (tag ``xlt.panel``).
        normalization: the task's answer normalisation (tag ``xlt.qa_normalization`` for QA), ``None`` when not
            recorded or not applicable.
        normalization_note: the run's note on languages scored with a generic rule (``xlt.qa_normalization.note``).
    """

    run_id: str
    label: str
    task: str
    seed: str | None
    few_shot: int
    start_time: int
    scores: dict[str, dict[str, Score]]
    model: str = ""
    sources: tuple[str, ...] = ()
    panel: str | None = None
    normalization: str | None = None
    normalization_note: str | None = None


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


def report(experiment: str = "quickstart", tracking_uri: str | None = None, filter: str = "", stage: str = "test",
           label_tags: Sequence[str] = ("model", "vocab"), out: str | None = None,
           metrics: dict[str, str] | None = None, tasks: list[str] | None = None,
           include_unfinished: bool = False, source_languages: list[str] | None = None,
           log_to_mlflow: bool = True) -> Path:
    """Render the paper's Table 2 (models × tasks) and per-language tables from an MLflow experiment's task runs.

    Each cell is a task's macro score in percent: mean ± sample std over seeds [mean of the seeds' CI bounds].
    Writes table2.md, table2.csv (long format, every group), table2.png and languages_<task>.md/.csv into
    ``out`` (replaced as a whole), plus transfer.md/.csv (% of supervised, few-shot gap recovered) and transfer
    matrices when some runs were fine-tuned on target languages; prints the Markdown table, logs the directory to
    MLflow as a ``report`` run and returns the output directory.

    Args:
        experiment: MLflow experiment holding the task runs.
        tracking_uri: MLflow store; ``None`` uses ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``.
        filter: MLflow search filter on the runs, e.g. ``tags.vocab = 'd'`` or ``params.config.seed_everything
            = '1'`` (clauses joined with AND).
        stage: metric stage to report (first part of ``<stage>/<task>/<metric>/<group>``).
        label_tags: run tags whose values, joined with " / ", name a row (fallback: tag ``xlt.encoder``, then
            the run name).
        out: output directory (default ``reports/<experiment>``); an existing one may hold only report files.
        metrics: task -> metric to report instead of the default (xnli/pawsx/udpos: acc, ner/qa: f1,
            retrieval: p1), e.g. ``{qa: em}``.
        tasks: columns to show, in this order (default: every task found, in Table 2 order).
        include_unfinished: also report runs that are not FINISHED (running, failed, killed).
        source_languages: the zero-shot source languages of Table 2's plain rows (default: the training languages
            most runs share, English on ties); runs fine-tuned on other languages get rows ``... [train xxx]``
            and serve as supervised references of the transfer views.
        log_to_mlflow: log the report directory as the artifacts of a run named ``report`` in the experiment.
    """
    built = collect(experiment, tracking_uri, filter, stage, label_tags, metrics, tasks, include_unfinished,
                    source_languages)
    target = Path(out) if out is not None else Path("reports") / sanitize_group(experiment)
    _check_output(target)
    table2 = built.to_markdown()
    transfer = transfer_tables(built, built.rows)
    with atomic_dir(target, overwrite=True) as tmp:
        _write(tmp / "table2.md", table2)
        _write(tmp / "table2.csv", built.to_csv())
        built.plot(tmp / "table2.png")
        for task in built.tasks:
            stem = f"languages_{sanitize_group(task)}"
            _write(tmp / f"{stem}.md", built.language_markdown(task))
            _write(tmp / f"{stem}.csv", built.language_csv(task))
        if transfer:
            transfer.write(tmp, experiment, built.tasks, built.metrics)
    print(table2, end="")
    if transfer:
        print(f"transfer views (% of supervised, gap recovered, matrices): {target / 'transfer.md'}")
    if log_to_mlflow:
        _log_report(experiment, tracking_uri, target, filter, stage)
    print(f"wrote {target} (table2.md/.csv/.png, languages_<task>.md/.csv)")
    return target


def _log_report(experiment: str, tracking_uri: str | None, target: Path, filter: str, stage: str) -> None:
    """Log the report directory as a ``report`` run of the experiment (tag :data:`REPORT_TAG`)."""
    client, _ = _client(tracking_uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    from xlt.mlflow_store import stage_run

    # inside an experiment stage: its tags and parent run; the report stays in the experiment it read
    _, tags = stage_run(experiment, {REPORT_TAG: "table2", "xlt.report.filter": filter, "xlt.report.stage": stage})
    run_id = client.create_run(experiment_id, run_name="report", tags=tags).info.run_id
    try:
        client.log_artifacts(run_id, str(target), artifact_path="report")
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)


def collect(experiment: str, tracking_uri: str | None = None, filter: str = "", stage: str = "test",
            label_tags: Sequence[str] = ("model", "vocab"), metrics: Mapping[str, str] | None = None,
            tasks: Sequence[str] | None = None, include_unfinished: bool = False,
            source_languages: Sequence[str] | None = None) -> Report:
    """Read the experiment's runs and aggregate them into a :class:`Report` (arguments as for :func:`report`)."""
    client, uri = _client(tracking_uri)
    found = _experiment(client, experiment, uri)
    runs = [r for r in _search(client, found.experiment_id, filter) if REPORT_TAG not in r.data.tags]
    if not include_unfinished:
        runs = [r for r in runs if r.info.status == "FINISHED"]
    task_runs = [tr for run in runs for tr in task_runs_of(run, stage, label_tags)]
    if not task_runs:
        where = f"experiment '{experiment}'" + (f" with filter {filter!r}" if filter else "")
        which = "runs" if include_unfinished else "FINISHED runs"
        raise XltError(f"no {which} of {where} have {stage}/<task>/<metric>/<group> metrics ({len(runs)} runs "
                       f"searched) — task runs log {stage}/<task>/... metrics (e.g. {stage}/xnli/acc/macro); "
                       "check the experiment, filter and stage")
    notes: list[str] = []
    task_runs = _label_sources(task_runs, source_languages)
    task_runs = _latest_per_seed(task_runs, notes)
    columns = _columns(task_runs, tasks, stage)
    chosen = _choose_metrics(task_runs, columns, dict(metrics or {}), stage, notes)
    cells = _aggregate([tr for tr in task_runs if tr.task in columns], chosen)
    labels = _label_order(tr for tr in task_runs if tr.task in columns)
    rows = {(tr.label, tr.task): RowInfo(tr.model, tr.sources, tr.few_shot, tr.panel) for tr in task_runs}
    protocols = _protocols([tr for tr in task_runs if tr.task in columns])
    return Report(experiment, stage, labels, columns, chosen, cells, notes, rows, protocols,
                  _language_labels(task_runs))


def _language_labels(task_runs: Sequence[TaskRun]) -> dict[str, str]:
    """Code -> :meth:`~xlt.languages.Panel.label` over the runs' panels that load (first panel wins on a code);
    a panel that does not load names nothing (the transfer views say why)."""
    labels: dict[str, str] = {}
    for name in dict.fromkeys(tr.panel for tr in task_runs if tr.panel):
        try:
            panel = load_panel(name)
        except XltError:
            continue
        labels = panel.labels() | labels
    return labels


def _protocols(task_runs: Sequence[TaskRun]) -> dict[tuple[str, str], str]:
    """``(label, task)`` -> the row's normalisation text, for tasks in :data:`NORMALIZATION_TAGS` (seeds that
    disagree are all named, with their run counts)."""
    by_row: dict[tuple[str, str], list[TaskRun]] = defaultdict(list)
    for tr in task_runs:
        if tr.task in NORMALIZATION_TAGS:
            by_row[tr.label, tr.task].append(tr)
    out = {}
    for key, runs in by_row.items():
        protocol = TASKS[key[1]].protocol
        counts = Counter((tr.normalization, tr.normalization_note) for tr in runs)
        texts = []
        for (normalization, note), n in sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))):
            if normalization is None:
                text = protocol.unrecorded
            else:
                rule = protocol.rules.get(normalization)
                text = f"{normalization} ({rule})" if rule else normalization
            if note:
                text += f"; {note}"
            texts.append(text if len(counts) == 1 else f"{text} [{n} run{'s' if n > 1 else ''}]")
        out[key] = texts[0] if len(texts) == 1 else "differs between seeds: " + " | ".join(texts)
    return out


def run_label(run: Run, label_tags: Sequence[str], few_shot_suffix: bool = True) -> str:
    """Row label of a run: its ``label_tags`` values joined with " / ", else tag ``xlt.encoder``, else its name;
    few-shot runs (tag ``xlt.few_shot`` > 0) get `` (few-shot k)`` unless ``few_shot_suffix`` is false."""
    tags = run.data.tags
    values = [str(tags[t]).strip() for t in label_tags if str(tags.get(t, "")).strip()]
    label = " / ".join(values) or tags.get("xlt.encoder", "").strip() or run.info.run_name or run.info.run_id
    return _row_label(label, _few_shot(tags) if few_shot_suffix else 0)


def _row_label(model: str, few_shot: int, sources: Sequence[str] = ()) -> str:
    """``model [train a+b] (few-shot k)``, each suffix only when it applies."""
    label = f"{model} [train {'+'.join(sources)}]" if sources else model
    return f"{label} (few-shot {few_shot})" if few_shot else label


def _label_sources(task_runs: list[TaskRun], source_languages: Sequence[str] | None) -> list[TaskRun]:
    """Add `` [train a+b]`` to the labels of runs fine-tuned on other languages than the report's sources."""
    known = [tr.sources for tr in task_runs if tr.sources]
    if not known:
        return task_runs
    if source_languages:
        default = tuple(source_languages)
    else:
        counts = Counter(known)
        default = min(counts, key=lambda s: (-counts[s], s != ("eng",), s))
    out = []
    for tr in task_runs:
        if tr.sources and tr.sources != default:
            tr = replace(tr, label=_row_label(tr.model, tr.few_shot, tr.sources))
        out.append(tr)
    return out


def task_runs_of(run: Run, stage: str, label_tags: Sequence[str]) -> list[TaskRun]:
    """One :class:`TaskRun` per task that ``run`` logged ``<stage>/<task>/<metric>/<group>`` scores for."""
    logged = run.data.metrics
    scores: dict[str, dict[str, dict[str, Score]]] = defaultdict(lambda: defaultdict(dict))
    for key, value in logged.items():
        parts = key.split("/")
        if len(parts) != 4 or parts[0] != stage or parts[2].endswith(_NOT_SCORES) or not math.isfinite(value):
            continue
        _, task, metric, group = parts
        low = logged.get(f"{stage}/{task}/{metric}_ci_low/{group}")
        high = logged.get(f"{stage}/{task}/{metric}_ci_high/{group}")
        if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
            low = high = None
        scores[task][metric][group] = Score(value, low, high)
    if not scores:
        return []
    tags = run.data.tags
    seed, k = _seed(run), _few_shot(tags)
    model = run_label(run, label_tags, few_shot_suffix=False)
    label = _row_label(model, k)
    sources = tuple(c.strip() for c in str(tags.get("xlt.train_languages", "")).split(",") if c.strip())
    return [TaskRun(run.info.run_id, label, task, seed, k, run.info.start_time or 0,
                    {m: dict(g) for m, g in by_metric.items()}, model, sources, tags.get("xlt.panel") or None,
                    *_normalization(tags, task))
            for task, by_metric in scores.items()]


def _normalization(tags: Mapping[str, str], task: str) -> tuple[str | None, str | None]:
    """The run's normalisation tag and note for ``task`` (``None`` when absent or the task records none)."""
    if task not in NORMALIZATION_TAGS:
        return None, None
    name, note = NORMALIZATION_TAGS[task]
    return (str(tags[name]).strip() or None) if name in tags else None, tags.get(note) or None


def aggregate(scores: Sequence[Score], run_ids: Sequence[str]) -> Cell:
    """Mean ± sample std of the scores of several seeds, and the mean of their CI bounds when all have one."""
    values = np.array([s.value for s in scores], dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else None
    with_ci = all(s.low is not None and s.high is not None for s in scores)
    low = float(np.mean([s.low for s in scores])) if with_ci else None
    high = float(np.mean([s.high for s in scores])) if with_ci else None
    return Cell(float(values.mean()), std, len(values), low, high, tuple(run_ids))


def _client(tracking_uri: str | None) -> tuple[MlflowClient, str]:
    if tracking_uri is None:
        from xlt.mlflow_store import default_tracking_uri

        tracking_uri = default_tracking_uri()
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
        if not db.is_file():
            raise XltError(f"no MLflow store at {db} ({tracking_uri}) — pass tracking_uri=... or set "
                           "MLFLOW_TRACKING_URI to the store your runs were logged to")
    return MlflowClient(tracking_uri=tracking_uri), tracking_uri


def _experiment(client: MlflowClient, name: str, uri: str) -> Experiment:
    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage == "active":
        return found
    names = sorted(e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY))
    shown = ", ".join(names[:20]) + (f", … ({len(names)} in all)" if len(names) > 20 else "")
    state = "is deleted" if found is not None else "not found"
    raise XltError(f"experiment '{name}' {state} in {uri} — available experiments: {shown or 'none'}")


def _search(client: MlflowClient, experiment_id: str, filter: str) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        try:
            page = client.search_runs([experiment_id], filter_string=filter, run_view_type=ViewType.ACTIVE_ONLY,
                                      max_results=_PAGE, order_by=["attributes.start_time ASC"], page_token=token)
        except MlflowException as exc:
            if exc.error_code != "INVALID_PARAMETER_VALUE":
                raise
            raise XltError(f"invalid filter {filter!r}: {exc.message} — use MLflow's search syntax, e.g. "
                           "\"tags.vocab = 'd' AND params.config.seed_everything = '1'\"") from None
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _seed(run: Run) -> str | None:
    seed = run.data.tags.get("xlt.seed") or run.data.params.get("config.seed_everything")
    return None if seed is None or not str(seed).strip() else str(seed).strip()


def _few_shot(tags: Mapping[str, str]) -> int:
    raw = str(tags.get("xlt.few_shot", "") or "0").strip()
    try:
        return int(float(raw))
    except ValueError:
        raise XltError(f"run tag xlt.few_shot = {raw!r} is not an integer — fix or delete that tag") from None


def _seed_key(seed: str | None) -> tuple:
    if seed is None:
        return (2, 0, "")
    try:
        return (0, int(seed), "")
    except ValueError:
        return (1, 0, seed)


def _latest_per_seed(task_runs: list[TaskRun], notes: list[str]) -> list[TaskRun]:
    groups: dict[tuple[str, str, str | None], list[TaskRun]] = defaultdict(list)
    for tr in task_runs:
        groups[tr.label, tr.task, tr.seed].append(tr)
    kept = []
    for (label, task, seed), same in groups.items():
        same.sort(key=lambda tr: (tr.start_time, tr.run_id))
        kept.append(same[-1])
        if len(same) > 1:
            seed_text = "no seed" if seed is None else f"seed {seed}"
            notes.append(f"{len(same)} runs of {label} / {task} / {seed_text}: kept the latest ({same[-1].run_id}), "
                         f"ignored {', '.join(tr.run_id for tr in same[:-1])}.")
    return kept


def _columns(task_runs: list[TaskRun], tasks: Sequence[str] | None, stage: str) -> list[str]:
    found = {tr.task for tr in task_runs}
    ordered = [t for t in TASKS if t in found] + sorted(found - set(TASKS))  # Table 2 order, then others
    if not tasks:
        return ordered
    missing = [t for t in tasks if t not in found]
    if missing:
        raise XltError(f"no run has {stage}/<task>/... metrics for task(s) {', '.join(missing)} — tasks found: "
                       f"{', '.join(ordered)}")
    return list(dict.fromkeys(tasks))


def _choose_metrics(task_runs: list[TaskRun], columns: list[str], overrides: dict[str, str], stage: str,
                    notes: list[str]) -> dict[str, str]:
    available: dict[str, set[str]] = defaultdict(set)
    for tr in task_runs:
        available[tr.task].update(tr.scores)
    unknown = [t for t in overrides if t not in available]
    if unknown:
        raise XltError(f"metrics names task(s) {', '.join(unknown)} that no run logged — tasks found: "
                       f"{', '.join(sorted(available))}")
    chosen = {}
    for task in columns:
        names = sorted(available[task], key=lambda m: (_rank(m), m))
        if task in overrides:
            if overrides[task] not in available[task]:
                raise XltError(f"no run logs {stage}/{task}/{overrides[task]}/... — metrics of {task}: "
                               f"{', '.join(names)}; fix metrics[{task}]")
            chosen[task] = overrides[task]
        elif task in TASKS and TASKS[task].primary_metric in available[task]:
            chosen[task] = TASKS[task].primary_metric
        else:
            chosen[task] = names[0]
            if len(names) > 1 or task in TASKS:
                notes.append(f"{task}: reporting {chosen[task]} (metrics found: {', '.join(names)}); pass "
                             f"metrics={{{task}: ...}} to choose.")
    return chosen


def _task_header(task: str) -> str:
    """The task's Table 2 header (:attr:`~xlt.datamodules.task_spec.TaskSpec.header`), else its name."""
    return TASKS[task].header if task in TASKS else task


def _secondary_metrics(task: str) -> tuple[str, ...]:
    """The metrics the task reports in ``table2.csv`` next to the primary one."""
    return TASKS[task].metrics[1:] if task in TASKS else ()


def _rank(metric: str) -> int:
    return _METRIC_PREFERENCE.index(metric) if metric in _METRIC_PREFERENCE else len(_METRIC_PREFERENCE)


def _aggregate(task_runs: list[TaskRun], chosen: Mapping[str, str]) -> dict[tuple[str, str, str, str], Cell]:
    by_row: dict[tuple[str, str], list[TaskRun]] = defaultdict(list)
    for tr in task_runs:
        by_row[tr.label, tr.task].append(tr)
    cells = {}
    for (label, task), runs in by_row.items():
        runs.sort(key=lambda tr: _seed_key(tr.seed))
        for metric in (chosen[task], *(m for m in _secondary_metrics(task) if m != chosen[task])):
            groups = {g for tr in runs for g in tr.scores.get(metric, {})}
            for group in groups:
                have = [tr for tr in runs if group in tr.scores.get(metric, {})]
                cells[label, task, metric, group] = aggregate([tr.scores[metric][group] for tr in have],
                                                              [tr.run_id for tr in have])
    return cells


def _label_order(task_runs: Iterable[TaskRun]) -> list[str]:
    rows = {(tr.label, tr.few_shot) for tr in task_runs}
    base = {label: label.removesuffix(f" (few-shot {k})") if k else label for label, k in rows}
    return [label for label, k in sorted(rows, key=lambda r: (base[r[0]], r[1], r[0]))]


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


def _check_output(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise XltError(f"output path {target} is a file — pass out=<a directory>")
    if target.is_dir():
        foreign = sorted(p.name for p in target.iterdir() if not _OUTPUT.match(p.name))
        if foreign:
            raise XltError(f"output directory {target} holds files that are not report outputs "
                           f"({', '.join(foreign[:5])}) — the report replaces the whole directory; choose another out")


def _write(path: Path, text: str) -> None:
    with atomic_file(path) as handle:
        handle.write(text)
