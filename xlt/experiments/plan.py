"""``xlt experiment plan``: the units of a recipe in dependency order, grouped into levels whose units are
independent of each other (a cluster runs a level as a job array, each level after the previous one)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from xlt.experiments.recipe import Recipe, Unit
from xlt.experiments.runner import finished


def runner_command(recipe: Recipe, unit: Unit) -> str:
    """The command that runs one unit through the runner (state, resume and MLflow parent included)."""
    return f"xlt experiment run {shlex.quote(str(recipe.path))} --only {shlex.quote(unit.name)}"


def plan_rows(recipe: Recipe) -> list[dict[str, Any]]:
    """One row per unit: level, name, needs, directory, whether it finished, the runner and the plain command."""
    rows = []
    for level, units in enumerate(recipe.levels(), start=1):
        for unit in units:
            rows.append({"level": level, "unit": unit.name, "stage": unit.stage, "needs": list(unit.needs),
                         "directory": str(unit.directory), "hash": unit.hash,
                         "done": finished(recipe, unit) is not None, "run": runner_command(recipe, unit),
                         "command": "xlt " + shlex.join(unit.argv())})
    return rows


def render_plan(recipe: Recipe, rows: list[dict[str, Any]]) -> str:
    """The plan as a shell script: one comment block per level, then each unit's runner command."""
    levels = max(row["level"] for row in rows)
    lines = [f"# experiment {recipe.name}: {len(rows)} units in {levels} levels; units of one level are "
             "independent (run them in parallel), each level needs the ones before it",
             f"# MLflow: experiment '{recipe.mlflow_experiment}', one parent run, every stage a child run"]
    for level in range(1, levels + 1):
        lines.append("")
        lines.append(f"# level {level}")
        for row in (r for r in rows if r["level"] == level):
            needs = ", ".join(row["needs"]) or "nothing"
            state = "done" if row["done"] else "to run"
            lines.append(f"#   {row['unit']} ({state}; needs {needs}) -> {row['directory']}")
            lines.append(f"#   runs: {row['command']}")
            lines.append(row["run"])
    return "\n".join(lines) + "\n"


def render_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=1) + "\n"
