"""UD POS and NER: first-sub-token alignment, real data, label sets, fine-tuning and prediction files."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from datasets import Dataset

from xlt.datamodules.ner import NERDataModule
from xlt.datamodules.task_data import IGNORE_INDEX
from xlt.datamodules.tasks import load_task_dataset
from xlt.datamodules.token_classification import first_subtoken_labels
from xlt.datamodules.udpos import UDPOSDataModule
from xlt.errors import XltError
from xlt.evaluation.metrics import SpanF1
from xlt.formats import UPOS_TAGS, read_conll_ner
from xlt.models.token_classification import TokenClassification, is_span_labels

TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            max_position_embeddings=130)
MASAKHANER_TAGS = ["O", "B-DATE", "B-LOC", "B-ORG", "B-PER", "I-DATE", "I-LOC", "I-ORG", "I-PER"]


def labelled(feature: dict) -> list[int]:
    """The label ids on scored positions of one feature, in order."""
    return [label for label in feature["labels"] if label != IGNORE_INDEX]


# ---------------------------------------------------------------------------------------------- alignment


def test_first_subtoken_labels_hand_case() -> None:
    labels, words = first_subtoken_labels([None, 0, 0, 1, 2, 2, 2, None], [5, 7, 9])
    assert labels == [-100, 5, -100, 7, 9, -100, -100, -100]
    assert words == [-100, 0, -100, 1, 2, -100, -100, -100]


def test_encode_puts_word_labels_on_first_subtokens(tiny_tokenizer_dir: Path) -> None:
    dm = UDPOSDataModule(data="unused", panel="synthetic", tokenizer=str(tiny_tokenizer_dir))
    dm.label_names = dm.label_names_from(Dataset.from_dict({}))
    words = ["Hello", "Malzas", "did", "not", "tral", "."]
    tags = ["INTJ", "PROPN", "AUX", "PART", "VERB", "PUNCT"]
    rows = Dataset.from_dict({"tokens": [words], "upos": [tags]})
    feature = dm.encode(rows, "qaa", "test")[0]

    tokenizer = dm.tokenizer_for("qaa")
    word_ids = tokenizer(words, is_split_into_words=True).word_ids()
    assert feature["input_ids"] == tokenizer(words, is_split_into_words=True)["input_ids"]
    assert max(Counter(w for w in word_ids if w is not None).values()) > 1  # some word has several pieces
    firsts = [word_ids.index(w) for w in range(len(words))]
    for position, (label, word) in enumerate(zip(feature["labels"], feature["word_ids"], strict=True)):
        if position in firsts:
            assert label == UPOS_TAGS.index(tags[word_ids[position]]) and word == word_ids[position]
        else:  # specials and continuation pieces
            assert label == IGNORE_INDEX and word == IGNORE_INDEX
    assert labelled(feature) == [UPOS_TAGS.index(t) for t in tags]
    assert feature["n_words"] == len(words)
    assert dm.truncated_words["test"]["qaa"] == 0


def test_encode_empty_words_and_truncation(tiny_tokenizer_dir: Path) -> None:
    dm = UDPOSDataModule(data="unused", panel="synthetic", tokenizer=str(tiny_tokenizer_dir), max_length=8)
    dm.label_names = list(UPOS_TAGS)
    # a zero-width space has no sub-token of its own: it is encoded as <unk> and still scored
    rows = Dataset.from_dict({"tokens": [["a", "\u200b", "b"], ["a"] * 20],
                              "upos": [["DET", "SYM", "NOUN"], ["X"] * 20]})
    with pytest.warns(UserWarning, match=r"udpos test 'qaa': 14 of 23 words lie beyond data.max_length=8") as caught:
        features = dm.encode(rows, "qaa", "test")
    assert len([w for w in caught if "max_length" in str(w.message)]) == 1  # one warning per split and language
    unk = dm.tokenizer_for("qaa").unk_token_id
    assert labelled(features[0]) == [UPOS_TAGS.index(t) for t in ("DET", "SYM", "NOUN")]
    assert unk in features[0]["input_ids"]
    assert dm.empty_words["test"]["qaa"] == 1
    assert len(features[1]["input_ids"]) == 8 and len(labelled(features[1])) == 6  # <s> + 6 words + </s>
    assert dm.truncated_words["test"]["qaa"] == 14


# ---------------------------------------------------------------------------------------------- real data

TRUNCATION_WARNING = "ignore:.*lie beyond data.max_length:UserWarning"


@pytest.mark.filterwarnings(TRUNCATION_WARNING)

def test_ud_pos_real_test_splits_encode(data_dir: Path, tiny_tokenizer_dir: Path) -> None:
    """Every treebank's test split encodes (byte fallback: every script); one label per non-truncated word."""
    dm = UDPOSDataModule(data=str(data_dir / "ud"), panel="paper40", tokenizer=str(tiny_tokenizer_dir))
    dm.label_names = list(UPOS_TAGS)
    codes = sorted(p.name for p in (data_dir / "ud").iterdir() if p.is_dir())
    assert len(codes) >= 13
    for code in codes:
        rows = load_task_dataset(data_dir / "ud" / code, "ud", "test")
        features = dm.encode(rows, code, "test").with_format(None)
        assert len(features) == len(rows) > 0, code
        n_words = sum(len(t) for t in rows[:]["tokens"])
        n_labelled = sum(len(labelled(f)) for f in features)
        assert n_labelled == n_words - dm.truncated_words["test"][code], code
        assert dm.empty_words["test"][code] == 0, code
        for feature, gold in zip(features, rows[:]["upos"], strict=True):
            assert len(feature["input_ids"]) <= dm.max_length
            kept = labelled(feature)
            assert kept == [UPOS_TAGS.index(t) for t in gold[: len(kept)]], code
            if len(feature["input_ids"]) < dm.max_length:  # not truncated: every word scored
                assert len(kept) == len(gold), code
    assert sum(dm.truncated_words["test"].values()) > 0  # the 128-token limit cuts some long sentences


