"""Per-example routing of adapter banks and language-specific layers: which bank row (language) each example of a
batch goes through.

A bank stacks one adapter per language in its parameters (``[n_languages, ...]``), so every language trains in
one run and a mixed-language batch needs no loop over models. :class:`AdapterRouter` maps the batch's language
indices to bank rows once per run (by language *code*: MLM and task batches index different language lists);
:func:`per_row` applies a row-dependent function to the examples of each language present: the batch is grouped
by row once per batch (:class:`RowGroups`: a stable sort, computed when the router routes it, so sites need no
host sync), each site gathers its input in that order, applies each row to its contiguous slice and scatters the
concatenation back: two gathers per site whatever the number of languages, none for a batch already sorted by
language (MLM pretraining sorts its batches so).

A stacked parameter indexed by a row still receives a full-size gradient (zeros in the rows not used), so every
rank produces a gradient for every bank parameter whatever languages its batch holds: DDP needs no
``find_unused_parameters`` and FSDP2's reduce-scatter sees the same parameters on every rank.

:class:`LanguageSpecificLayers` gives each language its own copy of a lower transformer layer (the paper's
"language-specific parameters in lower layers combined with shared higher-layer representations"), routed the
same way; copies not used by a batch join the graph with a zero, for the same reason.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from xlt.errors import XltError

NO_ADAPTER = -1


@dataclass(frozen=True)
class RowGroups:
    """The examples of a batch grouped by bank row.

    Attributes:
        order: Example indices sorted by row (stable) ``[B]``.
        inverse: The permutation back to batch order ``[B]``.
        rows: The rows present, ascending (``NO_ADAPTER`` first if present).
        counts: Examples per row present, in the same order.
        in_order: The batch is already sorted by row (``order`` is the identity): sites need no gathers.
    """

    order: torch.Tensor
    inverse: torch.Tensor
    rows: list[int]
    counts: list[int]
    in_order: bool = False

    @classmethod
    def of(cls, rows: torch.Tensor) -> RowGroups:
        """Group a batch's rows ``[B]`` (one host sync: the rows and counts present)."""
        order = torch.argsort(rows, stable=True)
        present, counts = torch.unique_consecutive(rows[order], return_counts=True)
        in_order = bool(torch.equal(order, torch.arange(len(rows), device=rows.device)))
        return cls(order, torch.argsort(order), present.tolist(), counts.tolist(), in_order)

    def indices(self) -> list[tuple[int, torch.Tensor]]:
        """``(row, example indices)`` per row present."""
        return list(zip(self.rows, self.order.split(self.counts), strict=True))


class AdapterRouter:
    """Bank rows of the current batch's examples, read by every adapter site during the forward.

    The rows stay set after the forward, on purpose: activation checkpointing runs the layers' forwards again
    during backward, and they must take the same routes.

    Args:
        bank_languages: Language codes in the order of the bank rows.
        batch_languages: Language codes in the order of the batches' ``lang`` indices.
        fallback: Code of the bank language used for a batch language without an adapter; ``None``: such
            examples go through no language adapter.
    """

    def __init__(self, bank_languages: Sequence[str], batch_languages: Sequence[str],
                 fallback: str | None = None) -> None:
        self.bank_languages = list(bank_languages)
        self.batch_languages = list(batch_languages)
        if fallback is not None and fallback not in self.bank_languages:
            raise XltError(f"model.adapters.fallback {fallback!r} has no language adapter "
                           f"({', '.join(self.bank_languages)}) — pick one of them or null")
        self.fallback = fallback
        default = self.bank_languages.index(fallback) if fallback is not None else NO_ADAPTER
        self.table = torch.tensor([self.bank_languages.index(c) if c in self.bank_languages else default
                                   for c in self.batch_languages] or [default], dtype=torch.long)
        self._rows: torch.Tensor | None = None
        self._groups: RowGroups | None = None

    @property
    def rows(self) -> torch.Tensor:
        """Bank row per example of the current batch ``[B]`` (``NO_ADAPTER`` for none)."""
        if self._rows is None:
            raise RuntimeError("language adapters route per batch: call route(batch['lang'], ...) before the forward")
        return self._rows

    @property
    def groups(self) -> RowGroups:
        """The current batch's examples grouped by bank row."""
        self.rows  # noqa: B018 - the error when not routed yet
        assert self._groups is not None
        return self._groups

    def row_of(self, code: str) -> int:
        """The bank row a batch language ``code`` is routed to (``NO_ADAPTER`` for none)."""
        return int(self.table[self.batch_languages.index(code)])

    def route(self, lang: torch.Tensor | None, batch_size: int, device: torch.device) -> None:
        """Route a batch: ``lang`` ``[B]`` indexes ``batch_languages`` (``None``: a one-language run's batch)."""
        if lang is None:
            if len(self.batch_languages) > 1:
                raise XltError("the batch has no 'lang' field but language adapters route by language — use an "
                               "xlt data module, which adds it")
            lang = torch.zeros(batch_size, dtype=torch.long)
        self._rows = self.table.to(device)[lang.to(device)]
        self._groups = RowGroups.of(self._rows)


