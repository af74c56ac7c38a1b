"""Recipes: matrix expansion and matching, hashes that change exactly downstream of an edit, levels, and one-line
errors for the mistakes a user makes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xlt.errors import XltError
from xlt.experiments.recipe import load_recipe


def write(tmp_path: Path, recipe: dict, configs: dict[str, str] | None = None) -> Path:
    for name, text in (configs or {"a.yaml": "trainer: {max_steps: 1}\n", "b.yaml": "trainer: {max_steps: 2}\n"}
                       ).items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def two_stages(tmp_path: Path, **second: object) -> dict:
    return {"experiment": {"name": "demo"}, "root": str(tmp_path / "runs"),
            "stages": {"pretrain": {"command": "fit", "configs": [str(tmp_path / "a.yaml")], "seeds": [0, 1]},
                       "task": {"command": "fit", "configs": [str(tmp_path / "b.yaml")], "seeds": [0, 1],
                                "args": {"model.init_args.encoder": "${dir:pretrain}/export",
                                         "model.init_args.predictions_dir": "${dir:self}/predictions", **second}}}}


def test_seeds_pair_with_the_upstream_seed_and_set_seed_everything(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, two_stages(tmp_path)))
    assert [u.name for u in recipe.units] == ["pretrain[seed=0]", "pretrain[seed=1]", "task[seed=0]",
                                              "task[seed=1]"]
    task1, pre1 = recipe.unit("task[seed=1]"), recipe.unit("pretrain[seed=1]")
    assert task1.needs == ("pretrain[seed=1]",)
    args = dict(task1.args)
    assert args["--model.init_args.encoder"] == f"{pre1.directory}/export"
    assert args["--model.init_args.predictions_dir"] == f"{task1.directory}/predictions"
    assert args["--trainer.default_root_dir"] == str(task1.directory)
    assert args["--seed_everything"] == "1"
    assert task1.directory.parent == tmp_path / "runs" / "demo"
    assert [[u.name for u in level] for level in recipe.levels()] == [["pretrain[seed=0]", "pretrain[seed=1]"],
                                                                      ["task[seed=0]", "task[seed=1]"]]


def test_a_changed_config_renames_exactly_the_units_downstream(tmp_path: Path) -> None:
    before = {u.name: u.hash for u in load_recipe(write(tmp_path, two_stages(tmp_path))).units}
    changed_args = {u.name: u.hash for u in load_recipe(write(tmp_path, two_stages(tmp_path, **{"model.lr": 0.1})))
                    .units}
    assert [n for n in before if before[n] != changed_args[n]] == ["task[seed=0]", "task[seed=1]"]
    (tmp_path / "a.yaml").write_text("trainer: {max_steps: 3}\n")  # the upstream config's text changes
    changed_upstream = {u.name: u.hash for u in load_recipe(tmp_path / "recipe.yaml").units}
    assert all(before[n] != changed_upstream[n] for n in before)
    again = {u.name: u.hash for u in load_recipe(tmp_path / "recipe.yaml").units}
    assert again == changed_upstream  # deterministic


def test_matrix_values_keep_their_type_and_a_reference_picks_the_matching_unit(tmp_path: Path) -> None:
    recipe = two_stages(tmp_path)
    recipe["stages"]["pretrain"] = {"command": "fit", "configs": [str(tmp_path / "a.yaml")],
                                    "matrix": {"tail": [1, 4]},
                                    "args": {"data.init_args.oversampling": {"tail": "${matrix:tail}"}}}
    recipe["stages"]["task"]["matrix"] = {"tail": [4]}
    recipe["stages"]["task"].pop("seeds")
    loaded = load_recipe(write(tmp_path, recipe))
    assert dict(loaded.unit("pretrain[tail=4]").args)["--data.init_args.oversampling"] == '{"tail": 4}'
    assert loaded.unit("task[tail=4]").needs == ("pretrain[tail=4]",)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r["stages"]["task"].update(colour="red"), "stages.task: unknown key(s) colour"),
    (lambda r: r["stages"]["task"].update(command="train"), "'train' is not an xlt command"),
    (lambda r: r["stages"]["task"]["args"].update(x="${dir:nowhere}"), "refers to stage 'nowhere'"),
    (lambda r: r["stages"]["pretrain"].update(needs=["task"]), "dependency cycle"),
    (lambda r: r["stages"]["task"].update(configs=["missing.yaml"]), "config file missing.yaml does not exist"),
    (lambda r: r["stages"]["task"].pop("seeds"), "matches 2 units"),
    (lambda r: r.update(extra=1), "top level: unknown key(s) extra"),
    (lambda r: r["stages"]["task"]["args"].update(x="${matrix:tail}"), "names no matrix key"),
])
def test_recipe_mistakes_are_one_line_errors_naming_the_key(tmp_path: Path, edit, message: str) -> None:
    recipe = two_stages(tmp_path)
    edit(recipe)
    with pytest.raises(XltError) as error:
        load_recipe(write(tmp_path, recipe))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(tmp_path / "recipe.yaml") in str(error.value)