@pytest.mark.filterwarnings(TRUNCATION_WARNING)
def test_masakhaner_label_set_and_label_map(data_dir: Path, tiny_tokenizer_dir: Path) -> None:
    kwargs = dict(data=str(data_dir / "ner"), panel="paper40", tokenizer=str(tiny_tokenizer_dir),
                  train_languages=["swa"], eval_languages=["swa", "yor"])
    plain = NERDataModule(**kwargs)
    plain.setup("test")
    assert plain.label_names == MASAKHANER_TAGS

    mapped = NERDataModule(**kwargs, label_map={"B-DATE": "O", "I-DATE": "O"})
    mapped.setup("test")
    assert mapped.label_names == ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]
    raw = read_conll_ner(data_dir / "ner" / "yor" / "test.txt")
    raw_tags = Counter(t for tags in raw[:]["ner_tags"] for t in tags)
    assert raw_tags["B-DATE"] > 0
    mapped_tags = Counter(t for tags in mapped.splits["test"]["yor"][:]["ner_tags"] for t in tags)
    assert mapped_tags["O"] == raw_tags["O"] + raw_tags["B-DATE"] + raw_tags["I-DATE"]
    assert "B-DATE" not in mapped_tags
    yor = mapped.features["test"].filter(lambda f: f == mapped.language_codes.index("yor"), input_columns="lang")
    ids = Counter(label for f in yor.with_format(None) for label in labelled(f))
    assert max(ids) < len(mapped.label_names)
    assert sum(ids.values()) == raw_tags.total() - mapped.truncated_words["test"]["yor"]


