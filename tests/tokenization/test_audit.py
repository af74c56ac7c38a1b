"""Tokenizer audit: hand-counted numbers, every script of the real data, side-by-side outputs, MLflow, bad input."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from sentencepiece import sentencepiece_model_pb2 as pb

from xlt.errors import XltError
from xlt.formats import read_conllu
from xlt.languages import load_panel
from xlt.sources import HubText, SyntheticPanel, TextDirectory
from xlt.tokenization.audit import METRICS, audit_tokenizer, audit_tokenizers, char_script
from xlt.tokenization.audit_command import audit_command, discover_texts, discover_ud
from xlt.tokenization.audit_report import audit_metrics, read_audit_csv
from xlt.tokenization.tokenizer import XltTokenizer

_PIECE = pb.ModelProto.SentencePiece

# A hand-made unigram vocabulary: single characters score -3, "▁" -2, the multi-character pieces -1, so the
# best segmentation always takes the longest listed piece. Characters not listed fall back to UTF-8 bytes.
LATIN = [("▁", -2.0), ("a", -3.0), ("b", -3.0), ("c", -3.0), ("d", -3.0), ("▁ab", -1.0), ("cd", -1.0)]
SCRIPTS = LATIN + [
    ("д", -3.0), ("а", -3.0), ("н", -3.0), ("▁да", -1.0),                                   # Cyrillic
    ("न", -3.0), ("म", -3.0), ("स", -3.0), ("्", -3.0), ("त", -3.0), ("े", -3.0),             # Devanagari
    ("▁नम", -1.0), ("स्ते", -1.0),
    ("中", -3.0), ("文", -3.0), ("▁中", -1.0),                                                # Han
    ("س", -3.0), ("ل", -3.0), ("ا", -3.0),                                                    # Arabic (no م)
]


def hand_model(pieces: list[tuple[str, float]], byte_fallback: bool = True) -> bytes:
    """A SentencePiece unigram model with exactly these pieces (identity normaliser, dummy prefix)."""
    model = pb.ModelProto()
    spec = model.trainer_spec
    spec.model_type = pb.TrainerSpec.UNIGRAM
    spec.byte_fallback = byte_fallback
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = 0, 1, 2, -1
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = True
    model.normalizer_spec.remove_extra_whitespaces = True
    model.normalizer_spec.escape_whitespaces = True
    model.pieces.add(piece="<unk>", score=0.0, type=_PIECE.UNKNOWN)
    model.pieces.add(piece="<s>", score=0.0, type=_PIECE.CONTROL)
    model.pieces.add(piece="</s>", score=0.0, type=_PIECE.CONTROL)
    if byte_fallback:
        for byte in range(256):
            model.pieces.add(piece=f"<0x{byte:02X}>", score=0.0, type=_PIECE.BYTE)
    for piece, score in pieces:
        model.pieces.add(piece=piece, score=score, type=_PIECE.NORMAL)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def latin_tok() -> XltTokenizer:
    return XltTokenizer(hand_model(LATIN))


# --------------------------------------------------------------------------------------------- hand counts
def test_hand_count_fertility_continued_bytes_coverage(latin_tok: XltTokenizer) -> None:
    # Hand segmentation (checked against SentencePiece below):
    #   "ab abcd" -> ▁ab | ▁ab cd                       3 ids
    #   "ab é"    -> ▁ab | ▁ <0xC3> <0xA9>              4 ids (é is 2 UTF-8 bytes, not in the vocabulary)
    # whitespace words ab, abcd, ab, é -> 1 + 2 + 1 + 3 = 7 pieces / 4 words; continued: abcd, é -> 2/4
    # gold words ab ab cd | ab é: "cd" alone is ▁ cd (2) -> 1 + 1 + 2 + 1 + 3 = 8 / 5; continued 2/5
    # ids: 7 in 2 texts, 2 byte pieces, 0 unk; distinct ids ▁ab cd ▁ <0xC3> <0xA9> = 5
    # vocabulary: 3 specials + 256 bytes + 7 pieces + <pad> + <mask> = 268
    # characters a b a b c d a b é = 9 (Latin), all but é covered -> 8/9
    assert latin_tok.tokenize("ab abcd") == ["▁ab", "▁ab", "cd"]
    assert latin_tok.tokenize("ab é") == ["▁ab", "▁", "<0xC3>", "<0xA9>"]
    assert latin_tok.tokenize("cd") == ["▁", "cd"]
    (row,) = audit_tokenizer(latin_tok, {"eng": ["ab abcd", "ab é", "   "]},
                             gold_words_by_lang={"eng": [["ab", "ab", "cd"], ["ab", "é"]]}, name="hand")
    assert (row.tokenizer, row.language, row.script, row.bucket) == ("hand", "eng", "Latin", "unknown")
    assert (row.texts, row.words, row.pieces, row.gold_words, row.chars) == (2, 4, 7, 5, 9)
    assert row.fertility == pytest.approx(7 / 4)
    assert row.continued_words == pytest.approx(2 / 4)
    assert row.gold_fertility == pytest.approx(8 / 5)
    assert row.gold_continued_words == pytest.approx(2 / 5)
    assert row.unk_rate == 0.0
    assert row.byte_fallback_rate == pytest.approx(2 / 7)
    assert row.mean_seq_len == pytest.approx(3.5)
    assert (row.vocab_used, row.vocab_size) == (5, 268)
    assert row.vocab_share == pytest.approx(5 / 268)
    assert row.char_coverage == pytest.approx(8 / 9)
    assert row.coverage_by_script == pytest.approx({"Latin": 8 / 9})
    assert row.chars_by_script == {"Latin": 9}


def test_hand_count_unk_without_byte_fallback() -> None:
    tok = XltTokenizer(hand_model(LATIN, byte_fallback=False))
    # "ab é" -> ▁ab | ▁ <unk>: 3 ids, one unk; words ab (1), é (2) -> 3/2; a, b covered, é not -> 2/3
    assert tok.tokenize("ab é") == ["▁ab", "▁", "é"] and tok.encode(["é"])[0][-1] == tok.unk_id
    (row,) = audit_tokenizer(tok, {"eng": ["ab é"]})
    assert row.unk_rate == pytest.approx(1 / 3)
    assert row.byte_fallback_rate == 0.0
    assert row.fertility == pytest.approx(3 / 2)
    assert row.continued_words == pytest.approx(1 / 2)
    assert row.char_coverage == pytest.approx(2 / 3)
    assert row.gold_fertility is None and row.gold_words == 0


def test_hand_count_every_script_with_panel() -> None:
    tok = XltTokenizer(hand_model(SCRIPTS))
    texts = {"rus": ["да дан"], "hin": ["नमस्ते"], "zho": ["中文"], "sin": ["ශ"], "ara": ["سلام"]}
    gold = {"zho": [["中", "文"]]}
    panel = load_panel("paper40")
    rows = {r.language: r for r in audit_tokenizer(tok, texts, panel, gold, name="hand")}
    assert [rows[c].script for c in texts] == ["Cyrillic", "Devanagari", "Han", "Sinhala", "Arabic"]
    # rus: да -> ▁да (1), дан -> ▁да н (2)
    assert rows["rus"].fertility == pytest.approx(3 / 2) and rows["rus"].continued_words == pytest.approx(1 / 2)
    assert rows["rus"].coverage_by_script == pytest.approx({"Cyrillic": 1.0})
    # hin: नमस्ते -> ▁नम स्ते (2); its 6 code points (न म स ् त े) are all pieces
    assert rows["hin"].fertility == 2.0 and rows["hin"].chars_by_script == {"Devanagari": 6}
    assert rows["hin"].char_coverage == 1.0
    # zho: whitespace word 中文 -> ▁中 文 (2); gold words 中 -> ▁中 (1), 文 -> ▁ 文 (2) -> 3/2
    assert rows["zho"].fertility == 2.0 and rows["zho"].gold_fertility == pytest.approx(3 / 2)
    # sin: ශ (3 UTF-8 bytes) -> ▁ + 3 byte pieces: 4 pieces, 3/4 bytes, Sinhala coverage 0
    assert rows["sin"].fertility == 4.0 and rows["sin"].byte_fallback_rate == pytest.approx(3 / 4)
    assert rows["sin"].coverage_by_script == {"Sinhala": 0.0}
    # ara: سلام -> ▁ س ل ا <0xD9> <0x85> (م is 2 bytes): 6 pieces, 2/6 bytes, 3 of 4 letters covered
    assert rows["ara"].fertility == 6.0 and rows["ara"].byte_fallback_rate == pytest.approx(2 / 6)
    assert rows["ara"].coverage_by_script == pytest.approx({"Arabic": 3 / 4})
    assert rows["ara"].bucket == panel.get("ara").bucket
    metrics = audit_metrics(list(rows.values()))
    assert metrics["audit/hand/fertility/sin"] == 4.0
    assert metrics["audit/hand/char_coverage.Arabic/ara"] == pytest.approx(3 / 4)
    assert metrics["audit/hand/char_coverage/script.Sinhala"] == 0.0
    assert metrics["audit/hand/fertility/script.Han"] == 2.0
    assert metrics["audit/hand/fertility/macro"] == pytest.approx((1.5 + 2 + 2 + 4 + 6) / 5)
    assert metrics["audit/hand/gold_fertility/macro"] == pytest.approx(1.5)  # only zho has gold words


def test_language_blocks_count_only_the_languages_own_ids() -> None:
    shared = hand_model(LATIN)
    yor_model = pb.ModelProto()
    yor_model.ParseFromString(shared)
    yor_model.pieces.add(piece="▁abcd", score=-0.5, type=_PIECE.NORMAL)
    tok = XltTokenizer(shared, language_models={"yor": yor_model.SerializeToString()})
    rows = {r.language: r for r in audit_tokenizer(tok, {"eng": ["abcd"], "yor": ["abcd"]})}
    assert rows["yor"].fertility == 1.0 and rows["eng"].fertility == 2.0  # ▁abcd vs ▁ab cd
    assert rows["eng"].vocab_size == tok.shared_vocab_size == 268
    assert rows["yor"].vocab_size == tok.shared_vocab_size + 1 == tok.vocab_size


def test_char_script_names_the_scripts() -> None:
    cases = {"a": "Latin", "é": "Latin", "ж": "Cyrillic", "अ": "Devanagari", "्": "Devanagari",
             "ا": "Arabic", "中": "Han", "ශ": "Sinhala", "Ω": "Greek", "த": "Tamil", "অ": "Bengali",
             "ひ": "Hiragana", "가": "Hangul", ",": "Common", "1": "Common", "。": "Common",
             "\u0301": "Inherited", "\u200d": "Inherited", "ꦏ": "Javanese"}
    assert {ch: char_script(ch) for ch in cases} == cases


# --------------------------------------------------------------------------------------------- real text
@pytest.fixture(scope="module")
def real_tokenizer(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer fitted on the real data's languages: Tatoeba sides, and UD text for UD-only languages."""
    from xlt.tokenization.audit_command import _ud_texts
    from xlt.tokenization.fit import fit_tokenizer

    tmp = tmp_path_factory.mktemp("real")
    texts, ud = discover_texts(data_dir), discover_ud(data_dir / "ud")
    files = {}
    for code in sorted(set(texts) | set(ud)):
        if code in texts:
            files[code] = texts[code][0]
        else:
            files[code] = tmp / f"{code}.txt"
            files[code].write_text("\n".join(_ud_texts(ud[code], 10**6)) + "\n", encoding="utf-8")
    out = tmp / "tok_real"
    fit_tokenizer(files, out, vocab_size=3000, seed=0)
    return out


