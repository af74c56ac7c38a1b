"""Views of what the units' runs logged: task scores per label (``scores``), a metric paired over seeds
(``seed_difference``), metrics over a matrix key (``curve``), a sweep's Pareto front (``sweep``), a transfer matrix
against typological distance (``transfer``) and probing peak layers (``peaks``)."""

from __future__ import annotations

import itertools
import math
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xlt.evaluation.predictions import METRICS  # each task's primary metric
from xlt.experiments.recipe import Recipe, Unit
from xlt.experiments.stage_runs import StageRuns
from xlt.experiments.verdicts import Evidence, from_seed_differences
from xlt.experiments.view_parts import (
    Finding,
    ViewOutput,
    by_seed,
    matching,
    metric_value,
    side_name,
    table,
)


def scores_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any], name: str = "") -> ViewOutput:
    """Rows: stage labels; columns: task × group; cells: mean ± std over the stage's units [mean CI] (%), read and
    aggregated as ``xlt report`` does (:func:`~xlt.evaluation.report_runs.task_runs_of`, ``aggregate``)."""
    from xlt.evaluation.report_runs import aggregate, task_runs_of

    tasks = list(view.get("tasks") or [])
    groups = list(view.get("groups") or ["macro"])
    metrics = {**METRICS, **dict(view.get("metrics") or {})}
    header = ["model"] + [f"{task} {metrics[task]} {group}" for task in tasks for group in groups]
    rows = []
    by_label: dict[str, list[Unit]] = defaultdict(list)  # a row per label: its units across the stages (tasks)
    for stage in view["stages"]:
        for unit in recipe.units_of(stage):
            by_label[unit.label].append(unit)
    for label, units in by_label.items():
        logged = [run for run in (runs.run(u) for u in units) if run is not None]
        scores: dict[tuple[str, str], list[tuple[Any, str]]] = defaultdict(list)  # (task, group) -> (score, run)
        for run in logged:
            for task_run in task_runs_of(run, "test", ()):
                for group, score in task_run.scores.get(metrics.get(task_run.task, ""), {}).items():
                    scores[(task_run.task, group)].append((score, run.info.run_id))
        row = [f"{label} ({len(logged)}/{len(units)} runs)"]
        for task in tasks:
            for group in groups:
                found = scores.get((task, group))
                row.append(aggregate(*zip(*found, strict=True)).format() if found else "–")
        rows.append(row)
    return ViewOutput(table(header, rows))


def seed_difference_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any], name: str = "") -> ViewOutput:
    """A claimed difference of a logged metric between two units, paired over seeds."""
    claim = view.get("claim") or view.get("title") or view["metric"]
    a, b = view["a"], view["b"]
    units_a = by_seed(matching(recipe, a["stage"], a.get("values")))
    units_b = by_seed(matching(recipe, b["stage"], b.get("values")))
    rows, diffs = [], []
    for seed in (s for s in units_a if s in units_b):
        ma, mb = runs.metrics(units_a[seed]), runs.metrics(units_b[seed])
        if ma is None or mb is None:
            continue
        va = metric_value(ma, view["metric"], view.get("bucket"), view.get("panel"))
        vb = metric_value(mb, view["metric"], view.get("bucket"), view.get("panel"))
        if va is None or vb is None:
            continue
        diffs.append(va - vb)
        rows.append([str(seed), f"{va:.3f}", f"{vb:.3f}", f"{va - vb:+.3f}"])
    where = f" over bucket {view['bucket']}" if view.get("bucket") else ""
    text = (f"**{claim}** — {view['metric']}{where}: a = {side_name(a)}, b = {side_name(b)}\n\n")
    if not diffs:
        return ViewOutput(text + "Not run: no paired units with the metric logged.\n", [Finding(claim, None)])
    evidence = from_seed_differences(diffs, view["expect"], float(view.get("margin", 0.0)))
    text += table(["seed", "a", "b", "a − b"], rows)
    return ViewOutput(text, [Finding(claim, evidence, evidence.detail)])


def curve_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any], name: str) -> ViewOutput:
    """Logged metrics over one matrix key: mean ± std over the other keys (seeds), a table and a PNG."""
    over = view["over"]
    series: dict[str, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for unit in recipe.units_of(view["stage"]):
        metrics = runs.metrics(unit)
        if metrics is None or over not in dict(unit.values):
            continue
        for spec in view["metrics"]:
            value = metric_value(metrics, spec["metric"], spec.get("bucket"), view.get("panel"))
            if value is not None:
                series[spec["name"]][dict(unit.values)[over]].append(value)
    points = sorted({x for s in series.values() for x in s}, key=lambda x: (isinstance(x, str), x))
    title = view.get("title") or f"{view['stage']} over {over}"
    if not points:
        return ViewOutput(f"**{title}**: not run.\n")
    header = [over] + [spec["name"] for spec in view["metrics"]]
    rows = []
    for x in points:
        row = [str(x)]
        for spec in view["metrics"]:
            values = series[spec["name"]].get(x, [])
            row.append("–" if not values else f"{statistics.mean(values):.3f}"
                       + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "") + f" (n = {len(values)})")
        rows.append(row)
    png = _curve_png(title, over, points, series)
    text = f"**{title}**\n\n" + table(header, rows)
    return ViewOutput(text + f"\n![{title}]({name}.png)\n", files={f"{name}.png": png})


