"""Invertible adapters (MAD-X): a NICE coupling on the embedding output, inverted before the tied MLM head.

The embeddings' output ``x`` is split in halves and coupled, ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``, with
``F`` and ``G`` bottleneck MLPs banked per language (:class:`~xlt.adapters.bottleneck.BottleneckBank`). The
inverse, ``x2 = y2 - G(y1)``, ``x1 = y1 - F(x2)``, maps the last hidden states back into the embedding space
before the MLM head, whose decoder is tied to the input embeddings. ``F`` and ``G`` start at zero, so the
coupling starts as the identity.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xlt.adapters.bottleneck import BottleneckBank, BottleneckSpec
from xlt.adapters.routing import AdapterRouter, RowGroups
from xlt.errors import XltError

#: name of the invertible adapter module under the embeddings
INVERTIBLE_NAME = "xlt_invertible"


class InvertibleAdapterBank(nn.Module):
    """Per-language NICE couplings on ``[..., hidden]`` states; ``rows`` picks each example's language.

    Args:
        n: Number of languages.
        hidden: Width of the embeddings (even: it is split in halves).
        spec: Shape of ``F`` and ``G`` (bottleneck MLPs on half the width).
    """

    def __init__(self, n: int, hidden: int, spec: BottleneckSpec) -> None:
        super().__init__()
        if hidden % 2:
            raise XltError(f"model.adapters.invertible needs an even hidden size, not {hidden} — turn it off")
        self.half = hidden // 2
        self.f = BottleneckBank(n, self.half, spec, "model.adapters.invertible_reduction_factor")
        self.g = BottleneckBank(n, self.half, spec, "model.adapters.invertible_reduction_factor")

    def forward(self, x: torch.Tensor, rows: RowGroups | torch.Tensor | None) -> torch.Tensor:
        """The coupling ``(x1 + F(x2), x2 + G(y1))``."""
        x1, x2 = x.split(self.half, dim=-1)
        y1 = x1 + self.f(x2, rows)
        return torch.cat([y1, x2 + self.g(y1, rows)], dim=-1)

    def inverse(self, y: torch.Tensor, rows: RowGroups | torch.Tensor | None) -> torch.Tensor:
        """The inverse coupling: ``inverse(forward(x)) == x`` up to float rounding."""
        y1, y2 = y.split(self.half, dim=-1)
        x2 = y2 - self.g(y1, rows)
        return torch.cat([y1 - self.f(x2, rows), x2], dim=-1)


class InvertibleSite(nn.Module):
    """The invertible adapters of a model, routed by its router.

    Args:
        router: Gives the bank row of every example of the current batch.
        bank: The per-language couplings.
    """

    def __init__(self, router: AdapterRouter, bank: InvertibleAdapterBank) -> None:
        super().__init__()
        self.router, self.bank = router, bank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The coupling of each example's language."""
        return self.bank(x, self.router.groups)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """The inverse coupling of each example's language (``y``: ``[B, T, hidden]``)."""
        return self.bank.inverse(y, self.router.groups)


def insert_invertible(embeddings: nn.Module, site: InvertibleSite) -> None:
    """Register ``site`` under ``embeddings`` and apply it to their output with a forward hook."""
    embeddings.add_module(INVERTIBLE_NAME, site)

    def couple(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return site(output)

    embeddings.register_forward_hook(couple)


def invertible_site(model: nn.Module) -> InvertibleSite | None:
    """The invertible adapters inserted into ``model``'s embeddings, if any."""
    site = getattr(model.base_model.embeddings, INVERTIBLE_NAME, None)
    return site if isinstance(site, InvertibleSite) else None
