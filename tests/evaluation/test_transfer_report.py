"""``xlt report``'s transfer views: % of supervised, few-shot gap recovered, transfer matrix, distance correlation
and the report's own MLflow run, from fabricated task runs with hand-computed values."""

from __future__ import annotations

import csv
import io
import sys
import types
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from xlt.evaluation.disaggregation import disaggregate
from xlt.evaluation.mlflow_logging import log_evaluation
from xlt.evaluation.report import report
from xlt.evaluation.report_runs import collect
from xlt.languages import load_panel

PANEL = load_panel("synthetic")
CODES = ("qaa", "qab", "qac")
#: source -> target -> score of a zero-shot model fine-tuned on the source alone (diagonal = supervised)
SINGLE = {"qaa": {"qaa": 0.90, "qab": 0.60, "qac": 0.45},
          "qab": {"qaa": 0.70, "qab": 0.80, "qac": 0.50},
          "qac": {"qaa": 0.55, "qab": 0.52, "qac": 0.75}}
FEW_SHOT = {"qaa": 0.90, "qab": 0.70, "qac": 0.60}  # qaa + 100 examples of each target


def _run(client: MlflowClient, experiment_id: str, sources: str, scores: dict[str, float], *, few_shot: int = 0,
         start: int, task: str = "xnli", metric: str = "acc") -> str:
    tags = {"model": "tiny", "vocab": "shared", "xlt.task": task, "xlt.seed": "1", "xlt.few_shot": str(few_shot),
            "xlt.train_languages": sources, "xlt.panel": "synthetic"}
    run_id = client.create_run(experiment_id, start_time=start, tags=tags).info.run_id
    result = disaggregate(scores, PANEL.subset(list(CODES)), stage="test", task=task, metric=metric, n_boot=50)
    log_evaluation(result, run_id, client=client, tables=False, plots=False)
    client.set_terminated(run_id)
    return run_id


