"""Search space: config paths set in a copy of the recipe, ranges checked, simplex points hand-computed."""

from __future__ import annotations

import math

import optuna
import pytest

from xlt.errors import XltError
from xlt.tuning.space import Range, Simplex, apply, check_space, examples, suggest

RECIPE = {"model": {"class_path": "M", "init_args": {"lr": 1e-3}},
          "data": {"class_path": "D", "init_args": {"alpha": 0.3, "oversampling": {"tail": 2.0}, "languages": None}}}


def test_apply_sets_paths_in_a_copy_and_adds_keys_to_mappings() -> None:
    result = apply(RECIPE, {"data.init_args.alpha": 0.7, "data.init_args.oversampling.low": 4.0,
                            "data.init_args.languages.qaa": 1})
    assert result["data"]["init_args"]["alpha"] == 0.7
    assert result["data"]["init_args"]["oversampling"] == {"tail": 2.0, "low": 4.0}  # merged, not replaced
    assert result["data"]["init_args"]["languages"] == {"qaa": 1}  # an unset mapping becomes one
    assert RECIPE["data"]["init_args"]["alpha"] == 0.3 and "low" not in RECIPE["data"]["init_args"]["oversampling"]


@pytest.mark.parametrize("path", ["model.lr.x", "optimizer.lr", "data.init_args.alpha.x"])
def test_a_path_through_a_non_section_names_itself(path: str) -> None:
    with pytest.raises(XltError, match=f"'{path}' is not a config path"):
        apply(RECIPE, {path: 1.0})


@pytest.mark.parametrize(("spec", "message"), [
    (Range(low=2.0, high=1.0), "low 2.0 > high 1.0"),
    (Range(low=0.0, high=1.0, log=True), "log range needs low > 0"),
    (Range(low=1.0), "give low and high"),
    (Range(choices=[]), "choices is empty"),
])
def test_bad_ranges_are_user_errors(spec: Range, message: str) -> None:
    with pytest.raises(XltError, match=message):
        check_space({"data.init_args.alpha": spec}, [])


def test_empty_space_and_a_path_swept_twice_are_user_errors() -> None:
    with pytest.raises(XltError, match="sweep.space is empty"):
        check_space({}, [])
    with pytest.raises(XltError, match="swept twice"):
        check_space({"a.b": Range(low=1, high=2)}, [Simplex(paths=["a.b", "a.c"])])


def test_suggestions_follow_the_ranges() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = {"f": Range(low=1.0, high=16.0, log=True), "i": Range(low=2, high=8, integer=True, step=2),
             "c": Range(choices=["linear", "cosine"])}
    for _ in range(30):
        trial = study.ask()
        values = suggest(trial, space, [])
        assert 1.0 <= values["f"] <= 16.0
        assert values["i"] in (2, 4, 6, 8) and isinstance(values["i"], int)
        assert values["c"] in ("linear", "cosine")
        study.tell(trial, 0.0)
    distribution = study.trials[0].distributions["f"]
    assert distribution.log and distribution.low == 1.0  # the log-uniform draw is Optuna's own


def test_simplex_is_normalised_exponentials_hand_computed() -> None:
    """u = (e^-1, e^-3): exponentials 1 and 3, factors 2·mean·(1/4, 3/4)."""
    study = optuna.create_study()
    study.enqueue_trial({"o.qaa.u": math.exp(-1.0), "o.qab.u": math.exp(-3.0)})
    values = suggest(study.ask(), {}, [Simplex(paths=["o.qaa", "o.qab"], mean=2.0)])
    assert values["o.qaa"] == pytest.approx(1.0, rel=1e-12)
    assert values["o.qab"] == pytest.approx(3.0, rel=1e-12)
    assert examples({}, [Simplex(paths=["o.qaa", "o.qab"], mean=2.0)]) == {"o.qaa": 2.0, "o.qab": 2.0}
