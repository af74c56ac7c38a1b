"""``xlt experiment run``: the units of a recipe in dependency order, each an ``xlt`` command in its own process.

State lives beside the outputs, never inside them (a command may replace its output directory atomically):
``<root>/<experiment>/.done/<unit dir>.json`` marks a finished unit (its hash is in the directory name, so a
changed config is a different, unfinished unit) and ``.logs/<unit dir>.log`` holds its output. A fit whose unit
is unfinished but has ``checkpoints/last.ckpt`` resumes with ``--ckpt_path last`` (and continues its MLflow run).

The experiment is one MLflow parent run in the recipe's MLflow experiment (tag ``xlt.experiment.parent``), found
again on every rerun; each stage's runs are its children, tagged with the stage, unit, hash and label
(:func:`xlt.mlflow_store.stage_run`, passed to the command in ``$XLT_EXPERIMENT_STAGE``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xlt.atomic import atomic_file
from xlt.errors import XltError
from xlt.experiments.recipe import LIGHTNING, Recipe, Unit
from xlt.mlflow_store import STAGE_ENV, default_tracking_uri, get_or_create_experiment

PARENT_TAG = "xlt.experiment.parent"


def state_dir(recipe: Recipe) -> Path:
    return recipe.root / recipe.name


def done_path(recipe: Recipe, unit: Unit) -> Path:
    return state_dir(recipe) / ".done" / f"{unit.directory.name}.json"


def log_path(recipe: Recipe, unit: Unit) -> Path:
    return state_dir(recipe) / ".logs" / f"{unit.directory.name}.log"


def finished(recipe: Recipe, unit: Unit) -> dict[str, Any] | None:
    """The unit's completion record (``wall_s``, ``finished``, ``argv``, ``machine``); ``None`` while it has not
    finished, or when its output directory has been deleted since (then it runs again)."""
    path = done_path(recipe, unit)
    if not path.is_file() or not unit.directory.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def resume_arguments(unit: Unit) -> list[str]:
    """``--ckpt_path last`` for an interrupted fit that left a last checkpoint."""
    if unit.command[0] == "fit" and (unit.directory / "checkpoints" / "last.ckpt").is_file():
        return ["--ckpt_path", "last"]
    return []


def tracking_uri(recipe: Recipe) -> str:
    return recipe.tracking_uri or default_tracking_uri()


def parent_run(recipe: Recipe, create: bool = True) -> str | None:
    """The experiment's MLflow run: the earliest active run tagged with the experiment, else a new one."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(recipe)
    client = MlflowClient(tracking_uri=uri)
    if not create and client.get_experiment_by_name(recipe.mlflow_experiment) is None:
        return None
    experiment_id = get_or_create_experiment(client, recipe.mlflow_experiment, uri)
    query = f"tags.`{PARENT_TAG}` = '{recipe.name}'"
    runs = client.search_runs([experiment_id], query)
    if runs:
        return min(runs, key=lambda run: (run.info.start_time, run.info.run_id)).info.run_id
    if not create:
        return None
    tags = {PARENT_TAG: recipe.name, "xlt.experiment.recipe": str(recipe.path),
            "mlflow.note.content": recipe.info.get("claim", "")}
    run_id = client.create_run(experiment_id, run_name=recipe.name, tags=tags).info.run_id
    client.log_artifact(run_id, str(recipe.path), artifact_path="recipe")
    return run_id


def stage_environment(recipe: Recipe, unit: Unit, parent: str | None) -> dict[str, str]:
    """The environment of a unit's process: the store and the stage context."""
    context = {"mlflow_experiment": recipe.mlflow_experiment, "parent_run_id": parent,
               "xlt.experiment": recipe.name, "xlt.experiment.stage": unit.stage,
               "xlt.experiment.unit": unit.name, "xlt.experiment.hash": unit.hash,
               "xlt.experiment.label": unit.label}
    return {"MLFLOW_TRACKING_URI": tracking_uri(recipe), STAGE_ENV: json.dumps(context)}


def select(recipe: Recipe, only: Sequence[str] | None) -> list[Unit]:
    """All units, or those of the named stages or units; unknown names are an error listing the valid ones."""
    if not only:
        return list(recipe.units)
    names = {u.name for u in recipe.units} | {u.stage for u in recipe.units}
    unknown = [name for name in only if name not in names]
    if unknown:
        raise XltError(f"{recipe.path}: no stage or unit {', '.join(unknown)} — use one of "
                       f"{', '.join(dict.fromkeys(u.stage for u in recipe.units))} (or a unit name from "
                       "xlt experiment plan)")
    return [u for u in recipe.units if u.name in only or u.stage in only]


