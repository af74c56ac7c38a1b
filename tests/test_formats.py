"""Readers of the real formats: every shared data file, hand-checked records, malformed input, hub mapping."""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, Features, List, Value

from xlt.datamodules.task_spec import TaskSpec
from xlt.datamodules.tasks import TASK_FEATURES, load_task_dataset
from xlt.errors import XltError
from xlt.formats import (
    NLI_LABELS,
    UPOS_TAGS,
    read_conll_ner,
    read_conllu,
    read_lines,
    read_nli_tsv,
    read_pawsx_tsv,
    read_squad_json,
    read_tatoeba,
    tsv_rows,
)

# Sentences per UD file, from SOURCES.md (the 13 languages with a treebank).
UD_COUNTS = {
    "eng": {"train": 1500, "dev": 400, "test": 400}, "deu": {"dev": 400, "test": 400},
    "fra": {"dev": 400, "test": 400}, "spa": {"dev": 400, "test": 400}, "rus": {"dev": 400, "test": 400},
    "hin": {"test": 400}, "ara": {"test": 400}, "zho": {"dev": 400, "test": 400},
    "ind": {"dev": 400, "test": 400}, "fin": {"dev": 400, "test": 400},
    "tur": {"train": 1500, "dev": 400, "test": 400}, "yor": {"test": 317}, "sin": {"test": 100},
}
NER_COUNTS = {"swa": {"train": 1500, "dev": 300, "test": 604},
              "yor": {"train": 1500, "dev": 305, "test": 645}}
ANLI_COUNTS = {"aym": (743, 750), "gn": (743, 750), "nah": (585, 738), "oto": (222, 748), "quy": (743, 750)}
MASAKHANER_TAGS = {"O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-DATE", "I-DATE"}


def _ud_file(data_dir: Path, lang: str, split: str) -> Path:
    (path,) = (data_dir / "ud" / lang).glob(f"*-ud-{split}.conllu")
    return path


# ---- UD ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", sorted(UD_COUNTS))
def test_every_ud_file_parses_one_example_per_block_word_lines_only(data_dir: Path, lang: str) -> None:
    for split, expected in UD_COUNTS[lang].items():
        path = _ud_file(data_dir, lang, split)
        text = path.read_text(encoding="utf-8")
        ds = read_conllu(path)
        assert ds.features == TASK_FEATURES["ud"]
        # every sentence, including the last, ends with one blank line
        assert len(ds) == text.count("\n\n") == expected
        word_lines = len(re.findall(r"^\d+\t", text, flags=re.M))
        assert sum(len(t) for t in ds["tokens"]) == word_lines  # ranges (3-4) and empty nodes (8.1) skipped
        for upos, heads, deprels in zip(ds["upos"], ds["heads"], ds["deprels"], strict=True):
            assert set(upos) <= set(UPOS_TAGS)
            assert all(0 <= h <= len(heads) for h in heads)
            assert heads.count(0) == 1 and deprels[heads.index(0)] == "root"


def test_ud_covers_every_treebank_folder(data_dir: Path) -> None:
    assert sorted(p.name for p in (data_dir / "ud").iterdir() if p.is_dir()) == sorted(UD_COUNTS)


def test_ud_english_first_sentence_hand_checked(data_dir: Path) -> None:
    first = read_conllu(_ud_file(data_dir, "eng", "train"))[0]
    assert first["tokens"][:12] == ["Al", "-", "Zaman", ":", "American", "forces", "killed", "Shaikh",
                                    "Abdullah", "al", "-", "Ani"]
    assert first["upos"][:12] == ["PROPN", "PUNCT", "PROPN", "PUNCT", "ADJ", "NOUN", "VERB", "PROPN", "PROPN",
                                  "PROPN", "PUNCT", "PROPN"]
    assert first["heads"][:12] == [0, 3, 1, 7, 6, 7, 1, 7, 8, 8, 12, 8]
    assert first["deprels"][:7] == ["root", "punct", "flat", "punct", "amod", "nsubj", "parataxis"]


def test_ud_multiword_tokens_and_empty_nodes_are_skipped(data_dir: Path) -> None:
    # de_gsd dev sentence 14: "im" = in + dem (4-5) and "am" = an + dem (7-8)
    s14 = read_conllu(_ud_file(data_dir, "deu", "dev"))[13]
    assert s14["tokens"][:10] == ["7", "Tage", "Erholung", "in", "dem", "Ferienhaus", "an", "dem", "Müritz",
                                  "See"]
    assert "im" not in s14["tokens"] and "am" not in s14["tokens"]
    assert s14["heads"][:10] == [2, 3, 0, 6, 6, 3, 9, 9, 6, 9] and len(s14["tokens"]) == 19
    # en_ewt dev sentence 59 has an empty node 8.1 ("write") between words 8 and 9
    s59 = read_conllu(_ud_file(data_dir, "eng", "dev"))[58]
    assert s59["tokens"][6:9] == ["they", "like", "about"] and s59["tokens"].count("write") == 1
    assert len(s59["tokens"]) == 33


