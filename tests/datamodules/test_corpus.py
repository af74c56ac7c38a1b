"""MultilingualCorpusDataModule: packing, batches, validation split, caching, ranks, resume, errors."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from xlt import sources
from xlt.datamodules.blocks import pack_blocks
from xlt.datamodules.corpus import MultilingualCorpusDataModule
from xlt.errors import XltError
from xlt.languages import load_panel
from xlt.sources import HubText, SyntheticPanel, TextDirectory
from xlt.tokenization.tokenizer import XltTokenizer

WORDS = {
    "eng": "the quick brown fox jumps over a lazy dog near river mountain house water".split(),
    "rus": "быстрый коричневый лис прыгает через ленивую собаку у реки горы дома воды".split(),
    "hin": "तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है नदी पहाड़ घर पानी".split(),
}
LINES = {"eng": 900, "rus": 400, "hin": 150}
PANEL = {"name": "tiny", "languages": [
    {"code": "eng", "name": "English", "family": "Germanic", "script": "Latin", "bucket": "high"},
    {"code": "rus", "name": "Russian", "family": "Slavic", "script": "Cyrillic", "bucket": "mid"},
    {"code": "hin", "name": "Hindi", "family": "Indo-Aryan", "script": "Devanagari", "bucket": "tail"},
    {"code": "ara", "name": "Arabic", "family": "Semitic", "script": "Arabic", "bucket": "mid"},
]}
BLOCK, BATCH, VAL = 16, 4, 3


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    (base / "text").mkdir()
    for code, n in LINES.items():
        lines = [" ".join(rng.choice(WORDS[code]) for _ in range(rng.randint(2, 9))) for _ in range(n)]
        lines[5] = "   "  # blank lines are dropped
        (base / "text" / f"{code}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (base / "tiny.yaml").write_text(yaml.safe_dump(PANEL), encoding="utf-8")
    return base


def make(root: Path, **overrides) -> MultilingualCorpusDataModule:
    args = {"corpus": str(root / "text"), "panel": str(root / "tiny.yaml"), "tokenizer_vocab_size": 360,
            "block_size": BLOCK, "batch_size": BATCH, "val_blocks_per_language": VAL,
            "cache_dir": str(root / "cache"), "steps_per_epoch": 3, "oversampling": {"tail": 3.0}}
    args.update(overrides)
    return MultilingualCorpusDataModule(**args)


@pytest.fixture(scope="module")
def dm(root: Path) -> MultilingualCorpusDataModule:
    module = make(root)
    module.prepare_data()
    module.setup("fit")
    return module


def token_stream(root: Path, code: str, tok: XltTokenizer) -> np.ndarray:
    lines = [t.strip() for t in (root / "text" / f"{code}.txt").read_text(encoding="utf-8").splitlines()]
    ids = tok.encode([t for t in lines if t])
    return np.concatenate([[tok.bos_id, *x, tok.eos_id] for x in ids])


def test_attributes_are_set_without_reading(root: Path, tmp_path: Path) -> None:
    a = make(root, cache_dir=str(tmp_path / "c"))
    b = make(root, cache_dir=str(tmp_path / "c"), seed=9)
    assert a.language_codes == ["eng", "rus", "hin"]  # panel order; 'ara' has no file
    assert a.block_size == BLOCK
    assert a.tokenizer_dir == b.tokenizer_dir  # depends on corpus + vocabulary, not on the run seed
    assert Path(a.tokenizer_dir).parent == tmp_path / "c"
    assert Path(a.tokenizer_dir).name.startswith("tokenizer-")
    other_vocab = make(root, cache_dir=str(tmp_path / "c"), tokenizer_vocab_size=500)
    assert other_vocab.tokenizer_dir != a.tokenizer_dir
    assert not (tmp_path / "c").exists()
    assert make(root, languages=["hin", "eng"]).language_codes == ["hin", "eng"]


def test_pack_blocks_hand_computed(tmp_path: Path) -> None:
    stream = [np.arange(1, 11), np.arange(11, 26)]  # 25 tokens -> 6 blocks of 4, one token dropped
    n = pack_blocks(iter(stream), 25, 4, tmp_path / "b.npy")
    blocks = np.load(tmp_path / "b.npy")
    assert n == 6 and blocks.shape == (6, 4) and blocks.dtype == np.int32
    assert blocks.reshape(-1).tolist() == list(range(1, 25))


def test_packing_reproduces_the_token_stream(root: Path, dm: MultilingualCorpusDataModule) -> None:
    tok = XltTokenizer.load(dm.tokenizer_dir)
    for li, code in enumerate(dm.language_codes):
        blocks = np.load(dm._blocks.paths[li])
        stream = token_stream(root, code, tok)
        assert blocks.shape == (len(stream) // BLOCK, BLOCK) == (dm.num_blocks[code], BLOCK)
        assert np.array_equal(blocks.reshape(-1), stream[: blocks.size])  # exact, single-language
        assert tok.pad_id not in blocks
        assert blocks[0, 0] == tok.bos_id


def test_train_batches(dm: MultilingualCorpusDataModule) -> None:
    arrays = [np.load(p) for p in dm._blocks.paths]
    train_rows = [{tuple(r) for r in a[: len(a) - VAL].tolist()} for a in arrays]
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    for batch in batches:
        assert set(batch) == {"input_ids", "lang"}
        assert batch["input_ids"].shape == (BATCH, BLOCK) and batch["input_ids"].dtype == torch.int64
        assert batch["lang"].shape == (BATCH,) and batch["lang"].dtype == torch.int64
        for row, lang in zip(batch["input_ids"].tolist(), batch["lang"].tolist(), strict=True):
            assert tuple(row) in train_rows[lang]  # a training block of the language it is labelled with
    # the sampler never reaches the held-out tail of any language
    langs, rows = dm.sampler.draws(0, 20_000)
    for li, code in enumerate(dm.language_codes):
        assert rows[langs == li].max() < dm.num_blocks[code] - VAL


def test_validation_blocks_are_fixed_and_held_out(dm: MultilingualCorpusDataModule) -> None:
    first = list(dm.val_dataloader())
    second = list(dm.val_dataloader())
    ids = torch.cat([b["input_ids"] for b in first])
    langs = torch.cat([b["lang"] for b in first])
    assert torch.equal(ids, torch.cat([b["input_ids"] for b in second]))
    assert langs.tolist() == [0] * VAL + [1] * VAL + [2] * VAL
    expected = np.concatenate([np.load(p)[-VAL:] for p in dm._blocks.paths])
    assert np.array_equal(ids.numpy(), expected)


def test_sampling_distribution(dm: MultilingualCorpusDataModule) -> None:
    n = {c: dm.num_blocks[c] - VAL for c in dm.language_codes}
    weights = {"eng": n["eng"] ** 0.3, "rus": n["rus"] ** 0.3, "hin": 3.0 * n["hin"] ** 0.3}  # hin: tail x3
    total = sum(weights.values())
    assert dm.sampling_distribution() == pytest.approx({c: w / total for c, w in weights.items()})


def test_cache_is_reused(root: Path, dm: MultilingualCorpusDataModule,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("re-tokenized")

    mtimes = {p: Path(p).stat().st_mtime_ns for p in dm._blocks.paths}
    monkeypatch.setattr(XltTokenizer, "encode_arrays", fail)
    again = make(root)
    again.prepare_data()  # blocks cached: nothing is read or tokenized
    again.setup("fit")
    assert again._blocks.paths == dm._blocks.paths
    assert {p: Path(p).stat().st_mtime_ns for p in again._blocks.paths} == mtimes
    # another block size re-packs from the cached token Arrow files, still without tokenizing
    bigger = make(root, block_size=2 * BLOCK)
    bigger.prepare_data()
    bigger.setup("fit")
    for code, n in bigger.num_blocks.items():
        assert n == (dm.num_blocks[code] * BLOCK + BLOCK - 1) // (2 * BLOCK) or n == dm.num_blocks[code] // 2


def test_rank_shares_interleave_to_the_single_process_stream(root: Path, dm) -> None:
    def batches(rank: int, world: int, batch_size: int) -> list[dict]:
        module = make(root, batch_size=batch_size)
        module.trainer = SimpleNamespace(global_rank=rank, world_size=world, current_epoch=0)
        module.setup("fit")
        return list(module.train_dataloader())

    single = batches(0, 1, 2 * BATCH)
    ranks = [batches(r, 2, BATCH) for r in range(2)]
    for b, whole in enumerate(single):
        merged = torch.stack([ranks[k % 2][b]["input_ids"][k // 2] for k in range(2 * BATCH)])
        assert torch.equal(merged, whole["input_ids"])


class _Recorder(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[int]] = []

    @staticmethod
    def record(batch: dict) -> list[int]:
        return batch["input_ids"][:, :4].reshape(-1).tolist() + batch["lang"].tolist()

    def training_step(self, batch, batch_idx):
        self.seen.append(self.record(batch))
        return self.weight.sum() * batch["input_ids"].float().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _trainer(tmp_path: Path, checkpoints: bool, accumulate: int, max_steps: int) -> L.Trainer:
    from lightning.pytorch.callbacks import ModelCheckpoint

    callbacks = [ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=1, save_top_k=-1,
                                 filename="{step}")] if checkpoints else []
    return L.Trainer(max_steps=max_steps, accumulate_grad_batches=accumulate, limit_val_batches=0,
                     logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
                     enable_checkpointing=checkpoints, accelerator="cpu", devices=1)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("accumulate", "max_steps", "batches", "consumed_at_step"), [
    (1, 7, 7, {2: 2, 4: 4}),  # mid-epoch (2 of 3 batches), mid-way through the second epoch (3 + 1)
    # with accumulation Lightning also steps on the last batch of an epoch, so steps 1, 2, 3 follow batches
    # 2, 3, 5 (global_step * accumulate would be wrong at step 3)
    (2, 4, 6, {1: 2, 2: 3, 3: 5}),
])
def test_resume_from_mid_epoch_checkpoint_sees_the_same_batches(
        root: Path, dm, tmp_path: Path, accumulate: int, max_steps: int, batches: int,
        consumed_at_step: dict[int, int]) -> None:
    full = _Recorder()
    _trainer(tmp_path, True, accumulate, max_steps).fit(full, datamodule=make(root))
    assert len(full.seen) == batches  # epochs of 3 batches
    loader = make(root).train_dataloader()  # without a trainer each new iterator is the next epoch
    stream = [_Recorder.record(batch) for _ in range(3) for batch in loader]
    assert full.seen == stream[:batches]
    # the loader prefetches ahead of training; checkpoints record the batches actually trained on
    for step, consumed in consumed_at_step.items():
        ckpt = tmp_path / f"step={step}.ckpt"
        state = torch.load(ckpt, weights_only=False)["MultilingualCorpusDataModule"]
        assert state["consumed_batches"] == consumed
        resumed = _Recorder()
        trainer = _trainer(tmp_path / "resumed", False, accumulate, max_steps)
        trainer.fit(resumed, datamodule=make(root), ckpt_path=ckpt)
        assert resumed.seen == full.seen[consumed:]


def test_resume_state_without_trainer(root: Path, dm) -> None:
    module = make(root, steps_per_epoch=5)
    loader = module.train_dataloader()
    it = iter(loader)
    first = [next(it) for _ in range(2)]
    state = module.state_dict()
    assert state["consumed_batches"] == 2
    rest = list(it)
    resumed = make(root, steps_per_epoch=5)
    resumed.load_state_dict(state)
    again = list(resumed.train_dataloader())
    assert len(first) + len(again) == 5
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(rest, again, strict=True))
    pending = make(root, seed=1, steps_per_epoch=5)
    pending.load_state_dict(state)  # checked once the sampler exists
    with pytest.raises(XltError, match="does not match this run: seed 0 vs 1"):
        pending.setup("fit")
    other_epochs = make(root, steps_per_epoch=6)
    other_epochs.setup("fit")
    with pytest.raises(XltError, match="batch_size×world_size=4 and steps_per_epoch=5"):
        other_epochs.load_state_dict(state)
    bad = make(root, seed=1, steps_per_epoch=5)
    bad.setup("fit")
    with pytest.raises(XltError, match="does not match this run: seed 0 vs 1"):
        bad.load_state_dict(state)


def test_workers_serve_the_same_batches(root: Path, dm) -> None:
    serial = list(make(root).train_dataloader())
    parallel = list(make(root, num_workers=2).train_dataloader())
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(serial, parallel, strict=True))
    assert len(parallel) == 3


def test_hub_datasets_share_the_code_path(root: Path, dm, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import datasets

    calls = []

    def fake_hub(dataset_id, config, split, cache_dir):
        calls.append((dataset_id, config, split))
        code = config.split(".")[1]
        lines = (root / "text" / f"{code}.txt").read_text(encoding="utf-8").splitlines()
        return datasets.Dataset.from_dict({"sentence": lines, "id": list(range(len(lines)))})

    monkeypatch.setattr(sources, "_load_hub_dataset", fake_hub)
    hub = make(root, corpus=HubText("org/cc", config="wiki.{code}", column="sentence"),
               tokenizer=dm.tokenizer_dir, cache_dir=str(tmp_path / "c"), languages=["eng", "hin"])
    hub.prepare_data()
    hub.setup("fit")
    assert calls == [("org/cc", "wiki.eng", "train"), ("org/cc", "wiki.hin", "train")]
    # same text and tokenizer -> the same blocks as the local-file source
    for li, code in enumerate(hub.language_codes):
        local = dm._blocks.paths[dm.language_codes.index(code)]
        assert np.array_equal(np.load(hub._blocks.paths[li]), np.load(local))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"languages": ["eng", "xyz"]}, "unknown language code 'xyz' for panel 'tiny'"),
    ({"languages": ["eng", "ara"]}, r"corpus file .*ara\.txt for language 'ara' not found"),
    ({"oversampling": {"hin": 0.0}}, "oversampling factor for 'hin' is 0.0"),
    ({"oversampling": {"tail": -1}}, "oversampling factor for 'tail' is -1"),
    ({"oversampling": {"fra": 2.0}}, "oversampling key 'fra'"),
    ({"block_size": 4}, "block_size 4 is too small"),
    ({"corpus": "/nonexistent/corpus"}, "corpus directory /nonexistent/corpus not found"),
    ({"tokenizer": "/nonexistent/tok"}, "tokenizer directory /nonexistent/tok has no"),
    ({"panel": "/nonexistent/panel.yaml"}, "panel file /nonexistent/panel.yaml not found"),
])
def test_bad_input_is_one_line_error(root: Path, overrides: dict, message: str) -> None:
    with pytest.raises(XltError, match=message) as info:
        make(root, **overrides)
    assert "\n" not in str(info.value)


def test_bad_corpus_files(root: Path, dm, tmp_path: Path) -> None:
    text = tmp_path / "text"
    shutil.copytree(root / "text", text)
    (text / "ara.txt").write_text("  \n\n", encoding="utf-8")
    with pytest.raises(XltError, match=r"ara\.txt for language 'ara' is empty"):
        make(root, corpus=str(text), cache_dir=str(tmp_path / "c"), tokenizer=dm.tokenizer_dir).prepare_data()
    (text / "ara.txt").write_bytes("سلام\n".encode() + b"\xff\xfe\n")
    with pytest.raises(XltError, match=r"ara\.txt line 2 is not valid UTF-8"):
        make(root, corpus=str(text), cache_dir=str(tmp_path / "c"), tokenizer=dm.tokenizer_dir).prepare_data()
    with pytest.raises(XltError, match="has only .* blocks .* need more than val_blocks_per_language=100000"):
        make(root, val_blocks_per_language=100_000).setup("fit")


def test_synthetic_panel_integration(synthetic_dir: Path, tmp_path: Path) -> None:
    panel = load_panel(synthetic_dir / "panel.yaml")
    module = MultilingualCorpusDataModule(
        corpus=SyntheticPanel(scale=0.05), panel=str(synthetic_dir / "panel.yaml"),
        tokenizer_vocab_size=1000, block_size=32, batch_size=8, val_blocks_per_language=2,
        cache_dir=str(tmp_path), steps_per_epoch=2)
    shutil.copytree(synthetic_dir, module.corpus.panel_dir)  # as if generated by prepare_data (saves time)
    module.prepare_data()
    module.setup("fit")
    assert module.language_codes == panel.codes
    assert set(module.num_blocks) == set(panel.codes) and min(module.num_blocks.values()) > 2
    batch = next(iter(module.train_dataloader()))
    assert batch["input_ids"].shape == (8, 32) and int(batch["lang"].max()) < len(panel.codes)
    tok = XltTokenizer.load(module.tokenizer_dir)
    assert tok.vocab_size == 1002 and tok.manifest["languages"] == panel.codes


def test_corpus_directory_carries_its_panel(root: Path, synthetic_dir: Path, tmp_path: Path) -> None:
    """No panel given: the corpus directory's panel.yaml (an `xlt synth` output, from its `mlm/` folder too),
    else the synthetic panel; an explicit panel always wins."""
    common = {"tokenizer_vocab_size": 360, "cache_dir": str(tmp_path / "cache")}
    synth = load_panel(synthetic_dir / "panel.yaml")
    for corpus in (str(synthetic_dir), str(synthetic_dir / "mlm"), TextDirectory(str(synthetic_dir / "mlm"))):
        module = MultilingualCorpusDataModule(corpus=corpus, **common)
        assert module.panel.codes == synth.codes == module.language_codes, corpus
    own = tmp_path / "own"
    shutil.copytree(root / "text", own / "text")
    (own / "panel.yaml").write_text(yaml.safe_dump(PANEL), encoding="utf-8")
    carried = MultilingualCorpusDataModule(corpus=str(own / "text"), **common)
    assert carried.panel.name == "tiny" and carried.language_codes == ["eng", "rus", "hin"]
    explicit = MultilingualCorpusDataModule(corpus=str(own / "text"), panel=str(root / "tiny.yaml"), **common)
    assert explicit.panel.name == "tiny"
    with pytest.raises(XltError, match="no <code>.txt file for any language of panel 'synthetic'"):
        MultilingualCorpusDataModule(corpus=str(own / "text"), panel="synthetic", **common)
    with pytest.raises(XltError, match="no <code>.txt file for any language of panel 'synthetic'"):
        MultilingualCorpusDataModule(corpus=str(root / "text"), **common)  # no panel.yaml: synthetic, as before
