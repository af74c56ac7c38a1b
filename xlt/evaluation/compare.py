"""``xlt compare``: paired bootstrap of two systems (or two languages) on the same test rows, over seeds.

Each side is a list of prediction files (one per seed; :mod:`xlt.evaluation.predictions`), scored against the gold
test split of its language. File ``i`` of ``a`` is paired with file ``i`` of ``b`` row by row, so the comparison
is of two runs on one test file (vocabulary (a) vs (d) on ``yor``) or of two languages of one run on a parallel
test set (the script copy ``qai`` vs the word-order copy ``qaj``: the same meanings in the same rows). For each
pair it prints the difference ``a - b`` with its percentile interval and two-sided bootstrap p-value
(:func:`~xlt.evaluation.bootstrap.paired_bootstrap`); with several pairs (seeds), also the mean and sample
standard deviation of the differences and how many pairs are significant, the spread a single-seed p-value cannot
show.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from datasets import Dataset

from xlt.datamodules.task_spec import load_split
from xlt.datamodules.tasks import task_spec
from xlt.errors import DataNotFound, XltError
from xlt.evaluation import markdown
from xlt.evaluation.bootstrap import PairedComparison, paired_bootstrap
from xlt.evaluation.predictions import METRICS, prediction_language, require_prediction_file, score_predictions
from xlt.sources import TextSource, as_task_source


@dataclass(frozen=True)
class PairResult:
    """One paired comparison: the two files, their scores and the bootstrap of the difference."""

    a: str
    b: str
    score_a: float
    score_b: float
    n_examples: int
    comparison: PairedComparison


def gold_split(task: str, data: TextSource, code: str) -> Dataset:
    """Language ``code``'s test split, read as the task's data module reads it."""
    spec = task_spec(task)
    location, name = data.task_location(spec.synthetic_folder, code)
    try:
        return load_split(location, spec, "test", language=code, name=name)
    except DataNotFound as error:
        raise XltError(f"no test data for language '{code}' ({task}) in {data}: {error}") from error


def compare_predictions(task: str, a: Sequence[str | Path], b: Sequence[str | Path],
                        data: TextSource | str = "synthetic", cache_dir: str = "runs/cache", n_boot: int = 1000,
                        confidence: float = 0.95, seed: int = 0) -> list[PairResult]:
    """Paired bootstrap of each ``(a[i], b[i])`` pair of prediction files (see the module docstring)."""
    if task not in METRICS:
        raise XltError(f"unknown task '{task}' — use one of: {', '.join(METRICS)}")
    if not a or len(a) != len(b):
        raise XltError(f"compare needs as many files in b as in a (one per seed), got {len(a)} and {len(b)}")
    files = [Path(p) for p in (*a, *b)]
    for path in files:  # name and existence errors before any data is read
        prediction_language(path)
        require_prediction_file(path)
    source = as_task_source(data, cache_dir)
    source.prepare()
    gold = {code: gold_split(task, source, code) for code in dict.fromkeys(prediction_language(p) for p in files)}
    results = []
    for path_a, path_b in zip(a, b, strict=True):
        stats_a = score_predictions(task, path_a, gold[prediction_language(path_a)])
        stats_b = score_predictions(task, path_b, gold[prediction_language(path_b)])
        if len(stats_a) != len(stats_b):
            raise XltError(f"{path_a} scores {len(stats_a)} examples and {path_b} {len(stats_b)} — a paired "
                           "comparison needs the same test rows (one test file, or a parallel test set)")
        comparison = paired_bootstrap(stats_a, stats_b, n_boot=n_boot, confidence=confidence, seed=seed)
        results.append(PairResult(str(path_a), str(path_b), stats_a.score(), stats_b.score(), len(stats_a),
                                  comparison))
    return results


def render(task: str, results: Sequence[PairResult]) -> str:
    """A Markdown table of the pairs (scores in %), with the spread over pairs when there are several."""
    metric = METRICS[task]
    pct = 100.0
    level = f"{results[0].comparison.confidence:.0%}"
    header = ["a", "b", f"{metric} a", f"{metric} b", "a − b", f"{level} CI", "p", "examples"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 6) + "|"]
    for r in results:
        c = r.comparison
        lines.append("| " + " | ".join([markdown.escape(r.a), markdown.escape(r.b), f"{r.score_a * pct:.1f}",
                                        f"{r.score_b * pct:.1f}", f"{c.difference * pct:+.1f}",
                                        f"[{c.low * pct:+.1f}, {c.high * pct:+.1f}]", f"{c.p_value:.3f}",
                                        str(r.n_examples)]) + " |")
    if len(results) > 1:
        diffs = [r.comparison.difference * pct for r in results]
        significant = sum(r.comparison.significant for r in results)
        lines += ["", f"Over {len(results)} pairs (seeds): a − b = {statistics.mean(diffs):+.1f} ± "
                      f"{statistics.stdev(diffs):.1f} (mean ± sample std); {significant} of {len(results)} "
                      f"significant at {level}."]
    return "\n".join(lines) + "\n"


def compare(task: str, a: list[str] | str, b: list[str] | str, data: TextSource | str = "synthetic",
            cache_dir: str = "runs/cache", n_boot: int = 1000, confidence: float = 0.95, seed: int = 0,
            json_out: bool = False) -> None:
    """Paired bootstrap of prediction files: two runs on one test file, or two languages of a parallel test set.

    Example (the word-order copy against the script copy, three seeds):
    ``xlt compare udpos '[s0/test-qaj.tsv, s1/test-qaj.tsv, s2/test-qaj.tsv]'
    '[s0/test-qai.tsv, s1/test-qai.tsv, s2/test-qai.tsv]'``

    Args:
        task: the task of the files: xnli, pawsx, udpos, ner, qa or retrieval (its primary metric is compared;
            retrieval's P@1 is source → pivot, the direction the files record).
        a: prediction files of side a (``test-<lang>.tsv`` / ``.json`` from ``--model.predictions_dir``), one per
            seed (a single path for one seed).
        b: prediction files of side b, paired with ``a`` in order.
        data: the task data the runs were tested on, as the task config's ``data`` (``synthetic``, a directory, a
            hub id, or a source object such as ``{class_path: xlt.sources.SyntheticPanel, init_args: {...}}``).
        cache_dir: where the synthetic panel is cached (as the task config's ``cache_dir``).
        n_boot: bootstrap resamples.
        confidence: coverage of the interval of each difference.
        seed: seed of the resampling.
        json_out: print JSON (one object per pair) instead of the Markdown table.
    """
    a, b = ([a] if isinstance(a, str) else a), ([b] if isinstance(b, str) else b)
    results = compare_predictions(task, a, b, data=data, cache_dir=cache_dir, n_boot=n_boot,
                                  confidence=confidence, seed=seed)
    if json_out:
        print(json.dumps([{**{k: v for k, v in asdict(r).items() if k != "comparison"},
                           **asdict(r.comparison)} for r in results], indent=1))
    else:
        print(render(task, results), end="")
