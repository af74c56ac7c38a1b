"""The six task configs through the CLI, on an MLM export dir, logged to MLflow, then `xlt report` over them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from xlt.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "tasks"
SYNTHETIC = ["qaa", "qab", "qac", "qad", "qae", "qaf", "qag", "qah", "qai", "qaj"]
TASKS = {  # config -> (synthetic folder, command, primary metric, transformers auto class of the export)
    "xnli": ("xnli", "fit", "acc", "AutoModelForSequenceClassification"),
    "pawsx": ("pawsx", "fit", "acc", "AutoModelForSequenceClassification"),
    "udpos": ("ud", "fit", "acc", "AutoModelForTokenClassification"),
    "ner": ("ner", "fit", "f1", "AutoModelForTokenClassification"),
    "qa": ("qa", "fit", "f1", "AutoModelForQuestionAnswering"),
    "retrieval": ("tatoeba", "test", "p1", None),
}
EXPERIMENT = "task-cli"


@pytest.fixture(scope="module")
def mlm_export(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """A tiny (random) MLM encoder exported like `xlt fit --config configs/quickstart.yaml` does."""
    from xlt.models.mlm import MLMPretraining

    module = MLMPretraining(encoder="xlm-roberta", tokenizer=str(tiny_tokenizer_dir), seed=0,
                            config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                    "intermediate_size": 64, "max_position_embeddings": 66})
    module.configure_model()
    return module.export(tmp_path_factory.mktemp("mlm") / "export")


@pytest.fixture(scope="module")
def task_runs(mlm_export: Path, synthetic_dir: Path, mlflow_uri: str,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run every task config once (1 epoch) on the synthetic panel; returns each run's root directory."""
    roots = {}
    for task, (folder, command, _, _) in TASKS.items():
        root = tmp_path_factory.mktemp(task)
        args = [command, "--config", str(CONFIGS / f"{task}.yaml"), "--model.encoder", str(mlm_export),
                "--data.data", str(synthetic_dir / folder), "--data.panel", "synthetic", "--data.max_length", "64",
                "--trainer.default_root_dir", str(root), "--trainer.accelerator", "cpu",
                "--trainer.logger.init_args.tracking_uri", mlflow_uri,
                "--trainer.logger.init_args.experiment_name", EXPERIMENT, "--model.n_boot", "200",
                "--model.predictions_dir", str(root / "predictions")]
        if task == "qa":
            args += ["--data.max_question_length", "16", "--data.doc_stride", "16"]
        if command == "fit":
            args += ["--trainer.max_epochs", "1", "--model.lr", "1e-3"]
        main(args)
        roots[task] = root
    return roots


def _run(task: str, mlflow_uri: str):
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], f"tags.`xlt.task` = '{task}'")
    assert len(runs) == 1, f"{task}: expected one run, found {len(runs)}"
    return runs[0]


@pytest.mark.parametrize("task", list(TASKS))
def test_task_config_logs_disaggregated_metrics_with_cis(task: str, task_runs: dict[str, Path],
                                                         mlflow_uri: str) -> None:
    _, command, metric, _ = TASKS[task]
    run = _run(task, mlflow_uri)
    metrics = run.data.metrics
    languages = [c for c in SYNTHETIC if not (task == "retrieval" and c == "qaa")]  # retrieval: qaa is the pivot
    table = Path(MlflowClient(mlflow_uri).download_artifacts(run.info.run_id, f"evaluation/test_{task}_{metric}.csv",
                                                             str(task_runs[task])))
    examples = {r["group"]: int(r["n_examples"]) for r in csv.DictReader(table.read_text().splitlines())}
    for group in [*languages, "macro", "bucket.high", "bucket.tail", "script.Latin", "family.Anglic",
                  "bottom_decile"]:
        name = f"test/{task}/{metric}/{group}"
        assert name in metrics, f"missing {name}"
        score = metrics[name]
        low, high = metrics[f"test/{task}/{metric}_ci_low/{group}"], metrics[f"test/{task}/{metric}_ci_high/{group}"]
        assert 0.0 <= low <= score <= high <= 1.0
        if group not in languages:
            continue
        if score in (0.0, 1.0):  # every example scores the same: so does every resample
            assert low == pytest.approx(score) and high == pytest.approx(score), group
            continue
        assert low < high, group  # examples differ: the interval comes from resampling them
        if task in ("xnli", "pawsx"):  # 0/1 per example: the normal-approximation 95 % half-width of n examples
            n = examples[group]
            expected = 1.959964 * (score * (1 - score) / n) ** 0.5
            # n = 20 and 200 resamples: measured within 20 %; resampling another unit would be off by sqrt(k)
            assert (high - low) / 2 == pytest.approx(expected, rel=0.35), (group, n, low, score, high)
    macro = sum(metrics[f"test/{task}/{metric}/{c}"] for c in languages) / len(languages)
    assert metrics[f"test/{task}/{metric}/macro"] == pytest.approx(macro)
    assert run.data.tags["xlt.encoder"].endswith("export") and run.data.tags["xlt.few_shot"] == "0"
    assert run.data.tags["xlt.panel"] == "synthetic"
    assert run.data.tags["xlt.train_languages"] == ("" if task == "retrieval" else "qaa")
    assert (task_runs[task] / "predictions" / f"test-qab.{'json' if task == 'qa' else 'tsv'}").is_file()
    artifacts = {a.path for a in MlflowClient(mlflow_uri).list_artifacts(run.info.run_id, "evaluation")}
    assert f"evaluation/test_{task}_{metric}.png" in artifacts and f"evaluation/test_{task}_{metric}.csv" in artifacts
    assert command == "test" or f"val/{task}/{metric}/qaa" in metrics  # source-language dev selects the model


