"""Task metrics: hand-computed cases, seqeval agreement on random tag sequences, cross-rank sync."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xlt.evaluation.metrics import (
    Accuracy,
    RetrievalP1,
    SpanF1,
    SquadF1EM,
    get_entities,
    mixed_segmentation,
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
