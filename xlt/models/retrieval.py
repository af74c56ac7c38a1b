"""Tatoeba-style bitext retrieval with a frozen encoder: mean-pooled hidden states, cosine nearest neighbour.

No fine-tuning: a sentence's embedding is the mean of one layer's hidden states over its tokens, the special
tokens (``<s>``, ``</s>``, ``[CLS]``...) and padding excluded (a sentence with no other token keeps its special
tokens). Each evaluation language's sentences are matched against all pivot sentences of its pairs and vice
versa (:class:`~xlt.evaluation.metrics.RetrievalP1`, retrieval over *all* pairs of the language at the end of
the epoch). Logged metrics: ``p1_src2tgt`` (language -> pivot, XTREME's direction), ``p1_tgt2src`` and ``p1``,
their mean. The per-example statistic of ``p1`` is each pair's mean of its two hits (0, ½ or 1), so the
bootstrap resamples pairs whole and its point estimate is exactly the mean of the two directions.

**Layer.** ``layer`` indexes the encoder's ``hidden_states``: ``0`` is the embedding output, ``i`` the output
of transformer layer ``i``, negative values count from the top (``-1`` = last layer). The default, ``None``,
is ``num_hidden_layers // 2 + 1`` — XTREME's choice for Tatoeba and BUCC (``hidden_states[7]`` of 12-layer
mBERT, ``[13]`` of 24-layer XLM-R large), middle layers being more language-neutral than the top.

Predictions (``predictions_dir``) are XTREME's layout: ``test-<lang>.tsv`` with one line per sentence of
the language, in file order, holding the row index (0-based) of its nearest pivot sentence.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from transformers import AutoModel

from xlt.errors import XltError
from xlt.evaluation.bootstrap import PerExample
from xlt.evaluation.metrics import RetrievalP1, nearest_neighbours
from xlt.models.task import TaskModule


def mean_pool(hidden: Tensor, attention_mask: Tensor, special_tokens_mask: Tensor | None = None) -> Tensor:
    """Mean of ``hidden`` ``[B, T, D]`` over each row's attended, non-special tokens -> ``[B, D]`` (float32).

    A row whose attended tokens are all special is averaged over its attended tokens; a row with no attended
    token gives zeros.
    """
    mask = attention_mask.bool()
    if special_tokens_mask is not None:
        content = mask & ~special_tokens_mask.bool()
        mask = torch.where(content.any(dim=1, keepdim=True), content, mask)
    weights = mask.unsqueeze(-1).to(torch.float32)
    return (hidden.float() * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class IndexedRetrievalP1(RetrievalP1):
    """:class:`RetrievalP1` that also keeps each pair's row index, for the prediction files."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("index", default=[], dist_reduce_fx="cat")

    def update(self, source: Tensor, target: Tensor, index: Tensor | None = None) -> None:
        """Add aligned embeddings ``[B, D]`` of a batch of pairs and their row indices ``[B]``."""
        super().update(source, target)
        self.index.append(index.detach().long() if index is not None else torch.full((len(source),), -1))

    def nearest(self) -> tuple[Tensor, Tensor]:
        """``(rows, nearest)``: each source sentence's row and the row of its nearest target (synced)."""
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync,
                               should_unsync=self._should_unsync):
            rows = self._cat("index", torch.long)
            positions = nearest_neighbours(*self.embeddings())
        return rows, rows[positions]


