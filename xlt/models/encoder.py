"""Encoder construction: transformers config (from a model type or a checkpoint), masked-LM model, shape.

``encoder`` is either a model type registered in transformers (``xlm-roberta``, ``bert``, ``roberta``
...), which gives a randomly initialised model from ``AutoConfig.for_model(type, **overrides)``, or a local
directory / hub id, which gives ``from_pretrained`` (overrides applied on top of the stored config).

Models are built on the current default device, so ``with torch.device("meta"): build_masked_lm(...)`` plans a
model of any size without allocating its weights; :func:`count_parameters` works on such a model.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForMaskedLM, PretrainedConfig, PreTrainedModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from xlt.errors import XltError
from xlt.hub import require_local_or_hub

# Model types whose position ids start after the padding index (fairseq convention): usable positions are
# max_position_embeddings - pad_token_id - 1 (514 - 1 - 1 = 512 for XLM-R).
_PADDING_OFFSET_POSITIONS = frozenset(
    {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm", "data2vec-text", "xmod"}
)


def is_model_type(encoder: str) -> bool:
    """True if ``encoder`` names a model type registered in transformers (random initialisation)."""
    return encoder in CONFIG_MAPPING


def build_config(encoder: str, overrides: dict[str, Any] | None = None) -> PretrainedConfig:
    """Build the transformers config of an encoder.

    Args:
        encoder: A registered model type (``xlm-roberta``, ``bert`` ...) for a fresh config, or a local
            directory / hub id whose ``config.json`` is loaded.
        overrides: Config attributes to set (``num_hidden_layers``, ``hidden_size``, ``vocab_size`` ...).
            Unknown keys are an error, so a typo does not silently fall back to the default.

    Raises:
        XltError: unknown model type / missing checkpoint, or an override key the config does not have.
    """
    overrides = dict(overrides or {})
    if is_model_type(encoder):
        base = AutoConfig.for_model(encoder)
    else:
        require_local_or_hub(encoder, "model.encoder")
        try:
            base = AutoConfig.from_pretrained(encoder)
        except (OSError, ValueError) as error:
            kind = "directory" if Path(encoder).exists() else "model type, directory or hub id"
            known = ", ".join(difflib.get_close_matches(encoder, list(CONFIG_MAPPING.keys()), n=3)) or "xlm-roberta"
            raise XltError(
                f"model.encoder {encoder!r} is not a usable {kind} ({type(error).__name__}) — "
                f"use a transformers model type (e.g. {known}) or a directory with config.json"
            ) from error
    known_keys = set(base.to_dict())
    unknown = sorted(key for key in overrides if key not in known_keys)
    if unknown:
        hints = "; ".join(
            f"{key} (did you mean {', '.join(difflib.get_close_matches(key, known_keys, n=2)) or '?'})"
            for key in unknown
        )
        raise XltError(f"model.config has keys unknown to {base.model_type} configs: {hints} — fix or remove them")
    for key, value in overrides.items():
        setattr(base, key, value)
    return base


def build_masked_lm(
    encoder: str, config: PretrainedConfig | None = None, load_weights: bool | None = None
) -> PreTrainedModel:
    """Build the ``AutoModelForMaskedLM`` on the current default device.

    Args:
        encoder: As in :func:`build_config`.
        config: The config to use (default: ``build_config(encoder)``).
        load_weights: Load pretrained weights from ``encoder``. Default: true when ``encoder`` is a checkpoint
            (not a model type) and the default device is not ``meta``.
    """
    config = config if config is not None else build_config(encoder)
    if load_weights is None:
        load_weights = not is_model_type(encoder) and torch.get_default_device().type != "meta"
    if load_weights:
        return in_train_mode(AutoModelForMaskedLM.from_pretrained(encoder, config=config))
    return AutoModelForMaskedLM.from_config(config)


def in_train_mode(model: PreTrainedModel) -> PreTrainedModel:
    """``model`` with every submodule in training mode.

    ``from_pretrained`` returns a model in eval mode, and Lightning 2.6 keeps each submodule's mode when fitting
    starts, so a model loaded from a path would otherwise train with dropout off. Lightning itself switches to
    eval mode for validation and test and back afterwards.
    """
    return model.train()


def usable_positions(config: PretrainedConfig) -> int:
    """The longest input (tokens) the encoder's position embeddings can take.

    RoBERTa-family models number positions from ``pad_token_id + 1``, so they lose ``pad_token_id + 1`` rows.
    """
    positions = int(config.max_position_embeddings)
    if config.model_type in _PADDING_OFFSET_POSITIONS:
        positions -= int(config.pad_token_id if config.pad_token_id is not None else 1) + 1
    return positions


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer layers of a (masked-LM or base) model: the ModuleList of num_hidden_layers."""
    config = getattr(model, "config", None)
    expected = getattr(config, "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0 and (expected is None or len(module) == expected):
            return module
    raise TypeError(f"no stack of {expected} transformer layers found in {type(model).__name__}")


@dataclass(frozen=True)
class ParameterCount:
    """Unique parameters of a masked-LM model (tied weights counted once).

    Attributes:
        total: All parameters.
        embeddings: Input embeddings module (word + position + token type + LayerNorm).
        word_embeddings: The word embedding matrix alone (vocab x width; tied to the LM decoder).
        layers: Per transformer layer.
        head: The MLM head's own parameters (transform + output bias; the tied decoder is not counted again).
    """

    total: int
    embeddings: int
    word_embeddings: int
    layers: list[int] = field(default_factory=list)
    head: int = 0

    @property
    def non_embedding(self) -> int:
        """Parameters outside the input embeddings (used for FLOP estimates)."""
        return self.total - self.embeddings


def count_parameters(model: PreTrainedModel) -> ParameterCount:
    """Count a masked-LM model's unique parameters by part; works on a ``meta``-device model."""
    seen: set[int] = set()

    def unique(module: nn.Module) -> int:
        count = 0
        for parameter in module.parameters():
            if id(parameter) not in seen:
                seen.add(id(parameter))
                count += parameter.numel()
        return count

    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    base = model.base_model
    word = base.get_input_embeddings().weight.numel()
    embeddings = unique(base.embeddings)
    layers = [unique(layer) for layer in encoder_layers(base)]
    rest = total - embeddings - sum(layers)
    return ParameterCount(total=total, embeddings=embeddings, word_embeddings=word, layers=layers, head=rest)


@dataclass(frozen=True)
class EncoderShape:
    """The shape of an encoder, as in the paper's Table 1."""

    model_type: str
    layers: int
    width: int
    heads: int
    intermediate: int
    vocab: int
    positions: int

    def __str__(self) -> str:
        return (
            f"{self.model_type}: {self.layers} layers x d={self.width} ({self.heads} heads, "
            f"ffn {self.intermediate}), vocab {self.vocab}, {self.positions} positions"
        )


def describe(config: PretrainedConfig) -> EncoderShape:
    """The shape (layers, width, heads, FFN width, vocabulary, usable positions) of an encoder config."""
    return EncoderShape(
        model_type=config.model_type,
        layers=int(config.num_hidden_layers),
        width=int(config.hidden_size),
        heads=int(config.num_attention_heads),
        intermediate=int(config.intermediate_size),
        vocab=int(config.vocab_size),
        positions=usable_positions(config),
    )


def log_parameter_counts(module: Any) -> tuple[int, int]:
    """Print a LightningModule's trainable / total parameter counts (rank 0) and log them to its loggers as the
    params ``parameters/trainable``, ``parameters/total``; returns ``(trainable, total)``.

    The counts are unique parameters (tied weights once) at their full sizes, also when sharded, so frozen-base
    runs (language or task adapters) show what they train.
    """
    unique = {id(p): p for p in module.parameters()}.values()
    trainable = sum(p.numel() for p in unique if p.requires_grad)
    total = sum(p.numel() for p in unique)
    module.print(f"parameters: {trainable:,} trainable of {total:,} ({100.0 * trainable / max(total, 1):.2f}%)")
    for logger in module.loggers:
        logger.log_hyperparams({"parameters/trainable": trainable, "parameters/total": total})
    return trainable, total
