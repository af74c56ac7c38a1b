"""An experiment recipe: named stages of ordinary ``xlt`` commands, expanded, ordered and named by config hash.

A recipe file (``configs/experiments/<name>.yaml``) holds::

    experiment: {name, title, claim, paper, real_data, paper_scale}   # what it tests and how to run it bigger
    stages:
      pretrain_a:
        command: fit                                  # any xlt command: fit, tokenizer fit, probe, sweep, ...
        configs: [configs/quickstart.yaml]             # --config files, composed in order
        args: {trainer.max_steps: 300}                 # --key value options after them
      udpos_a:
        command: fit
        configs: [configs/tasks/udpos.yaml]
        args: {model.init_args.encoder: "${dir:pretrain_a}/export"}
        seeds: [0, 1, 2]                               # one unit per seed (seed_everything for fit)
    report: [...]                                      # the results page's views (xlt.experiments.views)

``${dir:<stage>}`` is another stage's output directory (and makes that stage a dependency), ``${dir:self}`` the
stage's own, ``${matrix:<key>}`` the value of a ``matrix`` key (in ``args``, ``configs`` and
``label``). ``matrix: {tail: [1, 2, 4]}`` expands a stage
into one unit per combination; a reference to a matrix stage picks the unit with the same values for the keys
both share (the seed of ``seeds`` is the key ``seed``), so ``udpos`` with ``seeds: [0, 1]`` over
``pretrain`` with ``seeds: [0, 1]`` pairs seed with seed.

A unit's directory is ``<root>/<experiment>/<unit>-<hash>``: the hash covers the command, the text of its config
files, its resolved arguments (its own directory left out) and the hashes of the units it depends on, so a changed
config renames (and reruns) exactly the units that depend on it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xlt.errors import XltError

EXPERIMENT_KEYS = {"name", "title", "claim", "paper", "real_data", "paper_scale", "notes"}
TOP_KEYS = {"experiment", "stages", "report", "root", "tracking_uri", "mlflow_experiment"}
STAGE_KEYS = {"command", "configs", "args", "needs", "matrix", "seeds", "label"}
OUTPUT_OPTIONS = {
    "fit": "--trainer.default_root_dir", "validate": "--trainer.default_root_dir",
    "test": "--trainer.default_root_dir", "predict": "--trainer.default_root_dir",
    "tokenizer fit": "--output", "tokenizer audit": "--out", "probe": "--output", "report": "--out",
    "synth": "--output", "sweep": "--trainer.default_root_dir",
}
"""Where each command writes: the runner points this option at the unit's directory."""
LIGHTNING = {"fit", "validate", "test", "predict"}
_REFERENCE = re.compile(r"\$\{(dir|matrix):([^}]*)\}")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
SELF = "self"


def unit_name(stage: str, values: tuple[tuple[str, Any], ...]) -> str:
    """``stage`` or ``stage[key=value,...]`` for a unit with matrix values."""
    return stage + ("[" + ",".join(f"{k}={v}" for k, v in values) + "]" if values else "")


@dataclass(frozen=True)
class Unit:
    """One command the runner executes: a stage for one combination of its matrix values.

    Attributes:
        stage: the stage's name in the recipe.
        values: the matrix values of this unit (``seed`` included), in the recipe's key order.
        command: the xlt command words (``("tokenizer", "fit")``).
        configs: ``--config`` files, in order.
        args: the resolved ``--key value`` options (own directory included), in order.
        needs: names of the units this one depends on.
        hash: 12 hex digits naming the unit's outputs.
        directory: where the unit writes.
        label: the stage's label (report rows), default the stage name.
    """

    stage: str
    values: tuple[tuple[str, Any], ...]
    command: tuple[str, ...]
    configs: tuple[str, ...]
    args: tuple[tuple[str, str], ...]
    needs: tuple[str, ...]
    hash: str
    directory: Path
    label: str

    @property
    def name(self) -> str:
        """``stage`` or ``stage[key=value,...]``."""
        return unit_name(self.stage, self.values)

    @property
    def seed(self) -> Any:
        return dict(self.values).get("seed")

    def argv(self) -> list[str]:
        """The command line after ``xlt``."""
        line = [*self.command]
        for path in self.configs:
            line += ["--config", path]
        for key, value in self.args:
            line += [key, value]
        return line


