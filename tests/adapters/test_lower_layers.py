"""Language-specific lower layers: per-language copies of the first N layers start as the shared layer, route per
example (a mixed batch equals each example alone), train and save with the language adapter, load back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import LANGUAGES, build_tiny, token_ids

from xlt.adapters.config import AdapterSetup
from xlt.adapters.install import install_adapters
from xlt.errors import XltError


def with_copies(model_type: str = "xlm-roberta", seed: int = 0, **args):
    model = build_tiny(model_type, seed=seed)
    setup = AdapterSetup(lower_layers=1, **args)
    adapters = install_adapters(model, setup, setup.plan(LANGUAGES, None, 32, num_layers=2), LANGUAGES, "tiny")
    return model, adapters


def perturb_copies(model, scale: float = 0.2) -> None:
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "xlt_language_layers." in name:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)


@pytest.mark.parametrize("model_type", ["bert", "xlm-roberta"])
def test_copies_start_as_the_shared_layer(model_type: str) -> None:
    ids = token_ids()
    reference = build_tiny(model_type)(input_ids=ids).logits
    model, adapters = with_copies(model_type)
    adapters.route(torch.tensor([0, 1, 2, 1]), 4, ids.device)
    assert torch.equal(model(input_ids=ids).logits, reference)
    names = [n for n, _ in model.named_parameters()]
    assert any(".layer.0.xlt_language_layers.copies.2." in n for n in names)
    assert not any(".layer.0.output.xlt_adapters." in n for n in names)  # no sites in the copied layer
    assert any(".layer.1.output.xlt_adapters." in n for n in names)


def test_mixed_batch_with_padding_equals_each_example_alone() -> None:
    model, adapters = with_copies(invertible=False)
    perturb_copies(model)
    ids, lang = token_ids(4), [2, 0, 1, 0]
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # the attention mask is split with the examples
    adapters.route(torch.tensor(lang), 4, ids.device)
    mixed = model(input_ids=ids, attention_mask=mask).logits
    for i, code in enumerate(lang):
        adapters.route(torch.tensor([code]), 1, ids.device)
        alone = model(input_ids=ids[i:i + 1], attention_mask=mask[i:i + 1]).logits
        assert torch.allclose(mixed[i:i + 1], alone, atol=1e-5, rtol=0), i
    adapters.route(torch.tensor([1]), 1, ids.device)
    assert (model(input_ids=ids[:1]).logits - mixed[:1]).abs().max() > 1e-2  # another language's copy differs


def test_unused_copies_still_get_zero_gradients_and_train_with_the_language() -> None:
    model, adapters = with_copies(invertible=False)
    adapters.route(torch.tensor([0, 0]), 2, torch.device("cpu"))
    model(input_ids=token_ids(2)).logits.sum().backward()
    copies = model.roberta.encoder.layer[0].xlt_language_layers.copies
    assert all(p.grad is not None for p in copies.parameters())
    assert all(p.grad.abs().sum() == 0 for p in copies[1].parameters())
    assert any(p.grad.abs().sum() > 0 for p in copies[0].parameters())
    shared = model.roberta.encoder.layer[0].attention.self.query.weight
    assert not shared.requires_grad  # train=language_adapters: the shared layer is frozen


def test_copies_save_and_load_with_the_language_adapter(tmp_path: Path) -> None:
    model, adapters = with_copies()
    perturb_copies(model)
    adapters.route(torch.tensor([0, 1, 2, 1]), 4, torch.device("cpu"))
    expected = model(input_ids=token_ids()).logits
    adapters.save(model, tmp_path / "adapters")
    fresh, loaded = with_copies(load=[str(tmp_path / "adapters")])
    loaded.route(torch.tensor([0, 1, 2, 1]), 4, torch.device("cpu"))
    assert torch.equal(fresh(input_ids=token_ids()).logits, expected)
    with pytest.raises(XltError, match="lower_layers=1, this setup has 0"):
        AdapterSetup(load=[str(tmp_path / "adapters")]).plan(LANGUAGES, None, 32)


def test_more_lower_layers_than_the_encoder_has_is_refused() -> None:
    with pytest.raises(XltError, match="lower_layers=3 exceeds the encoder's 2 layers"):
        AdapterSetup(lower_layers=3).plan(LANGUAGES, None, 32, num_layers=2)
    with pytest.raises(XltError, match="must be >= 0"):
        AdapterSetup(lower_layers=-1)
