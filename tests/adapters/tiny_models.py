"""Tiny BERT / XLM-R masked-LM models (hidden 32, 2 layers, no dropout) for the adapter tests."""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForMaskedLM, PreTrainedModel

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "vocab_size": 100, "max_position_embeddings": 40, "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0}
LANGUAGES = ["qaa", "qab", "qac"]


def build_tiny(model_type: str = "xlm-roberta", seed: int = 0, auto_class=AutoModelForMaskedLM,
               **overrides) -> PreTrainedModel:
    """A seeded tiny model of ``model_type`` in eval mode."""
    torch.manual_seed(seed)
    return auto_class.from_config(AutoConfig.for_model(model_type, **{**TINY, **overrides})).eval()


def token_ids(batch: int = 4, length: int = 10, seed: int = 1) -> torch.Tensor:
    """Random non-special token ids ``[batch, length]``."""
    return torch.randint(5, TINY["vocab_size"] - 1, (batch, length), generator=torch.Generator().manual_seed(seed))


def randomise_adapters(model: torch.nn.Module, seed: int = 2, scale: float = 0.3) -> None:
    """Give every adapter parameter random values (fresh adapters are the identity, which would hide routing)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "xlt_adapters." in name or "xlt_invertible." in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
