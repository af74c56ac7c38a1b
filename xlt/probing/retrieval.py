"""Sentence retrieval on parallel data, every layer at once: P@1 of cosine nearest neighbours, both directions.

Sentence vectors are mean-pooled layer vectors (:func:`xlt.probing.features.sentence_features`); line ``i`` of
one side should retrieve line ``i`` of the other among all of that side's lines.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def retrieval_hits(queries: torch.Tensor, candidates: torch.Tensor) -> np.ndarray:
    """``[n_layers, n]``: 1.0 where query ``i``'s cosine nearest neighbour among the candidates is candidate ``i``.

    Args:
        queries: ``[n_layers, n, hidden]`` sentence vectors of one side.
        candidates: ``[n_layers, n, hidden]`` of their translations, in the same order.
    """
    q, c = F.normalize(queries.double(), dim=-1), F.normalize(candidates.double(), dim=-1)
    similarity = torch.bmm(q, c.transpose(1, 2))
    best = similarity.argmax(dim=-1)
    return (best == torch.arange(queries.shape[1]).unsqueeze(0)).double().numpy()
