"""The tokenizer audit's outputs: CSV, Markdown tables, fertility plots and one MLflow run.

:func:`write_audit` writes, atomically, ``audit.csv`` (one row per tokenizer x language, full precision,
read back by :func:`read_audit_csv`), ``audit.md`` (side-by-side tables) and ``fertility_by_script.png`` /
``fertility_by_bucket.png`` (grouped bars, one bar per tokenizer). :func:`log_audit_to_mlflow` logs the same
numbers as one MLflow run (:func:`audit_metrics`): ``audit/<tokenizer>/<metric>/<lang>``, the group means
``audit/<tokenizer>/<metric>/{macro,script.<S>,bucket.<b>,family.<f>}`` over languages (panel script,
bucket, family), ``audit/<tokenizer>/char_coverage.<S>/<lang>`` and, pooling the characters of all
languages by Unicode script, ``audit/<tokenizer>/char_coverage/script.<S>``; the output files are its
artifacts. The numbers themselves are :mod:`xlt.tokenization.audit`.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from xlt.atomic import atomic_dir
from xlt.errors import XltError
from xlt.evaluation import markdown
from xlt.languages import BUCKETS, Panel
from xlt.mlflow_store import default_tracking_uri, get_or_create_experiment, stage_run
from xlt.tokenization.audit import METRICS, AuditRow, aggregate, pooled_script_coverage

__all__ = ["CSV_FILE", "MARKDOWN_FILE", "PLOT_FILES", "audit_metrics", "log_audit_to_mlflow", "read_audit_csv",
           "write_audit"]

_LABELS = {"fertility": "fertility", "continued_words": "continued", "gold_fertility": "gold fertility",
           "gold_continued_words": "gold continued", "unk_rate": "unk", "byte_fallback_rate": "byte fallback",
           "mean_seq_len": "mean len", "vocab_share": "vocab share", "char_coverage": "char coverage"}
CSV_FILE, MARKDOWN_FILE = "audit.csv", "audit.md"
PLOT_FILES = {"script": "fertility_by_script.png", "bucket": "fertility_by_bucket.png"}
_METRIC_CHARS = re.compile(r"[^A-Za-z0-9_/. -]")

_INT_FIELDS = {f.name for f in fields(AuditRow) if f.type in ("int", int)}
_STR_FIELDS = ("tokenizer", "language", "script", "bucket", "family")
_COLUMNS = [f.name for f in fields(AuditRow) if f.name not in ("coverage_by_script", "chars_by_script")]


def _scripts(rows: Sequence[AuditRow]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row.coverage_by_script))
    return sorted(seen)


def _write_csv(rows: Sequence[AuditRow], path: Path) -> None:
    scripts = _scripts(rows)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_COLUMNS + [f"char_coverage.{s}" for s in scripts] + [f"chars.{s}" for s in scripts])
        for row in rows:
            values = [getattr(row, c) for c in _COLUMNS]
            values += [row.coverage_by_script.get(s) for s in scripts]
            values += [row.chars_by_script.get(s) for s in scripts]
            writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in values])


def read_audit_csv(path: str | Path) -> list[AuditRow]:
    """Read ``audit.csv`` back into rows (floats round-trip exactly)."""
    path = Path(path)
    if not path.is_file():
        raise XltError(f"audit table {path} not found — run `xlt tokenizer audit` first")
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        for record in csv.DictReader(handle):
            kwargs: dict[str, Any] = {}
            for column in _COLUMNS:
                text = record[column]
                if column in _STR_FIELDS:
                    kwargs[column] = text
                elif column in _INT_FIELDS:
                    kwargs[column] = int(text)
                else:
                    kwargs[column] = None if text == "" else float(text)
            kwargs["coverage_by_script"] = {k.split(".", 1)[1]: float(v) for k, v in record.items()
                                            if k.startswith("char_coverage.") and v != ""}
            kwargs["chars_by_script"] = {k.split(".", 1)[1]: int(v) for k, v in record.items()
                                         if k.startswith("chars.") and v != ""}
            rows.append(AuditRow(**kwargs))
    return rows


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table without column alignment, then a blank line."""
    return [*markdown.table(header, body, align=False), ""]


def _order(values: Iterable[str], preferred: Sequence[str] = ()) -> list[str]:
    distinct = list(dict.fromkeys(values))
    return [v for v in preferred if v in distinct] + [v for v in distinct if v not in preferred]