def _curve_png(title: str, over: str, points: list[Any], series: Mapping[str, Mapping[Any, list[float]]]) -> bytes:
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.5))
    ax = fig.add_subplot()
    numeric = all(isinstance(x, int | float) for x in points)
    for label, values in series.items():
        xs = [x for x in points if values.get(x)]
        means = [statistics.mean(values[x]) for x in xs]
        errors = [statistics.stdev(values[x]) if len(values[x]) > 1 else 0.0 for x in xs]
        ax.errorbar(xs if numeric else [str(x) for x in xs], means, yerr=errors, marker="o", capsize=3, label=label)
    if numeric and min(points) > 0:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(over)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def sweep_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any], name: str) -> ViewOutput:
    """The study's Pareto-optimal trials (objectives minimised, as xlt's loss objectives are) and its front plot."""
    import csv
    import io

    title = view.get("title") or f"{view['stage']}: the Pareto front"
    text, files = "", {}
    for unit in recipe.units_of(view["stage"]):
        run = runs.run(unit)
        if run is None:
            text += f"**{title}** ({unit.name}): not run.\n\n"
            continue
        client, run_id = runs.client, run.info.run_id
        with tempfile.TemporaryDirectory(prefix="xlt-sweep-") as tmp:
            trials_csv = Path(client.download_artifacts(run_id, "trials.csv", tmp)).read_text(encoding="utf-8")
            logged = {Path(a.path).name for a in client.list_artifacts(run_id, "plots")}
            if "pareto_front.png" in logged:
                png = Path(client.download_artifacts(run_id, "plots/pareto_front.png", tmp)).read_bytes()
                files[f"{name}_{unit.hash}.png"] = png
        trials = [r for r in csv.DictReader(io.StringIO(trials_csv)) if r.get("state") == "COMPLETE"]
        values = [k for k in (trials[0] if trials else {}) if k.startswith("values_")]
        params = [k for k in (trials[0] if trials else {}) if k.startswith("params_")]
        points = [[float(r[k]) for k in values] for r in trials]
        front = [r for r, v in zip(trials, points, strict=True)
                 if not any(all(o <= x for o, x in zip(other, v, strict=True)) and other != v for other in points)]
        header = ["trial", *(k.removeprefix("values_") for k in values), *(k.removeprefix("params_") for k in params)]
        rows = [[r["number"], *(f"{float(r[k]):.3f}" for k in values), *(f"{float(r[k]):.3g}" for k in params)]
                for r in sorted(front, key=lambda r: float(r[values[0]]))]
        text += (f"**{title}** ({unit.name}: {len(trials)} complete trials, {len(front)} on the front)\n\n"
                 + table(header, rows))
        if f"{name}_{unit.hash}.png" in files:
            text += f"\n![{title}]({name}_{unit.hash}.png)\n"
        text += "\n"
    return ViewOutput(text, files=files)


def transfer_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any], name: str = "") -> ViewOutput:
    """The transfer matrix over the stage's source languages and its correlation with typological distance."""
    import numpy as np

    from xlt.evaluation.transfer import TransferMatrix, spearman, transfer_distance_correlation
    from xlt.languages import load_panel

    task, over = view["task"], view.get("over", "source")
    metric = view.get("metric") or METRICS[task]
    claim = view.get("claim") or "transfer declines with typological distance"
    panel = load_panel(view.get("panel") or "synthetic")
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for unit in matching(recipe, view["stage"], view.get("values")):
        metrics = runs.metrics(unit)
        if metrics is None:
            continue
        source = str(dict(unit.values)[over])
        for code in panel.codes:
            value = metrics.get(f"test/{task}/{metric}/{code}")
            if value is not None:
                scores[source][code].append(value)
    title = view.get("title") or f"{task} transfer matrix"
    if len(scores) < 2:
        return ViewOutput(f"**{title}**: not run (needs runs from at least two source languages).\n",
                          [Finding(claim, None)])
    means = {s: {t: statistics.mean(v) for t, v in row.items()} for s, row in scores.items()}
    matrix = TransferMatrix.from_scores(means, task=task, metric=metric, targets=panel.codes)
    correlation = transfer_distance_correlation(matrix, panel, method=view.get("method", "panel"))
    distance = np.array([p[2] for p in correlation.pairs])
    score = np.array([p[3] for p in correlation.pairs])
    rng = np.random.default_rng(0)
    draws = [spearman(distance[i], score[i]) for i in (rng.integers(0, len(score), len(score)) for _ in range(1000))]
    draws = np.array([d for d in draws if math.isfinite(d)])
    low, high = (float(np.percentile(-draws, 2.5)), float(np.percentile(-draws, 97.5))) if len(draws) else \
        (math.nan, math.nan)
    effect = -correlation.spearman
    if low > 0:
        verdict, detail = "reproduced", "the 95 % bootstrap interval of −ρ over source–target pairs is above 0"
    elif high < 0:
        verdict, detail = "not reproduced", "the 95 % bootstrap interval of −ρ over pairs is below 0"
    else:
        verdict, detail = "inconclusive", "the 95 % bootstrap interval of ρ over pairs includes 0"
    text = (f"**{title}** ({metric}, %, rows: source, columns: target)\n\n{matrix.to_markdown()}\n"
            f"{correlation.describe()} Pairs resampled with replacement for the interval (pairs share languages, "
            "so the interval is optimistic).\n")
    return ViewOutput(text, [Finding(claim, Evidence(verdict, effect, low, high, len(correlation.pairs), detail),
                                     detail)])


