"""Bad sweep input: one line on stderr, exit 2, and no study (storage), no MLflow experiment written."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from xlt.cli import main


def _fails(args: list[str], capsys: pytest.CaptureFixture[str], one_line: bool = True) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("xlt: error: ")
    assert len(lines) == 1 or not one_line
    return lines[-1]


@pytest.mark.parametrize(("name", "sweep", "n_trials", "message"), [
    ("badkey", {"space": {"data.init_args.alphaa": {"low": 0.1, "high": 1.0}}}, 2, "'data.init_args.alphaa'"),
    ("badsection", {"space": {"model.lr": {"low": 0.1, "high": 1.0}}}, 2, "'model.lr'"),
    ("badtype", {"space": {"data.init_args.block_size": {"choices": ["big"]}}}, 2, "'data.init_args.block_size'"),
    ("badbucket", {"space": {"data.init_args.oversampling.tial": {"low": 1.0, "high": 2.0}}}, 2, "tial"),
    ("zero", {}, 0, "n_trials 0 must be > 0"),
    ("malformed", {"storage": "not a url"}, 2, "'not a url' is not a database URL"),
    ("nodir", {"storage": "sqlite:////nonexistent/dir/x.db"}, 2, "directory /nonexistent/dir does not exist"),
    ("unreachable", {"storage": "postgresql://xlt@127.0.0.1:9/none"}, 2, "cannot be opened"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(write_sweep, mlflow_uri: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str], name: str,
                                                           sweep: dict, n_trials: int, message: str) -> None:
    config = write_sweep(name, sweep=sweep)
    err = _fails(["sweep", "--config", str(config), "--n_trials", str(n_trials)], capsys)
    assert message in err
    assert not (tmp_path / f"{name}.db").exists() and not (tmp_path / name).exists()
    assert MlflowClient(mlflow_uri).get_experiment_by_name(f"sweep-{name}") is None


def test_an_objective_metric_never_logged_fails_the_first_trial_loudly(write_sweep, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    objectives = [{"name": "acc", "metric": "val/xnli/acc/macro", "direction": "maximize"}]
    config = write_sweep("nometric", sweep={"objectives": objectives})
    err = _fails(["sweep", "--config", str(config), "--n_trials", "3"], capsys, one_line=False)  # the fit prints first
    assert "metric val/xnli/acc/macro was not logged" in err and "val/mlm/loss/macro" in err
    study = optuna.load_study(study_name="nometric", storage=f"sqlite:///{tmp_path / 'nometric.db'}")
    assert len(study.trials) == 1  # the study stops at its first trial
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert "val/xnli/acc/macro was not logged" in trial.user_attrs["xlt.error"]
