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

import fnmatch
import itertools
import math
import os
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlt.errors import XltError
from xlt.evaluation import markdown
from xlt.experiments.recipe import Recipe, Unit
from xlt.experiments.verdicts import Evidence, from_pairs, from_seed_differences

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
DEFAULT_METRICS = {"xnli": "acc", "pawsx": "acc", "udpos": "acc", "ner": "f1", "qa": "f1", "retrieval": "p1"}


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


class StageRuns:
    """The MLflow runs of an experiment's units: per unit hash, its latest FINISHED run that is not a sweep trial."""

    def __init__(self, recipe: Recipe, client: Any, downloads: Path) -> None:
        self.recipe, self.client, self.downloads = recipe, client, downloads
        experiment = client.get_experiment_by_name(recipe.mlflow_experiment)
        self.by_hash: dict[str, Any] = {}
        if experiment is None:
            return
        query = f"tags.`xlt.experiment` = '{recipe.name}' and attributes.status = 'FINISHED'"
        runs, token = [], None
        while True:
            page = client.search_runs([experiment.experiment_id], query, max_results=1000, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                break
        for run in sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id)):
            if "xlt.trial" in run.data.tags:
                continue
            self.by_hash[run.data.tags.get("xlt.experiment.hash", "")] = run

    def run(self, unit: Unit) -> Any | None:
        return self.by_hash.get(unit.hash)

    def predictions(self, unit: Unit, task: str, codes: Sequence[str]) -> list[Path] | None:
        """The unit's run's prediction files of ``codes`` (MLflow artifacts ``predictions/test-<code>.<ext>``),
        downloaded once; ``None`` unless the run has all of them."""
        run = self.run(unit)
        if run is None:
            return None
        names = [f"test-{code}.{'json' if task == 'qa' else 'tsv'}" for code in codes]
        target = self.downloads / run.info.run_id
        if not target.is_dir():
            target.mkdir(parents=True)
            if self.client.list_artifacts(run.info.run_id, "predictions"):
                os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # one bar per file is noise here
                self.client.download_artifacts(run.info.run_id, "predictions", str(target))
        files = [target / "predictions" / name for name in names]
        return files if all(f.is_file() for f in files) else None

    def metrics(self, unit: Unit) -> dict[str, float] | None:
        run = self.run(unit)
        return None if run is None else dict(run.data.metrics)


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


def _matching(recipe: Recipe, stage: str, values: Mapping[str, Any] | None) -> list[Unit]:
    """The units of ``stage`` whose matrix values include ``values``, in matrix order."""
    wanted = dict(values or {})
    return [u for u in recipe.units_of(stage) if all(dict(u.values).get(k) == v for k, v in wanted.items())]


def _by_seed(units: Sequence[Unit]) -> dict[Any, Unit]:
    return {u.seed: u for u in units}


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return "\n".join(markdown.table(header, rows)) + "\n"


def _pct(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


def _evidence_cell(evidence: Evidence, scale: float, unit: str) -> str:
    if not math.isfinite(evidence.low):
        return f"{scale * evidence.effect:+.2f}{unit} (n = {evidence.n})"
    return (f"{scale * evidence.effect:+.2f}{unit} [{scale * evidence.low:+.2f}, {scale * evidence.high:+.2f}] "
            f"(n = {evidence.n})")


def scores_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any]) -> ViewOutput:
    """Rows: stage labels; columns: task × group; cells: mean ± std over the stage's units [mean CI] (%)."""
    tasks = list(view.get("tasks") or [])
    groups = list(view.get("groups") or ["macro"])
    metrics = {**DEFAULT_METRICS, **dict(view.get("metrics") or {})}
    header = ["model"] + [f"{task} {metrics[task]} {group}" for task in tasks for group in groups]
    rows = []
    by_label: dict[str, list[Unit]] = defaultdict(list)  # a row per label: its units across the stages (tasks)
    for stage in view["stages"]:
        for unit in recipe.units_of(stage):
            by_label[unit.label].append(unit)
    for label, units in by_label.items():
        logged = [m for m in (runs.metrics(u) for u in units) if m is not None]
        row = [f"{label} ({len(logged)}/{len(units)} runs)"]
        for task in tasks:
            for group in groups:
                key = f"test/{task}/{metrics[task]}/{group}"
                values = [m[key] for m in logged if key in m]
                if not values:
                    row.append("–")
                    continue
                text = _pct(statistics.mean(values))
                if len(values) > 1:
                    text += f" ± {_pct(statistics.stdev(values))}"
                lows = [m.get(f"test/{task}/{metrics[task]}_ci_low/{group}") for m in logged if key in m]
                highs = [m.get(f"test/{task}/{metrics[task]}_ci_high/{group}") for m in logged if key in m]
                if all(v is not None for v in lows + highs):
                    text += f" [{_pct(statistics.mean(lows))}, {_pct(statistics.mean(highs))}]"
                row.append(text)
        rows.append(row)
    return ViewOutput(_table(header, rows))


