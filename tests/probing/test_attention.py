"""Attention analysis: eager attention only for the analysis, entropy per layer/head against a hand computation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

from xlt.models.encoder import build_config
from xlt.probing.attention import attention_entropy, eager_attention, write_attention_maps
from xlt.probing.encoder import ProbeEncoder
from xlt.tokenization.tokenizer import XltTokenizer

TEXTS = ["a short one", "and a somewhat longer sentence here", "x"]


@pytest.fixture(scope="module")
def encoder(tiny_tokenizer_dir: Path) -> ProbeEncoder:
    tokenizer = XltTokenizer.load(tiny_tokenizer_dir).to_hf()
    config = build_config("xlm-roberta", {"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 2,
                                          "num_attention_heads": 4, "intermediate_size": 64,
                                          "max_position_embeddings": 66})
    torch.manual_seed(0)
    model = AutoModel.from_config(config).eval()
    return ProbeEncoder.from_pretrained_model(model, tokenizer)


def test_eager_attention_is_switched_on_for_the_analysis_only(encoder: ProbeEncoder) -> None:
    assert encoder.model.config._attn_implementation == "sdpa"
    ids = torch.tensor([encoder.tokenizer(TEXTS[0])["input_ids"]])
    sdpa = encoder.model(input_ids=ids, output_attentions=True).attentions
    assert not any(a is not None for a in (sdpa or ()))  # why the switch is needed
    with eager_attention(encoder.model):
        assert encoder.model.config._attn_implementation == "eager"
    assert encoder.model.config._attn_implementation == "sdpa"


def test_entropy_per_layer_and_head_matches_the_weights_and_uniform_attention_gives_log_length(
        encoder: ProbeEncoder) -> None:
    entropy, skipped = attention_entropy(encoder, TEXTS, batch_size=2)
    assert entropy.shape == (2, 4) and skipped == 0
    expected, tokens = np.zeros((2, 4)), 0
    with eager_attention(encoder.model), torch.no_grad():
        for text in TEXTS:  # one sentence at a time: no padding at all
            ids = torch.tensor([encoder.tokenizer(text)["input_ids"]])
            for layer, weights in enumerate(encoder.model(input_ids=ids, output_attentions=True).attentions):
                p = weights[0].double().numpy()  # [heads, T, T]
                expected[layer] += -(p * np.log(p)).sum(-1).sum(-1)
            tokens += ids.shape[1]
    assert entropy == pytest.approx(expected / tokens, abs=1e-5)
    lengths = [len(encoder.tokenizer(t)["input_ids"]) for t in TEXTS]
    layer0 = encoder.model.encoder.layer[0].attention.self
    with torch.no_grad():
        saved = layer0.query.weight.clone(), layer0.query.bias.clone()
        layer0.query.weight.zero_(), layer0.query.bias.zero_()  # all scores 0: uniform over the non-pad keys
        uniform, _ = attention_entropy(encoder, TEXTS, batch_size=3)
        layer0.query.weight.copy_(saved[0]), layer0.query.bias.copy_(saved[1])
    by_hand = sum(n * math.log(n) for n in lengths) / sum(lengths)
    assert uniform[0] == pytest.approx([by_hand] * 4, abs=1e-5)


def test_attention_maps_are_written_as_pngs(encoder: ProbeEncoder, tmp_path: Path) -> None:
    paths = write_attention_maps(encoder, [("qab", TEXTS[0], "qaa", TEXTS[1])], tmp_path)
    assert [p.name for p in paths] == ["attention_qab-qaa_0.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
