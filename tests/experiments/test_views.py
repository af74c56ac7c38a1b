"""The page's example-level views on planted prediction files: the paired difference and the share of a gap
recovered come out as hand-computed, and the verdicts follow."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xlt.experiments.paired_views import difference_view, recovered_view
from xlt.experiments.recipe import load_recipe


class PlantedRuns:
    """Stands in for :class:`~xlt.experiments.views.StageRuns`: each stage's prediction files are planted."""

    def __init__(self, files: dict[str, dict[str, Path]]) -> None:
        self.files = files

    def predictions(self, unit, task: str, codes: list[str]) -> list[Path] | None:
        by_code = self.files.get(unit.stage, {})
        return [by_code[c] for c in codes] if all(c in by_code for c in codes) else None


def gold_labels(data: str, code: str) -> list[str]:
    """The gold labels as prediction files write them (``str`` of the split's label), read as the view reads them."""
    from xlt.evaluation.compare import gold_split
    from xlt.sources import as_task_source

    return [str(v) for v in gold_split("xnli", as_task_source(data, "runs/cache"), code)["label"]]


def plant(tmp_path: Path, name: str, gold: list[str], correct: int) -> Path:
    """A prediction file whose first ``correct`` rows are right and the rest wrong."""
    rows = [g if i < correct else f"not-{g}" for i, g in enumerate(gold)]
    path = tmp_path / name / "test-qaa.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"{r}\n" for r in rows))
    return path


@pytest.fixture
def recipe(tmp_path: Path):
    (tmp_path / "c.yaml").write_text("trainer: {max_steps: 1}\n")
    stages = {name: {"command": "fit", "configs": [str(tmp_path / "c.yaml")], "args": {"model.lr": i}}
              for i, name in enumerate(["base", "treated", "reference"])}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"experiment": {"name": "views"}, "root": str(tmp_path / "runs"),
                                    "stages": stages}))
    return load_recipe(path)


def test_difference_and_recovered_share_on_planted_predictions(tmp_path: Path, recipe, synthetic_dir: Path) -> None:
    data = str(synthetic_dir / "xnli")
    gold = gold_labels(data, "qaa")
    n = len(gold)
    assert n >= 20
    right = {"base": n // 5, "treated": n // 2, "reference": n - 1}
    runs = PlantedRuns({stage: {"qaa": plant(tmp_path, stage, gold, k)} for stage, k in right.items()})

    view = {"kind": "difference", "claim": "treated beats base", "task": "xnli", "expect": "greater",
            "a": {"stage": "treated", "languages": ["qaa"]}, "b": {"stage": "base", "languages": ["qaa"]},
            "data": data, "n_boot": 500}
    out = difference_view(recipe, runs, view)
    expected = 100 * (right["treated"] - right["base"]) / n
    assert f"| {100 * right['treated'] / n:.1f} | {100 * right['base'] / n:.1f} | {expected:+.1f} |" in out.markdown
    (finding,) = out.findings
    assert finding.evidence.effect == pytest.approx(expected / 100)
    assert finding.verdict == "reproduced"  # every treated-right row is also base-right: a large, certain gain

    share = (right["treated"] - right["base"]) / (right["reference"] - right["base"])
    for at_least, verdict in ((0.05, "reproduced"), (0.95, "not reproduced")):
        view = {"kind": "recovered", "task": "xnli", "at_least": at_least, "data": data, "n_boot": 500,
                "treated": {"stage": "treated", "languages": ["qaa"]},
                "baseline": {"stage": "base", "languages": ["qaa"]},
                "reference": {"stage": "reference", "languages": ["qaa"]}}
        out = recovered_view(recipe, runs, view)
        (finding,) = out.findings
        assert finding.evidence.effect == pytest.approx(share)
        assert f"{100 * share:.1f} %" in out.markdown
        assert finding.verdict == verdict, (at_least, share, finding.evidence)


def test_a_view_over_units_without_predictions_is_not_run(tmp_path: Path, recipe, synthetic_dir: Path) -> None:
    view = {"kind": "difference", "claim": "treated beats base", "task": "xnli", "expect": "greater",
            "a": {"stage": "treated", "languages": ["qaa"]}, "b": {"stage": "base", "languages": ["qaa"]},
            "data": str(synthetic_dir / "xnli")}
    out = difference_view(recipe, PlantedRuns({}), view)
    assert out.findings[0].verdict == "not run" and "Not run" in out.markdown