class Retrieval(TaskModule):
    """Zero-shot bitext retrieval (Tatoeba) with a frozen encoder; metrics ``p1``, ``p1_src2tgt``, ``p1_tgt2src``.

    Run with ``xlt test`` (or ``xlt validate``) on a :class:`~xlt.datamodules.retrieval.RetrievalDataModule`;
    ``xlt fit`` is refused.
    """

    auto_class = AutoModel
    metric_names = ("p1", "p1_src2tgt", "p1_tgt2src")
    trainable = False

    def __init__(
        self,
        encoder: str = "xlm-roberta",
        config: dict[str, Any] | None = None,
        tokenizer: str | None = None,
        languages: list[str] | None = None,
        layer: int | None = None,
        center: bool = False,
        n_boot: int = 1000,
        exclude_from_aggregates: list[str] | None = None,
        predictions_dir: str | None = None,
        seed: int | None = None,
    ) -> None:
        """Set up the module; the encoder is built in ``configure_model``.

        Args:
            encoder: a transformers model type (random init), an export directory or hub id
                (``from_pretrained``), or an MLM checkpoint ``*.ckpt`` of ``xlt fit``.
            config: overrides of the encoder's transformers config (``num_hidden_layers`` ... for a random one).
            tokenizer: the tokenizer (linked from ``data.tokenizer``); its vocabulary must fit the encoder's.
            languages: language codes in the order of the batches' ``lang`` indices (linked from the data).
            layer: index into the encoder's hidden states whose mean is the sentence embedding: ``0`` =
                embedding output, ``i`` = output of layer ``i``, negative = from the top (``-1`` = last).
                Default: ``num_hidden_layers // 2 + 1`` (XTREME's layer 7 of 12).
            center: subtract each language's mean sentence embedding (and the pivot's) before the cosine —
                per-language centring (Libovický et al., 2020), which removes the language-specific offset of an
                encoder's embeddings. Default: off, XTREME's protocol.
            n_boot: bootstrap resamples of the confidence intervals.
            exclude_from_aggregates: languages reported on their own but left out of macro and group means.
            predictions_dir: write each language's nearest pivot rows (``test-<lang>.tsv``, XTREME layout) here.
            seed: seed of the bootstrap (and of a random encoder's initialisation). Default:
                ``seed_everything``'s seed, else 0.
        """
        super().__init__(encoder=encoder, config=config, tokenizer=tokenizer, languages=languages, n_boot=n_boot,
                         exclude_from_aggregates=exclude_from_aggregates, predictions_dir=predictions_dir,
                         test_after_fit=False, seed=seed)
        # this signature's arguments only: the base's optimizer and export settings do not apply
        self.save_hyperparameters(ignore=["lr", "weight_decay", "warmup_ratio", "export_dir", "test_after_fit"])
        self.layer, self.center = layer, center
        self.layer_index: int | None = None

    # ------------------------------------------------------------------------------------------ construction
    def new_metric(self) -> Metric:
        """P@1 in both directions, keeping row indices for prediction files."""
        return IndexedRetrievalP1(center=self.center)

    def setup(self, stage: str) -> None:
        """Refuse ``fit``; otherwise take languages and panel from the data module."""
        if stage == "fit":
            raise XltError(f"{type(self).__name__} has nothing to train (a frozen encoder's sentence embeddings) — "
                           "run `xlt test` (or `xlt validate`) instead of `xlt fit`")
        super().setup(stage)

    def configure_model(self) -> None:
        """Build the encoder and resolve ``layer`` against its depth."""
        super().configure_model()
        self.layer_index = self._layer_of(self.model.config)

    def check_encoder(self, config: Any, datamodule: Any) -> None:
        """Also check ``layer`` against the encoder's depth."""
        super().check_encoder(config, datamodule)
        self._layer_of(config)

    def _layer_of(self, config: Any) -> int:
        """The hidden-state index of ``layer`` (default ``L // 2 + 1``) in an encoder of ``config``'s depth."""
        depth = int(config.num_hidden_layers)
        layer = depth // 2 + 1 if self.layer is None else int(self.layer)
        if not -(depth + 1) <= layer <= depth:
            raise XltError(f"model.layer {layer} is outside the encoder's hidden states 0..{depth} "
                           f"(or -{depth + 1}..-1) — pick a layer of the {depth}-layer encoder")
        return layer % (depth + 1)

    # ------------------------------------------------------------------------------------------ embeddings
    def embed(self, input_ids: Tensor, attention_mask: Tensor, special_tokens_mask: Tensor | None = None) -> Tensor:
        """Sentence embeddings ``[B, D]``: mean-pooled hidden states of :attr:`layer_index`."""
        assert self.model is not None and self.layer_index is not None, "call configure_model() first"
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return mean_pool(out.hidden_states[self.layer_index], attention_mask, special_tokens_mask)

    def embed_pairs(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Embeddings of a batch's language side and pivot side."""
        return (self.embed(batch["input_ids"], batch["attention_mask"], batch.get("special_tokens_mask")),
                self.embed(batch["pivot_ids"], batch["pivot_attention_mask"], batch.get("pivot_special_tokens_mask")))

    # ------------------------------------------------------------------------------------------ steps
    def training_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Never called: retrieval has nothing to train."""
        raise XltError(f"{type(self).__name__} has nothing to train — run `xlt test` (or `xlt validate`)")

    def evaluate_batch(self, batch: dict[str, Tensor], metric: Metric, code: str, stage: str) -> None:
        """Add the batch's pair embeddings; retrieval runs over all pairs of the language at the epoch end."""
        source, target = self.embed_pairs(batch)
        metric.update(source, target, batch["index"])

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> list[dict[str, Any]]:
        """Sentence embeddings of both sides of each pair, with its language and row."""
        source, target = self.embed_pairs(batch)
        return [{"lang": self.languages[int(lang)], "index": int(index), "embedding": s.tolist(),
                 "pivot_embedding": t.tolist()}
                for lang, index, s, t in zip(batch["lang"], batch["index"], source, target, strict=True)]

    # ------------------------------------------------------------------------------------------ metrics
    def metric_values(self, metric: Metric) -> dict[str, float]:
        """``p1`` (mean of both directions), ``p1_src2tgt`` (language -> pivot) and ``p1_tgt2src``."""
        value = metric.compute()
        return {"p1": float(value["mean"]), "p1_src2tgt": float(value["src2tgt"]),
                "p1_tgt2src": float(value["tgt2src"])}

    def per_example(self, metric: Metric, name: str) -> PerExample:
        """Per-pair hits of one direction, or (``p1``) each pair's mean of its two hits."""
        if name == "p1":
            both = [metric.per_example(d).values[:, 0] for d in ("src2tgt", "tgt2src")]
            return PerExample.mean((both[0] + both[1]) / 2)
        return metric.per_example(name.removeprefix("p1_"))

    def on_test_epoch_end(self) -> None:
        """Record each language's nearest pivot rows (for ``predictions_dir``), then disaggregate and log."""
        if self.predictions_dir is not None:
            for code in self._updated("test"):
                rows, nearest = self.metrics[f"test_{code}"].nearest()
                self.record(code, rows, nearest.tolist())
        super().on_test_epoch_end()