def _side_languages(view: Mapping[str, Any], side: Mapping[str, Any], panel_name: str | None) -> list[str]:
    if side.get("languages"):
        return [str(code) for code in side["languages"]]
    if side.get("bucket"):
        from xlt.languages import load_panel

        panel = load_panel(panel_name or "synthetic")
        return [lang.code for lang in panel if lang.bucket == side["bucket"]]
    raise XltError(f"difference view '{view.get('title', '')}': give languages or bucket for side {side['stage']}")


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
    codes = [_side_languages(view, view[name], None) for name in names]
    if len({len(c) for c in codes}) != 1:
        raise XltError(f"{view['kind']} view '{view.get('claim', '')}': the sides score "
                       f"{' / '.join(str(len(c)) for c in codes)} languages — pair them one to one")
    units = [_by_seed(_matching(recipe, view[name]["stage"], view[name].get("values"))) for name in names]
    return codes, units


def _seed_name(seed: Any) -> str:
    return "–" if seed is None else str(seed)


def difference_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any]) -> ViewOutput:
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
        rows.append([_seed_name(seed), _pct(score_a), _pct(score_b), f"{100 * comparison.difference:+.1f}",
                     f"[{100 * comparison.low:+.1f}, {100 * comparison.high:+.1f}]", f"{comparison.p_value:.3f}"])
    a, b = view["a"], view["b"]
    text = (f"**{claim}** — {task} {DEFAULT_METRICS[task]}, a = {a['stage']} {'/'.join(codes_a)}, "
            f"b = {b['stage']} {'/'.join(codes_b)} (macro over languages)\n\n")
    if not pairs:
        return ViewOutput(text + "Not run: no unit pair with prediction files.\n", [Finding(claim, None)])
    evidence = from_pairs(pairs, view["expect"], float(view.get("margin", 0.0)) / 100)
    text += _table(["seed", "a", "b", "a − b", "95% CI", "p"], rows)
    if len(pairs) > 1:
        diffs = [100 * p.difference for p in pairs]
        text += f"\nOver {len(pairs)} seeds: a − b = {statistics.mean(diffs):+.1f} ± {statistics.stdev(diffs):.1f}.\n"
    return ViewOutput(text, [Finding(claim, evidence, evidence.detail, scale=100, unit=" pts")])


def recovered_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any]) -> ViewOutput:
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
        rows.append([_seed_name(seed), *(_pct(v) for v in observed), f"{100 * share:.1f} %",
                     f"[{100 * low:.1f}, {100 * high:.1f}]"])
    sides = ", ".join(f"{n} = {view[n]['stage']} {'/'.join(c)}" for n, c in zip(names, codes, strict=True))
    text = f"**{claim}** — {task} {DEFAULT_METRICS[task]}; {sides}\n\n"
    if not pairs:
        return ViewOutput(text + "Not run: no units with prediction files.\n", [Finding(claim, None)])
    evidence = from_pairs(pairs, "greater", at_least)
    text += _table(["seed", "treated", "baseline", "reference", "recovered", "95% CI"], rows)
    return ViewOutput(text, [Finding(claim, evidence, f"{evidence.detail} (threshold {100 * at_least:.0f} %)",
                                     scale=100, unit=" %")])


def _metric_value(metrics: Mapping[str, float], metric: str, bucket: str | None, panel: str | None) -> float | None:
    from xlt.languages import load_panel
    from xlt.tuning.objectives import Objective

    if "*" in metric:  # a name with a part the stage chose (an audit's tokenizer directory): one match
        matches = [name for name in metrics if fnmatch.fnmatchcase(name, metric)]
        if len(matches) != 1:
            return None
        metric = matches[0]
    buckets = {lang.code: lang.bucket for lang in load_panel(panel or "synthetic")}
    try:
        return Objective("view", metric, bucket=bucket).value(metrics, buckets)
    except XltError:
        return None


def seed_difference_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any]) -> ViewOutput:
    """A claimed difference of a logged metric between two units, paired over seeds."""
    claim = view.get("claim") or view.get("title") or view["metric"]
    a, b = view["a"], view["b"]
    units_a = _by_seed(_matching(recipe, a["stage"], a.get("values")))
    units_b = _by_seed(_matching(recipe, b["stage"], b.get("values")))
    rows, diffs = [], []
    for seed in (s for s in units_a if s in units_b):
        ma, mb = runs.metrics(units_a[seed]), runs.metrics(units_b[seed])
        if ma is None or mb is None:
            continue
        va = _metric_value(ma, view["metric"], view.get("bucket"), view.get("panel"))
        vb = _metric_value(mb, view["metric"], view.get("bucket"), view.get("panel"))
        if va is None or vb is None:
            continue
        diffs.append(va - vb)
        rows.append([str(seed), f"{va:.3f}", f"{vb:.3f}", f"{va - vb:+.3f}"])
    where = f" over bucket {view['bucket']}" if view.get("bucket") else ""
    text = (f"**{claim}** — {view['metric']}{where}: a = {_side_name(a)}, b = {_side_name(b)}\n\n")
    if not diffs:
        return ViewOutput(text + "Not run: no paired units with the metric logged.\n", [Finding(claim, None)])
    evidence = from_seed_differences(diffs, view["expect"], float(view.get("margin", 0.0)))
    text += _table(["seed", "a", "b", "a − b"], rows)
    return ViewOutput(text, [Finding(claim, evidence, evidence.detail)])


