"""``AdapterSetup``: the adapters a model gets and which parts train, injected with ``class_path``.

One object describes a MAD-X setup for both :class:`~xlt.models.mlm.MLMPretraining` and the task modules
(``model.adapters``): language adapters for some or all languages (a routed bank), an invertible adapter per
language, a task adapter stacked on the language adapter, what trains (``train``), saved adapters to load and
the fallback of a language without one. :meth:`AdapterSetup.plan` checks it against the run's languages, panel
and width, from configs and adapter JSON files alone, so the CLI can refuse bad input before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from xlt.adapters.bottleneck import PLACEMENTS, BottleneckSpec, bottleneck_size
from xlt.adapters.storage import AdapterRecord, find_adapters
from xlt.errors import XltError

TrainMode = Literal["language_adapters", "task_adapter", "all"]


@dataclass
class AdapterPlan:
    """A setup resolved against one run: bank languages, adapters to load, fallback.

    Attributes:
        bank: Language codes of the language-adapter bank, in row order.
        load_language: Bank code -> (directory, record) of the saved adapter loaded into its row.
        load_task: The saved task adapter to load, if any.
        fallback: Bank language taken by run languages without an adapter (``None``: no language adapter).
    """

    bank: list[str]
    load_language: dict[str, tuple[Path, AdapterRecord]] = field(default_factory=dict)
    load_task: tuple[Path, AdapterRecord] | None = None
    fallback: str | None = None


class AdapterSetup:
    """Language / task adapters (MAD-X) of a model, and which of its parts train."""

    def __init__(
        self,
        languages: list[str] | None = None,
        train: TrainMode = "language_adapters",
        task_adapter: bool = False,
        invertible: bool = True,
        sites: Literal["pfeiffer", "houlsby"] = "pfeiffer",
        placement: Literal["before_layer_norm", "after_layer_norm"] = "before_layer_norm",
        language_reduction_factor: float = 2.0,
        task_reduction_factor: float = 16.0,
        invertible_reduction_factor: float = 2.0,
        non_linearity: Literal["relu", "gelu", "swish", "tanh"] = "relu",
        adapter_layer_norm: bool = False,
        load: list[str] | None = None,
        fallback: str | None = None,
        lower_layers: int = 0,
    ) -> None:
        """Describe the adapters.

        Args:
            languages: Codes that get a language adapter (one bank row each). Default: the loaded language
                adapters' languages if ``load`` is given, else every language of an MLM run (none for a task).
            train: What trains: ``language_adapters`` (language + invertible adapters; base and MLM head frozen),
                ``task_adapter`` (task adapter + task head; base and language adapters frozen) or ``all``
                (full fine-tuning with the adapters in place).
            task_adapter: Stack a task adapter on the language adapter at every site.
            invertible: Add a per-language invertible adapter (NICE coupling) on the embedding output, inverted
                before the MLM head.
            sites: ``pfeiffer`` (after each layer's feed-forward block) or ``houlsby`` (also after attention).
            placement: ``before_layer_norm``: the adapter reads the sublayer's output before the block's residual
                and LayerNorm; ``after_layer_norm``: it reads the block's output and adds its own residual.
            language_reduction_factor: Hidden width / bottleneck width of language adapters (MAD-X: 2).
            task_reduction_factor: Hidden width / bottleneck width of the task adapter (MAD-X: 16).
            invertible_reduction_factor: Half width / bottleneck width of the invertible coupling's F and G.
            non_linearity: Bottleneck activation: ``relu``, ``gelu``, ``swish`` or ``tanh``.
            adapter_layer_norm: A LayerNorm of each adapter's own before its down projection.
            load: Saved adapters to load: adapter directories (``<export>/adapters/<code>``) or their parents.
            fallback: Adapter of a run language without one: a bank language code, ``source`` (a task's source
                language), or ``None`` (no language adapter; the base alone).
            lower_layers: Give each bank language its own copy of the first ``lower_layers`` transformer layers
                (routed like the adapters; shared layers above). Bottleneck sites are then in the shared layers
                only. Copies train with the language adapters (``train=language_adapters``) and are saved with them.
        """
        # the outermost iterable is evaluated in __init__'s scope: exactly the arguments
        self._init_args = {name: arg for name, arg in dict(locals()).items() if name != "self"}
        for key, value in (("language_reduction_factor", language_reduction_factor),
                           ("task_reduction_factor", task_reduction_factor),
                           ("invertible_reduction_factor", invertible_reduction_factor)):
            if value <= 0:
                raise XltError(f"model.adapters.{key}={value} must be > 0 — MAD-X uses 2 (language), 16 (task)")
        if lower_layers < 0:
            raise XltError(f"model.adapters.lower_layers={lower_layers} must be >= 0")
        if placement not in PLACEMENTS:
            raise XltError(f"model.adapters.placement={placement!r} — use one of {', '.join(PLACEMENTS)}")
        if train == "task_adapter" and not task_adapter:
            raise XltError("model.adapters.train=task_adapter but task_adapter is false — set "
                           "model.adapters.task_adapter: true")
        self.languages = list(languages) if languages is not None else None
        self.train, self.task_adapter, self.invertible = train, task_adapter, invertible
        self.sites, self.placement = sites, placement
        self.language_reduction_factor = language_reduction_factor
        self.task_reduction_factor = task_reduction_factor
        self.invertible_reduction_factor = invertible_reduction_factor
        self.non_linearity, self.adapter_layer_norm = non_linearity, adapter_layer_norm
        self.load, self.fallback, self.lower_layers = list(load or []), fallback, int(lower_layers)

    @classmethod
    def from_value(cls, value: AdapterSetup | Mapping[str, Any] | None) -> AdapterSetup | None:
        """The setup itself, or one rebuilt from its :meth:`config` (as checkpoints store it)."""
        if value is None or isinstance(value, AdapterSetup):
            return value
        return cls(**dict(value.get("init_args") or {}))

    def config(self) -> dict[str, Any]:
        """``{"class_path": ..., "init_args": {...}}`` in plain types (checkpoints load with weights_only=True)."""
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}", "init_args": dict(self._init_args)}

    # ---------------------------------------------------------------------------------------------- shapes
    def spec(self, kind: Literal["language", "task", "invertible"]) -> BottleneckSpec:
        """The bottleneck shape of language, task or invertible-coupling adapters."""
        factor = {"language": self.language_reduction_factor, "task": self.task_reduction_factor,
                  "invertible": self.invertible_reduction_factor}[kind]
        return BottleneckSpec(factor, self.non_linearity, self.adapter_layer_norm and kind != "invertible")

    def settings(self, kind: Literal["language", "task"]) -> dict[str, Any]:
        """The settings that make adapters of ``kind`` interchangeable (recorded in ``adapter.json``)."""
        spec = self.spec(kind)
        out: dict[str, Any] = {"sites": self.sites, "placement": self.placement,
                               "reduction_factor": spec.reduction_factor, "non_linearity": spec.non_linearity,
                               "layer_norm": spec.layer_norm}
        if kind == "language":
            out.update(invertible=self.invertible, invertible_reduction_factor=self.invertible_reduction_factor,
                       lower_layers=self.lower_layers)
        return out

    # ---------------------------------------------------------------------------------------------- checks
    def plan(self, run_languages: list[str], panel: Any, hidden: int, *, source: list[str] | None = None,
             task: str | None = None, num_layers: int | None = None) -> AdapterPlan:
        """Resolve the setup for a run, or raise ``XltError`` naming the key, file or language at fault.

        Args:
            run_languages: Codes in the order of the batches' ``lang`` indices.
            panel: The run's language panel (``codes``, ``name``), or ``None`` to check against ``run_languages``.
            hidden: The encoder's hidden size.
            source: A task's training languages (``None`` for MLM).
            task: The task name (``None`` for MLM).
            num_layers: The encoder's number of layers (checks ``lower_layers``; ``None``: not checked).
        """
        if num_layers is not None and self.lower_layers > num_layers:
            raise XltError(f"model.adapters.lower_layers={self.lower_layers} exceeds the encoder's {num_layers} "
                           "layers — lower it")
        known = list(getattr(panel, "codes", run_languages))
        panel_name = getattr(panel, "name", "of this run")
        loaded = find_adapters(self.load)
        plan = AdapterPlan(bank=[])
        for directory, record in loaded:
            if record.name not in known and record.kind == "language":
                raise XltError(f"model.adapters.load: {directory} is an adapter for {record.name!r}, not in panel "
                               f"{panel_name} — load adapters of the panel's languages")
            if record.kind == "language":
                if record.name in plan.load_language:
                    raise XltError(f"model.adapters.load: two adapters for {record.name!r} "
                                   f"({plan.load_language[record.name][0]}, {directory}) — load one")
                self._check_settings(directory, record, "language")
                plan.load_language[record.name] = (directory, record)
            elif record.kind == "task" and self.task_adapter:
                self._check_settings(directory, record, "task")
                plan.load_task = (directory, record)
        if self.languages is not None:
            plan.bank = list(self.languages)
        elif plan.load_language:
            plan.bank = list(plan.load_language)
        elif task is None:
            if run_languages == ["all"]:
                raise XltError("model.adapters: language adapters need the run's languages — use an xlt corpus "
                               "data module (it links data.language_codes) or set model.adapters.languages")
            plan.bank = list(run_languages)
        for code in plan.bank:
            if code not in known:
                raise XltError(f"model.adapters.languages: {code!r} is not in panel {panel_name} "
                               f"({', '.join(known)}) — adapters are for the panel's languages")
        if plan.bank:
            bottleneck_size(hidden, self.language_reduction_factor, "model.adapters.language_reduction_factor")
            if self.invertible:
                bottleneck_size(hidden // 2, self.invertible_reduction_factor,
                                "model.adapters.invertible_reduction_factor")
        if self.task_adapter:
            bottleneck_size(hidden, self.task_reduction_factor, "model.adapters.task_reduction_factor")
        self._check_training(plan, task, source or [])
        plan.fallback = (source or [None])[0] if self.fallback == "source" else self.fallback
        if self.fallback == "source" and task is None:
            raise XltError("model.adapters.fallback=source needs a task's source language — name a language code")
        if plan.fallback is not None and plan.fallback not in plan.bank:
            raise XltError(f"model.adapters.fallback {plan.fallback!r} has no language adapter "
                           f"({', '.join(plan.bank) or 'none'}) — pick one of them or null")
        return plan

    def _check_settings(self, directory: Path, record: AdapterRecord, kind: Literal["language", "task"]) -> None:
        expected = self.settings(kind)
        differing = sorted(key for key in expected if record.settings.get(key) != expected[key])
        if differing:
            key = differing[0]
            raise XltError(f"model.adapters.load: {directory} was saved with {key}={record.settings.get(key)!r}, "
                           f"this setup has {expected[key]!r} — set model.adapters.{key} to match")

    def _check_training(self, plan: AdapterPlan, task: str | None, source: list[str]) -> None:
        if task is None:
            if self.train == "task_adapter" or self.task_adapter:
                raise XltError("model.adapters: a task adapter belongs to a task module — drop task_adapter / "
                               "train=task_adapter from MLM pretraining")
            return
        if self.train == "language_adapters":
            raise XltError("model.adapters.train=language_adapters trains by MLM — use xlt.models.mlm.MLMPretraining,"
                           " or train=task_adapter / all for a task")
        if self.train != "task_adapter":
            return
        for code in source:
            if code not in plan.load_language:
                raise XltError(f"model.adapters: the task adapter stacks on a language adapter, but none is loaded "
                               f"for source language {code!r} — train one by MLM and add it to model.adapters.load")
        for code in plan.bank:
            if code not in plan.load_language:
                raise XltError(f"model.adapters.languages: {code!r} would stay frozen untrained (train=task_adapter)"
                               " — load its adapter (model.adapters.load) or leave it out")
