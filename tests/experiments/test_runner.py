"""A tiny two-stage experiment through `xlt experiment run|plan|report`: a killed stage resumes from its checkpoint
and MLflow run, a rerun does nothing, an edit reruns only what depends on it, the plan is in dependency order, the
page comes from the MLflow runs and is the same when rebuilt, and a bad stage config stops everything at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "max_position_embeddings": 66}


def xlt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "helpers"), "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "xlt", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=900)


def write_recipe(work: Path, synthetic_dir: Path, tokenizer_dir: Path, task_lr: float = 1e-3) -> Path:
    pretrain = {
        "trainer": {"max_steps": 16, "val_check_interval": 8, "log_every_n_steps": 1,
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"every_n_train_steps": 4, "save_last": True, "save_top_k": -1}},
                                  {"class_path": "kill_callback.KillOnceAtStep",
                                   "init_args": {"step": 9, "marker": str(work / "killed.marker")}}]},
        "model": {"init_args": {"config": TINY_MODEL, "warmup_steps": 2}},
        "data": {"init_args": {"corpus": str(synthetic_dir / "mlm"), "panel": str(synthetic_dir / "panel.yaml"),
                               "tokenizer": str(tokenizer_dir), "block_size": 32, "batch_size": 8,
                               "val_blocks_per_language": 2, "cache_dir": str(work / "cache")}},
    }
    (work / "pretrain.yaml").write_text(yaml.safe_dump(pretrain))
    recipe = {
        "experiment": {"name": "tiny", "title": "Tiny two-stage experiment", "claim": "qaa beats qaj"},
        "root": str(work / "runs"), "tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
        "stages": {
            "pretrain": {"command": "fit", "configs": [str(ROOT / "configs" / "quickstart.yaml"),
                                                       str(work / "pretrain.yaml")]},
            "udpos": {"command": "fit", "label": "tiny", "configs": [str(ROOT / "configs" / "tasks" / "udpos.yaml")],
                      "args": {"model.init_args.encoder": "${dir:pretrain}/export",
                               "model.init_args.predictions_dir": "${dir:self}/predictions",
                               "model.init_args.lr": task_lr, "model.init_args.n_boot": 200,
                               "data.init_args.data": str(synthetic_dir / "ud"), "data.init_args.panel": "synthetic",
                               "data.init_args.max_length": 64, "trainer.max_epochs": 1,
                               "trainer.accelerator": "cpu"}}},
        "report": [{"kind": "scores", "stages": ["udpos"], "tasks": ["udpos"], "groups": ["qaa", "macro"]},
                   {"kind": "difference", "claim": "qaa beats qaj", "task": "udpos", "expect": "greater",
                    "a": {"stage": "udpos", "languages": ["qaa"]}, "b": {"stage": "udpos", "languages": ["qaj"]},
                    "data": str(synthetic_dir / "ud"), "n_boot": 200}],
    }
    path = work / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def stage_runs(work: Path, stage: str) -> list:
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("experiment-tiny")
    return client.search_runs([experiment.experiment_id], f"tags.`xlt.experiment.stage` = '{stage}'")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path, tiny_tokenizer_dir: Path) -> dict:
    """Run the tiny experiment: killed in its first stage, then rerun (resumed), then rerun again (nothing to do)."""
    work = tmp_path_factory.mktemp("experiment")
    recipe = write_recipe(work, synthetic_dir, tiny_tokenizer_dir)
    killed = xlt("experiment", "run", str(recipe), cwd=work)
    checkpoint = next((work / "runs" / "tiny").glob("pretrain-*/checkpoints/last.ckpt"))
    killed_step = torch.load(checkpoint, weights_only=False)["global_step"]
    killed_runs = [r.info.run_id for r in stage_runs(work, "pretrain")]
    resumed = xlt("experiment", "run", str(recipe), cwd=work)
    again = xlt("experiment", "run", str(recipe), cwd=work)
    return {"work": work, "recipe": recipe, "killed": killed, "killed_step": killed_step,
            "killed_runs": killed_runs, "resumed": resumed, "again": again}


def test_a_killed_stage_resumes_from_its_checkpoint_and_mlflow_run(experiment: dict) -> None:
    killed, resumed = experiment["killed"], experiment["resumed"]
    assert killed.returncode == 128 + 9, killed.stderr[-2000:]
    assert "pretrain failed (exit -9)" in killed.stderr
    assert experiment["killed_step"] == 8  # the last checkpoint before the kill at step 9
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "pretrain: xlt fit" in resumed.stdout and "(resuming from checkpoints/last.ckpt)" in resumed.stdout
    runs = stage_runs(experiment["work"], "pretrain")
    assert [r.info.run_id for r in runs] == experiment["killed_runs"]  # one run, continued
    assert runs[0].info.status == "FINISHED"
    history = MlflowClient(f"sqlite:///{experiment['work'] / 'mlflow.db'}").get_metric_history(
        runs[0].info.run_id, "train/mlm/loss")
    assert max(m.step for m in history) == 15  # trained to the end (16 steps) in the same run


def test_stages_are_children_of_the_experiment_run(experiment: dict) -> None:
    client = MlflowClient(f"sqlite:///{experiment['work'] / 'mlflow.db'}")
    exp = client.get_experiment_by_name("experiment-tiny")
    parents = client.search_runs([exp.experiment_id], "tags.`xlt.experiment.parent` = 'tiny'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    for stage in ("pretrain", "udpos"):
        (run,) = stage_runs(experiment["work"], stage)
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["xlt.experiment.unit"] == stage


def test_a_rerun_does_nothing(experiment: dict) -> None:
    again = experiment["again"]
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to run (2 units finished)" in again.stdout
    assert len(stage_runs(experiment["work"], "udpos")) == 1
    one = xlt("experiment", "run", str(experiment["recipe"]), "--only", "udpos", cwd=experiment["work"])
    assert one.returncode == 0 and "udpos done" in one.stdout and "pretrain" not in one.stdout  # plan's line


def test_plan_prints_units_in_dependency_order(experiment: dict) -> None:
    result = xlt("experiment", "plan", str(experiment["recipe"]), cwd=experiment["work"])
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    first = lines.index("# level 1")
    second = lines.index("# level 2")
    assert any(line.startswith("#   pretrain (done; needs nothing)") for line in lines[first:second])
    assert any(line.startswith("#   udpos (done; needs pretrain)") for line in lines[second:])
    assert f"xlt experiment run {experiment['recipe']} --only udpos" in lines


def test_the_page_comes_from_mlflow_and_is_the_same_when_rebuilt(experiment: dict) -> None:
    work = experiment["work"]
    (run,) = stage_runs(work, "udpos")
    pages = []
    for name in ("one.md", "two.md"):
        result = xlt("experiment", "report", f"[{experiment['recipe']}]", "--out", str(work / name), cwd=work)
        assert result.returncode == 0, result.stderr[-2000:]
        pages.append((work / name).read_text())
    assert pages[0] == pages[1]
    page = pages[0]
    accuracy = f"{100 * run.data.metrics['test/udpos/acc/qaa']:.1f}"
    assert f"| tiny (1/1 runs) | {accuracy}" in page
    assert "2 of 2 units finished" in page and f"{os.cpu_count()} CPUs" in page
    claim = next(line for line in page.splitlines() if line.startswith("| qaa beats qaj | **"))
    assert "not run" not in claim  # judged from the prediction files the run logged to MLflow
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    assert {"predictions/test-qaa.tsv", "predictions/test-qaj.tsv"} <= {
        a.path for a in client.list_artifacts(run.info.run_id, "predictions")}
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])  # the findings are on the experiment's run too
    assert parent.data.tags["xlt.verdicts"] in page
    section = Path(client.download_artifacts(parent.info.run_id, "results/section.md", str(work)))
    assert section.read_text() in page


def test_an_edit_to_the_second_stage_reruns_only_it(experiment: dict, synthetic_dir: Path,
                                                     tiny_tokenizer_dir: Path) -> None:
    work = experiment["work"]
    write_recipe(work, synthetic_dir, tiny_tokenizer_dir, task_lr=2e-3)
    result = xlt("experiment", "run", str(experiment["recipe"]), cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pretrain done" in result.stdout and "skipped" in result.stdout
    assert "[1/1] udpos: xlt fit" in result.stdout
    assert len(stage_runs(work, "pretrain")) == 1 and len(stage_runs(work, "udpos")) == 2


def test_a_stage_config_that_does_not_resolve_stops_before_any_stage(empty_cwd: Path, synthetic_dir: Path,
                                                                     tiny_tokenizer_dir: Path) -> None:
    recipe = write_recipe(empty_cwd, synthetic_dir, tiny_tokenizer_dir)
    raw = yaml.safe_load(recipe.read_text())
    raw["stages"]["udpos"]["args"]["model.init_args.no_such_option"] = 1
    recipe.write_text(yaml.safe_dump(raw, sort_keys=False))
    before = sorted(p.name for p in empty_cwd.iterdir())
    result = xlt("experiment", "run", str(recipe), cwd=empty_cwd)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("xlt: error:") and "stage udpos" in errors[0]
    assert "no_such_option" in errors[0]
    assert sorted(p.name for p in empty_cwd.iterdir()) == before  # no runs/, no mlflow.db


def test_a_killed_runner_takes_its_stage_process_with_it(tmp_path: Path, synthetic_dir: Path,
                                                         tiny_tokenizer_dir: Path) -> None:
    import signal
    import time

    recipe = write_recipe(tmp_path, synthetic_dir, tiny_tokenizer_dir)
    (tmp_path / "killed.marker").touch()  # no kill from inside: the runner is what dies here
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "helpers"), "OMP_NUM_THREADS": "1"}
    runner = subprocess.Popen([sys.executable, "-m", "xlt", "experiment", "run", str(recipe)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = tmp_path / "runs" / "tiny" / ".logs"
    deadline = time.monotonic() + 300
    while not (logs.is_dir() and any(logs.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # the stage's process is up
    stage = subprocess.run(["pgrep", "-f", str(tmp_path / "runs" / "tiny" / "pretrain")], capture_output=True,
                           text=True).stdout.split()
    assert stage, "the stage's process did not start"
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    def alive(pid: str) -> bool:  # a zombie (state Z) waiting for init to reap it counts as dead
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False

    for _ in range(50):
        if not any(alive(pid) for pid in stage):
            break
        time.sleep(0.2)
    assert not any(alive(pid) for pid in stage), "the stage outlived its runner"
