"""Putting an :class:`~xlt.adapters.config.AdapterSetup` into a transformers model, and getting adapters out.

:func:`install_adapters` inserts the banks at every layer's sites and the invertible coupling on the
embeddings, loads saved adapters into their rows (checked against this base's weights and shapes), and sets
``requires_grad`` by the training mode, so optimizers built from ``requires_grad`` give frozen parameters no
state. Call it before FSDP2's ``fully_shard``: the banks are children of the layers, so they join the layer
groups. :class:`InstalledAdapters` routes batches, counts parameters and saves each trained adapter alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModel

from xlt.adapters.bottleneck import SITE_NAME, AdapterSite, BottleneckBank, insert_site, site_modules
from xlt.adapters.config import AdapterPlan, AdapterSetup
from xlt.adapters.invertible import INVERTIBLE_NAME, InvertibleAdapterBank, InvertibleSite, insert_invertible
from xlt.adapters.routing import LAYERS_NAME, AdapterRouter, insert_language_layers
from xlt.adapters.storage import (
    base_fingerprint,
    check_compatible,
    file_fingerprint,
    is_adapter_key,
    load_adapter_tensors,
    relative_to_base,
    save_adapter,
)
from xlt.atomic import atomic_file
from xlt.errors import XltError
from xlt.models.encoder import encoder_layers

LANGUAGE_MARKERS = (f"{SITE_NAME}.language.", f"{INVERTIBLE_NAME}.", f"{LAYERS_NAME}.")
TASK_MARKER = f"{SITE_NAME}.task."
_LAYER_COPY = re.compile(rf"{LAYERS_NAME}\.copies\.(\d+)\.")


def is_language_key(name: str) -> bool:
    """Whether ``name`` is a parameter of a language bank (bottleneck or invertible)."""
    return any(marker in name for marker in LANGUAGE_MARKERS)


def language_row(tensors: Mapping[str, torch.Tensor], row: int) -> dict[str, torch.Tensor]:
    """The tensors of bank language ``row`` under their file keys (views: writing into them writes the model).

    Bank parameters ``[n, ...]`` give their row; layer copies (``...xlt_language_layers.copies.<row>.``) are
    renamed ``...xlt_language_layers.copy.``.
    """
    out = {}
    for key, value in tensors.items():
        match = _LAYER_COPY.search(key)
        if match is not None:
            if int(match.group(1)) == row:
                out[_LAYER_COPY.sub(f"{LAYERS_NAME}.copy.", key)] = value
        elif is_language_key(key):
            out[key] = value[row]
    return out


class InstalledAdapters:
    """The adapters inside one model: routing of batches and saving of trained adapters.

    Args:
        setup: The setup they were built from.
        plan: Its resolution for this run.
        router: The router every site reads.
        base_model: The encoder name recorded in saved adapters.
    """

    def __init__(self, setup: AdapterSetup, plan: AdapterPlan, router: AdapterRouter, base_model: str) -> None:
        self.setup, self.plan, self.router, self.base_model = setup, plan, router, base_model

    def route(self, lang: torch.Tensor | None, batch_size: int, device: torch.device) -> None:
        """Route the next forward's examples by their ``lang`` indices (the run's language order)."""
        self.router.route(lang, batch_size, device)

    def save(self, model: nn.Module, directory: str | Path, task: str | None = None,
             state: Mapping[str, torch.Tensor] | None = None) -> list[Path]:
        """Save every trained adapter alone under ``directory`` (``<code>/`` per language, ``task.<task>/``).

        Args:
            model: The (unsharded or sharded) model, for its base-model prefix and, without ``state``, weights.
            directory: Parent directory of the adapter directories.
            task: Task name of a task adapter.
            state: A full state dict gathered from a sharded model (:func:`xlt.models.sharding.full_state_dict`).
        """
        full = state if state is not None else {n: p.detach() for n, p in model.state_dict().items()}
        base = relative_to_base(full, model.base_model_prefix)
        fingerprint = base_fingerprint(base.items())
        written = []
        train = self.setup.train
        if train in ("language_adapters", "all"):
            for row, code in enumerate(self.plan.bank):
                tensors = language_row(base, row)
                written.append(save_adapter(Path(directory) / code, tensors, kind="language", name=code,
                                            base_model=self.base_model, fingerprint=fingerprint,
                                            settings=self.setup.settings("language")))
        if self.setup.task_adapter and train in ("task_adapter", "all"):
            tensors = {key: value[0] for key, value in base.items() if TASK_MARKER in key}
            written.append(save_adapter(Path(directory) / f"task.{task}", tensors, kind="task", name=str(task),
                                        base_model=self.base_model, fingerprint=fingerprint,
                                        settings=self.setup.settings("task")))
        index = {"merged": False, "adapters": [path.name for path in written],
                 "model_weights": "the base model without adapters: bottleneck adapters with a non-linearity have "
                                  "no linear equivalent to merge into the base"}
        with atomic_file(Path(directory) / "index.json") as handle:
            handle.write(json.dumps(index, indent=2) + "\n")
        return written


def install_adapters(model: nn.Module, setup: AdapterSetup, plan: AdapterPlan, run_languages: list[str],
                     base_model: str) -> InstalledAdapters:
    """Insert ``setup``'s adapters into ``model`` (in place), load saved ones, freeze by the training mode.

    Args:
        model: A transformers BERT/XLM-R-family model (masked-LM or task model), not yet sharded.
        setup: The adapter setup.
        plan: ``setup.plan(...)`` for this run.
        run_languages: Codes in the order of the batches' ``lang`` indices.
        base_model: The encoder name (recorded in saved adapters, named in errors).
    """
    hidden = int(model.config.hidden_size)
    router = AdapterRouter(plan.bank, run_languages, plan.fallback)
    base = model.base_model
    layers = encoder_layers(base)
    if setup.lower_layers > len(layers):
        raise XltError(f"model.adapters.lower_layers={setup.lower_layers} exceeds the encoder's {len(layers)} layers "
                       "— lower it")
    for layer in layers[:setup.lower_layers] if plan.bank else []:
        insert_language_layers(layer, router, len(plan.bank))
    for layer in layers[setup.lower_layers:]:  # sites in the shared layers
        for module in site_modules(layer, setup.sites):
            language = BottleneckBank(len(plan.bank), hidden, setup.spec("language"),
                                      "model.adapters.language_reduction_factor") if plan.bank else None
            task = BottleneckBank(1, hidden, setup.spec("task"),
                                  "model.adapters.task_reduction_factor") if setup.task_adapter else None
            insert_site(module, AdapterSite(router, language, task), setup.placement)
    if setup.invertible and plan.bank:
        bank = InvertibleAdapterBank(len(plan.bank), hidden, setup.spec("invertible"))
        insert_invertible(base.embeddings, InvertibleSite(router, bank))
    _load_saved(model, plan, base_model)
    _freeze(model, setup.train)
    return InstalledAdapters(setup, plan, router, base_model)


def _load_saved(model: nn.Module, plan: AdapterPlan, base_model: str) -> None:
    if not plan.load_language and plan.load_task is None:
        return
    params = dict(model.base_model.named_parameters())
    fingerprint = base_fingerprint(params.items())
    task = {key: p for key, p in params.items() if TASK_MARKER in key}
    with torch.no_grad():
        for code, (directory, record) in plan.load_language.items():
            if code not in plan.bank:
                continue
            targets = language_row(params, plan.bank.index(code))
            check_compatible(directory, record, {k: t.shape for k, t in targets.items()}, fingerprint, base_model)
            for key, value in load_adapter_tensors(directory, record).items():
                targets[key].copy_(value)
        if plan.load_task is not None:
            directory, record = plan.load_task
            check_compatible(directory, record, {k: p.shape[1:] for k, p in task.items()}, fingerprint, base_model)
            for key, value in load_adapter_tensors(directory, record).items():
                task[key][0].copy_(value)


def _freeze(model: nn.Module, train: str) -> None:
    prefix = f"{model.base_model_prefix}."
    for name, parameter in model.named_parameters():
        if train == "all":
            parameter.requires_grad_(True)
        elif train == "language_adapters":
            parameter.requires_grad_(is_language_key(name))
        else:  # task_adapter: the task adapter and the task head (everything outside the base encoder)
            parameter.requires_grad_(TASK_MARKER in name or not (name.startswith(prefix) or is_adapter_key(name)))


def without_adapters(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with the adapter entries left out: the base model's own weights, as ``save_pretrained``
    and ``AutoModel*.from_pretrained`` know them."""
    return {key: value for key, value in state.items() if not is_adapter_key(key)}


def check_saved_base(plan: AdapterPlan, encoder: str, config: Any) -> None:
    """Refuse loaded adapters of another base before anything is built, when ``encoder`` is a directory of
    safetensors weights (other encoders are checked when the adapters are loaded into the model).

    Args:
        plan: The resolved setup (its loaded adapters).
        encoder: ``model.encoder``.
        config: The encoder's transformers config (gives the base model's prefix).
    """
    loaded = [*plan.load_language.values(), *([plan.load_task] if plan.load_task else [])]
    if not loaded or not Path(encoder).is_dir():
        return
    with torch.device("meta"):  # the base model's prefix, without weights
        prefix = AutoModel.from_config(config).base_model_prefix
    fingerprint = file_fingerprint(Path(encoder), prefix)
    if fingerprint is None:
        return
    for directory, record in loaded:
        check_compatible(directory, record, None, fingerprint, encoder)
