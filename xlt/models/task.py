"""The shared base of the task modules: encoder loading, fine-tuning, per-language evaluation, MLflow, export.

A task module wraps a Hugging Face task model (``AutoModelForSequenceClassification``,
``AutoModelForTokenClassification``, ``AutoModelForQuestionAnswering`` or the bare ``AutoModel`` for
retrieval), so a fine-tuned model exports with ``save_pretrained`` and loads back with the matching
``AutoModelFor*.from_pretrained``. The encoder comes from

- a transformers model type (``xlm-roberta``, ``bert``...) + ``config`` overrides: random initialisation;
- an export directory (``xlt fit`` MLM export, ``xlt consolidate`` output) or a hub id (``xlm-roberta-base``,
  ``bert-base-multilingual-cased``): ``from_pretrained``, a new head on top;
- a Lightning checkpoint of :class:`~xlt.models.mlm.MLMPretraining` (``*.ckpt``): its encoder weights.

Labels and languages come from the data module (``setup``) and are saved in the checkpoint's hyperparameters,
so ``xlt test --ckpt_path`` rebuilds the same head. Evaluation keeps one metric per language; at the end of
``test`` the per-example statistics go through :func:`~xlt.evaluation.disaggregation.disaggregate` (macro,
family / script / bucket groups, bottom decile, bootstrap CIs) and :func:`~xlt.evaluation.mlflow_logging.log_evaluation`
(metrics ``test/<task>/<metric>/<group>``, tables and plots as MLflow artifacts). Predictions can be written in
XTREME's submission layout (``predictions_dir/test-<lang>.tsv|json``).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
from torch import nn
from torchmetrics import Metric
from transformers import PreTrainedModel

from xlt.adapters.config import AdapterSetup
from xlt.adapters.install import InstalledAdapters, check_saved_base, install_adapters, without_adapters
from xlt.atomic import atomic_dir, atomic_file
from xlt.errors import XltError
from xlt.evaluation.disaggregation import EvaluationResult, disaggregate
from xlt.models.checkpoints import mlm_checkpoint
from xlt.models.encoder import build_config, in_train_mode, is_model_type, log_parameter_counts, usable_positions
from xlt.models.optimization import adamw_param_groups, lr_factor
from xlt.progress import quiet_progress_bars
from xlt.seeding import derive_seed


def _mlm_checkpoint_config(path: Path) -> tuple[Any, dict[str, torch.Tensor]]:
    """The transformers config and the encoder weights (base-model keys) of an MLMPretraining checkpoint."""
    mlm, state = mlm_checkpoint(path, "model.encoder")
    weights = {key.removeprefix("model."): value for key, value in state.items() if key.startswith("model.")}
    return mlm.hf_config, weights


def build_task_model(auto_class: Any, encoder: str, overrides: dict[str, Any] | None = None,
                     **head: Any) -> PreTrainedModel:
    """A transformers task model (``auto_class``) on ``encoder`` with head settings ``head`` (e.g.
    ``num_labels``, ``id2label``); see the module docstring for the kinds of ``encoder``."""
    overrides = dict(overrides or {})
    path = Path(encoder)
    if path.suffix == ".ckpt":
        if not path.is_file():
            raise XltError(f"model.encoder checkpoint {encoder} not found — check the path")
        config, weights = _mlm_checkpoint_config(path)
        for key, value in {**overrides, **head}.items():
            setattr(config, key, value)
        model = auto_class.from_config(config)
        prefix = model.base_model_prefix + "."
        base = {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}
        missing, _ = model.base_model.load_state_dict(base, strict=False)
        missing = [k for k in missing if not k.startswith("pooler.")]
        if missing:
            raise XltError(f"model.encoder {encoder}: checkpoint lacks encoder weights {missing[:3]} — "
                           "is it an MLM checkpoint of the same architecture?")
        return model
    if is_model_type(encoder):
        config = build_config(encoder, overrides)
        for key, value in head.items():
            setattr(config, key, value)
        return auto_class.from_config(config)
    config = build_config(encoder, overrides)  # XltError for a missing directory / unknown id
    for key, value in head.items():
        setattr(config, key, value)
    with quiet_progress_bars():  # no "Loading weights" bar
        return in_train_mode(auto_class.from_pretrained(encoder, config=config))


def _float64(value: float) -> torch.Tensor:
    """A metric value for ``self.log``: Lightning turns a Python float into float32 (errors up to 3e-6 F1 points)
    but keeps a float64 tensor as it is, down to the MLflow store."""
    return torch.tensor(value, dtype=torch.float64)


class TaskModule(pl.LightningModule):
    """Base of the task modules (fine-tuning and zero-/few-shot evaluation on a task data module)."""

    #: the transformers auto class of the task model
    auto_class: ClassVar[Any] = None
    #: metric names logged by the module, the first is the primary one (e.g. ``("acc",)``)
    metric_names: ClassVar[tuple[str, ...]] = ()
    #: whether the module has something to fine-tune
    trainable: ClassVar[bool] = True

    def __init__(
        self,
        encoder: str = "xlm-roberta",
        config: dict[str, Any] | None = None,
        tokenizer: str | None = None,
        languages: list[str] | None = None,
        labels: list[str] | None = None,
        lr: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        n_boot: int = 1000,
        exclude_from_aggregates: list[str] | None = None,
        predictions_dir: str | None = None,
        export_dir: str | None = None,
        test_after_fit: bool = True,
        seed: int | None = None,
        adapters: AdapterSetup | None = None,
    ) -> None:
        """Set up the module; the transformers model is built in ``configure_model``.

        Args:
            encoder: a transformers model type (random init), an export directory or hub id
                (``from_pretrained``), or an MLM checkpoint ``*.ckpt`` of ``xlt fit``.
            config: overrides of the encoder's transformers config (``hidden_dropout_prob``,
                ``num_hidden_layers`` for a random encoder ...).
            tokenizer: the tokenizer (linked from ``data.tokenizer``); its vocabulary must fit the encoder's.
            languages: language codes in the order of the batches' ``lang`` indices (linked from the data).
            labels: label names of the head (default: the data's training label set; saved in checkpoints).
            lr: peak learning rate of AdamW.
            weight_decay: AdamW weight decay (not on biases and LayerNorm weights).
            warmup_ratio: fraction of training steps of linear warmup, then linear decay to 0.
            n_boot: bootstrap resamples of the confidence intervals.
            exclude_from_aggregates: languages reported on their own but left out of macro and group means
                (e.g. ``[eng]`` to average over transfer targets only).
            predictions_dir: write test predictions in XTREME's layout (``test-<lang>.tsv|json``) here.
            export_dir: where the fine-tuned model and tokenizer are saved at the end of fit. Default:
                ``<default_root_dir>/export``.
            test_after_fit: ``xlt fit`` evaluates the best checkpoint (or the final model) on the test split of
                every evaluation language after training.
            seed: seed of head initialisation and dropout. Default: ``seed_everything``'s seed, else 0.
            adapters: language adapters loaded from MLM adapter runs (routed per example by its language, so each
                evaluation language goes through its own adapter), a task adapter stacked on them, and what trains
                (:class:`~xlt.adapters.config.AdapterSetup`, e.g. ``configs/adapters/madx.yaml``). Default: none.
        """
        super().__init__()
        self.save_hyperparameters()
        self.encoder, self.config_overrides = encoder, dict(config or {})
        self.tokenizer_dir, self.languages = tokenizer, list(languages or [])
        self.labels = list(labels) if labels else None
        self.lr, self.weight_decay, self.warmup_ratio = lr, weight_decay, warmup_ratio
        self.n_boot = n_boot
        self.exclude_from_aggregates = list(exclude_from_aggregates or [])
        self.predictions_dir, self.export_dir = predictions_dir, export_dir
        self.test_after_fit, self._seed = test_after_fit, seed
        self.adapter_setup = AdapterSetup.from_value(adapters)
        if self.adapter_setup is not None:  # checkpoints hold plain types (they load with weights_only=True)
            self.hparams["adapters"] = self.adapter_setup.config()
        self.adapters: InstalledAdapters | None = None
        self.model: PreTrainedModel | None = None
        self.task = ""
        self.panel = None
        self.train_languages: list[str] = []
        self.metrics = nn.ModuleDict()
        self.predictions: dict[str, dict[int, Any]] = {}
        self.results: list[EvaluationResult] = []

    @property
    def seed(self) -> int:
        """``seed`` if given, else ``PL_GLOBAL_SEED`` (``seed_everything``), else 0."""
        return int(self._seed if self._seed is not None else os.environ.get("PL_GLOBAL_SEED", 0))

    # ------------------------------------------------------------------------------------------ construction
    def new_metric(self) -> Metric:
        """A fresh metric of the task for one language and stage."""
        raise NotImplementedError

    def head_settings(self) -> dict[str, Any]:
        """Config attributes of the task head (e.g. ``num_labels``, ``id2label``)."""
        if not self.labels:
            return {}
        return {"num_labels": len(self.labels), "id2label": dict(enumerate(self.labels)),
                "label2id": {name: i for i, name in enumerate(self.labels)}}

    def setup(self, stage: str) -> None:
        """Take task, languages, labels and panel from the data module; check labels and vocabulary."""
        datamodule = self.trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "task"):
            raise XltError("task modules need a task data module (data.class_path: xlt.datamodules.<task>...)")
        self.task, self.panel = datamodule.task, datamodule.panel
        self.train_languages = list(datamodule.train_languages)
        self.languages = list(datamodule.language_codes)
        data_labels = datamodule.label_names
        if self.labels is None:
            self.labels = list(data_labels) if data_labels else None
            self.hparams["labels"] = self.labels
        elif data_labels is not None and list(data_labels) != list(self.labels):
            raise XltError(f"the model's labels {self.labels} differ from the data's {list(data_labels)} "
                           f"({self.task}) — map the data's labels with data.label_map or fine-tune a new head")
        self.hparams["languages"] = self.languages
        for stage_name in ("val", "test"):
            for code in self.languages:
                key = f"{stage_name}_{code}"
                if key not in self.metrics:
                    self.metrics[key] = self.new_metric()

    def configure_model(self) -> None:
        """Build the transformers task model (idempotent); check it against the tokenizer and data lengths."""
        if self.model is not None:
            return
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):  # the head's initialisation depends on the seed alone
            torch.manual_seed(derive_seed("task_init", self.seed))
            self.model = build_task_model(self.auto_class, self.encoder, self.config_overrides, **self.head_settings())
            datamodule = self.trainer.datamodule if self._trainer is not None else None
            if self.adapter_setup is not None:
                plan = self.adapter_plan(self.model.config, datamodule)
                self.adapters = install_adapters(self.model, self.adapter_setup, plan, self.languages, self.encoder)
        if datamodule is not None:
            self.check_encoder(self.model.config, datamodule)

    def check_data(self, datamodule: Any) -> None:
        """Fail on settings that cannot run with ``datamodule``, from configs alone: the CLI calls this before any
        logger, cache or store is created (an unknown encoder or config key, a tokenizer larger than the encoder's
        vocabulary, ``max_length`` beyond its positions)."""
        path = Path(self.encoder)
        if path.suffix == ".ckpt":
            if not path.is_file():
                raise XltError(f"model.encoder checkpoint {self.encoder} not found — check the path")
            config, _ = _mlm_checkpoint_config(path)
            for key, value in self.config_overrides.items():
                setattr(config, key, value)
        else:
            config = build_config(self.encoder, self.config_overrides)
        self.check_encoder(config, datamodule)
        if self.adapter_setup is not None:
            check_saved_base(self.adapter_plan(config, datamodule), self.encoder, config)

    def adapter_plan(self, config: Any, datamodule: Any) -> Any:
        """The adapter setup resolved for ``datamodule``'s languages, panel, source languages and task."""
        assert self.adapter_setup is not None
        languages = list(getattr(datamodule, "language_codes", None) or self.languages)
        return self.adapter_setup.plan(languages, getattr(datamodule, "panel", None), int(config.hidden_size),
                                       source=list(getattr(datamodule, "train_languages", []) or []),
                                       task=getattr(datamodule, "task", None) or "task",
                                       num_layers=int(config.num_hidden_layers))

    def check_encoder(self, config: Any, datamodule: Any) -> None:
        """Check the encoder's transformers ``config`` against the data module's tokenizer and lengths."""
        if getattr(datamodule, "tokenizer_dir", None) is None:
            return
        vocab = datamodule.vocab_size
        if vocab > config.vocab_size:
            raise XltError(f"tokenizer {datamodule.tokenizer_dir} has {vocab} ids but the encoder {self.encoder} "
                           f"has {config.vocab_size} embeddings — use the encoder's own tokenizer")
        limit = usable_positions(config)
        if datamodule.max_length > limit:
            raise XltError(f"data.max_length {datamodule.max_length} exceeds the encoder's {limit} positions — "
                           "lower data.max_length")

    # ------------------------------------------------------------------------------------------ steps
    def model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The encoder inputs of a batch (and, with language adapters, its examples routed by language)."""
        if self.adapters is not None:
            self.adapters.route(batch.get("lang"), len(batch["input_ids"]), batch["input_ids"].device)
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The task loss of a training batch."""
        raise NotImplementedError

    def evaluate_batch(self, batch: dict[str, torch.Tensor], metric: Metric, code: str, stage: str) -> None:
        """Update ``metric`` (language ``code``) with a batch; record predictions when testing."""
        raise NotImplementedError

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Task loss; dropout reseeded from (seed, step, rank) so a resumed run continues identically."""
        torch.manual_seed(derive_seed("task_train", self.seed, self.global_step, self.global_rank))
        loss = self.training_loss(batch)
        self.log(f"train/{self.task}/loss", loss, on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=len(batch["input_ids"]))
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        code = self.languages[int(batch["lang"][0])]
        self.evaluate_batch(batch, self.metrics[f"{stage}_{code}"], code, stage)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Update the language's validation metric."""
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Update the language's test metric and record predictions."""
        self._evaluate(batch, "test")

    def metric_values(self, metric: Metric) -> dict[str, float]:
        """Metric name -> value of a computed metric."""
        value = metric.compute()
        if isinstance(value, dict):
            return {name: float(value[name]) for name in self.metric_names}
        return {self.metric_names[0]: float(value)}

    def per_example(self, metric: Metric, name: str) -> Any:
        """Per-example statistics of ``name`` for the bootstrap."""
        return metric.per_example()

    def _updated(self, stage: str) -> list[str]:
        """The languages evaluated in ``stage``: the data module's split languages (the same on every rank, so
        metric syncs are collective calls every rank makes), else those whose metric saw batches."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and hasattr(datamodule, "splits"):
            languages = list(datamodule.splits.get("dev" if stage == "val" else "test", {}))
            if languages:
                return [code for code in self.languages if code in languages]
        return [code for code in self.languages if self.metrics[f"{stage}_{code}"].update_count > 0]

    def on_validation_epoch_end(self) -> None:
        """Log ``val/<task>/<metric>/<lang>`` and ``.../macro`` (mean over the model-selection languages)."""
        codes = self._updated("val")
        values: dict[str, list[float]] = {}
        for code in codes:
            metric = self.metrics[f"val_{code}"]
            for name, value in self.metric_values(metric).items():
                self.log(f"val/{self.task}/{name}/{code}", _float64(value))
                values.setdefault(name, []).append(value)
            metric.reset()
        for name, scores in values.items():
            self.log(f"val/{self.task}/{name}/macro", _float64(sum(scores) / len(scores)),
                     prog_bar=name == self.metric_names[0])

    def on_test_epoch_end(self) -> None:
        """Disaggregate every metric (per language, macro, groups, CIs), log them to MLflow, write predictions."""
        codes = self._updated("test")
        if not codes:
            return
        self.results = []
        for name in self.metric_names:
            scores = {code: self.per_example(self.metrics[f"test_{code}"], name) for code in codes}
            self.results.append(disaggregate(scores, self.panel, stage="test", task=self.task, metric=name,
                                             n_boot=self.n_boot, seed=self.seed,
                                             exclude=[c for c in self.exclude_from_aggregates if c in codes]))
        for code in codes:
            self.metrics[f"test_{code}"].reset()
        self._log_results()
        if self.predictions_dir is not None:
            self._write_predictions()

    def _log_results(self) -> None:
        from xlt.callbacks.tracking import mlflow_loggers
        from xlt.evaluation.mlflow_logging import log_evaluation

        if self._trainer is None or not self.trainer.is_global_zero:
            return
        for logger in mlflow_loggers(self.trainer):
            log_evaluation(self.results, logger.run_id, client=logger.experiment)
            datamodule = self.trainer.datamodule
            tags = {"xlt.task": self.task, "xlt.encoder": self.encoder, "xlt.seed": self.seed,
                    "xlt.few_shot": getattr(datamodule, "few_shot", 0),
                    "xlt.model_selection": getattr(datamodule, "model_selection", ""),
                    "xlt.train_languages": ",".join(self.train_languages),
                    "xlt.panel": getattr(datamodule, "panel_spec", self.panel.name)}
            tags.update(self.run_tags())
            for key, value in tags.items():
                logger.experiment.set_tag(logger.run_id, key, str(value))
        for result in self.results:
            self.print(f"\n{result.stage}/{result.task}/{result.metric}\n{result.to_markdown()}")

    def run_tags(self) -> dict[str, str]:
        """Task-specific MLflow run tags set at test end next to the common ``xlt.*`` ones (e.g. the QA answer
        normalisation)."""
        return {}

    # ------------------------------------------------------------------------------------------ predictions
    def record(self, code: str, indices: torch.Tensor, predictions: list[Any]) -> None:
        """Remember test predictions of rows ``indices`` of language ``code`` (for prediction files)."""
        if self.predictions_dir is None:
            return
        store = self.predictions.setdefault(code, {})
        for index, prediction in zip(indices.tolist(), predictions, strict=True):
            store[int(index)] = prediction

    def prediction_file(self, code: str, predictions: dict[int, Any]) -> tuple[str, str]:
        """``(file name, text)`` of one language's predictions in XTREME's layout."""
        ordered = [predictions[i] for i in sorted(predictions)]
        return f"test-{code}.tsv", "".join(f"{p}\n" for p in ordered)

    def _write_predictions(self) -> None:
        predictions = self.predictions
        if self._trainer is not None and self.trainer.world_size > 1:
            gathered: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, predictions)
            predictions = {}
            for part in gathered:
                for code, rows in part.items():
                    predictions.setdefault(code, {}).update(rows)
        if self._trainer is None or self.trainer.is_global_zero:
            out = Path(self.predictions_dir)
            out.mkdir(parents=True, exist_ok=True)
            written = []
            for code in sorted(predictions):
                name, text = self.prediction_file(code, predictions[code])
                with atomic_file(out / name) as handle:
                    handle.write(text)
                written.append(out / name)
            self._log_predictions(written)
        self.predictions = {}

    def _log_predictions(self, files: list[Path]) -> None:
        """The prediction files also go to the run's MLflow artifacts (``predictions/``), so that paired comparisons
        (``xlt experiment report``) read them from the store like every other number."""
        from xlt.callbacks.tracking import mlflow_loggers

        if self._trainer is None:
            return
        for logger in mlflow_loggers(self.trainer):
            for path in files:
                logger.experiment.log_artifact(logger.run_id, str(path), "predictions")

    def on_fit_start(self) -> None:
        """Print the trainable / total parameter counts and log them as MLflow params."""
        log_parameter_counts(self)

    # ------------------------------------------------------------------------------------------ optimizer
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (no decay on biases / LayerNorm), linear warmup for ``warmup_ratio`` of the steps, linear decay."""
        if not self.trainable:
            raise XltError(f"{type(self).__name__} has nothing to train — run `xlt test` (or `xlt validate`)")
        optimizer = torch.optim.AdamW(adamw_param_groups(self, self.weight_decay), lr=self.lr)
        total = float(self.trainer.estimated_stepping_batches)
        if not math.isfinite(total) or total <= 0:
            raise XltError("fine-tuning needs a known number of steps — set trainer.max_steps or trainer.max_epochs")
        warmup = int(self.warmup_ratio * total)
        schedule = functools.partial(lr_factor, warmup_steps=warmup, total_steps=total, schedule="linear")
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------------------------------ export
    def export(self, path: str | Path) -> Path:
        """Save the task model (``AutoModelFor*.from_pretrained`` loads it) and the tokenizer, atomically; with
        adapters, the model without them (not merged) and each trained adapter alone under ``path/adapters/``."""
        assert self.model is not None, "call configure_model() first"
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        with atomic_dir(path, overwrite=True) as tmp, quiet_progress_bars():  # no "Writing model shards" bar
            if self.adapters is None:
                self.model.save_pretrained(tmp)
            else:
                self.model.save_pretrained(tmp, state_dict=without_adapters(self.model.state_dict()))
                self.adapters.save(self.model, tmp / "adapters", task=self.task)
            if datamodule is not None and datamodule.tokenizer_dir is not None:
                datamodule.tokenizer_for(datamodule.source_language).save_pretrained(tmp)
        return Path(path)

    def on_fit_end(self) -> None:
        """Export the fine-tuned model on rank 0."""
        if self.trainer.is_global_zero:
            self.export(self.export_dir or Path(self.trainer.default_root_dir) / "export")
        self.trainer.strategy.barrier("xlt_task_export")
