"""``xlt report``: Table 2 and per-language tables from fabricated MLflow task runs (hand-computed cells)."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from xlt.errors import XltError
from xlt.evaluation.disaggregation import EvaluationResult, disaggregate
from xlt.evaluation.mlflow_logging import log_evaluation
from xlt.evaluation.report import report
from xlt.evaluation.report_runs import collect
from xlt.languages import Language, Panel

PANEL = Panel("hand", (
    Language("eng", "English", "Germanic", "Latin", "high", 300.0),
    Language("hin", "Hindi", "Indic", "Devanagari", "mid", 20.0),
    Language("yor", "Yoruba", "Niger-Congo", "Latin", "tail", 0.1),
))
A = {"model": "quickstart", "vocab": "shared", "recipe": "cpu"}
B = {"model": "multi_s", "vocab": "d"}


def _result(task: str, metric: str, scores: dict[str, float], ci: tuple[float, float] | None = None
            ) -> EvaluationResult:
    """Disaggregated float scores; with ``ci = (down, up)`` every group gets the CI [score - down, score + up]."""
    result = disaggregate(scores, PANEL, stage="test", task=task, metric=metric)
    if ci is not None:
        from dataclasses import replace

        result.groups = {g: replace(r, low=r.score - ci[0], high=r.score + ci[1]) for g, r in result.groups.items()}
    return result


def _scores(eng: float, hin: float, yor: float) -> dict[str, float]:
    return {"eng": eng, "hin": hin, "yor": yor}


def _experiment(client: MlflowClient, tmp: Path, name: str) -> tuple[str, str]:
    name = f"{name}-{uuid.uuid4().hex[:8]}"
    return name, client.create_experiment(name, artifact_location=(tmp / name).as_uri())


def _run(client: MlflowClient, experiment_id: str, tags: dict[str, str], results: list[EvaluationResult],
         start: int, *, seed_param: str | None = None, finish: bool = True, name: str | None = None) -> str:
    run_id = client.create_run(experiment_id, start_time=start, tags=tags, run_name=name).info.run_id
    if results:
        log_evaluation(results, run_id, client=client, tables=False, plots=False)
    if seed_param is not None:
        client.log_param(run_id, "config.seed_everything", seed_param)
    if finish:
        client.set_terminated(run_id)
    return run_id


@pytest.fixture(scope="module")
def client(mlflow_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_uri)


@pytest.fixture(scope="module")
def table2(client: MlflowClient, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Label A (quickstart / shared): 3 seeds of xnli (with CIs) and qa (f1 + em, no CIs), one few-shot xnli run,
    one unfinished run; label B (multi_s / d): one seed (as a param) of each task plus an older duplicate."""
    name, exp = _experiment(client, tmp_path_factory.mktemp("artifacts"), "report-table2")
    ids: dict[str, object] = {"A_xnli": [], "A_qa": []}
    t = 1_000_000
    for seed, (base, down, up, f1) in enumerate([(0.80, 0.01, 0.03, 0.70), (0.82, 0.02, 0.03, 0.72),
                                                 (0.84, 0.03, 0.06, 0.71)]):
        tags = {**A, "xlt.seed": str(seed), "xlt.few_shot": "0", "xlt.encoder": "enc-a"}
        xnli = _result("xnli", "acc", _scores(base, base - 0.2, base - 0.4), ci=(down, up))
        ids["A_xnli"].append(_run(client, exp, {**tags, "xlt.task": "xnli"}, [xnli], t := t + 1))
        qa = [_result("qa", "f1", _scores(f1, f1 - 0.2, f1 - 0.4)),
              _result("qa", "em", _scores(f1 - 0.1, f1 - 0.3, f1 - 0.5))]
        ids["A_qa"].append(_run(client, exp, {**tags, "xlt.task": "qa"}, qa, t := t + 1))
    few = _result("xnli", "acc", _scores(0.86, 0.66, 0.46), ci=(0.01, 0.01))
    ids["A_few"] = _run(client, exp, {**A, "xlt.seed": "0", "xlt.few_shot": "10", "xlt.task": "xnli"}, [few],
                        t := t + 1)
    _run(client, exp, {**A, "xlt.seed": "3", "xlt.task": "xnli"}, [_result("xnli", "acc", _scores(.1, .1, .1))],
         t := t + 1, finish=False)
    _run(client, exp, {**A}, [], t := t + 1)  # an MLM run: no test metrics
    ids["B_old"] = _run(client, exp, {**B, "xlt.task": "xnli"}, [_result("xnli", "acc", _scores(.3, .3, .3))],
                        t := t + 1, seed_param="7")
    ids["B_xnli"] = _run(client, exp, {**B, "xlt.task": "xnli"},
                         [_result("xnli", "acc", _scores(0.90, 0.70, 0.50), ci=(0.02, 0.01))], t := t + 1,
                         seed_param="7")
    ids["B_qa"] = _run(client, exp, {**B, "xlt.task": "qa"},
                       [_result("qa", "f1", _scores(0.6, 0.4, 0.2)), _result("qa", "em", _scores(0.5, 0.3, 0.1))],
                       t := t + 1, seed_param="7")
    return {"name": name, "ids": ids}


