"""Task metrics: hand-computed cases, seqeval agreement on random tag sequences, cross-rank sync."""

from __future__ import annotations

import json
import re
import string
import sys
import unicodedata
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xlt.evaluation.metrics import (
    MLQA_GENERIC_RULE,
    Accuracy,
    RetrievalP1,
    SpanF1,
    SquadF1EM,
    get_entities,
    mixed_segmentation,
    mlqa_defines,
    mlqa_undefined_note,
    nearest_neighbours,
    normalize_answer,
    retrieval_hits,
    span_counts,
    squad_em,
    squad_f1,
)

# ------------------------------------------------------------------------------------------------ accuracy


def test_accuracy_sentence_classification_keeps_per_example_correctness():
    metric = Accuracy()
    metric.update(torch.tensor([0, 1]), torch.tensor([0, 2]))
    logits = torch.tensor([[0.1, 0.2, 3.0], [0.0, 5.0, 1.0]])  # argmax 2, 1
    metric.update(logits, torch.tensor([2, 1]))
    assert metric.compute().item() == pytest.approx(0.75)
    stats = metric.per_example()
    assert stats.statistic == "ratio"
    np.testing.assert_array_equal(stats.values, [[1, 1], [0, 1], [1, 1], [1, 1]])
    assert stats.score() == pytest.approx(0.75)


def test_accuracy_token_level_ignores_positions_and_groups_by_sentence():
    metric = Accuracy()
    preds = torch.tensor([[1, 2, 3], [0, 0, 0], [4, 4, 4]])
    target = torch.tensor([[1, -100, 0], [0, 0, -100], [-100, -100, -100]])
    metric.update(preds, target)
    # sentence 1: 1 of 2 scored tokens right; sentence 2: 2 of 2; sentence 3: nothing scored
    assert metric.compute().item() == pytest.approx(3 / 4)
    np.testing.assert_array_equal(metric.per_example().values, [[1, 2], [2, 2]])


def test_accuracy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ"):
        Accuracy().update(torch.tensor([1, 2, 3]), torch.tensor([1, 2]))


# ------------------------------------------------------------------------------------------------ span F1


def test_entities_follow_seqeval_default_chunking():
    assert get_entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    assert get_entities(["O", "I-PER", "I-PER"]) == [("PER", 1, 2)]  # stray I- starts an entity
    assert get_entities(["B-PER", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 1)]  # type change splits
    assert get_entities(["I-ORG", "B-ORG", "I-ORG"]) == [("ORG", 0, 0), ("ORG", 1, 2)]
    assert get_entities([]) == []


def test_span_f1_hand_cases():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"], ["O", "O"]]
    pred = [["B-PER", "O", "O", "I-LOC"],  # PER boundary wrong (fp + fn); stray I-LOC = LOC at 3 (tp)
            ["B-ORG", "B-PER"],           # ORG tp, PER fp
            ["O", "O"]]
    assert span_counts(pred[0], gold[0]) == (1, 1, 1)
    metric = SpanF1()
    metric.update(pred, gold)
    tp, fp, fn = 2, 2, 1
    assert metric.compute().item() == pytest.approx(2 * tp / (2 * tp + fp + fn))  # 4/7
    np.testing.assert_array_equal(metric.per_example().values, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    assert metric.per_example().score() == pytest.approx(4 / 7)


def test_span_f1_from_id_tensors_skips_ignored_positions():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    metric = SpanF1(labels=labels)
    # sub-token positions (-100) are dropped before chunking: gold = B-PER I-PER O, pred = B-PER I-PER O
    target = torch.tensor([[1, -100, 2, 0, -100]])
    preds = torch.tensor([[1, 3, 2, 0, 4]])
    metric.update(preds, target)
    assert metric.compute().item() == pytest.approx(1.0)
    logits = torch.nn.functional.one_hot(torch.tensor([[3, 0, 0]]), num_classes=5).float()  # B-LOC O O
    metric.update(logits, torch.tensor([[1, 0, 0]]))  # gold B-PER O O
    assert metric.compute().item() == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))


def test_span_f1_rejects_non_iob_labels():
    with pytest.raises(ValueError, match="IOB2"):
        SpanF1(labels=["O", "PER"])