# ---- NER --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["swa", "yor"])
def test_masakhaner_files(data_dir: Path, lang: str) -> None:
    for split, expected in NER_COUNTS[lang].items():
        ds = read_conll_ner(data_dir / "ner" / lang / f"{split}.txt")
        assert len(ds) == expected
        assert {t for tags in ds["ner_tags"] for t in tags} <= MASAKHANER_TAGS
        assert all(len(a) == len(b) for a, b in zip(ds["tokens"], ds["ner_tags"], strict=True))
        slips = sum(1 for tags in ds["ner_tags"] for prev, tag in zip(["O"] + tags, tags, strict=False)
                    if tag.startswith("I-") and prev[2:] != tag[2:])
        assert slips == (1 if (lang, split) in {("yor", "train"), ("yor", "test")} else 0)  # SOURCES.md


def test_masakhaner_yoruba_first_sentences_hand_checked(data_dir: Path) -> None:
    ds = read_conll_ner(data_dir / "ner" / "yor" / "train.txt")
    assert ds[0]["tokens"] == ["Kò", "sí", "ẹ̀rí", "tí", "ó", "fi", "ẹsẹ̀", "rinlẹ̀", "."]
    assert ds[0]["ner_tags"] == ["O"] * 9
    assert ds[1]["tokens"][:2] == ["Wákàtí", "méje"] and ds[1]["ner_tags"][:3] == ["B-DATE", "I-DATE", "O"]


# ---- NLI and PAWS-X ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", sorted(ANLI_COUNTS))
def test_americasnli_headered_files(data_dir: Path, lang: str) -> None:
    for split, expected in zip(("dev", "test"), ANLI_COUNTS[lang], strict=True):
        ds = read_nli_tsv(data_dir / "nli" / "americasnli" / split / f"{lang}.tsv")
        assert len(ds) == expected and set(ds["label"]) == set(NLI_LABELS)
        assert ds.column_names == ["premise", "hypothesis", "label"]
    counts = collections.Counter(read_nli_tsv(data_dir / "nli/americasnli/dev/aym.tsv")["label"])
    assert counts == {"entailment": 248, "contradiction": 248, "neutral": 247}


def test_americasnli_keeps_quotes_and_blank_premises_verbatim(data_dir: Path) -> None:
    ds = read_nli_tsv(data_dir / "nli/americasnli/test/nah.tsv")
    assert ds[518]["premise"] == " "  # line 520 of the file: a premise that is a single space
    texts = list(ds["premise"]) + list(ds["hypothesis"])
    assert sum(row.count('"') for row in texts) == 19  # QUOTE_NONE: every quote kept verbatim


def test_german_xnli_headerless_files(data_dir: Path) -> None:
    sizes = {split: len(read_nli_tsv(data_dir / "nli/xnli/deu" / f"{split}.txt"))
             for split in ("train", "dev", "test")}
    assert sizes == {"train": 2245, "dev": 250, "test": 5010}
    test = read_nli_tsv(data_dir / "nli/xnli/deu/test.txt")
    assert collections.Counter(test["label"]) == {label: 1670 for label in NLI_LABELS}
    first = read_nli_tsv(data_dir / "nli/xnli/deu/train.txt")[0]
    assert first == {"premise": "und er hat gesagt, Mama ich bin daheim.",
                     "hypothesis": "Er sagte kein Wort.", "label": "contradiction"}


def test_german_pawsx(data_dir: Path) -> None:
    dev = read_pawsx_tsv(data_dir / "paraphrase/pawsx/deu/dev.tsv")
    test = read_pawsx_tsv(data_dir / "paraphrase/pawsx/deu/test.tsv")
    assert (len(dev), len(test)) == (2000, 2000)
    assert collections.Counter(dev["label"]) == {0: 1169, 1: 831}
    assert collections.Counter(test["label"]) == {0: 1105, 1: 895}
    assert test[0]["sentence1"].startswith("Die Ausnahme war zwischen Ende 2005 und 2009")
    assert "Carlstad United BK,  in Serbien" in test[0]["sentence1"]  # double space kept
    assert dev[1338]["sentence1"].startswith('"Around the World in 80 Minutes"')  # leading quote kept