def _markdown(rows: Sequence[AuditRow], title: str, notes: Sequence[str], panel: Panel | None = None) -> str:
    """``audit.md``; with ``panel``, languages are named as :meth:`~xlt.languages.Panel.label` does
    (``yor Yoruba``)."""
    def name(code: str) -> str:
        return markdown.escape(panel.label(code) if panel is not None else code)

    tokenizers = _order(r.tokenizer for r in rows)
    languages = _order(r.language for r in rows)
    by_key = {(r.tokenizer, r.language): r for r in rows}
    first = {r.language: r for r in reversed(rows)}
    lines = [f"# {title}", ""] + [f"- {n}" for n in notes] + [""]

    def pivot(metric: str, heading: str) -> None:
        if all(r.metric(metric) is None for r in rows):
            return
        lines.extend([f"## {heading}", ""])
        body = [[name(lang), first[lang].script, first[lang].bucket]
                + [_fmt(by_key[(t, lang)].metric(metric)) if (t, lang) in by_key else "" for t in tokenizers]
                for lang in languages]
        means = aggregate(rows, metric, "macro")
        body.append(["**macro**", "", ""] + [_fmt(means.get((t, "macro"))) for t in tokenizers])
        lines.extend(_table(["language", "script", "bucket", *tokenizers], body))

    pivot("fertility", "Fertility (pieces per whitespace word)")
    pivot("gold_fertility", "Fertility on gold (UD) words")
    for by in ("script", "bucket"):
        means = aggregate(rows, "fertility", by)
        groups = _order((g for _, g in means), BUCKETS if by == "bucket" else ())
        lines.extend([f"## Mean fertility by {by}", ""])
        lines.extend(_table([by, *tokenizers], [[g] + [_fmt(means.get((t, g))) for t in tokenizers]
                                                   for g in groups]))
    lines.extend(["## All metrics", ""])
    body = [[name(r.language), r.tokenizer] + [_fmt(r.metric(m), 4 if m.endswith("rate") else 3) for m in METRICS]
            + [str(r.vocab_used)] for lang in languages for r in rows if r.language == lang]
    lines.extend(_table(["language", "tokenizer", *(_LABELS[m] for m in METRICS), "ids used"], body))
    scripts = _scripts(rows)
    lines.extend(["## Character coverage by Unicode script", ""])
    body = [[name(r.language), r.tokenizer] + [_fmt(r.coverage_by_script.get(s)) if s in r.coverage_by_script else ""
                                         for s in scripts] for lang in languages for r in rows if r.language == lang]
    lines.extend(_table(["language", "tokenizer", *scripts], body))
    return "\n".join(lines)


