"""Where MLflow data goes: the tracking URI and the artifact location (torch-free, cheap to import)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else a SQLite store ``mlflow.db`` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def artifact_location(tracking_uri: str, experiment_name: str) -> str | None:
    """Artifacts of a SQLite store live beside the database file, never in the working directory's ``mlruns``."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
    return (db.parent / "mlartifacts" / experiment_name).as_uri()
