"""Language sampler for packed blocks: temperature-scaled language probabilities, seeded and resumable.

Target distribution (XLM-R, Conneau et al. 2020, used alpha = 0.3)::

    p(l)  ∝  f_l · n_l ** alpha

with ``n_l`` the size of language ``l`` (its number of blocks, i.e. tokens / block_size) and ``f_l`` an
optional oversampling factor given per language code or per resource bucket (``tail: 3`` = the paper's 2-4x
for tail languages; a language's own factor overrides its bucket's).

The stream is an infinite sequence of global positions ``i = 0, 1, 2, …``; position ``i`` draws

* its language from ``p`` with a generator seeded by ``(seed, i // chunk_size)`` (vectorised per chunk, so
  any stretch of the stream is computed without replaying it draw by draw);
* its block: the ``k``-th visit of language ``l`` (``k`` = how often ``l`` was drawn before ``i``) takes
  block ``perm_{l, k // N_l}(k % N_l)``, where ``perm`` is a seeded keyed permutation of ``range(N_l)`` (a
  Feistel network with cycle walking: no ``O(N_l)`` array). So blocks are visited without replacement and
  reshuffled on every pass.

Rank ``r`` of ``W`` gets the positions ``i ≡ r (mod W)``: shares are disjoint and their union is the
single-process stream. :meth:`LanguageSampler.state_dict` stores the position (and the per-language visit
counts there, which only save recomputation), so resuming yields exactly the rest of the stream.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from xlt.errors import XltError
from xlt.languages import BUCKETS

DEFAULT_CHUNK = 1 << 14
_LANG_STREAM = 0x6C616E67  # "lang": separates the language-draw stream from other uses of the seed
_GOLDEN = 0x9E3779B97F4A7C15
_ROUNDS = 6


# ---------------------------------------------------------------------------------------------- distribution
def resolve_factors(languages: list[str], oversampling: Mapping[str, float] | None,
                    buckets: Mapping[str, str] | None = None) -> dict[str, float]:
    """Each language's oversampling factor from keys that are language codes or bucket names.

    A language's own key wins over its bucket's; languages without a key get 1. Raises :class:`XltError`
    for a factor <= 0 or a key that is neither one of ``languages`` nor a bucket name.
    """
    factors = dict.fromkeys(languages, 1.0)
    if not oversampling:
        return factors
    buckets = dict(buckets or {})
    for key, value in oversampling.items():
        try:
            factor = float(value)
        except (TypeError, ValueError):
            raise XltError(f"oversampling factor for '{key}' is {value!r} — use a positive number") from None
        if not np.isfinite(factor) or factor <= 0:
            raise XltError(f"oversampling factor for '{key}' is {value!r} — use a positive number "
                           "(e.g. 2.0 to double its odds)")
        if key not in languages and key not in BUCKETS:
            raise XltError(f"oversampling key '{key}' is neither a language of this run "
                           f"({', '.join(languages)}) nor a resource bucket ({', '.join(BUCKETS)})")
    for lang in languages:
        bucket = buckets.get(lang)
        if lang in oversampling:
            factors[lang] = float(oversampling[lang])
        elif bucket is not None and bucket in oversampling:
            factors[lang] = float(oversampling[bucket])
    return factors


def sampling_probabilities(sizes: Mapping[str, float], alpha: float = 0.3,
                           oversampling: Mapping[str, float] | None = None,
                           buckets: Mapping[str, str] | None = None) -> dict[str, float]:
    """``p(l) ∝ f_l · n_l ** alpha`` (see the module docstring).

    Args:
        sizes: language -> size (blocks or tokens); every size must be positive.
        alpha: temperature exponent; 1 = proportional to size, 0 = uniform.
        oversampling: factors keyed by language code or bucket name.
        buckets: language -> resource bucket (for bucket keys).
    """
    if not sizes:
        raise XltError("no languages to sample from — give at least one language with data")
    if not np.isfinite(alpha) or alpha < 0:
        raise XltError(f"alpha {alpha} must be >= 0 (1 = proportional to corpus size, 0 = uniform)")
    languages = list(sizes)
    for lang, size in sizes.items():
        if not size or size <= 0:
            raise XltError(f"language '{lang}' has no data to sample (size {size}) — add text or drop it")
    factors = resolve_factors(languages, oversampling, buckets)
    weights = np.array([factors[lang] * float(sizes[lang]) ** alpha for lang in languages], dtype=np.float64)
    probs = weights / weights.sum()
    return dict(zip(languages, probs.tolist(), strict=True))


# ---------------------------------------------------------------------------------------------- permutation
def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _feistel(x: np.ndarray, round_keys: list[np.ndarray], half: np.ndarray, mask: np.ndarray) -> np.ndarray:
    left, right = x >> half, x & mask
    for round_key in round_keys:
        left, right = right, left ^ (_mix64(right ^ round_key) & mask)
    return (left << half) | right


def keyed_permutation(index: np.ndarray, n: np.ndarray | int, keys: np.ndarray | int) -> np.ndarray:
    """``perm_{n, key}(index)``: a pseudo-random permutation of ``range(n)`` chosen by ``key``, per element.

    A balanced Feistel network on the smallest even number of bits covering ``n``, with cycle walking to
    stay inside ``[0, n)``: a bijection for every key, computed in ``O(len(index))`` memory. ``n`` and
    ``keys`` broadcast against ``index`` (one call serves several languages and passes).
    """
    index = np.asarray(index, dtype=np.uint64)
    sizes = np.broadcast_to(np.asarray(n, dtype=np.int64), index.shape)
    keys = np.broadcast_to(np.asarray(keys, dtype=np.uint64), index.shape)
    out = np.zeros(index.shape, dtype=np.uint64)
    live = np.flatnonzero(sizes > 1)
    if not live.size:
        return out.astype(np.int64)
    values, inverse = np.unique(sizes[live], return_inverse=True)
    bits = np.array([max(2, int(v - 1).bit_length()) for v in values.tolist()], dtype=np.uint64)
    bits += bits % np.uint64(2)
    half = (bits // np.uint64(2))[inverse]
    mask = (np.uint64(1) << half) - np.uint64(1)
    round_keys = [_mix64(keys[live] + np.uint64((r + 1) * _GOLDEN % (1 << 64))) for r in range(_ROUNDS)]
    limit = sizes[live].astype(np.uint64)
    x = _feistel(index[live], round_keys, half, mask)
    todo = np.flatnonzero(x >= limit)
    while todo.size:  # cycle walking: re-encrypt until the value falls inside [0, n)
        x[todo] = _feistel(x[todo], [k[todo] for k in round_keys], half[todo], mask[todo])
        todo = todo[x[todo] >= limit[todo]]
    out[live] = x
    return out.astype(np.int64)


def _language_keys(seed: int, languages: list[str]) -> np.ndarray:
    base = _mix64(np.array([(seed * _GOLDEN) % (1 << 64)], dtype=np.uint64))
    crcs = np.array([zlib.crc32(lang.encode("utf-8")) for lang in languages], dtype=np.uint64)
    return _mix64(base ^ crcs)


def _pass_keys(language_keys: np.ndarray, passes: np.ndarray) -> np.ndarray:
    return _mix64(language_keys ^ (passes.astype(np.uint64) * np.uint64(_GOLDEN)))


# ---------------------------------------------------------------------------------------------- the sampler
class LanguageSampler:
    """Infinite, seeded, distributed and resumable stream of ``(language, block index)`` draws."""

    def __init__(self, num_blocks: Mapping[str, int], alpha: float = 0.3,
                 oversampling: Mapping[str, float] | None = None, buckets: Mapping[str, str] | None = None,
                 sizes: Mapping[str, float] | None = None, seed: int = 0, rank: int = 0, world_size: int = 1,
                 chunk_size: int = DEFAULT_CHUNK) -> None:
        """Build the sampler.

        Args:
            num_blocks: language -> number of blocks to draw from (block indices are ``0..N_l-1``).
            alpha: temperature exponent of ``p(l) ∝ f_l · n_l ** alpha``.
            oversampling: factors ``f`` keyed by language code or bucket name (> 0).
            buckets: language -> resource bucket, for bucket keys in ``oversampling``.
            sizes: language -> size ``n_l`` used for the probabilities (default: ``num_blocks``).
            seed: seed of the whole stream.
            rank: this process's rank; it gets global positions ``i`` with ``i % world_size == rank``.
            world_size: number of processes sharing the stream.
            chunk_size: positions drawn per vectorised chunk (part of the stream's definition).
        """
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} / world_size {world_size} is not a valid rank layout")
        self.languages = list(num_blocks)
        self.num_blocks = np.array([int(num_blocks[lang]) for lang in self.languages], dtype=np.int64)
        probs = sampling_probabilities(dict(sizes) if sizes is not None else dict(num_blocks), alpha,
                                       oversampling, buckets)
        self.probabilities = np.array([probs[lang] for lang in self.languages], dtype=np.float64)
        self._cdf = np.cumsum(self.probabilities)
        self._cdf[-1] = 1.0
        self.alpha = float(alpha)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.chunk_size = int(chunk_size)
        self.position = 0  # rank-local positions consumed by __iter__ / take
        self._anchor: tuple[int, np.ndarray] = (0, np.zeros(len(self.languages), dtype=np.int64))
        self._language_keys = _language_keys(self.seed, self.languages)
        self._chunk_cache: tuple[int, np.ndarray] = (-1, np.zeros(0, dtype=np.int64))

    def distribution(self) -> dict[str, float]:
        """The target ``p(l)``."""
        return dict(zip(self.languages, self.probabilities.tolist(), strict=True))

    # -------------------------------------------------------------------------------------- pure functions
    def _chunk_languages(self, chunk: int) -> np.ndarray:
        if self._chunk_cache[0] == chunk:
            return self._chunk_cache[1]
        rng = np.random.default_rng([self.seed, _LANG_STREAM, chunk])
        langs = np.searchsorted(self._cdf, rng.random(self.chunk_size), side="right").astype(np.int64)
        self._chunk_cache = (chunk, langs)
        return langs

    def global_languages(self, start: int, stop: int) -> np.ndarray:
        """Language indices drawn at global positions ``[start, stop)``."""
        if stop <= start:
            return np.zeros(0, dtype=np.int64)
        size = self.chunk_size
        parts = []
        for chunk in range(start // size, (stop - 1) // size + 1):
            langs = self._chunk_languages(chunk)
            lo, hi = max(start - chunk * size, 0), min(stop - chunk * size, size)
            parts.append(langs[lo:hi])
        return np.concatenate(parts)

    def _visits_before(self, position: int) -> np.ndarray:
        """How often each language was drawn at global positions ``< position``."""
        anchor_pos, anchor_counts = self._anchor
        if anchor_pos > position:
            anchor_pos, anchor_counts = 0, np.zeros(len(self.languages), dtype=np.int64)
        counts = anchor_counts.copy()
        step = self.chunk_size * 64
        for lo in range(anchor_pos, position, step):
            hi = min(lo + step, position)
            counts += np.bincount(self.global_languages(lo, hi), minlength=len(self.languages))
        self._anchor = (position, counts.copy())
        return counts

    def global_draws(self, start: int, stop: int, stride: int = 1,
                     offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(language index, block index)`` arrays for global positions ``start + offset + k * stride``
        below ``stop`` (``stride=1, offset=0``: every position in ``[start, stop)``)."""
        return self._draws(start, stop, slice(offset, None, stride))

    def global_draws_at(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(language index, block index)`` at the given ascending global positions."""
        positions = np.asarray(positions, dtype=np.int64)
        if not positions.size:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        start = int(positions[0])
        return self._draws(start, int(positions[-1]) + 1, positions - start)

    def _draws(self, start: int, stop: int, pick: slice | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        langs = self.global_languages(start, stop)
        counts = self._visits_before(start)
        # visit number of each position = earlier visits + its rank among equal languages in this range
        order = np.argsort(langs, kind="stable")
        group_start = np.concatenate([[0], np.cumsum(np.bincount(langs, minlength=len(self.languages)))[:-1]])
        within = np.empty_like(langs)
        within[order] = np.arange(langs.size) - group_start[langs[order]]
        self._anchor = (stop, counts + np.bincount(langs, minlength=len(self.languages)))
        langs, visits = langs[pick], counts[langs[pick]] + within[pick]
        sizes = self.num_blocks[langs]
        keys = _pass_keys(self._language_keys[langs], visits // sizes)
        return langs, keyed_permutation(visits % sizes, sizes, keys)

    def draws(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``(language index, block index)`` of this rank's local positions ``[start, start + count)``."""
        if count <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        w = self.world_size
        first = start * w + self.rank
        return self.global_draws(first, first + (count - 1) * w + 1, stride=w)

    def draws_at(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(language index, block index)`` at ascending rank-local positions."""
        return self.global_draws_at(np.asarray(positions, dtype=np.int64) * self.world_size + self.rank)

    # -------------------------------------------------------------------------------------- iteration
    def take(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``count`` local draws, advancing :attr:`position`."""
        out = self.draws(self.position, count)
        self.position += count
        return out

    def __iter__(self) -> Iterator[tuple[str, int]]:
        """Yield ``(language code, block index)`` forever from :attr:`position` on."""
        while True:
            langs, blocks = self.take(1024)
            for li, block in zip(langs.tolist(), blocks.tolist(), strict=True):
                yield self.languages[li], block

    # -------------------------------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the stream exactly (plain Python types)."""
        global_position = self.position * self.world_size
        return {
            "seed": self.seed,
            "languages": list(self.languages),
            "num_blocks": self.num_blocks.tolist(),
            "probabilities": self.probabilities.tolist(),
            "chunk_size": self.chunk_size,
            "global_position": global_position,
            "visits": self._visits_before(global_position).tolist(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (any world size that divides the saved global position)."""
        check_compatible(state, self.seed, self.languages, self.num_blocks.tolist(), self.probabilities,
                         self.chunk_size)
        global_position = int(state["global_position"])
        if global_position % self.world_size:
            raise XltError(f"sampler state is at global position {global_position}, not a multiple of "
                           f"world size {self.world_size} — resume with the original number of processes")
        self.position = global_position // self.world_size
        if state.get("visits") is not None:
            self._anchor = (global_position, np.asarray(state["visits"], dtype=np.int64))


def check_compatible(state: Mapping[str, Any], seed: int, languages: list[str], num_blocks: list[int],
                     probabilities: np.ndarray, chunk_size: int) -> None:
    """Raise :class:`XltError` if a saved sampler state belongs to a different data configuration."""
    mismatches = []
    if int(state.get("seed", seed)) != seed:
        mismatches.append(f"seed {state['seed']} vs {seed}")
    if list(state.get("languages", languages)) != list(languages):
        mismatches.append(f"languages {state['languages']} vs {languages}")
    if list(state.get("num_blocks", num_blocks)) != list(num_blocks):
        mismatches.append("number of blocks per language (corpus, tokenizer or block_size changed)")
    saved = np.asarray(state.get("probabilities", probabilities), dtype=np.float64)
    if saved.shape != np.shape(probabilities) or not np.allclose(saved, probabilities, rtol=1e-9, atol=0):
        mismatches.append("sampling distribution (alpha or oversampling changed)")
    if int(state.get("chunk_size", chunk_size)) != chunk_size:
        mismatches.append(f"chunk_size {state['chunk_size']} vs {chunk_size}")
    if mismatches:
        raise XltError("checkpoint data state does not match this run: " + "; ".join(mismatches)
                       + " — resume with the same data settings, or start a new run from the weights")
