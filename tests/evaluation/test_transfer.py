"""Transfer matrices, heatmaps, typological distance and its correlation with transfer."""

from __future__ import annotations

import csv
import io
import sys
import types

import numpy as np
import pytest
import scipy.stats
from matplotlib.image import imread

from xlt.errors import XltError
from xlt.evaluation.disaggregation import disaggregate
from xlt.evaluation.transfer import (
    TransferMatrix,
    distance_matrix,
    distances,
    panel_distance,
    pearson,
    rankdata,
    spearman,
    transfer_distance_correlation,
)
from xlt.languages import Language, Panel


def _lang(code: str, family: str, script: str, word_order: str | None, morphology: str | None) -> Language:
    features = {k: v for k, v in (("word_order", word_order), ("morphology", morphology)) if v}
    return Language(code, code, family, script, "mid", features=features)


PANEL = Panel("typo", (
    _lang("qaa", "F1", "Latin", "SVO", "analytic"),
    _lang("qab", "F2", "Latin", "SVO", "analytic"),
    _lang("qac", "F3", "Cyrillic", "SOV", "agglutinative"),
    _lang("qad", "F1", "Latin", "SOV", "analytic"),
    _lang("qae", "F1", "Latin", None, None),
))


def test_matrix_from_scores_and_results():
    m = TransferMatrix.from_scores({"qaa": {"qaa": 0.9, "qab": 0.7}, "qab": {"qab": 0.8, "qac": 0.4}},
                                   task="xnli", metric="acc")
    assert m.sources == ("qaa", "qab") and m.targets == ("qaa", "qab", "qac")
    assert m.get("qaa", "qab") == 0.7 and np.isnan(m.get("qaa", "qac"))
    assert m.pairs() == [("qaa", "qab", 0.7), ("qab", "qac", 0.4)]
    assert len(m.pairs(include_diagonal=True)) == 4
    rows = list(csv.reader(io.StringIO(m.to_csv())))
    assert rows == [["source", "qaa", "qab", "qac"], ["qaa", "0.9", "0.7", ""], ["qab", "", "0.8", "0.4"]]
    assert "| qab | – | 80.0 | 40.0 |" in m.to_markdown()
    named = m.to_markdown(labels={"qaa": "qaa Anglish", "qab": "qab Romanse"})  # Panel.labels(); qac unnamed
    assert named.splitlines()[0] == "| source \\ target | qaa Anglish | qab Romanse | qac |"
    assert "| qab Romanse | – | 80.0 | 40.0 |" in named
    results = {src: disaggregate(row, PANEL, stage="test", task="xnli", metric="acc")
               for src, row in {"qaa": {"qaa": 0.9, "qab": 0.7}, "qab": {"qab": 0.8, "qac": 0.4}}.items()}
    from_results = TransferMatrix.from_results(results)
    np.testing.assert_array_equal(from_results.values, m.values)
    assert (from_results.task, from_results.metric) == ("xnli", "acc")


def test_heatmap_writes_a_png_atomically(tmp_path):
    m = TransferMatrix.from_scores({"qaa": {"qaa": 0.9, "qab": 0.5}, "qab": {"qaa": 0.6}}, task="xnli", metric="acc")
    path = m.heatmap(tmp_path / "plots" / "transfer.png", labels={"qaa": "qaa Anglish"})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(path).ndim == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["transfer.png"]  # no temporary leftovers


def test_panel_distance_counts_differing_known_features():
    a, b, c, d, e = PANEL.languages
    assert panel_distance(a, a) == 0.0
    assert panel_distance(a, b) == pytest.approx(1 / 4)  # family only
    assert panel_distance(a, c) == pytest.approx(4 / 4)
    assert panel_distance(a, d) == pytest.approx(1 / 4)  # word order only
    assert panel_distance(b, d) == pytest.approx(2 / 4)  # word order and family
    assert panel_distance(c, d) == pytest.approx(3 / 4)  # morphology, script, family
    assert panel_distance(a, e) == pytest.approx(0 / 2)  # only script and family known for e
    assert panel_distance(c, e, features=["word_order"]) != panel_distance(c, e, features=["word_order"])  # NaN


def test_pearson_and_spearman_hand_case():
    x, y = [1, 2, 3, 4, 5], [2, 4, 5, 4, 5]
    # dx = -2..2, dy = (-2, 0, 1, 0, 1): r = 6 / sqrt(10 * 6)
    assert pearson(x, y) == pytest.approx(6 / np.sqrt(60))
    np.testing.assert_allclose(rankdata(y), [1, 2.5, 4.5, 2.5, 4.5])
    # ranks of y minus 3 = (-2, -0.5, 1.5, -0.5, 1.5): rho = 7 / sqrt(10 * 9)
    assert spearman(x, y) == pytest.approx(7 / np.sqrt(90))
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert pearson(x, y) == pytest.approx(scipy.stats.pearsonr(x, y).statistic)
    assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic)


