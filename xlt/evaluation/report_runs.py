"""Reading an experiment's task runs from MLflow and aggregating them into a
:class:`~xlt.evaluation.report_tables.Report` (the collect side of ``xlt report``).

Each run becomes one :class:`TaskRun` per task it logged ``<stage>/<task>/<metric>/<group>`` scores for, labelled
by its tags (few-shot and training-language suffixes); the latest run of each label + task + seed is kept and the
seeds of each row are aggregated into one :class:`~xlt.evaluation.report_tables.Cell` per metric and group (see
:mod:`xlt.evaluation.report` for the whole protocol). Nothing here renders or writes files.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from mlflow.entities import Experiment, Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from xlt.datamodules.tasks import TASKS
from xlt.errors import XltError
from xlt.evaluation.report_tables import Cell, Report
from xlt.evaluation.transfer_report import RowInfo
from xlt.languages import load_panel

_METRIC_PREFERENCE = ("acc", "f1", "p1", "em")
_NOT_SCORES = ("_ci_low", "_ci_high", "_of_supervised", "_gap_recovered", "_distance_pearson", "_distance_spearman")
NORMALIZATION_TAGS = {name: (spec.protocol.tag, spec.protocol.note_tag) for name, spec in TASKS.items()
                      if spec.protocol is not None}
"""Per task, the run tags of its scoring protocol and of the note on it, as the task declares them
(:attr:`~xlt.datamodules.task_spec.TaskSpec.protocol`; QA: the answer normalisation and the languages scored by a
generic rule, written by :class:`~xlt.models.qa.SpanExtraction`)."""
REPORT_TAG = "xlt.report"
"""Tag of the MLflow run that holds a report's files (never read back as a task run)."""
_PAGE = 1000


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


def collect(experiment: str, tracking_uri: str | None = None, filter: str = "", stage: str = "test",
            label_tags: Sequence[str] = ("model", "vocab"), metrics: Mapping[str, str] | None = None,
            tasks: Sequence[str] | None = None, include_unfinished: bool = False,
            source_languages: Sequence[str] | None = None) -> Report:
    """Read the experiment's runs and aggregate them into a :class:`Report` (arguments as for
    :func:`~xlt.evaluation.report.report`)."""
    client, uri = _client(tracking_uri)
    found = _experiment(client, experiment, uri)
    runs = [r for r in search_runs(client, found.experiment_id, filter) if REPORT_TAG not in r.data.tags]
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


def search_runs(client: MlflowClient, experiment_id: str, filter: str) -> list[Run]:
    """Every active run of the experiment that matches ``filter``, oldest first (all pages); an invalid filter is
    an :class:`XltError`."""
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