@pytest.mark.parametrize("task", [t for t, spec in TASKS.items() if spec[3]])
def test_fine_tuned_export_loads_with_auto_classes(task: str, task_runs: dict[str, Path]) -> None:
    import transformers

    auto = getattr(transformers, TASKS[task][3])
    model = auto.from_pretrained(task_runs[task] / "export")
    tokenizer = transformers.AutoTokenizer.from_pretrained(task_runs[task] / "export")
    out = model(**tokenizer(["Anna lives in Paris ."], return_tensors="pt"))
    assert out[0].shape[0] == 1


def test_report_renders_table2_over_the_task_runs(task_runs: dict[str, Path], mlflow_uri: str,
                                                   tmp_path: Path) -> None:
    main(["report", "--experiment", EXPERIMENT, "--tracking_uri", mlflow_uri, "--out", str(tmp_path / "report")])
    table = (tmp_path / "report" / "table2.md").read_text(encoding="utf-8")
    header = next(line for line in table.splitlines() if line.startswith("| Model"))
    for column in ("XNLI", "POS", "NER", "PAWS-X", "QA", "Tatoeba"):
        assert column in header
    row = next(line for line in table.splitlines() if line.startswith("| quickstart"))
    xnli = _run("xnli", mlflow_uri).data.metrics
    assert f"{100 * xnli['test/xnli/acc/macro']:.1f} [" in row
    assert "qaj" in (tmp_path / "report" / "languages_udpos.md").read_text(encoding="utf-8")
    assert (tmp_path / "report" / "table2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_derives_transfer_views_from_two_source_languages(mlm_export: Path, synthetic_dir: Path,
                                                                 mlflow_uri: str, tmp_path: Path) -> None:
    """POS fine-tuned on qaa and on qab: the report's % of supervised divides qaa->qab by qab->qab, and the
    transfer matrix has one row per source; its files are also a `report` run in MLflow."""
    experiment = "task-cli-transfer"
    for source in ("qaa", "qab"):
        main(["fit", "--config", str(CONFIGS / "udpos.yaml"), "--model.encoder", str(mlm_export),
              "--data.data", str(synthetic_dir / "ud"), "--data.panel", "synthetic", "--data.max_length", "64",
              "--data.train_languages", f"[{source}]", "--data.eval_languages", "[qaa, qab, qai]",
              "--trainer.default_root_dir", str(tmp_path / source), "--trainer.max_epochs", "1",
              "--trainer.logger.init_args.tracking_uri", mlflow_uri, "--model.n_boot", "50",
              "--trainer.logger.init_args.experiment_name", experiment])
    out = tmp_path / "report"
    main(["report", "--experiment", experiment, "--tracking_uri", mlflow_uri, "--out", str(out)])
    client = MlflowClient(mlflow_uri)
    exp_id = client.get_experiment_by_name(experiment).experiment_id
    scores = {}
    for run in client.search_runs([exp_id], "tags.`xlt.task` = 'udpos'"):
        scores[run.data.tags["xlt.train_languages"]] = {c: run.data.metrics[f"test/udpos/acc/{c}"]
                                                        for c in ("qaa", "qab", "qai")}
    assert "| quickstart / shared [train qab] |" in (out / "table2.md").read_text(encoding="utf-8")
    derived = {(r["label"], r["quantity"], r["group"]): float(r["value"])
               for r in csv.DictReader((out / "transfer.csv").read_text(encoding="utf-8").splitlines())}
    assert derived["quickstart / shared", "of_supervised", "qab"] == pytest.approx(
        scores["qaa"]["qab"] / scores["qab"]["qab"])
    matrix = list(csv.reader((out / "transfer_udpos_quickstart___shared.csv").read_text().splitlines()))
    assert [row[0] for row in matrix] == ["source", "qaa", "qab"]
    assert float(matrix[1][3]) == pytest.approx(scores["qaa"]["qai"])
    reports = client.search_runs([exp_id], "tags.`xlt.report` = 'table2'")
    assert len(reports) == 1


def test_missing_encoder_is_one_line_before_anything_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The README order matters: a task config before `xlt fit --config configs/quickstart.yaml` names the
    missing export and exits 2 without creating an MLflow store, caches or run directories."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / "udpos.yaml")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith(
        "xlt: error: model.encoder runs/quickstart/export not found — check the path, or run the step that writes "
        "it first")
    assert list(tmp_path.iterdir()) == []
