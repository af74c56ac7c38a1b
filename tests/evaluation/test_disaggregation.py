"""Disaggregated reporting: hand-computed groups, bottom decile, % of supervised, gap recovered, CIs, names."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest

from xlt.errors import XltError
from xlt.evaluation.bootstrap import PerExample, bootstrap_distribution, language_rng
from xlt.evaluation.disaggregation import (
    across_seeds,
    bottom_decile_languages,
    disaggregate,
    gap_recovered,
    metric_name,
    relative_to_supervised,
    sanitize_group,
)
from xlt.languages import Language, Panel, load_panel

PANEL = Panel("hand", (
    Language("eng", "English", "Germanic", "Latin", "high", 300.0),
    Language("deu", "German", "Germanic", "Latin", "high", 66.0),
    Language("hin", "Hindi", "Indic", "Devanagari", "mid", 20.0),
    Language("yor", "Yoruba", "Niger-Congo", "Latin", "tail", 0.1),
    Language("tam", "Tamil", "Dravidian", "Tamil", "low", 0.05),
))
ZERO = {"eng": 0.9, "deu": 0.8, "hin": 0.6, "yor": 0.3, "tam": 0.4}
SUP = {"eng": 0.9, "deu": 0.9, "hin": 0.8, "yor": 0.6, "tam": 0.8}
FEW = {"eng": 0.9, "deu": 0.85, "hin": 0.7, "yor": 0.45, "tam": 0.7}


def _scores(result) -> dict[str, float]:
    return {g: round(row.score, 10) for g, row in result.groups.items()}


def test_groups_are_hand_computed_means_in_reporting_order():
    result = disaggregate(ZERO, PANEL, stage="test", task="xnli", metric="acc")
    assert _scores(result) == {
        "eng": 0.9, "deu": 0.8, "hin": 0.6, "yor": 0.3, "tam": 0.4,
        "macro": 0.6,
        "family.Germanic": 0.85, "family.Indic": 0.6, "family.Niger-Congo": 0.3, "family.Dravidian": 0.4,
        "script.Latin": round(2.0 / 3, 10), "script.Devanagari": 0.6, "script.Tamil": 0.4,
        "bucket.high": 0.85, "bucket.mid": 0.6, "bucket.low": 0.4, "bucket.tail": 0.3,
        "bottom_decile": 0.3,
    }
    assert result["script.Latin"].languages == ("eng", "deu", "yor")
    assert all(row.low is None and row.n_examples is None for row in result.groups.values())  # floats: no CI
    b = result.bottom_decile
    assert (b.by, b.languages, b.gap, b.worst_language) == ("bucket", ("yor",), pytest.approx(0.3), "yor")


def test_exclude_keeps_the_row_but_drops_it_from_aggregates():
    result = disaggregate(ZERO, PANEL, stage="test", task="xnli", metric="acc", exclude=["eng"])
    assert result["eng"].score == 0.9
    assert result.macro.score == pytest.approx((0.8 + 0.6 + 0.3 + 0.4) / 4)
    assert result["family.Germanic"].languages == ("deu",)


def test_bottom_decile_rules():
    assert bottom_decile_languages(PANEL, ZERO, "bucket") == ["yor"]
    assert bottom_decile_languages(PANEL, ZERO, "size") == ["tam"]  # ceil(5 / 10) = 1 smallest corpus
    assert bottom_decile_languages(PANEL, ZERO, "score") == ["yor"]
    paper40 = load_panel("paper40")
    assert bottom_decile_languages(paper40, dict.fromkeys(paper40.codes, 0.5), "size") == \
        bottom_decile_languages(paper40, dict.fromkeys(paper40.codes, 0.5), "bucket")  # tail = bottom 10%
    with pytest.raises(XltError, match="bottom decile rule"):
        bottom_decile_languages(PANEL, ZERO, "median")  # type: ignore[arg-type]


def test_percent_of_supervised_and_gap_recovered():
    of_sup = relative_to_supervised(ZERO, SUP, PANEL)
    assert of_sup["deu"] == pytest.approx(0.8 / 0.9)
    assert of_sup["yor"] == pytest.approx(0.5)
    assert of_sup["macro"] == pytest.approx(0.6 / 0.8)  # ratio of macro averages
    assert of_sup["bucket.high"] == pytest.approx(0.85 / 0.9)
    gap = gap_recovered(FEW, ZERO, SUP, PANEL)
    assert "eng" not in gap  # supervised == zero-shot: undefined
    assert gap["deu"] == pytest.approx(0.5)  # (0.85 - 0.8) / (0.9 - 0.8)
    assert gap["tam"] == pytest.approx(0.75)  # (0.7 - 0.4) / (0.8 - 0.4)
    assert gap["macro"] == pytest.approx((0.72 - 0.6) / (0.8 - 0.6))  # 0.6
    result = disaggregate(FEW, PANEL, stage="test", task="xnli", metric="acc", supervised=SUP, zero_shot=ZERO)
    assert result.derived["acc_gap_recovered"]["macro"] == pytest.approx(0.6)
    assert result.derived["acc_gap_recovered"]["bottom_decile"] == pytest.approx(0.5)  # yor
    assert result.derived["acc_of_supervised"]["macro"] == pytest.approx(0.72 / 0.8)
    metrics = result.metrics()
    assert metrics["test/xnli/acc_gap_recovered/macro"] == pytest.approx(0.6)
    assert metrics["test/xnli/acc_of_supervised/yor"] == pytest.approx(0.75)
    reference = disaggregate(SUP, PANEL, stage="test", task="xnli", metric="acc")  # a supervised run's result
    as_result = disaggregate(ZERO, PANEL, stage="test", task="xnli", metric="acc", supervised=reference)
    assert as_result.derived["acc_of_supervised"]["macro"] == pytest.approx(0.75)


def test_group_cis_resample_examples_within_languages():
    rng = np.random.default_rng(0)
    stats = {c: PerExample.mean(rng.random(200) < p) for c, p in
             {"eng": 0.9, "deu": 0.8, "hin": 0.6, "yor": 0.3, "tam": 0.4}.items()}
    result = disaggregate(stats, PANEL, stage="test", task="xnli", metric="acc", n_boot=400, seed=7)
    macro = result.macro
    expected = np.mean([bootstrap_distribution(stats[c], 400, language_rng(7, c)) for c in PANEL.codes], axis=0)
    assert (macro.low, macro.high) == pytest.approx(tuple(np.quantile(expected, [0.025, 0.975])))
    assert macro.score == pytest.approx(np.mean([s.score() for s in stats.values()]))
    assert macro.n_examples == 1000
    assert result["yor"].low < result["yor"].score < result["yor"].high
    # averaging 5 independent languages shrinks the interval by about sqrt(5)
    single = np.mean([result[c].high - result[c].low for c in PANEL.codes])
    assert 0.3 < (macro.high - macro.low) / single < 0.6
    # one language without per-example data: its groups get no CI
    mixed = disaggregate({**stats, "yor": 0.3}, PANEL, stage="test", task="xnli", metric="acc", n_boot=100)
    assert mixed.macro.low is None and mixed["family.Germanic"].low is not None


def test_constant_per_example_scores_have_zero_width_group_cis():
    stats = {c: PerExample.mean(np.full(20, v)) for c, v in ZERO.items()}
    result = disaggregate(stats, PANEL, stage="val", task="pawsx", metric="acc", n_boot=100)
    for row in result.groups.values():
        assert row.low == pytest.approx(row.score) and row.high == pytest.approx(row.score)


def test_metric_names_follow_design():
    panel = Panel("odd", (Language("gug", "Guarani", "Tupí-Guaraní", "Latin", "tail"),
                          Language("arb", "Arabic", "Afro-Asiatic (Semitic)", "Arabic/Naskh", "high")))
    stats = {"gug": PerExample.mean([1, 0, 1]), "arb": PerExample.mean([1, 1, 0])}
    result = disaggregate(stats, panel, stage="test", task="xnli", metric="acc", n_boot=50)
    names = result.metrics()
    assert "test/xnli/acc/family.Tupi-Guarani" in names
    assert "test/xnli/acc/family.Afro-Asiatic _Semitic_" in names
    assert "test/xnli/acc/script.Arabic_Naskh" in names
    assert "test/xnli/acc_ci_low/macro" in names and "test/xnli/acc_ci_high/bucket.tail" in names
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9_/. -]+", name) and name.count("/") == 3, name
    assert sanitize_group("Niger-Congo") == "Niger-Congo"
    assert metric_name("test", "xnli", "acc", "script.Han") == "test/xnli/acc/script.Han"
    with pytest.raises(ValueError, match="group"):
        metric_name("test", "xnli", "acc", "a/b")


def test_tables():
    result = disaggregate(ZERO, PANEL, stage="test", task="xnli", metric="acc", supervised=SUP)
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    macro = next(r for r in rows if r["group"] == "macro")
    assert float(macro["score"]) == pytest.approx(0.6) and macro["ci_low"] == ""
    assert float(macro["acc_of_supervised"]) == pytest.approx(0.75)
    assert macro["languages"] == "eng deu hin yor tam"
    md = result.to_markdown()
    assert "| macro | 60.0 | – | 5 | – | 75.0 |" in md
    assert "Bottom decile (by bucket: yor): 30.0 vs macro 60.0 (gap 30.0)" in md


def test_across_seeds():
    runs = [disaggregate({c: v + d for c, v in ZERO.items()}, PANEL, stage="test", task="xnli", metric="acc")
            for d in (0.0, 0.2)]
    summary = across_seeds(runs)
    assert summary["macro"].mean == pytest.approx(0.7)
    assert summary["macro"].std == pytest.approx(np.sqrt(0.02))
    assert summary["yor"].n_seeds == 2


def test_user_errors_are_one_line_xlt_errors():
    with pytest.raises(XltError, match="'xyz'.*not in panel 'hand'"):
        disaggregate({**ZERO, "xyz": 0.5}, PANEL, stage="test", task="xnli", metric="acc")
    with pytest.raises(XltError, match="no evaluation examples for language 'yor'"):
        disaggregate({"yor": PerExample.mean([])}, PANEL, stage="test", task="xnli", metric="acc")
    with pytest.raises(XltError, match="without a supervised reference"):
        disaggregate(FEW, PANEL, stage="test", task="xnli", metric="acc", zero_shot=ZERO)
    with pytest.raises(XltError, match="no per-language scores"):
        disaggregate({}, PANEL, stage="test", task="xnli", metric="acc")


def test_log_evaluation_to_mlflow_reads_back(mlflow_uri, tmp_path):
    from mlflow.tracking import MlflowClient

    from xlt.evaluation.mlflow_logging import log_evaluation
    from xlt.evaluation.transfer import TransferMatrix, transfer_distance_correlation

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.create_experiment("eval-logging", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    stats = {c: PerExample.mean(np.r_[np.ones(round(20 * v)), np.zeros(20 - round(20 * v))]) for c, v in ZERO.items()}
    result = disaggregate(stats, PANEL, stage="test", task="xnli", metric="acc", n_boot=200, supervised=SUP)
    matrix = TransferMatrix.from_scores({"eng": ZERO, "deu": {c: v - 0.05 for c, v in ZERO.items()}},
                                        task="xnli", metric="acc")
    corr = transfer_distance_correlation(matrix, PANEL, method="panel")
    logged = log_evaluation(result, run_id, mlflow_uri, transfer=matrix, correlation=corr, step=3)

    data = client.get_run(run_id).data.metrics
    assert data == pytest.approx(logged)
    assert data["test/xnli/acc/macro"] == pytest.approx(0.6)
    assert data["test/xnli/acc/family.Niger-Congo"] == pytest.approx(0.3)  # name kept intact by MLflow
    assert data["test/xnli/acc_ci_low/yor"] < 0.3 < data["test/xnli/acc_ci_high/yor"]
    assert data["test/xnli/acc_of_supervised/macro"] == pytest.approx(0.75)
    assert "test/xnli/acc_distance_pearson/all" in data
    assert client.get_metric_history(run_id, "test/xnli/acc/macro")[0].step == 3
    files = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert files == {f"evaluation/{name}" for name in (
        "test_xnli_acc.csv", "test_xnli_acc.md", "test_xnli_acc.json", "test_xnli_acc.png",
        "transfer_xnli_acc.csv", "transfer_xnli_acc.md", "transfer_xnli_acc.png",
        "distance_xnli_acc.json", "distance_xnli_acc.png")}
    local = client.download_artifacts(run_id, "evaluation", str(tmp_path / "download"))
    assert (tmp_path / "download" / "evaluation" / "test_xnli_acc.csv").read_text() == result.to_csv()
    assert open(f"{local}/test_xnli_acc.png", "rb").read(4) == b"\x89PNG"


def test_tables_and_plots_name_languages_as_the_panel_does(tmp_path):
    """Markdown rows and bar-plot ticks read ``<code> <panel name>``; CSV, dicts and metric names keep the codes."""
    from xlt.evaluation.plots import language_scores_figure, plot_language_scores

    panel = load_panel("synthetic").subset(["qaa", "qai", "qaj"])
    result = disaggregate({"qaa": 0.9, "qai": 0.5, "qaj": 0.7}, panel, stage="test", task="udpos", metric="acc")
    lines = result.to_markdown().splitlines()
    assert lines[4:7] == ["| qaa Anglish | 90.0 | – | 1 | – |",
                          "| qai Greek Anglish | 50.0 | – | 1 | – |",
                          "| qaj Verb-final Anglish | 70.0 | – | 1 | – |"]
    assert lines[7] == "| macro | 70.0 | – | 3 | – |"  # groups keep their names
    assert [r["group"] for r in csv.DictReader(io.StringIO(result.to_csv()))][:3] == ["qaa", "qai", "qaj"]
    assert "test/udpos/acc/qai" in result.metrics()
    figure = language_scores_figure(result)
    ticks = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert ticks == ["qaa Anglish", "qai Greek Anglish", "qaj Verb-final Anglish"]
    assert plot_language_scores(result, tmp_path / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a language whose panel name is its code, or a result built without labels, shows the bare code
    bare = disaggregate({"abc": 0.5}, Panel("p", (Language("abc", "abc", "F", "Latin", "high"),)),
                        stage="test", task="t", metric="acc")
    assert "| abc | 50.0 |" in bare.to_markdown()
    assert [t.get_text() for t in language_scores_figure(bare).axes[0].get_xticklabels()] == ["abc"]
