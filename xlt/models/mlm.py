"""Masked-language-model pretraining of a transformers encoder as a LightningModule.

The MLM head runs only on the masked positions (about 15% of tokens), not on every position: the base
encoder's hidden states are gathered where ``labels != -100`` and only those rows go through the head's
transform and the (tied) vocabulary projection. The loss equals the full-forward loss of
``AutoModelForMaskedLM``.

All per-step randomness is re-seeded at the start of every training step, so a run resumed from a checkpoint
continues exactly like an uninterrupted one: dropout from ``(seed, global_step, rank, micro-batch)``, masking
from ``(seed, global_step, micro-batch)`` for the global batch (each rank keeps its rows), and the loss is the
global token mean, so W data-parallel ranks train like one process with a W times larger batch
(:mod:`xlt.models.data_parallel`). Under ``ModelParallelStrategy`` the model is sharded with FSDP2 in
``configure_model`` (:mod:`xlt.models.sharding`).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import Metric
from transformers import PretrainedConfig, PreTrainedModel

from xlt.adapters.config import AdapterSetup
from xlt.adapters.install import InstalledAdapters, check_saved_base, install_adapters, without_adapters
from xlt.adapters.invertible import invertible_site
from xlt.atomic import atomic_dir
from xlt.errors import XltError
from xlt.models.data_parallel import global_token_mean, mask_global_rows
from xlt.models.embeddings import VocabularyLayout, build_masked_lm_for_vocabulary
from xlt.models.encoder import build_config, build_masked_lm, log_parameter_counts, usable_positions
from xlt.models.masking import IGNORE_INDEX, TokenMasker
from xlt.models.optimization import adamw_param_groups, lr_factor
from xlt.progress import quiet_progress_bars
from xlt.seeding import derive_seed

# xlt tokenizers use the fairseq/XLM-R layout: <s>=0 <pad>=1 </s>=2 <unk>=3, <mask> = last id.
FAIRSEQ_UNK_ID = 3


def mlm_head(model: PreTrainedModel) -> nn.Module:
    """The masked-LM head (transform + tied decoder): hidden states ``[..., d]`` -> logits ``[..., V]``.

    Supports RoBERTa/XLM-R (``lm_head``) and BERT (``cls.predictions``).
    """
    if isinstance(getattr(model, "lm_head", None), nn.Module):
        return model.lm_head
    cls = getattr(model, "cls", None)
    if cls is not None and isinstance(getattr(cls, "predictions", None), nn.Module):
        return cls.predictions
    raise TypeError(f"{type(model).__name__} has no supported MLM head (lm_head or cls.predictions)")


def masked_head_logits(
    model: PreTrainedModel, input_ids: torch.Tensor, selected: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Base encoder on ``input_ids``, then the MLM head on the ``selected`` positions only: logits ``[N, V]``.

    ``configure_model`` installs it as ``model.masked_head_logits`` so that, on an FSDP2-sharded model, the
    root's hooks (gather embeddings and head, gradient reduction) run around it as around ``model(...)``.
    """
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    invertible = invertible_site(model)
    if invertible is not None:  # back into the embedding space of the tied decoder (MAD-X)
        hidden = invertible.inverse(hidden)
    return mlm_head(model)(hidden[selected])


