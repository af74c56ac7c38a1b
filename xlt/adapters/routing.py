"""Per-example routing of adapter banks: which bank row (language) each example of a batch goes through.

A bank stacks one adapter per language in its parameters (``[n_languages, ...]``), so every language trains in
one run and a mixed-language batch needs no loop over models. :class:`AdapterRouter` maps the batch's language
indices to bank rows once per run (by language *code*: MLM and task batches index different language lists);
:func:`per_row` applies a row-dependent function to the examples of each language present and writes the
results back in place of the examples, out of place (autograd sees ``index_copy``).

A stacked parameter indexed by a row still receives a full-size gradient (zeros in the rows not used), so every
rank produces a gradient for every bank parameter whatever languages its batch holds: DDP needs no
``find_unused_parameters`` and FSDP2's reduce-scatter sees the same parameters on every rank.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from xlt.errors import XltError

NO_ADAPTER = -1


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

    @property
    def rows(self) -> torch.Tensor:
        """Bank row per example of the current batch ``[B]`` (``NO_ADAPTER`` for none)."""
        if self._rows is None:
            raise RuntimeError("language adapters route per batch: call route(batch['lang'], ...) before the forward")
        return self._rows

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


def per_row(x: torch.Tensor, rows: torch.Tensor | None, apply: Callable[[torch.Tensor, int], torch.Tensor],
            parameters: Callable[[], Sequence[torch.Tensor]]) -> torch.Tensor:
    """``apply(x_l, l)`` on the examples of each bank row ``l``, zeros where the row is ``NO_ADAPTER``.

    Args:
        x: Inputs ``[B, ...]``.
        rows: Bank row per example ``[B]``; ``None``: every example uses row 0.
        apply: The function of one bank row; ``apply(x_rows, row)`` returns a tensor shaped like ``x_rows``.
        parameters: The bank's parameters, used to keep them in the graph when no example is routed to them.

    Returns:
        The per-row results ``[B, ...]``.
    """
    if rows is None:
        return apply(x, 0)
    present = torch.unique(rows).tolist()  # one host sync per site: the languages of the batch
    if len(present) == 1 and present[0] != NO_ADAPTER:
        return apply(x, present[0])  # one-language batch: no gather or scatter
    routed = [row for row in present if row != NO_ADAPTER]
    if not routed:  # nothing routed: a zero that still gives every bank parameter a (zero) gradient
        return x.new_zeros(()) * sum(p.sum() for p in parameters()) + torch.zeros_like(x)
    out = torch.zeros_like(x)
    for row in routed:
        index = torch.nonzero(rows == row).squeeze(1)
        out = out.index_copy(0, index, apply(x.index_select(0, index), row))
    return out
