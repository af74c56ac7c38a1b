"""Encoder configs and shapes: Table 1 models on the meta device against a hand-derived parameter count."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoConfig, AutoModelForMaskedLM

from xlt.errors import XltError
from xlt.models.encoder import (
    build_config,
    build_masked_lm,
    count_parameters,
    describe,
    is_model_type,
    usable_positions,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# Table 1 of the paper: layers, d_model, vocabulary (Multi-L+: 250k shared + 12 x 50k language-specific).
TABLE_1 = {
    "multi_s": (12, 768, 250_000),
    "multi_m": (24, 1024, 250_000),
    "multi_l": (32, 2048, 500_000),
    "multi_l_plus": (32, 2048, 250_000 + 12 * 50_000),
}


def closed_form_parameters(config) -> dict[str, int]:
    """Parameters of a BERT / XLM-R masked LM with a tied decoder and no pooler, derived by hand.

    embeddings: word V*d + position P*d + token type T*d + LayerNorm 2d
    layer:      Q,K,V,O 4*(d^2 + d) + LayerNorm 2d + FFN up d*f + f + FFN down f*d + d + LayerNorm 2d
                = 4d^2 + 2fd + 9d + f            (= 12d^2 + 13d for f = 4d)
    head:       dense d^2 + d + LayerNorm 2d + output bias V (decoder weight tied to word embeddings)
    """
    V, d, P = config.vocab_size, config.hidden_size, config.max_position_embeddings
    T, L, f = config.type_vocab_size, config.num_hidden_layers, config.intermediate_size
    embeddings = V * d + P * d + T * d + 2 * d
    layer = 4 * d * d + 2 * f * d + 9 * d + f
    if f == 4 * d:
        assert layer == 12 * d * d + 13 * d
    head = d * d + 3 * d + V
    return {"embeddings": embeddings, "layer": layer, "head": head, "total": embeddings + L * layer + head}


@pytest.mark.parametrize("name", sorted(TABLE_1))
def test_table_1_models_on_meta_device_match_closed_form(name: str) -> None:
    init = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["model"]["init_args"]
    config = build_config(init["encoder"], init["config"])
    layers, width, vocab = TABLE_1[name]
    shape = describe(config)
    assert (shape.layers, shape.width, shape.vocab) == (layers, width, vocab)
    assert shape.intermediate == 4 * width and width % shape.heads == 0

    with torch.device("meta"):
        model = build_masked_lm(init["encoder"], config)
    assert all(p.device.type == "meta" for p in model.parameters())
    counts = count_parameters(model)
    expected = closed_form_parameters(config)
    assert counts.total == expected["total"]
    assert counts.embeddings == expected["embeddings"]
    assert counts.layers == [expected["layer"]] * layers
    assert counts.head == expected["head"]
    assert counts.word_embeddings == vocab * width
    assert counts.non_embedding == expected["total"] - expected["embeddings"]


def test_closed_form_on_a_known_size() -> None:
    # xlm-roberta-base (250002 x 768, 514 positions, 1 token type, 12 layers): XLMRobertaModel has the
    # published 278,043,648 parameters including its pooler (590,592); the masked LM drops the pooler and adds
    # the head transform and output bias (768^2 + 3*768 + 250002 = 842,130): 278,295,186.
    config = build_config("xlm-roberta", dict(vocab_size=250002, max_position_embeddings=514, type_vocab_size=1))
    d = 768
    assert closed_form_parameters(config)["total"] == (
        250002 * d + 514 * d + d + 2 * d + 12 * (12 * d * d + 13 * d) + d * d + 3 * d + 250002
    )
    assert closed_form_parameters(config)["total"] == 278_295_186


def test_tiny_model_count_equals_materialised_parameters() -> None:
    config = build_config(
        "xlm-roberta",
        dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=40),
    )
    model = build_masked_lm("xlm-roberta", config)
    counts = count_parameters(model)
    assert counts.total == sum(p.numel() for p in model.parameters())  # dedups the tied decoder
    assert counts.total == closed_form_parameters(config)["total"]  # also holds for f != 4d
    assert model.lm_head.decoder.weight is model.roberta.embeddings.word_embeddings.weight


def test_overrides_are_applied_and_typos_are_user_errors() -> None:
    config = build_config("bert", {"num_hidden_layers": 3, "hidden_size": 48, "num_attention_heads": 4})
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("bert", 3, 48)
    with pytest.raises(XltError, match="num_hidden_layer .*did you mean num_hidden_layers"):
        build_config("xlm-roberta", {"num_hidden_layer": 2})


def test_unknown_encoder_is_a_user_error(tmp_path: Path) -> None:
    assert is_model_type("xlm-roberta") and not is_model_type("xlm_roberta")
    with pytest.raises(XltError, match="model.encoder .*xlm-roberta"):
        build_config("xlm_roberta")  # not a model type; looked up on the hub (offline in tests)
    with pytest.raises(XltError, match="directory"):
        build_config(str(tmp_path))  # exists but holds no config.json


def test_missing_paths_fail_without_a_hub_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A path that cannot be a hub id (or whose parent exists) is reported at once, without the hub client's
    network retries; ``owner/name`` shapes still go to the hub."""
    from xlt.datamodules.task_data import load_fast_tokenizer
    from xlt.hub import meant_as_path

    def no_hub(*args, **kwargs):
        raise AssertionError("the hub was consulted")

    monkeypatch.setattr(AutoConfig, "from_pretrained", no_hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for missing in ("runs/quickstart/export", "runs/export", "./tok", str(tmp_path / "gone"), "~/nothing/here/x"):
        assert meant_as_path(missing)
        with pytest.raises(XltError, match=f"model.encoder {missing} not found — check the path"):
            build_config(missing)
    with pytest.raises(XltError, match="data.tokenizer runs/tok not found"):
        load_fast_tokenizer("runs/tok")
    assert not meant_as_path("xlm-roberta-base") and not meant_as_path("FacebookAI/xlm-roberta-base")


def test_local_checkpoint_loads_weights_with_overrides(tmp_path: Path) -> None:
    config = AutoConfig.for_model(
        "xlm-roberta",
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=34,
    )
    saved = AutoModelForMaskedLM.from_config(config)
    saved.save_pretrained(tmp_path)
    loaded_config = build_config(str(tmp_path), {"hidden_dropout_prob": 0.0})
    assert loaded_config.hidden_dropout_prob == 0.0 and loaded_config.hidden_size == 16
    loaded = build_masked_lm(str(tmp_path), loaded_config)
    for (name, a), (_, b) in zip(saved.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    with torch.device("meta"):  # planning a checkpoint's shape loads no weights
        planned = build_masked_lm(str(tmp_path), loaded_config)
    assert count_parameters(planned).total == count_parameters(saved).total


def test_usable_positions_and_description() -> None:
    xlmr = build_config("xlm-roberta", {"max_position_embeddings": 514})
    bert = build_config("bert", {"max_position_embeddings": 514})
    assert usable_positions(xlmr) == 512  # fairseq positions start at pad_token_id + 1 = 2
    assert usable_positions(bert) == 514
    assert str(describe(xlmr)) == "xlm-roberta: 12 layers x d=768 (12 heads, ffn 3072), vocab 30522, 512 positions"
