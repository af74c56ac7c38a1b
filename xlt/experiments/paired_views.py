"""Views judged over test examples: the prediction files the units' runs logged, scored against the gold split and
resampled with a paired bootstrap per seed (``difference``: a claimed ``a - b``; ``recovered``: the share of a gap
an intervention wins back)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xlt.errors import XltError
from xlt.evaluation.predictions import METRICS  # each task's primary metric
from xlt.experiments.recipe import Recipe
from xlt.experiments.stage_runs import StageRuns
from xlt.experiments.verdicts import from_pairs
from xlt.experiments.view_parts import (
    Finding,
    ViewOutput,
    by_seed,
    matching,
    pct,
    side_languages,
    table,
)


class _Gold:
    """The gold test splits of one view's task data, read once (the task config's ``data``)."""

    def __init__(self, view: Mapping[str, Any]) -> None:
        self.view, self.source, self.splits = view, None, {}

    def stats(self, task: str, files: Sequence[Path], codes: Sequence[str]) -> list[Any]:
        """Per-example statistics of each prediction file against its language's gold split."""
        from xlt.evaluation.compare import gold_split
        from xlt.evaluation.predictions import score_predictions
        from xlt.sources import as_task_source

        if self.source is None:
            self.source = as_task_source(self.view.get("data", "synthetic"), self.view.get("cache_dir", "runs/cache"))
            self.source.prepare()
        for code in codes:
            if code not in self.splits:
                self.splits[code] = gold_split(task, self.source, code)
        return [score_predictions(task, f, self.splits[c]) for f, c in zip(files, codes, strict=True)]


def _sides(recipe: Recipe, view: Mapping[str, Any], names: Sequence[str]) -> tuple[list[list[str]], list[dict]]:
    """Each side's languages (equally many) and its units by seed."""
    codes = [side_languages(view, view[name], None) for name in names]
    if len({len(c) for c in codes}) != 1:
        raise XltError(f"{view['kind']} view '{view.get('claim', '')}': the sides score "
                       f"{' / '.join(str(len(c)) for c in codes)} languages — pair them one to one")
    units = [by_seed(matching(recipe, view[name]["stage"], view[name].get("values"))) for name in names]
    return codes, units


def _seed_name(seed: Any) -> str:
    return "–" if seed is None else str(seed)


def difference_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any], name: str = "") -> ViewOutput:
    """A claimed paired difference over examples, per seed, from the prediction files the units' runs logged."""
    from xlt.evaluation.bootstrap import paired_bootstrap

    task, claim = view["task"], view.get("claim") or view.get("title") or "difference"
    (codes_a, codes_b), (units_a, units_b) = _sides(recipe, view, ("a", "b"))
    gold = _Gold(view)
    pairs, rows = [], []
    for seed in (s for s in units_a if s in units_b):
        files_a = runs.predictions(units_a[seed], task, codes_a)
        files_b = runs.predictions(units_b[seed], task, codes_b)
        if files_a is None or files_b is None:
            continue
        keys = codes_a if codes_a == codes_b else [f"{x}|{y}" for x, y in zip(codes_a, codes_b, strict=True)]
        stats_a = dict(zip(keys, gold.stats(task, files_a, codes_a), strict=True))
        stats_b = dict(zip(keys, gold.stats(task, files_b, codes_b), strict=True))
        comparison = paired_bootstrap(stats_a, stats_b, n_boot=int(view.get("n_boot", 1000)), seed=0)
        pairs.append(comparison)
        score_a = statistics.mean(s.score() for s in stats_a.values())
        score_b = statistics.mean(s.score() for s in stats_b.values())
        rows.append([_seed_name(seed), pct(score_a), pct(score_b), f"{100 * comparison.difference:+.1f}",
                     f"[{100 * comparison.low:+.1f}, {100 * comparison.high:+.1f}]", f"{comparison.p_value:.3f}"])
    a, b = view["a"], view["b"]
    text = (f"**{claim}** — {task} {METRICS[task]}, a = {a['stage']} {'/'.join(codes_a)}, "
            f"b = {b['stage']} {'/'.join(codes_b)} (macro over languages)\n\n")
    if not pairs:
        return ViewOutput(text + "Not run: no unit pair with prediction files.\n", [Finding(claim, None)])
    evidence = from_pairs(pairs, view["expect"], float(view.get("margin", 0.0)) / 100)
    text += table(["seed", "a", "b", "a − b", "95% CI", "p"], rows)
    if len(pairs) > 1:
        diffs = [100 * p.difference for p in pairs]
        text += f"\nOver {len(pairs)} seeds: a − b = {statistics.mean(diffs):+.1f} ± {statistics.stdev(diffs):.1f}.\n"
    return ViewOutput(text, [Finding(claim, evidence, evidence.detail, scale=100, unit=" pts")])


def recovered_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any], name: str = "") -> ViewOutput:
    """The share of a gap an intervention recovers, ``(treated - baseline) / (reference - baseline)``, on rows the
    three sides share (one test file, or a parallel test set), resampled jointly per seed."""
    import numpy as np

    from xlt.evaluation.bootstrap import PairedComparison, bootstrap_distribution, language_rng, percentile_interval

    task = view["task"]
    claim = view.get("claim") or view.get("title") or "share of the gap recovered"
    at_least = float(view.get("at_least", 0.5))
    names = ("treated", "baseline", "reference")
    codes, units = _sides(recipe, view, names)
    gold = _Gold(view)
    pairs, rows = [], []
    for seed in (s for s in units[0] if all(s in u for u in units[1:])):
        files = [runs.predictions(u[seed], task, c) for u, c in zip(units, codes, strict=True)]
        if any(f is None for f in files):
            continue
        stats = [gold.stats(task, f, c) for f, c in zip(files, codes, strict=True)]
        draws = np.zeros((3, int(view.get("n_boot", 1000))))
        observed = np.zeros(3)
        for i in range(len(codes[0])):  # macro over positions, each resampled on its own stream
            draws += bootstrap_distribution(stats[0][i], draws.shape[1], language_rng(0, str(i)),
                                            paired_with=[stats[1][i], stats[2][i]])
            observed += [s[i].score() for s in stats]
        draws, observed = draws / len(codes[0]), observed / len(codes[0])
        share = (observed[0] - observed[1]) / (observed[2] - observed[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            shares = (draws[0] - draws[1]) / (draws[2] - draws[1])
        low, high = percentile_interval(shares[np.isfinite(shares)])
        pairs.append(PairedComparison(float(share), low, high, p_value=float("nan")))
        rows.append([_seed_name(seed), *(pct(v) for v in observed), f"{100 * share:.1f} %",
                     f"[{100 * low:.1f}, {100 * high:.1f}]"])
    sides = ", ".join(f"{n} = {view[n]['stage']} {'/'.join(c)}" for n, c in zip(names, codes, strict=True))
    text = f"**{claim}** — {task} {METRICS[task]}; {sides}\n\n"
    if not pairs:
        return ViewOutput(text + "Not run: no units with prediction files.\n", [Finding(claim, None)])
    evidence = from_pairs(pairs, "greater", at_least)
    text += table(["seed", "treated", "baseline", "reference", "recovered", "95% CI"], rows)
    return ViewOutput(text, [Finding(claim, evidence, f"{evidence.detail} (threshold {100 * at_least:.0f} %)",
                                     scale=100, unit=" %")])
