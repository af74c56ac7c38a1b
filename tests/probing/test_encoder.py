"""Encoders for probing: an MLM checkpoint of `xlt fit` and its export give the same hidden states."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from xlt.errors import XltError
from xlt.models.mlm import MLMPretraining
from xlt.probing.encoder import load_encoder
from xlt.probing.features import word_features

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 66}


def test_checkpoint_and_export_load_the_same_encoder(tmp_path: Path, tiny_tokenizer_dir: Path) -> None:
    ids = torch.randint(4, 1000, (8, 16), generator=torch.Generator().manual_seed(0))
    module = MLMPretraining(tokenizer=str(tiny_tokenizer_dir), config=dict(TINY), seed=3, warmup_steps=1,
                            export_dir=str(tmp_path / "export"))
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=2, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(module, DataLoader([{"input_ids": i, "lang": torch.tensor(0)} for i in ids], batch_size=4))
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    from_checkpoint = load_encoder(str(tmp_path / "last.ckpt"))
    from_export = load_encoder(str(tmp_path / "export"))
    assert from_checkpoint.num_layers == from_export.num_layers == 2 and from_checkpoint.max_tokens == 64
    sentences = [["some", "words", "here"], ["and", "more"]]
    a = word_features(from_checkpoint, sentences, [0, 1, 2]).layers
    b = word_features(from_export, sentences, [0, 1, 2]).layers
    assert torch.allclose(a, b, atol=1e-5)
    assert not any(m.training for m in from_checkpoint.model.modules())  # probing reads the model in eval mode


def test_missing_encoders_are_named(tmp_path: Path) -> None:
    with pytest.raises(XltError, match="checkpoint .* not found"):
        load_encoder(str(tmp_path / "nope.ckpt"))
    with pytest.raises(XltError, match="not found"):
        load_encoder(str(tmp_path / "no_export"))