_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(_TAGS), min_size=0, max_size=12),
                          st.lists(st.sampled_from(_TAGS), min_size=0, max_size=12)), min_size=1, max_size=6))
def test_span_f1_matches_seqeval_on_random_tags(pairs):
    from seqeval.metrics import f1_score
    from seqeval.metrics.sequence_labeling import get_entities as seqeval_entities

    gold = [g[: min(len(g), len(p))] for g, p in pairs]
    pred = [p[: len(g)] for g, p in zip(gold, (p for _, p in pairs), strict=True)]
    for sentence in gold + pred:
        assert get_entities(sentence) == seqeval_entities(sentence)
    metric = SpanF1()
    metric.update(pred, gold)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = f1_score(gold, pred)
    assert metric.compute().item() == pytest.approx(expected, abs=1e-6)
    assert metric.per_example().score() == pytest.approx(expected, abs=1e-9)


# ------------------------------------------------------------------------------------------------ SQuAD / MLQA


def test_squad_official_normalisation_and_scores():
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    # pred tokens: cat sat on mat; vs "cat sat": P 2/4 R 1 -> 2/3; vs "mat": P 1/4 R 1 -> 0.4; max = 2/3
    assert squad_f1("the cat sat on the mat", ["a cat sat", "mat"]) == pytest.approx(2 / 3)
    assert squad_em("The Cat.", ["dog", "cat"]) == 1.0
    assert squad_f1("dog", "cat") == 0.0
    # the official script removes ASCII punctuation only
    assert squad_em("«cat»", "cat") == 0.0
    assert squad_em("«cat»", "cat", lang="eng") == 1.0


def test_mlqa_language_aware_normalisation():
    assert normalize_answer("Der Hund, die Katze", "deu") == "hund katze"
    assert normalize_answer("Der Hund, die Katze") == "der hund die katze"
    assert normalize_answer("El perro y las gatas", "es") == "perro y gatas"
    assert normalize_answer("sách của tôi", "vie") == "sách tôi"
    assert normalize_answer("الكتاب", "ara") == "كتاب"  # MLQA strips every "ال"
    assert normalize_answer("the cat", "yor") == "the cat"  # no article list outside MLQA's languages
    assert normalize_answer("¿Qué? «sí»", "spa") == "qué sí"  # Unicode punctuation


def test_mlqa_mixed_segmentation_for_chinese():
    assert mixed_segmentation("2008年北京 ok") == ["2008", "年", "北", "京", "ok"]
    assert normalize_answer("北京大学，2008年", "zh") == "北 京 大 学 2008 年"
    # character-level tokens: "北京大学" vs "北京": 2 common of 4 predicted, 2 gold -> P 0.5 R 1 -> F1 2/3
    assert squad_f1("北京大学", ["北京"], lang="zho") == pytest.approx(2 / 3)
    assert squad_f1("北京大学", ["北京"]) == 0.0  # whitespace tokens: one token each, no overlap


