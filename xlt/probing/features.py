"""Features once per round: one no-grad forward pass, every hidden state, word and sentence vectors per layer.

Word vectors pool a word's sub-tokens (the first one, or their mean) through the fast tokenizer's ``word_ids()``,
which works alike for SentencePiece and WordPiece. Sentence vectors are the mean over a sentence's sub-tokens
(special tokens excluded). A sentence longer than the encoder's positions is skipped and counted — truncating it
would give its last words no vector, or a vector of a cut context.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from xlt.probing.encoder import ProbeEncoder

Pooling = Literal["first", "mean"]


@dataclass
class WordFeatures:
    """Word vectors of the kept sentences, for every selected layer.

    Attributes:
        layers: ``[n_layers, n_words, hidden]`` float32; words of sentence ``i`` are rows
            ``offsets[i]:offsets[i + 1]``.
        offsets: ``[n_kept + 1]`` word offsets.
        kept: indices (into the input sentences) of the kept sentences.
        skipped: input sentences skipped: longer than the encoder's positions, or a word without sub-tokens.
    """

    layers: torch.Tensor
    offsets: np.ndarray
    kept: np.ndarray
    skipped: int

    @property
    def lengths(self) -> np.ndarray:
        """Words per kept sentence."""
        return np.diff(self.offsets)


@dataclass
class SentenceFeatures:
    """Mean-pooled sentence vectors ``[n_layers, n_kept, hidden]`` of the kept sentences (see WordFeatures)."""

    layers: torch.Tensor
    kept: np.ndarray
    skipped: int


@contextmanager
def analysis_mode(model: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode (no dropout) for the analysis, each one's own mode restored afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Indices of inputs in batches of similar length (less padding), longest first."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def padded_batch(encoder: ProbeEncoder, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids padded with the tokenizer's pad id, and the attention mask, ``[batch, longest]`` each."""
    width = max(len(x) for x in ids)
    pad = encoder.tokenizer.pad_token_id if encoder.tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, :len(x)] = torch.tensor(x)
        mask[row, :len(x)] = 1
    return input_ids, mask


def _hidden_states(encoder: ProbeEncoder, ids: list[list[int]], layers: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n_layers, batch, tokens, hidden]`` hidden states of one padded batch, and its attention mask."""
    input_ids, mask = padded_batch(encoder, ids)
    device = model_device(encoder.model)
    with torch.no_grad():
        out = encoder.model(input_ids=input_ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
    states = torch.stack([out.hidden_states[layer] for layer in layers]).float().cpu()
    return states, mask


def word_features(encoder: ProbeEncoder, sentences: Sequence[Sequence[str]], layers: list[int],
                  pooling: Pooling = "first", batch_size: int = 32) -> WordFeatures:
    """Word vectors of ``sentences`` (lists of words) at hidden-state indices ``layers`` (0 = embeddings).

    Args:
        encoder: the model and its fast tokenizer.
        sentences: each a list of words (e.g. the FORM column of a CoNLL-U sentence).
        layers: hidden-state indices to keep (checked by :meth:`ProbeEncoder.check_layers`).
        pooling: ``first`` sub-token of each word, or the ``mean`` of its sub-tokens.
        batch_size: sentences per forward pass.
    """
    encoded = encoder.tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=True)
    usable = []
    for i, words in enumerate(sentences):
        word_ids = encoded.word_ids(i)
        covered = {w for w in word_ids if w is not None}
        if len(encoded["input_ids"][i]) <= encoder.max_tokens and len(covered) == len(words) and words:
            usable.append(i)
    lengths = [len(sentences[i]) for i in usable]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    where = {index: k for k, index in enumerate(usable)}
    out: torch.Tensor | None = None
    for batch in length_batches([len(encoded["input_ids"][usable[k]]) for k in range(len(usable))], batch_size):
        states, _ = _hidden_states(encoder, [encoded["input_ids"][usable[k]] for k in batch], layers)
        n_layers, rows, width, hidden = states.shape
        token_word = torch.full((rows, width), -1, dtype=torch.long)
        for row, k in enumerate(batch):
            base = int(offsets[where[usable[k]]])
            ids = [(-1 if w is None else base + w) for w in encoded.word_ids(usable[k])]
            token_word[row, :len(ids)] = torch.tensor(ids)
        if out is None:
            out = torch.zeros((n_layers, int(offsets[-1]), hidden), dtype=torch.float32)
        flat, word = states.reshape(n_layers, rows * width, hidden), token_word.reshape(-1)
        if pooling == "mean":
            valid = word >= 0
            out.index_add_(1, word[valid], flat[:, valid])
            counts = torch.bincount(word[valid], minlength=out.shape[1]).clamp(min=1)
            touched = torch.unique(word[valid])
            out[:, touched] /= counts[touched].unsqueeze(-1).float()
        else:
            previous = torch.cat([torch.full((rows, 1), -1, dtype=torch.long), token_word[:, :-1]], dim=1)
            first = ((token_word >= 0) & (token_word != previous)).reshape(-1)
            out[:, word[first]] = flat[:, first]
    if out is None:
        out = torch.zeros((len(layers), 0, 0))
    return WordFeatures(out, offsets, np.asarray(usable, dtype=np.int64), len(sentences) - len(usable))


def sentence_features(encoder: ProbeEncoder, texts: Sequence[str], layers: list[int],
                      batch_size: int = 32) -> SentenceFeatures:
    """Mean-pooled sentence vectors of raw ``texts`` (special tokens excluded) at hidden-state indices ``layers``."""
    encoded = encoder.tokenizer(list(texts), add_special_tokens=True, return_special_tokens_mask=True)
    usable = [i for i, ids in enumerate(encoded["input_ids"]) if len(ids) <= encoder.max_tokens
              and not all(encoded["special_tokens_mask"][i])]
    out: torch.Tensor | None = None
    for batch in length_batches([len(encoded["input_ids"][i]) for i in usable], batch_size):
        states, mask = _hidden_states(encoder, [encoded["input_ids"][usable[k]] for k in batch], layers)
        content = mask.clone()
        for row, k in enumerate(batch):
            special = encoded["special_tokens_mask"][usable[k]]
            content[row, :len(special)] *= 1 - torch.tensor(special)
        weights = content.float() / content.sum(dim=1, keepdim=True).float()
        pooled = (weights.unsqueeze(0).unsqueeze(-1) * states).sum(dim=2)  # [L, b, hidden]
        if out is None:
            out = torch.zeros((states.shape[0], len(usable), states.shape[-1]), dtype=torch.float32)
        out[:, torch.as_tensor(batch)] = pooled
    if out is None:
        out = torch.zeros((len(layers), 0, 0))
    return SentenceFeatures(out, np.asarray(usable, dtype=np.int64), len(texts) - len(usable))
