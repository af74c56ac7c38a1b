"""The paper's four vocabulary configurations (a–d) fitted on the synthetic panel: sizes, manifests, fertility,
identical shared segmentation, transformers exports, sampling quotas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from xlt.errors import XltError
from xlt.languages import load_panel
from xlt.tokenization.blocks import block_candidates, language_model
from xlt.tokenization.fit import fit_configuration
from xlt.tokenization.sampling import balanced_quotas
from xlt.tokenization.tokenizer import MODEL_FILE, XltTokenizer, parse_model
from xlt.tokenization.vocabulary import VocabularyConfig, resolve_designated

VOCAB = 1000
PIECES = 100
DESIGNATED = ["qaf", "qag", "qah", "qai", "qaj"]  # the synthetic panel's low + tail languages
TAIL = ["qah", "qaj"]
CONFIGS = {
    "a": VocabularyConfig("shared"),
    "b": VocabularyConfig("balanced", alpha=0.0),
    "c": VocabularyConfig("proportional_2x"),
    "d": VocabularyConfig("lang_specific", language_pieces=PIECES, designated_languages=DESIGNATED),
}


@pytest.fixture(scope="module")
def lines(synthetic_mlm_lines: dict[str, list[str]]) -> dict[str, list[str]]:
    return synthetic_mlm_lines


@pytest.fixture(scope="module")
def fitted(synthetic_mlm_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vocab_configs")
    for name, config in CONFIGS.items():
        fit_configuration(synthetic_mlm_files, root / name, VOCAB, config, seed=0)
    return {name: root / name for name in CONFIGS}


@pytest.fixture(scope="module")
def toks(fitted: dict[str, Path]) -> dict[str, XltTokenizer]:
    return {name: XltTokenizer.load(path) for name, path in fitted.items()}


def fertility(tok: XltTokenizer, texts: list[str], lang: str) -> float:
    """Subwords per whitespace word."""
    return sum(len(ids) for ids in tok.encode(texts, lang)) / sum(len(t.split()) for t in texts)


def test_sizes_and_block_id_ranges(toks: dict[str, XltTokenizer]) -> None:
    assert toks["a"].vocab_size == toks["b"].vocab_size == VOCAB + 2
    assert toks["c"].vocab_size == 2 * VOCAB + 2
    d = toks["d"]
    assert d.shared_vocab_size == VOCAB + 2 and d.mask_id == VOCAB + 1  # <mask> stays the last shared id
    assert list(d.blocks) == DESIGNATED
    start = VOCAB + 2
    for code in DESIGNATED:  # contiguous blocks after the shared vocabulary, in designated order
        first, stop = d.blocks[code]
        assert first == start and 0 < stop - first <= PIECES
        start = stop
    assert d.vocab_size == start
    assert all(not t.blocks for name, t in toks.items() if name != "d")


def test_manifests_record_configuration_sizes_and_statistics(fitted: dict[str, Path],
                                                             lines: dict[str, list[str]]) -> None:
    manifests = {n: json.loads((p / "manifest.json").read_text(encoding="utf-8")) for n, p in fitted.items()}
    counts = {code: len(texts) for code, texts in lines.items()}  # the synthetic files have no blank lines
    for name, config in CONFIGS.items():
        m = manifests[name]
        assert m["configuration"] == config.configuration
        assert m["config"]["vocab_size"] == VOCAB
        assert m["corpus_lines"] == counts
    assert manifests["c"]["config"]["shared_pieces"] == 2 * VOCAB
    # (a) uses every line once (the corpus is under the 2M-line budget)
    assert manifests["a"]["sample_lines"] == counts
    assert manifests["a"]["sample_words"] == {c: sum(len(t.split()) for t in ts) for c, ts in lines.items()}
    # (b) alpha 0: the same number of lines, split evenly over the 10 languages (small ones repeated)
    total = sum(counts.values())
    assert manifests["b"]["sample_lines"] == dict.fromkeys(counts, total // 10) and total % 10 == 0
    d = manifests["d"]
    assert d["config"]["designated_languages"] == DESIGNATED and d["config"]["language_pieces"] == PIECES
    for code in DESIGNATED:
        block = d["blocks"][code]
        assert block["stop"] - block["start"] == block["size"] and block["requested"] == PIECES
        assert block["sample_lines"] == counts[code]
        assert (fitted["d"] / block["model"]).is_file()
    assert d["hf"] == {"shared": ".", **{code: f"hf/{code}" for code in DESIGNATED}}


def test_d_lowers_fertility_of_every_designated_language(toks: dict[str, XltTokenizer],
                                                         lines: dict[str, list[str]]) -> None:
    for code in DESIGNATED:
        a, d = fertility(toks["a"], lines[code], code), fertility(toks["d"], lines[code], code)
        assert d < a, (code, a, d)


def test_d_leaves_non_designated_segmentation_identical(fitted: dict[str, Path], toks: dict[str, XltTokenizer],
                                                       lines: dict[str, list[str]]) -> None:
    assert (fitted["a"] / MODEL_FILE).read_bytes() == (fitted["d"] / MODEL_FILE).read_bytes()
    for code, texts in lines.items():
        if code not in DESIGNATED:
            assert toks["d"].encode(texts, code) == toks["a"].encode(texts, code), code
    # without a language, (d) is the shared tokenizer for every text
    assert toks["d"].encode(lines["qah"]) == toks["a"].encode(lines["qah"])


def test_b_lowers_tail_mean_fertility(toks: dict[str, XltTokenizer], lines: dict[str, list[str]]) -> None:
    def tail_mean(tok: XltTokenizer) -> float:
        return sum(fertility(tok, lines[c], c) for c in TAIL) / len(TAIL)

    assert tail_mean(toks["b"]) < tail_mean(toks["a"])


def test_c_double_vocabulary_lowers_mean_fertility(toks: dict[str, XltTokenizer],
                                                   lines: dict[str, list[str]]) -> None:
    def mean(tok: XltTokenizer) -> float:
        return sum(fertility(tok, texts, c) for c, texts in lines.items()) / len(lines)

    assert mean(toks["c"]) < mean(toks["a"])


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_a_to_c_load_in_transformers_with_our_ids(name: str, fitted: dict[str, Path], toks: dict[str, XltTokenizer],
                                                  lines: dict[str, list[str]]) -> None:
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(fitted[name]))
    assert len(hf) == toks[name].vocab_size and hf.mask_token_id == toks[name].mask_id
    for code, texts in lines.items():
        assert hf(texts[:20], add_special_tokens=False)["input_ids"] == toks[name].encode(texts[:20], code)


def test_d_exports_shared_and_per_language_transformers_tokenizers(
        fitted: dict[str, Path], toks: dict[str, XltTokenizer], lines: dict[str, list[str]]) -> None:
    from transformers import AutoTokenizer

    d = toks["d"]
    shared = AutoTokenizer.from_pretrained(str(fitted["d"]))
    assert len(shared) == d.shared_vocab_size
    for code, texts in lines.items():
        if code in DESIGNATED:
            hf = AutoTokenizer.from_pretrained(str(fitted["d"] / "hf" / code))
            assert len(hf) == d.vocab_size
        else:
            hf = shared
        assert hf(texts[:30], add_special_tokens=False)["input_ids"] == d.encode(texts[:30], code), code


def test_block_extends_an_existing_shared_tokenizer(synthetic_mlm_files: dict[str, Path], fitted: dict[str, Path],
                                                    toks: dict[str, XltTokenizer], tmp_path: Path) -> None:
    """base_tokenizer: the blocks are added to a given shared vocabulary (a checkpoint's), not refitted."""
    config = VocabularyConfig("lang_specific", language_pieces=PIECES, designated_languages=["qah", "qag"],
                              base_tokenizer=str(fitted["a"]))
    extended = fit_configuration(synthetic_mlm_files, tmp_path / "ext", VOCAB, config)
    assert extended.model_proto == toks["a"].model_proto
    assert extended.manifest["base_tokenizer"]["path"] == str(fitted["a"])
    for code in ("qah", "qag"):  # the same block as a from-scratch fit of (d)
        assert extended.language_models[code] == toks["d"].language_models[code]
    assert list(extended.blocks) == ["qag", "qah"]  # corpus order
    with pytest.raises(XltError, match="already has language blocks"):
        fit_configuration(synthetic_mlm_files, tmp_path / "x", VOCAB,
                          VocabularyConfig("lang_specific", base_tokenizer=str(fitted["d"]),
                                           designated_languages=["qah"]))
    assert not (tmp_path / "x").exists()


def test_designated_languages_default_to_the_panel(synthetic_dir: Path, tmp_path: Path) -> None:
    panel = yaml.safe_load((synthetic_dir / "panel.yaml").read_text(encoding="utf-8"))
    for lang in panel["languages"]:
        lang["designated"] = lang["code"] in ("qah", "qaj")
    path = tmp_path / "panel.yaml"
    path.write_text(yaml.safe_dump(panel), encoding="utf-8")
    loaded = load_panel(str(path))
    codes = [lang["code"] for lang in panel["languages"]]
    assert resolve_designated(VocabularyConfig("lang_specific"), codes, loaded) == ["qah", "qaj"]
    # explicit designated_languages override the panel; only codes present in the corpus count
    assert resolve_designated(VocabularyConfig("lang_specific", designated_languages=["qaf"]), codes,
                              loaded) == ["qaf"]
    assert resolve_designated(VocabularyConfig("lang_specific"), ["qaa", "qaj"], loaded) == ["qaj"]
    assert resolve_designated(VocabularyConfig("shared"), codes, loaded) == []
    with pytest.raises(XltError, match="marks none of the corpus languages designated"):
        resolve_designated(VocabularyConfig("lang_specific"), ["qaa"], loaded)
    with pytest.raises(XltError, match="designated_languages qzz not in the corpus"):
        resolve_designated(VocabularyConfig("lang_specific", designated_languages=["qzz"]), codes, loaded)


def test_balanced_quotas_hand_computed() -> None:
    # alpha 0: uniform shares of min(budget, total) lines; the small language's text is repeated 5 times
    assert balanced_quotas({"a": 900, "b": 100}, 5000, 0.0) == {"a": 500, "b": 500}
    assert balanced_quotas({"a": 900, "b": 100}, 400, 0.0) == {"a": 200, "b": 200}
    # alpha 0.5: weights 30 and 10 -> 750 and 250 of 1000 lines
    assert balanced_quotas({"a": 900, "b": 100}, 5000, 0.5) == {"a": 750, "b": 250}
    # alpha 1 is proportional, like (a)
    assert balanced_quotas({"a": 900, "b": 100}, 500, 1.0) == {"a": 450, "b": 50}
    # 10 lines over three equal languages: 3 each, the leftover line goes to the first by name
    assert balanced_quotas({"c": 5, "a": 5, "b": 5}, 10, 0.0) == {"c": 3, "a": 4, "b": 3}
    assert balanced_quotas({"a": 7, "empty": 0}, 100, 0.0) == {"a": 7, "empty": 0}


def test_block_candidates_and_language_model_hand_example(toks: dict[str, XltTokenizer]) -> None:
    from sentencepiece import sentencepiece_model_pb2 as pb

    shared = parse_model(toks["a"].model_proto)
    language = pb.ModelProto()
    language.CopyFrom(shared)
    del language.pieces[3:]  # keep <unk> <s> </s>
    existing = shared.pieces[300].piece
    for piece, score in [("▁zzab", -2.0), (existing, -3.0), ("▁zzx", -1.0), ("▁zzy", -1.0)]:
        language.pieces.add(piece=piece, score=score, type=1)
    language.pieces.add(piece="<0x41>", score=0.0, type=6)  # byte pieces never enter a block
    proto = language.SerializeToString()
    assert block_candidates(toks["a"].model_proto, proto, 1) == [("▁zzx", -1.0)]
    assert block_candidates(toks["a"].model_proto, proto, 5) == [("▁zzx", -1.0), ("▁zzy", -1.0), ("▁zzab", -2.0)]
    model = parse_model(language_model(toks["a"].model_proto, [("▁zzx", -1.0)]))
    assert [p.piece for p in model.pieces[:-1]] == [p.piece for p in shared.pieces]
    assert (model.pieces[-1].piece, model.pieces[-1].score) == ("▁zzx", -1.0)
    assert model.trainer_spec.vocab_size == len(shared.pieces) + 1