def test_squad_v1_and_mlqa_give_different_f1_on_chinese_and_spanish_articles():
    """Hand-computed: squad_v1 keeps Spanish articles, Unicode punctuation and unsegmented Chinese; mlqa does not."""
    # Spanish (3 questions), squad_v1 | mlqa:
    #   "el perro" vs "perro":     [el, perro] vs [perro] -> P 1/2 R 1 -> 2/3, EM 0 | 'el' dropped -> 1, EM 1
    #   "«perro»" vs "perro":      « » are not ASCII punctuation -> 0              | -> 1, EM 1
    #   "gato negro" vs "el gato": 1 common of 2 and 2 -> 1/2                      | [gato] -> P 1/2 R 1 -> 2/3
    preds, golds = ["el perro", "«perro»", "gato negro"], [["perro"], ["perro"], ["el gato"]]
    squad = SquadF1EM(lang="spa")
    assert squad.normalization == "squad_v1"  # the metric's default is XTREME's protocol for XQuAD / TyDi QA
    mlqa = SquadF1EM(lang="spa", normalization="mlqa")
    for metric in (squad, mlqa):
        metric.update(preds, golds)
    np.testing.assert_array_equal(squad.per_example("f1").values[:, 0], [2 / 3, 0.0, 0.5])
    np.testing.assert_array_equal(mlqa.per_example("f1").values[:, 0], [1.0, 1.0, 2 / 3])
    assert squad.compute()["f1"].item() == np.mean([2 / 3, 0.0, 0.5]) == pytest.approx(7 / 18, rel=1e-15)
    assert mlqa.compute()["f1"].item() == np.mean([1.0, 1.0, 2 / 3]) == pytest.approx(8 / 9, rel=1e-15)
    assert (squad.compute()["em"].item(), mlqa.compute()["em"].item()) == (0.0, 2 / 3)
    # Chinese: "北京大学" vs "北京" is one whitespace token each under squad_v1 (F1 0); mlqa segments characters:
    # 2 common of 4 predicted and 2 gold -> P 1/2 R 1 -> 2/3. "北京。" vs "北京": squad_v1 keeps "。" -> 0; mlqa 1.
    zh_squad, zh_mlqa = SquadF1EM(lang="zho"), SquadF1EM(lang="zho", normalization="mlqa")
    for metric in (zh_squad, zh_mlqa):
        metric.update(["北京大学", "北京。"], [["北京"], ["北京"]])
    assert zh_squad.compute()["f1"].item() == 0.0
    assert zh_mlqa.compute()["f1"].item() == np.mean([2 / 3, 1.0]) == pytest.approx(5 / 6, rel=1e-15)
    assert (zh_squad.rule, zh_mlqa.rule) == ("squad_v1", "mlqa")
    with pytest.raises(ValueError, match="must be one of"):
        SquadF1EM(lang="spa", normalization="squad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pass lang="):
        SquadF1EM(normalization="mlqa")


def test_mlqa_names_the_rule_of_languages_its_script_does_not_define():
    assert [code for code in ("en", "es", "de", "ar", "hi", "vi", "zh", "ru", "tr", "el", "ro", "th")
            if not mlqa_defines(code)] == ["ru", "tr", "el", "ro", "th"]
    assert mlqa_undefined_note(["eng", "zho", "hin"]) is None
    note = mlqa_undefined_note(["deu", "rus", "tur"])
    assert note == f"mlqa: rus, tur scored with the {MLQA_GENERIC_RULE} — MLQA's script defines only en, es, de, " \
                   "ar, hi, vi, zh"
    assert "Unicode punctuation" in MLQA_GENERIC_RULE and "whitespace" in MLQA_GENERIC_RULE
    assert SquadF1EM(lang="rus", normalization="mlqa").rule == f"mlqa ({MLQA_GENERIC_RULE})"
    assert SquadF1EM(lang="rus").rule == "squad_v1"
    # the generic rule: Unicode punctuation and case only, no articles, whitespace tokens
    assert normalize_answer("«Москва» the", "rus") == "москва the"


def test_metric_values_stay_float64_up_to_the_mlflow_store(mlflow_uri: str):
    """Seven F1s whose float64 mean is not a float32: compute() and the SQLite store both hold the float64 mean."""
    from mlflow.tracking import MlflowClient

    from xlt.evaluation.disaggregation import disaggregate
    from xlt.evaluation.mlflow_logging import log_evaluation
    from xlt.languages import Language, Panel

    preds = ["x y z", "x y", "x", "x y z", "x y", "q", "x"]
    golds = [["x"], ["x"], ["x y z w"], ["x"], ["x"], ["x"], ["x"]]  # F1 .5, 2/3, .4, .5, 2/3, 0, 1
    per_question = np.array([squad_f1(p, g) for p, g in zip(preds, golds, strict=True)], dtype=np.float64)
    np.testing.assert_array_equal(per_question, [0.5, 2 / 3, 0.4, 0.5, 2 / 3, 0.0, 1.0])
    exact = float(np.mean(per_question))
    assert float(np.float32(exact)) != exact  # float32 would change the logged value
    metric = SquadF1EM(lang="eng")
    metric.update(preds[:3], golds[:3])
    metric.update(preds[3:], golds[3:])
    value = metric.compute()["f1"]
    assert value.dtype == torch.float64 and value.item() == exact
    # every metric computes in float64
    accuracy = Accuracy()
    accuracy.update(torch.tensor([1, 0, 1]), torch.tensor([1, 1, 1]))
    spans = SpanF1()
    spans.update([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "O"]])
    retrieval = RetrievalP1()
    retrieval.update(*_retrieval_case())
    assert accuracy.compute().dtype == spans.compute().dtype == retrieval.compute()["mean"].dtype == torch.float64
    assert accuracy.compute().item() == 2 / 3 and spans.compute().item() == 2 / 3
    # the test path: per-example scores -> disaggregation -> MLflow client -> SQLite, read back bit for bit
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.create_experiment(f"float64-{np.random.default_rng().integers(1 << 30)}")
    run_id = client.create_run(experiment).info.run_id
    panel = Panel("one", (Language("eng", "English", "Germanic", "Latin", "high"),))
    result = disaggregate({"eng": metric.per_example("f1")}, panel, stage="test", task="qa", metric="f1", n_boot=20)
    logged = log_evaluation(result, run_id, client=client, tables=False, plots=False)
    assert logged["test/qa/f1/eng"] == exact and logged["test/qa/f1/macro"] == exact
    stored = MlflowClient(tracking_uri=mlflow_uri).get_run(run_id).data.metrics
    assert stored["test/qa/f1/eng"] == exact and stored["test/qa/f1/macro"] == exact


