"""Linear CKA (unbiased HSIC) and SVCCA: invariances, independence, the estimator against its formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xlt.probing.similarity import linear_cka, svcca


def _random(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _rotation(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(_random(d, d, seed))
    return q


def _hsic_by_formula(k: np.ndarray, m: np.ndarray) -> float:
    """Song et al. (2012), eq. 5, transcribed with explicit ones vectors."""
    n = len(k)
    k, m = k - np.diag(np.diag(k)), m - np.diag(np.diag(m))
    one = np.ones(n)
    return (np.trace(k @ m) + (one @ k @ one) * (one @ m @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ k @ m @ one) / (n * (n - 3))


def test_unbiased_cka_matches_the_estimator_formula() -> None:
    x, y = _random(9, 4, 0), _random(9, 3, 1) + 0.5 * _random(9, 3, 2)
    k, m = (x @ x.T).numpy(), (y @ y.T).numpy()
    expected = _hsic_by_formula(k, m) / np.sqrt(_hsic_by_formula(k, k) * _hsic_by_formula(m, m))
    assert float(linear_cka(x, y)) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("unbiased", [True, False])
def test_cka_is_one_for_identical_and_for_rotated_scaled_representations(unbiased: bool) -> None:
    x = _random(40, 16, 3)
    assert float(linear_cka(x, x, unbiased)) == pytest.approx(1.0, abs=1e-6)
    assert float(linear_cka(x, 3.7 * x @ _rotation(16, 4), unbiased)) == pytest.approx(1.0, abs=1e-6)


def test_unbiased_cka_is_near_zero_for_independent_data_where_the_biased_one_is_not() -> None:
    unbiased = [float(linear_cka(_random(20, 64, s), _random(20, 64, 100 + s))) for s in range(10)]
    biased = [float(linear_cka(_random(20, 64, s), _random(20, 64, 100 + s), unbiased=False)) for s in range(10)]
    assert abs(np.mean(unbiased)) < 0.05
    assert np.mean(biased) > 0.5  # n = 20 << d: the biased estimator sees structure in noise
    assert all(abs(u) < b for u, b in zip(unbiased, biased, strict=True))


def test_cka_and_svcca_batch_over_layers_as_single_calls() -> None:
    x = torch.stack([_random(30, 8, s) for s in range(3)])
    y = torch.stack([_random(30, 8, 10 + s) + x[s] for s in range(3)])
    assert torch.allclose(linear_cka(x, y), torch.stack([linear_cka(x[i], y[i]) for i in range(3)]), atol=1e-6)
    assert torch.allclose(svcca(x, y, 5), torch.stack([svcca(x[i], y[i], 5) for i in range(3)]), atol=1e-6)


def test_svcca_is_one_for_an_invertible_linear_map_and_low_for_independent_data() -> None:
    x = _random(200, 10, 5)
    mixed = x @ (_rotation(10, 6) * torch.linspace(0.5, 3.0, 10)) + 2.0
    assert float(svcca(x, mixed, dims=10)) == pytest.approx(1.0, abs=1e-6)
    assert float(svcca(x, _random(200, 10, 7), dims=10)) < 0.2