# ---- QA and Tatoeba ---------------------------------------------------------------------------------


def test_every_xquad_file_has_answers_at_their_offsets(data_dir: Path) -> None:
    ids = None
    for path in sorted((data_dir / "qa" / "xquad").glob("xquad.*.json")):
        ds = read_squad_json(path)
        assert len(ds) == 1190 and len(set(ds["context"])) == 240
        for row in ds:
            for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"], strict=True):
                assert row["context"][start:start + len(text)] == text
        assert ids is None or ids == sorted(ds["id"])  # question ids are shared across languages
        ids = sorted(ds["id"])
    de = load_task_dataset(data_dir / "qa" / "xquad", "xquad", language="deu")
    assert de[0]["id"] == "56beb4343aeaaa14008c925b" and de[0]["context"].startswith("Die Verteidigung")


def test_every_tatoeba_pair_is_line_aligned(data_dir: Path) -> None:
    pairs = sorted((data_dir / "tatoeba").glob("tatoeba.*-eng.*"))
    pairs = [p for p in pairs if p.suffix != ".eng"]
    assert len(pairs) == 11
    for src in pairs:
        tgt = src.with_suffix(".eng")
        ds = read_tatoeba(src, tgt)
        n_src = len(src.read_text(encoding="utf-8").splitlines())
        assert len(ds) == n_src == len(tgt.read_text(encoding="utf-8").splitlines())
        assert len(ds) == (390 if src.suffix == ".swh" else 1000)
    swa = load_task_dataset(data_dir / "tatoeba", "tatoeba", language="swa")  # swh on disk, swa in xlt
    assert swa[0] == {"source": "Alinileta kahawa.", "target": "He brought me coffee."}
    deu = load_task_dataset(data_dir / "tatoeba" / "tatoeba.deu-eng.deu", "retrieval")
    assert deu[0]["source"] == "Maria sagte, sie wisse nicht, wo Tom sei."


def test_load_task_dataset_finds_split_files_in_directories(data_dir: Path) -> None:
    eng_dev = load_task_dataset(data_dir / "ud" / "eng", "udpos", split="dev")
    assert eng_dev[0]["tokens"][:3] == ["From", "the", "AP"]
    anli = load_task_dataset(data_dir / "nli" / "americasnli", "xnli", split="validation", language="quy")
    assert len(anli) == 743
    assert len(load_task_dataset(data_dir / "nli" / "xnli" / "deu", "nli", split="train")) == 2245
    assert len(load_task_dataset(data_dir / "ner" / "swa", "ner", split="dev")) == 300
    assert len(load_task_dataset(data_dir / "paraphrase" / "pawsx" / "deu", "pawsx", split="test")) == 2000
    with pytest.raises(XltError, match="pass a language"):
        load_task_dataset(data_dir / "nli" / "americasnli", "xnli", split="dev")
    with pytest.raises(XltError, match="no ud file for split 'train'"):
        load_task_dataset(data_dir / "ud" / "deu", "udpos", split="train")


# ---- malformed input --------------------------------------------------------------------------------

GOOD_CONLLU = "# text = a b\n1\ta\ta\tNOUN\t_\t_\t0\troot\t_\t_\n2\tb\tb\tVERB\t_\t_\t1\tdep\t_\t_\n\n"


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


