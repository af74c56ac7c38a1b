"""Disaggregated reporting: per-language scores, macro and grouped averages with bootstrap CIs, bottom decile,
"% of supervised" and the few-shot "fraction of the zero-shot→supervised gap recovered".

Input is one score per evaluated language — a :class:`~xlt.evaluation.bootstrap.PerExample` (from a metric's
``per_example()``; enables CIs) or a plain float (no CI) — and the :class:`~xlt.languages.Panel` that says each
language's family, script and resource bucket. :func:`disaggregate` returns an :class:`EvaluationResult` whose
groups are, in this order:

- each language code (panel order), e.g. ``yor``;
- ``macro``: the unweighted mean over the evaluated panel languages (minus ``exclude``);
- ``family.<name>``, ``script.<name>``, ``bucket.<name>``: the mean over that group's languages (names sanitised
  by :func:`sanitize_group`; buckets in the order high, mid, low, tail);
- ``bottom_decile``: the mean over the bottom decile of languages (see :func:`bottom_decile_languages`).

A group's CI resamples *examples within each language* (each language on its own seeded stream,
:func:`~xlt.evaluation.bootstrap.language_rng`), averages the languages of the group per resample and takes
percentiles; it is ``None`` when a language of the group has no per-example statistics.

Derived tables (keyed by metric name, then group), present when the references are given:

- ``<metric>_of_supervised``: ``score / supervised`` per language; for a group, the ratio of the two group
  means over the languages that have both (×100 for "% of supervised").
- ``<metric>_gap_recovered``: for a few-shot result, ``(few - zero) / (supervised - zero)`` per language; for a
  group ``(mean few - mean zero) / (mean sup - mean zero)`` over languages that have all three. Undefined
  (left out) when supervised equals zero-shot.

Metric names follow DESIGN.md: ``<stage>/<task>/<metric>/<group>`` (:func:`metric_name`), e.g.
``test/xnli/acc/bucket.tail``; CI bounds are ``<stage>/<task>/<metric>_ci_low/<group>`` and ``_ci_high``.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from xlt.errors import XltError
from xlt.evaluation import markdown
from xlt.evaluation.bootstrap import PerExample, bootstrap_distribution, language_rng, percentile_interval
from xlt.languages import BUCKETS, Panel

_COMPONENT = re.compile(r"^[A-Za-z0-9_. -]+$")
BottomDecileBy = Literal["bucket", "size", "score"]
Score = PerExample | float


def sanitize_group(name: str) -> str:
    """A group-name component that MLflow keeps intact: accents stripped (``Tupí`` → ``Tupi``), then every
    character outside ``[A-Za-z0-9_. -]`` (including ``/``) replaced by ``_``."""
    ascii_text = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    cleaned = re.sub(r"[^A-Za-z0-9_. -]", "_", ascii_text).strip()
    return cleaned or "_"


def metric_name(stage: str, task: str, metric: str, group: str) -> str:
    """``<stage>/<task>/<metric>/<group>``; a :class:`ValueError` if a part is empty or has a character outside
    ``[A-Za-z0-9_. -]`` (sanitise group names with :func:`sanitize_group` first)."""
    for part, value in (("stage", stage), ("task", task), ("metric", metric), ("group", group)):
        if not _COMPONENT.match(value):
            raise ValueError(f"metric name {part} {value!r} must be non-empty and use only [A-Za-z0-9_. -]")
    return f"{stage}/{task}/{metric}/{group}"


@dataclass(frozen=True)
class GroupScore:
    """The score of one reporting group.

    Attributes:
        group: language code, ``macro``, ``family.<name>``, ``script.<name>``, ``bucket.<name>`` or
            ``bottom_decile``.
        score: mean of the member languages' scores (the language's own score for a language row).
        low: lower CI bound, or ``None`` without per-example statistics.
        high: upper CI bound, or ``None``.
        languages: member language codes.
        n_examples: total examples of the members, ``None`` if some member has only a float score.
    """

    group: str
    score: float
    low: float | None
    high: float | None
    languages: tuple[str, ...]
    n_examples: int | None

    @property
    def kind(self) -> str:
        """``language``, ``macro``, ``family``, ``script``, ``bucket`` or ``bottom_decile``."""
        if self.group in ("macro", "bottom_decile"):
            return self.group
        return self.group.split(".", 1)[0] if "." in self.group else "language"


@dataclass(frozen=True)
class BottomDecile:
    """Summary of the languages at the bottom of the panel.

    Attributes:
        by: how they were chosen: ``bucket`` (bucket ``tail``), ``size`` (lowest decile of ``size_gib``) or
            ``score`` (lowest decile of scores).
        languages: the chosen language codes.
        score: their mean score.
        macro: the macro average of the whole evaluation.
        gap: ``macro - score``.
        worst_language: the lowest-scoring language of the panel.
        worst_score: its score.
    """

    by: str
    languages: tuple[str, ...]
    score: float
    macro: float
    gap: float
    worst_language: str
    worst_score: float


@dataclass
class EvaluationResult:
    """Disaggregated scores of one metric of one task at one stage, ready to log or tabulate.

    Attributes:
        stage: ``val`` or ``test`` (first part of the metric name).
        task: task name (``xnli``, ``udpos``, ...).
        metric: metric name (``acc``, ``f1``, ``em``, ``p1``).
        panel: panel name.
        groups: group -> :class:`GroupScore`, in reporting order (module docstring).
        bottom_decile: bottom-decile summary, or ``None`` when the chosen rule selects no language.
        derived: extra metric name -> group -> value (``<metric>_of_supervised``, ``<metric>_gap_recovered``).
        confidence: CI coverage.
        n_boot: bootstrap resamples per CI.
        seed: bootstrap seed.
        per_example: the per-language statistics the CIs came from (for paired comparisons between runs).
        labels: language code -> how tables and plots name it (:meth:`~xlt.languages.Panel.label`,
            ``yor Yoruba``); a code without one is shown bare. CSV, dicts and metric names keep the codes.
    """

    stage: str
    task: str
    metric: str
    panel: str
    groups: dict[str, GroupScore]
    bottom_decile: BottomDecile | None = None
    derived: dict[str, dict[str, float]] = field(default_factory=dict)
    confidence: float = 0.95
    n_boot: int = 1000
    seed: int = 0
    per_example: dict[str, PerExample] = field(default_factory=dict, repr=False)
    labels: dict[str, str] = field(default_factory=dict, repr=False)

    def label(self, group: str) -> str:
        """The display label of a language row (``yor Yoruba``); other groups and unnamed codes as they are."""
        return self.labels.get(group, group)

    def __getitem__(self, group: str) -> GroupScore:
        return self.groups[group]

    @property
    def languages(self) -> list[GroupScore]:
        """The per-language rows."""
        return [g for g in self.groups.values() if g.kind == "language"]

    @property
    def macro(self) -> GroupScore:
        """The macro-average row."""
        return self.groups["macro"]

    def name(self, group: str, metric: str | None = None) -> str:
        """The MLflow metric name of ``group`` (for ``metric``, default this result's metric)."""
        return metric_name(self.stage, self.task, metric or self.metric, group)

    def metrics(self, include_ci: bool = True) -> dict[str, float]:
        """Flat ``name -> value`` for logging: scores, CI bounds (``<metric>_ci_low``/``_ci_high``) and derived
        tables (ready for ``LightningModule.log_dict`` or MLflow)."""
        out: dict[str, float] = {}
        for group, row in self.groups.items():
            out[self.name(group)] = row.score
            if include_ci and row.low is not None and row.high is not None:
                out[self.name(group, f"{self.metric}_ci_low")] = row.low
                out[self.name(group, f"{self.metric}_ci_high")] = row.high
        for metric, table in self.derived.items():
            for group, value in table.items():
                out[self.name(group, metric)] = value
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One dict per group: group, kind, score, ci_low, ci_high, n_languages, n_examples, languages, derived."""
        rows = []
        for group, row in self.groups.items():
            record: dict[str, Any] = {
                "group": group, "kind": row.kind, "score": row.score, "ci_low": row.low, "ci_high": row.high,
                "n_languages": len(row.languages), "n_examples": row.n_examples, "languages": " ".join(row.languages),
            }
            for metric, table in self.derived.items():
                record[metric] = table.get(group)
            rows.append(record)
        return rows

    def to_csv(self) -> str:
        """All rows as CSV (fractions at full precision; empty cells for missing values)."""
        rows = self.rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        return buffer.getvalue()

    def to_markdown(self, percent: bool = True, digits: int = 1) -> str:
        """A Markdown table: group, score with CI (``76.8 [75.2, 78.1]``), #languages, #examples, derived columns."""
        scale = 100.0 if percent else 1.0

        def fmt(value: float | None) -> str:
            return "–" if value is None or not math.isfinite(value) else f"{value * scale:.{digits}f}"

        derived = list(self.derived)
        unit = " (%)" if percent else ""
        header = ["group", f"{self.metric}{unit}", f"{self.confidence:.0%} CI", "languages", "examples", *derived]
        lines = [f"**{self.stage}/{self.task}/{self.metric}** — panel `{self.panel}`", "",
                 "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        for group, row in self.groups.items():
            ci = f"[{fmt(row.low)}, {fmt(row.high)}]" if row.low is not None else "–"
            name = markdown.escape(self.label(group)) if row.kind == "language" else group
            cells = [name, fmt(row.score), ci, str(len(row.languages)),
                     "–" if row.n_examples is None else str(row.n_examples),
                     *(fmt(self.derived[m].get(group)) for m in derived)]
            lines.append("| " + " | ".join(cells) + " |")
        if self.bottom_decile is not None:
            b = self.bottom_decile
            lines += ["", f"Bottom decile (by {b.by}: {', '.join(b.languages)}): {fmt(b.score)} vs macro "
                          f"{fmt(b.macro)} (gap {fmt(b.gap)}); worst language {b.worst_language} {fmt(b.worst_score)}."]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no per-example data)."""
        return {
            "stage": self.stage, "task": self.task, "metric": self.metric, "panel": self.panel,
            "confidence": self.confidence, "n_boot": self.n_boot, "seed": self.seed, "rows": self.rows(),
            "bottom_decile": None if self.bottom_decile is None else {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.bottom_decile.__dict__.items()},
        }


def _score(value: Score, code: str, what: str) -> float:
    if isinstance(value, PerExample):
        if not len(value):
            raise XltError(f"no evaluation examples for language '{code}' ({what}) — check that language's eval "
                           "data or drop it from the eval languages")
        return value.score()
    value = float(value)
    if not math.isfinite(value):
        raise XltError(f"score {value} for language '{code}' ({what}) is not a finite number — check that "
                       "language's evaluation")
    return value


def _scores(values: Mapping[str, Score] | EvaluationResult, panel: Panel, what: str) -> dict[str, float]:
    if isinstance(values, EvaluationResult):
        return {row.group: row.score for row in values.languages}
    unknown = [code for code in values if code not in panel]
    if unknown:
        raise XltError(f"{what} has scores for language(s) {unknown} that are not in panel '{panel.name}' — add "
                       f"them to the panel or drop them from the eval languages")
    return {code: _score(value, code, what) for code, value in values.items()}


def _groups(panel: Panel, codes: Sequence[str]) -> dict[str, list[str]]:
    """Aggregate groups (macro, families, scripts, buckets) over ``codes`` in reporting order."""
    langs = [panel.get(c) for c in codes]
    groups: dict[str, list[str]] = {"macro": list(codes)}
    for attr in ("family", "script"):
        for lang in langs:
            groups.setdefault(f"{attr}.{sanitize_group(getattr(lang, attr))}", []).append(lang.code)
    for bucket in BUCKETS:
        members = [lang.code for lang in langs if lang.bucket == bucket]
        if members:
            groups[f"bucket.{bucket}"] = members
    return groups


def bottom_decile_languages(panel: Panel, scores: Mapping[str, float], by: BottomDecileBy = "bucket") -> list[str]:
    """The bottom decile of the evaluated languages (panel order).

    Args:
        panel: the panel with buckets and sizes.
        scores: language -> score of the evaluated languages.
        by: ``bucket``: languages in bucket ``tail`` (the panel's bottom-decile bucket); ``size``: the
            ``ceil(n / 10)`` languages with the smallest ``size_gib`` (unknown size counts as smallest);
            ``score``: the ``ceil(n / 10)`` lowest-scoring languages.
    """
    codes = [c for c in panel.codes if c in scores]
    if by == "bucket":
        return [c for c in codes if panel.get(c).bucket == "tail"]
    k = math.ceil(len(codes) / 10)
    if by == "size":
        key = {c: -math.inf if panel.get(c).size_gib is None else panel.get(c).size_gib for c in codes}
    elif by == "score":
        key = dict(scores)
    else:
        raise XltError(f"bottom decile rule {by!r} is unknown — use 'bucket', 'size' or 'score'")
    chosen = set(sorted(codes, key=lambda c: (key[c], codes.index(c)))[:k])
    return [c for c in codes if c in chosen]


def group_ratio(values: Mapping[str, float], reference: Mapping[str, float], members: Sequence[str],
                 baseline: Mapping[str, float] | None = None) -> float | None:
    """``(mean v - mean b) / (mean r - mean b)`` over members present everywhere (``b = 0`` without baseline)."""
    common = [c for c in members if c in values and c in reference and (baseline is None or c in baseline)]
    if not common:
        return None
    base = float(np.mean([baseline[c] for c in common])) if baseline is not None else 0.0
    num = float(np.mean([values[c] for c in common])) - base
    den = float(np.mean([reference[c] for c in common])) - base
    return num / den if abs(den) > 1e-12 else None


def relative_to_supervised(scores: Mapping[str, float], supervised: Mapping[str, float], panel: Panel,
                           exclude: Sequence[str] = ()) -> dict[str, float]:
    """Group -> ``score / supervised`` (per language, and ratio of group means for macro/family/script/bucket)."""
    codes = [c for c in panel.codes if c in scores]
    groups = {c: [c] for c in codes} | _groups(panel, [c for c in codes if c not in exclude])
    out = {g: group_ratio(scores, supervised, members) for g, members in groups.items()}
    return {g: v for g, v in out.items() if v is not None}


def gap_recovered(few_shot: Mapping[str, float], zero_shot: Mapping[str, float], supervised: Mapping[str, float],
                  panel: Panel, exclude: Sequence[str] = ()) -> dict[str, float]:
    """Group -> fraction of the zero-shot→supervised gap that few-shot recovers, ``(few - zero) / (sup - zero)``."""
    codes = [c for c in panel.codes if c in few_shot]
    groups = {c: [c] for c in codes} | _groups(panel, [c for c in codes if c not in exclude])
    out = {g: group_ratio(few_shot, supervised, members, zero_shot) for g, members in groups.items()}
    return {g: v for g, v in out.items() if v is not None}


def disaggregate(scores: Mapping[str, Score], panel: Panel, *, stage: str, task: str, metric: str,
                 n_boot: int = 1000, confidence: float = 0.95, seed: int = 0, exclude: Sequence[str] = (),
                 bottom_decile: BottomDecileBy = "bucket",
                 supervised: Mapping[str, Score] | EvaluationResult | None = None,
                 zero_shot: Mapping[str, Score] | EvaluationResult | None = None) -> EvaluationResult:
    """Per-language, macro and grouped scores with bootstrap CIs for one metric.

    Args:
        scores: language code -> :class:`PerExample` (CIs) or float (no CI), for the evaluated languages.
        panel: the panel the languages belong to (family, script, bucket, size).
        stage: ``val`` or ``test``.
        task: task name for metric names.
        metric: metric name for metric names (``acc``, ``f1``...).
        n_boot: bootstrap resamples per CI.
        confidence: CI coverage.
        seed: bootstrap seed (languages use independent streams derived from it and their code).
        exclude: languages reported on their own rows but left out of macro/family/script/bucket/bottom-decile
            aggregates (e.g. the source language in zero-shot transfer).
        bottom_decile: rule for the bottom decile: ``bucket``, ``size`` or ``score``.
        supervised: per-language scores of a supervised reference (in-language training) → adds
            ``<metric>_of_supervised``.
        zero_shot: with ``supervised``, per-language zero-shot scores when ``scores`` is few-shot → adds
            ``<metric>_gap_recovered``.
    """
    what = f"{stage}/{task}/{metric}"
    if not scores:
        raise XltError(f"no per-language scores for {what} — evaluate at least one language")
    point = _scores(scores, panel, what)
    codes = [c for c in panel.codes if c in point]
    missing_excluded = [c for c in exclude if c not in panel]
    if missing_excluded:
        raise XltError(f"excluded language(s) {missing_excluded} are not in panel '{panel.name}' — fix 'exclude'")
    aggregated = [c for c in codes if c not in exclude]

    per_example = {c: v for c, v in scores.items() if isinstance(v, PerExample)}
    boot = {c: bootstrap_distribution(v, n_boot, language_rng(seed, c)) for c, v in per_example.items()}

    def group_score(group: str, members: Sequence[str]) -> GroupScore:
        value = float(np.mean([point[c] for c in members]))
        low = high = None
        if all(c in boot for c in members):
            low, high = percentile_interval(np.mean([boot[c] for c in members], axis=0), confidence)
        n = sum(len(per_example[c]) for c in members) if all(c in per_example for c in members) else None
        return GroupScore(group, value, low, high, tuple(members), n)

    groups = {c: group_score(c, [c]) for c in codes}
    summary = None
    if aggregated:
        groups.update({g: group_score(g, members) for g, members in _groups(panel, aggregated).items()})
        bottom = bottom_decile_languages(panel, {c: point[c] for c in aggregated}, bottom_decile)
        if bottom:
            groups["bottom_decile"] = group_score("bottom_decile", bottom)
            worst = min(aggregated, key=lambda c: (point[c], aggregated.index(c)))
            macro = groups["macro"].score
            summary = BottomDecile(bottom_decile, tuple(bottom), groups["bottom_decile"].score, macro,
                                   macro - groups["bottom_decile"].score, worst, point[worst])

    derived: dict[str, dict[str, float]] = {}
    if supervised is not None:
        sup = _scores(supervised, panel, f"supervised reference for {what}")
        zero = None if zero_shot is None else _scores(zero_shot, panel, f"zero-shot reference for {what}")
        derived[f"{metric}_of_supervised"] = _derived(groups, point, sup)
        if zero is not None:
            derived[f"{metric}_gap_recovered"] = _derived(groups, point, sup, zero)
    elif zero_shot is not None:
        raise XltError(f"zero-shot reference given for {what} without a supervised reference — the gap recovered "
                       "needs both; pass supervised=... too")
    return EvaluationResult(stage, task, metric, panel.name, groups, summary, derived, confidence, n_boot, seed,
                            per_example, panel.labels(codes))


def _derived(groups: Mapping[str, GroupScore], values: Mapping[str, float], reference: Mapping[str, float],
             baseline: Mapping[str, float] | None = None) -> dict[str, float]:
    """Group -> :func:`group_ratio` over each reported group's members (groups where it is undefined left out)."""
    out = {g: group_ratio(values, reference, row.languages, baseline) for g, row in groups.items()}
    return {g: v for g, v in out.items() if v is not None}


@dataclass(frozen=True)
class SeedSummary:
    """Mean ± sample standard deviation of a group's score over runs with different seeds.

    Attributes:
        mean: mean over seeds.
        std: sample standard deviation (ddof=1; 0 for a single seed).
        n_seeds: number of runs.
    """

    mean: float
    std: float
    n_seeds: int


def across_seeds(results: Sequence[EvaluationResult]) -> dict[str, SeedSummary]:
    """Group -> mean ± std over results of the same evaluation run with several seeds (groups present in all)."""
    if not results:
        raise ValueError("across_seeds needs at least one result")
    keys = {(r.stage, r.task, r.metric) for r in results}
    if len(keys) != 1:
        raise ValueError(f"across_seeds: results of different evaluations {sorted(keys)}")
    groups = [g for g in results[0].groups if all(g in r.groups for r in results)]
    out = {}
    for g in groups:
        values = np.array([r.groups[g].score for r in results])
        out[g] = SeedSummary(float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                             len(values))
    return out
