"""What a tiny ``xlt fit`` prints: plain progress lines off a terminal, no per-language ``datasets`` bars, and an
end-of-run summary naming the export, the checkpoints, the MLflow run and a per-language validation table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.test_cli import QUICKSTART, tiny_overlay
from xlt.cli import main


def run_fit(args: list[str]) -> None:
    try:
        main(args)
    except SystemExit as exit_info:
        assert not exit_info.code, exit_info.code


def test_tiny_fit_ends_on_a_summary(tmp_path: Path, synthetic_dir: Path, tiny_tokenizer_dir: Path, mlflow_uri: str,
                                    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    import xlt.datamodules.corpus

    stage_lines: list[str] = []  # Lightning's log handler holds whichever stderr existed when it was imported
    monkeypatch.setattr(xlt.datamodules.corpus, "rank_zero_info", stage_lines.append)
    overlay = tiny_overlay(tmp_path, synthetic_dir, tiny_tokenizer_dir, mlflow_uri, run_name="summary")
    run_fit(["fit", "--config", str(QUICKSTART), "--config", str(overlay)])
    out, err = capfd.readouterr()
    captured = out + err

    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("tests")
    (run,) = client.search_runs([experiment.experiment_id], "tags.`mlflow.runName` = 'summary'")
    summary = out[out.index("xlt fit: done after 12 steps"):]
    assert str(tmp_path / "run" / "export") in summary
    assert str(tmp_path / "run" / "checkpoints") in summary
    assert run.info.run_id in summary and "experiment 'tests'" in summary
    assert f"mlflow ui --backend-store-uri {mlflow_uri}" in summary
    assert f"#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning" in summary
    panel = yaml.safe_load((synthetic_dir / "panel.yaml").read_text(encoding="utf-8"))
    for language in panel["languages"]:
        code, bucket = language["code"], str(language["bucket"])
        (row,) = [line for line in summary.splitlines() if line.split()[:1] == [code]]
        loss = float(row.split()[2])
        assert row.split()[1] == bucket
        assert loss == pytest.approx(run.data.metrics[f"val/mlm/loss/{code}"], abs=1e-3)
        assert re.search(r"\d+\.\d%\s+\d+\.\d%$", row), row  # realised and target share
    assert re.search(r"^\s+macro\s+\d+\.\d{3}", summary, re.MULTILINE)

    # one line per data stage, no bar per language or split; no dependency deprecation noise
    assert "Generating train split" not in captured and "tokenizing q" not in captured
    assert "Map" not in captured and "Writing model shards" not in captured
    assert "LeafSpec" not in captured and "litlogger" not in captured
    assert len(stage_lines) == 1, stage_lines
    assert re.match(r"xlt: tokenized \d+ languages \([\d,]+ tokens\) -> [\d,]+ blocks of 32 in ", stage_lines[0])

    # not a terminal: plain progress lines instead of a redrawn bar
    steps = re.findall(r"^step (\d+)/12  loss \d+\.\d{3}  lr \d\.\de[-+]\d+  \d+\.\d it/s$", out, re.MULTILINE)
    assert steps == [str(s) for s in range(1, 13)]
    assert len(re.findall(r"^validation at step (?:6|12)  val/mlm/loss/macro \d", out, re.MULTILINE)) == 2
    assert "\r" not in out


def test_plain_progress_is_silent_under_a_progress_bar() -> None:
    from types import SimpleNamespace

    from xlt.callbacks.summary import PlainProgress

    trainer = SimpleNamespace(is_global_zero=True, progress_bar_callback=object(), sanity_checking=False)
    assert not PlainProgress()._active(trainer)  # type: ignore[arg-type]
    trainer.progress_bar_callback = None
    assert PlainProgress()._active(trainer)  # type: ignore[arg-type]
    trainer.is_global_zero = False
    assert not PlainProgress()._active(trainer)  # type: ignore[arg-type]


@pytest.mark.parametrize(("log_every", "max_steps", "every"), [(1, 12, 1), (10, 300, 20), (50, 100000, 5000),
                                                               (10, -1, 10)])
def test_plain_progress_prints_about_20_lines_a_run(log_every: int, max_steps: int, every: int) -> None:
    from types import SimpleNamespace

    from xlt.callbacks.summary import PlainProgress

    trainer = SimpleNamespace(log_every_n_steps=log_every, max_steps=max_steps)
    assert PlainProgress()._interval(trainer) == every  # type: ignore[arg-type]
    assert PlainProgress(every_n_steps=7)._interval(trainer) == 7  # type: ignore[arg-type]