@pytest.mark.parametrize(
    ("name", "content", "reader", "message"),
    [
        ("cols.conllu", GOOD_CONLLU + "1\ta\ta\tNOUN\t_\t_\t0\troot\t_\n", read_conllu,
         r"cols\.conllu:5: expected 10"),
        ("head.conllu", GOOD_CONLLU.replace("\t1\tdep", "\tx\tdep"), read_conllu,
         r"head\.conllu:3: HEAD 'x'"),
        ("range.conllu", GOOD_CONLLU.replace("\t1\tdep", "\t7\tdep"), read_conllu,
         r"range\.conllu:3: HEAD 7"),
        ("upos.conllu", GOOD_CONLLU.replace("VERB", "VB"), read_conllu, r"upos\.conllu:3: UPOS 'VB'"),
        ("order.conllu", GOOD_CONLLU.replace("2\tb", "3\tb"), read_conllu, r"order\.conllu:3: word id 3"),
        ("ner.txt", "Ada B-PER\nLovelace\n\n", read_conll_ner, r"ner\.txt:2: expected 'token TAG'"),
        ("tag.txt", "Ada B-PER\nLovelace E-PER\n\n", read_conll_ner, r"tag\.txt:2: tag 'E-PER'"),
        ("nli.tsv", "a\tb\tentailment\nc\td\n", read_nli_tsv, r"nli\.tsv:2: expected 3 tab-separated fields"),
        ("label.tsv", "premise\thypothesis\tlabel\na\tb\tmaybe\n", read_nli_tsv,
         r"label\.tsv:2: label 'maybe'"),
        ("paws.tsv", "id\tsentence1\tsentence2\tlabel\n1\ta\tb\t2\n", read_pawsx_tsv,
         r"paws\.tsv:2: label '2'"),
        ("pawscols.tsv", "id\tsentence1\tsentence2\tlabel\n1\ta\tb\n", read_pawsx_tsv,
         r"pawscols\.tsv:2: expected 4"),
        ("bad.json", '{"data": [\n  {"title": "x",\n   "paragraphs": ]}', read_squad_json,
         r"bad\.json:3: invalid JSON"),
        ("keys.json", '{"data": [{"paragraphs": [{"qas": []}]}]}', read_squad_json,
         r"keys\.json: data\[0\]\.paragraphs\[0\] lacks 'context'"),
        ("offset.json", '{"data": [{"paragraphs": [{"context": "abc", "qas": [{"id": "q1", "question": "?", '
                        '"answers": [{"text": "c", "answer_start": 1}]}]}]}]}', read_squad_json,
         r"answer 'c' of question q1 is not at offset 1"),
        ("empty.conllu", "# only a comment\n", read_conllu, r"empty\.conllu contains no examples"),
    ],
)
def test_malformed_files_raise_xlt_error_naming_file_and_line(tmp_path: Path, name: str, content: str,
                                                               reader, message: str) -> None:
    with pytest.raises(XltError, match=message):
        reader(_write(tmp_path, name, content))


def test_non_utf8_bytes_name_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "latin1.txt", b"Ada B-PER\n" + "Zürich B-LOC\n".encode("latin-1"))
    with pytest.raises(XltError, match=r"latin1\.txt:2: byte 0xfc at column 2 is not valid UTF-8"):
        read_conll_ner(path)


def test_tatoeba_unequal_lengths_and_missing_files(tmp_path: Path) -> None:
    src = _write(tmp_path, "tatoeba.xxx-eng.xxx", "a\nb\n")
    tgt = _write(tmp_path, "tatoeba.xxx-eng.eng", "a\n")
    with pytest.raises(XltError, match=r"has 2 lines but .*has 1"):
        read_tatoeba(src, tgt)
    with pytest.raises(XltError, match=r"data file .*nothere\.conllu not found"):
        load_task_dataset(tmp_path / "nothere.conllu", "udpos")
    with pytest.raises(XltError, match="unknown task 'pos-tagging'"):
        load_task_dataset(src, "pos-tagging")


