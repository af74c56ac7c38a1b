"""Data-parallel invariance of a training step: W ranks × B rows behave like one process × W·B rows.

The corpus DataModule (and Lightning's ``DistributedSampler``) hand rank ``r`` of ``W`` the global positions
``i ≡ r (mod W)``, so row ``k`` of a rank's micro-batch is row ``k·W + r`` of the global micro-batch that one
process with batch size ``W·B`` would see. Two things make the rank-sharded step equal the single-process one:

* **masking** is drawn for the whole global micro-batch from a generator seeded without the rank, and each rank
  keeps its rows (:func:`mask_global_rows`); this needs a masker whose random draws do not depend on the token
  ids (:class:`xlt.models.masking.TokenMasker` draws ``rand``/``randint`` over the full shape);
* **the loss** is normalised by the number of masked tokens of the *global* micro-batch
  (:func:`global_token_mean`), not by each rank's own count, so that the gradient averaged over ranks (DDP's
  all-reduce, FSDP's reduce-scatter) is the gradient of the global token-mean loss.

Dropout stays per rank (a rank cannot reproduce another rank's dropout draws), so bit-level equality with a
single process needs dropout 0; with dropout the runs are equal in distribution.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def mask_global_rows(
    masker: Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]],
    input_ids: torch.Tensor,
    generator: torch.Generator,
    rank: int,
    world_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask this rank's rows exactly as a single process masks them inside the global micro-batch.

    The masker runs on a ``[B·W, T]`` batch whose row ``k·W + j`` holds local row ``k`` (the other ranks' rows
    are stand-ins: the draws do not depend on token ids), and rows ``rank::W`` are returned. The cost is W times
    the masking work of one rank (a few element-wise ops on ``B·W·T`` ids).

    Args:
        masker: ``(input_ids, generator) -> (masked_ids, labels)`` with id-independent random draws.
        input_ids: This rank's micro-batch ``[B, T]``.
        generator: Seeded identically on every rank (the seed must not depend on the rank).
        rank: This process's data-parallel rank.
        world_size: Number of data-parallel ranks.

    Returns:
        ``(masked_ids, labels)`` of this rank's rows, shaped like ``input_ids``.
    """
    if world_size == 1:
        return masker(input_ids, generator)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    stand_in = input_ids.repeat_interleave(world_size, dim=0)
    masked, labels = masker(stand_in, generator)
    return masked[rank::world_size], labels[rank::world_size]


def global_token_mean(
    token_losses: torch.Tensor,
    world_size: int = 1,
    all_reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss to back-propagate on this rank, and the global token-mean loss (for logging).

    With ``S_r`` this rank's summed token losses and ``N`` the masked tokens over all ranks, the rank returns
    ``W · S_r / N``: averaged over ranks by the gradient reduction it gives the gradient of ``Σ_r S_r / N``.
    A micro-batch without any masked token gives 0 (with a gradient path through the model).

    Args:
        token_losses: Per-token losses ``[n]`` of this rank (may be empty).
        world_size: Number of data-parallel ranks whose gradients are averaged.
        all_reduce_sum: Sums a tensor over the ranks (``None`` on a single process).

    Returns:
        ``(loss, global_mean)``; ``global_mean`` is detached and identical on every rank.
    """
    local_sum = token_losses.sum()
    stats = torch.stack([local_sum.detach().double(), torch.tensor(float(token_losses.numel()),
                                                                   dtype=torch.float64,
                                                                   device=token_losses.device)])
    if all_reduce_sum is not None and world_size > 1:
        stats = all_reduce_sum(stats)
    count = stats[1].clamp_min(1.0)
    loss = local_sum * (world_size / count).to(local_sum.dtype)
    return loss, (stats[0] / count).to(local_sum.dtype)
