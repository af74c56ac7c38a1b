"""``xlt probe`` end to end: a tiny export on the synthetic panel and on the real UD + Tatoeba data, every curve in
MLflow with step = layer; bad input ends with one line and exit 2 before anything is written."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from transformers import AutoModelForMaskedLM

from xlt.cli import main
from xlt.formats import read_conllu
from xlt.models.encoder import build_config
from xlt.probing.data import ud_languages
from xlt.tokenization.tokenizer import XltTokenizer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAST = {"analysis": {"class_path": "xlt.probing.analysis.ProbingAnalysis", "init_args": {
    "probe": {"class_path": "xlt.probing.linear.LinearProbe", "init_args": {"steps": 30, "lr": 0.05}},
    "structural": {"class_path": "xlt.probing.structural.StructuralProbe", "init_args": {"rank": 8, "epochs": 2}}}},
    "n_boot": 50, "attention_maps": 1}


@pytest.fixture(scope="module")
def export_dir(tiny_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny masked-LM export (weights + tokenizer files), as `xlt fit` writes it (128 usable positions)."""
    tokenizer = XltTokenizer.load(tiny_tokenizer_dir).to_hf()
    config = build_config("xlm-roberta", {"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 2,
                                          "num_attention_heads": 2, "intermediate_size": 64,
                                          "max_position_embeddings": 130})
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("export") / "tiny"
    AutoModelForMaskedLM.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _probe(tmp_path: Path, *args: str) -> None:
    fast = tmp_path / "fast.yaml"
    fast.write_text(yaml.safe_dump(FAST), encoding="utf-8")
    main(["probe", "--config", str(CONFIGS / "analysis" / "probe.yaml"), "--config", str(fast), *args])


def _run(mlflow_uri: str, experiment: str):
    client = MlflowClient(tracking_uri=mlflow_uri)
    found = client.get_experiment_by_name(experiment)
    runs = [] if found is None else client.search_runs([found.experiment_id])
    return client, runs


def test_synthetic_panel_every_curve_in_mlflow_with_layer_steps(tmp_path: Path, export_dir: Path,
                                                                synthetic_dir: Path, mlflow_uri: str) -> None:
    out = tmp_path / "out"
    _probe(tmp_path, "--encoder", str(export_dir), "--data", str(synthetic_dir), "--max_sentences", "12",
           "--languages", "[qab, qac]", "--output", str(out), "--tracking_uri", mlflow_uri,
           "--experiment_name", "probe-synthetic")
    client, runs = _run(mlflow_uri, "probe-synthetic")
    assert len(runs) == 1
    run = runs[0]
    with (out / "curves.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    curves = {(r["property"], r["metric"], r["group"]) for r in rows}
    for code in ("qaa", "qab", "qac"):  # the source (qaa) and the evaluation languages
        for prop, metric in (("upos", "acc"), ("upos", "selectivity"), ("deprel", "acc"), ("distance", "uuas"),
                             ("depth", "root_acc"), ("attention", "entropy")):
            assert (prop, metric, code) in curves
    for code in ("qab", "qac"):
        assert {("retrieval", "p1", f"{code}-qaa"), ("retrieval", "p1", f"qaa-{code}"),
                ("similarity", "cka", f"{code}-qaa")} <= curves
    for r in rows:  # every value of curves.csv is the MLflow value at step = layer
        history = {m.step: m.value for m in client.get_metric_history(
            run.info.run_id, f"probe/{r['property']}/{r['metric']}/{r['group']}")}
        assert history[int(r["layer"])] == pytest.approx(float(r["value"]))
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "probe/upos/acc/qab")) == [0, 1, 2]
    assert run.data.params["probe.kind"] == "linear" and run.data.params["probe.rank"] == "full"
    assert run.data.tags["xlt.encoder"] == str(export_dir)
    for name in ("peaks.md", "peaks.csv", "config.json", "upos_acc.png", "attention_qab-qaa_0.png",
                 "cka_matrix_layer2.png", "attention_entropy_qab.csv"):
        assert (out / name).is_file(), name
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "probe")}
    assert "probe/peaks.md" in artifacts


def test_real_ud_and_tatoeba_probe_trained_on_english_scored_everywhere(tmp_path: Path, export_dir: Path,
                                                                        data_dir: Path, mlflow_uri: str) -> None:
    out = tmp_path / "real"
    _probe(tmp_path, "--encoder", str(export_dir), "--data", str(data_dir), "--max_sentences", "8",
           "--output", str(out), "--tracking_uri", mlflow_uri, "--experiment_name", "probe-real",
           "--analysis.init_args.properties", "[upos, deprel, structure, retrieval, similarity]")
    client, runs = _run(mlflow_uri, "probe-real")
    run_id = runs[0].info.run_id
    assert runs[0].data.params["source_language"] == "eng"
    metrics = set(runs[0].data.metrics)
    for code in ud_languages(data_dir):
        for name in (f"probe/upos/acc/{code}", f"probe/upos/selectivity/{code}", f"probe/deprel/acc/{code}",
                     f"probe/distance/uuas/{code}", f"probe/depth/root_acc/{code}"):
            assert name in metrics, name
    pairs = sorted(p.name.split(".")[1] for p in (data_dir / "tatoeba").glob("tatoeba.*-eng.eng"))
    assert len(pairs) >= 10
    from xlt.languages import to_iso639_3

    for pair in pairs:
        code = to_iso639_3(pair.split("-")[0])
        for name in (f"probe/retrieval/p1/{code}-eng", f"probe/retrieval/p1/eng-{code}",
                     f"probe/similarity/cka/{code}-eng", f"probe/similarity/svcca/{code}-eng"):
            assert name in metrics, name
            assert len(client.get_metric_history(run_id, name)) == 3  # layers 0, 1, 2
    assert "probe/skipped/ud/eng" in metrics  # counted, even when zero


def _fails(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        _probe(tmp_path, *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input_is_one_line_and_exit_2_before_anything_is_written(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, export_dir: Path, synthetic_dir: Path,
        mlflow_uri: str) -> None:
    common = ["--output", str(tmp_path / "out"), "--tracking_uri", mlflow_uri, "--experiment_name", "probe-bad"]
    err = _fails(capsys, tmp_path, "--encoder", str(export_dir), "--data", str(synthetic_dir),
                 "--analysis.init_args.layers", "[0, 3]", *common)
    assert "layers [3] out of range" in err and "2 layers" in err
    ud_only = tmp_path / "ud_only"
    shutil.copytree(synthetic_dir / "ud", ud_only / "ud")  # synthetic data: no Tatoeba pairs
    err = _fails(capsys, tmp_path, "--encoder", str(export_dir), "--data", str(ud_only), *common)
    assert "no tatoeba" in err and "retrieval" in err
    no_heads = ud_only / "ud" / "qaa" / "train.conllu"
    lines = no_heads.read_text(encoding="utf-8").splitlines()
    no_heads.write_text("\n".join("\t".join([*f[:6], "_", *f[7:]]) if len(f := line.split("\t")) == 10 else line
                                  for line in lines) + "\n", encoding="utf-8")
    err = _fails(capsys, tmp_path, "--encoder", str(export_dir), "--data", str(ud_only),
                 "--analysis.init_args.properties", "[structure]", *common)
    assert "HEAD '_' is not an integer" in err and "train.conllu" in err
    assert not (tmp_path / "out").exists()
    assert not _run(mlflow_uri, "probe-bad")[1]  # no run was created
    assert read_conllu(synthetic_dir / "ud" / "qaa" / "train.conllu")  # the shared fixture is untouched
