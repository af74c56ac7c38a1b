"""What every view of the results page shares: its outputs (findings, Markdown, files), picking a stage's units,
the languages a side scores, a logged metric (optionally a bucket mean) and the Markdown helpers."""

from __future__ import annotations

import fnmatch
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xlt.errors import XltError
from xlt.evaluation import markdown
from xlt.experiments.recipe import Recipe, Unit
from xlt.experiments.verdicts import Evidence


@dataclass
class Finding:
    """A claim and what the experiment says about it."""

    claim: str
    evidence: Evidence | None
    note: str = ""
    scale: float = 1.0  # how the effect is shown: x100 for scores kept as fractions
    unit: str = ""

    @property
    def verdict(self) -> str:
        return self.evidence.verdict if self.evidence is not None else "not run"


@dataclass
class ViewOutput:
    """One view's Markdown, the claims it judged and the files (plots) it made, by name."""

    markdown: str
    findings: list[Finding] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


def matching(recipe: Recipe, stage: str, values: Mapping[str, Any] | None) -> list[Unit]:
    """The units of ``stage`` whose matrix values include ``values``, in matrix order."""
    wanted = dict(values or {})
    return [u for u in recipe.units_of(stage) if all(dict(u.values).get(k) == v for k, v in wanted.items())]


def by_seed(units: Sequence[Unit]) -> dict[Any, Unit]:
    return {u.seed: u for u in units}


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return "\n".join(markdown.table(header, rows)) + "\n"


def pct(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


@functools.cache
def panel_buckets(panel: str | None) -> dict[str, str]:
    """Language code -> resource bucket of a panel (default the synthetic one), read once per report."""
    from xlt.languages import load_panel

    return {lang.code: lang.bucket for lang in load_panel(panel or "synthetic")}


def side_languages(view: Mapping[str, Any], side: Mapping[str, Any], panel_name: str | None) -> list[str]:
    if side.get("languages"):
        return [str(code) for code in side["languages"]]
    if side.get("bucket"):
        return [code for code, bucket in panel_buckets(panel_name).items() if bucket == side["bucket"]]
    raise XltError(f"difference view '{view.get('title', '')}': give languages or bucket for side {side['stage']}")


def metric_value(metrics: Mapping[str, float], metric: str, bucket: str | None, panel: str | None) -> float | None:
    from xlt.tuning.objectives import Objective

    if "*" in metric:  # a name with a part the stage chose (an audit's tokenizer directory): one match
        matches = [name for name in metrics if fnmatch.fnmatchcase(name, metric)]
        if len(matches) != 1:
            return None
        metric = matches[0]
    try:
        return Objective("view", metric, bucket=bucket).value(metrics, panel_buckets(panel))
    except XltError:
        return None


def side_name(side: Mapping[str, Any]) -> str:
    values = ", ".join(f"{k}={v}" for k, v in dict(side.get("values") or {}).items())
    return side["stage"] + (f" [{values}]" if values else "")
