"""Log evaluation results to an MLflow run: metrics named per DESIGN.md, tables and plots as artifacts.

For each :class:`~xlt.evaluation.disaggregation.EvaluationResult` (``stage``, ``task``, ``metric``):

- metrics ``<stage>/<task>/<metric>/<group>`` for every language, ``macro``, ``family.*``, ``script.*``,
  ``bucket.*`` and ``bottom_decile``; CI bounds as ``<stage>/<task>/<metric>_ci_low/<group>`` and
  ``..._ci_high/<group>``; derived tables as ``<stage>/<task>/<metric>_of_supervised/<group>`` and
  ``<stage>/<task>/<metric>_gap_recovered/<group>``;
- artifacts under ``<artifact_path>/`` named ``<stage>_<task>_<metric>``: ``.csv`` and ``.md`` (all groups),
  ``.json`` (the same plus bootstrap settings and the bottom-decile summary) and ``.png`` (per-language bars
  with CIs, coloured by bucket).

A :class:`~xlt.evaluation.transfer.TransferMatrix` adds ``transfer_<task>_<metric>.csv``/``.md``/``.png``; a
:class:`~xlt.evaluation.transfer.TransferCorrelation` adds ``<stage>/<task>/<metric>_distance_pearson/all`` and
``_distance_spearman/all`` metrics and ``distance_<task>_<metric>.json``/``.png``.

Inside Lightning, pass the run of the trainer's logger: ``log_evaluation(result, logger.run_id,
client=logger.experiment)``.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from xlt.atomic import atomic_file
from xlt.evaluation.disaggregation import EvaluationResult, metric_name
from xlt.evaluation.plots import plot_language_scores
from xlt.evaluation.transfer import TransferCorrelation, TransferMatrix

_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def _write(path: Path, text: str) -> Path:
    with atomic_file(path) as handle:
        handle.write(text)
    return path


def _client(tracking_uri: str | None, client: MlflowClient | None) -> MlflowClient:
    if client is not None:
        return client
    if tracking_uri is None:
        from xlt.mlflow_store import default_tracking_uri

        tracking_uri = default_tracking_uri()
    return MlflowClient(tracking_uri=tracking_uri)


def log_evaluation(results: EvaluationResult | Sequence[EvaluationResult], run_id: str,
                   tracking_uri: str | None = None, *, client: MlflowClient | None = None, step: int = 0,
                   artifact_path: str = "evaluation", include_ci: bool = True, tables: bool = True,
                   plots: bool = True, transfer: TransferMatrix | Sequence[TransferMatrix] = (),
                   correlation: TransferCorrelation | None = None, correlation_stage: str = "test") -> dict[str, float]:
    """Log evaluation results (and optional transfer matrices / distance correlation) to an existing MLflow run.

    Args:
        results: one or more disaggregated results.
        run_id: the MLflow run to log into.
        tracking_uri: MLflow store; ``None`` uses ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``.
        client: an existing client (e.g. ``MLFlowLogger.experiment``); overrides ``tracking_uri``.
        step: MLflow step of the metrics.
        artifact_path: artifact folder of tables and plots.
        include_ci: also log CI bounds as metrics.
        tables: log CSV, Markdown and JSON tables.
        plots: log PNG plots.
        transfer: transfer matrices to log as tables and heatmaps.
        correlation: a transfer/distance correlation to log (metrics, pairs table, scatter plot).
        correlation_stage: stage part of the correlation's metric names.

    Returns:
        The metrics that were logged (name -> value; NaN values are skipped).
    """
    results = [results] if isinstance(results, EvaluationResult) else list(results)
    matrices = [transfer] if isinstance(transfer, TransferMatrix) else list(transfer)
    client = _client(tracking_uri, client)
    metrics: dict[str, float] = {}
    for result in results:
        metrics.update(result.metrics(include_ci=include_ci))
    if correlation is not None:
        task = matrices[0].task if matrices else "transfer"
        metric = matrices[0].metric if matrices else "score"
        metrics[metric_name(correlation_stage, task, f"{metric}_distance_pearson", "all")] = correlation.pearson
        metrics[metric_name(correlation_stage, task, f"{metric}_distance_spearman", "all")] = correlation.spearman
    metrics = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
    now = int(time.time() * 1000)
    entries = [Metric(key, value, now, step) for key, value in metrics.items()]
    for start in range(0, len(entries), _BATCH):
        client.log_batch(run_id, metrics=entries[start:start + _BATCH])

    if not (tables or plots) or not (results or matrices or correlation):
        return metrics
    with tempfile.TemporaryDirectory(prefix="xlt-eval-") as tmp:
        out = Path(tmp)
        for result in results:
            stem = f"{result.stage}_{result.task}_{result.metric}"
            if tables:
                _write(out / f"{stem}.csv", result.to_csv())
                _write(out / f"{stem}.md", result.to_markdown())
                _write(out / f"{stem}.json", json.dumps(result.to_dict(), indent=2, allow_nan=True) + "\n")
            if plots and result.languages:
                plot_language_scores(result, out / f"{stem}.png")
        for matrix in matrices:
            stem = "_".join(["transfer", *(p for p in (matrix.task, matrix.metric) if p)])
            if tables:
                _write(out / f"{stem}.csv", matrix.to_csv())
                _write(out / f"{stem}.md", matrix.to_markdown())
            if plots:
                matrix.heatmap(out / f"{stem}.png")
        if correlation is not None:
            stem = "_".join(["distance", *(p for p in (matrices[0].task, matrices[0].metric) if p)]) \
                if matrices else "distance"
            if tables:
                _write(out / f"{stem}.json", json.dumps(correlation.to_dict(), indent=2) + "\n")
            if plots and correlation.pairs:
                correlation.plot(out / f"{stem}.png")
        client.log_artifacts(run_id, str(out), artifact_path)
    return metrics
