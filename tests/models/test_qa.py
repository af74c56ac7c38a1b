"""Extractive QA: character offsets on real XQuAD, sliding windows, bad offsets, post-processing, end to end."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from xlt.datamodules.qa import (
    CLS_INDEX,
    QADataModule,
    answer_labels,
    answer_token_span,
    char_normalizer,
    encode_windows,
    refine_offsets,
    stripped_answer,
)
from xlt.datamodules.task_data import LengthBucketBatches, load_fast_tokenizer
from xlt.errors import XltError
from xlt.evaluation.metrics import mlqa_undefined_note, squad_f1
from xlt.formats import read_squad_json
from xlt.models.qa import SpanExtraction, best_window_span, extract_answer

XQUAD = ["ar", "de", "en", "es", "hi", "ru", "tr", "zh"]
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            max_position_embeddings=130, vocab_size=1002)


def full_context_spans(tokenizer, context: str) -> list[tuple[int, int]]:
    encoded = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    return refine_offsets(tokenizer.convert_ids_to_tokens(encoded["input_ids"]), encoded["offset_mapping"], context,
                          char_normalizer(tokenizer))


def check_windows(tokenizer, rows, max_length: int, doc_stride: int, max_question: int) -> dict[str, object]:
    """Gold span -> window token labels -> offsets -> text, for every question of ``rows``."""
    contexts, answers = list(rows["context"]), list(rows["answers"])
    out = encode_windows(tokenizer, rows["question"], contexts, max_length, doc_stride, max_question)
    gold = [stripped_answer(a["text"][0], a["answer_start"][0]) for a in answers]
    starts, ends = answer_labels(out["offset_start"], out["offset_end"], [gold[r] for r in out["index"]])
    found: dict[int, int] = {}
    inexact: dict[int, str] = {}
    for f, row in enumerate(out["index"]):
        offsets = [s for s in out["offset_start"][f] if s >= 0]
        assert offsets == sorted(offsets)  # context tokens in reading order
        if starts[f] == CLS_INDEX:
            assert ends[f] == CLS_INDEX
            continue
        found[row] = found.get(row, 0) + 1
        text = contexts[row][out["offset_start"][f][starts[f]]:out["offset_end"][f][ends[f]]]
        if text != contexts[row][gold[row][0]:gold[row][1]]:
            inexact[row] = text
    causes = {}
    for row in [r for r in range(len(contexts)) if r not in found or r in inexact]:
        spans = full_context_spans(tokenizer, contexts[row])
        (start, end), context = gold[row], contexts[row]
        if row in inexact:
            inner = [s for s, e in spans if s >= 0 and s < end and e > start]
            mid = "starts" if min(inner) < start else "ends"
            causes[row] = f"answer {mid} mid-token: {context[max(0, start - 8):end + 8]!r}"
        else:  # an answer is missed only when it is longer than the windows' overlap
            first, last = answer_token_span([s for s, _ in spans], [e for _, e in spans], start, end)
            assert last - first + 1 > doc_stride + 1, f"answer of row {row} fits the overlap but no window holds it"
            causes[row] = f"answer of {last - first + 1} tokens > doc_stride + 1"
    return {"windows": out, "found": found, "inexact": inexact, "causes": causes, "labels": (starts, ends)}


@pytest.mark.parametrize("lang", XQUAD)
def test_xquad_gold_spans_round_trip_through_token_offsets(lang: str, data_dir: Path,
                                                          tiny_tokenizer_dir: Path) -> None:
    rows = read_squad_json(data_dir / "qa" / "xquad" / f"xquad.{lang}.json")
    tokenizer = load_fast_tokenizer(str(tiny_tokenizer_dir))
    # XTREME's windows: every question
    result = check_windows(tokenizer, rows, max_length=384, doc_stride=128, max_question=64)
    exact = len(result["found"]) - len(result["inexact"])
    assert exact >= 0.99 * len(rows), f"{lang}: {exact}/{len(rows)} exact — causes: {result['causes']}"
    # small windows, so answers cross window boundaries: the first 120 questions
    small = check_windows(tokenizer, rows.select(range(120)), max_length=64, doc_stride=16, max_question=24)
    exact = len(small["found"]) - len(small["inexact"])
    assert exact >= 0.99 * len(small["found"]) and len(small["found"]) >= 0.7 * 120, small["causes"]
    assert max(small["found"].values()) >= 2  # some answers lie in the overlap of two windows
    windows = small["windows"]
    assert max(windows["windows"]) > 4 and windows["window"][: windows["windows"][0]] == list(range(
        windows["windows"][0]))
    # predicted spans (random logits) are exact substrings of the context at their offsets
    generator = torch.Generator().manual_seed(0)
    contexts = list(rows["context"])
    by_question: dict[int, list[int]] = {}
    for f, row in enumerate(windows["index"]):
        by_question.setdefault(row, []).append(f)
    for row, features in by_question.items():
        parts = [(torch.randn(len(windows["input_ids"][f]), generator=generator),
                  torch.randn(len(windows["input_ids"][f]), generator=generator),
                  torch.tensor(windows["offset_start"][f]), torch.tensor(windows["offset_end"][f])) for f in features]
        answer = extract_answer(parts, contexts[row], n_best=20, max_answer_length=30)
        assert answer.text and answer.text == contexts[row][answer.start:answer.end] == answer.text.strip()


def test_byte_fallback_runs_get_one_character_each(tiny_tokenizer_dir: Path) -> None:
    tokenizer = load_fast_tokenizer(str(tiny_tokenizer_dir))
    text = "Der Präsident (北京大学，1990s) ok"
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert any(t.startswith("<0x") for t in tokens)  # the tiny tokenizer has no CJK pieces
    spans = refine_offsets(tokens, encoded["offset_mapping"], text, char_normalizer(tokenizer))
    covered = {text[s:e] for s, e in spans if s >= 0}
    assert {"北", "京", "大", "学", "，"} <= covered  # NFKC maps "，" to ","; still one span per character
    assert all(text[s:e] == text[s:e].strip() and e > s for s, e in spans if s >= 0)
    assert (-1, -1) in spans  # a lone "▁" covers only a space


def test_sliding_windows_cover_a_long_context_and_label_the_right_ones(tiny_tokenizer_dir: Path) -> None:
    tokenizer = load_fast_tokenizer(str(tiny_tokenizer_dir))
    words = [f"w{i}" for i in range(120)]
    context = " ".join(words)
    start = context.index(" w100 ") + 1
    out = encode_windows(tokenizer, ["Where is w100?"], [context], max_length=40, doc_stride=10,
                         max_question_length=16)
    n = len(out["input_ids"])
    assert n >= 5 and out["windows"] == [n] * n and out["window"] == list(range(n)) and set(out["index"]) == {0}
    spans = full_context_spans(tokenizer, context)
    ctx = [[(s, e) for s, e in zip(out["offset_start"][f], out["offset_end"][f], strict=True) if s >= 0]
           for f in range(n)]
    question = len(tokenizer("Where is w100?", add_special_tokens=False)["input_ids"])
    room = 40 - question - tokenizer.num_special_tokens_to_add(pair=True)
    assert len(out["input_ids"][0]) == 40
    for f in range(n):  # window f holds context tokens [f * step, f * step + room): consecutive ones share 10
        assert ctx[f] == [s for s in spans[f * (room - 10): f * (room - 10) + room] if s[0] >= 0]
        assert len(out["input_ids"][f]) <= 40
    assert ctx[-1][-1][1] == len(context)
    starts, ends = answer_labels(out["offset_start"], out["offset_end"], [(start, start + 4)] * n)
    holding = [f for f in range(n) if starts[f] != CLS_INDEX]
    assert holding and all(ctx[f][0][0] <= start and ctx[f][-1][1] >= start + 4 for f in holding)
    for f in range(n):
        if f in holding:
            assert context[out["offset_start"][f][starts[f]]:out["offset_end"][f][ends[f]]] == "w100"
        else:
            assert starts[f] == ends[f] == CLS_INDEX
            assert not (ctx[f][0][0] <= start and ctx[f][-1][1] >= start + 4)


def squad_file(path: Path, context: str, qas: list[tuple[str, str, str, int]]) -> Path:
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": qid, "question": q, "answers": [{"text": a, "answer_start": s}]} for qid, q, a, s in qas]}]}]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_data_module_features_keep_question_rows_and_windows_together(tmp_path: Path,
                                                                      tiny_tokenizer_dir: Path) -> None:
    context = " ".join(f"w{i}" for i in range(150))
    qas = [("q1", "Where is w140?", "w140", context.index("w140")), ("q2", "Where is w2?", "w2", context.index("w2 "))]
    for split in ("train", "dev", "test"):
        squad_file(tmp_path / "qaa" / f"{split}.json", context, qas)
    dm = QADataModule(data=str(tmp_path), tokenizer=str(tiny_tokenizer_dir), panel="synthetic",
                      train_languages=["qaa"], eval_languages=["qaa"], max_length=48, doc_stride=12,
                      max_question_length=16, eval_max_tokens=200, eval_max_rows=8)
    dm.setup("fit")
    train = dm.features["train"]
    assert set(train["index"]) == {0, 1} and len(train) > 6
    for row, answer in ((0, "w140"), (1, "w2")):
        windows = [train[i] for i in range(len(train)) if train[i]["index"] == row]
        labelled = [w for w in windows if w["start_positions"] != CLS_INDEX]
        assert len(labelled) >= 1 and len(windows) == windows[0]["windows"]
        for w in labelled:
            assert context[w["offset_start"][w["start_positions"]]:w["offset_end"][w["end_positions"]]] == answer
    batch = next(iter(dm.train_dataloader()))
    assert batch["offset_start"].shape == batch["input_ids"].shape  # padded with -1 like the ids
    assert (batch["offset_start"][batch["attention_mask"] == 0] == -1).all()
    dev_batches = list(dm.val_dataloader())
    assert len(dev_batches) > 1  # 200 padded tokens: several batches, never splitting a question
    for b in dev_batches:
        for q in b["index"].unique().tolist():
            assert int((b["index"] == q).sum()) == int(b["windows"][b["index"] == q][0])
    with pytest.raises(XltError, match="doc_stride 48 must be >= 0 and < data.max_length 48"):
        QADataModule(data=str(tmp_path), tokenizer=str(tiny_tokenizer_dir), max_length=48, doc_stride=48)
    tight = QADataModule(data=str(tmp_path), tokenizer=str(tiny_tokenizer_dir), panel="synthetic",
                         train_languages=["qaa"], max_length=48, doc_stride=40, max_question_length=16)
    with pytest.raises(XltError, match="not more than data.doc_stride 40"):
        tight.setup("fit")


def test_question_batches_never_split_a_question() -> None:
    lengths = [10, 12, 12, 30, 5, 5, 5, 8, 40]
    langs = [0, 0, 0, 0, 1, 1, 1, 1, 0]
    questions = [0, 0, 1, 2, 0, 0, 0, 1, 3]
    sampler = LengthBucketBatches(lengths, langs, max_tokens=40, max_rows=4, groups=questions)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(9))
    for b in batches:
        assert len({langs[i] for i in b}) == 1
        keys = {(langs[i], questions[i]) for i in b}
        for key in keys:  # every window of the question is in this batch
            assert {i for i in range(9) if (langs[i], questions[i]) == key} <= set(b)
        assert len(keys) == 1 or max(lengths[i] for i in b) * len(b) <= 40
    assert batches == [[0, 1, 2], [3], [8], [4, 5, 6, 7]]  # per language, shortest questions first
    ranks = [list(LengthBucketBatches(lengths, langs, 40, 4, rank=r, world_size=2, groups=questions)) for r in range(2)]
    assert sorted(i for part in ranks for b in part for i in b) == list(range(9))


def test_bad_answer_offset_names_file_language_and_question(tmp_path: Path, tiny_tokenizer_dir: Path) -> None:
    good = [("ok1", "Who?", "Anna", 0)]
    bad = [("ok1", "Who?", "Anna", 0), ("broken7", "Where?", "Paris", 3)]
    squad_file(tmp_path / "qaa" / "train.json", "Anna lives in Paris.", bad)
    squad_file(tmp_path / "qaa" / "dev.json", "Anna lives in Paris.", good)
    squad_file(tmp_path / "qab" / "test.json", "Anna lives in Paris.", bad)
    dm = QADataModule(data=str(tmp_path), tokenizer=str(tiny_tokenizer_dir), panel="synthetic",
                      train_languages=["qaa"], eval_languages=["qab"])
    with pytest.raises(XltError, match=r"language 'qaa'.*qaa/train\.json.*question broken7 is not at offset 3"):
        dm.setup("fit")
    with pytest.raises(XltError, match=r"language 'qab'.*qab/test\.json.*question broken7"):
        dm.setup("test")


def window(offsets: list[int], start: list[float], end: list[float]) -> tuple[torch.Tensor, ...]:
    """A window whose context token t covers characters [offsets[t], offsets[t] + 1) (-1: not context)."""
    off = torch.tensor(offsets)
    return torch.tensor(start), torch.tensor(end), off, torch.where(off >= 0, off + 1, off)


def test_post_processing_picks_the_best_valid_span_across_windows() -> None:
    context = "abcdefghij"
    # window 1: tokens 2..7 cover characters 0..5; window 2: tokens 2..7 cover characters 4..9
    w1 = window([-1, -1, 0, 1, 2, 3, 4, 5], [9, 0, 2, 0, 0, 0, 6, 0], [9, 0, 0, 5, 0, 0, 0, 0])
    w2 = window([-1, -1, 4, 5, 6, 7, 8, 9], [9, 0, 0, 3, 0, 0, 0, 0], [9, 0, 0, 0, 0, 4.5, 0, 0])
    # w1: <s> and question tokens never answer; its best start t6 lies after its best end t3, so its best
    # valid pair is (t2, t3) = "ab" at 2 + 5 = 7 (not (t6, t6) at 6); w2's (t3, t5) = "fgh" at 3 + 4.5 wins
    answer = extract_answer([w1, w2], context, n_best=20, max_answer_length=30)
    assert (answer.text, answer.start, answer.end, answer.score) == ("fgh", 5, 8, 7.5)
    assert extract_answer([w1], context).text == "ab"
    # "fgh" has 3 tokens: with max_answer_length 2, w2 offers at most 4.5 and w1's "ab" (2 tokens, 7) wins
    assert extract_answer([w1, w2], context, max_answer_length=2).text == "ab"
    # n_best=1 pairs only the best start and end: w1's (t6, t3) is invalid, w2's (t3, t5) remains
    assert best_window_span(*w1[:3], n_best=1, max_answer_length=30) is None
    assert extract_answer([w1, w2], context, n_best=1).text == "fgh"
    # the best-scoring span (t1, t7) = 16 has 7 tokens: allowed at 7, skipped at 3, where (t7, t7) = 9 wins
    long = window([-1, 0, 1, 2, 3, 4, 5, 6], [0, 8, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 8])
    assert extract_answer([long], context, max_answer_length=7).text == "abcdefg"
    assert extract_answer([long], context, max_answer_length=3).text == "g"
    assert extract_answer([window([-1, -1], [1, 2], [1, 2])], context).text == ""  # no context token at all


def trainer(epochs: int, **kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, max_epochs=epochs, num_sanity_val_steps=0, **kwargs)


def test_fine_tuning_on_the_synthetic_panel_learns_and_writes_predictions(synthetic_dir: Path,
                                                                         tiny_tokenizer_dir: Path,
                                                                         tmp_path: Path) -> None:
    torch.manual_seed(0)
    train_file = synthetic_dir / "qa" / "qaa" / "train.json"
    common = dict(tokenizer=str(tiny_tokenizer_dir), panel="synthetic", train_languages=["qaa"], max_length=128,
                  doc_stride=32, max_question_length=32, eval_max_tokens=1024)
    # fit the 30 training questions, evaluate on them: checks that labels, windows and post-processing agree
    dm = QADataModule(data=str(synthetic_dir / "qa"), data_per_language={"qaa": str(train_file)},
                      eval_languages=["qaa"], batch_size=8, **common)
    model = SpanExtraction(encoder="xlm-roberta", config=TINY, lr=5e-3, seed=0, n_boot=50,
                           export_dir=str(tmp_path / "export"), predictions_dir=str(tmp_path / "pred"))
    fit = trainer(25, check_val_every_n_epoch=25)
    fit.fit(model, dm)
    val_f1 = float(fit.callback_metrics["val/qa/f1/qaa"])
    fit.test(model, dm, verbose=False)
    rows = read_squad_json(train_file)
    scores = {r.metric: r.groups["qaa"].score for r in model.results}
    assert val_f1 == pytest.approx(scores["f1"], abs=1e-9)  # validated on the same questions with the final weights
    baseline = np.mean([squad_f1(r["context"].split()[0], r["answers"]["text"]) for r in rows])
    assert scores["f1"] > baseline + 0.4 and scores["em"] > 0.3, (scores, baseline)
    assert (model.metrics["test_qaa"].lang, model.metrics["test_qaa"].normalization) == ("qaa", "squad_v1")
    predictions = json.loads((tmp_path / "pred" / "test-qaa.json").read_text(encoding="utf-8"))
    assert set(predictions) == set(rows["id"])
    contexts = dict(zip(rows["id"], rows["context"], strict=True))
    assert all(text in contexts[qid] for qid, text in predictions.items())
    f1 = np.mean([squad_f1(predictions[r["id"]], r["answers"]["text"]) for r in rows])
    assert f1 == pytest.approx(scores["f1"], abs=1e-6)
    # held-out questions in two languages (with several evaluation batches): measured, bounded
    held_out = QADataModule(data=str(synthetic_dir / "qa"), eval_languages=["qaa", "qai"], **common)
    fit.test(model, held_out, verbose=False)
    held = {r.metric: {g: r.groups[g].score for g in ("qaa", "qai")} for r in model.results}
    for code in ("qaa", "qai"):  # the reported scores are those of the written predictions, question by question
        gold = read_squad_json(synthetic_dir / "qa" / code / "test.json")
        written = json.loads((tmp_path / "pred" / f"test-{code}.json").read_text(encoding="utf-8"))
        assert set(written) == set(gold["id"])
        recomputed = np.mean([squad_f1(written[r["id"]], r["answers"]["text"]) for r in gold])
        assert held["f1"][code] == pytest.approx(recomputed, abs=1e-9), code
    predicted = fit.predict(model, held_out)
    flat = [p for batch in predicted for p in batch]
    assert len(flat) == 40 and all(p["answer"] == "" or p["start"] < p["end"] for p in flat)


# ------------------------------------------------------------------------------------------------ normalisation


def _set_up(model: SpanExtraction, datamodule: QADataModule) -> SpanExtraction:
    """``setup`` of the module against a data module, without a Trainer (metrics and normalisations only)."""
    model.trainer = SimpleNamespace(datamodule=datamodule)
    model.setup("test")
    return model


def test_xquad_defaults_to_squad_v1_and_mlqa_to_mlqa(data_dir: Path, tmp_path: Path) -> None:
    """Each source is scored with its benchmark's official protocol unless model.answer_normalisation forces one."""
    xquad = QADataModule(data=str(data_dir / "qa" / "xquad"), eval_languages=["zho", "rus"])
    assert xquad.official_normalization("zho") == ("squad_v1", "XQuAD")
    model = _set_up(SpanExtraction(encoder="xlm-roberta"), xquad)
    assert model.answer_normalisation == "auto"
    assert {model.metrics[k].normalization for k in ("val_zho", "test_zho", "test_rus", "test_eng")} == {"squad_v1"}
    assert model.normalizations["zho"] == ("squad_v1", "auto: XQuAD")
    assert model.run_tags(["zho", "rus"]) == {"xlt.qa_normalization": "squad_v1"}
    assert model.describe_normalization(["zho"]).startswith("QA answer normalisation: squad_v1 (squad_v1: official "
                                                            "SQuAD v1.1 script")
    # an MLQA directory (MLQA's own file names), with English from XQuAD: per-language protocols in one tag
    mlqa_dir = tmp_path / "MLQA_V1" / "test"
    mlqa_dir.mkdir(parents=True)
    (mlqa_dir / "test-context-de-question-de.json").write_text("{}")
    mixed = QADataModule(data=str(mlqa_dir), eval_languages=["deu", "rus"],
                         data_per_language={"eng": str(data_dir / "qa" / "xquad" / "xquad.en.json")})
    assert mixed.official_normalization("deu") == ("mlqa", "MLQA")
    assert mixed.official_normalization("eng") == ("squad_v1", "XQuAD")
    model = _set_up(SpanExtraction(encoder="xlm-roberta"), mixed)
    assert (model.metrics["test_deu"].normalization, model.metrics["test_eng"].normalization) == ("mlqa", "squad_v1")
    assert model.run_tags(["eng", "deu", "rus", "ron"]) == {
        "xlt.qa_normalization": "eng=squad_v1,deu=mlqa,rus=mlqa,ron=mlqa",
        "xlt.qa_normalization.note": mlqa_undefined_note(["rus", "ron"])}
    assert model.run_tags(["eng", "deu", "rus", "ron"])["xlt.qa_normalization.note"].startswith(
        "mlqa: rus, ron scored with the generic rule (lowercase, Unicode punctuation removed")
    # forced protocols; 'squad' stays an alias of squad_v1; the synthetic panel is squad_v1
    forced = _set_up(SpanExtraction(encoder="xlm-roberta", answer_normalisation="mlqa"), xquad)
    assert forced.metrics["test_zho"].normalization == "mlqa"
    assert forced.run_tags(["zho", "rus"]) == {"xlt.qa_normalization": "mlqa",
                                               "xlt.qa_normalization.note": mlqa_undefined_note(["rus"])}
    assert _set_up(SpanExtraction(encoder="xlm-roberta", answer_normalisation="squad"), mixed).metrics[
        "test_deu"].normalization == "squad_v1"
    assert QADataModule().official_normalization("qaa") == ("squad_v1", "synthetic panel")
    with pytest.raises(XltError, match="must be 'auto', 'squad_v1' or 'mlqa'"):
        SpanExtraction(answer_normalisation="xtreme")  # type: ignore[arg-type]


