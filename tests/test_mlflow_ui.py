"""Experiments xlt creates open in MLflow 3's model-training view (runs table, metric charts), not the GenAI one."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from xlt.callbacks.tracking import TrackingLogger
from xlt.errors import XltError
from xlt.mlflow_store import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND, get_or_create_experiment, ui_address
from xlt.tokenization.audit_report import log_audit_to_mlflow


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _kind(client: MlflowClient, name: str) -> str | None:
    return client.get_experiment_by_name(name).tags.get(EXPERIMENT_KIND_TAG)


def test_tracking_logger_creates_a_model_training_experiment(mlflow_uri: str) -> None:
    name = _name("ui-fit")
    logger = TrackingLogger(experiment_name=name, tracking_uri=mlflow_uri)
    assert logger.run_id is not None  # opening the run creates the experiment
    client = MlflowClient(mlflow_uri)
    assert _kind(client, name) == "custom_model_development"
    logger.finalize("success")
    second = TrackingLogger(experiment_name=name, tracking_uri=mlflow_uri)
    assert second.experiment_id == logger.experiment_id  # found again, not created twice


def test_tokenizer_audit_creates_a_model_training_experiment(mlflow_uri: str) -> None:
    name = _name("ui-audit")
    log_audit_to_mlflow([], experiment_name=name, tracking_uri=mlflow_uri, run_name="empty-audit")
    assert _kind(MlflowClient(mlflow_uri), name) == MODEL_TRAINING_KIND


def test_existing_experiments_get_the_tag_unless_someone_chose_a_kind(mlflow_uri: str) -> None:
    client = MlflowClient(mlflow_uri)
    untagged, chosen = _name("ui-old"), _name("ui-genai")
    old_id = client.create_experiment(untagged)  # made by an older xlt
    client.create_experiment(chosen, tags={EXPERIMENT_KIND_TAG: "genai_development"})  # picked in the UI
    assert get_or_create_experiment(client, untagged, mlflow_uri) == old_id
    assert _kind(client, untagged) == MODEL_TRAINING_KIND
    get_or_create_experiment(client, chosen, mlflow_uri)
    assert _kind(client, chosen) == "genai_development"


def test_deleted_experiment_is_a_user_error(mlflow_uri: str) -> None:
    client = MlflowClient(mlflow_uri)
    name = _name("ui-deleted")
    client.delete_experiment(client.create_experiment(name))
    with pytest.raises(XltError, match="is deleted"):
        get_or_create_experiment(client, name, mlflow_uri)


def _ui_bundle() -> str:
    build = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in sorted(build.glob("*.js")))


def test_the_installed_mlflow_ui_knows_the_tag_and_the_view_parameter() -> None:
    """The tag and the address parameter xlt relies on are the ones in the installed MLflow UI's bundle: the
    experiment-kind enum and tag key, and the UI-wide workflow switch that MLflow 3.17 follows."""
    bundle = _ui_bundle()
    assert f'"{EXPERIMENT_KIND_TAG}"' in bundle
    assert f'CUSTOM_MODEL_DEVELOPMENT="{MODEL_TRAINING_KIND}"' in bundle
    assert 'MACHINE_LEARNING="machine_learning"' in bundle and 'get("workflowType")' in bundle
    address = ui_address("7", "abc")
    assert re.fullmatch(r"http://127\.0\.0\.1:5000/#/experiments/7/runs/abc\?workflowType=machine_learning", address)
