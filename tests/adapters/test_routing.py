"""Routing: a mixed-language batch gives each example what it gets alone through its own adapter; one
language's adapter changes that language's outputs only; fallbacks; gradients reach exactly the routed rows."""

from __future__ import annotations

import pytest
import torch
from tiny_models import LANGUAGES, build_tiny, randomise_adapters, token_ids

from xlt.adapters.config import AdapterSetup
from xlt.adapters.install import install_adapters
from xlt.adapters.routing import NO_ADAPTER, AdapterRouter, per_row
from xlt.errors import XltError


def adapted(model_type: str = "xlm-roberta", run_languages=LANGUAGES, **setup_args):
    model = build_tiny(model_type)
    setup = AdapterSetup(languages=setup_args.pop("languages", None), **setup_args)
    plan = setup.plan(list(run_languages), None, 32)
    adapters = install_adapters(model, setup, plan, list(run_languages), "tiny")
    randomise_adapters(model)
    return model, adapters


def logits(model, adapters, ids: torch.Tensor, lang: list[int]) -> torch.Tensor:
    adapters.route(torch.tensor(lang), len(ids), ids.device)
    return model(input_ids=ids).logits


@pytest.mark.parametrize("model_type", ["bert", "xlm-roberta"])
def test_mixed_batch_equals_each_example_alone_through_its_adapter(model_type: str) -> None:
    model, adapters = adapted(model_type, sites="houlsby", task_adapter=False)
    ids, lang = token_ids(6), [2, 0, 1, 1, 0, 2]
    mixed = logits(model, adapters, ids, lang)
    for i, code in enumerate(lang):
        alone = logits(model, adapters, ids[i:i + 1], [code])
        assert torch.allclose(mixed[i:i + 1], alone, atol=1e-5, rtol=0), i
    # and the languages really differ: the same sentence through another language's adapter changes
    other = logits(model, adapters, ids[:1], [(lang[0] + 1) % 3])
    assert (other - mixed[:1]).abs().max() > 1e-2


def test_changing_one_language_adapter_changes_that_language_only() -> None:
    model, adapters = adapted()
    ids, lang = token_ids(6), [0, 1, 2, 1, 0, 2]
    before = logits(model, adapters, ids, lang)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".language." in name or "xlt_invertible." in name:
                parameter[1].add_(0.5)
    after = logits(model, adapters, ids, lang)
    changed = (after - before).abs().amax(dim=(1, 2))
    assert [bool(c > 1e-3) for c in changed] == [code == 1 for code in lang]
    assert torch.equal(after[[0, 2, 4, 5]], before[[0, 2, 4, 5]])


def test_languages_without_adapter_take_the_fallback_or_the_base() -> None:
    run = ["qaa", "qab", "qac", "qad"]  # qad has no adapter
    base = build_tiny()
    ids = token_ids(2)
    reference = base(input_ids=ids).logits
    model, adapters = adapted(run_languages=run, languages=["qaa", "qab", "qac"])
    assert adapters.router.row_of("qad") == NO_ADAPTER
    assert torch.allclose(logits(model, adapters, ids, [3, 3]), reference, atol=1e-6)  # no adapter: the base
    through_qab = logits(model, adapters, ids, [1, 1])
    model, adapters = adapted(run_languages=run, languages=["qaa", "qab", "qac"], fallback="qab")
    assert adapters.router.row_of("qad") == 1
    assert torch.equal(logits(model, adapters, ids, [3, 3]), through_qab)


def test_every_bank_parameter_gets_a_gradient_and_only_routed_rows_move() -> None:
    model, adapters = adapted(invertible=False)
    logits(model, adapters, token_ids(4), [0, 2, 2, 0]).sum().backward()
    bank = model.roberta.encoder.layer[0].output.xlt_adapters.language
    for parameter in bank.parameters():
        assert parameter.grad is not None
        per_row_norm = parameter.grad.flatten(1).abs().sum(dim=1)
        assert per_row_norm[1] == 0 and per_row_norm[0] > 0 and per_row_norm[2] > 0


def test_a_batch_routed_to_no_adapter_still_gives_zero_gradients() -> None:
    """DDP and FSDP2 need every parameter's gradient on every rank, whatever languages a rank's batch holds."""
    x = torch.randn(3, 4, requires_grad=True)
    weight = torch.nn.Parameter(torch.ones(2, 4))
    out = per_row(x, torch.full((3,), NO_ADAPTER), lambda v, row: v * weight[row], lambda: [weight])
    out.sum().backward()
    assert torch.equal(out, torch.zeros(3, 4)) and torch.equal(weight.grad, torch.zeros(2, 4))


def test_router_errors() -> None:
    with pytest.raises(XltError, match="fallback 'qaz'"):
        AdapterRouter(["qaa"], ["qaa", "qab"], fallback="qaz")
    router = AdapterRouter(["qaa", "qab"], ["qaa", "qab"])
    with pytest.raises(RuntimeError, match="route"):
        router.rows  # noqa: B018 - not routed yet
    with pytest.raises(XltError, match="'lang'"):
        router.route(None, 2, torch.device("cpu"))
    router.route(torch.tensor([1, 0, 1]), 3, torch.device("cpu"))
    assert router.rows.tolist() == [1, 0, 1]
