"""xlt sweep end to end: a 4-trial multi-objective study, its MLflow runs, xlt sweep best, bad input."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from xlt.cli import main
from xlt.tuning.tracking import PARENT_RUN_ATTR, TRIAL_STATE_TAG


def test_four_trial_study_child_runs_pareto_front_and_best_round_trip(write_sweep, mlflow_uri: str, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = write_sweep("four")
    main(["sweep", "--config", str(config), "--n_trials", "4"])
    study = optuna.load_study(study_name="four", storage=f"sqlite:///{tmp_path / 'four.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert study.best_trials  # a non-empty Pareto front
    assert study.metric_names == ["tail_loss", "high_loss"]  # what optuna-dashboard and Optuna's plots show

    client = MlflowClient(mlflow_uri)
    parent = study.user_attrs[PARENT_RUN_ATTR]
    assert client.get_run(parent).info.run_name == "four"
    children = client.search_runs([client.get_run(parent).info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent}'")
    assert len(children) == 4
    by_trial = {int(run.data.tags["xlt.trial"]): run for run in children}
    for trial in study.trials:
        run = by_trial[trial.number]
        assert run.data.tags[TRIAL_STATE_TAG] == "COMPLETE"
        assert float(run.data.params["config.data.init_args.alpha"]) == pytest.approx(
            trial.params["data.init_args.alpha"])
        assert run.data.metrics["sweep/tail_loss"] == pytest.approx(trial.values[0])
        assert run.data.metrics["sweep/high_loss"] == pytest.approx(trial.values[1])
        assert "val/mlm/loss/qah" in run.data.metrics  # per-language metrics of the fit
        assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
    plots = {a.path for a in client.list_artifacts(parent, "plots")}
    assert {"plots/pareto_front.png", "plots/history_tail_loss.png", "plots/importances_tail_loss.png"} <= plots

    capsys.readouterr()
    main(["sweep", "best", "--config", str(config)])
    best_text = capsys.readouterr().out
    tail_best = min(study.best_trials, key=lambda t: t.values[0])
    assert best_text.startswith(f"# xlt sweep best: study four, trial {tail_best.number} ")
    best = tmp_path / "best.yaml"
    best.write_text(best_text)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(best), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["init_args"]["alpha"] == pytest.approx(tail_best.params["data.init_args.alpha"])
    assert printed["data"]["init_args"]["oversampling"]["tail"] == pytest.approx(
        tail_best.params["data.init_args.oversampling.tail"])