@dataclass
class Recipe:
    """A parsed experiment: its description, units in dependency order and its report views (raw mappings).

    Attributes:
        path: the recipe file.
        name: the experiment's name (``experiment.name``).
        info: the ``experiment`` block (title, claim, paper, real_data, paper_scale, notes).
        units: every unit, topologically ordered (a unit comes after everything it needs).
        report: the ``report`` views as written (validated by :mod:`xlt.experiments.views`).
        root: where unit directories go (``<root>/<name>/``).
        tracking_uri: the MLflow store of every stage (``None``: ``$MLFLOW_TRACKING_URI`` or ``mlflow.db``).
        mlflow_experiment: the MLflow experiment every stage logs into (default ``experiment-<name>``).
    """

    path: Path
    name: str
    info: dict[str, str]
    units: list[Unit]
    report: list[dict[str, Any]] = field(default_factory=list)
    root: Path = Path("runs/experiments")
    tracking_uri: str | None = None
    mlflow_experiment: str = ""

    def unit(self, name: str) -> Unit:
        return next(u for u in self.units if u.name == name)

    def units_of(self, stage: str) -> list[Unit]:
        """The units of one stage, in matrix order."""
        return [u for u in self.units if u.stage == stage]

    def levels(self) -> list[list[Unit]]:
        """Units grouped so that each group depends only on earlier groups: a group's units can run in parallel."""
        depth: dict[str, int] = {}
        for unit in self.units:  # topological order: needs are already placed
            depth[unit.name] = 1 + max((depth[n] for n in unit.needs), default=-1)
        return [[u for u in self.units if depth[u.name] == level] for level in range(max(depth.values()) + 1)]


def _fail(path: Path, where: str, what: str) -> XltError:
    return XltError(f"{path}: {where}: {what}")