@pytest.mark.filterwarnings(TRUNCATION_WARNING)
def test_ner_label_mismatch_names_language_source_and_tags(data_dir: Path, tiny_tokenizer_dir: Path,
                                                           tmp_path: Path) -> None:
    train = tmp_path / "ner" / "eng"
    train.mkdir(parents=True)
    (train / "train.txt").write_text("Ada B-PER\nLovelace I-PER\nvisited O\nLondon B-LOC\n\nHi O\n\n",
                                     encoding="utf-8")
    yor = str(data_dir / "ner" / "yor")
    dm = NERDataModule(data=str(tmp_path / "ner"), data_per_language={"yor": yor}, panel="paper40",
                       tokenizer=str(tiny_tokenizer_dir), train_languages=["eng"], eval_languages=["yor"])
    with pytest.raises(XltError) as error:
        dm.setup("test")
    message = str(error.value)
    assert dm.label_names == ["O", "B-LOC", "B-PER", "I-PER"]
    for part in ("ner", "test tags ['B-DATE', 'B-ORG', 'I-DATE', 'I-LOC', 'I-ORG']", "language 'yor'", yor,
                 "training label set ['O', 'B-LOC', 'B-PER', 'I-PER']", "data.label_map"):
        assert part in message

    fixed = NERDataModule(data=str(tmp_path / "ner"), data_per_language={"yor": yor}, panel="paper40",
                          tokenizer=str(tiny_tokenizer_dir), train_languages=["eng"], eval_languages=["yor"],
                          label_map={t: "O" for t in ("B-DATE", "I-DATE", "B-ORG", "I-ORG", "I-LOC")})
    fixed.setup("test")
    assert len(fixed.features["test"]) == len(read_conll_ner(Path(yor) / "test.txt"))

    # several training languages: the union of their train splits' tags
    both = NERDataModule(data=str(tmp_path / "ner"), data_per_language={"yor": yor}, panel="paper40",
                         tokenizer=str(tiny_tokenizer_dir), train_languages=["eng", "yor"], eval_languages=["yor"])
    both.setup("test")
    assert both.label_names == MASAKHANER_TAGS


# ---------------------------------------------------------------------------------------------- fine-tuning


