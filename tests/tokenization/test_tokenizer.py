"""XltTokenizer and fit_tokenizer: id layout, round trips, transformers parity, manifest, errors."""

from __future__ import annotations

import json
import pickle
import random
import unicodedata
from pathlib import Path

import pytest
import sentencepiece as spm

from xlt.errors import XltError
from xlt.tokenization.fit import fit_tokenizer
from xlt.tokenization.sampling import sample_quotas, scan_text_file
from xlt.tokenization.tokenizer import MODEL_FILE, XltTokenizer

WORDS = {
    "eng": "the quick brown fox jumps over a lazy dog near river mountain house water".split(),
    "rus": "быстрый коричневый лис прыгает через ленивую собаку у реки горы дома воды".split(),
    "hin": "तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है नदी पहाड़ घर पानी".split(),
    "ara": "الثعلب البني السريع يقفز فوق الكلب الكسول قرب النهر الجبل البيت الماء".split(),
    "zho": list("敏捷的棕色狐狸跳过了懒狗河山房子水边"),
}
LINES = {"eng": 300, "rus": 200, "hin": 150, "ara": 150, "zho": 100}
VOCAB = 500
# NFKC text in five scripts, including characters never seen in training (byte fallback).
TEXTS = [
    "the quick fox jumps",
    "Zebras quietly vex 42 jumping wizards!",
    "быстрый лис прыгает через собаку",
    "Щука, ёж и съёмка — всё новое.",
    "नदी के ऊपर पहाड़",
    "क्षत्रिय ज्ञान ऋषि",
    "الكلب الكسول قرب النهر",
    "مرحبا بالعالم، كيف حالك؟",
    "敏捷的狐狸跳过了懒狗",
    "我们今天学习汉字。",
    "mixed быстрый नदी الماء 狐狸 😀",
]


