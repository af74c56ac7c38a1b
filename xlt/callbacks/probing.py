"""Layer-wise probing during pretraining: a probing round every N optimizer steps, logged over steps and layers.

Each round runs :class:`~xlt.probing.analysis.ProbingAnalysis` on the training model (the same analysis as
``xlt probe``) and logs every layer of every curve at the training step (:func:`xlt.probing.outputs.step_metrics`:
``probe/<property>/<metric>/<group>/layer<k>`` and ``…/peak_layer``), plus the round's curves as
``probing/step_<k>/curves.csv`` in the MLflow run. A round must not change training: the model is switched to
eval mode (no dropout) and back, module by module; the CPU/CUDA, numpy and Python random states are saved and
restored; probes only read detached features. Under DDP rank 0 probes and the other ranks wait at a barrier;
with FSDP2 every rank joins the forward passes (the shards are gathered collectively) and computes the same
seeded round, and rank 0 logs it.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from xlt.errors import XltError
from xlt.probing.analysis import ProbingAnalysis, ProbingRound
from xlt.probing.data import ProbingData, load_probing_data
from xlt.probing.encoder import ProbeEncoder
from xlt.probing.features import analysis_mode
from xlt.probing.outputs import curves_csv, history_csv, step_metrics, write_emergence
from xlt.sources import TextSource, as_task_source


class ProbingCallback(Callback):
    """Probe every layer of the model being trained every ``every_n_steps`` optimizer steps."""

    def __init__(self, every_n_steps: int = 100, data: TextSource | str = "synthetic",
                 analysis: ProbingAnalysis | None = None, source_language: str | None = None,
                 languages: list[str] | None = None, max_sentences: int | None = 64, tokenizer: str | None = None,
                 cache_dir: str = "runs/cache") -> None:
        """A probing round every ``every_n_steps`` steps.

        Args:
            every_n_steps: optimizer steps between rounds (a round runs after step ``k * every_n_steps``).
            data: probing data, as for ``xlt probe``: ``synthetic`` (the panel in ``cache_dir``), a directory with
                ``ud/`` and ``tatoeba/``, or a text source object.
            analysis: what each round computes (default: :class:`~xlt.probing.analysis.ProbingAnalysis`).
            source_language: the probes' training language (default ``eng`` when present, else the pivot).
            languages: evaluation languages (default: all in ``data``).
            max_sentences: sentences per split and language (a seeded sample; small keeps rounds cheap).
            tokenizer: tokenizer directory; default the model's (``model.tokenizer``) or the data module's.
            cache_dir: where the synthetic panel is generated.
        """
        if every_n_steps < 1:
            raise XltError(f"ProbingCallback every_n_steps={every_n_steps} — give a positive number of steps")
        self.every_n_steps = int(every_n_steps)
        self.source = as_task_source(data, cache_dir)
        if self.source.local_dir() is None:
            raise XltError(f"probing data {self.source} is not a local directory — give a directory with ud/ and "
                           "tatoeba/ or the synthetic panel")
        self.analysis = analysis if analysis is not None else ProbingAnalysis()
        self.source_language, self.languages = source_language, languages
        self.max_sentences, self.tokenizer = max_sentences, tokenizer
        self.history: list[tuple[int, ProbingRound]] = []
        self._data: ProbingData | None = None
        self._tokenizer: Any = None
        self._last_step = -1

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Read the probing data once (after the data module prepared the synthetic panel)."""
        if stage != "fit" or self._data is not None:
            return
        self.source.prepare()
        self._data = load_probing_data(self.source.local_dir(), self.source_language, self.languages,
                                       self.max_sentences, self.analysis.seed, need_trees=self.analysis.needs_trees,
                                       need_bitext=self.analysis.needs_bitext)

    def _encoder(self, trainer: Trainer, pl_module: LightningModule) -> ProbeEncoder:
        if self._tokenizer is None:
            from xlt.tokenization.tokenizer import XltTokenizer

            directory = self.tokenizer or getattr(pl_module, "tokenizer_dir", None) \
                or getattr(trainer.datamodule, "tokenizer_dir", None)
            if directory is None:
                raise XltError("ProbingCallback has no tokenizer — set its tokenizer: <dir>, or give the model one")
            self._tokenizer = XltTokenizer.load(directory).to_hf()
        from xlt.models.sharding import is_sharded

        return ProbeEncoder.from_pretrained_model(pl_module.model, self._tokenizer, name="training model",
                                                  whole=is_sharded(pl_module.model))

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """After every ``every_n_steps``-th optimizer step (once, also under gradient accumulation)."""
        step = trainer.global_step
        if step == 0 or step % self.every_n_steps or step == self._last_step:
            return
        self._last_step = step
        from xlt.models.sharding import is_sharded

        collective = is_sharded(pl_module.model)  # FSDP2: every rank takes part in the forward passes
        if trainer.is_global_zero or collective:
            result = self.probe_round(trainer, pl_module)
            if trainer.is_global_zero:
                self._log(trainer, step, result)
        trainer.strategy.barrier("xlt-probing-round")

    def probe_round(self, trainer: Trainer, pl_module: LightningModule) -> ProbingRound:
        """One round on the current weights, leaving the model's modes and every random state as they were."""
        assert self._data is not None, "setup() reads the probing data"
        states = (torch.get_rng_state(), np.random.get_state(), random.getstate(),
                  torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
        try:
            with analysis_mode(pl_module.model):
                return self.analysis.run(self._encoder(trainer, pl_module), self._data)
        finally:
            torch.set_rng_state(states[0])
            np.random.set_state(states[1])
            random.setstate(states[2])
            if states[3] is not None:
                torch.cuda.set_rng_state_all(states[3])

    def _log(self, trainer: Trainer, step: int, result: ProbingRound) -> None:
        first = not self.history
        self.history.append((step, result))
        metrics = step_metrics(result)
        for logger in trainer.loggers:
            if first:  # the probe's capacity and settings, once per run
                logger.log_hyperparams({f"probing.{k}": v for k, v in
                                        {**self.analysis.params(), "every_n_steps": self.every_n_steps}.items()})
            logger.log_metrics(metrics, step=step)
            run_id = getattr(logger, "run_id", None)
            experiment = getattr(logger, "experiment", None)
            if run_id is not None and hasattr(experiment, "log_text"):
                experiment.log_text(run_id, curves_csv(result.curves), str(Path("probing") / f"step_{step}" /
                                                                            "curves.csv"))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Rank 0: every round as ``probing/history.csv`` and steps × layers heatmaps of the source language's
        curves (``probing/emergence_<property>_<metric>.png``) in each MLflow run."""
        if not trainer.is_global_zero or not self.history or self._data is None:
            return
        for logger in trainer.loggers:
            run_id, experiment = getattr(logger, "run_id", None), getattr(logger, "experiment", None)
            if run_id is None or not hasattr(experiment, "log_artifacts"):
                continue
            with tempfile.TemporaryDirectory(prefix="xlt-probing-") as tmp:
                (Path(tmp) / "history.csv").write_text(history_csv(self.history), encoding="utf-8")
                write_emergence(self.history, self._data.source, Path(tmp))
                experiment.log_artifacts(run_id, tmp, "probing")
