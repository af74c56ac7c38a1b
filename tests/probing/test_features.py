"""Features: word vectors by first / mean sub-token through word_ids(), planted UPOS through a fake encoder,
over-long sentences skipped and counted, bad encoders refused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from torch import nn
from transformers import PreTrainedTokenizerFast

from xlt.errors import XltError
from xlt.probing.encoder import ProbeEncoder
from xlt.probing.features import sentence_features, word_features
from xlt.probing.linear import LinearProbe, fit_probes
from xlt.tokenization.tokenizer import XltTokenizer


class TableEncoder(nn.Module):
    """A fake encoder: hidden state ``l`` of a token is row ``id`` of table ``l`` (no context, no weights to learn).

    It exposes what the feature extractor uses: ``forward(input_ids, attention_mask, output_hidden_states)``
    returning ``hidden_states`` (embeddings first), like a transformers encoder.
    """

    def __init__(self, tables: list[torch.Tensor | None], width: int = 0) -> None:
        super().__init__()
        self.tables = [None if t is None else nn.Parameter(t, requires_grad=False) for t in tables]
        self.width, self.noise = width, torch.Generator().manual_seed(0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, output_hidden_states: bool = True):
        """A ``None`` table is fresh Gaussian noise at every token (a layer that carries nothing)."""
        return SimpleNamespace(hidden_states=tuple(
            torch.randn((*input_ids.shape, self.width), generator=self.noise) if table is None else table[input_ids]
            for table in self.tables))


def _word_level(vocabulary: list[str]) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["[PAD]", "[UNK]", *vocabulary])}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


def test_a_layer_carrying_one_hot_upos_is_found_at_that_layer_and_chance_elsewhere() -> None:
    """Word types each have one tag; the fake encoder's layer 2 (of 0..3) is the tag's one-hot, the others noise."""
    rng = np.random.default_rng(0)
    n_types, n_tags = 200, 6
    tags = rng.integers(0, n_tags, n_types)
    vocabulary = [f"w{i}" for i in range(n_types)]
    planted = torch.zeros(n_types + 2, 16)
    planted[2:, :n_tags] = torch.nn.functional.one_hot(torch.as_tensor(tags), n_tags).float()
    fake = TableEncoder([None, None, planted, None], width=16)
    encoder = ProbeEncoder(fake, _word_level(vocabulary), max_tokens=64, num_layers=3)
    sentences = [[f"w{i}" for i in rng.integers(0, n_types, rng.integers(3, 12))] for _ in range(120)]
    features = word_features(encoder, sentences, [0, 1, 2, 3])
    labels = np.asarray([tags[int(w[1:])] for s in sentences for w in s])
    cut = int(features.offsets[80])
    fitted = fit_probes(LinearProbe(steps=150, lr=0.05), features.layers[:, :cut], labels[:cut], n_tags, seed=0)
    accuracy = (fitted.predict(features.layers[:, cut:]) == torch.as_tensor(labels[cut:])).float().mean(1)
    assert accuracy[2] > 0.99
    chance = np.bincount(labels[cut:]).max() / len(labels[cut:])
    assert all(accuracy[i] < chance + 0.12 for i in (0, 1, 3)), accuracy


@pytest.fixture(scope="module")
def sentencepiece_encoder(tiny_tokenizer_dir: Path) -> ProbeEncoder:
    """The real SentencePiece tokenizer; hidden state l of token id t = (l + 1) * one-hot(t)."""
    tokenizer = XltTokenizer.load(tiny_tokenizer_dir).to_hf()
    size = len(tokenizer)
    tables = [(layer + 1) * torch.eye(size) for layer in range(2)]
    return ProbeEncoder(TableEncoder(tables), tokenizer, max_tokens=24, num_layers=1)


def test_first_and_mean_sub_token_pooling_by_hand(sentencepiece_encoder: ProbeEncoder) -> None:
    words = ["unbelievably", "long", "wordings"]
    pieces = [sentencepiece_encoder.tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]
    assert max(len(p) for p in pieces) > 1  # some word is split, so first and mean differ
    first = word_features(sentencepiece_encoder, [words], [0, 1], pooling="first")
    mean = word_features(sentencepiece_encoder, [words], [0, 1], pooling="mean")
    size = first.layers.shape[-1]
    for i, ids in enumerate(pieces):
        one_hots = torch.eye(size)[ids]
        for layer in (0, 1):
            assert torch.equal(first.layers[layer, i], (layer + 1) * one_hots[0])
            assert torch.allclose(mean.layers[layer, i], (layer + 1) * one_hots.mean(0))
    assert first.offsets.tolist() == [0, 3] and first.skipped == 0


def test_sentences_longer_than_the_positions_are_skipped_and_counted(sentencepiece_encoder: ProbeEncoder) -> None:
    sentences = [["a", "b"], ["word"] * 40, ["c"]]
    features = word_features(sentencepiece_encoder, sentences, [0, 1])
    assert features.kept.tolist() == [0, 2] and features.skipped == 1 and features.offsets.tolist() == [0, 2, 3]
    texts = ["a b", " ".join(["word"] * 40), "c"]
    pooled = sentence_features(sentencepiece_encoder, texts, [1])
    assert pooled.kept.tolist() == [0, 2] and pooled.skipped == 1
    ids = sentencepiece_encoder.tokenizer(texts[0], add_special_tokens=False)["input_ids"]
    assert torch.allclose(pooled.layers[0, 0], 2 * torch.eye(pooled.layers.shape[-1])[ids].mean(0))


def test_layer_indices_beyond_the_model_and_slow_tokenizers_are_refused(sentencepiece_encoder: ProbeEncoder,
                                                                        tiny_tokenizer_dir: Path) -> None:
    with pytest.raises(XltError, match=r"layers \[2\] out of range .* 1 layers"):
        sentencepiece_encoder.check_layers([0, 2])
    assert sentencepiece_encoder.check_layers(None) == [0, 1]
    from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

    slow = SentencePieceBackend(vocab_file=str(tiny_tokenizer_dir / "sentencepiece.bpe.model"))
    with pytest.raises(XltError, match="not a fast tokenizer"):
        ProbeEncoder(sentencepiece_encoder.model, slow, max_tokens=12, num_layers=1)