def _side_name(side: Mapping[str, Any]) -> str:
    values = ", ".join(f"{k}={v}" for k, v in dict(side.get("values") or {}).items())
    return side["stage"] + (f" [{values}]" if values else "")


def curve_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any], name: str) -> ViewOutput:
    """Logged metrics over one matrix key: mean ± std over the other keys (seeds), a table and a PNG."""
    over = view["over"]
    series: dict[str, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for unit in recipe.units_of(view["stage"]):
        metrics = runs.metrics(unit)
        if metrics is None or over not in dict(unit.values):
            continue
        for spec in view["metrics"]:
            value = _metric_value(metrics, spec["metric"], spec.get("bucket"), view.get("panel"))
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
    text = f"**{title}**\n\n" + _table(header, rows)
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


def peaks_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any]) -> ViewOutput:
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
            table = unit.directory / "peaks.csv"
            if runs.run(unit) is None or not table.is_file():
                text += f"**{unit.name}**: not run.\n\n"
                findings += [Finding(view.get("claim") or "peak order", None)] if order else []
                continue
            rows = list(csv.DictReader(table.open(encoding="utf-8")))
            shown = [r for r in rows if (not wanted or (r["property"], r["metric"]) in wanted)
                     and (not groups or r["group"] in groups)]
            text += (f"**{unit.name}**: peak layer (0 = embeddings) with its 95% CI over resampled sentences "
                     f"(all properties and languages: {unit.directory / 'peaks.md'})\n\n")
            text += _table(["property", "metric", "group", "peak layer", "layer CI", "score", "score CI"], [
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


def transfer_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any]) -> ViewOutput:
    """The transfer matrix over the stage's source languages and its correlation with typological distance."""
    import numpy as np

    from xlt.evaluation.transfer import TransferMatrix, spearman, transfer_distance_correlation
    from xlt.languages import load_panel

    task, over = view["task"], view.get("over", "source")
    metric = view.get("metric") or DEFAULT_METRICS[task]
    claim = view.get("claim") or "transfer declines with typological distance"
    panel = load_panel(view.get("panel") or "synthetic")
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for unit in _matching(recipe, view["stage"], view.get("values")):
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
            table = Path(client.download_artifacts(run_id, "trials.csv", tmp)).read_text(encoding="utf-8")
            logged = {Path(a.path).name for a in client.list_artifacts(run_id, "plots")}
            if "pareto_front.png" in logged:
                png = Path(client.download_artifacts(run_id, "plots/pareto_front.png", tmp)).read_bytes()
                files[f"{name}_{unit.hash}.png"] = png
        trials = [r for r in csv.DictReader(io.StringIO(table)) if r.get("state") == "COMPLETE"]
        values = [k for k in (trials[0] if trials else {}) if k.startswith("values_")]
        params = [k for k in (trials[0] if trials else {}) if k.startswith("params_")]
        points = [[float(r[k]) for k in values] for r in trials]
        front = [r for r, v in zip(trials, points, strict=True)
                 if not any(all(o <= x for o, x in zip(other, v, strict=True)) and other != v for other in points)]
        header = ["trial", *(k.removeprefix("values_") for k in values), *(k.removeprefix("params_") for k in params)]
        rows = [[r["number"], *(f"{float(r[k]):.3f}" for k in values), *(f"{float(r[k]):.3g}" for k in params)]
                for r in sorted(front, key=lambda r: float(r[values[0]]))]
        text += (f"**{title}** ({unit.name}: {len(trials)} complete trials, {len(front)} on the front)\n\n"
                 + _table(header, rows))
        if f"{name}_{unit.hash}.png" in files:
            text += f"\n![{title}]({name}_{unit.hash}.png)\n"
        text += "\n"
    return ViewOutput(text, files=files)


def render_view(recipe: Recipe, runs: StageRuns, view: Mapping[str, Any], name: str) -> ViewOutput:
    kind = view["kind"]
    if kind == "scores":
        return scores_view(recipe, runs, view)
    if kind == "difference":
        return difference_view(recipe, runs, view)
    if kind == "seed_difference":
        return seed_difference_view(recipe, runs, view)
    if kind == "curve":
        return curve_view(recipe, runs, view, name)
    if kind == "transfer":
        return transfer_view(recipe, runs, view)
    if kind == "recovered":
        return recovered_view(recipe, runs, view)
    if kind == "sweep":
        return sweep_view(recipe, runs, view, name)
    return peaks_view(recipe, runs, view)
