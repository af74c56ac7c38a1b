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

This module is the command: it checks the output directory, writes the files and logs them; the runs are read and
aggregated by :mod:`xlt.evaluation.report_runs`, the tables rendered by :mod:`xlt.evaluation.report_tables`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from xlt.atomic import atomic_dir, atomic_file
from xlt.errors import XltError
from xlt.evaluation.disaggregation import sanitize_group
from xlt.evaluation.report_runs import REPORT_TAG, _client, collect
from xlt.evaluation.transfer_report import transfer_tables

_OUTPUT = re.compile(r"^(table2\.(md|csv|png)|languages_.+\.(md|csv)|transfer(_.+)?\.(md|csv|png)|distance_.+\.png)$")


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
