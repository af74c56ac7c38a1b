"""BERT-style token masking for masked-language-model pretraining, driven by an explicit ``torch.Generator``.

Of the non-special positions, each is selected with probability ``mask_prob``; a selected position becomes
``<mask>`` with probability ``mask_replace_prob``, a uniformly drawn non-special token with probability
``random_replace_prob``, and stays unchanged otherwise. Labels hold the original id at selected positions and
``IGNORE_INDEX`` (-100) elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

IGNORE_INDEX = -100


@dataclass
class TokenMasker:
    """Masks batches of token ids; caches the id tables per device.

    Args:
        vocab_size: Number of token ids (ids are ``0 .. vocab_size - 1``).
        mask_id: Id of ``<mask>``.
        special_ids: Ids never selected and never drawn as random replacements (``<s>``, ``<pad>``, ``</s>``,
            ``<unk>``, ``<mask>`` ...). ``mask_id`` is always treated as special.
        mask_prob: Probability that a non-special position is selected for prediction.
        mask_replace_prob: Probability that a selected position is replaced by ``<mask>``.
        random_replace_prob: Probability that a selected position is replaced by a random non-special token
            (the rest, ``1 - mask_replace_prob - random_replace_prob``, keep their token).
        replacement_vocab_size: Random replacements are drawn from ids below this (default ``vocab_size``);
            with language-specific vocabulary blocks after the shared ids, pass the shared size so that no
            language's text ever receives another language's block ids.
    """

    vocab_size: int
    mask_id: int
    special_ids: Iterable[int]
    mask_prob: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    replacement_vocab_size: int | None = None
    _tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.special_ids = sorted({int(i) for i in self.special_ids} | {int(self.mask_id)})
        if not 0.0 <= self.mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in [0, 1], got {self.mask_prob}")
        if self.mask_replace_prob < 0 or self.random_replace_prob < 0:
            raise ValueError("replacement probabilities must be non-negative")
        if self.mask_replace_prob + self.random_replace_prob > 1.0 + 1e-9:
            raise ValueError("mask_replace_prob + random_replace_prob must be <= 1")
        if not 0 <= self.mask_id < self.vocab_size:
            raise ValueError(f"mask_id {self.mask_id} outside vocabulary of {self.vocab_size}")
        if len(self.special_ids) >= self.vocab_size:
            raise ValueError("every id is special: nothing to mask")
        if self.replacement_vocab_size is not None and not 0 < self.replacement_vocab_size <= self.vocab_size:
            raise ValueError(f"replacement_vocab_size {self.replacement_vocab_size} outside 1..{self.vocab_size}")

    def _tables_for(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(is_special lookup of shape [vocab_size], non-special ids) on ``device``."""
        if device not in self._tables:
            is_special = torch.zeros(self.vocab_size, dtype=torch.bool)
            is_special[torch.tensor(self.special_ids)] = True
            limit = self.replacement_vocab_size or self.vocab_size
            candidates = torch.arange(limit)[~is_special[:limit]]
            self._tables[device] = (is_special.to(device), candidates.to(device))
        return self._tables[device]

    def __call__(self, input_ids: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask ``input_ids`` (any shape, integer ids).

        Args:
            input_ids: Token ids; not modified.
            generator: Source of all randomness; must live on ``input_ids.device``.

        Returns:
            ``(masked_input_ids, labels)``, both shaped like ``input_ids``; labels are ``-100`` at positions
            not selected.
        """
        is_special, candidates = self._tables_for(input_ids.device)
        shape, device = input_ids.shape, input_ids.device
        selectable = ~is_special[input_ids]
        selected = (torch.rand(shape, generator=generator, device=device) < self.mask_prob) & selectable
        action = torch.rand(shape, generator=generator, device=device)
        to_mask = selected & (action < self.mask_replace_prob)
        to_random = selected & (action >= self.mask_replace_prob)
        to_random &= action < self.mask_replace_prob + self.random_replace_prob
        random_ids = candidates[torch.randint(len(candidates), shape, generator=generator, device=device)].to(
            input_ids.dtype
        )
        masked = torch.where(to_mask, torch.full_like(input_ids, self.mask_id), input_ids)
        masked = torch.where(to_random, random_ids, masked)
        labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
        return masked, labels


def mask_tokens(
    input_ids: torch.Tensor,
    *,
    vocab_size: int,
    mask_id: int,
    special_ids: Iterable[int],
    generator: torch.Generator,
    mask_prob: float = 0.15,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Functional form of :class:`TokenMasker` (see there); returns ``(masked_input_ids, labels)``."""
    masker = TokenMasker(vocab_size, mask_id, special_ids, mask_prob, mask_replace_prob, random_replace_prob)
    return masker(input_ids, generator)
