"""Cross-lingual representation similarity of parallel sentences, every layer at once: linear CKA and SVCCA.

Linear CKA (Kornblith et al. 2019) with the unbiased HSIC estimator (Song et al. 2012; Nguyen et al. 2021):
with Gram matrices ``K = X Xᵀ``, ``L = Y Yᵀ`` (``k``, ``m`` in the code) and their diagonals set to zero (``K̃``, ``L̃``),

    HSIC₁(K, L) = [tr(K̃L̃) + 1ᵀK̃1 · 1ᵀL̃1 / ((n-1)(n-2)) − 2/(n-2) · 1ᵀK̃L̃1] / (n(n-3))

and CKA = HSIC₁(K, L) / sqrt(HSIC₁(K, K) HSIC₁(L, L)). It needs no centring and is invariant to orthogonal
transforms and isotropic scaling of either side; unlike the biased estimator it is close to 0 for independent
representations at small n. SVCCA (Raghu et al. 2017): each side centred and reduced to its top ``dims`` singular
directions, then the mean canonical correlation (singular values of ``Q_xᵀ Q_y`` of the orthonormal bases).
"""

from __future__ import annotations

import torch


def _gram(x: torch.Tensor) -> torch.Tensor:
    """``[..., n, n]`` linear Gram matrices of ``[..., n, d]`` in float64."""
    x = x.double()
    return x @ x.transpose(-1, -2)


def _hsic_unbiased(k: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    n = k.shape[-1]
    if n < 4:
        raise ValueError(f"the unbiased HSIC estimator needs at least 4 examples, got {n}")
    eye = torch.eye(n, dtype=k.dtype, device=k.device)
    k, m = k * (1 - eye), m * (1 - eye)
    trace = (k * m).sum((-1, -2))
    sums = k.sum((-1, -2)) * m.sum((-1, -2)) / ((n - 1) * (n - 2))
    cross = (k.sum(-1) * m.sum(-1)).sum(-1) * 2 / (n - 2)  # 1ᵀ K̃ L̃ 1 = (K̃1)·(L̃1) (symmetric matrices)
    return (trace + sums - cross) / (n * (n - 3))


def _hsic_biased(k: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    n = k.shape[-1]
    h = torch.eye(n, dtype=k.dtype, device=k.device) - 1.0 / n
    return ((h @ k @ h) * m).sum((-1, -2)) / (n - 1) ** 2


def linear_cka(x: torch.Tensor, y: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Linear CKA of paired rows, batched over leading axes: ``[..., n, d1]`` × ``[..., n, d2]`` → ``[...]``.

    Args:
        x: representations of the ``n`` examples on one side (e.g. ``[n_layers, n, hidden]``).
        y: the same examples on the other side.
        unbiased: the unbiased HSIC estimator (default) or the biased (centred-Gram) one.
    """
    hsic = _hsic_unbiased if unbiased else _hsic_biased
    k, m = _gram(x), _gram(y)
    denominator = (hsic(k, k) * hsic(m, m)).clamp(min=0).sqrt()
    return (hsic(k, m) / denominator).float()


def svcca(x: torch.Tensor, y: torch.Tensor, dims: int = 20) -> torch.Tensor:
    """Mean SVCCA correlation of paired rows, batched over leading axes (``[..., n, d]`` each → ``[...]``).

    Args:
        x: representations of the ``n`` examples on one side.
        y: the same examples on the other side.
        dims: singular directions kept on each side (capped by ``n - 1`` and the widths).
    """
    keep = min(dims, x.shape[-2] - 1, x.shape[-1], y.shape[-1])

    def basis(z: torch.Tensor) -> torch.Tensor:
        z = z.double() - z.double().mean(dim=-2, keepdim=True)
        u, _, _ = torch.linalg.svd(z, full_matrices=False)
        return u[..., :keep]  # orthonormal basis of the top singular directions (the reduced data's span)

    correlations = torch.linalg.svdvals(basis(x).transpose(-1, -2) @ basis(y))
    return correlations.clamp(max=1.0).mean(-1).float()
