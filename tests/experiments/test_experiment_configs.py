"""Every recipe under configs/experiments/ resolves (what `xlt experiment plan` checks) and its plan is in
dependency order; the full experiments are not run in the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from xlt.experiments.command import checked_recipe
from xlt.experiments.plan import plan_rows

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "configs" / "experiments").glob("*.yaml"))


def test_the_paper_experiments_have_recipes() -> None:
    assert {p.stem for p in RECIPES} >= {"table2", "oversampling", "vocabulary", "layers", "few_shot", "script",
                                         "typology", "recipe"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_resolves_and_plans_in_dependency_order(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    recipe = checked_recipe(path.relative_to(ROOT))
    assert recipe.info.get("claim") and recipe.info.get("real_data") and recipe.info.get("paper_scale")
    rows = plan_rows(recipe)
    level = {row["unit"]: row["level"] for row in rows}
    for row in rows:
        assert all(level[need] < row["level"] for need in row["needs"]), row["unit"]
    assert len({row["directory"] for row in rows}) == len(rows)  # every unit writes its own directory
