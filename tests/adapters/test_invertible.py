"""Invertible adapters: the NICE coupling inverts exactly, starts as the identity, and the MLM head reads the
inverted last hidden states."""

from __future__ import annotations

import pytest
import torch
from tiny_models import LANGUAGES, build_tiny, randomise_adapters, token_ids

from xlt.adapters.bottleneck import BottleneckSpec
from xlt.adapters.config import AdapterSetup
from xlt.adapters.install import install_adapters
from xlt.adapters.invertible import InvertibleAdapterBank, invertible_site
from xlt.errors import XltError
from xlt.models.mlm import masked_head_logits


def random_bank(n: int = 3, hidden: int = 16) -> InvertibleAdapterBank:
    bank = InvertibleAdapterBank(n, hidden, BottleneckSpec(2, "gelu"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in bank.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return bank


def test_inverse_of_forward_is_the_identity() -> None:
    bank, x, rows = random_bank(), torch.randn(4, 7, 16), torch.tensor([0, 2, 1, 2])
    y = bank(x, rows)
    assert (y - x).abs().max() > 1.0  # the coupling does something
    assert torch.allclose(bank.inverse(y, rows), x, atol=1e-5, rtol=0)
    assert torch.allclose(bank(bank.inverse(x, rows), rows), x, atol=1e-5, rtol=0)


def test_coupling_is_nice() -> None:
    """y1 = x1 + F(x2), y2 = x2 + G(y1), F and G the language's bottleneck MLPs."""
    bank, x, rows = random_bank(), torch.randn(2, 3, 16), torch.tensor([1, 1])
    x1, x2 = x[..., :8], x[..., 8:]
    y1 = x1 + bank.f.one(x2, 1)
    assert torch.allclose(bank(x, rows), torch.cat([y1, x2 + bank.g.one(y1, 1)], dim=-1), atol=1e-6)


def test_fresh_coupling_is_the_identity() -> None:
    bank, x = InvertibleAdapterBank(2, 16, BottleneckSpec(2)), torch.randn(2, 3, 16)
    assert torch.equal(bank(x, torch.tensor([0, 1])), x)


def test_odd_width_is_refused() -> None:
    with pytest.raises(XltError, match="even hidden size"):
        InvertibleAdapterBank(1, 15, BottleneckSpec(2))


def test_mlm_head_reads_the_inverted_hidden_states() -> None:
    model = build_tiny()
    setup = AdapterSetup()
    adapters = install_adapters(model, setup, setup.plan(LANGUAGES, None, 32), LANGUAGES, "tiny")
    randomise_adapters(model)
    ids, selected = token_ids(2), torch.zeros(2, 10, dtype=torch.bool)
    selected[:, [1, 4]] = True
    adapters.route(torch.tensor([0, 2]), 2, ids.device)
    site = invertible_site(model)
    hidden = model.roberta(input_ids=ids).last_hidden_state
    expected = model.lm_head(site.inverse(hidden)[selected])
    assert torch.allclose(masked_head_logits(model, ids, selected), expected, atol=1e-6)
    assert not torch.allclose(model.lm_head(hidden[selected]), expected, atol=1e-3)