def _check_keys(path: Path, where: str, given: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise _fail(path, where, f"unknown key(s) {', '.join(unknown)} — use {', '.join(sorted(allowed))}")


def _option_value(value: Any) -> str:
    """A YAML value as one command-line value (mappings and lists as JSON, which jsonargparse reads)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def _expand_matrix(path: Path, stage: str, spec: Mapping[str, Any]) -> list[tuple[tuple[str, Any], ...]]:
    matrix = dict(spec.get("matrix") or {})
    if not isinstance(matrix, dict):
        raise _fail(path, f"stages.{stage}.matrix", "must be a mapping key -> list of values")
    if "seeds" in spec:
        if "seed" in matrix:
            raise _fail(path, f"stages.{stage}", "give seeds or matrix.seed, not both")
        matrix["seed"] = spec["seeds"]
    for key, values in matrix.items():
        if not _NAME.match(str(key)) or not isinstance(values, list) or not values:
            raise _fail(path, f"stages.{stage}.matrix.{key}", "must be a non-empty list of values under a name")
    keys = list(matrix)
    return [tuple(zip(keys, combo, strict=True)) for combo in itertools.product(*(matrix[k] for k in keys))]


def _references(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return _REFERENCE.findall(value)
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


def _substitute(value: Any, replace: Any) -> Any:
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole and whole.group(1) == "matrix":  # keep the matrix value's type: tail: ${matrix:tail} -> 4
            return replace(whole)
        return _REFERENCE.sub(lambda m: str(replace(m)), value)
    if isinstance(value, Mapping):
        return {k: _substitute(v, replace) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, replace) for v in value]
    return value


def _read_configs(path: Path, where: str, configs: Sequence[str]) -> str:
    texts = []
    for config in configs:
        file = Path(config)
        if not file.is_file():
            raise _fail(path, where, f"config file {config} does not exist — fix the path (relative to the "
                                     "directory xlt experiment runs in)")
        texts.append(file.read_text(encoding="utf-8"))
    return "\0".join(texts)


def load_recipe(path: str | Path) -> Recipe:
    """Read, validate and expand a recipe file (every mistake is an :class:`XltError` naming the key)."""
    path = Path(path)
    if not path.is_file():
        raise XltError(f"experiment recipe {path} does not exist — pass a file such as "
                       "configs/experiments/script.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise XltError(f"{path}: not valid YAML ({' '.join(str(error).split())[:200]})") from error
    if not isinstance(raw, dict):
        raise XltError(f"{path}: an experiment recipe is a mapping with 'experiment' and 'stages'")
    _check_keys(path, "top level", raw, TOP_KEYS)
    info = raw.get("experiment") or {}
    if not isinstance(info, dict) or not info.get("name"):
        raise _fail(path, "experiment", "needs a name (experiment: {name: ..., claim: ...})")
    _check_keys(path, "experiment", info, EXPERIMENT_KEYS)
    name = str(info["name"])
    if not _NAME.match(name.replace("-", "_")):
        raise _fail(path, "experiment.name", f"'{name}' must be letters, digits, - and _")
    stages = raw.get("stages")
    if not isinstance(stages, dict) or not stages:
        raise _fail(path, "stages", "needs at least one stage (stages: {<name>: {command: ..., ...}})")
    report = raw.get("report") or []
    if not isinstance(report, list):
        raise _fail(path, "report", "must be a list of views")
    root = Path(raw.get("root") or "runs/experiments")
    units = _units(path, name, stages, root)
    return Recipe(path, name, {k: str(v) for k, v in info.items()}, units, report, root,
                  raw.get("tracking_uri"), str(raw.get("mlflow_experiment") or f"experiment-{name}"))


def _stage_spec(path: Path, stage: str, spec: Any) -> dict[str, Any]:
    if not _NAME.match(str(stage)) or stage == SELF:
        raise _fail(path, f"stages.{stage}", "a stage name is letters, digits and _ (not 'self')")
    if not isinstance(spec, dict):
        raise _fail(path, f"stages.{stage}", "must be a mapping with command, configs and args")
    _check_keys(path, f"stages.{stage}", spec, STAGE_KEYS)
    command = str(spec.get("command", "")).strip()
    if command not in OUTPUT_OPTIONS:
        raise _fail(path, f"stages.{stage}.command", f"'{command}' is not an xlt command a stage can run — use "
                                                      f"one of {', '.join(OUTPUT_OPTIONS)}")
    configs = spec.get("configs") or []
    args = spec.get("args") or {}
    if not isinstance(configs, list) or not isinstance(args, dict):
        raise _fail(path, f"stages.{stage}", "configs is a list of files and args a mapping option -> value")
    return {**spec, "command": command, "configs": [str(c) for c in configs], "args": args,
            "needs": list(spec.get("needs") or [])}


def _units(path: Path, experiment: str, stages: Mapping[str, Any], root: Path) -> list[Unit]:
    specs = {stage: _stage_spec(path, stage, spec) for stage, spec in stages.items()}
    matrices = {stage: _expand_matrix(path, stage, spec) for stage, spec in specs.items()}
    depends: dict[str, list[str]] = {}
    for stage, spec in specs.items():
        found = _references([spec["args"], spec["configs"], spec.get("label") or ""])
        refs = [target for kind, target in found if kind == "dir" and target != SELF]
        for kind, target in found:
            if kind == "matrix" and all(target not in dict(values) for values in matrices[stage]):
                raise _fail(path, f"stages.{stage}.args", f"${{matrix:{target}}} names no matrix key of the stage")
        for target in [*refs, *spec["needs"]]:
            if target not in specs:
                raise _fail(path, f"stages.{stage}", f"refers to stage '{target}', which the recipe does not "
                                                      f"define — use one of {', '.join(specs)}")
        depends[stage] = list(dict.fromkeys([*spec["needs"], *refs]))
    order = _stage_order(path, depends)
    units: dict[str, Unit] = {}
    texts: dict[tuple[str, ...], str] = {}
    for stage in order:
        spec = specs[stage]
        for values in matrices[stage]:
            needed = [_matching_unit(path, stage, values, target, units) for target in depends[stage]]
            by_stage = {unit.stage: unit for unit in needed}

            def replace(match: re.Match[str], own: str | None, values: tuple = values, by_stage: dict = by_stage) \
                    -> Any:
                kind, target = match.groups()
                if kind == "matrix":
                    return dict(values)[target]
                return own if target == SELF else str(by_stage[target].directory)

            args = dict(spec["args"])
            if spec["command"] in LIGHTNING and "seed" in dict(values):
                args.setdefault("seed_everything", "${matrix:seed}")
            configs = [str(c) for c in _substitute(spec["configs"], lambda m: replace(m, "<self>"))]
            if tuple(configs) not in texts:  # matrix units usually share their config files
                texts[tuple(configs)] = _read_configs(path, f"stages.{stage}.configs", configs)
            config_text = texts[tuple(configs)]
            label = str(_substitute(str(spec.get("label") or stage), lambda m: replace(m, "<self>")))
            pending = _substitute(args, lambda m: replace(m, "<self>"))
            digest = hashlib.sha256(json.dumps(
                [spec["command"], config_text, pending, [u.hash for u in needed], list(values)],
                sort_keys=True, default=str).encode()).hexdigest()[:12]
            directory = root / experiment / f"{unit_name(stage, values)}-{digest}".replace("[", "_") \
                .replace("]", "").replace(",", "_").replace("=", "")
            resolved = _substitute(args, lambda m, own=str(directory): replace(m, own))
            option = OUTPUT_OPTIONS[spec["command"]]
            options = [(option, str(directory))] + [
                ("--" + str(key).removeprefix("--"), _option_value(value)) for key, value in resolved.items()
                if "--" + str(key).removeprefix("--") != option]
            unit = Unit(stage, values, tuple(spec["command"].split()), tuple(configs), tuple(options),
                        tuple(u.name for u in needed), digest, directory, label)
            units[unit.name] = unit
    return list(units.values())


def _stage_order(path: Path, depends: Mapping[str, list[str]]) -> list[str]:
    """Stages in recipe order, each after its dependencies; a cycle is an error naming it."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(stage: str, trail: list[str]) -> None:
        if state.get(stage) == "done":
            return
        if state.get(stage) == "active":
            cycle = " -> ".join([*trail[trail.index(stage):], stage])
            raise _fail(path, "stages", f"dependency cycle {cycle} — a stage cannot need its own outputs")
        state[stage] = "active"
        for target in depends[stage]:
            visit(target, [*trail, stage])
        state[stage] = "done"
        order.append(stage)

    for stage in depends:
        visit(stage, [])
    return order


def _matching_unit(path: Path, stage: str, values: tuple[tuple[str, Any], ...], target: str,
                   units: Mapping[str, Unit]) -> Unit:
    """The unit of ``target`` whose shared matrix keys agree with ``values``; an error when that is not one."""
    mine = dict(values)
    candidates = [u for u in units.values() if u.stage == target
                  and all(mine[k] == v for k, v in u.values if k in mine)]
    if len(candidates) != 1:
        what = "no unit" if not candidates else f"{len(candidates)} units ({', '.join(u.name for u in candidates)})"
        raise _fail(path, f"stages.{stage}", f"its reference to '{target}' matches {what} for {mine or 'no matrix'}"
                                             f" — give {stage} the matrix keys of {target} it should follow")
    return candidates[0]
