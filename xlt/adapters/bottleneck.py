"""Bottleneck adapters and their insertion at the Pfeiffer / Houlsby sites of BERT/XLM-R-family layers.

A bottleneck adapter adds ``up(act(down(h)))`` to a layer's hidden states (``down``: d -> d / reduction,
``up`` back to d). In transformers 5 BERT/XLM-R layers the feed-forward block ends in ``layer.output``
(``dense`` -> ``dropout`` -> ``LayerNorm(h + input)``) and the attention block in ``layer.attention.output``
(same shape): the Pfeiffer configuration adapts the first, Houlsby both. Adapters are inserted with forward
hooks on those modules (no modeling code copied or replaced) and registered as their children, so they sit in
the layer's FSDP2 group when ``fully_shard`` runs after insertion, and state-dict keys of the base stay as they
are (``save_pretrained`` without the adapter keys loads with ``AutoModel*.from_pretrained``).

``up`` starts at zero, so inserting adapters leaves the model's outputs unchanged until they train.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from xlt.adapters.routing import AdapterRouter, RowGroups, per_row
from xlt.errors import XltError

#: name of the adapter child module at a site; keys containing it are adapter weights, not the base's
SITE_NAME = "xlt_adapters"
NON_LINEARITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu, "gelu": F.gelu, "swish": F.silu, "tanh": torch.tanh}
#: the site modules of each configuration, relative to a transformer layer
SITES: dict[str, tuple[str, ...]] = {"pfeiffer": ("output",), "houlsby": ("attention.output", "output")}
#: where on a site the adapter reads and writes: on the sublayer's output before the residual and the block's
#: LayerNorm (``before_layer_norm``), or on the block's output after them, with its own residual
PLACEMENTS = ("before_layer_norm", "after_layer_norm")


def bottleneck_size(hidden: int, reduction_factor: float, key: str) -> int:
    """Width of the bottleneck, ``hidden // reduction_factor``; an ``XltError`` naming ``key`` when below 1."""
    if reduction_factor <= 0:
        raise XltError(f"{key}={reduction_factor} must be > 0 — MAD-X uses 2 (language) and 16 (task)")
    size = int(hidden // reduction_factor)
    if size < 1:
        raise XltError(f"{key}={reduction_factor} leaves no bottleneck for width {hidden} (under 1 unit) — "
                       f"use a factor of at most {hidden}")
    return size


@dataclass(frozen=True)
class BottleneckSpec:
    """The shape of one kind of bottleneck adapter.

    Attributes:
        reduction_factor: Bottleneck width = hidden width / reduction_factor.
        non_linearity: ``relu``, ``gelu``, ``swish`` or ``tanh``.
        layer_norm: A LayerNorm of the adapter's own on its input, before the down projection.
    """

    reduction_factor: float
    non_linearity: Literal["relu", "gelu", "swish", "tanh"] = "relu"
    layer_norm: bool = False


class BottleneckBank(nn.Module):
    """``n`` bottleneck adapters with stacked weights; ``forward(h, rows)`` gives each example its row's output.

    Args:
        n: Number of adapters (languages) in the bank.
        hidden: Input and output width.
        spec: Reduction factor, non-linearity, own LayerNorm.
        key: Config key named in errors about the reduction factor.
    """

    def __init__(self, n: int, hidden: int, spec: BottleneckSpec, key: str = "model.adapters") -> None:
        super().__init__()
        width = bottleneck_size(hidden, spec.reduction_factor, key)
        self.spec, self.hidden = spec, hidden
        self.activation = NON_LINEARITIES[spec.non_linearity]
        self.down_weight = nn.Parameter(torch.randn(n, width, hidden) * 0.02)  # BERT's initializer_range
        self.down_bias = nn.Parameter(torch.zeros(n, width))
        self.up_weight = nn.Parameter(torch.zeros(n, hidden, width))  # zero: the adapter starts as the identity
        self.up_bias = nn.Parameter(torch.zeros(n, hidden))
        if spec.layer_norm:
            self.norm_weight = nn.Parameter(torch.ones(n, hidden))
            self.norm_bias = nn.Parameter(torch.zeros(n, hidden))

    def one(self, h: torch.Tensor, row: int) -> torch.Tensor:
        """Adapter ``row``'s output (the residual not added) on ``h`` ``[..., hidden]``."""
        if self.spec.layer_norm:
            h = F.layer_norm(h, (self.hidden,), self.norm_weight[row], self.norm_bias[row])
        z = self.activation(F.linear(h, self.down_weight[row], self.down_bias[row]))
        return F.linear(z, self.up_weight[row], self.up_bias[row])

    def forward(self, h: torch.Tensor, rows: RowGroups | torch.Tensor | None) -> torch.Tensor:
        """Per-example adapter outputs ``[B, ...]`` (zeros for examples routed to no adapter)."""
        return per_row(h, rows, self.one, self.parameters)


class AdapterSite(nn.Module):
    """The adapters of one site: the routed language bank, then (stacked on its output) the task adapter.

    Args:
        router: Gives the bank row of every example of the current batch.
        language: The language adapter bank, or ``None``.
        task: A one-adapter bank applied to every example, or ``None``.
    """

    def __init__(self, router: AdapterRouter, language: BottleneckBank | None, task: BottleneckBank | None) -> None:
        super().__init__()
        self.router = router
        self.language, self.task = language, task

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h`` plus the language adapter's output, then plus the task adapter's output on that."""
        if self.language is not None:
            h = h + self.language(h, self.router.groups)
        if self.task is not None:
            h = h + self.task(h, None)
        return h


def site_modules(layer: nn.Module, sites: str) -> list[nn.Module]:
    """The output blocks of ``layer`` adapted by the ``sites`` configuration (``pfeiffer`` / ``houlsby``)."""
    found = []
    for path in SITES[sites]:
        module = layer.get_submodule(path) if _has_submodule(layer, path) else None
        if module is None or not all(isinstance(getattr(module, n, None), nn.Module)
                                     for n in ("dense", "dropout", "LayerNorm")):
            raise XltError(f"model.adapters: {type(layer).__name__} has no {path} block (dense -> dropout -> "
                           "LayerNorm) — adapters support BERT/XLM-R-family encoders")
        found.append(module)
    return found


def _has_submodule(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
    except AttributeError:
        return False
    return True


def insert_site(module: nn.Module, site: AdapterSite, placement: str) -> None:
    """Register ``site`` as ``module.xlt_adapters`` and hook it into ``module``'s forward at ``placement``."""
    module.add_module(SITE_NAME, site)

    def adapt(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return site(output)

    # before_layer_norm: the dropout's output is the sublayer output h of LayerNorm(h + input)
    target = module.dropout if placement == "before_layer_norm" else module
    target.register_forward_hook(adapt)