# Independent re-implementations of the two official scripts' normalisation and F1 (SQuAD v1.1 evaluate-v1.1.py,
# MLQA mlqa_evaluation_v1.py), to check xlt's per-question scores on real XQuAD against.
_MLQA_PUNCT = {chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")}.union(
    string.punctuation)


def _reference_squad_v1(s: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())


def _reference_mlqa(s: str, lang: str) -> str:
    articles = {"en": r"\b(a|an|the)\b", "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
                "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b", "ar": r"\sال^|ال"}
    s = "".join(ch for ch in s.lower() if ch not in _MLQA_PUNCT)
    if lang in articles:
        s = re.sub(articles[lang], " ", s)
    if lang == "zh":
        tokens, run = [], ""
        for ch in s:
            if re.search(r"[\u4e00-\u9fa5]", ch) or ch in _MLQA_PUNCT:
                tokens += run.split()
                run = ""
                tokens.append(ch)
            else:
                run += ch
        tokens += run.split()
    else:
        tokens = s.split()
    return " ".join(t for t in tokens if t.strip() != "")


def _reference_f1(prediction: str, truth: str, normalize) -> float:
    pred, gold = normalize(prediction).split(), normalize(truth).split()
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def _perturbed_xquad(path: Path) -> tuple[list[str], list[list[str]]]:
    """Gold answers with boundary errors a model makes: a character more or less at either end, or none."""
    preds, golds = [], []
    shifts = [(0, 0), (0, 1), (1, 0), (0, 2), (-1, 0), (0, -1)]
    records = json.loads(path.read_text(encoding="utf-8"))["data"]
    for paragraph in (p for article in records for p in article["paragraphs"]):
        context = paragraph["context"]
        for qa in paragraph["qas"]:
            answer = qa["answers"][0]
            start, end = answer["answer_start"], answer["answer_start"] + len(answer["text"])
            left, right = shifts[len(preds) % len(shifts)]
            a = max(0, start - left if left < 0 else start + left)
            preds.append(context[a:max(a, end + right)])
            golds.append([x["text"] for x in qa["answers"]])
    return preds, golds


@pytest.mark.parametrize("lang", ["zh", "es", "ar", "de", "hi", "en"])
def test_real_xquad_scores_match_both_official_scripts(lang: str, data_dir: Path):
    """Real XQuAD, gold answers with boundary errors: per question, squad_v1 equals the SQuAD v1.1 script and mlqa
    MLQA's; on Chinese the language-aware rule scores far higher (XTREME's published XQuAD numbers use squad_v1)."""
    preds, golds = _perturbed_xquad(data_dir / "qa" / "xquad" / f"xquad.{lang}.json")
    scores = {}
    for normalization, reference in (("squad_v1", _reference_squad_v1),
                                     ("mlqa", lambda s: _reference_mlqa(s, lang))):
        metric = SquadF1EM(lang=lang, normalization=normalization)
        metric.update(preds, golds)
        ours = metric.per_example("f1").values[:, 0]
        theirs = np.array([max(_reference_f1(p, t, reference) for t in g) for p, g in zip(preds, golds, strict=True)])
        np.testing.assert_array_equal(ours, theirs)
        assert metric.compute()["f1"].item() == metric.per_example("f1").score() == pytest.approx(np.mean(theirs),
                                                                                                 rel=1e-14)
        scores[normalization] = float(np.mean(theirs))
    assert len(preds) == 1190
    if lang == "zh":  # unsegmented Chinese: most boundary errors cost the whole answer under squad_v1
        assert scores["mlqa"] - scores["squad_v1"] > 0.2, scores


