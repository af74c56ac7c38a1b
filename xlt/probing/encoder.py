"""The encoder a probing round reads: a model returning all hidden states and its fast tokenizer.

``load_encoder`` accepts what users hand to xlt: an MLM checkpoint ``*.ckpt`` of ``xlt fit``
(:mod:`xlt.models.checkpoints`: ``weights_only``, xlt classes only), an export directory (``save_pretrained``
of the model and its tokenizer) or a hub id. The probes only read the base encoder (no LM head).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from xlt.errors import XltError


@dataclass
class ProbeEncoder:
    """A model and its tokenizer, as the feature extractor calls them.

    Attributes:
        model: called as ``model(input_ids=..., attention_mask=..., output_hidden_states=True)``; returns an
            object whose ``hidden_states`` holds ``num_layers + 1`` tensors ``[batch, tokens, hidden]``
            (embeddings first), as transformers encoders do.
        tokenizer: a fast tokenizer (``word_ids()`` maps sub-tokens to words, for SentencePiece and WordPiece).
        max_tokens: the longest input (special tokens included) the position embeddings take; longer
            sentences are skipped and counted, never truncated.
        num_layers: transformer layers (hidden states are indexed 0 = embeddings .. ``num_layers``).
        name: how reports name the encoder.
    """

    model: nn.Module
    tokenizer: Any
    max_tokens: int
    num_layers: int
    name: str = "encoder"

    def __post_init__(self) -> None:
        if not getattr(self.tokenizer, "is_fast", False):
            raise XltError(f"the tokenizer of {self.name} ({type(self.tokenizer).__name__}) is not a fast "
                           "tokenizer, so it has no word_ids() to map sub-tokens to words — save the encoder "
                           "with a tokenizer.json (a transformers fast tokenizer)")

    def check_layers(self, layers: list[int] | None) -> list[int]:
        """The hidden-state indices to keep (all by default); an index beyond the model is an XltError."""
        if layers is None:
            return list(range(self.num_layers + 1))
        bad = [layer for layer in layers if not 0 <= int(layer) <= self.num_layers]
        if bad:
            raise XltError(f"layers {bad} out of range for {self.name}: it has {self.num_layers} layers, so "
                           f"indices run 0 (embeddings) .. {self.num_layers}")
        return sorted({int(layer) for layer in layers})

    @classmethod
    def from_pretrained_model(cls, model: Any, tokenizer: Any, name: str = "encoder",
                              whole: bool = False) -> ProbeEncoder:
        """A transformers model (masked-LM or base) and its tokenizer.

        Args:
            model: the model; its ``base_model`` is called (no LM head) unless ``whole``.
            tokenizer: its fast tokenizer.
            name: how messages name the encoder.
            whole: call the model itself: an FSDP2-sharded model must be entered through its root module, whose
                hooks gather the root's parameters (the embeddings) on every rank.
        """
        from xlt.models.encoder import usable_positions

        base = getattr(model, "base_model", model)
        return cls(model if whole else base, tokenizer, usable_positions(base.config),
                   int(base.config.num_hidden_layers), name)


def load_encoder(encoder: str, tokenizer: str | None = None) -> ProbeEncoder:
    """Load an encoder for probing (eval mode, CPU).

    Args:
        encoder: an MLM checkpoint ``*.ckpt`` of ``xlt fit``, an export directory or a hub id.
        tokenizer: the tokenizer (a directory with ``tokenizer.json``, an xlt tokenizer directory or a hub
            id); default: the encoder's own (the export directory, the checkpoint's ``tokenizer``).

    Raises:
        XltError: a missing path, a checkpoint that is not an MLM checkpoint, a tokenizer that is not fast.
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    from xlt.hub import require_local_or_hub
    from xlt.progress import quiet_progress_bars

    path = Path(encoder)
    with quiet_progress_bars():
        if path.suffix == ".ckpt":
            model, recorded_tokenizer = _from_checkpoint(path)
            tokenizer = tokenizer or recorded_tokenizer
            if tokenizer is None:
                raise XltError(f"encoder checkpoint {encoder} records no tokenizer — pass --tokenizer <dir>")
        else:
            require_local_or_hub(encoder, "encoder")
            verbosity = transformers_logging.get_verbosity()
            # an MLM export loads as its base model: the LM head it drops is expected, not worth a load report
            transformers_logging.set_verbosity_error()
            try:
                model = AutoModel.from_pretrained(encoder)
            except (OSError, ValueError) as error:
                raise XltError(f"encoder {encoder} cannot be loaded ({str(error).splitlines()[0][:160]}) — give "
                               "an export directory, a hub id or an MLM *.ckpt of `xlt fit`") from None
            finally:
                transformers_logging.set_verbosity(verbosity)
        tok = _load_tokenizer(tokenizer or encoder, AutoTokenizer)
    return ProbeEncoder.from_pretrained_model(model.eval(), tok, name=str(encoder))


def _load_tokenizer(source: str, auto_tokenizer: Any) -> Any:
    from xlt.tokenization.tokenizer import MODEL_FILE, XltTokenizer

    if (Path(source) / MODEL_FILE).is_file() and not (Path(source) / "tokenizer.json").is_file():
        return XltTokenizer.load(source).to_hf()  # an xlt tokenizer directory (checkpoints record these)
    try:
        return auto_tokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise XltError(f"tokenizer {source} cannot be loaded ({str(error).splitlines()[0][:160]}) — give a "
                       "directory with tokenizer.json or pass --tokenizer") from None


def _from_checkpoint(path: Path) -> tuple[Any, str | None]:
    """The masked-LM model of an MLMPretraining checkpoint and the tokenizer directory it records."""
    from xlt.models.checkpoints import mlm_checkpoint

    module, state = mlm_checkpoint(path, "encoder")
    module.configure_model()
    module.load_state_dict(state)
    return module.model, module.tokenizer_dir