def per_row(x: torch.Tensor, rows: RowGroups | torch.Tensor | None,
            apply: Callable[[torch.Tensor, int], torch.Tensor],
            parameters: Callable[[], Sequence[torch.Tensor]]) -> torch.Tensor:
    """``apply(x_l, l)`` on the examples of each bank row ``l``, zeros where the row is ``NO_ADAPTER``.

    Args:
        x: Inputs ``[B, ...]``.
        rows: The batch grouped by bank row (or the row per example ``[B]``); ``None``: every example uses row 0.
        apply: The function of one bank row; ``apply(x_rows, row)`` returns a tensor shaped like ``x_rows``.
        parameters: The bank's parameters, used to keep them in the graph when no example is routed to them.

    Returns:
        The per-row results ``[B, ...]``.
    """
    if rows is None:
        return apply(x, 0)
    groups = rows if isinstance(rows, RowGroups) else RowGroups.of(rows)
    if groups.rows == [NO_ADAPTER]:  # nothing routed: a zero that still gives every bank parameter a (zero) gradient
        return x.new_zeros(()) * sum(p.sum() for p in parameters()) + torch.zeros_like(x)
    if len(groups.rows) == 1:
        return apply(x, groups.rows[0])  # one-language batch: no gather or scatter
    parts = (x if groups.in_order else x.index_select(0, groups.order)).split(groups.counts)
    out = torch.cat([torch.zeros_like(part) if row == NO_ADAPTER else apply(part, row)
                     for part, row in zip(parts, groups.rows, strict=True)])
    return out if groups.in_order else out.index_select(0, groups.inverse)


#: name of the per-language layer copies under a transformer layer; keys containing it are language parameters
LAYERS_NAME = "xlt_language_layers"


class LanguageSpecificLayers(nn.Module):
    """Per-language copies of one transformer layer, routed per example; rows without a copy take the shared layer.

    The copies start as exact copies of the layer, so inserting them leaves outputs unchanged. Tensor arguments
    of the layer whose first dimension is the batch (attention masks) are split with the examples.

    Args:
        router: Gives the bank row of every example of the current batch.
        copies: One layer per bank row (deep copies of the shared layer).
        shared_parameters: The shared layer's own parameters (kept in the graph when no example uses them).
    """

    def __init__(self, router: AdapterRouter, copies: Sequence[nn.Module],
                 shared_parameters: Sequence[nn.Parameter]) -> None:
        super().__init__()
        self.router = router
        self.copies = nn.ModuleList(copies)
        self._shared_parameters = list(shared_parameters)  # a plain list: not registered twice

    def route(self, shared: Callable[..., torch.Tensor], hidden: torch.Tensor, *args: Any,
              **kwargs: Any) -> torch.Tensor:
        """The layer's output: each example through its language's copy (or ``shared``)."""
        groups = self.router.groups
        layers = {row: (shared if row == NO_ADAPTER else self.copies[row]) for row in groups.rows}
        if len(groups.rows) == 1:
            out = layers[groups.rows[0]](hidden, *args, **kwargs)
        else:
            out = torch.zeros_like(hidden)
            for row, index in groups.indices():
                layer = layers[row]

                def split(value: Any, index: torch.Tensor = index) -> Any:
                    batched = isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == len(hidden)
                    return value.index_select(0, index) if batched else value

                part = layer(hidden.index_select(0, index), *map(split, args),
                             **{key: split(value) for key, value in kwargs.items()})
                out = out.index_copy(0, index, part)
        # every trainable parameter in the graph on every rank, whatever languages its batch holds (DDP, FSDP2)
        unused = [p for row, copy in enumerate(self.copies) if row not in layers for p in copy.parameters()]
        if NO_ADAPTER not in layers:
            unused += self._shared_parameters
        unused = [p for p in unused if p.requires_grad]
        if unused:
            out = out + out.new_zeros(()) * sum(p.sum() for p in unused)
        return out


def insert_language_layers(layer: nn.Module, router: AdapterRouter, n: int) -> LanguageSpecificLayers:
    """Give ``layer`` ``n`` routed per-language copies (registered as ``layer.xlt_language_layers``)."""
    shared_parameters = list(layer.parameters())
    copies = [copy.deepcopy(layer) for _ in range(n)]  # before registering: a copy holds no copies
    bank = LanguageSpecificLayers(router, copies, shared_parameters)
    shared = layer.forward
    layer.add_module(LAYERS_NAME, bank)

    def forward(hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return bank.route(shared, hidden_states, *args, **kwargs)

    layer.forward = forward  # the instance's forward: nn.Module.__call__ (and its hooks) stay as they are
    return bank

