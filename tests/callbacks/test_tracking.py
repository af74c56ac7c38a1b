"""A fit resumed from a checkpoint continues the checkpoint's MLflow run: one run, one curve per metric."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from mlflow.tracking import MlflowClient

from xlt.callbacks.tracking import CHECKPOINT_KEY, TrackingLogger, continue_checkpoint_runs
from xlt.mlflow_store import canonical_tracking_uri

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
TINY_MODEL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "max_position_embeddings": 66}


def overlay(tmp_path: Path, synthetic_dir: Path, tokenizer_dir: Path, mlflow_uri: str, experiment: str, *,
            run_name: str, kill_at: int | None = None) -> Path:
    """The quickstart shrunk to seconds: 16 steps, a checkpoint every 4, optionally SIGKILLed at ``kill_at``."""
    callbacks: list[dict] = [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                              "init_args": {"every_n_train_steps": 4, "save_last": True, "save_top_k": -1}}]
    if kill_at is not None:
        callbacks.append({"class_path": "kill_callback.KillAtStep", "init_args": {"step": kill_at}})
    config = {
        "trainer": {"max_steps": 16, "val_check_interval": 6, "log_every_n_steps": 1,
                    "default_root_dir": str(tmp_path / "run"), "callbacks": callbacks,
                    "logger": {"class_path": "xlt.callbacks.tracking.TrackingLogger",
                               "init_args": {"experiment_name": experiment, "run_name": run_name,
                                             "tracking_uri": mlflow_uri}}},
        "model": {"init_args": {"config": TINY_MODEL, "warmup_steps": 2}},
        "data": {"init_args": {"corpus": str(synthetic_dir / "mlm"), "panel": str(synthetic_dir / "panel.yaml"),
                               "tokenizer": str(tokenizer_dir), "block_size": 32, "batch_size": 8,
                               "val_blocks_per_language": 2, "cache_dir": str(tmp_path / "cache")}},
    }
    path = tmp_path / f"{run_name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def xlt_fit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "helpers"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "xlt", "fit", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


def test_killed_fit_resumed_from_last_continues_its_mlflow_run(tmp_path: Path, synthetic_dir: Path,
                                                               tiny_tokenizer_dir: Path, mlflow_uri: str) -> None:
    """SIGKILL right after the step-8 checkpoint, resume with --ckpt_path last: the same run (id, name) goes from
    RUNNING to FINISHED, and the training loss has one entry per step 0..15, half from each process."""
    experiment = f"resume-{uuid.uuid4().hex[:8]}"
    killed = overlay(tmp_path, synthetic_dir, tiny_tokenizer_dir, mlflow_uri, experiment, run_name="killed",
                     kill_at=8)
    result = xlt_fit("--config", str(QUICKSTART), "--config", str(killed))
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]

    client = MlflowClient(mlflow_uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    (first,) = client.search_runs([experiment_id])
    assert first.info.status == "RUNNING"  # killed: MLflow never heard of the end
    loss = "train/mlm/loss"
    assert sorted(m.step for m in client.get_metric_history(first.info.run_id, loss)) == list(range(8))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    stored = torch.load(last, map_location="cpu", weights_only=True)  # plain types only
    assert stored["global_step"] == 8
    assert stored[CHECKPOINT_KEY] == [{"tracking_uri": canonical_tracking_uri(mlflow_uri), "experiment": experiment,
                                       "experiment_id": experiment_id, "run_id": first.info.run_id}]

    resumed = overlay(tmp_path, synthetic_dir, tiny_tokenizer_dir, mlflow_uri, experiment, run_name="resumed")
    result = xlt_fit("--config", str(QUICKSTART), "--config", str(resumed), "--ckpt_path", "last")
    assert result.returncode == 0, result.stderr[-3000:]

    runs = client.search_runs([experiment_id])
    assert [r.info.run_id for r in runs] == [first.info.run_id]  # one run: the killed one, continued
    run = runs[0]
    assert run.info.run_name == "killed" and f"continuing run {first.info.run_id}" in result.stderr
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, loss)
    assert sorted(m.step for m in history) == list(range(16))  # both halves, no step twice
    val_steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/mlm/loss/macro"))
    assert val_steps == [5, 11]  # validated at step 6 by the killed process, at 12 by the resumed one
    assert run.data.tags["xlt.resumed_from_step"] == "8"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "resumed/step_8")}
    assert "resumed/step_8/config.yaml" in artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"config.yaml", "resumed"}
    # the run name differs: the run keeps the parameter it started with (MLflow's cannot change), the resumed
    # fit says so and adds the parameters that are new (ckpt_path)
    params = run.data.params
    assert params["config.trainer.logger.init_args.run_name"] == "killed" and params["config.ckpt_path"] == "last"
    assert params["config.trainer.callbacks/1/class_path"] == "kill_callback.KillAtStep"
    assert "parameter(s) differ" in result.stderr and "config.trainer.logger.init_args.run_name" in result.stderr
    # the resumed process's checkpoints still name the run
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == 16 and final[CHECKPOINT_KEY][0]["run_id"] == first.info.run_id


# In-process checks of the choice (no fit): a trainer with a TrackingLogger and a ModelCheckpoint directory.

def _trainer(tmp_path: Path, uri: str, experiment: str) -> Trainer:
    logger = TrackingLogger(experiment_name=experiment, run_name="again", tracking_uri=uri)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)
    return Trainer(logger=logger, callbacks=[checkpoint], enable_progress_bar=False, enable_model_summary=False,
                   default_root_dir=tmp_path)


def _earlier_run(uri: str, experiment: str, status: str) -> str:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run_id = client.create_run(experiment_id, run_name="earlier").info.run_id
    client.log_metric(run_id, "train/mlm/loss", 3.0, step=0)
    if status != "RUNNING":
        client.set_terminated(run_id, status)
    return run_id


def _write_checkpoint(tmp_path: Path, entries: list[dict], *, sharded: bool) -> Path:
    """``last.ckpt`` as a single file, or as an FSDP2/ModelParallel directory whose ``meta.pt`` holds the
    non-tensor state."""
    target = tmp_path / "checkpoints" / "last.ckpt"
    target.parent.mkdir(parents=True, exist_ok=True)
    state = {"global_step": 5, "state_dict": {"w": torch.zeros(2)}, CHECKPOINT_KEY: entries}
    if sharded:
        target.mkdir()
        torch.save({k: v for k, v in state.items() if k != "state_dict"}, target / "meta.pt")
        (target / ".metadata").write_bytes(b"")
    else:
        torch.save(state, target)
    return target


@pytest.mark.parametrize("sharded", [False, True], ids=["file", "fsdp2-directory"])
def test_resume_continues_a_failed_run_from_a_file_or_sharded_checkpoint(tmp_path: Path, mlflow_uri: str,
                                                                         sharded: bool) -> None:
    experiment = f"resume-unit-{uuid.uuid4().hex[:8]}"
    run_id = _earlier_run(mlflow_uri, experiment, "FAILED")
    entry = {"tracking_uri": canonical_tracking_uri(mlflow_uri), "experiment": experiment, "run_id": run_id}
    _write_checkpoint(tmp_path, [entry], sharded=sharded)
    trainer = _trainer(tmp_path, mlflow_uri, experiment)
    continue_checkpoint_runs(trainer, "last")
    logger = trainer.logger
    assert logger.run_id == run_id and logger.resumed_step == 5
    client = MlflowClient(mlflow_uri)
    assert client.get_run(run_id).info.status == "RUNNING"
    logger.log_metrics({"train/mlm/loss": 2.0}, step=5)
    logger.finalize("success")
    assert client.get_run(run_id).info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "train/mlm/loss")] == [0, 5]
    assert len(client.search_runs([client.get_experiment_by_name(experiment).experiment_id])) == 1


@pytest.mark.parametrize("case", ["other-store", "missing-run", "other-experiment", "deleted-run", "no-entry"])
def test_resume_starts_a_new_run_with_a_warning_when_the_run_is_elsewhere(tmp_path: Path, mlflow_uri: str,
                                                                          case: str) -> None:
    experiment = f"resume-unit-{uuid.uuid4().hex[:8]}"
    run_id = _earlier_run(mlflow_uri, experiment if case != "other-experiment" else experiment + "-old", "FAILED")
    entry = {"tracking_uri": canonical_tracking_uri(mlflow_uri), "experiment": experiment, "run_id": run_id}
    if case == "other-store":
        entry["tracking_uri"] = canonical_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    elif case == "missing-run":
        entry["run_id"] = uuid.uuid4().hex
    elif case == "deleted-run":
        MlflowClient(mlflow_uri).delete_run(run_id)
    _write_checkpoint(tmp_path, [] if case == "no-entry" else [entry], sharded=False)
    trainer = _trainer(tmp_path, mlflow_uri, experiment)
    continue_checkpoint_runs(trainer, "last")
    with pytest.warns(UserWarning, match="new run"):
        new_id = trainer.logger.run_id
    assert new_id != run_id and trainer.logger.resumed_step is None
    assert MlflowClient(mlflow_uri).get_run(run_id).info.status == "FAILED"  # the earlier run is left alone


def test_no_checkpoint_to_resume_is_a_plain_new_run(tmp_path: Path, mlflow_uri: str) -> None:
    experiment = f"resume-unit-{uuid.uuid4().hex[:8]}"
    trainer = _trainer(tmp_path, mlflow_uri, experiment)
    continue_checkpoint_runs(trainer, "last")  # no last.ckpt yet: Lightning starts from scratch
    continue_checkpoint_runs(trainer, None)
    assert trainer.logger.run_id is not None and not trainer.logger.continued
