"""Prediction files scored in row order, and the paired comparison of two runs or two languages over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xlt.cli import main
from xlt.datamodules.tasks import load_task_dataset
from xlt.errors import XltError
from xlt.evaluation.bootstrap import paired_bootstrap
from xlt.evaluation.compare import compare_predictions, render
from xlt.evaluation.predictions import prediction_language, score_predictions


def _tags_file(path: Path, sentences: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("".join(f"{t}\n" for t in tags) + "\n" for tags in sentences), encoding="utf-8")
    return path


def _flip_every_other_sentence(sentences: list[list[str]]) -> tuple[list[list[str]], int]:
    """Gold tags with the first tag of every second sentence wrong; returns the tags and the number of errors."""
    out = []
    for i, tags in enumerate(sentences):
        tags = list(tags)
        if i % 2 == 1:
            tags[0] = "X" if tags[0] != "X" else "NOUN"
        out.append(tags)
    return out, len(sentences) // 2


def test_pos_files_score_in_row_order_and_pair_with_the_hand_computed_difference(task_panel_dir: Path,
                                                                                 tmp_path: Path) -> None:
    gold = load_task_dataset(task_panel_dir / "ud" / "qaj", "udpos", split="test")
    tags = [list(t) for t in gold["upos"]]
    flipped, errors = _flip_every_other_sentence(tags)
    perfect = _tags_file(tmp_path / "a" / "test-qaj.tsv", tags)
    worse = _tags_file(tmp_path / "b" / "test-qaj.tsv", flipped)
    tokens = sum(len(t) for t in tags)
    assert score_predictions("udpos", perfect, gold).score() == 1.0
    stats = score_predictions("udpos", worse, gold)
    assert stats.score() == pytest.approx(1 - errors / tokens, abs=1e-12)
    assert stats.values[1].tolist() == [len(tags[1]) - 1, len(tags[1])]  # row 1 is sentence 1: order kept
    (result,) = compare_predictions("udpos", [perfect], [worse], data=str(task_panel_dir / "ud"), n_boot=500)
    assert result.comparison.difference == pytest.approx(errors / tokens, abs=1e-12)
    assert result.comparison.low > 0 and result.comparison.p_value < 0.01 and result.n_examples == len(tags)


def test_two_languages_of_a_parallel_test_set_pair_row_by_row(task_panel_dir: Path, tmp_path: Path) -> None:
    """The script copy and the word-order copy realise the same meanings in the same rows: a classifier that is
    right on the first half of qaj and on every row of qai differs by exactly the second half's share."""
    gold_j = load_task_dataset(task_panel_dir / "xnli" / "qaj", "xnli", split="test")
    gold_i = load_task_dataset(task_panel_dir / "xnli" / "qai", "xnli", split="test")
    assert gold_j["label"] == gold_i["label"]  # parallel
    n = len(gold_j)
    wrong = {"entailment": "neutral", "neutral": "contradiction", "contradiction": "entailment"}
    half = [label if i < n // 2 else wrong[label] for i, label in enumerate(gold_j["label"])]
    out = tmp_path / "pred"
    out.mkdir()
    (out / "test-qaj.tsv").write_text("".join(f"{x}\n" for x in half), encoding="utf-8")
    (out / "test-qai.tsv").write_text("".join(f"{x}\n" for x in gold_i["label"]), encoding="utf-8")
    (result,) = compare_predictions("xnli", [out / "test-qaj.tsv"], [out / "test-qai.tsv"],
                                    data=str(task_panel_dir / "xnli"))
    assert result.score_a == pytest.approx((n // 2) / n) and result.score_b == 1.0
    assert result.comparison.difference == pytest.approx(-(n - n // 2) / n)
    # the same numbers as the bootstrap on hand-made 0/1 vectors
    expected = paired_bootstrap(np.array([1.0] * (n // 2) + [0.0] * (n - n // 2)), np.ones(n), n_boot=1000)
    assert (result.comparison.low, result.comparison.high) == pytest.approx((expected.low, expected.high))


def test_seeds_give_the_spread_of_the_difference(task_panel_dir: Path, tmp_path: Path) -> None:
    gold = load_task_dataset(task_panel_dir / "ud" / "qaa", "udpos", split="test")
    tags = [list(t) for t in gold["upos"]]
    flipped, errors = _flip_every_other_sentence(tags)
    a = [_tags_file(tmp_path / f"s{s}" / "a" / "test-qaa.tsv", tags) for s in range(3)]
    b = [_tags_file(tmp_path / "s0" / "b" / "test-qaa.tsv", flipped),
         _tags_file(tmp_path / "s1" / "b" / "test-qaa.tsv", tags),
         _tags_file(tmp_path / "s2" / "b" / "test-qaa.tsv", flipped)]
    results = compare_predictions("udpos", a, b, data=str(task_panel_dir / "ud"), n_boot=200)
    diffs = [r.comparison.difference for r in results]
    tokens = sum(len(t) for t in tags)
    assert diffs == pytest.approx([errors / tokens, 0.0, errors / tokens])
    text = render("udpos", results)
    mean, std = np.mean(diffs) * 100, np.std(diffs, ddof=1) * 100
    assert f"a − b = {mean:+.1f} ± {std:.1f}" in text and "2 of 3 significant" in text


def test_qa_answers_and_retrieval_rows(task_panel_dir: Path, tmp_path: Path) -> None:
    gold = load_task_dataset(task_panel_dir / "qa" / "qab", "qa", split="test")
    answers = {qid: row["text"][0] if i % 4 else "" for i, (qid, row) in enumerate(zip(gold["id"], gold["answers"],
                                                                                        strict=True))}
    path = tmp_path / "test-qab.json"
    path.write_text(json.dumps(answers), encoding="utf-8")
    stats = score_predictions("qa", path, gold)
    assert stats.score() == pytest.approx(sum(1 for i in range(len(gold)) if i % 4) / len(gold))
    bitext = load_task_dataset(task_panel_dir / "tatoeba", "retrieval", split="test", language="qab")
    nearest = tmp_path / "test-qab.tsv"
    nearest.write_text("".join(f"{i if i % 2 else (i + 1) % len(bitext)}\n" for i in range(len(bitext))))
    assert score_predictions("retrieval", nearest, bitext).score() == pytest.approx((len(bitext) // 2) / len(bitext))


def test_mismatched_or_misnamed_files_are_one_line_errors(task_panel_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    gold = load_task_dataset(task_panel_dir / "ud" / "qaa", "udpos", split="test")
    short = _tags_file(tmp_path / "test-qaa.tsv", [list(t) for t in gold["upos"]][:-1])
    with pytest.raises(XltError, match="has 37 sentences but the gold test split has 38"):
        score_predictions("udpos", short, gold)
    with pytest.raises(XltError, match="is not a prediction file"):
        prediction_language(tmp_path / "preds.txt")
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "udpos", str(short), f"[{tmp_path / 'missing' / 'test-qaa.tsv'}]",  # a path or a list
              "--data", str(task_panel_dir / "ud")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test-qaa.tsv not found" in err[0]