def _plot(rows: Sequence[AuditRow], by: str, path: Path) -> None:
    """Grouped bars of mean fertility per ``by`` group, one bar per tokenizer (and gold words when given)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg canvas

    tokenizers = _order(r.tokenizer for r in rows)
    panels = [("fertility", "whitespace words")]
    if any(r.gold_fertility is not None for r in rows):
        panels.append(("gold_fertility", "gold (UD) words"))
    n_groups = len({getattr(r, by) for r in rows})
    width_in = max(6.0, 2.0 + n_groups * (0.6 + 0.35 * len(tokenizers)))
    fig = Figure(figsize=(width_in, 3.6 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (metric, label) in zip(axes, panels, strict=True):
        means = aggregate(rows, metric, by)
        groups = _order((g for _, g in means), BUCKETS if by == "bucket" else ())
        width = 0.8 / max(1, len(tokenizers))
        for k, tok in enumerate(tokenizers):
            xs = [i + (k - (len(tokenizers) - 1) / 2) * width for i in range(len(groups))]
            ax.bar(xs, [means.get((tok, g), 0.0) for g in groups], width=width, label=tok)
        ax.set_xticks(range(len(groups)), groups, rotation=30 if len(groups) > 6 else 0)
        ax.set_ylabel("pieces per word")
        ax.set_title(f"Fertility on {label}, mean over languages, by {by}")
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def write_audit(rows: Sequence[AuditRow], out_dir: str | Path, overwrite: bool = False,
                title: str = "Tokenizer audit", notes: Sequence[str] = (), panel: Panel | None = None
                ) -> dict[str, Path]:
    """Write ``audit.csv``, ``audit.md`` and the two fertility plots into ``out_dir`` (atomically).

    Args:
        rows: audit rows (several tokenizers side by side).
        out_dir: the output directory; an existing one needs ``overwrite``.
        overwrite: replace an existing ``out_dir``.
        title: the Markdown heading.
        notes: bullet lines under the heading (sources, sample size).
        panel: the languages' panel: ``audit.md`` names them (``yor Yoruba``); ``audit.csv`` keeps the codes.

    Returns:
        File kind (``csv``, ``markdown``, ``script``, ``bucket``) -> path.
    """
    if not rows:
        raise XltError("no audit rows to write — audit at least one language")
    out_dir = Path(out_dir)
    names = {"csv": CSV_FILE, "markdown": MARKDOWN_FILE, **PLOT_FILES}
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        _write_csv(rows, tmp / CSV_FILE)
        (tmp / MARKDOWN_FILE).write_text(_markdown(rows, title, notes, panel), encoding="utf-8")
        for by, filename in PLOT_FILES.items():
            _plot(rows, by, tmp / filename)
    return {kind: out_dir / filename for kind, filename in names.items()}

def _metric_key(*parts: str) -> str:
    return _METRIC_CHARS.sub("_", "/".join(parts))


def audit_metrics(rows: Sequence[AuditRow]) -> dict[str, float]:
    """The MLflow metrics of an audit (names in the module docstring)."""
    metrics: dict[str, float] = {}
    for row in rows:
        for metric in METRICS:
            value = row.metric(metric)
            if value is not None:
                metrics[_metric_key("audit", row.tokenizer, metric, row.language)] = float(value)
        for script, value in row.coverage_by_script.items():
            metrics[_metric_key("audit", row.tokenizer, f"char_coverage.{script}", row.language)] = float(value)
    for metric in METRICS:
        for by in ("macro", "script", "bucket", "family"):
            if metric == "char_coverage" and by == "script":
                continue  # pooled by Unicode script below
            for (tok, group), value in aggregate(rows, metric, by).items():
                name = group if by == "macro" else f"{by}.{group}"
                metrics[_metric_key("audit", tok, metric, name)] = value
    for (tok, script), value in pooled_script_coverage(rows).items():
        metrics[_metric_key("audit", tok, "char_coverage", f"script.{script}")] = value
    return metrics


def log_audit_to_mlflow(rows: Sequence[AuditRow], artifacts: Mapping[str, Path] | Sequence[Path] = (),
                        experiment_name: str = "tokenizer-audit", tracking_uri: str | None = None,
                        run_name: str | None = None, params: Mapping[str, Any] | None = None,
                        manifests: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """Log an audit as one finished MLflow run; returns its run id.

    Args:
        rows: audit rows.
        artifacts: files to attach (the table and plots written by :func:`write_audit`).
        experiment_name: the MLflow experiment (created with artifacts beside a SQLite store, as
            :class:`~xlt.callbacks.tracking.TrackingLogger` does).
        tracking_uri: the MLflow store; ``None`` uses ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``.
        run_name: the run's name (default ``audit-<tokenizers>``).
        params: run parameters (tokenizer paths, panel, sample size).
        manifests: tokenizer name -> its fitting manifest, logged as ``tokenizers/<name>/manifest.json``.
    """
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    tokenizers = _order(r.tokenizer for r in rows)
    experiment_name, tags = stage_run(experiment_name, {"xlt.stage": "audit", "tokenizers": ",".join(tokenizers),
                                                        "languages": ",".join(_order(r.language for r in rows))})
    experiment_id = get_or_create_experiment(client, experiment_name, uri)
    run = client.create_run(experiment_id, run_name=run_name or "audit-" + "-".join(tokenizers), tags=tags)
    run_id = run.info.run_id
    try:
        timestamp = int(time.time() * 1000)
        metric_items = [Metric(k, v, timestamp, 0) for k, v in audit_metrics(rows).items()]
        param_items = [Param(str(k), str(v)[:6000]) for k, v in (params or {}).items()]
        for start in range(0, len(param_items), 100):  # MLflow's batch limits: 100 params, 1000 metrics
            client.log_batch(run_id, params=param_items[start:start + 100])
        for start in range(0, len(metric_items), 1000):
            client.log_batch(run_id, metrics=metric_items[start:start + 1000])
        for path in (artifacts.values() if isinstance(artifacts, Mapping) else artifacts):
            client.log_artifact(run_id, str(path))
        for name, manifest in (manifests or {}).items():
            if manifest:
                client.log_text(run_id, json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n",
                                f"tokenizers/{name}/manifest.json")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id