def _logged_run(synthetic_dir: Path, tiny_tokenizer_dir: Path, tmp_path: Path, validate: bool) -> tuple[dict, dict]:
    """An untrained tiny QA model tested (and validated) on 30 synthetic questions with a real MLflow store."""
    from mlflow.tracking import MlflowClient

    from xlt.callbacks.tracking import TrackingLogger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train_file = synthetic_dir / "qa" / "qaa" / "train.json"
    dm = QADataModule(data=str(synthetic_dir / "qa"), data_per_language={"qaa": str(train_file)},
                      tokenizer=str(tiny_tokenizer_dir), panel="synthetic", train_languages=["qaa"],
                      eval_languages=["qaa"], max_length=128, doc_stride=32, max_question_length=32,
                      eval_max_tokens=1024)
    model = SpanExtraction(encoder="xlm-roberta", config=TINY, seed=0, n_boot=20, max_answer_length=5,
                           predictions_dir=str(tmp_path / "pred"))
    logger = TrackingLogger(experiment_name="qa-tags", tracking_uri=uri)
    run = pl.Trainer(accelerator="cpu", logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False)
    if validate:
        run.validate(model, dm, verbose=False)
    run.test(model, dm, verbose=False)
    data = MlflowClient(tracking_uri=uri).get_run(logger.run_id).data
    return data.tags, data.metrics