def test_real_text_every_script(data_dir: Path, real_tokenizer: Path, tmp_path: Path) -> None:
    rows = audit_command([str(real_tokenizer)], corpus=str(data_dir), sample_lines=150, out=str(tmp_path / "a"),
                         mlflow=False)
    by_lang = {r.language: r for r in rows}
    assert {"Latin", "Cyrillic", "Devanagari", "Arabic", "Han", "Sinhala"} <= {r.script for r in rows}
    assert {by_lang[c].script for c in ("rus", "hin", "ara", "zho", "sin")} == \
        {"Cyrillic", "Devanagari", "Arabic", "Han", "Sinhala"}
    ud_languages = set(discover_ud(data_dir / "ud"))
    assert ud_languages <= set(by_lang) and "swa" in by_lang
    for row in rows:
        assert math.isfinite(row.fertility) and row.fertility >= 1.0
        assert row.unk_rate == 0.0  # continued_words: counted independently below
        own = row.coverage_by_script[row.script]
        assert own > 0.95, (row.language, own)  # fitted on these scripts
        assert (row.gold_fertility is not None) == (row.language in ud_languages), row.language
    # Without spaces, a Chinese "whitespace word" is a whole clause; gold words are short.
    assert by_lang["zho"].fertility > 3 * by_lang["zho"].gold_fertility
    # The fertility of real text equals an independent count: SentencePiece pieces of each whitespace word.
    tok = XltTokenizer.load(real_tokenizer)
    for code, name in (("rus", "tatoeba.rus-eng.rus"), ("hin", "tatoeba.hin-eng.hin"),
                       ("ara", "tatoeba.ara-eng.ara")):
        lines = [line.strip() for line in (data_dir / "tatoeba" / name).read_text(encoding="utf-8").splitlines()]
        sample = list(dict.fromkeys(line for line in lines if line))[:150]
        words = [w for line in sample for w in line.split()]
        counts = [len(tok.tokenize(w)) for w in words]
        assert by_lang[code].fertility == pytest.approx(sum(counts) / len(words), rel=1e-12)
        assert by_lang[code].continued_words == pytest.approx(sum(c >= 2 for c in counts) / len(words))


