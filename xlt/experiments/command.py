"""``xlt experiment run | plan | report``: one recipe (``configs/experiments/<name>.yaml``) as ordered stages."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from xlt.experiments.plan import plan_rows, render_json, render_plan
from xlt.experiments.recipe import Recipe, load_recipe
from xlt.experiments.results import write_page
from xlt.experiments.runner import run_units, select
from xlt.experiments.validation import check_recipe
from xlt.experiments.views import check_views


def checked_recipe(recipe: str | Path) -> Recipe:
    """Load a recipe and check its stages' command lines and its report views: every mistake before any stage."""
    loaded = load_recipe(recipe)
    check_recipe(loaded)
    check_views(loaded)
    return loaded


def run(recipe: str, only: list[str] | str | None = None) -> None:
    """Run an experiment: its stages in dependency order, each an xlt command in its own process.

    A rerun skips finished stages; a stage whose config (or an upstream stage) changed gets a new output directory
    (named by the hash of its resolved config) and runs again; an interrupted fit resumes from its last checkpoint
    and MLflow run. The experiment is one MLflow parent run; every stage's runs are its children.

    Args:
        recipe: The experiment recipe (configs/experiments/<name>.yaml).
        only: Run only these stages or units (names from ``xlt experiment plan``); their dependencies must have
            finished. For a cluster: one ``--only`` unit per job, in the levels ``plan`` prints.
    """
    loaded = checked_recipe(recipe)
    run_units(loaded, select(loaded, [only] if isinstance(only, str) else only))


def plan(recipe: str, format: Literal["text", "json"] = "text") -> None:
    """Print an experiment's units in dependency order, grouped into levels of independent units.

    Each unit shows what it needs, where it writes, whether it has finished, the xlt command it runs and the
    ``xlt experiment run --only`` line that runs it with the runner's bookkeeping (submit one job per line; the
    units of a level can run in parallel, each level after the previous one).

    Args:
        recipe: The experiment recipe (configs/experiments/<name>.yaml).
        format: ``text`` (a commented shell script) or ``json`` (one object per unit, for a scheduler).
    """
    loaded = checked_recipe(recipe)
    rows = plan_rows(loaded)
    print(render_plan(loaded, rows) if format == "text" else render_json(rows), end="")


def report(recipes: list[str] | str, out: str = "docs/experiments.md") -> None:
    """Build the results page of one or more experiments from their stages' MLflow runs and outputs.

    For each experiment: the paper's claim, its tables and plots, a verdict per claim decided by bootstrap or
    seed intervals (reproduced / not reproduced / inconclusive / not run), its wall time, and the overlays that
    run it on real corpora and at the paper's scale. The same store gives the same page.

    Args:
        recipes: An experiment recipe, or several in page order (``'[configs/experiments/script.yaml, ...]'``).
        out: The Markdown page; plots go to ``<out without .md>/`` beside it.
    """
    recipes = [recipes] if isinstance(recipes, str) else recipes
    loaded = [checked_recipe(recipe) for recipe in recipes]
    path = write_page(loaded, out)
    print(f"wrote {path} ({len(loaded)} experiments)")