def run_units(recipe: Recipe, units: Sequence[Unit]) -> None:
    """Run the unfinished ``units`` in order; a unit whose dependencies are unfinished (and not among ``units``)
    is an error before anything runs. A failing unit stops the run with its exit code."""
    records = {u.name: finished(recipe, u) for u in recipe.units}
    chosen = {u.name for u in units}
    for unit in units:
        missing = [n for n in unit.needs if n not in chosen and records[n] is None]
        if missing:
            raise XltError(f"stage {unit.name} needs {', '.join(missing)}, which has not finished — run it first "
                           f"(xlt experiment run {recipe.path} --only '{missing[0]}') or drop --only")
    pending = [u for u in units if records[u.name] is None]
    for unit in units:
        if records[unit.name] is not None:
            print(f"xlt experiment: {unit.name} done ({records[unit.name]['wall_s']:.0f} s, {unit.directory}) — "
                  "skipped")
    if not pending:
        print(f"xlt experiment: {recipe.name}: nothing to run ({len(units)} unit{'s' * (len(units) != 1)} finished)")
        return
    parent = parent_run(recipe)
    _set_parent_status(recipe, parent, "RUNNING")
    for index, unit in enumerate(pending, start=1):
        resume = resume_arguments(unit)
        how = " (resuming from checkpoints/last.ckpt)" if resume else ""
        print(f"xlt experiment: [{index}/{len(pending)}] {unit.name}: xlt {' '.join(unit.command)} -> "
              f"{unit.directory}{how}", flush=True)
        if unit.command[0] in LIGHTNING:  # a test-only stage may write nothing under its root; suite commands
            unit.directory.mkdir(parents=True, exist_ok=True)  # create (and refuse existing) outputs themselves
        code, wall = _run_process(recipe, unit, [*unit.argv(), *resume], parent)
        if code != 0:
            _set_parent_status(recipe, parent, "FAILED")
            print(f"xlt experiment: {unit.name} failed (exit {code}); its output: {log_path(recipe, unit)}",
                  file=sys.stderr)
            raise SystemExit(code if code > 0 else 128 - code)  # killed by signal s: the shell's 128 + s
        with atomic_file(done_path(recipe, unit)) as handle:
            json.dump({"unit": unit.name, "hash": unit.hash, "wall_s": round(wall, 1), "finished": time.time(),
                       "argv": unit.argv(), "resumed": bool(resume), "machine": machine()}, handle, indent=1)
    if all(finished(recipe, u) is not None for u in recipe.units):
        _set_parent_status(recipe, parent, "FINISHED")
    print(f"xlt experiment: {recipe.name}: {len(pending)} unit{'s' * (len(pending) != 1)} run; report: "
          f"xlt experiment report {recipe.path}")


def _run_process(recipe: Recipe, unit: Unit, argv: list[str], parent: str | None) -> tuple[int, float]:
    """Run ``python -m xlt <argv>``, its output to the terminal and the unit's log; returns (exit code, wall s)."""
    log = log_path(recipe, unit)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **stage_environment(recipe, unit, parent), "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    with open(log, "ab") as sink:
        sink.write(f"$ xlt {' '.join(argv)}\n".encode())
        process = subprocess.Popen([sys.executable, "-m", "xlt", *argv], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
        assert process.stdout is not None
        for line in process.stdout:
            sink.write(line)
            sink.flush()
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
        code = process.wait()
    return code, time.perf_counter() - start


def _die_with_parent() -> None:
    """Linux: the stage's process gets SIGTERM when the runner dies (killed or pre-empted), so a rerun never finds
    an orphan still writing the unit's directory. Elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def machine() -> str:
    """The machine a unit ran on, as the results page names it (CPU count and architecture; GPU when visible)."""
    import platform

    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"{os.cpu_count()} CPUs, {platform.machine()}" + (f", CUDA_VISIBLE_DEVICES={gpus}" if gpus else "")


def _set_parent_status(recipe: Recipe, run_id: str | None, status: str) -> None:
    from mlflow.tracking import MlflowClient

    if run_id is None:
        return
    client = MlflowClient(tracking_uri=tracking_uri(recipe))
    if status == "RUNNING":
        client.update_run(run_id, status="RUNNING")
    else:
        client.set_terminated(run_id, status=status)