def _write_corpus(root: Path, lines: dict[str, int] = LINES) -> dict[str, Path]:
    rng = random.Random(0)
    files = {}
    for code, n in lines.items():
        sep = "" if code == "zho" else " "
        text = [sep.join(rng.choice(WORDS[code]) for _ in range(rng.randint(3, 10))) for _ in range(n)]
        path = root / f"{code}.txt"
        path.write_text("\n".join(text) + "\n", encoding="utf-8")
        files[code] = path
    return files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def tok_dir(corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    fit_tokenizer(corpus, out, vocab_size=VOCAB, seed=0)
    return out


@pytest.fixture(scope="module")
def tok(tok_dir: Path) -> XltTokenizer:
    return XltTokenizer.load(tok_dir)


def test_fairseq_id_layout(tok: XltTokenizer, tok_dir: Path) -> None:
    sp = spm.SentencePieceProcessor(model_file=str(tok_dir / MODEL_FILE))
    assert sp.get_piece_size() == VOCAB
    assert (tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.vocab_size == VOCAB + 2 and tok.mask_id == VOCAB + 1 == tok.vocab_size - 1
    assert tok.special_ids == (0, 1, 2, 3, VOCAB + 1)
    specials = [tok.id_to_piece(i) for i in (0, 1, 2, 3, VOCAB + 1)]
    assert specials == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    # every real SentencePiece piece i (i >= 3) is id i + 1
    assert all(tok.id_to_piece(i + 1) == sp.id_to_piece(i) for i in range(3, VOCAB))
    for text in TEXTS:
        assert tok.encode([text])[0] == [i + 1 for i in sp.encode(text)]


def test_byte_fallback_ids(tok: XltTokenizer) -> None:
    # '😀' is never seen: it becomes its UTF-8 bytes F0 9F 98 80;
    # byte b is SentencePiece id 3 + b, so ours is 4 + b
    ids = tok.encode(["😀"])[0]
    assert ids[-4:] == [4 + 0xF0, 4 + 0x9F, 4 + 0x98, 4 + 0x80]
    assert tok.unk_id not in sum(tok.encode(TEXTS), [])


def test_round_trip_multi_script(tok: XltTokenizer) -> None:
    for text in TEXTS:
        assert unicodedata.normalize("NFKC", text) == text
    encoded = tok.encode(TEXTS)
    assert [tok.decode(ids) for ids in encoded] == TEXTS
    assert tok.encode([]) == [] and tok.encode([""]) == [[]]


def test_decode_skips_special_tokens(tok: XltTokenizer) -> None:
    ids = tok.encode(["नदी के ऊपर"])[0]
    assert tok.decode([tok.bos_id, *ids, tok.eos_id, tok.pad_id, tok.mask_id]) == "नदी के ऊपर"
    with pytest.raises(ValueError):
        tok.decode([tok.vocab_size])


def test_encode_is_batched_and_numpy(tok: XltTokenizer) -> None:
    arrays = tok.encode_arrays(TEXTS)
    assert [a.tolist() for a in arrays] == tok.encode(TEXTS) == [tok.encode([t])[0] for t in TEXTS]
    assert all(a.dtype.name == "int32" for a in arrays)
    with pytest.raises(TypeError):
        tok.encode("not a list")


def test_hf_tokenizer_ids_equal_ours(tok: XltTokenizer, tok_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, XLMRobertaTokenizer

    ours = tok.encode(TEXTS)
    in_memory = tok.to_hf()
    assert isinstance(in_memory, XLMRobertaTokenizer)
    loaded = AutoTokenizer.from_pretrained(str(tok_dir))
    for hf in (in_memory, loaded):
        assert len(hf) == tok.vocab_size
        specials = (hf.bos_token_id, hf.pad_token_id, hf.eos_token_id, hf.unk_token_id, hf.mask_token_id)
        assert specials == (0, 1, 2, 3, tok.mask_id)
        assert [hf(t, add_special_tokens=False)["input_ids"] for t in TEXTS] == ours
        assert hf(TEXTS[2])["input_ids"] == [0, *ours[2], 2]
        assert hf(TEXTS[0], TEXTS[2])["input_ids"] == [0, *ours[0], 2, 2, *ours[2], 2]
        assert hf.decode(ours[-1]) == TEXTS[-1]
        assert list(hf(TEXTS[0]).keys()) == ["input_ids", "attention_mask"]
    assert pickle.loads(pickle.dumps(in_memory))(TEXTS[-1], add_special_tokens=False)["input_ids"] == ours[-1]
    # files saved from the in-memory tokenizer (as a model export does) reload with the same ids
    in_memory.save_pretrained(str(tmp_path / "export"))
    exported = AutoTokenizer.from_pretrained(str(tmp_path / "export"))
    assert [exported(t, add_special_tokens=False)["input_ids"] for t in TEXTS] == ours


def test_save_load_and_pickle(tok: XltTokenizer, tmp_path: Path) -> None:
    out = tok.save(tmp_path / "copy")
    assert {p.name for p in out.iterdir()} >= {MODEL_FILE, "tokenizer.json", "tokenizer_config.json",
                                                "manifest.json"}
    again = XltTokenizer.load(out)
    assert again.encode(TEXTS) == tok.encode(TEXTS)
    assert pickle.loads(pickle.dumps(tok)).encode(TEXTS) == tok.encode(TEXTS)
    with pytest.raises(XltError, match="already exists"):
        tok.save(out)
    with pytest.raises(XltError, match="has no sentencepiece.bpe.model"):
        XltTokenizer.load(tmp_path)


def test_manifest(tok_dir: Path) -> None:
    manifest = json.loads((tok_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["vocab_size"] == VOCAB + 2 and manifest["sentencepiece_vocab_size"] == VOCAB
    assert manifest["languages"] == list(LINES)
    assert manifest["corpus_lines"] == LINES
    assert manifest["sample_lines"] == LINES  # small corpus: every line is used
    assert manifest["options"]["byte_fallback"] is True and manifest["options"]["model_type"] == "unigram"
    assert manifest["special_ids"] == {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": VOCAB + 1}


def test_sample_quotas_hand_computed() -> None:
    assert sample_quotas({"a": 900, "b": 100}, 500, alpha=1.0) == {"a": 450, "b": 50}
    # alpha 0: equal shares of 250, b is capped at its 100 lines and a gets the remaining 400
    assert sample_quotas({"a": 900, "b": 100}, 500, alpha=0.0) == {"a": 400, "b": 100}
    assert sample_quotas({"a": 900, "b": 100}, 5000) == {"a": 900, "b": 100}
    # alpha 0.5: weights 30 and 10 -> 300 and 100 of a 400 budget
    assert sample_quotas({"a": 900, "b": 100}, 400, alpha=0.5) == {"a": 300, "b": 100}


def test_bounded_sample_is_seeded(corpus: dict[str, Path], tmp_path: Path) -> None:
    files = {k: corpus[k] for k in ("eng", "rus")}
    a = fit_tokenizer(files, tmp_path / "a", vocab_size=320, seed=1, input_sentence_size=100)
    b = fit_tokenizer(files, tmp_path / "b", vocab_size=320, seed=1, input_sentence_size=100)
    assert a.manifest["sample_lines"] == {"eng": 60, "rus": 40}  # 100 lines split 300:200
    assert a.manifest["corpus_lines"] == {"eng": 300, "rus": 200}
    assert a.model_proto == b.model_proto


def test_scan_counts_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("one\ntwo\n\nthree", encoding="utf-8")
    assert scan_text_file(path) == 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        (b"", "is empty"),
        (b"  \n\n\t\n", "is empty"),
        (b"fine line\nsecond line\nbad \xff byte\n", "line 3 is not valid UTF-8"),
    ],
)
def test_fit_rejects_bad_files(corpus: dict[str, Path], tmp_path: Path, content: bytes | None,
                               message: str) -> None:
    bad = tmp_path / "bad.txt"
    if content is not None:
        bad.write_bytes(content)
    with pytest.raises(XltError, match=message) as info:
        fit_tokenizer({"eng": corpus["eng"], "yor": bad}, tmp_path / "out", vocab_size=300)
    assert "bad.txt" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_fit_rejects_bad_settings(corpus: dict[str, Path], tok_dir: Path, tmp_path: Path) -> None:
    files = {"eng": corpus["eng"]}
    with pytest.raises(XltError, match="vocab_size 100 is too small"):
        fit_tokenizer(files, tmp_path / "a", vocab_size=100)
    with pytest.raises(XltError, match=r"vocab_size 262 is too small for this corpus — it needs at least"):
        fit_tokenizer(corpus, tmp_path / "b", vocab_size=262)
    with pytest.raises(XltError, match="too large for this corpus"):
        fit_tokenizer(files, tmp_path / "c", vocab_size=5000)
    with pytest.raises(XltError, match="already exists"):
        fit_tokenizer(files, tok_dir, vocab_size=300)
    with pytest.raises(XltError, match="byte_fallback"):
        fit_tokenizer(files, tmp_path / "d", vocab_size=300, byte_fallback=False)
    with pytest.raises(XltError, match="no text files"):
        fit_tokenizer({}, tmp_path / "e", vocab_size=300)
    assert not any((tmp_path / n).exists() for n in "abcde")


def test_overwrite_replaces(corpus: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "tok"
    fit_tokenizer({"eng": corpus["eng"]}, out, vocab_size=300)
    tok = fit_tokenizer({"eng": corpus["eng"], "rus": corpus["rus"]}, out, vocab_size=320, overwrite=True)
    assert tok.vocab_size == 322 and XltTokenizer.load(out).manifest["languages"] == ["eng", "rus"]
