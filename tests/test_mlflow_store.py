"""Where runs and artifacts go by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from xlt.mlflow_store import artifact_location, default_tracking_uri


def test_default_uri_is_sqlite_in_working_dir_unless_env_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri() == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert default_tracking_uri() == "http://127.0.0.1:5000"


def test_sqlite_artifacts_sit_beside_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert artifact_location("sqlite:///mlflow.db", "quickstart") == (tmp_path / "mlartifacts/quickstart").as_uri()
    assert artifact_location("sqlite:////srv/x/m.db", "e") == "file:///srv/x/mlartifacts/e"
    assert artifact_location("http://127.0.0.1:5000", "e") is None  # a tracking server decides itself


def test_stage_run_puts_a_command_inside_its_experiment(monkeypatch) -> None:
    import json

    from xlt.mlflow_store import STAGE_ENV, stage_run

    monkeypatch.delenv(STAGE_ENV, raising=False)
    assert stage_run("probe", {"a": "1"}) == ("probe", {"a": "1"})  # outside an experiment: unchanged
    monkeypatch.setenv(STAGE_ENV, json.dumps({"mlflow_experiment": "experiment-x", "parent_run_id": "p1",
                                              "xlt.experiment": "x", "xlt.experiment.stage": "s",
                                              "xlt.experiment.unit": "s[seed=0]", "xlt.experiment.hash": "h",
                                              "xlt.experiment.label": "L"}))
    name, tags = stage_run("probe", {"a": "1"})
    assert name == "experiment-x"
    assert tags == {"a": "1", "xlt.experiment": "x", "xlt.experiment.stage": "s", "xlt.experiment.unit": "s[seed=0]",
                    "xlt.experiment.hash": "h", "xlt.experiment.label": "L", "mlflow.parentRunId": "p1"}
    # a run that already has a parent keeps it (a sweep's trials stay children of their study's run)
    assert stage_run("probe", {"mlflow.parentRunId": "study"})[1]["mlflow.parentRunId"] == "study"