def peaks_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any], name: str = "") -> ViewOutput:
    """The probing stages' peak layers of the claimed properties (for ``groups``, default the groups the order
    names), and the claimed order of properties (peak layers non-decreasing, one step up with disjoint layer CIs;
    any step down with disjoint CIs refutes it). The full peak table is the probe run's ``peaks.md``."""
    import csv

    order = list(view.get("order") or [])
    wanted = {(e["property"], e["metric"]) for e in order}
    groups = set(view.get("groups") or [e["group"] for e in order if "group" in e])
    text, findings = "", []
    for stage in view["stages"]:
        for unit in recipe.units_of(stage):
            peaks_file = unit.directory / "peaks.csv"
            if runs.run(unit) is None or not peaks_file.is_file():
                text += f"**{unit.name}**: not run.\n\n"
                findings += [Finding(view.get("claim") or "peak order", None)] if order else []
                continue
            rows = list(csv.DictReader(peaks_file.open(encoding="utf-8")))
            shown = [r for r in rows if (not wanted or (r["property"], r["metric"]) in wanted)
                     and (not groups or r["group"] in groups)]
            text += (f"**{unit.name}**: peak layer (0 = embeddings) with its 95% CI over resampled sentences "
                     f"(all properties and languages: {unit.directory / 'peaks.md'})\n\n")
            text += table(["property", "metric", "group", "peak layer", "layer CI", "score", "score CI"], [
                [r["property"], r["metric"], r["group"], r["peak_layer"],
                 f"[{_layer(r['layer_ci_low'])}, {_layer(r['layer_ci_high'])}]", f"{float(r['score']):.3f}",
                 f"[{_score(r['score_ci_low'])}, {_score(r['score_ci_high'])}]"] for r in shown]) + "\n"
            if order:
                findings.append(_order_finding(view, rows, unit.name))
    return ViewOutput(text, findings)


def _layer(text: str) -> str:
    return "–" if text in ("", "None") else str(int(float(text)))


def _score(text: str) -> str:
    return "–" if text in ("", "None") else f"{float(text):.3f}"


def _order_finding(view: Mapping[str, Any], rows: list[dict[str, str]], unit: str) -> Finding:
    claim = view.get("claim") or "properties peak in the claimed order"
    chosen = []
    for entry in view["order"]:
        group = entry.get("group", view.get("group"))
        match = [r for r in rows if r["property"] == entry["property"] and r["metric"] == entry["metric"]
                 and (group is None or r["group"] == group)]
        if not match:
            return Finding(claim, None, f"{unit}: no peak for {entry['property']}/{entry['metric']}")
        chosen.append(match[0])
    layers = [(int(r["peak_layer"]), _num(r["layer_ci_low"], r["peak_layer"]), _num(r["layer_ci_high"],
                                                                                    r["peak_layer"])) for r in chosen]
    ups = sum(1 for x, y in itertools.pairwise(layers) if y[1] > x[2])  # disjoint CIs, later above
    downs = sum(1 for x, y in itertools.pairwise(layers) if y[2] < x[1])
    order = " ≤ ".join(f"{e['property']} {lay[0]}" for e, lay in zip(view["order"], layers, strict=True))
    if downs:
        verdict, detail = "not reproduced", f"{downs} step(s) down with disjoint layer CIs: {order}"
    elif ups and all(y[0] >= x[0] for x, y in itertools.pairwise(layers)):
        verdict, detail = "reproduced", f"peaks non-decreasing, {ups} step(s) up with disjoint CIs: {order}"
    else:
        verdict, detail = "inconclusive", f"no step separated by disjoint layer CIs: {order}"
    effect = float(layers[-1][0] - layers[0][0])
    return Finding(claim, Evidence(verdict, effect, math.nan, math.nan, 1, detail), detail)


def _num(text: str, fallback: str) -> float:
    return float(text) if text not in ("", "None") else float(fallback)
