"""MLMPretraining: masked-only loss equals HF, seeding and exact resume, schedule, metrics, export, errors."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader
from transformers import AutoModelForMaskedLM

from xlt.errors import XltError
from xlt.models.masking import IGNORE_INDEX
from xlt.models.mlm import MLMPretraining
from xlt.models.optimization import lr_factor
from xlt.seeding import derive_seed

VOCAB = 64
TINY = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=34,
)
BLOCK = 16


def tiny_module(**kwargs) -> MLMPretraining:
    kwargs.setdefault("config", dict(TINY))
    kwargs.setdefault("seed", 3)
    return MLMPretraining(**kwargs)


def blocks(n: int, langs: int = 1, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Packed blocks of non-special ids (4 .. VOCAB-2), as the corpus DataModule yields them."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, VOCAB - 1, (n, BLOCK), generator=g)
    return [{"input_ids": ids[i], "lang": torch.tensor(i % langs)} for i in range(n)]


def loader(items: list[dict[str, torch.Tensor]], batch_size: int = 2) -> DataLoader:
    return DataLoader(items, batch_size=batch_size, shuffle=False)


def trainer(tmp_path: Path, **kwargs) -> pl.Trainer:
    kwargs.setdefault("max_steps", 6)
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        **kwargs,
    )


# ------------------------------------------------------------------------------------------------ the loss
@pytest.mark.parametrize("encoder", ["xlm-roberta", "bert"])
def test_masked_only_loss_and_gradients_equal_hf_full_forward(encoder: str) -> None:
    module = tiny_module(encoder=encoder)
    module.configure_model()
    module.eval()
    ids = torch.stack([b["input_ids"] for b in blocks(4)])
    masked, labels = module.masker(ids, torch.Generator().manual_seed(0))
    assert 0 < (labels != IGNORE_INDEX).sum() < labels.numel()

    ours = module.mlm_loss(masked, labels)
    ours.backward()
    our_grads = {n: p.grad.clone() for n, p in module.model.named_parameters()}
    module.model.zero_grad()
    reference = module.model(input_ids=masked, labels=labels).loss
    reference.backward()
    assert abs(ours.item() - reference.item()) < 1e-5
    for name, parameter in module.model.named_parameters():
        assert torch.allclose(our_grads[name], parameter.grad, atol=1e-6), name


def test_head_sees_only_masked_rows() -> None:
    module = tiny_module()
    module.configure_model()
    seen: list[tuple[int, ...]] = []
    module.model.lm_head.register_forward_hook(lambda _m, args, _o: seen.append(tuple(args[0].shape)))
    ids = torch.stack([b["input_ids"] for b in blocks(3)])
    masked, labels = module.masker(ids, torch.Generator().manual_seed(1))
    module.mlm_loss(masked, labels)
    assert seen == [(int((labels != IGNORE_INDEX).sum()), TINY["hidden_size"])]


def test_batch_without_masked_tokens_gives_zero_loss_with_gradient_path() -> None:
    module = tiny_module()
    module.configure_model()
    ids = torch.stack([b["input_ids"] for b in blocks(2)])
    loss = module.mlm_loss(ids, torch.full_like(ids, IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0.0


# ---------------------------------------------------------------------------------------- construction
def test_construction_allocates_nothing_and_configure_model_is_idempotent() -> None:
    module = tiny_module()
    assert module.model is None and sum(p.numel() for p in module.parameters()) == 0
    module.configure_model()
    model = module.model
    module.configure_model()
    assert module.model is model
    expected = sum(p.numel() for p in AutoModelForMaskedLM.from_config(module.hf_config).parameters())
    assert sum(p.numel() for p in module.parameters()) == expected


def test_initialisation_depends_on_seed_only() -> None:
    a, b, c = tiny_module(seed=1), tiny_module(seed=1), tiny_module(seed=2)
    for module in (a, b, c):
        torch.manual_seed(len(str(module)))  # global state must not matter
        module.configure_model()
    wa, wb, wc = (m.model.roberta.embeddings.word_embeddings.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_meta_device_planning() -> None:
    module = tiny_module(config={**TINY, "vocab_size": 250_000, "hidden_size": 768, "num_attention_heads": 12})
    with torch.device("meta"):
        module.configure_model()
    assert module.model.roberta.embeddings.word_embeddings.weight.is_meta


def test_special_ids_from_config_layout_without_tokenizer() -> None:
    masker = tiny_module().masker
    assert (masker.vocab_size, masker.mask_id) == (VOCAB, VOCAB - 1)
    assert masker.special_ids == [0, 1, 2, 3, VOCAB - 1]  # <s> <pad> </s> (config) <unk> <mask>


def test_tokenizer_wins_over_config_vocab_size(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = SimpleNamespace(vocab_size=40, bos_id=0, pad_id=1, eos_id=2, unk_id=3, mask_id=39, special_ids=[0, 1, 2, 3])
    monkeypatch.setattr(MLMPretraining, "_load_tokenizer", lambda self: fake)
    module = tiny_module(tokenizer="tok")
    with pytest.warns(UserWarning, match="vocab_size=64 ignored"):
        config = module.hf_config
    assert (config.vocab_size, config.pad_token_id, config.bos_token_id, config.eos_token_id) == (40, 1, 0, 2)
    assert module.masker.special_ids == [0, 1, 2, 3, 39] and module.masker.mask_id == 39


def test_seed_falls_back_to_seed_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "17")
    assert tiny_module(seed=None).seed == 17
    assert tiny_module(seed=5).seed == 5
    monkeypatch.delenv("PL_GLOBAL_SEED")
    assert tiny_module(seed=None).seed == 0


@pytest.mark.parametrize(("block_size", "fails"), [(32, False), (33, True)])
def test_block_size_must_fit_positions(block_size: int, fails: bool) -> None:
    module = tiny_module()  # xlm-roberta, 34 positions -> 32 usable
    module._trainer = SimpleNamespace(datamodule=SimpleNamespace(block_size=block_size))
    if fails:
        message = "data.block_size 33 exceeds model positions 32 — lower data.block_size or raise model.config"
        with pytest.raises(XltError, match=message):
            module.setup("fit")
    else:
        module.setup("fit")


# ------------------------------------------------------------------------------------------ randomness
def test_training_step_randomness_depends_on_step_not_history() -> None:
    module = tiny_module()
    module.configure_model()
    module.train()  # dropout active
    module._trainer = None
    batch = {"input_ids": torch.stack([b["input_ids"] for b in blocks(2)])}

    losses = []
    for _ in range(2):
        torch.manual_seed(len(losses))  # disturb the global RNG between calls
        losses.append(module.training_step(batch, 0).item())
    assert losses[0] == losses[1]
    assert derive_seed("train", 3, 0, 0, 0) != derive_seed("train", 3, 1, 0, 0)
    assert derive_seed("train", 3, 0, 0, 0) != derive_seed("train", 3, 0, 1, 0)  # rank


def test_resumed_run_matches_uninterrupted_run_exactly(tmp_path: Path) -> None:
    # Every batch holds the same two blocks, so data order (the data module's job) cannot matter: what is
    # tested is that masking, dropout, optimizer and schedule state continue exactly after a resume.
    data = blocks(2) * 4  # 4 batches per epoch
    losses: dict[str, list[float]] = {"full": [], "resumed": []}

    class Record(pl.Callback):
        def __init__(self, key: str) -> None:
            self.key = key

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            losses[self.key].append(round(float(outputs["loss"]), 6))

    full = tiny_module(warmup_steps=2)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3, save_top_k=-1)
    run = trainer(tmp_path / "full", max_steps=7, enable_checkpointing=True, callbacks=[checkpoints, Record("full")])
    run.fit(full, loader(data))
    resumed = tiny_module(warmup_steps=2)
    again = trainer(tmp_path / "resumed", max_steps=7, callbacks=[Record("resumed")])
    torch.manual_seed(1234)  # a different global random state must not matter
    again.fit(resumed, loader(data), ckpt_path=tmp_path / "ckpt" / "epoch=0-step=3.ckpt")

    assert again.global_step == 7 and losses["resumed"] == losses["full"][3:]
    assert len(set(losses["full"])) == 7  # same batch, different masks and dropout at every step
    for name, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


# ------------------------------------------------------------------------------------ optimizer, schedule
def test_lr_factor_hand_values() -> None:
    linear = [lr_factor(s, 4, 10, "linear") for s in range(11)]
    expected = [0, 0.25, 0.5, 0.75, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0]
    assert linear == pytest.approx(expected)
    assert lr_factor(7, 4, 10, "cosine") == pytest.approx(0.5)  # half way through the decay
    assert lr_factor(5, 4, 10, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 6)))
    assert lr_factor(10, 4, 10, "cosine") == pytest.approx(0.0)
    assert [lr_factor(s, 2, 10, "constant") for s in (0, 1, 2, 9)] == [0, 0.5, 1, 1]


def test_trainer_steps_schedule_per_step_and_no_decay_on_bias_and_layernorm(tmp_path: Path) -> None:
    lrs: list[float] = []

    class RecordLR(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    module = tiny_module(lr=1e-3, warmup_steps=4, schedule="linear")
    t = trainer(tmp_path, max_steps=10, callbacks=[RecordLR()])
    t.fit(module, loader(blocks(6)))
    assert lrs == pytest.approx([1e-3 * f for f in [0, 0.25, 0.5, 0.75, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]])
    assert math.isfinite(t.callback_metrics["train/mlm/loss"].item())

    decay, no_decay = t.optimizers[0].param_groups
    names = {id(p): n for n, p in module.model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(not n.endswith("bias") and "LayerNorm" not in n for n in (names[id(p)] for p in decay["params"]))
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert "roberta.encoder.layer.0.attention.self.query.bias" in no_decay_names
    assert "roberta.embeddings.LayerNorm.weight" in no_decay_names and "lm_head.layer_norm.weight" in no_decay_names
    everything = decay["params"] + no_decay["params"]
    assert len({id(p) for p in everything}) == len(everything) == len(list(module.model.parameters()))


def test_decaying_schedule_needs_known_length(tmp_path: Path) -> None:
    module = tiny_module()
    module._trainer = SimpleNamespace(estimated_stepping_batches=float("inf"))
    module.configure_model()
    with pytest.raises(XltError, match="model.schedule=linear needs a known number of steps"):
        module.configure_optimizers()
    constant = tiny_module(schedule="constant")
    constant._trainer = SimpleNamespace(estimated_stepping_batches=float("inf"))
    constant.configure_model()
    assert constant.configure_optimizers()["lr_scheduler"]["interval"] == "step"


# ------------------------------------------------------------------------------------------- validation
def test_validation_reports_token_weighted_loss_per_language_identically_each_time(tmp_path: Path) -> None:
    data = blocks(5, langs=2)  # batches of 2: languages [0,1], [0,1], [0]
    module = tiny_module(languages=["qaa", "qab"])
    t = trainer(tmp_path)
    first = t.validate(module, loader(data), verbose=False)[0]
    second = t.validate(module, loader(data), verbose=False)[0]
    assert first == second

    # hand aggregation: sum of per-token losses / number of masked tokens, per language, over all batches
    module.eval()
    sums, counts = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        for batch_idx, batch in enumerate(loader(data)):
            g = torch.Generator().manual_seed(derive_seed("val", 3, 0, batch_idx, 0))
            masked, labels = module.masker(batch["input_ids"], g)
            for row in range(len(masked)):
                losses, _ = module.masked_token_losses(masked, labels)
                per_row = (labels != IGNORE_INDEX).sum(1).tolist()
                start = sum(per_row[:row])
                lang = int(batch["lang"][row])
                sums[lang] += losses[start : start + per_row[row]].double().sum()
                counts[lang] += per_row[row]
    loss = (sums / counts).tolist()
    assert first["val/mlm/loss/qaa"] == pytest.approx(loss[0], rel=1e-5)
    assert first["val/mlm/loss/qab"] == pytest.approx(loss[1], rel=1e-5)
    assert first["val/mlm/ppl/qab"] == pytest.approx(math.exp(loss[1]), rel=1e-5)
    assert first["val/mlm/loss/macro"] == pytest.approx((loss[0] + loss[1]) / 2, rel=1e-5)
    assert first["val/mlm/ppl/macro"] == pytest.approx((math.exp(loss[0]) + math.exp(loss[1])) / 2, rel=1e-5)
    assert set(first) == {f"val/mlm/{m}/{g}" for m in ("loss", "ppl") for g in ("qaa", "qab", "macro")}


# ------------------------------------------------------------------------------------------------ export
def test_export_at_fit_end_reloads_with_same_logits(tmp_path: Path) -> None:
    module = tiny_module()
    run = trainer(tmp_path, max_steps=2)
    run.fit(module, loader(blocks(4)))
    run.save_checkpoint(tmp_path / "last.ckpt")
    restored = MLMPretraining.load_from_checkpoint(tmp_path / "last.ckpt")  # rebuilds via configure_model
    for name, value in module.model.state_dict().items():
        assert torch.equal(value, restored.model.state_dict()[name]), name
    export = tmp_path / "export"  # default: <default_root_dir>/export
    assert (export / "config.json").is_file()
    reloaded = AutoModelForMaskedLM.from_pretrained(export).eval()
    module.model.eval()
    ids = torch.stack([b["input_ids"] for b in blocks(2, seed=9)])
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).logits, module.model(input_ids=ids).logits, atol=1e-6)
    assert not any(p.name.startswith(".export") for p in tmp_path.iterdir())  # no temporary left behind


def test_with_real_tokenizer_exports_tokenizer_files(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from xlt.tokenization.tokenizer import XltTokenizer

    tok_dir = request.getfixturevalue("tiny_tokenizer_dir")
    tok = XltTokenizer.load(tok_dir)
    module = tiny_module(tokenizer=str(tok_dir), export_dir=str(tmp_path / "out"))
    assert module.hf_config.vocab_size == tok.vocab_size  # tokenizer wins over config vocab_size=64
    assert module.masker.mask_id == tok.mask_id and tok.pad_id in module.masker.special_ids
    ids = [i for s in tok.encode(["a b c d e f g h i j k l m n o p"] * 8) for i in s][: 4 * BLOCK]
    ids = torch.tensor(ids + [tok.unk_id] * (4 * BLOCK - len(ids))).view(4, BLOCK)
    trainer(tmp_path, max_steps=1).fit(module, loader([{"input_ids": row} for row in ids]))
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert hf.mask_token_id == tok.mask_id and len(hf) == tok.vocab_size


def test_adapter_routed_losses_come_back_in_the_batch_order() -> None:
    """With language adapters, rows are sorted by language for the forward (sites slice, no gathers); the per-token
    losses come back in the batch's own order: each equals the row's loss alone through its own adapter."""
    from xlt.adapters.config import AdapterSetup

    module = tiny_module(languages=["qaa", "qab", "qac"], adapters=AdapterSetup(),
                         config={**TINY, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0})
    module.configure_model()
    module.model.eval()
    with torch.no_grad():
        for name, parameter in module.model.named_parameters():
            if "xlt_" in name:
                parameter.normal_(0, 0.3, generator=torch.Generator().manual_seed(len(name)))
    ids = torch.randint(4, VOCAB - 1, (6, BLOCK), generator=torch.Generator().manual_seed(0))
    labels = torch.where(torch.rand(6, BLOCK, generator=torch.Generator().manual_seed(1)) < 0.3, ids, IGNORE_INDEX)
    langs = torch.tensor([2, 0, 1, 0, 2, 1])
    losses, selected = module.masked_token_losses(ids, labels, langs=langs)
    alone = torch.cat([module.masked_token_losses(ids[i:i + 1], labels[i:i + 1], langs=langs[i:i + 1])[0]
                       for i in range(6)])
    assert torch.equal(selected, labels != IGNORE_INDEX)
    torch.testing.assert_close(losses, alone, rtol=0, atol=1e-5)
    all_qaa = module.masked_token_losses(ids, labels, langs=torch.zeros(6, dtype=torch.long))[0]
    assert (losses - all_qaa).abs().max() > 1e-3  # the languages' adapters differ
