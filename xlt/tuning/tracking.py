"""A study in MLflow: one parent run per study (its id kept in the study's user attributes, so every worker and
machine sharing the storage logs its trials under it), trial states on the child runs, and the study's plots
(Pareto front, optimisation history, parameter importances) and trial table as the parent's artifacts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from xlt.errors import XltError
from xlt.mlflow_store import get_or_create_experiment

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

PARENT_RUN_ATTR = "xlt.mlflow_parent_run_id"
TRIAL_STATE_TAG = "xlt.trial_state"


def create_parent_run(client: MlflowClient, tracking_uri: str, experiment: str, study: optuna.Study) -> str:
    """Open the study's parent run and record its id in the study (called by the worker that created it)."""
    experiment_id = get_or_create_experiment(client, experiment, tracking_uri)
    run = client.create_run(experiment_id, run_name=study.study_name,
                            tags={"xlt.study": study.study_name, "xlt.stage": "sweep"})
    study.set_user_attr(PARENT_RUN_ATTR, run.info.run_id)
    return run.info.run_id


def wait_for_parent_run(study: optuna.Study, timeout: float = 60.0) -> str:
    """The parent run id of a study another worker created a moment ago (it writes the id right after)."""
    deadline = time.monotonic() + timeout
    while PARENT_RUN_ATTR not in study.user_attrs:
        if time.monotonic() > deadline:
            raise XltError(f"study '{study.study_name}' has no MLflow parent run after {timeout:.0f} s — the "
                           "worker that created it died early; delete the study (optuna delete-study) and rerun")
        time.sleep(0.5)
    return str(study.user_attrs[PARENT_RUN_ATTR])


def tag_trial_run(client: MlflowClient, run_id: str | None, state: str, error: str | None = None) -> None:
    """Record the Optuna state (and a failure's message) on a trial's child run."""
    if run_id is None:
        return
    client.set_tag(run_id, TRIAL_STATE_TAG, state)
    if error is not None:
        client.set_tag(run_id, "xlt.error", error[:5000])


class StaleTrialHandler:
    """Heartbeat-stale trials (their worker was killed): the child run is marked FAILED; with ``max_retry`` > 0
    the trial is queued again with the same parameters (Optuna's ``RetryHeartbeatStaleTrialCallback``).

    Args:
        tracking_uri: The MLflow store of the child runs (``None``: the sweep does not track).
        max_retry: How often a stale trial is retried; 0 leaves it FAIL.
    """

    def __init__(self, tracking_uri: str | None, max_retry: int) -> None:
        self.tracking_uri = tracking_uri
        self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry) if max_retry > 0 else None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        from xlt.tuning.trial_run import MLFLOW_RUN_ATTR

        run_id = trial.user_attrs.get(MLFLOW_RUN_ATTR)
        if self.tracking_uri is not None and run_id is not None:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(self.tracking_uri)
            tag_trial_run(client, run_id, "FAIL", "its worker stopped sending heartbeats (killed or lost)")
            client.set_terminated(run_id, status="FAILED")
        if self.retry is not None:
            self.retry(study, trial)


def log_study(client: MlflowClient, run_id: str, study: optuna.Study, value_names: Sequence[str]) -> None:
    """The study's trial table (``trials.csv``) and plots (``plots/*.png``) as artifacts of the parent run."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    client.log_text(run_id, study.trials_dataframe().to_csv(index=False), "trials.csv")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    figures = {}
    multi = len(value_names) > 1
    # Optuna marks its matplotlib plots experimental (an interface note, repeated per plot and trial batch).
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if multi:
        figures["pareto_front"] = plots.plot_pareto_front(study, target_names=list(value_names))
    for i, name in enumerate(value_names):
        target = (lambda t, i=i: t.values[i]) if multi else None
        figures[f"history_{name}"] = plots.plot_optimization_history(study, target=target, target_name=name)
        if len(complete) >= 2 and len(complete[0].params) >= 1:
            figures[f"importances_{name}"] = plots.plot_param_importances(study, target=target, target_name=name)
    for name, axes in figures.items():
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        client.log_figure(run_id, figure, f"plots/{name}.png")
        plt.close(figure)