@pytest.fixture(scope="module")
def written(mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    client = MlflowClient(tracking_uri=mlflow_uri)
    tmp = tmp_path_factory.mktemp("transfer")
    name = f"transfer-{uuid.uuid4().hex[:8]}"
    exp = client.create_experiment(name, artifact_location=(tmp / "artifacts").as_uri())
    for i, (source, scores) in enumerate(SINGLE.items()):
        _run(client, exp, source, scores, start=1000 + i)
    _run(client, exp, "qaa", FEW_SHOT, few_shot=100, start=2000)
    _run(client, exp, "qaa", SINGLE["qaa"], start=3000)  # a second qaa run: qaa is the default source set
    _run(client, exp, "", {"qab": 0.3, "qac": 0.2}, start=4000, task="retrieval", metric="p1")  # not fine-tuned
    out = report(name, tracking_uri=mlflow_uri, out=str(tmp / "report"))
    return {"name": name, "out": out, "client": client, "exp": exp, "uri": mlflow_uri}


def _derived(out: Path) -> dict[tuple[str, str, str], float]:
    rows = csv.DictReader(io.StringIO((out / "transfer.csv").read_text()))
    return {(r["label"], r["quantity"], r["group"]): float(r["value"]) for r in rows}


def test_rows_trained_on_other_sources_are_labelled_by_their_training_languages(written: dict) -> None:
    table = (written["out"] / "table2.md").read_text()
    for label in ("tiny / shared", "tiny / shared [train qab]", "tiny / shared [train qac]",
                  "tiny / shared (few-shot 100)"):
        assert f"| {label} |" in table
    assert "tiny / shared [train qaa]" not in table  # the default source set keeps the plain label


def test_percent_of_supervised_uses_the_diagonal_and_leaves_sources_out_of_groups(written: dict) -> None:
    derived = _derived(written["out"])
    sup = {t: SINGLE[t][t] for t in CODES}
    zero = SINGLE["qaa"]
    assert derived["tiny / shared", "of_supervised", "qab"] == pytest.approx(0.60 / 0.80)
    assert derived["tiny / shared", "of_supervised", "qaa"] == pytest.approx(1.0)
    # macro over targets other than the source: ratio of means
    assert derived["tiny / shared", "of_supervised", "macro"] == pytest.approx(
        (zero["qab"] + zero["qac"]) / (sup["qab"] + sup["qac"]))
    assert derived["tiny / shared [train qab]", "of_supervised", "macro"] == pytest.approx(
        (0.70 + 0.50) / (0.90 + 0.75))
    lang = PANEL.get("qac")
    assert derived["tiny / shared", "of_supervised", f"bucket.{lang.bucket}"] == pytest.approx(
        _group_mean(zero, lang.bucket) / _group_mean(sup, lang.bucket))


def _group_mean(scores: dict[str, float], bucket: str) -> float:
    members = [c for c in ("qab", "qac") if PANEL.get(c).bucket == bucket]
    return sum(scores[c] for c in members) / len(members)


def test_few_shot_gap_recovered_is_against_zero_shot_and_supervised(written: dict) -> None:
    derived = _derived(written["out"])
    row = "tiny / shared (few-shot 100)"
    assert derived[row, "gap_recovered", "qab"] == pytest.approx((0.70 - 0.60) / (0.80 - 0.60))
    assert derived[row, "gap_recovered", "qac"] == pytest.approx((0.60 - 0.45) / (0.75 - 0.45))
    assert derived[row, "gap_recovered", "macro"] == pytest.approx(
        ((0.70 + 0.60) / 2 - (0.60 + 0.45) / 2) / ((0.80 + 0.75) / 2 - (0.60 + 0.45) / 2))
    assert (row, "gap_recovered", "qaa") not in derived  # no gap on the source itself (supervised == zero-shot)


def test_transfer_matrix_heatmap_and_distance_correlation(written: dict) -> None:
    out = written["out"]
    matrix = list(csv.reader(io.StringIO((out / "transfer_xnli_tiny___shared.csv").read_text())))
    assert matrix[0] == ["source", *CODES]
    assert {row[0]: [float(v) for v in row[1:]] for row in matrix[1:]} == {
        s: [SINGLE[s][t] for t in CODES] for s in CODES}
    assert (out / "transfer_xnli_tiny___shared.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "distance_xnli_tiny___shared.png").stat().st_size > 1000
    text = (out / "transfer.md").read_text()
    assert "transfer matrix of `tiny / shared`" in text and "Spearman" in text
    # Markdown names the languages as the panel does (the CSV above keeps the bare codes)
    assert "| source \\ target | qaa Anglish | qab Romanse | qac Slavenik |\n|---|---:|---:|---:|\n" \
           "| qaa Anglish | 90.0 | 60.0 | 45.0 |\n" in text
    assert "| Model | qab Romanse | qac Slavenik | macro |" in text  # % of supervised by language
    languages = (out / "languages_xnli.md").read_text()
    assert "| Model | qaa Anglish | qab Romanse | qac Slavenik | macro |" in languages
    assert list(csv.reader((out / "languages_xnli.csv").open()))[0] == ["label", *CODES, "macro"]
    built = collect(written["name"], tracking_uri=written["uri"])
    assert built.rows["tiny / shared [train qab]", "xnli"].sources == ("qab",)


def test_the_report_is_an_mlflow_run_and_is_not_read_back_as_a_task_run(written: dict) -> None:
    client: MlflowClient = written["client"]
    runs = client.search_runs([written["exp"]], "tags.`xlt.report` = 'table2'")
    assert len(runs) == 1
    artifacts = {f.path for f in client.list_artifacts(runs[0].info.run_id, "report")}
    assert {"report/table2.md", "report/transfer.md", "report/transfer.csv"} <= artifacts
    again = report(written["name"], tracking_uri=written["uri"], out=str(written["out"]), log_to_mlflow=False)
    assert (again / "table2.md").read_text() == (written["out"] / "table2.md").read_text()
    assert len(client.search_runs([written["exp"]], "tags.`xlt.report` = 'table2'")) == 1


def _fake_lang2vec(monkeypatch: pytest.MonkeyPatch, known: set[str]) -> None:
    """A lang2vec stand-in that knows ``known`` and raises, like lang2vec, for any other language."""
    module = types.ModuleType("lang2vec.lang2vec")

    def distance(kind: str, a: str, b: str) -> float:
        if a not in known or b not in known:
            raise Exception(f"Unknown language {a if a not in known else b}")
        return 0.0 if a == b else 0.5

    module.distance = distance
    package = types.ModuleType("lang2vec")
    package.lang2vec = module
    monkeypatch.setitem(sys.modules, "lang2vec", package)
    monkeypatch.setitem(sys.modules, "lang2vec.lang2vec", module)


def test_report_names_the_languages_uriel_lacks_when_panel_distances_stand_in(
        monkeypatch: pytest.MonkeyPatch, mlflow_uri: str, tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=mlflow_uri)
    name = f"transfer-uriel-{uuid.uuid4().hex[:8]}"
    exp = client.create_experiment(name, artifact_location=(tmp_path / "artifacts").as_uri())
    for i, (source, scores) in enumerate(SINGLE.items()):
        _run(client, exp, source, scores, start=1000 + i)
    _fake_lang2vec(monkeypatch, known={"qaa", "qab"})
    out = report(name, tracking_uri=mlflow_uri, out=str(tmp_path / "report"), log_to_mlflow=False)
    lines = [line for line in (out / "transfer.md").read_text().splitlines() if line.startswith("Correlation")]
    assert len(lines) == 1
    assert lines[0].startswith("Correlation with typological distance (panel, 6 pairs): ")
    assert lines[0].endswith("Note: URIEL (lang2vec) has no distances for qac: panel distances used for all pairs.")
    # lang2vec knows all three: URIEL distances, no note
    _fake_lang2vec(monkeypatch, known=set(CODES))
    out = report(name, tracking_uri=mlflow_uri, out=str(tmp_path / "report"), log_to_mlflow=False)
    lines = [line for line in (out / "transfer.md").read_text().splitlines() if line.startswith("Correlation")]
    assert lines == [lines[0]] and lines[0].startswith("Correlation with typological distance (uriel, 6 pairs): ")
    assert "Note" not in lines[0]
