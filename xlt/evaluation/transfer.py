"""Transfer matrices (source × target languages) and their correlation with typological distance.

A :class:`TransferMatrix` holds the score on target language *t* of a model fine-tuned on source language *s*
(NaN where a pair was not evaluated). :func:`transfer_distance_correlation` relates the off-diagonal cells to a
typological distance between *s* and *t*:

- ``uriel``: the mean of lang2vec's precomputed URIEL distances (``syntactic``, ``phonological``, ``inventory``,
  ``genetic``; each in [0, 1]) — used when the optional ``lang2vec`` package is installed and knows every
  language;
- ``panel``: the fraction of panel features on which the two languages differ, over the features known for both
  (default ``word_order``, ``morphology`` from ``Language.features`` and ``script``, ``family`` from the
  ``Language`` record; string equality), so 0 = identical on all of them, 1 = different on all.

``auto`` picks ``uriel`` when possible and ``panel`` otherwise; one method is used for all pairs of a matrix (the
two scales are not comparable, so a matrix never mixes them). Which languages lang2vec does not know is checked
per language: :func:`distances` returns them with the method used, and a :class:`TransferCorrelation` carries
them and a note (``note``, in its JSON and in ``xlt report``'s ``transfer.md``) such as "URIEL (lang2vec) has no
distances for qac: panel distances used for all pairs".
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from xlt.errors import XltError
from xlt.evaluation import markdown
from xlt.languages import Language, Panel

PANEL_FEATURES = ("word_order", "morphology", "script", "family")
URIEL_KINDS = ("syntactic", "phonological", "inventory", "genetic")
DistanceMethod = Literal["auto", "uriel", "panel"]


@dataclass(frozen=True, eq=False)
class TransferMatrix:
    """Scores of source-language models on target languages.

    Attributes:
        sources: source (fine-tuning) language codes, one per row.
        targets: target (evaluation) language codes, one per column.
        values: float array ``[len(sources), len(targets)]``; NaN where not evaluated.
        task: task name (for titles and artifact names).
        metric: metric name.
    """

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    values: np.ndarray
    task: str = ""
    metric: str = ""

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.shape != (len(self.sources), len(self.targets)):
            raise ValueError(f"TransferMatrix: values {values.shape} for {len(self.sources)} sources x "
                             f"{len(self.targets)} targets")
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "values", values)

    @classmethod
    def from_scores(cls, scores: Mapping[str, Mapping[str, float]], task: str = "", metric: str = "",
                    targets: Sequence[str] | None = None) -> TransferMatrix:
        """Build from ``source -> target -> score`` (columns: ``targets`` or the union in first-seen order)."""
        if not scores:
            raise XltError("transfer matrix needs scores of at least one source language — train on one or more "
                           "source languages first")
        if targets is None:
            targets = list(dict.fromkeys(t for row in scores.values() for t in row))
        values = np.full((len(scores), len(targets)), np.nan)
        for i, row in enumerate(scores.values()):
            for j, target in enumerate(targets):
                if target in row:
                    values[i, j] = float(row[target])
        return cls(tuple(scores), tuple(targets), values, task, metric)

    @classmethod
    def from_results(cls, results: Mapping[str, Any], targets: Sequence[str] | None = None) -> TransferMatrix:
        """Build from ``source -> EvaluationResult`` (each result's per-language rows are one matrix row)."""
        first = next(iter(results.values()), None)
        if first is None:
            raise XltError("transfer matrix needs results of at least one source language — train on one or more "
                           "source languages first")
        scores = {src: {row.group: row.score for row in res.languages} for src, res in results.items()}
        return cls.from_scores(scores, first.task, first.metric, targets)

    def get(self, source: str, target: str) -> float:
        """The score of ``source`` on ``target`` (NaN if not evaluated)."""
        return float(self.values[self.sources.index(source), self.targets.index(target)])

    def pairs(self, include_diagonal: bool = False) -> list[tuple[str, str, float]]:
        """Evaluated ``(source, target, score)`` cells, row by row (source == target left out by default)."""
        return [(s, t, float(self.values[i, j])) for i, s in enumerate(self.sources)
                for j, t in enumerate(self.targets)
                if np.isfinite(self.values[i, j]) and (include_diagonal or s != t)]

    def to_csv(self) -> str:
        """CSV with a ``source`` column and one column per target (empty cells for NaN)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["source", *self.targets])
        for s, row in zip(self.sources, self.values, strict=True):
            writer.writerow([s, *("" if not np.isfinite(v) else repr(float(v)) for v in row)])
        return buffer.getvalue()

    def to_markdown(self, percent: bool = True, digits: int = 1, labels: Mapping[str, str] | None = None) -> str:
        """A Markdown table, sources as rows and targets as columns, languages named by ``labels`` (code ->
        :meth:`~xlt.languages.Panel.label`, e.g. ``yor Yoruba``; codes without one shown bare)."""
        scale = 100.0 if percent else 1.0
        name = _labeller(labels)
        rows = [[markdown.escape(name(s)), *("–" if not np.isfinite(v) else f"{v * scale:.{digits}f}" for v in row)]
                for s, row in zip(self.sources, self.values, strict=True)]
        header = ["source \\ target", *(markdown.escape(name(t)) for t in self.targets)]
        return "\n".join(markdown.table(header, rows)) + "\n"

    def heatmap(self, path: str | Path, title: str | None = None, labels: Mapping[str, str] | None = None) -> Path:
        """Write the matrix as a PNG heatmap (sources as rows, targets as columns) atomically, languages named by
        ``labels`` as in :meth:`to_markdown`."""
        from xlt.evaluation.plots import plot_heatmap

        label = "/".join(p for p in (self.task, self.metric) if p) or "score"
        name = _labeller(labels)
        return plot_heatmap(self.values, [name(s) for s in self.sources], [name(t) for t in self.targets], path,
                            title=title or f"transfer: {label} (%)", xlabel="target language",
                            ylabel="source language")


def _labeller(labels: Mapping[str, str] | None) -> Callable[[str], str]:
    """Code -> its label in ``labels``, else the code."""
    table = dict(labels or {})
    return lambda code: table.get(code, code)


# --------------------------------------------------------------------------------------------- distances


def _feature(lang: Language, name: str) -> str | None:
    if name in ("script", "family", "bucket"):
        return getattr(lang, name)
    value = lang.features.get(name)
    return None if value in (None, "") else value


def panel_distance(a: Language, b: Language, features: Sequence[str] = PANEL_FEATURES) -> float:
    """Fraction of ``features`` known for both languages on which they differ (NaN if none is known for both)."""
    known = [(fa, fb) for name in features
             if (fa := _feature(a, name)) is not None and (fb := _feature(b, name)) is not None]
    if not known:
        return math.nan
    return sum(fa != fb for fa, fb in known) / len(known)


def _lang2vec() -> Any | None:
    try:
        import lang2vec.lang2vec as l2v  # type: ignore[import-not-found]
    except ImportError:
        return None
    return l2v


def uriel_distance(a: str, b: str, kinds: Sequence[str] = URIEL_KINDS) -> float:
    """Mean of lang2vec's URIEL distances of kinds ``kinds`` between ISO 639-3 codes ``a`` and ``b``.

    Raises an :class:`XltError` when ``lang2vec`` is not installed; lang2vec's own error when a code is unknown.
    """
    l2v = _lang2vec()
    if l2v is None:
        raise XltError("typological distance method 'uriel' needs the lang2vec package — pip install lang2vec, "
                       "or use method 'panel'")
    return float(np.mean([float(l2v.distance(kind, a, b)) for kind in kinds]))


def uriel_unknown(codes: Sequence[str], kinds: Sequence[str] = URIEL_KINDS) -> list[str]:
    """The languages of ``codes`` (in order, once each) that lang2vec has no URIEL distances of ``kinds`` for.

    Each language is asked on its own (its distance to itself), so the answer names exactly the unknown ones.
    Raises an :class:`XltError` when ``lang2vec`` is not installed.
    """
    unknown = []
    for code in dict.fromkeys(codes):
        try:
            uriel_distance(code, code, kinds)
        except XltError:
            raise
        except Exception:  # lang2vec raises plain Exceptions for unknown codes
            unknown.append(code)
    return unknown


@dataclass(frozen=True, eq=False)
class Distances:
    """A distance matrix and where its distances came from.

    Attributes:
        values: float array ``[len(codes_a), len(codes_b)]`` (NaN where a panel distance is undefined).
        method: the distance actually used for every pair, ``uriel`` or ``panel``.
        requested: the method asked for (``auto``, ``uriel`` or ``panel``).
        uriel_unknown: languages lang2vec has no URIEL distances for (empty when all were known, when
            ``panel`` was requested, or when lang2vec is not installed).
        lang2vec_installed: whether lang2vec could be imported (``None`` when it was not consulted).
    """

    values: np.ndarray
    method: str
    requested: str = "auto"
    uriel_unknown: tuple[str, ...] = ()
    lang2vec_installed: bool | None = None

    @property
    def note(self) -> str | None:
        """Why ``panel`` distances stand in for URIEL, naming the languages URIEL lacks (``None`` when URIEL was
        used or ``panel`` was asked for)."""
        if self.method == "uriel" or self.requested == "panel":
            return None
        if self.lang2vec_installed is False:
            return "lang2vec is not installed: panel distances used for all pairs (pip install lang2vec for URIEL)"
        if self.uriel_unknown:
            return (f"URIEL (lang2vec) has no distances for {', '.join(self.uriel_unknown)}: panel distances used "
                    "for all pairs")
        return None


def distances(codes_a: Sequence[str], codes_b: Sequence[str], panel: Panel, method: DistanceMethod = "auto",
              features: Sequence[str] = PANEL_FEATURES) -> Distances:
    """Distances ``[len(codes_a), len(codes_b)]`` with the method used and the languages unknown to URIEL.

    ``uriel`` fails (naming exactly the unknown languages) unless lang2vec knows every language; ``auto`` then
    uses ``panel`` distances for the whole matrix and says so (:attr:`Distances.note`).
    """
    if method not in ("auto", "uriel", "panel"):
        raise XltError(f"typological distance method {method!r} is unknown — use 'auto', 'uriel' or 'panel'")
    installed = None
    unknown: list[str] = []
    if method in ("auto", "uriel"):
        installed = _lang2vec() is not None
        if method == "uriel" or installed:
            codes = list(dict.fromkeys([*codes_a, *codes_b]))
            unknown = uriel_unknown(codes)
            if unknown and method == "uriel":
                raise XltError(f"URIEL (lang2vec) has no features for {', '.join(unknown)} (of {', '.join(codes)}) "
                               "— use method 'panel' or 'auto'")
            if not unknown:
                cache: dict[tuple[str, str], float] = {}
                out = np.empty((len(codes_a), len(codes_b)))
                for i, a in enumerate(codes_a):
                    for j, b in enumerate(codes_b):
                        key = (min(a, b), max(a, b))
                        if key not in cache:
                            try:
                                cache[key] = 0.0 if a == b else uriel_distance(a, b)
                            except Exception as exc:  # both known on their own, yet the pair fails
                                raise XltError(f"URIEL (lang2vec) distance {a}–{b} failed ({exc}) — use method "
                                               "'panel'") from exc
                        out[i, j] = cache[key]
                return Distances(out, "uriel", method, (), installed)
    langs_a = [panel.get(c) for c in codes_a]
    langs_b = [panel.get(c) for c in codes_b]
    values = np.array([[panel_distance(a, b, features) for b in langs_b] for a in langs_a]).reshape(
        len(codes_a), len(codes_b))
    return Distances(values, "panel", method, tuple(unknown), installed)


def distance_matrix(codes_a: Sequence[str], codes_b: Sequence[str], panel: Panel, method: DistanceMethod = "auto",
                    features: Sequence[str] = PANEL_FEATURES) -> tuple[np.ndarray, str]:
    """Distances ``[len(codes_a), len(codes_b)]`` and the method actually used (``uriel`` or ``panel``); see
    :func:`distances` for which languages made ``auto`` fall back to ``panel``."""
    found = distances(codes_a, codes_b, panel, method, features)
    return found.values, found.method


# --------------------------------------------------------------------------------------------- correlation


def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as ``scipy.stats.rankdata``)."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse]


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation coefficient (NaN when fewer than 2 points or a constant variable)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"pearson: {len(x)} vs {len(y)} values")
    if len(x) < 2:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / den if den > 0 else math.nan


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation (Pearson of average ranks)."""
    return pearson(rankdata(x), rankdata(y))


def _p_values(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    """Two-sided p-values from scipy when it is installed and the correlation is defined."""
    try:
        from scipy import stats
    except ImportError:
        return None, None
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    return float(stats.pearsonr(x, y).pvalue), float(stats.spearmanr(x, y).pvalue)


@dataclass(frozen=True)
class TransferCorrelation:
    """Correlation between transfer scores and typological distance over language pairs.

    Attributes:
        method: distance used, ``uriel`` or ``panel``.
        n: number of (source, target) pairs with a score and a defined distance.
        pearson: Pearson r (NaN if undefined).
        spearman: Spearman ρ (NaN if undefined).
        pearson_p: two-sided p-value (``None`` without scipy or when undefined).
        spearman_p: two-sided p-value (``None`` without scipy or when undefined).
        pairs: ``(source, target, distance, score)`` per pair.
        uriel_unknown: languages lang2vec has no URIEL distances for (why ``auto`` used ``panel``).
        note: why panel distances stand in for URIEL (see :attr:`Distances.note`), ``None`` otherwise.
    """

    method: str
    n: int
    pearson: float
    spearman: float
    pearson_p: float | None
    spearman_p: float | None
    pairs: tuple[tuple[str, str, float, float], ...]
    uriel_unknown: tuple[str, ...] = ()
    note: str | None = None

    @property
    def summary(self) -> str:
        """``r = …, ρ = … (n = …)``."""
        return f"r = {self.pearson:.2f}, ρ = {self.spearman:.2f} (n = {self.n})"

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Scatter of transfer score against distance as a PNG (default title: :attr:`summary`)."""
        from xlt.evaluation.plots import plot_distance_scatter

        return plot_distance_scatter([p[2] for p in self.pairs], [p[3] for p in self.pairs], self.method,
                                     title or self.summary, path)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (undefined coefficients as ``None``)."""

        def finite(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else v

        return {"method": self.method, "n": self.n, "pearson": finite(self.pearson),
                "spearman": finite(self.spearman), "pearson_p": finite(self.pearson_p),
                "spearman_p": finite(self.spearman_p), "uriel_unknown": list(self.uriel_unknown),
                "note": self.note, "pairs": [list(p) for p in self.pairs]}

    def describe(self) -> str:
        """One line for reports: method, pairs, coefficients, and the note when panel distances stand in."""
        line = (f"Correlation with typological distance ({self.method}, {self.n} pairs): "
                f"Pearson r = {self.pearson:.2f}, Spearman ρ = {self.spearman:.2f}.")
        return line if self.note is None else f"{line} Note: {self.note}."


def transfer_distance_correlation(matrix: TransferMatrix, panel: Panel, method: DistanceMethod = "auto",
                                  features: Sequence[str] = PANEL_FEATURES,
                                  include_diagonal: bool = False) -> TransferCorrelation:
    """Pearson and Spearman correlation between transfer scores and typological distance of (source, target).

    Args:
        matrix: the transfer matrix.
        panel: panel with the languages' records (for ``panel`` distances).
        method: ``auto``, ``uriel`` or ``panel`` (module docstring).
        features: panel features compared by the ``panel`` distance.
        include_diagonal: also use source == target cells (distance 0).
    """
    codes = list(dict.fromkeys([*matrix.sources, *matrix.targets]))
    for code in codes:
        panel.get(code)
    found = distances(codes, codes, panel, method, features)
    dist = found.values
    index = {c: i for i, c in enumerate(codes)}
    pairs = tuple((s, t, float(dist[index[s], index[t]]), v) for s, t, v in matrix.pairs(include_diagonal)
                  if np.isfinite(dist[index[s], index[t]]))
    x = np.array([p[2] for p in pairs])
    y = np.array([p[3] for p in pairs])
    p_pearson, p_spearman = _p_values(x, y)
    return TransferCorrelation(found.method, len(pairs), pearson(x, y), spearman(x, y), p_pearson, p_spearman, pairs,
                               found.uriel_unknown, found.note)
