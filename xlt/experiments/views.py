"""The results page's views of an experiment: tables and plots from its stages' MLflow runs and output files,
and the verdicts on its claims (:mod:`xlt.experiments.verdicts`).

A recipe's ``report:`` is a list of views, each a mapping with ``kind``:

- ``scores``: task scores per stage label (rows) and task × group (columns), mean ± std over seeds [mean CI].
- ``difference``: a claimed paired difference ``a - b`` on one task, over examples (prediction files), per seed.
  ``a`` and ``b`` each name a ``stage`` (and matrix ``values``) and the ``languages`` (or ``bucket``) scored;
  two languages of one stage compare rows of a parallel test set.
- ``seed_difference``: a claimed difference of a logged metric between two units, paired over seeds.
- ``curve``: logged metrics over one matrix key (the oversampling factor), a table and a plot.
- ``recovered``: the share of a gap an intervention recovers, ``(treated - baseline) / (reference - baseline)``
  (the script cost that language-specific vocabulary wins back), with a threshold ``at_least``.
- ``sweep``: a sweep stage's Pareto-optimal trials (all objectives minimised) and its Pareto-front plot, from the
  study's MLflow run.
- ``peaks``: the peak-layer tables of probing stages, and a claimed order of properties along the depth.
- ``transfer``: the source × target matrix of a stage whose matrix key (``over``, default ``source``) is the
  fine-tuning language, and the claim that transfer falls with typological distance (Spearman ρ < 0, judged by a
  bootstrap over the source–target pairs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xlt.errors import XltError
from xlt.experiments.logged_views import (
    curve_view,
    peaks_view,
    scores_view,
    seed_difference_view,
    sweep_view,
    transfer_view,
)
from xlt.experiments.paired_views import difference_view, recovered_view
from xlt.experiments.recipe import Recipe
from xlt.experiments.stage_runs import StageRuns
from xlt.experiments.view_parts import ViewOutput

VIEW_KEYS = {
    "scores": {"kind", "title", "stages", "tasks", "groups", "metrics"},
    "difference": {"kind", "title", "claim", "task", "a", "b", "expect", "margin", "data", "cache_dir", "n_boot"},
    "seed_difference": {"kind", "title", "claim", "metric", "bucket", "panel", "a", "b", "expect", "margin",
                        "scale"},
    "curve": {"kind", "title", "stage", "over", "metrics", "panel"},
    "peaks": {"kind", "title", "stages", "claim", "order", "group", "groups"},
    "transfer": {"kind", "title", "claim", "stage", "values", "task", "metric", "over", "panel", "method"},
    "sweep": {"kind", "title", "stage"},
    "recovered": {"kind", "title", "claim", "task", "treated", "baseline", "reference", "at_least", "data",
                  "cache_dir", "n_boot"},
}


SIDE_KEYS = {"stage", "values", "languages", "bucket"}


EXPECT = ("greater", "less", "not_greater", "not_less")


def check_views(recipe: Recipe) -> None:
    """Validate the ``report`` views' keys and the stages they name (before anything runs)."""
    stages = {u.stage for u in recipe.units}
    for index, view in enumerate(recipe.report):
        where = f"{recipe.path}: report[{index}]"
        if not isinstance(view, dict) or view.get("kind") not in VIEW_KEYS:
            raise XltError(f"{where}: kind must be one of {', '.join(VIEW_KEYS)}")
        unknown = sorted(set(view) - VIEW_KEYS[view["kind"]])
        if unknown:
            raise XltError(f"{where}: unknown key(s) {', '.join(unknown)} for a {view['kind']} view — use "
                           f"{', '.join(sorted(VIEW_KEYS[view['kind']]))}")
        named = list(view.get("stages") or []) + [view[k] for k in ("stage",) if k in view]
        for side in ("a", "b", "treated", "baseline", "reference"):
            if side in view:
                if not isinstance(view[side], dict) or "stage" not in view[side]:
                    raise XltError(f"{where}.{side}: give a mapping with stage (and values, languages or bucket)")
                unknown = sorted(set(view[side]) - SIDE_KEYS)
                if unknown:
                    raise XltError(f"{where}.{side}: unknown key(s) {', '.join(unknown)} — use "
                                   f"{', '.join(sorted(SIDE_KEYS))}")
                named.append(view[side]["stage"])
        for stage in named:
            if stage not in stages:
                raise XltError(f"{where}: names stage '{stage}', which the recipe does not define")
        if view["kind"] in ("difference", "seed_difference") and view.get("expect") not in EXPECT:
            raise XltError(f"{where}: expect must be one of {', '.join(EXPECT)} (greater: a > b is claimed; "
                           "not_greater: a - b <= margin)")


VIEWS = {"scores": scores_view, "difference": difference_view, "recovered": recovered_view,
         "seed_difference": seed_difference_view, "curve": curve_view, "sweep": sweep_view,
         "transfer": transfer_view, "peaks": peaks_view}
"""Kind -> view: ``view(recipe, runs, spec, name)`` (``name`` prefixes the files a view makes)."""


def render_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any], name: str) -> ViewOutput:
    """One view of the page (its kind checked by :func:`check_views`)."""
    return VIEWS[view["kind"]](recipe, runs, view, name)
