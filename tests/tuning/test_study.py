"""Studies: pruning a deliberately bad trial (single- and multi-objective), resuming to the requested count, a
SIGKILLed worker's trial ending FAIL, two workers sharing one storage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from xlt.cli import main
from xlt.tuning.pruning import INTERMEDIATE_PREFIX

ROOT = Path(__file__).resolve().parents[2]
HELPERS = ROOT / "tests" / "helpers"
GOOD = {"data.init_args.alpha": 0.3, "data.init_args.oversampling.tail": 2.0, "model.init_args.lr": 1e-3}
ABSURD = {**GOOD, "model.init_args.lr": 50.0}  # AdamW steps of 50: the loss explodes at once
LR_SPACE = {"data.init_args.alpha": {"low": 0.1, "high": 1.0},
            "data.init_args.oversampling.tail": {"low": 1.0, "high": 16.0, "log": True},
            "model.init_args.lr": {"low": 1e-4, "high": 100.0, "log": True}}
SINGLE = {"objectives": [{"name": "macro_loss", "metric": "val/mlm/loss/macro"}], "space": LR_SPACE,
          "pruner": {"class_path": "optuna.pruners.MedianPruner",
                     "init_args": {"n_startup_trials": 1, "n_warmup_steps": 0}}}
MULTI = {"space": LR_SPACE, "multi_objective_pruner": {"k": 1}}


def _steps(trial: optuna.trial.FrozenTrial) -> list[int]:
    return sorted(int(key.removeprefix(INTERMEDIATE_PREFIX)) for key in trial.user_attrs
                  if key.startswith(INTERMEDIATE_PREFIX))


@pytest.mark.parametrize(("name", "sweep", "directions"), [("prune1", SINGLE, ["minimize"]),
                                                           ("prune2", MULTI, ["minimize", "minimize"])])
def test_an_absurd_learning_rate_is_pruned_before_its_last_step(write_sweep, tmp_path: Path, name: str,
                                                                sweep: dict, directions: list[str]) -> None:
    config = write_sweep(name, sweep=sweep)
    storage = f"sqlite:///{tmp_path / f'{name}.db'}"
    study = optuna.create_study(study_name=name, storage=storage, directions=directions)
    study.enqueue_trial(GOOD)
    study.enqueue_trial(ABSURD)
    main(["sweep", "--config", str(config), "--n_trials", "2"])
    good, bad = optuna.load_study(study_name=name, storage=storage).trials
    assert good.state == TrialState.COMPLETE and _steps(good) == [2, 4]
    assert bad.params["model.init_args.lr"] == 50.0
    assert bad.state == TrialState.PRUNED and _steps(bad) == [2]  # stopped at the first validation of two
    assert bad.user_attrs[f"{INTERMEDIATE_PREFIX}2"][0] > good.user_attrs[f"{INTERMEDIATE_PREFIX}2"][0]


def test_rerun_resumes_up_to_the_requested_count(write_sweep, tmp_path: Path) -> None:
    config = write_sweep("resume")
    main(["sweep", "--config", str(config), "--n_trials", "1"])
    main(["sweep", "--config", str(config), "--n_trials", "1"])  # already there: runs nothing
    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{tmp_path / 'resume.db'}")
    assert len(study.trials) == 1
    main(["sweep", "--config", str(config), "--n_trials", "2"])
    assert [t.number for t in study.trials] == [0, 1]
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert study.trials[0].params != study.trials[1].params


def _worker(config: Path, n_trials: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HELPERS), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "xlt", "sweep", "--config", str(config), "--n_trials",
                             str(n_trials)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


@pytest.mark.parametrize("max_retry", [0, 1])
def test_a_killed_workers_trial_ends_fail_and_the_study_continues(write_sweep, tmp_path: Path, mlflow_uri: str,
                                                                   max_retry: int) -> None:
    name = f"killed{max_retry}"
    kill = [{"class_path": "kill_callback.KillAtStep", "init_args": {"step": 3}}]
    killed = _worker(write_sweep(name, callbacks=kill, sweep={"max_retry": max_retry}), 2)
    out, _ = killed.communicate(timeout=300)
    assert killed.returncode == -9, out  # SIGKILL inside trial 0, after its step-2 validation
    storage = f"sqlite:///{tmp_path / f'{name}.db'}"
    study = optuna.load_study(study_name=name, storage=storage)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]  # what a dead worker leaves behind

    rerun = _worker(write_sweep(name, sweep={"max_retry": max_retry}), 2)  # the same study without the kill
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]  # FAIL: uncounted
    assert (trials[1].params == trials[0].params) is bool(max_retry)  # retried with the same parameters
    dead_run = MlflowClient(mlflow_uri).get_run(trials[0].user_attrs["xlt.mlflow_run_id"])
    assert dead_run.info.status == "FAILED" and dead_run.data.tags["xlt.trial_state"] == "FAIL"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_on_one_storage_share_one_study(write_sweep, tmp_path: Path, request: pytest.FixtureRequest,
                                                    mlflow_uri: str, backend: str) -> None:
    name = f"shared_{backend}"
    storage = request.getfixturevalue("postgres_url") if backend == "postgresql" else \
        f"sqlite:///{tmp_path / f'{name}.db'}"
    config = write_sweep(name, storage=storage)
    MlflowClient(mlflow_uri).search_experiments()  # the MLflow store exists first (MLflow's migrations are not
    workers = [_worker(config, 3) for _ in range(2)]  # safe to run twice at once on a fresh SQLite file)
    outs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [out[-3000:] for out in outs]
    study = optuna.load_study(study_name=name, storage=storage)
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers))) and 3 <= len(numbers) <= 4  # distinct, none lost
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len({t.user_attrs["xlt.mlflow_run_id"] for t in study.trials}) == len(numbers)  # one child run each
    assert len({tuple(t.params.values()) for t in study.trials}) == len(numbers)  # no point drawn twice


# Validation losses over 2 gloo ranks differ from one process's by float32 summation order only: test_distributed's
# measured bound for these losses is 6e-7 relative; per-bucket means of them stay within it.
FSDP_REL = 6e-7


def test_a_two_process_fsdp2_trial_gives_the_single_process_objectives(write_sweep, tmp_path: Path) -> None:
    """The cluster path: torchrun starts both ranks of ``xlt sweep``; rank 0 asks the study and broadcasts the
    trial, both fit it under FSDP2 (global batch 8 either way), only rank 0 writes to the storage."""
    single = write_sweep("single", trainer={"max_steps": 4})
    main(["sweep", "--config", str(single), "--n_trials", "1"])
    sharded = write_sweep("sharded", trainer={"max_steps": 4})
    overlay = tmp_path / "half_batch.yaml"
    overlay.write_text("data:\n  init_args:\n    batch_size: 4\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "xlt", "sweep", "--config", str(sharded), "--config",
                           str(ROOT / "configs" / "strategy" / "fsdp_cpu.yaml"), "--config", str(overlay),
                           "--n_trials", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    one, = optuna.load_study(study_name="single", storage=f"sqlite:///{tmp_path / 'single.db'}").trials
    two, = optuna.load_study(study_name="sharded", storage=f"sqlite:///{tmp_path / 'sharded.db'}").trials
    fit = yaml.safe_load(two.user_attrs["xlt.fit_config"])["trainer"]
    assert fit["strategy"]["class_path"] == "xlt.models.sharding.FSDP2Strategy" and fit["devices"] == 2
    assert "[rank: 1] Seed set" in done.stdout + done.stderr  # rank 1 fitted the trial too
    assert two.state == TrialState.COMPLETE and two.params == one.params  # same trial number, same draw
    assert two.values == pytest.approx(one.values, rel=FSDP_REL, abs=0)
