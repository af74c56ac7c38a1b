"""Dropout is on while training and off while evaluating, also for encoders loaded with ``from_pretrained``.

``from_pretrained`` returns a model in eval mode and Lightning 2.6 keeps submodule modes, so without the fix in
``xlt.models.encoder.in_train_mode`` a model fine-tuned from an export (or an MLM run from a path) trains with
every dropout module off.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForMaskedLM

from xlt.datamodules.udpos import UDPOSDataModule
from xlt.models.encoder import build_masked_lm
from xlt.models.token_classification import TokenClassification

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=130, vocab_size=1002, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def _dropout_modes(module: nn.Module) -> set[bool]:
    return {m.training for m in module.modules() if isinstance(m, nn.Dropout)}


def _export(path: Path) -> Path:
    torch.manual_seed(0)
    AutoModelForMaskedLM.from_config(AutoConfig.for_model("xlm-roberta", **TINY)).save_pretrained(path)
    return path


class RecordingTokenClassification(TokenClassification):
    """Records the dropout modes seen in each step kind."""

    seen: dict[str, set[bool]]

    def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201 - Lightning's signature
        self.seen.setdefault("train", set()).update(_dropout_modes(self.model))
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        self.seen.setdefault("val", set()).update(_dropout_modes(self.model))
        return super().validation_step(batch, batch_idx)

    def test_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        self.seen.setdefault("test", set()).update(_dropout_modes(self.model))
        return super().test_step(batch, batch_idx)


def test_task_model_from_an_export_trains_with_dropout_and_evaluates_without(
        synthetic_dir: Path, tiny_tokenizer_dir: Path, tmp_path: Path) -> None:
    export = _export(tmp_path / "mlm-export")
    dm = UDPOSDataModule(data=str(synthetic_dir / "ud"), tokenizer=str(tiny_tokenizer_dir), panel="synthetic",
                         train_languages=["qaa"], eval_languages=["qaa"], max_length=64, batch_size=8)
    model = RecordingTokenClassification(encoder=str(export), n_boot=10, export_dir=str(tmp_path / "export"))
    model.seen = {}
    trainer = pl.Trainer(max_steps=3, limit_val_batches=1, limit_test_batches=1, val_check_interval=2,
                         accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, dm)
    trainer.test(model, dm, verbose=False)
    assert model.seen["train"] == {True}  # every dropout module of the loaded encoder and the new head
    assert model.seen["val"] == {False}
    assert model.seen["test"] == {False}


def test_masked_lm_built_from_a_path_is_in_train_mode(tmp_path: Path) -> None:
    model = build_masked_lm(str(_export(tmp_path / "mlm-export")))
    assert _dropout_modes(model) == {True}
    assert all(module.training for module in model.modules())