def fine_tune(dm: UDPOSDataModule | NERDataModule, out: Path, epochs: int, lr: float) -> TokenClassification:
    """Fine-tune a tiny random encoder on the synthetic source language, then test on every language."""
    model = TokenClassification(encoder="xlm-roberta", config={**TINY, "vocab_size": len(dm.tokenizer_for("qaa"))},
                                lr=lr, warmup_ratio=0.1, n_boot=50, seed=0, export_dir=str(out / "export"),
                                predictions_dir=str(out / "predictions"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only add contention on a shared CPU
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, max_epochs=epochs, limit_val_batches=0, num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, dm)
        trainer.test(model, dm, verbose=False)
    torch.set_num_threads(threads)
    return model


def read_prediction_file(path: Path) -> list[list[str]]:
    """Sentences of tags of an XTREME token prediction file (one tag per line, blank line after a sentence)."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n\n") and "\n\n\n" not in text
    return [block.split("\n") for block in text[:-2].split("\n\n")]


def check_prediction_files(out: Path, dm: UDPOSDataModule | NERDataModule, column: str,
                           labels: list[str]) -> dict[str, list[list[str]]]:
    """Every language's file has one tag per word of its test file, sentences in order; returns the tags."""
    files = {p.name for p in (out / "predictions").iterdir()}
    assert files == {f"test-{code}.tsv" for code in dm.eval_languages()}
    found = {}
    for code in dm.eval_languages():
        gold = dm.splits["test"][code][:][column]
        predicted = read_prediction_file(out / "predictions" / f"test-{code}.tsv")
        assert [len(s) for s in predicted] == [len(s) for s in gold], code
        lines = (out / "predictions" / f"test-{code}.tsv").read_text(encoding="utf-8").splitlines()
        assert sum(1 for line in lines if line) == sum(len(s) for s in gold)
        assert {t for s in predicted for t in s} <= set(labels)
        found[code] = predicted
    return found


def test_udpos_fine_tune_beats_majority_tag(synthetic_dir: Path, tiny_tokenizer_dir: Path, tmp_path: Path) -> None:
    dm = UDPOSDataModule(data=str(synthetic_dir / "ud"), panel="synthetic", train_languages=["qaa"],
                         tokenizer=str(tiny_tokenizer_dir), batch_size=8, seed=0)
    model = fine_tune(dm, tmp_path, epochs=15, lr=3e-3)
    (result,) = model.results
    assert result.task == "udpos" and result.metric == "acc"
    assert {g.group for g in result.languages} == set(dm.eval_languages()) and len(result.languages) == 10
    gold = dm.splits["test"]["qaa"][:]["upos"]
    tags = Counter(t for sentence in gold for t in sentence)
    majority = tags.most_common(1)[0][1] / tags.total()
    accuracy = result["qaa"].score
    assert accuracy > majority + 0.25, (accuracy, majority)

    predicted = check_prediction_files(tmp_path, dm, "upos", list(UPOS_TAGS))
    pairs = [(p, g) for ps, gs in zip(predicted["qaa"], gold, strict=True) for p, g in zip(ps, gs, strict=True)]
    assert sum(p == g for p, g in pairs) / len(pairs) == pytest.approx(accuracy)  # files match the metric
    assert (tmp_path / "export" / "config.json").is_file()


def test_ner_fine_tune_finds_entities(synthetic_dir: Path, tiny_tokenizer_dir: Path, tmp_path: Path) -> None:
    dm = NERDataModule(data=str(synthetic_dir / "ner"), panel="synthetic", train_languages=["qaa"],
                       eval_languages=["qaa", "qab", "qac"], tokenizer=str(tiny_tokenizer_dir), batch_size=4)
    model = fine_tune(dm, tmp_path, epochs=20, lr=3e-3)
    train = read_conll_ner(synthetic_dir / "ner" / "qaa" / "train.txt")
    train_tags = {t for tags in train[:]["ner_tags"] for t in tags}
    assert model.labels == ["O", *sorted(train_tags - {"O"})] and is_span_labels(model.labels)
    (result,) = model.results
    assert result.task == "ner" and result.metric == "f1"
    f1 = result["qaa"].score
    # baseline: each test word gets its most frequent training tag ("O" when unseen); span F1 0.118 here
    # (random tags: 0.01; all "O": 0). The fine-tuned tagger reaches 0.31; it must beat the lookup by 0.1.
    seen: dict[str, Counter] = {}
    for words, tags in zip(train[:]["tokens"], train[:]["ner_tags"], strict=True):
        for word, tag in zip(words, tags, strict=True):
            seen.setdefault(word, Counter())[tag] += 1
    test = dm.splits["test"]["qaa"][:]
    lookup = SpanF1()
    lookup.update([[seen[w].most_common(1)[0][0] if w in seen else "O" for w in words] for words in test["tokens"]],
                  test["ner_tags"])
    baseline = float(lookup.compute())
    assert f1 > baseline + 0.1, (f1, baseline)

    predicted = check_prediction_files(tmp_path, dm, "ner_tags", model.labels)
    for code in dm.eval_languages():  # span F1 of the written tags equals the logged metric
        metric = SpanF1()
        metric.update(predicted[code], dm.splits["test"][code][:]["ner_tags"])
        assert float(metric.compute()) == pytest.approx(result[code].score)


def test_token_module_metric_follows_labels() -> None:
    assert is_span_labels(["O", "B-PER", "I-PER"]) and not is_span_labels(list(UPOS_TAGS))
    assert not is_span_labels(["O"])
    pos = TokenClassification(labels=list(UPOS_TAGS))
    ner = TokenClassification(labels=["O", "B-PER", "I-PER"])
    assert pos.metric_names == ("acc",) and ner.metric_names == ("f1",)
    assert pos.fallback_tag() == "X" and ner.fallback_tag() == "O"
    # tags per word come from first sub-tokens; words beyond the truncation point get the fallback tag
    batch = {"word_ids": torch.tensor([[-100, 0, -100, 1, -100, -100]]), "n_words": torch.tensor([3])}
    predicted = torch.tensor([[0, 1, 2, 2, 1, 0]])
    assert ner.sentence_tags(predicted, batch) == [["B-PER", "I-PER", "O"]]
    metric = ner.new_metric()
    assert isinstance(metric, SpanF1)
    name, text = ner.prediction_file("yor", {1: ["O"], 0: ["B-PER", "I-PER"]})
    assert name == "test-yor.tsv" and text == "B-PER\nI-PER\n\nO\n\n"

