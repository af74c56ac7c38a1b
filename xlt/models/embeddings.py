"""Embeddings for language-specific vocabulary blocks (configuration d): sizing, initialisation, isolation.

* **Sizing**: the word-embedding matrix (tied to the MLM decoder) has one row per global tokenizer id:
  the shared vocabulary, then each designated language's block (``XltTokenizer.blocks``).
* **Initialisation**: a block row starts as the mean of the rows of its piece's segmentation into shared
  pieces (``XltTokenizer.block_piece_segmentations``), for the input embedding, an untied output embedding
  and the output bias alike — not randomly. :func:`build_masked_lm_for_vocabulary` does this for a fresh
  model and for **vocabulary extension**: a checkpoint whose vocabulary is the tokenizer's shared vocabulary
  is loaded, resized to the global size, and only the new block rows are initialised.
* **Isolation** ("optimised only by their language's text"): a language's block ids occur only in its own
  text (the tokenizer routes by language; random replacements during masking are drawn from shared ids) and
  :meth:`VocabularyLayout.restrict_logits` limits the masked-LM softmax of a row in language ``L`` to the
  shared ids plus ``L``'s block (shared ids only for other languages). With tied embeddings a full softmax
  would push every block row down as a negative for every language's text; restricted, a block row's
  gradient is exactly zero on other languages' batches.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PretrainedConfig, PreTrainedModel

from xlt.errors import XltError
from xlt.models.encoder import build_config, build_masked_lm, is_model_type


@dataclass
class VocabularyLayout:
    """Where each language's block sits in the global vocabulary.

    Args:
        shared_size: Ids of the shared vocabulary (``[0, shared_size)``).
        vocab_size: Global number of ids.
        blocks: Designated language -> ``(start, stop)`` global id range of its block.
    """

    shared_size: int
    vocab_size: int
    blocks: dict[str, tuple[int, int]] = field(default_factory=dict)
    _ranges: dict[tuple[tuple[str, ...], torch.device], torch.Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> VocabularyLayout:
        """The layout of an :class:`~xlt.tokenization.tokenizer.XltTokenizer`."""
        return cls(int(tokenizer.shared_vocab_size), int(tokenizer.vocab_size), dict(tokenizer.blocks))

    def allowed_ids(self, lang: str | None) -> torch.Tensor:
        """The ids a masked-LM prediction for text in ``lang`` ranges over (shared + ``lang``'s block)."""
        ids = torch.arange(self.shared_size)
        if lang in self.blocks:
            start, stop = self.blocks[lang]
            ids = torch.cat([ids, torch.arange(start, stop)])
        return ids

    def _block_ranges(self, languages: Sequence[str], device: torch.device) -> torch.Tensor:
        """``[len(languages), 2]`` block ranges relative to ``shared_size`` (``(0, 0)`` = no block)."""
        key = (tuple(languages), device)
        if key not in self._ranges:
            empty = (self.shared_size, self.shared_size)
            rows = [[start - self.shared_size, stop - self.shared_size]
                    for start, stop in (self.blocks.get(code, empty) for code in languages)]
            self._ranges[key] = torch.tensor(rows, dtype=torch.long, device=device).reshape(-1, 2)
        return self._ranges[key]

    def restrict_logits(self, logits: torch.Tensor, row_langs: torch.Tensor, languages: Sequence[str]) -> torch.Tensor:
        """Logits ``[N, V]`` with every block column outside the row's own language's block set to ``-inf``.

        Args:
            logits: Masked-LM logits over the global vocabulary.
            row_langs: ``[N]`` index into ``languages`` of each row's language.
            languages: Language codes of the indices (the batches' ``lang`` order).
        """
        if not self.blocks or logits.shape[-1] <= self.shared_size:
            return logits
        ranges = self._block_ranges(languages, logits.device)[row_langs]
        block = logits[:, self.shared_size:]
        column = torch.arange(block.shape[1], device=logits.device)
        keep = (column >= ranges[:, :1]) & (column < ranges[:, 1:])
        return torch.cat([logits[:, :self.shared_size], block.masked_fill(~keep, float("-inf"))], dim=1)


def _segmentation_bags(tokenizer: Any, rows: range | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(block ids, flat shared ids, offsets) of every block piece's shared segmentation, as an EmbeddingBag."""
    targets, flat, offsets = [], [], []
    for code in tokenizer.blocks:
        for token_id, parts in tokenizer.block_piece_segmentations(code).items():
            if rows is not None and token_id not in rows:
                continue
            targets.append(token_id)
            offsets.append(len(flat))
            flat.extend(parts)
    return (torch.tensor(targets, dtype=torch.long), torch.tensor(flat, dtype=torch.long),
            torch.tensor(offsets, dtype=torch.long))


@torch.no_grad()
def init_block_embeddings(model: PreTrainedModel, tokenizer: Any, rows: range | None = None) -> int:
    """Set each block row to the mean of the rows of its shared-piece segmentation; returns rows set.

    Covers the input embedding, the output embedding when it is not tied to it, and the output bias.

    Args:
        model: A masked-LM model whose vocabulary is the tokenizer's global vocabulary.
        tokenizer: An ``XltTokenizer`` with blocks.
        rows: Only initialise block ids in this range (default: every block row).
    """
    targets, flat, offsets = _segmentation_bags(tokenizer, rows)
    if targets.numel() == 0:
        return 0
    matrices = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None and output.weight is not matrices[0]:
        matrices.append(output.weight)
    bias = getattr(output, "bias", None) if output is not None else None
    for matrix in matrices:
        if matrix.shape[0] < tokenizer.vocab_size:
            raise ValueError(f"embedding has {matrix.shape[0]} rows, the tokenizer {tokenizer.vocab_size} ids")
        device = matrix.device
        means = F.embedding_bag(flat.to(device), matrix, offsets.to(device), mode="mean")
        matrix[targets.to(device)] = means.to(matrix.dtype)
    if isinstance(bias, torch.Tensor):
        device = bias.device
        means = F.embedding_bag(flat.to(device), bias[:, None], offsets.to(device), mode="mean")[:, 0]
        bias[targets.to(device)] = means.to(bias.dtype)
    return int(targets.numel())


def extend_vocabulary(model: PreTrainedModel, tokenizer: Any) -> PreTrainedModel:
    """Grow a model trained on the shared vocabulary to the tokenizer's global vocabulary.

    The shared rows are kept bit for bit; the new block rows are initialised from their segmentation
    (:func:`init_block_embeddings`). Tied input/output embeddings stay tied.
    """
    old = model.get_input_embeddings().weight.shape[0]
    if old != tokenizer.shared_vocab_size:
        raise XltError(f"checkpoint vocabulary has {old} rows but the tokenizer's shared vocabulary has "
                       f"{tokenizer.shared_vocab_size} ids — extend a checkpoint trained with the tokenizer's "
                       "shared model (fit lang_specific with base_tokenizer set to that tokenizer)")
    model.resize_token_embeddings(tokenizer.vocab_size, mean_resizing=False)
    init_block_embeddings(model, tokenizer, range(old, tokenizer.vocab_size))
    return model


def build_masked_lm_for_vocabulary(encoder: str, config: PretrainedConfig, tokenizer: Any | None) -> PreTrainedModel:
    """Build the masked-LM model for a tokenizer with language blocks (plain :func:`build_masked_lm` otherwise).

    * a model type (random initialisation): block rows = mean of their shared segmentation's rows;
    * a checkpoint with the global vocabulary (e.g. an exported configuration-d model): loaded as is;
    * a checkpoint with the shared vocabulary only: loaded, then extended (:func:`extend_vocabulary`).

    On the ``meta`` device (planning) nothing is initialised.
    """
    if tokenizer is None or not tokenizer.blocks:
        return build_masked_lm(encoder, config)
    meta = torch.get_default_device().type == "meta"
    if is_model_type(encoder) or meta:
        model = build_masked_lm(encoder, config)
        if not meta and is_model_type(encoder):
            init_block_embeddings(model, tokenizer)
        return model
    stored = int(build_config(encoder).vocab_size)
    if stored == config.vocab_size:
        return build_masked_lm(encoder, config)
    base = copy.deepcopy(config)
    base.vocab_size = stored
    return extend_vocabulary(build_masked_lm(encoder, base), tokenizer)
