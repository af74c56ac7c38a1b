"""Configuration (d) end to end: language routing, no block-id leaks, round trips in every script, persistence,
embedding sizing / initialisation / isolation, vocabulary extension of a checkpoint, the corpus DataModule."""

from __future__ import annotations

import pickle
import unicodedata
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from xlt.errors import XltError
from xlt.models.embeddings import VocabularyLayout
from xlt.models.masking import TokenMasker
from xlt.models.mlm import MLMPretraining
from xlt.tokenization.fit import fit_configuration
from xlt.tokenization.tokenizer import MODEL_FILE, XltTokenizer, language_model_file, tokenizer_fingerprint
from xlt.tokenization.vocabulary import VocabularyConfig

DESIGNATED = ["qaf", "qag", "qah"]
VOCAB, PIECES = 1000, 60
TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=40)
BLOCK = 32


@pytest.fixture(scope="module")
def lines(synthetic_mlm_lines: dict[str, list[str]]) -> dict[str, list[str]]:
    return synthetic_mlm_lines


@pytest.fixture(scope="module")
def shared_dir(synthetic_mlm_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shared") / "tok"
    fit_configuration(synthetic_mlm_files, out, VOCAB)
    return out


@pytest.fixture(scope="module")
def tok_dir(synthetic_mlm_files: dict[str, Path], shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lang_specific") / "tok"
    config = VocabularyConfig("lang_specific", language_pieces=PIECES, designated_languages=DESIGNATED,
                              base_tokenizer=str(shared_dir))
    fit_configuration(synthetic_mlm_files, out, VOCAB, config)
    return out


@pytest.fixture(scope="module")
def tok(tok_dir: Path) -> XltTokenizer:
    return XltTokenizer.load(tok_dir)


# ------------------------------------------------------------------------------------------------ routing
def test_routing_by_language(tok: XltTokenizer, lines: dict[str, list[str]]) -> None:
    shared = set(range(tok.shared_vocab_size))
    for code, texts in lines.items():
        ids = {i for seq in tok.encode(texts, code) for i in seq}
        if code in DESIGNATED:
            start, stop = tok.blocks[code]
            own = {i for i in ids if start <= i < stop}
            assert own and ids <= shared | own, code  # uses its block, nothing from other blocks
        else:
            assert ids <= shared, code
            assert tok.encode(texts, code) == tok.encode(texts) == tok.encode(texts, "xyz")
    # one language per text, batched: the same as grouping by language
    mixed = [lines["qah"][0], lines["qaa"][0], lines["qaf"][0], lines["qah"][1]]
    langs = ["qah", "qaa", "qaf", "qah"]
    assert tok.encode(mixed, langs) == [tok.encode([t], c)[0] for t, c in zip(mixed, langs, strict=True)]
    assert all(a.dtype.name == "int32" for a in tok.encode_arrays(mixed, langs))
    with pytest.raises(ValueError, match="2 languages"):
        tok.encode(mixed, ["qah", "qaa"])


def test_block_segmentation_spells_each_piece(tok: XltTokenizer) -> None:
    for code in DESIGNATED:
        segmentation = tok.block_piece_segmentations(code)
        assert sorted(segmentation) == list(range(*tok.blocks[code]))
        for block_id, parts in segmentation.items():
            assert parts and all(p < tok.shared_vocab_size for p in parts)
            # the parts spell the piece (characters the shared model lacks as byte pieces)
            assert tok.decode(parts) == tok.id_to_piece(block_id).replace("\u2581", " ").lstrip(" ")
            assert parts == tok.encode([tok.decode(parts)])[0] or not tok.id_to_piece(block_id).startswith("\u2581")
    with pytest.raises(XltError, match="has no vocabulary block"):
        tok.block_piece_segmentations("qaa")


_SCRIPTS = "".join(sorted({ch for ch in "Anglish Кирилица देवनागरी عربية தமிழ் Ελληνικά 0123 ,.?!"
                           "ßжضझ中😀" if not ch.isspace()}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.text(alphabet=st.sampled_from(_SCRIPTS + "abcdefghKrodgeith"), min_size=1, max_size=12),
                      min_size=1, max_size=8),
       lang=st.sampled_from([*DESIGNATED, "qaa", "qac", "qaj", "xyz", None]))
def test_block_ids_never_leak_property(tok: XltTokenizer, lines: dict[str, list[str]], words: list[str],
                                       lang: str | None) -> None:
    # random words, plus real words of a designated language (so other languages see its block-worthy text)
    text = unicodedata.normalize("NFKC", " ".join([*words, *lines["qah"][len(words)].split()[:3]]))
    ids = tok.encode([text], lang)[0]
    assert all(0 <= i < tok.vocab_size for i in ids)
    leaked = {tok.block_of(i) for i in ids if i >= tok.shared_vocab_size}
    assert leaked <= ({lang} if lang in DESIGNATED else set())
    if " ".join(text.split()) == text:  # SentencePiece collapses repeated spaces
        assert tok.decode(ids) == text


def test_round_trip_synthetic_every_script(tok: XltTokenizer, lines: dict[str, list[str]]) -> None:
    for code, texts in lines.items():
        assert all(unicodedata.normalize("NFKC", t) == t for t in texts)
        for lang in (code, None, DESIGNATED[0]):
            assert [tok.decode(ids) for ids in tok.encode(texts, lang)] == texts, (code, lang)


def _real_lines(data_dir: Path) -> dict[str, list[str]]:
    def tatoeba(code: str, side: str | None = None) -> list[str]:
        path = data_dir / "tatoeba" / f"tatoeba.{code}-eng.{side or code}"
        return path.read_text(encoding="utf-8").splitlines()

    def ud(code: str) -> list[str]:
        return [line[len("# text = "):] for path in sorted((data_dir / "ud" / code).glob("*.conllu"))
                for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# text = ")]

    raw = {"eng": tatoeba("rus", "eng"), "rus": tatoeba("rus"), "hin": tatoeba("hin"), "ara": tatoeba("ara"),
           "zho": tatoeba("cmn"), "sin": ud("sin")}
    return {code: [" ".join(unicodedata.normalize("NFKC", t).split()) for t in texts if t.strip()][:400]
            for code, texts in raw.items()}


def test_round_trip_real_text_in_every_script(data_dir: Path, tmp_path: Path) -> None:
    """Latin, Cyrillic, Devanagari, Arabic, Han and Sinhala: fitted with blocks for three of them."""
    real = _real_lines(data_dir)
    files = {}
    for code, texts in real.items():
        files[code] = tmp_path / f"{code}.txt"
        files[code].write_text("\n".join(texts[:300]) + "\n", encoding="utf-8")
    config = VocabularyConfig("lang_specific", language_pieces=100, designated_languages=["hin", "zho", "sin"])
    real_tok = fit_configuration(files, tmp_path / "tok", 1600, config)
    for code, texts in real.items():  # fitted lines and held-out lines alike
        for lang in (code, None, "sin"):
            assert [real_tok.decode(ids) for ids in real_tok.encode(texts, lang)] == texts, (code, lang)
        if code in ("hin", "zho", "sin"):
            start, stop = real_tok.blocks[code]
            assert any(start <= i < stop for ids in real_tok.encode(texts, code) for i in ids)


# ------------------------------------------------------------------------------------------------ persistence
def test_save_load_pickle_and_fingerprint(tok: XltTokenizer, tok_dir: Path, shared_dir: Path,
                                          lines: dict[str, list[str]], tmp_path: Path) -> None:
    copy = XltTokenizer.load(tok.save(tmp_path / "copy"))
    again = pickle.loads(pickle.dumps(tok))
    for other in (copy, again):
        assert other.blocks == tok.blocks and other.vocab_size == tok.vocab_size
        for code in ("qah", "qaa"):
            assert other.encode(lines[code], code) == tok.encode(lines[code], code)
    assert {p.name for p in (tmp_path / "copy" / "languages").iterdir()} == {f"{c}.model" for c in DESIGNATED}
    import hashlib

    shared_hash = hashlib.sha256((shared_dir / MODEL_FILE).read_bytes()).hexdigest()[:16]
    assert tokenizer_fingerprint(shared_dir) == shared_hash  # shared tokenizers keep their old cache key
    assert tokenizer_fingerprint(tok_dir) != shared_hash  # the blocks are part of the key
    assert tokenizer_fingerprint(tmp_path / "copy") == tokenizer_fingerprint(tok_dir)
    (tmp_path / "copy" / language_model_file("qah")).unlink()
    with pytest.raises(XltError, match="lacks languages/qah.model"):
        XltTokenizer.load(tmp_path / "copy")


# ------------------------------------------------------------------------------------------------ embeddings
def test_restrict_logits_hand_example() -> None:
    layout = VocabularyLayout(shared_size=3, vocab_size=6, blocks={"x": (3, 5), "y": (5, 6)})
    logits = torch.zeros(3, 6)
    out = layout.restrict_logits(logits, torch.tensor([0, 1, 2]), ["x", "y", "z"])
    inf = float("-inf")
    assert out.tolist() == [[0, 0, 0, 0, 0, inf], [0, 0, 0, inf, inf, 0], [0, 0, 0, inf, inf, inf]]
    assert layout.allowed_ids("x").tolist() == [0, 1, 2, 3, 4] and layout.allowed_ids("z").tolist() == [0, 1, 2]
    plain = VocabularyLayout(shared_size=6, vocab_size=6)
    assert plain.restrict_logits(logits, torch.tensor([0, 1, 2]), ["x", "y", "z"]) is logits


def test_random_replacements_come_from_shared_ids() -> None:
    masker = TokenMasker(20, 19, [0, 1, 2, 3], mask_prob=1.0, mask_replace_prob=0.0, random_replace_prob=1.0,
                         replacement_vocab_size=10)
    ids = torch.arange(4, 19).repeat(50, 1)
    masked, labels = masker(ids, torch.Generator().manual_seed(0))
    assert torch.equal(labels, ids)
    assert set(masked.unique().tolist()) == set(range(4, 10))  # never a block id (>= 10), never special


def _module(tok_dir: Path, tok: XltTokenizer, **kwargs) -> MLMPretraining:
    kwargs.setdefault("encoder", "xlm-roberta")
    kwargs.setdefault("config", dict(TINY))
    return MLMPretraining(tokenizer=str(tok_dir), languages=list(tok.manifest["languages"]), seed=1, **kwargs)


def _batch(tok: XltTokenizer, texts: list[str], lang: str, index: int, rows: int = 4) -> dict[str, torch.Tensor]:
    stream = [i for ids in tok.encode(texts, lang) for i in [tok.bos_id, *ids, tok.eos_id]][: rows * BLOCK]
    return {"input_ids": torch.tensor(stream).view(rows, BLOCK), "lang": torch.full((rows,), index)}


def test_embedding_matrix_and_mean_initialisation(tok_dir: Path, tok: XltTokenizer) -> None:
    module = _module(tok_dir, tok)
    module.configure_model()
    model = module.model
    weight = model.get_input_embeddings().weight
    assert weight.shape[0] == tok.vocab_size == module.hf_config.vocab_size
    assert model.get_output_embeddings().weight is weight  # tied
    segmentations = {i: parts for code in DESIGNATED for i, parts in tok.block_piece_segmentations(code).items()}
    assert len(segmentations) == tok.vocab_size - tok.shared_vocab_size
    for block_id, parts in segmentations.items():  # as built by configure_model
        torch.testing.assert_close(weight[block_id], weight[parts].mean(0), rtol=0, atol=1e-6)
        assert len(parts) == 1 or not torch.equal(weight[block_id], weight[parts[0]])
    # the output bias (zero in a fresh model) follows the same rule
    bias = model.get_output_embeddings().bias
    with torch.no_grad():
        bias.copy_(torch.randn(bias.shape, generator=torch.Generator().manual_seed(0)))
    from xlt.models.embeddings import init_block_embeddings

    assert init_block_embeddings(model, tok) == len(segmentations)
    for block_id, parts in segmentations.items():
        torch.testing.assert_close(bias[block_id], bias[parts].mean(0), rtol=0, atol=1e-6)
    assert module.masker.replacement_vocab_size == tok.shared_vocab_size


def test_block_rows_get_exactly_zero_gradient_from_other_languages(tok_dir: Path, tok: XltTokenizer,
                                                                  lines: dict[str, list[str]]) -> None:
    module = _module(tok_dir, tok)
    module.configure_model()
    languages = module.languages
    weight = module.model.get_input_embeddings().weight
    bias = module.model.get_output_embeddings().bias

    def block_grads(batch: dict[str, torch.Tensor], restricted: bool = True) -> dict[str, float]:
        module.model.zero_grad()
        masked, labels = module.masker(batch["input_ids"], torch.Generator().manual_seed(0))
        module.mlm_loss(masked, labels, langs=batch["lang"] if restricted else None).backward()
        return {code: float(weight.grad[slice(*tok.blocks[code])].abs().sum()
                            + bias.grad[slice(*tok.blocks[code])].abs().sum()) for code in DESIGNATED}

    qah = block_grads(_batch(tok, lines["qah"], "qah", languages.index("qah")))
    assert qah["qah"] > 0 and qah["qaf"] == 0.0 and qah["qag"] == 0.0
    qaa = block_grads(_batch(tok, lines["qaa"], "qaa", languages.index("qaa")))
    assert qaa == dict.fromkeys(DESIGNATED, 0.0)
    # the control: an unrestricted softmax pushes every block row as a negative
    assert all(g > 0 for g in block_grads(_batch(tok, lines["qaa"], "qaa", 0), restricted=False).values())


def test_training_on_one_language_leaves_other_blocks_bit_identical(tok_dir: Path, tok: XltTokenizer,
                                                                   lines: dict[str, list[str]],
                                                                   tmp_path: Path) -> None:
    """Two AdamW steps (no weight decay) through the Trainer on qah text only; export keeps the blocks."""
    module = _module(tok_dir, tok, weight_decay=0.0, warmup_steps=0, schedule="constant", lr=1e-2,
                     export_dir=str(tmp_path / "export"))
    module.configure_model()
    before = module.model.get_input_embeddings().weight.detach().clone()
    bias_before = module.model.get_output_embeddings().bias.detach().clone()
    batch = _batch(tok, lines["qah"], "qah", module.languages.index("qah"), rows=8)
    items = [{"input_ids": batch["input_ids"][i], "lang": batch["lang"][i]} for i in range(8)]
    pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
               enable_checkpointing=False, max_steps=2, default_root_dir=tmp_path).fit(
        module, DataLoader(items, batch_size=4))
    after = module.model.get_input_embeddings().weight.detach()
    bias_after = module.model.get_output_embeddings().bias.detach()
    for code in ("qaf", "qag"):
        rows = slice(*tok.blocks[code])
        assert torch.equal(after[rows], before[rows]) and torch.equal(bias_after[rows], bias_before[rows])
    assert not torch.equal(after[slice(*tok.blocks["qah"])], before[slice(*tok.blocks["qah"])])
    exported = XltTokenizer.load(tmp_path / "export")  # the export carries the full language-aware tokenizer
    assert exported.blocks == tok.blocks


def test_vocabulary_extension_of_a_shared_checkpoint(shared_dir: Path, tok_dir: Path, tok: XltTokenizer,
                                                     tmp_path: Path) -> None:
    shared_tok = XltTokenizer.load(shared_dir)
    base = MLMPretraining(encoder="xlm-roberta", config=dict(TINY), tokenizer=str(shared_dir), seed=2)
    base.configure_model()
    base.model.save_pretrained(tmp_path / "ckpt")
    old = base.model.get_input_embeddings().weight.detach()
    old_bias = base.model.get_output_embeddings().bias.detach()
    assert old.shape[0] == shared_tok.vocab_size == tok.shared_vocab_size

    extended = _module(tok_dir, tok, encoder=str(tmp_path / "ckpt"), config=None)
    extended.configure_model()
    model = extended.model
    weight = model.get_input_embeddings().weight.detach()
    assert weight.shape[0] == tok.vocab_size
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # still tied
    assert torch.equal(weight[: old.shape[0]], old)  # the checkpoint's rows, bit for bit
    assert torch.equal(model.get_output_embeddings().bias.detach()[: old.shape[0]], old_bias)
    for block_id, parts in tok.block_piece_segmentations("qag").items():
        torch.testing.assert_close(weight[block_id], old[parts].mean(0), rtol=0, atol=1e-7)
    # a checkpoint that already has the global vocabulary loads as it is
    model.save_pretrained(tmp_path / "full")
    again = _module(tok_dir, tok, encoder=str(tmp_path / "full"), config=None)
    again.configure_model()
    assert torch.equal(again.model.get_input_embeddings().weight.detach(), weight)
    # a checkpoint with another vocabulary cannot be extended
    other = MLMPretraining(encoder="xlm-roberta", config={**TINY, "vocab_size": 500}, seed=2)
    other.configure_model()
    other.model.save_pretrained(tmp_path / "other")
    with pytest.raises(XltError, match="checkpoint vocabulary has 500 rows"):
        _module(tok_dir, tok, encoder=str(tmp_path / "other"), config=None).configure_model()


# ------------------------------------------------------------------------------------------------ data module
def test_corpus_datamodule_fits_and_routes_configuration_d(synthetic_dir: Path, tmp_path: Path) -> None:
    from xlt.datamodules.corpus import MultilingualCorpusDataModule

    args = dict(corpus=str(synthetic_dir), panel=str(synthetic_dir / "panel.yaml"), tokenizer_vocab_size=VOCAB,
                block_size=BLOCK, batch_size=2, val_blocks_per_language=1, cache_dir=str(tmp_path / "cache"),
                steps_per_epoch=2)
    config = VocabularyConfig("lang_specific", language_pieces=PIECES, designated_languages=["qah"])
    dm = MultilingualCorpusDataModule(tokenizer_fit=config, **args)
    assert dm.hparams["tokenizer_fit"]["designated_languages"] == ["qah"]  # plain types in checkpoints
    assert dm.tokenizer_dir != MultilingualCorpusDataModule(**args).tokenizer_dir
    dm.prepare_data()
    dm.setup("fit")
    fitted = XltTokenizer.load(dm.tokenizer_dir)
    start, stop = fitted.blocks["qah"]
    for code, blocks in zip(dm.language_codes, dm._blocks.arrays, strict=True):
        in_block = ((blocks >= start) & (blocks < stop)).any()
        assert bool(in_block) == (code == "qah"), code
    with pytest.raises(XltError, match="designated_languages qzz not in the corpus"):
        MultilingualCorpusDataModule(tokenizer_fit=VocabularyConfig("lang_specific", designated_languages=["qzz"]),
                                     **args)


def test_multi_l_plus_recipe_trains_with_configuration_d(synthetic_dir: Path, tmp_path: Path, mlflow_uri: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``xlt fit --config configs/multi_l_plus.yaml --config configs/scale/cpu_tiny.yaml``, made seconds-small."""
    import json

    import yaml

    from xlt.cli import main

    root = Path(__file__).resolve().parents[2]
    overlay = {
        "trainer": {"max_steps": 3, "val_check_interval": 3, "default_root_dir": str(tmp_path / "run"),
                    "logger": {"class_path": "xlt.callbacks.tracking.TrackingLogger",
                               "init_args": {"experiment_name": "tests", "run_name": "multi_l_plus",
                                             "tracking_uri": mlflow_uri}}},
        "model": {"init_args": {"config": {"max_position_embeddings": 40}, "warmup_steps": 1}},
        "data": {"init_args": {"corpus": str(synthetic_dir / "mlm"), "panel": str(synthetic_dir / "panel.yaml"),
                               "cache_dir": str(tmp_path / "cache"), "tokenizer_vocab_size": VOCAB,
                               "tokenizer_fit": {"language_pieces": 40}, "block_size": BLOCK, "batch_size": 4,
                               "val_blocks_per_language": 1}},
    }
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(overlay), encoding="utf-8")
    configs = ["--config", str(root / "configs" / "multi_l_plus.yaml"),
               "--config", str(root / "configs" / "scale" / "cpu_tiny.yaml"), "--config", str(path)]
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    main(["fit", *configs])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "run", "small.yaml"]
    export = tmp_path / "run" / "export"
    fitted = XltTokenizer.load(export)
    assert list(fitted.blocks) == ["qaf", "qag", "qah", "qai", "qaj"]  # cpu_tiny's designated languages
    assert fitted.manifest["configuration"] == "lang_specific"
    config = json.loads((export / "config.json").read_text(encoding="utf-8"))
    assert config["vocab_size"] == fitted.vocab_size == VOCAB + 2 + sum(b - a for a, b in fitted.blocks.values())
