"""Bottleneck adapters: identity at insertion (BERT, XLM-R; both site sets and placements), the hand-computed
output of each placement, bottleneck sizes, and a clear error for layers of another family."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_models import LANGUAGES, build_tiny, token_ids

from xlt.adapters.bottleneck import BottleneckBank, BottleneckSpec, bottleneck_size
from xlt.adapters.config import AdapterSetup
from xlt.adapters.install import install_adapters
from xlt.errors import XltError


def install(model, **setup_args):
    setup = AdapterSetup(**setup_args)
    task = "ner" if setup.task_adapter else None  # a task adapter belongs to a task run
    plan = setup.plan(LANGUAGES, None, model.config.hidden_size, task=task, source=[])
    return install_adapters(model, setup, plan, LANGUAGES, "tiny")


@pytest.mark.parametrize("model_type", ["bert", "xlm-roberta"])
@pytest.mark.parametrize("sites", ["pfeiffer", "houlsby"])
@pytest.mark.parametrize("placement", ["before_layer_norm", "after_layer_norm"])
def test_fresh_adapters_leave_outputs_unchanged(model_type: str, sites: str, placement: str) -> None:
    model = build_tiny(model_type)
    ids = token_ids()
    before = model(input_ids=ids, output_hidden_states=True)
    adapters = install(model, sites=sites, placement=placement, adapter_layer_norm=True, task_adapter=True,
                       train="all")
    adapters.route(torch.tensor([0, 1, 2, 0]), 4, ids.device)  # a mixed batch: every bank row is used
    after = model(input_ids=ids, output_hidden_states=True)
    assert torch.equal(after.logits, before.logits)  # exactly: the up projections start at zero
    for ours, reference in zip(after.hidden_states, before.hidden_states, strict=True):
        assert torch.equal(ours, reference)
    n_sites = sum(1 for name, _ in model.named_modules() if name.endswith("xlt_adapters"))
    assert n_sites == 2 * (2 if sites == "houlsby" else 1)


@pytest.mark.parametrize("placement", ["before_layer_norm", "after_layer_norm"])
def test_placement_is_where_the_adapter_reads_and_writes(placement: str) -> None:
    """With ``up`` = 0 and ``up_bias`` = b, an adapter adds b: inside LayerNorm(h + b + input), or after it."""
    model = build_tiny("xlm-roberta")
    adapters = install(model, placement=placement, invertible=False)
    adapters.route(torch.tensor([1, 1]), 2, torch.device("cpu"))
    output = model.roberta.encoder.layer[0].output
    bias = torch.linspace(-1.0, 1.0, 32)
    with torch.no_grad():
        output.xlt_adapters.language.up_bias[1] = bias
    hidden, residual = torch.randn(2, 5, 64), torch.randn(2, 5, 32)
    dense = output.dense(hidden)
    if placement == "before_layer_norm":
        expected = output.LayerNorm(dense + bias + residual)
    else:
        expected = output.LayerNorm(dense + residual) + bias
    assert torch.allclose(output(hidden, residual), expected, atol=1e-6)


def test_bank_row_is_a_bottleneck_mlp() -> None:
    bank = BottleneckBank(2, 8, BottleneckSpec(reduction_factor=4, non_linearity="tanh"))
    with torch.no_grad():
        for parameter in bank.parameters():
            parameter.copy_(torch.randn(parameter.shape))
    h = torch.randn(3, 5, 8)
    expected = F.linear(torch.tanh(F.linear(h, bank.down_weight[1], bank.down_bias[1])), bank.up_weight[1],
                        bank.up_bias[1])
    assert bank.down_weight.shape == (2, 2, 8)  # 8 / 4 = 2 units
    assert torch.allclose(bank(h, torch.tensor([1, 1, 1])), expected, atol=1e-6)


@pytest.mark.parametrize("factor", [0, -2.0, 33, 64.0])
def test_a_reduction_factor_that_leaves_no_bottleneck_is_refused(factor: float) -> None:
    with pytest.raises(XltError, match="reduction_factor"):
        bottleneck_size(32, factor, "model.adapters.language_reduction_factor")


def test_bottleneck_size() -> None:
    assert [bottleneck_size(768, f, "k") for f in (2, 16, 768)] == [384, 48, 1]


def test_layers_without_bert_output_blocks_are_refused() -> None:
    model = build_tiny("distilbert", dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    setup = AdapterSetup()
    with pytest.raises(XltError, match="BERT/XLM-R-family"):
        install_adapters(model, setup, setup.plan(LANGUAGES, None, 32), LANGUAGES, "tiny")