class LanguageLossSums(Metric):
    """Token-weighted masked-LM loss sums per language; synced across ranks by summation."""

    full_state_update = False

    def __init__(self, num_languages: int) -> None:
        super().__init__()
        self.add_state("loss_sum", torch.zeros(num_languages, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", torch.zeros(num_languages, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, token_losses: torch.Tensor, token_langs: torch.Tensor) -> None:
        """Add per-token losses ``[N]`` for tokens of languages ``[N]`` (indices)."""
        self.loss_sum.index_add_(0, token_langs, token_losses.detach().to(self.loss_sum.dtype))
        self.tokens.index_add_(0, token_langs, torch.ones_like(self.tokens[token_langs]))

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss_sum, tokens)`` per language."""
        return self.loss_sum, self.tokens


class MLMPretraining(pl.LightningModule):
    """Masked-language-model pretraining of a multilingual encoder (loss only on masked positions)."""

    def __init__(
        self,
        encoder: str = "xlm-roberta",
        config: dict[str, Any] | None = None,
        tokenizer: str | None = None,
        languages: list[str] | None = None,
        mask_prob: float = 0.15,
        lr: float = 5e-4,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-6,
        warmup_steps: int = 100,
        schedule: Literal["linear", "cosine", "constant"] = "linear",
        export_dir: str | None = None,
        seed: int | None = None,
        adapters: AdapterSetup | None = None,
    ) -> None:
        """Set up the module; the transformers model itself is built later, in ``configure_model``.

        Args:
            encoder: A transformers model type for random initialisation (``xlm-roberta``, ``bert``,
                ``roberta`` ...) or a local directory / hub id to start from pretrained weights.
            config: Overrides of the encoder's transformers config (``num_hidden_layers``,
                ``hidden_size``, ``num_attention_heads``, ``intermediate_size``, ``max_position_embeddings``,
                ``vocab_size`` ...).
            tokenizer: Tokenizer directory (xlt layout). When given, it sets the vocabulary size and the
                special token ids (it wins over ``config.vocab_size``) and its HF files are exported with the
                model. Without it, ids follow xlt's layout: ``<s>``/``<pad>``/``</s>`` from the config,
                ``<unk>`` = 3, ``<mask>`` = vocab_size - 1.
            languages: Language codes in the order of the batches' ``lang`` indices; validation metrics are
                reported per language under these names. Default: one group named ``all``.
            mask_prob: Fraction of non-special tokens selected for prediction (80% become ``<mask>``, 10% a
                random token, 10% unchanged).
            lr: Peak learning rate of AdamW.
            weight_decay: AdamW weight decay (not applied to biases and LayerNorm weights).
            betas: AdamW betas.
            eps: AdamW epsilon.
            warmup_steps: Optimizer steps of linear warmup from 0 to ``lr``.
            schedule: Learning-rate decay after warmup: ``linear`` or ``cosine`` to 0 at the trainer's last
                step, or ``constant``.
            export_dir: Where the final model and tokenizer are saved (``save_pretrained``) at the end of fit.
                Default: ``<trainer.default_root_dir>/export``.
            seed: Seed of masking and dropout (re-derived at every step). Default: the seed set by
                ``seed_everything`` (``PL_GLOBAL_SEED``), else 0.
            adapters: Language adapters (MAD-X) routed per example by the batch's language, and which parts
                train (:class:`~xlt.adapters.config.AdapterSetup`, e.g. ``configs/adapters/lang_adapter_mlm.yaml``).
                Trained adapters are saved alone under ``<export_dir>/adapters/<code>``. Default: none.
        """
        super().__init__()
        self.save_hyperparameters()
        self.encoder = encoder
        self.config_overrides = dict(config or {})
        self.tokenizer_dir = tokenizer
        self.languages = list(languages) if languages else ["all"]
        self.mask_prob = mask_prob
        self.lr = lr
        self.weight_decay = weight_decay
        self.betas = tuple(betas)
        self.eps = eps
        self.warmup_steps = warmup_steps
        self.schedule = schedule
        self.export_dir = export_dir
        self._seed = seed
        self.adapter_setup = AdapterSetup.from_value(adapters)
        if self.adapter_setup is not None:  # checkpoints hold plain types (they load with weights_only=True)
            self.hparams["adapters"] = self.adapter_setup.config()
        self.adapters: InstalledAdapters | None = None
        self.model: PreTrainedModel | None = None
        self._hf_config: PretrainedConfig | None = None
        self._masker: TokenMasker | None = None
        self._layout: VocabularyLayout | None = None  # language blocks of the tokenizer (configuration d)
        self._generators: dict[torch.device, torch.Generator] = {}
        self.val_sums = LanguageLossSums(len(self.languages))

    # ----------------------------------------------------------------------------------------- construction
    @property
    def seed(self) -> int:
        """The run seed: ``seed`` if given, else ``PL_GLOBAL_SEED`` (set by ``seed_everything``), else 0."""
        if self._seed is not None:
            return int(self._seed)
        return int(os.environ.get("PL_GLOBAL_SEED", 0))

    def _load_tokenizer(self) -> Any:
        from xlt.tokenization.tokenizer import XltTokenizer

        return XltTokenizer.load(self.tokenizer_dir)

    @property
    def hf_config(self) -> PretrainedConfig:
        """The transformers config (overrides and tokenizer applied); built on first use, no weights."""
        if self._hf_config is None:
            overrides = dict(self.config_overrides)
            if self.tokenizer_dir is not None:
                tok = self._load_tokenizer()
                if overrides.get("vocab_size", tok.vocab_size) != tok.vocab_size:
                    rank_zero_warn(
                        f"model.config.vocab_size={overrides['vocab_size']} ignored: the tokenizer "
                        f"{self.tokenizer_dir} has {tok.vocab_size} ids"
                    )
                overrides.update(
                    vocab_size=tok.vocab_size,
                    pad_token_id=tok.pad_id,
                    bos_token_id=tok.bos_id,
                    eos_token_id=tok.eos_id,
                )
                special = set(tok.special_ids) | {tok.mask_id}
                mask_id = tok.mask_id
                if getattr(tok, "blocks", None):  # block rows learn from their language's text only (embeddings.py)
                    self._layout = VocabularyLayout.from_tokenizer(tok)
                config = build_config(self.encoder, overrides)
            else:
                config = build_config(self.encoder, overrides)
                mask_id = config.vocab_size - 1
                special = {FAIRSEQ_UNK_ID, mask_id} | {
                    i for i in (config.bos_token_id, config.pad_token_id, config.eos_token_id) if i is not None
                }
            self._masker = TokenMasker(config.vocab_size, mask_id, special, mask_prob=self.mask_prob,
                                       replacement_vocab_size=self._layout.shared_size if self._layout else None)
            self._hf_config = config
        return self._hf_config

    @property
    def masker(self) -> TokenMasker:
        """The BERT masker for this vocabulary."""
        self.hf_config  # noqa: B018 - builds the masker
        assert self._masker is not None
        return self._masker

    def configure_model(self) -> None:
        """Build the transformers masked-LM model (idempotent) on the current default device.

        Random initialisation is seeded from ``seed`` and does not touch the global random state.
        """
        if self.model is not None:
            return
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):  # initialisation depends on the seed alone
            torch.manual_seed(derive_seed("init", self.seed))
            config = self.hf_config
            blocks = self._load_tokenizer() if self._layout is not None else None  # block rows: mean init
            self.model = build_masked_lm_for_vocabulary(self.encoder, config, blocks)
            if self.adapter_setup is not None:  # before sharding: the banks join their layers' FSDP groups
                datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
                plan = self.adapter_plan(config, datamodule)
                self.adapters = install_adapters(self.model, self.adapter_setup, plan, self.languages, self.encoder)
        if self.device_mesh is not None:  # set by ModelParallelStrategy (FSDP2): shard layers + root
            from xlt.models.sharding import shard_masked_lm, sharding_options

            strategy = self._trainer.strategy if self._trainer is not None else None
            shard_masked_lm(self.model, self.device_mesh, sharding_options(strategy))
        from xlt.models.sharding import install_forward_method

        install_forward_method(self.model, "masked_head_logits", masked_head_logits)  # runs FSDP root hooks

    def setup(self, stage: str) -> None:
        """Check the model against the data module (the CLI has done so before writing anything)."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        self.check_data(datamodule)

    def check_data(self, datamodule: Any) -> None:
        """Fail on settings that cannot run with ``datamodule``, from configs alone (nothing is read or written;
        the CLI calls this before any logger or cache exists): an unknown encoder or ``model.config`` key, a
        block size beyond the encoder's positions."""
        config = self._hf_config or build_config(self.encoder, self.config_overrides)
        if self.adapter_setup is not None:
            check_saved_base(self.adapter_plan(config, datamodule), self.encoder, config)
        block_size = getattr(datamodule, "block_size", None)
        if block_size is not None:
            limit = usable_positions(config)
            if int(block_size) > limit:
                raise XltError(
                    f"data.block_size {block_size} exceeds model positions {limit} — lower data.block_size "
                    "or raise model.config.max_position_embeddings"
                )

    def adapter_plan(self, config: PretrainedConfig, datamodule: Any) -> Any:
        """The adapter setup resolved for this run's languages, the data module's panel and the encoder's shape."""
        assert self.adapter_setup is not None
        return self.adapter_setup.plan(self.languages, getattr(datamodule, "panel", None), int(config.hidden_size),
                                       num_layers=int(config.num_hidden_layers))

    # ------------------------------------------------------------------------------------------------- math
    def masked_token_losses(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        langs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token cross-entropy at masked positions only.

        Runs the base encoder, gathers hidden states where ``labels != -100`` and applies the MLM head to
        those rows alone. With language blocks (configuration d) and the batch's ``langs`` ``[B]``, a row's
        softmax covers the shared ids and its own language's block only.

        Returns:
            ``(losses [N], selected [B, T] bool)`` with N the number of masked positions.
        """
        assert self.model is not None, "call configure_model() first"
        selected = labels != IGNORE_INDEX
        order = None
        if self.adapters is not None:
            if langs is not None:  # rows sorted by language: adapter sites slice instead of gathering (routing.py)
                langs = langs.to(input_ids.device)
                order = torch.argsort(langs, stable=True)
                input_ids, labels, langs = input_ids[order], labels[order], langs[order]
                attention_mask = attention_mask[order] if attention_mask is not None else None
            self.adapters.route(langs, len(input_ids), input_ids.device)
        rows_selected = labels != IGNORE_INDEX
        # configure_model installs masked_head_logits as a (FSDP-aware) method of the model
        logits = self.model.masked_head_logits(input_ids, rows_selected, attention_mask)
        if self._layout is not None and langs is not None and self.languages != ["all"]:
            row_langs = langs.to(input_ids.device)[:, None].expand_as(input_ids)[rows_selected]
            logits = self._layout.restrict_logits(logits, row_langs, self.languages)
        losses = F.cross_entropy(logits.float(), labels[rows_selected], reduction="none")
        if order is not None:  # back to the batch's own order of masked positions (row-major)
            length = input_ids.shape[1]
            positions = (order[:, None] * length + torch.arange(length, device=order.device))[rows_selected]
            losses = losses[torch.argsort(positions)]
        return losses, selected

    def mlm_loss(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        langs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean cross-entropy over the masked positions (0 with a gradient path if nothing is masked)."""
        losses, _ = self.masked_token_losses(input_ids, labels, attention_mask, langs)
        if losses.numel() == 0:
            return sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
        return losses.mean()

    def _generator(self, device: torch.device, seed: int) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device)
        return self._generators[device].manual_seed(seed)

    def training_step_seed(self, batch_idx: int) -> int:
        """Seed of one training micro-batch, from (seed, global_step, rank, micro-batch in accumulation)."""
        accumulate = self._trainer.accumulate_grad_batches if self._trainer is not None else 1
        return derive_seed("train", self.seed, self.global_step, self.global_rank, batch_idx % accumulate)

    def masking_seed(self, batch_idx: int) -> int:
        """Seed of the masks of one global training micro-batch, from (seed, global_step, micro-batch); the same
        on every rank, so the masks do not depend on how the global batch is split over ranks."""
        accumulate = self._trainer.accumulate_grad_batches if self._trainer is not None else 1
        return derive_seed("mask", self.seed, self.global_step, batch_idx % accumulate)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Mask the block batch, compute the masked-only MLM loss and log it (the learning rate is logged by the
        LearningRateLogger callback, per parameter group).

        Masks are drawn for the global micro-batch and the loss is normalised by its masked-token count
        (:mod:`xlt.models.data_parallel`), so W ranks with batch B train like one process with batch W·B;
        ``train/mlm/loss`` is the global token-mean loss.
        """
        step_seed = self.training_step_seed(batch_idx)
        torch.manual_seed(step_seed)  # dropout (CPU and every CUDA device)
        input_ids = batch["input_ids"]
        world = int(self.trainer.world_size) if self._trainer is not None else 1
        generator = self._generator(input_ids.device, self.masking_seed(batch_idx))
        masked, labels = mask_global_rows(self.masker, input_ids, generator, self.global_rank, world)
        losses, _ = self.masked_token_losses(masked, labels, batch.get("attention_mask"), batch.get("lang"))
        reduce = (lambda t: self.trainer.strategy.reduce(t, reduce_op="sum")) if world > 1 else None
        loss, global_loss = global_token_mean(losses, world, reduce)
        self.log("train/mlm/loss", global_loss, on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=len(input_ids))
        return loss  # the learning rate per parameter group: xlt.callbacks.optim.LearningRateLogger

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        """Accumulate token-weighted masked-LM loss per language (masking fixed: same every epoch)."""
        input_ids = batch["input_ids"]
        # masks of the global batch (last seed slot 0 on every rank), so metrics do not depend on the world size
        seed = derive_seed("val", self.seed, dataloader_idx, batch_idx, 0)
        world = int(self.trainer.world_size) if self._trainer is not None else 1
        generator = self._generator(input_ids.device, seed)
        masked, labels = mask_global_rows(self.masker, input_ids, generator, self.global_rank, world)
        losses, selected = self.masked_token_losses(masked, labels, batch.get("attention_mask"), batch.get("lang"))
        if "lang" in batch and len(self.languages) > 1:
            langs = batch["lang"].to(input_ids.device)[:, None].expand_as(input_ids)[selected]
        else:
            langs = torch.zeros(len(losses), dtype=torch.long, device=input_ids.device)
        self.val_sums.update(losses, langs)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/mlm/{loss,ppl}/<lang>`` and their macro averages (unweighted mean over languages)."""
        loss_sum, tokens = self.val_sums.compute()
        self.val_sums.reset()
        losses, ppls = [], []
        for index, code in enumerate(self.languages):
            if tokens[index] <= 0:
                continue
            loss = float(loss_sum[index] / tokens[index])
            ppl = math.exp(min(loss, 700.0))
            losses.append(loss)
            ppls.append(ppl)
            self.log(f"val/mlm/loss/{code}", loss)
            self.log(f"val/mlm/ppl/{code}", ppl)
        if losses:
            self.log("val/mlm/loss/macro", sum(losses) / len(losses))
            self.log("val/mlm/ppl/macro", sum(ppls) / len(ppls))

    def on_fit_start(self) -> None:
        """Print the trainable / total parameter counts and log them as MLflow params."""
        log_parameter_counts(self)

    # -------------------------------------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (no decay on biases / LayerNorm); warmup then linear / cosine / constant, per step."""
        optimizer = torch.optim.AdamW(
            adamw_param_groups(self, self.weight_decay),
            lr=self.lr,
            betas=self.betas,
            eps=self.eps,
        )
        total = self._total_steps()
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            functools.partial(lr_factor, warmup_steps=self.warmup_steps, total_steps=total, schedule=self.schedule),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    def _total_steps(self) -> float:
        total = float(self.trainer.estimated_stepping_batches)
        if self.schedule != "constant" and (not math.isfinite(total) or total <= 0):
            raise XltError(
                f"model.schedule={self.schedule} needs a known number of steps — set trainer.max_steps "
                "(or max_epochs with a sized dataset) or use model.schedule=constant"
            )
        if self.schedule != "constant" and self.warmup_steps >= total:
            rank_zero_warn(f"model.warmup_steps={self.warmup_steps} >= {int(total)} training steps: lr never decays")
        return total

    # ----------------------------------------------------------------------------------------------- export
    def export_path(self) -> Path:
        """``export_dir``, or ``<trainer.default_root_dir>/export``."""
        if self.export_dir is not None:
            return Path(self.export_dir)
        return Path(self.trainer.default_root_dir) / "export"

    def export(self, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
        """Save the masked-LM model and the tokenizer's HF files to ``path`` (atomically, replacing it); with
        adapters, the model without them and each trained adapter alone under ``path/adapters/``.

        ``state_dict``: the full weights gathered from a sharded model (:func:`xlt.models.sharding.full_state_dict`);
        they are saved from an unsharded twin built on the meta device.
        """
        assert self.model is not None, "call configure_model() first"
        model = self.model
        # adapters are saved alone; the model weights are the base without them (not merged: a bottleneck with a
        # non-linearity has no linear equivalent), so AutoModelForMaskedLM.from_pretrained loads the export
        base_state = None if self.adapters is None else without_adapters(state_dict or self.model.state_dict())
        if state_dict is not None:
            from xlt.models.sharding import unsharded_from_state_dict

            model = unsharded_from_state_dict(lambda: build_masked_lm(self.encoder, self.hf_config, False),
                                              without_adapters(state_dict))
            base_state = None
        with atomic_dir(path, overwrite=True) as tmp, quiet_progress_bars():  # no "Writing model shards" bar
            model.save_pretrained(tmp, state_dict=base_state)
            if self.adapters is not None:
                self.adapters.save(self.model, tmp / "adapters", state=state_dict)
            if self.tokenizer_dir is not None:
                # the HF files and xlt's own (SentencePiece model, manifest, blocks of configuration d), so the
                # export is also a tokenizer directory of further MLM runs on it (language adapters)
                self._load_tokenizer().write_files(tmp)
        return Path(path)

    def on_fit_end(self) -> None:
        """Export the trained model on rank 0 (see :meth:`export`); a sharded model is gathered on every rank first."""
        from xlt.models.sharding import full_state_dict

        state_dict = full_state_dict(self.model)  # a collective when sharded, None otherwise
        if self.trainer.is_global_zero:
            self.export(self.export_path(), state_dict)
        self.trainer.strategy.barrier("xlt_mlm_export")
