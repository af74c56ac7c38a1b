"""Attention analysis: entropy per layer and head by language, and attention maps of parallel sentences as PNGs.

transformers 5 returns attention weights only from the eager implementation (sdpa gives ``None``), so
:func:`eager_attention` switches the model to it for the analysis and back afterwards — training keeps its own
implementation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from xlt.evaluation.plots import save_png
from xlt.probing.encoder import ProbeEncoder
from xlt.probing.features import length_batches, model_device, padded_batch


@contextmanager
def eager_attention(model: torch.nn.Module) -> Iterator[None]:
    """``model`` with the eager attention implementation inside the block, its own one restored after it."""
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    switch = before not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


def _attentions(encoder: ProbeEncoder, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n_layers, batch, heads, tokens, tokens]`` attention weights of a padded batch, and its mask."""
    input_ids, mask = padded_batch(encoder, ids)
    device = model_device(encoder.model)
    with torch.no_grad(), eager_attention(encoder.model):
        out = encoder.model(input_ids=input_ids.to(device), attention_mask=mask.to(device), output_attentions=True)
    return torch.stack(out.attentions).float().cpu(), mask


def attention_entropy(encoder: ProbeEncoder, texts: Sequence[str], batch_size: int = 32) -> tuple[np.ndarray, int]:
    """Mean entropy (nats) of each query token's attention distribution, ``[n_layers, heads]``, over the tokens
    of ``texts`` (padding excluded); and the number of texts skipped as longer than the encoder's positions."""
    ids = [x for x in encoder.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
           if len(x) <= encoder.max_tokens]
    total: torch.Tensor | None = None
    tokens = 0
    for batch in length_batches([len(x) for x in ids], batch_size):
        weights, mask = _attentions(encoder, [ids[i] for i in batch])
        entropy = -(weights * torch.log(weights.clamp(min=1e-12))).sum(-1)  # [L, b, H, T]
        summed = (entropy * mask[None, :, None, :]).sum((1, 3)).double()
        total = summed if total is None else total + summed
        tokens += int(mask.sum())
    if total is None:
        return np.zeros((0, 0)), len(texts)
    return (total / tokens).numpy(), len(texts) - len(ids)


def attention_map_figure(encoder: ProbeEncoder, texts: Sequence[str], labels: Sequence[str]) -> Figure:
    """Head-averaged attention of each text (rows) at each layer (columns), tokens on the axes."""
    encoded = encoder.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    n_layers = encoder.num_layers
    fig = Figure(figsize=(2.6 * n_layers + 1, 2.8 * len(texts)))
    for row, (ids, label) in enumerate(zip(encoded, labels, strict=True)):
        ids = ids[:encoder.max_tokens]
        weights, _ = _attentions(encoder, [ids])
        tokens = encoder.tokenizer.convert_ids_to_tokens(ids)
        for layer in range(n_layers):
            ax = fig.add_subplot(len(texts), n_layers, row * n_layers + layer + 1)
            ax.imshow(weights[layer, 0].mean(0).numpy(), cmap="viridis", vmin=0.0)
            ax.set_title(f"{label} layer {layer + 1}", fontsize=8)
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=5)
            ax.set_yticks(range(len(tokens)), tokens, fontsize=5)
    return fig


def write_attention_maps(encoder: ProbeEncoder, pairs: Sequence[tuple[str, str, str, str]],
                         directory: Path) -> list[Path]:
    """One PNG per parallel pair ``(code, text, pivot, pivot_text)``: ``attention_<code>-<pivot>_<i>.png``."""
    paths = []
    for i, (code, text, pivot, pivot_text) in enumerate(pairs):
        figure = attention_map_figure(encoder, [text, pivot_text], [code, pivot])
        paths.append(save_png(figure, directory / f"attention_{code}-{pivot}_{i}.png", dpi=90))
    return paths