@pytest.fixture(scope="module")
def written(table2: dict, mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("report") / "table2"
    capture = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(capture):
        path = report(table2["name"], tracking_uri=mlflow_uri, out=str(out))
    return {"path": path, "out": out, "stdout": capture.getvalue()}


def _table_lines(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def test_table2_cells_are_mean_std_and_mean_ci_over_seeds(written: dict, table2: dict) -> None:
    assert written["path"] == written["out"]
    markdown = (written["out"] / "table2.md").read_text()
    assert _table_lines(markdown) == [
        "| Model | XNLI | QA | Avg |",
        "|---|---:|---:|---:|",
        "| multi_s / d | 70.0 [68.0, 71.0] | 40.0 | 55.0 |",
        # macro .60/.62/.64: mean 62.0, std 2.0; CI lows .59/.60/.61, highs .63/.65/.70; qa .50/.52/.51
        "| quickstart / shared | 62.0 ± 2.0 [60.0, 66.0] | 51.0 ± 1.0 | 56.5 |",
        "| quickstart / shared (few-shot 10) | 66.0 [65.0, 67.0] | – | – |",
    ]
    ids = table2["ids"]
    notes = [line for line in markdown.splitlines() if line.startswith("Note:")]
    assert notes == [f"Note: 2 runs of multi_s / d / xnli / seed 7: kept the latest ({ids['B_xnli']}), ignored "
                     f"{ids['B_old']}."]
    assert written["stdout"] == markdown + (f"wrote {written['out']} (table2.md/.csv/.png, "
                                            "languages_<task>.md/.csv)\n")  # the table, then where it went


def test_table2_csv_is_long_format_with_every_group(written: dict, table2: dict) -> None:
    rows = list(csv.DictReader((written["out"] / "table2.csv").open()))
    assert list(rows[0]) == ["label", "task", "metric", "group", "mean", "std", "n_seeds", "ci_low", "ci_high",
                             "run_ids"]
    by_key = {(r["label"], r["task"], r["metric"], r["group"]): r for r in rows}
    ids = table2["ids"]
    macro = by_key["quickstart / shared", "xnli", "acc", "macro"]
    assert float(macro["mean"]) == pytest.approx(0.62)
    assert float(macro["std"]) == pytest.approx(0.02)
    assert (float(macro["ci_low"]), float(macro["ci_high"])) == (pytest.approx(0.60), pytest.approx(0.66))
    assert macro["n_seeds"] == "3" and macro["run_ids"] == " ".join(ids["A_xnli"])
    single = by_key["multi_s / d", "xnli", "acc", "yor"]
    assert (float(single["mean"]), single["std"], single["n_seeds"], single["run_ids"]) == (
        pytest.approx(0.5), "", "1", ids["B_xnli"])
    em = by_key["quickstart / shared", "qa", "em", "macro"]  # QA's second metric is kept in the CSV
    assert (float(em["mean"]), float(em["std"]), em["ci_low"]) == (pytest.approx(0.41), pytest.approx(0.01), "")
    assert float(by_key["quickstart / shared", "qa", "f1", "bucket.tail"]["mean"]) == pytest.approx(0.31)
    groups = [r["group"] for r in rows if r["label"] == "multi_s / d" and r["task"] == "xnli"]
    assert groups == ["eng", "hin", "yor", "macro", "family.Germanic", "family.Indic", "family.Niger-Congo",
                      "script.Devanagari", "script.Latin", "bucket.high", "bucket.mid", "bucket.tail",
                      "bottom_decile"]
    assert [r["label"] for r in rows].index("quickstart / shared (few-shot 10)") > \
        [r["label"] for r in rows].index("quickstart / shared")


def test_plot_and_per_language_tables(written: dict) -> None:
    out = written["out"]
    assert sorted(p.name for p in out.iterdir()) == ["languages_qa.csv", "languages_qa.md", "languages_xnli.csv",
                                                     "languages_xnli.md", "table2.csv", "table2.md", "table2.png"]
    assert (out / "table2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _table_lines((out / "languages_xnli.md").read_text()) == [
        "| Model | eng | hin | yor | macro |",
        "|---|---:|---:|---:|---:|",
        "| multi_s / d | 90.0 [88.0, 91.0] | 70.0 [68.0, 71.0] | 50.0 [48.0, 51.0] | 70.0 [68.0, 71.0] |",
        "| quickstart / shared | 82.0 ± 2.0 [80.0, 86.0] | 62.0 ± 2.0 [60.0, 66.0] | 42.0 ± 2.0 [40.0, 46.0] "
        "| 62.0 ± 2.0 [60.0, 66.0] |",
        "| quickstart / shared (few-shot 10) | 86.0 [85.0, 87.0] | 66.0 [65.0, 67.0] | 46.0 [45.0, 47.0] "
        "| 66.0 [65.0, 67.0] |",
    ]
    qa = list(csv.reader((out / "languages_qa.csv").open()))
    assert qa == [["label", "eng", "hin", "yor", "macro"],
                  ["multi_s / d", "60.0", "40.0", "20.0", "40.0"],
                  ["quickstart / shared", "71.0 ± 1.0", "51.0 ± 1.0", "31.0 ± 1.0", "51.0 ± 1.0"]]


def test_filter_tasks_and_metric_override(table2: dict, mlflow_uri: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    report(table2["name"], tracking_uri=mlflow_uri, filter="tags.vocab = 'd'", out=str(tmp_path / "d"))
    assert _table_lines((tmp_path / "d" / "table2.md").read_text())[2:] == [
        "| multi_s / d | 70.0 [68.0, 71.0] | 40.0 | 55.0 |"]
    built = collect(table2["name"], mlflow_uri, tasks=["qa"], metrics={"qa": "em"}, label_tags=["model"])
    assert _table_lines(built.to_markdown()) == [
        "| Model | QA (em) |", "|---|---:|", "| multi_s | 30.0 |", "| quickstart | 41.0 ± 1.0 |"]
    assert capsys.readouterr().out.startswith("**Table 2** — experiment")
    # an existing report directory is replaced as a whole; a directory with other files is refused
    report(table2["name"], tracking_uri=mlflow_uri, tasks=["qa"], out=str(tmp_path / "d"))
    assert not (tmp_path / "d" / "languages_xnli.md").exists()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    with pytest.raises(XltError, match=r"holds files that are not report outputs \(notes.txt\)"):
        report(table2["name"], tracking_uri=mlflow_uri, out=str(tmp_path / "d"))


def test_label_fallbacks_unknown_tasks_and_metric_fallback(client: MlflowClient, mlflow_uri: str,
                                                           tmp_path: Path) -> None:
    name, exp = _experiment(client, tmp_path, "report-extras")
    _run(client, exp, {"xlt.encoder": "xlmr-tiny", "xlt.seed": "0"},
         [_result("sentiment", "acc", _scores(.5, .5, .5)), _result("xnli", "acc", _scores(.6, .6, .6))], 1)
    _run(client, exp, {"xlt.seed": "0"}, [_result("retrieval", "acc", _scores(.2, .3, .4))], 2, name="adhoc")
    built = collect(name, mlflow_uri)
    assert built.tasks == ["xnli", "retrieval", "sentiment"]  # Table 2 order, unknown tasks appended
    assert built.labels == ["adhoc", "xlmr-tiny"]
    assert built.metrics == {"xnli": "acc", "retrieval": "acc", "sentiment": "acc"}
    assert _table_lines(built.to_markdown())[0] == "| Model | XNLI | Tatoeba (acc) | sentiment | Avg |"
    assert _table_lines(built.to_markdown())[2:] == ["| adhoc | – | 30.0 | – | – |",
                                                     "| xlmr-tiny | 60.0 | – | 50.0 | – |"]
    assert built.notes == ["retrieval: reporting acc (metrics found: acc); pass metrics={retrieval: ...} to choose."]



def test_a_task_in_the_registry_takes_header_and_metrics_from_its_spec(client: MlflowClient, mlflow_uri: str,
                                                                        tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A seventh task needs no report table: its spec in TASKS gives the header, the primary metric (over the
    metric preference order) and the secondary metrics of table2.csv."""
    from dataclasses import replace

    from xlt.datamodules.tasks import TASKS

    name, exp = _experiment(client, tmp_path, "report-seventh-task")
    _run(client, exp, {"model": "m", "xlt.seed": "0"}, [_result("sentiment", "acc", _scores(.5, .5, .5)),
                                                         _result("sentiment", "f1", _scores(.4, .4, .4)),
                                                         _result("sentiment", "mcc", _scores(.3, .3, .3))], 1)
    unknown = collect(name, mlflow_uri)
    assert unknown.metrics == {"sentiment": "acc"} and len(unknown.notes) == 1
    monkeypatch.setitem(TASKS, "sentiment", replace(TASKS["xnli"], name="sentiment", header="Sentiment",
                                                    metrics=("f1", "acc")))
    built = collect(name, mlflow_uri)
    assert built.metrics == {"sentiment": "f1"} and built.notes == []
    assert _table_lines(built.to_markdown())[0] == "| Model | Sentiment |"
    rows = list(csv.DictReader(io.StringIO(built.to_csv())))
    assert sorted({r["metric"] for r in rows}) == ["acc", "f1"]  # the spec's metrics, not mcc
    assert built.language_markdown("sentiment").startswith("**Sentiment** (f1, %) by language")

def test_bad_inputs_are_one_line_xlt_errors(table2: dict, client: MlflowClient, mlflow_uri: str,
                                            tmp_path: Path) -> None:
    with pytest.raises(XltError, match=r"experiment 'no-such-exp' not found .* available experiments: .*"
                                       + table2["name"]):
        collect("no-such-exp", mlflow_uri)
    with pytest.raises(XltError, match=r"invalid filter 'tags.vocab = d': .*not quoted") as info:
        collect(table2["name"], mlflow_uri, filter="tags.vocab = d")
    assert "\n" not in str(info.value)
    with pytest.raises(XltError, match=r"no FINISHED runs of experiment '.*' with filter \"tags.vocab = 'zzz'\" "
                                       r"have test/<task>/<metric>/<group> metrics .* task runs log test/<task>/"):
        collect(table2["name"], mlflow_uri, filter="tags.vocab = 'zzz'")
    name, exp = _experiment(client, tmp_path, "report-mlm-only")
    _run(client, exp, {"model": "m"}, [], 1)
    with pytest.raises(XltError, match=rf"no FINISHED runs of experiment '{name}' have test/"):
        collect(name, mlflow_uri)
    with pytest.raises(XltError, match=r"tasks found: xnli, qa"):
        collect(table2["name"], mlflow_uri, tasks=["udpos"])
    with pytest.raises(XltError, match=r"no run logs test/qa/exact/... — metrics of qa: f1, em"):
        collect(table2["name"], mlflow_uri, metrics={"qa": "exact"})
    with pytest.raises(XltError, match=r"no MLflow store at"):
        collect(table2["name"], f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()


def test_qa_rows_name_their_answer_normalisation(client: MlflowClient, mlflow_uri: str, tmp_path: Path) -> None:
    """Under Table 2 and the QA per-language table: each QA row's protocol from its runs' tags."""
    from xlt.evaluation.metrics import mlqa_undefined_note
    from xlt.evaluation.report_runs import NORMALIZATION_TAGS
    from xlt.models.qa import NORMALIZATION_NOTE_TAG, NORMALIZATION_TAG

    assert NORMALIZATION_TAGS["qa"] == (NORMALIZATION_TAG, NORMALIZATION_NOTE_TAG)  # what the QA module writes
    name, exp = _experiment(client, tmp_path, "report-qa-protocol")
    qa = [_result("qa", "f1", _scores(0.7, 0.5, 0.3)), _result("qa", "em", _scores(0.6, 0.4, 0.2))]
    note = mlqa_undefined_note(["yor"])
    for seed in ("0", "1"):
        _run(client, exp, {"model": "xq", "xlt.task": "qa", "xlt.seed": seed, NORMALIZATION_TAG: "squad_v1"}, qa,
             int(seed) + 1)
    _run(client, exp, {"model": "ml", "xlt.task": "qa", "xlt.seed": "0", NORMALIZATION_TAG: "mlqa",
                       NORMALIZATION_NOTE_TAG: note}, qa, 10)
    _run(client, exp, {"model": "old", "xlt.task": "qa", "xlt.seed": "0"}, qa, 11)
    _run(client, exp, {"model": "mix", "xlt.task": "qa", "xlt.seed": "0", NORMALIZATION_TAG: "mlqa"}, qa, 12)
    _run(client, exp, {"model": "mix", "xlt.task": "qa", "xlt.seed": "1", NORMALIZATION_TAG: "squad_v1"}, qa, 13)
    _run(client, exp, {"model": "xq", "xlt.task": "xnli", "xlt.seed": "0"},
         [_result("xnli", "acc", _scores(.5, .5, .5))], 14)
    out = report(name, tracking_uri=mlflow_uri, label_tags=["model"], out=str(tmp_path / "r"), log_to_mlflow=False)
    expected = [
        "QA normalisation, mix: differs between seeds: mlqa (MLQA's language-aware script) [1 run] | squad_v1 "
        "(official SQuAD v1.1 script, as XTREME scores XQuAD and TyDi QA GoldP) [1 run].",
        f"QA normalisation, ml: mlqa (MLQA's language-aware script); {note}.",
        "QA normalisation, old: not recorded (the run predates the xlt.qa_normalization tag; xlt then defaulted to "
        "mlqa).",
        "QA normalisation, xq: squad_v1 (official SQuAD v1.1 script, as XTREME scores XQuAD and TyDi QA GoldP).",
    ]
    table2 = (out / "table2.md").read_text()
    assert [line for line in table2.splitlines() if line.startswith("QA normalisation")] == expected
    languages = (out / "languages_qa.md").read_text()
    assert [line for line in languages.splitlines() if line.startswith("QA normalisation")] == expected
    assert "QA normalisation" not in (out / "languages_xnli.md").read_text()
    assert note.startswith("mlqa: yor scored with the generic rule")