def test_qa_runs_record_the_normalisation_tag_and_float64_scores(synthetic_dir: Path, tiny_tokenizer_dir: Path,
                                                                 tmp_path: Path) -> None:
    tags, metrics = _logged_run(synthetic_dir, tiny_tokenizer_dir, tmp_path, validate=False)
    assert tags["xlt.qa_normalization"] == "squad_v1" and "xlt.qa_normalization.note" not in tags
    rows = read_squad_json(synthetic_dir / "qa" / "qaa" / "train.json")
    predictions = json.loads((tmp_path / "pred" / "test-qaa.json").read_text(encoding="utf-8"))
    f1 = [squad_f1(predictions[r["id"]], r["answers"]["text"]) for r in rows]
    assert metrics["test/qa/f1/qaa"] == pytest.approx(float(np.mean(f1)), rel=1e-15, abs=0)


def test_validation_scores_reach_mlflow_in_float64(synthetic_dir: Path, tiny_tokenizer_dir: Path,
                                                   tmp_path: Path) -> None:
    """Validation and test score the same questions in the same order: the logged values are the same float64."""
    _, metrics = _logged_run(synthetic_dir, tiny_tokenizer_dir, tmp_path, validate=True)
    exact = metrics["test/qa/f1/qaa"]
    assert float(np.float32(exact)) != exact  # float32 would change it
    assert metrics["val/qa/f1/qaa"] == exact and metrics["val/qa/f1/macro"] == exact
