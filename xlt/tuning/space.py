"""The search space of a sweep, addressed by ``xlt fit`` config paths (``data.init_args.alpha``,
``data.init_args.oversampling.tail``, ``model.init_args.lr``), so any fit option can be swept.

Optuna parameter names are the config paths themselves: the dashboard, ``study.best_params`` and MLflow's
compare view show which option each value sets. A :class:`Simplex` is a point on the simplex drawn as normalised
exponentials (``f_i = k·e_i / Σ e``, ``e_i = -log u_i``, ``u_i ~ U(0, 1]``), uniform over the simplex, scaled so that
the k factors average ``mean``; its raw draws are the parameters ``<path>.u``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from xlt.errors import XltError


@dataclass(frozen=True)
class Range:
    """The values one config path takes.

    Args:
        low: Smallest value (numeric ranges).
        high: Largest value (numeric ranges).
        log: Sample uniformly in log space (factors, learning rates); needs ``low > 0``.
        integer: Sample integers (``suggest_int``) instead of floats.
        step: Discretisation step (not with ``log``).
        choices: A categorical parameter: one of these values (``low``/``high`` unused).
    """

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    def check(self, path: str) -> None:
        """Raise :class:`XltError` naming ``path`` when the range is empty or inconsistent."""
        if self.choices is not None:
            if not self.choices:
                raise XltError(f"sweep.space.{path}: choices is empty — list at least one value")
            return
        if self.low is None or self.high is None:
            raise XltError(f"sweep.space.{path}: give low and high (or choices)")
        if self.low > self.high:
            raise XltError(f"sweep.space.{path}: low {self.low} > high {self.high} — swap them")
        if self.log and self.low <= 0:
            raise XltError(f"sweep.space.{path}: a log range needs low > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise XltError(f"sweep.space.{path}: step and log cannot be combined — drop one")

    def suggest(self, trial: optuna.Trial, path: str) -> Any:
        """Draw this parameter for ``trial`` (Optuna's ``suggest_*``; an enqueued value is used as given)."""
        if self.choices is not None:
            return trial.suggest_categorical(path, self.choices)
        assert self.low is not None and self.high is not None
        if self.integer:
            return trial.suggest_int(path, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(path, self.low, self.high, step=self.step, log=self.log)

    def example(self) -> Any:
        """A value inside the range, used to check that its path is a valid config option."""
        if self.choices is not None:
            return self.choices[0]
        return int(self.low) if self.integer else float(self.low)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Simplex:
    """Several config paths set together to a point on the simplex (e.g. per-language oversampling factors).

    Args:
        paths: The config paths, one factor each (``data.init_args.oversampling.qaf``, …).
        mean: The factors' mean (their sum is ``mean · len(paths)``).
    """

    paths: list[str] = field(default_factory=list)
    mean: float = 1.0

    def check(self) -> None:
        """Raise :class:`XltError` for fewer than two paths or a non-positive mean."""
        if len(self.paths) < 2:
            raise XltError(f"sweep.simplices: a simplex needs at least two paths (got {self.paths})")
        if self.mean <= 0:
            raise XltError(f"sweep.simplices: mean {self.mean} must be > 0")

    def suggest(self, trial: optuna.Trial) -> dict[str, float]:
        """Draw the point for ``trial``: one ``U(0, 1]`` parameter ``<path>.u`` per path, normalised exponentials."""
        draws = [-math.log(trial.suggest_float(f"{path}.u", 1e-6, 1.0)) for path in self.paths]
        total = sum(draws)
        return {path: self.mean * len(self.paths) * d / total for path, d in zip(self.paths, draws, strict=True)}

    def example(self) -> dict[str, float]:
        return dict.fromkeys(self.paths, self.mean)


def suggest(trial: optuna.Trial, space: Mapping[str, Range], simplices: list[Simplex]) -> dict[str, Any]:
    """Config path → value for ``trial``."""
    values = {path: spec.suggest(trial, path) for path, spec in space.items()}
    for simplex in simplices:
        values.update(simplex.suggest(trial))
    return values


def examples(space: Mapping[str, Range], simplices: list[Simplex]) -> dict[str, Any]:
    """Config path → a value inside its range (for validating the paths before any study exists)."""
    values = {path: spec.example() for path, spec in space.items()}
    for simplex in simplices:
        values.update(simplex.example())
    return values


def check_space(space: Mapping[str, Range], simplices: list[Simplex]) -> None:
    """Ranges are consistent and no path is swept twice."""
    if not space and not simplices:
        raise XltError("sweep.space is empty — add at least one config path to search, e.g. data.init_args.alpha")
    for path, spec in space.items():
        spec.check(path)
    seen = set(space)
    for simplex in simplices:
        simplex.check()
        twice = seen.intersection(simplex.paths)
        if twice:
            raise XltError(f"sweep: {', '.join(sorted(twice))} is swept twice (space and simplices) — keep one")
        seen.update(simplex.paths)


def apply(config: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the plain fit config with each dotted path set.

    Every segment before the last must be a section (so ``model.lr`` with ``model`` holding ``class_path`` /
    ``init_args`` fails here, naming the path); an unset optional mapping (``oversampling: null``) becomes one.
    Whether the last key is an option is the fit parser's decision (:func:`xlt.tuning.trial_run.check_fit_config`).
    """
    result = copy.deepcopy(dict(config))
    for path, value in values.items():
        *parents, last = path.split(".")
        node: Any = result
        for depth, key in enumerate(parents):
            if isinstance(node, dict) and node.get(key) is None and key in node:
                node[key] = {}
            node = node.get(key) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                where = ".".join(parents[: depth + 1])
                raise XltError(f"sweep.space: '{path}' is not a config path of the recipe ('{where}' is not a "
                               "section) — use a key that xlt fit --print_config shows")
        node[last] = value
    return result