# --------------------------------------------------------------------------------------------- outputs, MLflow, CLI
@pytest.fixture(scope="module")
def second_tokenizer(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from xlt.tokenization.fit import fit_tokenizer

    files = {p.stem: p for p in sorted((synthetic_dir / "mlm").glob("*.txt"))}
    out = tmp_path_factory.mktemp("tok2") / "tok_balanced"
    fit_tokenizer(files, out, vocab_size=600, seed=0, language_alpha=0.0)
    return out


def test_outputs_side_by_side_and_mlflow(synthetic_dir: Path, tiny_tokenizer_dir: Path, second_tokenizer: Path,
                                         mlflow_uri: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    out = tmp_path / "audit"
    rows = audit_command([str(tiny_tokenizer_dir), str(second_tokenizer)], corpus=str(synthetic_dir),
                         panel="synthetic", sample_lines=60, out=str(out), tracking_uri=mlflow_uri,
                         experiment_name="audit-test", run_name="audit-side-by-side")
    panel = load_panel("synthetic")
    assert [(r.tokenizer, r.language) for r in rows] == \
        [(t, c) for t in ("tok", "tok_balanced") for c in panel.codes]
    assert all(r.gold_fertility is not None for r in rows)  # the panel's ud/ is found beside mlm/
    assert read_audit_csv(out / "audit.csv") == rows  # full precision round trip
    with open(out / "audit.csv", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert {"fertility", "gold_fertility", "char_coverage.Devanagari", "chars.Tamil"} <= set(header)
    for name in ("fertility_by_script.png", "fertility_by_bucket.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "audit.md").read_text(encoding="utf-8")
    assert "| language | script | bucket | tok | tok_balanced |" in markdown
    first = rows[0]
    assert f"| qaa Anglish | {first.script} | {first.bucket} | {first.fertility:.3f} |" in markdown  # panel name
    assert "| qaj Verb-final Anglish | tok |" in markdown  # the All metrics table too
    assert "qaa Anglish" not in (out / "audit.csv").read_text(encoding="utf-8")  # CSV keeps the bare codes

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("audit-test")
    (run,) = client.search_runs([experiment.experiment_id], "tags.mlflow.runName = 'audit-side-by-side'")
    metrics = run.data.metrics
    for row in rows:
        for metric in METRICS:
            assert metrics[f"audit/{row.tokenizer}/{metric}/{row.language}"] == pytest.approx(row.metric(metric))
    tail = [r.fertility for r in rows if r.tokenizer == "tok" and r.bucket == "tail"]
    assert metrics["audit/tok/fertility/bucket.tail"] == pytest.approx(sum(tail) / len(tail))
    assert run.data.tags["xlt.stage"] == "audit" and run.data.params["tokenizer.tok"] == str(tiny_tokenizer_dir)
    assert run.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"audit.csv", "audit.md", "fertility_by_script.png", "fertility_by_bucket.png", "tokenizers"} <= artifacts

    # Through `xlt tokenizer audit` argument parsing (a list of tokenizers): the same numbers.
    from xlt.cli import main

    main(["tokenizer", "audit", "--tokenizer", f"[{tiny_tokenizer_dir}, {second_tokenizer}]", "--corpus",
          str(synthetic_dir), "--panel", "synthetic", "--sample_lines", "60", "--out", str(tmp_path / "cli"),
          "--mlflow", "false"])
    assert read_audit_csv(tmp_path / "cli" / "audit.csv") == rows


def test_default_corpus_is_the_generated_synthetic_panel(tiny_tokenizer_dir: Path, tmp_path: Path) -> None:
    panel_file = Path(__file__).resolve().parents[2] / "configs" / "panels" / "synthetic.yaml"
    rows = audit_command([str(tiny_tokenizer_dir)], panel=str(panel_file), languages=["qah", "qaa"],
                         sample_lines=25, out=str(tmp_path / "out"), mlflow=False, cache_dir=str(tmp_path / "cache"),
                         corpus=SyntheticPanel(scale=0.05))
    assert [r.language for r in rows] == ["qah", "qaa"]
    assert (tmp_path / "cache" / "synthetic-seed0-scale0.05" / "mlm" / "qah.txt").is_file()
    ud = tmp_path / "cache" / "synthetic-seed0-scale0.05" / "ud"
    for row in rows:  # gold words: those of the first 25 UD sentences (dev.conllu has 20, then test.conllu)
        files = sorted((ud / row.language).glob("*.conllu"))
        sentences = [s for f in files for s in read_conllu(f)["tokens"]]
        assert len(read_conllu(files[0])["tokens"]) < 25 < len(sentences) and row.texts == 25, row.language
        assert row.gold_words == sum(len(s) for s in sentences[:25]), row.language


def test_corpus_object_and_shorthand_forms(synthetic_dir: Path, tiny_tokenizer_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from xlt import sources
    from xlt.cli import main

    common = {"sample_lines": 30, "mlflow": False, "languages": ["qaa", "qah"]}
    short = audit_command([str(tiny_tokenizer_dir)], corpus=str(synthetic_dir), out=str(tmp_path / "s"), **common)
    obj = audit_command([str(tiny_tokenizer_dir)], corpus=TextDirectory(str(synthetic_dir)), out=str(tmp_path / "o"),
                        **common)
    assert obj == short and all(r.gold_fertility is not None for r in obj)  # panel.yaml and ud/ beside mlm/
    main(["tokenizer", "audit", "--tokenizer", f"[{tiny_tokenizer_dir}]", "--corpus", "TextDirectory",
          "--corpus.path", str(synthetic_dir), "--languages", "[qaa, qah]", "--sample_lines", "30",
          "--out", str(tmp_path / "cli"), "--mlflow", "false"])
    assert read_audit_csv(tmp_path / "cli" / "audit.csv") == short
    # a hub dataset: the first N distinct rows of its text column (no UD unless --ud is given)
    lines = {code: (synthetic_dir / "mlm" / f"{code}.txt").read_text(encoding="utf-8").splitlines()
             for code in ("qaa", "qah")}
    monkeypatch.setattr(sources, "_load_hub_dataset",
                        lambda _id, config, _split, _cache: datasets.Dataset.from_dict({"text": lines[config]}))
    hub = audit_command([str(tiny_tokenizer_dir)], corpus="hf:org/cc", panel="synthetic", out=str(tmp_path / "h"),
                        cache_dir=str(tmp_path / "cache"), **common)
    assert [(r.language, r.fertility, r.texts) for r in hub] == [(r.language, r.fertility, r.texts) for r in short]
    assert all(r.gold_fertility is None for r in hub)
    assert "text: hub dataset org/cc" in (tmp_path / "h" / "audit.md").read_text(encoding="utf-8")
    with pytest.raises(XltError, match="hub dataset org/cc cannot list its languages — pass --languages or --panel"):
        audit_command([str(tiny_tokenizer_dir)], corpus=HubText("org/cc"), out=str(tmp_path / "x"), mlflow=False)


# --------------------------------------------------------------------------------------------- bad input
def _one_line(excinfo: pytest.ExceptionInfo[XltError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and " — " in message
    return message


def test_bad_input_is_one_line(latin_tok: XltTokenizer, synthetic_dir: Path, tiny_tokenizer_dir: Path,
                               tmp_path: Path) -> None:
    with pytest.raises(XltError) as excinfo:
        audit_command([str(tmp_path / "missing_tok")], corpus=str(synthetic_dir), out=str(tmp_path / "o"),
                      mlflow=False)
    assert "missing_tok" in _one_line(excinfo)
    with pytest.raises(XltError) as excinfo:
        audit_tokenizer(latin_tok, {"xyz": ["ab"]}, panel=load_panel("synthetic"))
    assert "'xyz'" in _one_line(excinfo)
    with pytest.raises(XltError) as excinfo:
        audit_command([str(tiny_tokenizer_dir)], corpus=str(synthetic_dir), languages=["xyz"],
                      out=str(tmp_path / "o"), mlflow=False)
    assert "'xyz'" in _one_line(excinfo)
    for empty in ([], ["", "  "]):
        with pytest.raises(XltError) as excinfo:
            audit_tokenizers({"hand": latin_tok}, {"eng": empty})
        assert "no text for language 'eng'" in _one_line(excinfo)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "qaa.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(XltError) as excinfo:
        audit_command([str(tiny_tokenizer_dir)], corpus=str(corpus), panel="synthetic", out=str(tmp_path / "o"),
                      mlflow=False)
    assert "qaa.txt" in _one_line(excinfo) and "empty" in str(excinfo.value)
    (corpus / "qaa.txt").write_bytes(b"fine line\nbad \xff byte\n")
    with pytest.raises(XltError) as excinfo:
        audit_command([str(tiny_tokenizer_dir)], corpus=str(corpus), panel="synthetic", out=str(tmp_path / "o"),
                      mlflow=False)
    assert "qaa.txt:2" in _one_line(excinfo)
    assert not (tmp_path / "o").exists()  # nothing half-written
    with pytest.raises(XltError) as excinfo:
        audit_command([str(tiny_tokenizer_dir)], corpus=str(synthetic_dir), sample_lines=0,
                      out=str(tmp_path / "o"), mlflow=False)
    assert "sample_lines" in _one_line(excinfo)
    (tmp_path / "exists").mkdir()
    with pytest.raises(XltError) as excinfo:
        audit_command([str(tiny_tokenizer_dir)], corpus=str(synthetic_dir), out=str(tmp_path / "exists"),
                      mlflow=False)
    assert "--overwrite" in _one_line(excinfo)


def test_cli_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xlt.cli import main

    with pytest.raises(SystemExit) as excinfo:
        main(["tokenizer", "audit", "--tokenizer", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope" in err and err.startswith("xlt: error:")
