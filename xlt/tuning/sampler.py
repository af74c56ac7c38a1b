"""The study's sampler, made afresh for every trial with a seed derived from the study seed and the trial's number.

Optuna's samplers keep their state in the storage except their random generator. Seeded once per process, two
workers (or a worker and its rerun after a crash) would draw the same points; seeded per trial number — which the
storage hands out uniquely — every trial draws its own, and a trial's draw does not depend on which worker ran it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from xlt.errors import XltError
from xlt.seeding import derive_seed


@dataclass(frozen=True)
class SamplerSpec:
    """An Optuna sampler class and its arguments (its ``seed`` is set per trial).

    Args:
        class_path: The sampler class, e.g. ``optuna.samplers.TPESampler`` or ``optuna.samplers.NSGAIISampler``.
        init_args: Its keyword arguments, except ``seed``.
    """

    class_path: str = "optuna.samplers.TPESampler"
    init_args: dict[str, Any] = field(default_factory=dict)

    def make(self, seed: int) -> BaseSampler:
        """The sampler with ``seed``; :class:`XltError` for an unknown class or bad arguments."""
        module, _, name = self.class_path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise XltError(f"sweep.sampler '{self.class_path}' is not an importable class — use e.g. "
                           "optuna.samplers.TPESampler") from exc
        if not (isinstance(cls, type) and issubclass(cls, BaseSampler)):
            raise XltError(f"sweep.sampler '{self.class_path}' is not an Optuna sampler")
        if "seed" in self.init_args:
            raise XltError("sweep.sampler_args.seed: the seed is derived per trial from sweep.seed — drop it")
        try:
            return cls(**self.init_args, seed=seed)
        except TypeError as exc:
            raise XltError(f"sweep.sampler_args for {self.class_path}: {exc}") from exc


class TrialSeededSampler(BaseSampler):
    """Delegates every call for a trial to ``spec.make(derive_seed("sweep-sampler", seed, trial.number))``.

    Args:
        spec: The sampler to make.
        seed: The study seed.
    """

    def __init__(self, spec: SamplerSpec, seed: int) -> None:
        self.spec, self.seed = spec, seed
        self._made: tuple[int, BaseSampler] | None = None

    def _for(self, trial: FrozenTrial | optuna.Trial) -> BaseSampler:
        if self._made is None or self._made[0] != trial.number:
            self._made = (trial.number, self.spec.make(derive_seed("sweep-sampler", self.seed, trial.number) % 2**32))
        return self._made[1]

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._for(trial).after_trial(study, trial, state, values)
