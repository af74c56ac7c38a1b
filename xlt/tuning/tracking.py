"""A study in MLflow: one parent run per study (its id kept in the study's user attributes, so every worker and
machine sharing the storage logs its trials under it), trial states on the child runs, and the study's plots
(Pareto front, optimisation history, parameter importances) and trial table as the parent's artifacts."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from xlt.mlflow_store import get_or_create_experiment, stage_run
from xlt.tuning.trial_run import MLFLOW_RUN_ATTR

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

PARENT_RUN_ATTR = "xlt.mlflow_parent_run_id"
TRIAL_STATE_TAG = "xlt.trial_state"


def parent_run(client: MlflowClient, tracking_uri: str, experiment: str, study: optuna.Study, storage: str) -> str:
    """The study's parent run, opened by the first worker and found by the others.

    The id is kept in the study's user attributes. Workers that start together may each open one: every worker
    then takes the earliest run tagged with the study (name and storage) and deletes its own if it lost, so all
    of them agree on one parent.
    """
    if PARENT_RUN_ATTR in study.user_attrs:
        return str(study.user_attrs[PARENT_RUN_ATTR])
    experiment, stage_tags = stage_run(experiment)
    experiment_id = get_or_create_experiment(client, experiment, tracking_uri)
    tags = {"xlt.study": study.study_name, "xlt.study_storage": storage}
    query = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    runs = client.search_runs([experiment_id], query)
    mine = None
    if not runs:
        mine = client.create_run(experiment_id, run_name=study.study_name,
                                 tags={**stage_tags, **tags, "xlt.stage": "sweep"})
        runs = client.search_runs([experiment_id], query)
    chosen = min(runs, key=lambda run: (run.info.start_time, run.info.run_id)).info.run_id
    if mine is not None and mine.info.run_id != chosen:
        client.delete_run(mine.info.run_id)
    study.set_user_attr(PARENT_RUN_ATTR, chosen)
    return chosen


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
        run_id = trial.user_attrs.get(MLFLOW_RUN_ATTR)
        if self.tracking_uri is not None and run_id is not None:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(self.tracking_uri)
            tag_trial_run(client, run_id, "FAIL", "its worker stopped sending heartbeats (killed or lost)")
            client.set_terminated(run_id, status="FAILED")
        if self.retry is not None:  # the retry starts clean: no run id, config or intermediate values of the dead one
            retried = copy.deepcopy(trial)
            retried.user_attrs = {k: v for k, v in trial.user_attrs.items() if not k.startswith("xlt.")}
            self.retry(study, retried)


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