def test_squad_metric_accumulates_per_question_scores():
    metric = SquadF1EM(lang="eng")
    metric.update(["the cat sat on the mat", "Paris"], [["a cat sat", "mat"], ["paris", "France"]])
    metric.update(["nothing"], [["something"]])
    out = metric.compute()
    assert out["f1"].item() == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert out["em"].item() == pytest.approx(1 / 3)
    np.testing.assert_allclose(metric.per_example("em").values[:, 0], [0, 1, 0])
    np.testing.assert_allclose(metric.per_example("f1").values[:, 0], [2 / 3, 1, 0])


# ------------------------------------------------------------------------------------------------ retrieval


def _retrieval_case() -> tuple[torch.Tensor, torch.Tensor]:
    source = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    target = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    return source, target


def test_nearest_neighbours_use_cosine_not_dot_product() -> None:
    queries = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    keys = torch.tensor([[10.0, 2.0], [0.1, 1.0]])  # dot product would send query 0 to key 0
    assert nearest_neighbours(queries, keys).tolist() == [1, 0]


def test_retrieval_p1_both_directions_hand_case():
    # cos(src1, tgt): 0.8, 0.861, 0.6 -> tgt1 (hit). cos(tgt1, src): 0.994, 0.861, 0.110 -> src0 (miss).
    source, target = _retrieval_case()
    src2tgt, tgt2src = retrieval_hits(source * 5, target)  # cosine: scale-invariant
    assert src2tgt.tolist() == [True, True, True]
    assert tgt2src.tolist() == [True, False, True]
    metric = RetrievalP1()
    metric.update(source[:2], target[:2])
    metric.update(source[2:], target[2:])
    out = metric.compute()
    assert out["src2tgt"].item() == pytest.approx(1.0)
    assert out["tgt2src"].item() == pytest.approx(2 / 3)
    assert out["mean"].item() == pytest.approx(5 / 6)
    np.testing.assert_array_equal(metric.per_example("tgt2src").values[:, 0], [1, 0, 1])


def test_retrieval_p1_centring_removes_a_language_offset():
    """A planted language offset: source = meaning + a large shared vector. Plain cosine then ranks every target by
    its projection on the offset (P@1 at chance); centring each side recovers the meanings (P@1 = 1)."""
    generator = torch.Generator().manual_seed(0)
    meanings = torch.randn(200, 16, generator=generator)
    offset = torch.zeros(16)
    offset[0] = 50.0
    plain, centred = RetrievalP1(), RetrievalP1(center=True)
    for metric in (plain, centred):
        metric.update(meanings + offset, meanings)
    assert centred.compute()["mean"].item() == 1.0
    assert plain.compute()["src2tgt"].item() < 0.1
    np.testing.assert_array_equal(centred.per_example("src2tgt").values[:, 0], np.ones(200))


def test_metrics_sync_list_states_across_ranks():
    """Two simulated ranks: rank 0 gathers its own and rank 1's states (cat), so retrieval runs over all pairs."""
    source, target = _retrieval_case()
    other = RetrievalP1()
    other.update(source[2:], target[2:])
    remote = iter([torch.cat(other.source), torch.cat(other.target)] * 2)

    def gather(tensor: torch.Tensor, group=None) -> list[torch.Tensor]:
        return [tensor, next(remote)]

    rank0 = RetrievalP1(dist_sync_fn=gather, distributed_available_fn=lambda: True)
    rank0.update(source[:2], target[:2])
    assert rank0.compute()["tgt2src"].item() == pytest.approx(2 / 3)
    np.testing.assert_array_equal(rank0.per_example("tgt2src").values[:, 0], [1, 0, 1])
    assert len(rank0.source) == 1 and rank0.source[0].shape == (2, 2)  # unsynced again afterwards