def test_relative_path_with_an_existing_parent_is_local_not_a_hub_id(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(XltError, match="data file data/synthetc not found"):  # no hub request for a typo
        load_task_dataset("data/synthetc", "ner")


def test_line_separators_inside_sentences_do_not_split_lines(tmp_path: Path) -> None:
    src = _write(tmp_path, "a.txt", "one\u2028still one\ntwo\n")
    tgt = _write(tmp_path, "b.txt", "eins\r\nzwei\r\n")  # CRLF tolerated
    ds = read_tatoeba(src, tgt)
    assert ds["source"] == ["one\u2028still one", "two"] and ds["target"] == ["eins", "zwei"]


def test_conllu_reader_accepts_bom_and_missing_final_blank_line(tmp_path: Path) -> None:
    ds = read_conllu(_write(tmp_path, "x.conllu", "\ufeff" + GOOD_CONLLU.rstrip("\n") + "\n"))
    assert ds[0] == {"tokens": ["a", "b"], "upos": ["NOUN", "VERB"], "heads": [0, 1],
                     "deprels": ["root", "dep"]}


# ---- hub-style datasets (same mapping as for hub ids, exercised on a local dataset repository) ------


def test_hub_style_ud_dataset_maps_to_the_same_schema(tmp_path: Path) -> None:
    upos_names = ["NOUN", "PUNCT", "ADP", "_", "DET", "VERB"]
    features = Features({"idx": Value("string"), "tokens": List(Value("string")),
                         "upos": List(ClassLabel(names=upos_names)), "head": List(Value("string")),
                         "deprel": List(Value("string"))})
    rows = [{"idx": "s1", "tokens": ["im", "in", "dem", "Haus", "."], "upos": [3, 2, 4, 0, 1],
             "head": ["None", "4", "4", "0", "4"], "deprel": ["_", "case", "det", "root", "punct"]}]
    repo = tmp_path / "repo" / "data"
    repo.mkdir(parents=True)
    Dataset.from_list(rows, features=features).to_parquet(str(repo / "validation-00000-of-00001.parquet"))
    ds = load_task_dataset(tmp_path / "repo", "udpos", split="dev")  # dev -> validation
    assert ds.features == TASK_FEATURES["ud"]
    assert ds[0] == {"tokens": ["in", "dem", "Haus", "."], "upos": ["ADP", "DET", "NOUN", "PUNCT"],
                     "heads": [4, 4, 0, 4], "deprels": ["case", "det", "root", "punct"]}


def test_hub_style_nli_dataset_decodes_labels_filters_language_and_drops_unlabelled(tmp_path: Path) -> None:
    features = Features({"premise": Value("string"), "hypothesis": Value("string"),
                         "language": Value("string"), "label": ClassLabel(names=list(NLI_LABELS))})
    rows = [{"premise": "p1", "hypothesis": "h1", "language": "de", "label": 2},
            {"premise": "p2", "hypothesis": "h2", "language": "fr", "label": 0},
            {"premise": "p3", "hypothesis": "h3", "language": "de", "label": -1}]
    repo = tmp_path / "nli"
    repo.mkdir()
    Dataset.from_list(rows, features=features).to_parquet(str(repo / "test-00000-of-00001.parquet"))
    ds = load_task_dataset(repo, "xnli", split="test", language="deu")
    assert ds.to_list() == [{"premise": "p1", "hypothesis": "h1", "label": "contradiction"}]


def test_hub_style_bitext_with_column_mapping(tmp_path: Path) -> None:
    repo = tmp_path / "bitext"
    repo.mkdir()
    Dataset.from_list([{"sentence1": "Hallo", "sentence2": "Hello"}]).to_parquet(str(repo / "test.parquet"))
    ds = load_task_dataset(repo, "tatoeba", split="test")
    assert ds.to_list() == [{"source": "Hallo", "target": "Hello"}]
    with pytest.raises(XltError, match="none of them is 'source'"):
        load_task_dataset(repo, "tatoeba", split="test", columns={"source": "missing"})


# ---- a task declared outside the six: its spec alone drives files, directories and hub datasets -------


def _sentiment_spec() -> TaskSpec:
    features = Features({"text": Value("string"), "label": Value("string")})

    def read(path: Path, language: str | None, target: str | Path | None) -> Dataset:
        rows = [fields for _, fields in tsv_rows(read_lines(path), 1, 2, path)]
        return Dataset.from_dict({"text": [r[0] for r in rows], "label": [r[1] for r in rows]}, features=features)

    return TaskSpec(name="sentiment", header="Sentiment", metrics=("f1", "acc"), synthetic_folder="sentiment",
                    features=features, read=read, file_patterns=("{split}.tsv", "{split}/{lang}.tsv"),
                    hub_columns={"text": ("text", "sentence"), "label": ("label",)},
                    hub_row=lambda row: {"text": row["text"].strip(), "label": row["label"]})


def test_a_new_task_spec_loads_files_directories_and_hub_datasets(tmp_path: Path) -> None:
    spec = _sentiment_spec()
    (tmp_path / "flat").mkdir()
    (tmp_path / "per_language" / "test").mkdir(parents=True)
    _write(tmp_path / "flat", "dev.tsv", "good\tpos\nbad\tneg\n")
    _write(tmp_path / "per_language", "test/deu.tsv", "gut\tpos\n")
    _write(tmp_path / "per_language", "test/fra.tsv", "bon\tpos\nmal\tneg\n")
    assert load_task_dataset(tmp_path / "flat" / "dev.tsv", spec).to_list() == [
        {"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}]
    assert len(load_task_dataset(tmp_path / "flat", spec, split="validation")) == 2  # validation -> dev.tsv
    assert load_task_dataset(tmp_path / "per_language", spec, language="fr")["text"] == ["bon", "mal"]
    with pytest.raises(XltError, match="several sentiment files for split 'test'"):
        load_task_dataset(tmp_path / "per_language", spec)
    with pytest.raises(XltError, match="no sentiment file for split 'train'"):
        load_task_dataset(tmp_path / "flat", spec, split="train")
    repo = tmp_path / "hub"
    repo.mkdir()
    labels = ClassLabel(names=["neg", "pos"])
    Dataset.from_list([{"sentence": " fine ", "label": 1}],
                      features=Features({"sentence": Value("string"), "label": labels})
                      ).to_parquet(str(repo / "test.parquet"))
    ds = load_task_dataset(repo, spec, split="test")
    assert ds.features == spec.features and ds.to_list() == [{"text": "fine", "label": "pos"}]
