"""Where MLflow data goes: the tracking URI, the artifact location and the experiments xlt creates
(torch-free, cheap to import: MLflow itself is imported only by the functions that need it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

# MLflow 3's UI chooses between its GenAI view (traces, sessions, judges) and the model-training view (runs table,
# metric charts) per experiment from this tag, which its own experiment-type selector writes; the values are the
# UI bundle's ExperimentKind enum, "custom_model_development" being "Machine learning". Checked in a browser:
# MLflow 3.4's UI opens a tagged experiment on its runs table, an untagged one behind a "Choose experiment type"
# dialog (or a guess to confirm). MLflow 3.17's UI ignores the tag and follows a UI-wide "GenAI / Model training"
# switch (default GenAI, remembered by the browser, or ``?workflowType=machine_learning`` in the address): see
# :func:`ui_address`.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else a SQLite store ``mlflow.db`` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def artifact_location(tracking_uri: str, experiment_name: str) -> str | None:
    """Artifacts of a SQLite store live beside the database file, never in the working directory's ``mlruns``."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
    return (db.parent / "mlartifacts" / experiment_name).as_uri()


def canonical_tracking_uri(tracking_uri: str) -> str:
    """The tracking URI with a local SQLite or file store's path made absolute, so that two URIs naming the same
    store compare equal (``sqlite:///mlflow.db`` from ``/x`` is ``sqlite:////x/mlflow.db``)."""
    if tracking_uri.startswith("sqlite:///"):
        return "sqlite:///" + str(Path(tracking_uri.removeprefix("sqlite:///")).resolve())
    if tracking_uri.startswith("file:"):
        return Path(tracking_uri.removeprefix("file://").removeprefix("file:")).resolve().as_uri()
    if "://" not in tracking_uri:  # a plain path is a file store
        return Path(tracking_uri).resolve().as_uri()
    return tracking_uri.rstrip("/")


def get_or_create_experiment(client: MlflowClient, name: str, tracking_uri: str | None = None) -> str:
    """The id of the active experiment ``name``, created if missing (artifacts beside a SQLite store), tagged so
    that MLflow's UI opens it in the model-training view (:data:`EXPERIMENT_KIND_TAG`).

    An existing experiment without the tag gets it; one whose kind someone chose in the UI keeps it. A deleted
    experiment of that name is an :class:`~xlt.errors.XltError` (MLflow keeps deleted names reserved).
    """
    from mlflow.exceptions import MlflowException

    from xlt.errors import XltError

    uri = tracking_uri or client.tracking_uri
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location(uri, name),
                                            tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
        except MlflowException:  # created concurrently by another process
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage != "active":
        raise XltError(f"MLflow experiment '{name}' is deleted in {uri} — restore it (mlflow experiments restore "
                       f"--experiment-id {experiment.experiment_id}) or choose another experiment name")
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    return experiment.experiment_id


def ui_address(experiment_id: str, run_id: str | None = None, server: str = "http://127.0.0.1:5000") -> str:
    """Address of an experiment (or run) in ``mlflow ui``'s model-training view (MLflow 3.17's UI opens the GenAI
    view unless the address says ``workflowType=machine_learning``)."""
    path = f"#/experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
    return f"{server.rstrip('/')}/{path}?workflowType=machine_learning"


STAGE_ENV = "XLT_EXPERIMENT_STAGE"
"""Set by ``xlt experiment run`` for the command of one stage: JSON with the MLflow experiment every stage logs
into, the experiment's parent run and the stage's tags (:func:`stage_run`)."""
STAGE_TAGS = ("xlt.experiment", "xlt.experiment.stage", "xlt.experiment.unit", "xlt.experiment.hash",
              "xlt.experiment.label")


def stage_run(experiment_name: str, tags: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """The MLflow experiment and tags of a run a command opens: unchanged outside an experiment; inside a stage of
    ``xlt experiment run``, the experiment's MLflow experiment and the stage's tags, and the experiment's run as
    parent unless the run already has one (a sweep's trials stay children of their study's run)."""
    import json

    tags = dict(tags or {})
    context = os.environ.get(STAGE_ENV)
    if not context:
        return experiment_name, tags
    stage = json.loads(context)
    tags.update({key: str(stage[key]) for key in STAGE_TAGS if stage.get(key) is not None})
    if stage.get("parent_run_id"):
        tags.setdefault("mlflow.parentRunId", str(stage["parent_run_id"]))
    return str(stage.get("mlflow_experiment") or experiment_name), tags