def test_transfer_correlates_negatively_with_panel_distance():
    targets = ["qaa", "qab", "qac", "qad"]
    dist, method = distance_matrix(["qaa", "qab"], targets, PANEL, method="panel")
    assert method == "panel"
    np.testing.assert_allclose(dist, [[0, 0.25, 1, 0.25], [0.25, 0, 1, 0.5]])
    scores = {s: {t: 0.9 - 0.6 * dist[i, j] for j, t in enumerate(targets)} for i, s in enumerate(["qaa", "qab"])}
    corr = transfer_distance_correlation(TransferMatrix.from_scores(scores), PANEL, method="auto")
    assert corr.method == "panel"  # lang2vec is not installed (or does not know qaa..qad)
    assert corr.n == 6  # off-diagonal pairs
    assert corr.pearson == pytest.approx(-1.0) and corr.spearman == pytest.approx(-1.0)
    assert ("qab", "qad", 0.5, pytest.approx(0.6)) in corr.pairs
    assert corr.to_dict()["n"] == 6


def _fake_lang2vec(monkeypatch, known: set[str]) -> None:
    module = types.ModuleType("lang2vec.lang2vec")
    table = {"syntactic": 0.2, "phonological": 0.4, "inventory": 0.6, "genetic": 0.8}

    def distance(kind: str, a: str, b: str) -> float:
        if a not in known or b not in known:
            raise Exception(f"Unknown language {a if a not in known else b}")
        return table[kind]

    module.distance = distance
    package = types.ModuleType("lang2vec")
    package.lang2vec = module
    monkeypatch.setitem(sys.modules, "lang2vec", package)
    monkeypatch.setitem(sys.modules, "lang2vec.lang2vec", module)


def test_uriel_distances_when_lang2vec_knows_the_languages(monkeypatch):
    _fake_lang2vec(monkeypatch, known={"qaa", "qab"})
    dist, method = distance_matrix(["qaa"], ["qaa", "qab"], PANEL)
    assert method == "uriel"
    np.testing.assert_allclose(dist, [[0.0, 0.5]])  # mean of the four URIEL distances
    found = distances(["qaa"], ["qaa", "qab"], PANEL)
    assert (found.method, found.uriel_unknown, found.note) == ("uriel", (), None)
    dist, method = distance_matrix(["qaa"], ["qab", "qac"], PANEL)  # qac unknown to URIEL: whole matrix on panel
    assert method == "panel" and dist[0, 1] == 1.0
    with pytest.raises(XltError, match=r"URIEL \(lang2vec\) has no features for qac \(of qaa, qac\)"):
        distance_matrix(["qaa"], ["qac"], PANEL, method="uriel")


def test_uriel_fallback_names_exactly_the_languages_lang2vec_does_not_know(monkeypatch):
    _fake_lang2vec(monkeypatch, known={"qaa", "qab", "qad"})
    found = distances(["qaa", "qab"], ["qac", "qad", "qae"], PANEL)
    assert found.method == "panel" and found.requested == "auto" and found.lang2vec_installed is True
    assert found.uriel_unknown == ("qac", "qae")  # per language, in first-seen order; qaa, qab, qad are known
    assert found.note == "URIEL (lang2vec) has no distances for qac, qae: panel distances used for all pairs"
    np.testing.assert_allclose(found.values, [[1.0, 0.25, 0.0], [1.0, 0.5, 0.5]])
    # the correlation carries the same per-language answer, in its JSON and its report line
    scores = {"qaa": {"qab": 0.7, "qac": 0.2, "qad": 0.6}, "qab": {"qaa": 0.6, "qac": 0.3, "qad": 0.5}}
    corr = transfer_distance_correlation(TransferMatrix.from_scores(scores), PANEL)
    assert (corr.method, corr.uriel_unknown) == ("panel", ("qac",))
    assert corr.to_dict()["uriel_unknown"] == ["qac"]
    assert corr.to_dict()["note"] == "URIEL (lang2vec) has no distances for qac: panel distances used for all pairs"
    assert corr.describe().endswith("Note: URIEL (lang2vec) has no distances for qac: panel distances used for "
                                    "all pairs.")
    # every language known: URIEL, no note; panel asked for: no note, lang2vec not consulted
    _fake_lang2vec(monkeypatch, known={"qaa", "qab", "qac", "qad"})
    corr = transfer_distance_correlation(TransferMatrix.from_scores(scores), PANEL)
    assert (corr.method, corr.uriel_unknown, corr.note, corr.to_dict()["note"]) == ("uriel", (), None, None)
    assert "Note" not in corr.describe()
    found = distances(["qaa"], ["qac"], PANEL, method="panel")
    assert (found.method, found.uriel_unknown, found.note, found.lang2vec_installed) == ("panel", (), None, None)


def test_auto_without_lang2vec_says_panel_distances_stand_in(monkeypatch):
    monkeypatch.setitem(sys.modules, "lang2vec", None)
    found = distances(["qaa"], ["qab"], PANEL)
    assert (found.method, found.uriel_unknown, found.lang2vec_installed) == ("panel", (), False)
    assert found.note == ("lang2vec is not installed: panel distances used for all pairs (pip install lang2vec for "
                          "URIEL)")


def test_uriel_without_lang2vec_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "lang2vec", None)
    with pytest.raises(XltError, match="needs the lang2vec package"):
        distance_matrix(["qaa"], ["qab"], PANEL, method="uriel")
    with pytest.raises(XltError, match="distance method 'wals' is unknown"):
        distance_matrix(["qaa"], ["qab"], PANEL, method="wals")  # type: ignore[arg-type]
