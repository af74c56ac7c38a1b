"""The ``xlt`` command end to end: help, bad input (one line, exit 2, nothing written), MLflow tracking, resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from xlt.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
TINY_MODEL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "max_position_embeddings": 66}


def tiny_overlay(tmp_path: Path, synthetic_dir: Path, tokenizer_dir: Path, mlflow_uri: str, *, steps: int = 12,
                 run_name: str = "tiny", extra_callbacks: list | None = None, **data: object) -> Path:
    """A config overlay that shrinks the quickstart to seconds, writing everything under ``tmp_path``."""
    callbacks = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
         "init_args": {"every_n_train_steps": 4,
                       "save_last": True, "save_top_k": -1}},
        *(extra_callbacks or []),
    ]
    overlay = {
        "trainer": {"max_steps": steps, "val_check_interval": 6, "log_every_n_steps": 1,
                    "default_root_dir": str(tmp_path / "run"), "callbacks": callbacks,
                    "logger": {"class_path": "xlt.callbacks.tracking.TrackingLogger",
                               "init_args": {"experiment_name": "tests", "run_name": run_name,
                                             "tracking_uri": mlflow_uri}}},
        "model": {"init_args": {"config": TINY_MODEL, "warmup_steps": 2}},
        "data": {"init_args": {"corpus": str(synthetic_dir / "mlm"), "panel": str(synthetic_dir / "panel.yaml"),
                               "tokenizer": str(tokenizer_dir), "block_size": 32, "batch_size": 8,
                               "val_blocks_per_language": 2, "cache_dir": str(tmp_path / "cache"), **data}},
    }
    path = tmp_path / f"{run_name}.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``xlt`` in-process; returns (exit code, stdout, the error line). Progress and log lines that went to
    stderr before the failure are dropped, but there must be exactly one error line and it must come last."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    error_lines = [line for line in err.splitlines() if "xlt: error:" in line]
    if error_lines:
        assert len(error_lines) == 1 and err.rstrip("\n").endswith(error_lines[0]), err
        err = error_lines[0] + "\n"
    return int(exit_info.value.code or 0), out, err


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--help"])
    out = capsys.readouterr().out
    for command in ("fit", "validate", "test", "predict", "synth"):
        assert f"\n  {command} " in out


def test_fit_help_lists_xlt_classes_as_known_subclasses(capsys: pytest.CaptureFixture[str]) -> None:
    """``--model.help`` / ``--data.help`` / ``--trainer.callbacks.help`` can be discovered from ``xlt fit --help``."""
    from xlt.datamodules.tasks import DATA_MODULES

    code, out, _ = run_main(["fit", "--help"], capsys)
    assert code == 0
    text = "".join(out.split())  # long class paths wrap across lines
    heads = ("classification.SequenceClassification", "token_classification.TokenClassification",
             "qa.SpanExtraction", "retrieval.Retrieval")
    expected = ["xlt.models.mlm.MLMPretraining", "xlt.datamodules.corpus.MultilingualCorpusDataModule",
                *(f"{dm.__module__}.{dm.__qualname__}" for dm in DATA_MODULES.values()),
                *(f"xlt.models.{head}" for head in heads),
                "xlt.callbacks.tracking.LanguageMixLogger", "xlt.callbacks.optim.LearningRateLogger"]
    for class_path in expected:
        assert class_path in text, class_path


def test_top_level_help_imports_nothing_heavy() -> None:
    """``xlt --help`` stays fast: the Lightning classes are imported only for the Lightning subcommands."""
    script = ("import sys; from xlt.cli import main; main(['--help']); "
              "heavy = [m for m in ('torch', 'lightning', 'transformers', 'xlt.models') if m in sys.modules]; "
              "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def _suite_commands() -> list[tuple[str, object]]:
    from xlt.cli import SUITE_COMMANDS, Group

    rows: list[tuple[str, object]] = []
    for name, entry in SUITE_COMMANDS.items():
        if isinstance(entry, Group):
            rows += [(f"{name} {sub}", command) for sub, command in entry.commands.items()]
        else:
            rows.append((name, entry))
    return rows


def test_help_has_one_line_per_command_of_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    from xlt.cli import LIGHTNING_COMMANDS, SUITE_COMMANDS

    main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    names = [*LIGHTNING_COMMANDS, *SUITE_COMMANDS, *(name for name, _ in _suite_commands())]
    for name in names:
        (line,) = [line for line in lines if re.fullmatch(rf"  {name} {{2,}}\S.{{10,}}", line)]


@pytest.mark.parametrize("name", [name for name, _ in _suite_commands()])
def test_every_suite_command_is_a_typed_function_documenting_every_option(
        name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``xlt <cmd> --help`` lists each parameter of the command's function with its docstring text; an unknown
    option is one error line, exit 2."""
    import inspect

    from docstring_parser import parse

    command = dict(_suite_commands())[name]
    function = command.load()  # type: ignore[attr-defined]
    parameters = list(inspect.signature(function).parameters)[1 if command.recipe else 0:]  # type: ignore
    described = {p.arg_name: p.description for p in parse(inspect.getdoc(function) or "").params}
    code, out, _ = run_main([*name.split(), "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    for parameter in parameters:
        assert f"--{parameter} " in out or f"\n  {parameter} " in out, (name, parameter)
        first_words = " ".join((described.get(parameter) or "").split()[:4])
        assert first_words and first_words in text, (name, parameter, first_words)
    code, _, err = run_main([*name.split(), "--no_such_option", "1"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--no_such_option" in err, err


def test_unknown_command_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["pretrain"], capsys)
    assert code == 2 and err.count("\n") == 1 and "pretrain" in err


BAD_INPUTS = {
    "unknown_cli_key": (["--model.init_args.bogus_rate", "0.1"], "bogus_rate"),
    "unknown_language": (["--data.init_args.languages", "[qaa,zzz]"], "zzz"),
    "oversampling_zero": (["--data.init_args.oversampling", "{qab: 0}"], "qab"),
    "block_exceeds_positions": (["--data.init_args.block_size", "128"], "block_size"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_line_exit_2_nothing_written(case: str, tmp_path: Path, synthetic_dir: Path,
                                                   tiny_tokenizer_dir: Path, mlflow_uri: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    extra, culprit = BAD_INPUTS[case]
    overlay = tiny_overlay(tmp_path, synthetic_dir, tiny_tokenizer_dir, mlflow_uri, run_name=case)
    code, _, err = run_main(["fit", "--config", str(QUICKSTART), "--config", str(overlay), *extra], capsys)
    assert code == 2, err
    assert err.startswith("xlt: error:") and err.count("\n") == 1, err
    assert culprit in err
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "export").exists()


def test_unknown_key_in_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  init_args:\n    colour: red\n")
    code, _, err = run_main(["fit", "--config", str(QUICKSTART), "--config", str(bad), "--print_config"], capsys)
    assert code == 2 and err.count("\n") == 1 and "colour" in err


def test_corpus_problems_name_the_file(tmp_path: Path, synthetic_dir: Path, tiny_tokenizer_dir: Path,
                                       mlflow_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "qaa.txt").write_text((synthetic_dir / "mlm" / "qaa.txt").read_text(encoding="utf-8"))
    (corpus / "qab.txt").write_text("")
    overlay = tiny_overlay(tmp_path, synthetic_dir, tiny_tokenizer_dir, mlflow_uri, run_name="corpus",
                           corpus=str(corpus))
    base = ["fit", "--config", str(QUICKSTART), "--config", str(overlay)]
    code, _, err = run_main([*base, "--data.init_args.languages", "[qaa,qab]"], capsys)
    assert code == 2 and err.count("\n") == 1 and "qab.txt" in err, err
    code, _, err = run_main([*base, "--data.init_args.languages", "[qaa,qac]"], capsys)
    assert code == 2 and err.count("\n") == 1 and "qac" in err, err


def test_panel_with_missing_field(tmp_path: Path, synthetic_dir: Path, tiny_tokenizer_dir: Path,
                                  mlflow_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    panel = yaml.safe_load((synthetic_dir / "panel.yaml").read_text(encoding="utf-8"))
    del panel["languages"][1]["script"]
    bad_panel = tmp_path / "bad_panel.yaml"
    bad_panel.write_text(yaml.safe_dump(panel))
    overlay = tiny_overlay(tmp_path, synthetic_dir, tiny_tokenizer_dir, mlflow_uri, run_name="panel",
                           panel=str(bad_panel))
    code, _, err = run_main(["fit", "--config", str(QUICKSTART), "--config", str(overlay)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "script" in err and str(bad_panel) in err and panel["languages"][1]["code"] in err


def xlt_fit(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "helpers"), "OMP_NUM_THREADS": "1",
           **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "xlt", "fit", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


def test_tiny_fit_tracks_to_mlflow_and_exports(tmp_path: Path, synthetic_dir: Path, tiny_tokenizer_dir: Path,
                                               mlflow_uri: str) -> None:
    from mlflow.tracking import MlflowClient
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    overlay = tiny_overlay(tmp_path, synthetic_dir, tiny_tokenizer_dir, mlflow_uri, run_name="tracked")
    result = xlt_fit("--config", str(QUICKSTART), "--config", str(overlay))
    assert result.returncode == 0, result.stderr[-3000:]

    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("tests")
    runs = client.search_runs([experiment.experiment_id], "tags.`mlflow.runName` = 'tracked'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    codes = yaml.safe_load((synthetic_dir / "panel.yaml").read_text(encoding="utf-8"))
    codes = [lang["code"] for lang in codes["languages"]]
    metrics = run.data.metrics
    for code in codes:
        assert f"val/mlm/loss/{code}" in metrics and f"val/mlm/ppl/{code}" in metrics
        expected_ppl = float(torch.tensor(metrics[f"val/mlm/loss/{code}"]).exp())
        assert metrics[f"val/mlm/ppl/{code}"] == pytest.approx(expected_ppl, rel=1e-4)
    assert "val/mlm/loss/macro" in metrics and "train/mlm/loss" in metrics
    shares = [metrics[f"train/sampling/share/{code}"] for code in codes]
    assert sum(shares) == pytest.approx(1.0)
    history = client.get_metric_history(run.info.run_id, f"val/mlm/loss/{codes[0]}")
    assert sorted(m.step for m in history) == [5, 11]  # validated at steps 6 and 12 (0-based step of the batch)
    assert run.data.params["config.model.init_args.lr"] == "0.001"
    assert run.data.params["config.data.init_args.block_size"] == "32"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "config.yaml" in artifacts
    config_text = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))).read_text()
    assert yaml.safe_load(config_text)["trainer"]["max_steps"] == 12

    export = tmp_path / "run" / "export"
    model = AutoModelForMaskedLM.from_pretrained(export)
    tokenizer = AutoTokenizer.from_pretrained(export)
    assert model.config.num_hidden_layers == 2 and model.config.vocab_size == len(tokenizer)


def final_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]


def recorded_steps(run_dir: Path) -> dict:
    """What ``dist_record.RecordSteps`` wrote for the (single-process) run: start step, per-step loss and batch."""
    return json.loads((run_dir / "record" / "rank0.json").read_text())


def test_killed_run_resumes_to_the_same_weights(tmp_path: Path, synthetic_dir: Path, tiny_tokenizer_dir: Path,
                                                mlflow_uri: str) -> None:
    """Kill a run mid-epoch (SIGKILL at step 9), resume with --ckpt_path last: the resumed process starts at the
    checkpoint's step 8, trains steps 9-16 on the uninterrupted run's batches with its losses, and ends with its
    weights bit for bit (README: "reaches the same weights as an uninterrupted one")."""
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    straight_dir.mkdir()
    killed_dir.mkdir()

    def record(run_dir: Path) -> list[dict]:
        return [{"class_path": "dist_record.RecordSteps", "init_args": {"out": str(run_dir / "record")}}]

    straight = tiny_overlay(straight_dir, synthetic_dir, tiny_tokenizer_dir, mlflow_uri, steps=16,
                            run_name="straight", extra_callbacks=record(straight_dir))
    result = xlt_fit("--config", str(QUICKSTART), "--config", str(straight))
    assert result.returncode == 0, result.stderr[-3000:]

    kill = [{"class_path": "kill_callback.KillAtStep", "init_args": {"step": 9}}]
    killed = tiny_overlay(killed_dir, synthetic_dir, tiny_tokenizer_dir, mlflow_uri, steps=16, run_name="killed",
                          extra_callbacks=kill)
    result = xlt_fit("--config", str(QUICKSTART), "--config", str(killed))
    assert result.returncode == -signal.SIGKILL
    checkpoints = killed_dir / "run" / "checkpoints"
    assert (checkpoints / "last.ckpt").exists() and not (killed_dir / "run" / "export").exists()
    checkpoint_step = torch.load(checkpoints / "last.ckpt", weights_only=False)["global_step"]
    assert checkpoint_step == 8

    resumed = tiny_overlay(killed_dir, synthetic_dir, tiny_tokenizer_dir, mlflow_uri, steps=16, run_name="resumed",
                           extra_callbacks=record(killed_dir))
    result = xlt_fit("--config", str(QUICKSTART), "--config", str(resumed), "--ckpt_path", "last")
    assert result.returncode == 0, result.stderr[-3000:]

    # the resumed process really continued from the checkpoint (Lightning starts over, with a warning, when
    # `--ckpt_path last` finds none; the deterministic pipeline would then reach the same weights anyway)
    uninterrupted, continued = recorded_steps(straight_dir), recorded_steps(killed_dir)
    assert uninterrupted["start_step"] == 0 and [s["step"] for s in uninterrupted["steps"]] == list(range(1, 17))
    assert continued["start_step"] == checkpoint_step
    assert [s["step"] for s in continued["steps"]] == list(range(checkpoint_step + 1, 17))
    for ours, reference in zip(continued["steps"], uninterrupted["steps"][checkpoint_step:], strict=True):
        assert ours == reference, ours["step"]  # same batch (sampler position restored) and the same loss, exactly

    expected = final_state(straight_dir / "run" / "checkpoints" / "last.ckpt")
    actual = final_state(checkpoints / "last.ckpt")
    assert list(expected) == list(actual)
    for name in expected:
        assert torch.equal(actual[name], expected[name]), name
