"""``xlt experiment report``: the results page of one or more experiments, from their stages' MLflow runs and
output files — a summary of the verdicts, then per experiment its claim, views, verdicts, wall time and how to
run it on real corpora and at the paper's scale. Nothing on the page depends on when it is built: the same store
gives the same page."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from xlt.atomic import atomic_file
from xlt.experiments.recipe import Recipe
from xlt.experiments.runner import finished, parent_run, tracking_uri
from xlt.experiments.stage_runs import StageRuns
from xlt.experiments.view_parts import Finding, ViewOutput
from xlt.experiments.views import render_view

PREAMBLE = """\
Every number below was measured by xlt on the machine named with each experiment, from the MLflow runs of the
experiment's stages (`xlt experiment report` rebuilds this page from the store). Verdicts are decided by intervals:
a paired bootstrap over test examples for each seed, or a Student-t interval over paired seeds for numbers without
per-example statistics (an MLM loss); one seed never decides a claim that needs a spread. *Inconclusive* means the
interval does not decide at this scale; *not run* means the stages have not been run on this store.

What the synthetic lab can show: whether an intervention moves transfer in the claimed direction when everything
else is held fixed (script, word order, lexical overlap and resource size are controlled by construction). What it
cannot show: the size of an effect on natural languages and at the paper's scale — tiny encoders on a generated
panel are a laboratory, not a replication. Each experiment names the overlays that run it on real corpora and at
the paper's scale.
"""


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def experiment_section(recipe: Recipe, runs: StageRuns, assets: str) -> tuple[str, list[Finding], dict[str, bytes]]:
    """One experiment's section, its findings and its plot files (names relative to the page)."""
    info = recipe.info
    records = [finished(recipe, unit) for unit in recipe.units]
    done = [r for r in records if r is not None]
    wall = sum(float(r["wall_s"]) for r in done)
    lines = [f"## {info.get('title') or recipe.name}", "",
             f"Recipe: `{recipe.path}` — run with `xlt experiment run {recipe.path}`.", ""]
    if info.get("claim"):
        lines += [f"**Paper's claim** ({info.get('paper', 'the paper')}): {info['claim']}", ""]
    machines = sorted({str(r.get("machine", "unrecorded machine")) for r in done})
    lines += [f"Stages: {len(done)} of {len(recipe.units)} units finished"
              + (f", {_minutes(wall)} of wall time ({'; '.join(machines)}; the sum over units run one after another)"
                 if done else "") + ".", ""]
    findings: list[Finding] = []
    files: dict[str, bytes] = {}
    for index, view in enumerate(recipe.report):
        name = f"{assets}/{recipe.name}_{index}"
        output: ViewOutput = render_view(recipe, runs, view, name)
        lines += [output.markdown.rstrip("\n"), ""]
        findings += output.findings
        files.update(output.files)
    if findings:
        lines += ["| claim | verdict | effect (claimed direction) | how decided |", "|---|---|---:|---|"]
        for finding in findings:
            evidence = finding.evidence
            effect = "–" if evidence is None else _effect(finding.scale * evidence.effect, finding.scale * evidence.low,
                                                          finding.scale * evidence.high, finding.unit)
            lines.append(f"| {finding.claim} | **{finding.verdict}** | {effect} | {finding.note or '–'} |")
        lines.append("")
    for key, label in (("notes", "Notes"), ("real_data", "On real corpora"), ("paper_scale", "At the paper's scale")):
        if info.get(key):
            lines += [f"**{label}.** {info[key].strip()}", ""]
    return "\n".join(lines), findings, files


def _effect(effect: float, low: float, high: float, unit: str) -> str:
    import math

    if math.isfinite(low) and math.isfinite(high):
        return f"{effect:+.3g}{unit} [{low:+.3g}, {high:+.3g}]"
    return f"{effect:+.3g}{unit}"


def _log_to_parent(recipe: Recipe, section: str, files: dict[str, bytes], verdicts: str) -> None:
    """The experiment's section and plots as artifacts of its MLflow parent run (``results/``), the verdicts as a
    tag, so the MLflow UI shows what the experiment found next to its stages."""
    from mlflow.tracking import MlflowClient

    parent = parent_run(recipe, create=False)
    if parent is None:
        return
    client = MlflowClient(tracking_uri=tracking_uri(recipe))
    client.log_text(parent, section, "results/section.md")
    with tempfile.TemporaryDirectory(prefix="xlt-results-") as tmp:
        for name, data in files.items():
            path = Path(tmp) / Path(name).name
            path.write_bytes(data)
            client.log_artifact(parent, str(path), "results")
    client.set_tag(parent, "xlt.verdicts", verdicts[:5000])


def build_page(recipes: Sequence[Recipe], assets: str, title: str = "Experiments: what xlt measured") \
        -> tuple[str, dict[str, bytes]]:
    """The whole page and its plot files."""
    from mlflow.tracking import MlflowClient

    sections, summary, files = [], [], {}
    for recipe in recipes:
        with tempfile.TemporaryDirectory(prefix="xlt-report-") as downloads:  # prediction artifacts of the runs
            runs = StageRuns(recipe, MlflowClient(tracking_uri=tracking_uri(recipe)), Path(downloads))
            text, findings, made = experiment_section(recipe, runs, assets)
        sections.append(text)
        files.update(made)
        verdicts = ", ".join(f.verdict for f in findings) or "no claim judged"
        _log_to_parent(recipe, text, made, verdicts)
        summary.append(f"| {recipe.info.get('title') or recipe.name} | {verdicts} |")
    command = "xlt experiment report '[" + ", ".join(str(r.path) for r in recipes) + "]'"
    page = [f"# {title}", "", f"Generated by `{command}`; edit the recipes, not this page.", "",
            PREAMBLE, "| experiment | verdicts (in the order of its claims) |", "|---|---|", *summary, "",
            *sections]
    return "\n".join(page).rstrip("\n") + "\n", files


def write_page(recipes: Sequence[Recipe], out: str | Path) -> Path:
    """Write the page to ``out`` and its plots to ``<out stem>/`` beside it (each file atomically)."""
    out = Path(out)
    assets = out.stem
    page, files = build_page(recipes, assets)
    for name, data in sorted(files.items()):
        with atomic_file(out.parent / name, "wb") as handle:
            handle.write(data)
    with atomic_file(out) as handle:
        handle.write(page)
    return out
