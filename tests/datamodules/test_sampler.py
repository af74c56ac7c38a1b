"""LanguageSampler: analytic distribution, empirical frequencies, oversampling, ranks, resume."""

from __future__ import annotations

import numpy as np
import pytest

from xlt.datamodules import sampler as sampler_module
from xlt.datamodules.sampler import LanguageSampler, keyed_permutation, sampling_probabilities
from xlt.errors import XltError

SIZES = {"aaa": 100, "bbb": 10, "ccc": 1}
# alpha = 0.5: weights 10, sqrt(10) = 3.16228, 1; total 14.16228
P_HALF = {"aaa": 10 / 14.162278, "bbb": 3.162278 / 14.162278, "ccc": 1 / 14.162278}


def test_analytic_distribution_hand_computed() -> None:
    p = sampling_probabilities(SIZES, alpha=0.5)
    assert p == pytest.approx(P_HALF, abs=1e-6)
    assert p["aaa"] == pytest.approx(0.706101, abs=1e-6) and p["ccc"] == pytest.approx(0.070610, abs=1e-6)
    assert sampling_probabilities(SIZES, alpha=1.0) == pytest.approx({"aaa": 100 / 111, "bbb": 10 / 111,
                                                                       "ccc": 1 / 111})
    assert sampling_probabilities(SIZES, alpha=0.0) == pytest.approx(dict.fromkeys(SIZES, 1 / 3))
    sampler = LanguageSampler(SIZES, alpha=0.5)
    assert sampler.distribution() == pytest.approx(P_HALF, abs=1e-6)


def test_empirical_frequencies_match_analytic() -> None:
    sampler = LanguageSampler(SIZES, alpha=0.5, seed=3)
    langs, _ = sampler.draws(0, 100_000)
    freq = np.bincount(langs, minlength=3) / 100_000
    for i, code in enumerate(SIZES):
        assert abs(freq[i] - P_HALF[code]) < 0.01


def test_oversampling_doubles_the_odds() -> None:
    buckets = {"aaa": "high", "bbb": "low", "ccc": "tail"}
    base = sampling_probabilities(SIZES, 0.5, buckets=buckets)
    by_code = sampling_probabilities(SIZES, 0.5, oversampling={"ccc": 2.0}, buckets=buckets)
    by_bucket = sampling_probabilities(SIZES, 0.5, oversampling={"tail": 2.0}, buckets=buckets)
    assert by_code == pytest.approx(by_bucket)
    assert by_code["ccc"] / by_code["aaa"] == pytest.approx(2 * base["ccc"] / base["aaa"])
    assert by_code["bbb"] / by_code["aaa"] == pytest.approx(base["bbb"] / base["aaa"])
    # weights 10, 3.16228, 2 -> p(ccc) = 2 / 15.16228
    assert by_code["ccc"] == pytest.approx(2 / 15.162278, abs=1e-6)
    # a language's own factor overrides its bucket's
    both = sampling_probabilities(SIZES, 0.5, oversampling={"tail": 4.0, "ccc": 2.0}, buckets=buckets)
    assert both == pytest.approx(by_code)
    sampler = LanguageSampler(SIZES, alpha=0.5, oversampling={"ccc": 2.0}, seed=1)
    langs, _ = sampler.draws(0, 100_000)
    assert abs(np.mean(langs == 2) - 2 / 15.162278) < 0.01


@pytest.mark.parametrize(("oversampling", "message"), [
    ({"ccc": 0}, "oversampling factor for 'ccc' is 0"),
    ({"tail": -2.0}, "oversampling factor for 'tail' is -2.0"),
    ({"ccc": "lots"}, "oversampling factor for 'ccc'"),
    ({"zzz": 2.0}, "oversampling key 'zzz' is neither a language"),
    ({"huge": 2.0}, "oversampling key 'huge'"),
])
def test_bad_oversampling(oversampling: dict, message: str) -> None:
    with pytest.raises(XltError, match=message):
        LanguageSampler(SIZES, oversampling=oversampling)


def test_bad_sizes_and_alpha() -> None:
    with pytest.raises(XltError, match="alpha -1"):
        sampling_probabilities(SIZES, alpha=-1)
    with pytest.raises(XltError, match="'bbb' has no data"):
        LanguageSampler({"aaa": 5, "bbb": 0})


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 65, 1000])
def test_keyed_permutation_is_a_bijection(n: int) -> None:
    for key in (0, 1, 2**63 + 12345):
        assert sorted(keyed_permutation(np.arange(n), n, key).tolist()) == list(range(n))
    if n >= 7:
        first, second = keyed_permutation(np.arange(n), n, 1), keyed_permutation(np.arange(n), n, 2)
        assert not np.array_equal(first, second)


def test_blocks_without_replacement_reshuffled_each_pass() -> None:
    sampler = LanguageSampler({"aaa": 50, "bbb": 7}, alpha=1.0, seed=5)
    langs, blocks = sampler.draws(0, 20_000)
    for li, n in enumerate((50, 7)):
        visits = blocks[langs == li]
        passes = [visits[k * n:(k + 1) * n] for k in range(len(visits) // n)]
        assert len(passes) >= 3
        assert all(sorted(p.tolist()) == list(range(n)) for p in passes)  # each pass visits every block once
        assert len({tuple(p.tolist()) for p in passes}) > 1  # and the order changes between passes


def test_deterministic_by_seed_and_chunking() -> None:
    one = LanguageSampler(SIZES, seed=7, chunk_size=64)
    langs, blocks = one.draws(0, 1000)
    again = LanguageSampler(SIZES, seed=7, chunk_size=64)
    parts = [again.take(k) for k in (1, 63, 64, 200, 672)]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), langs)
    assert np.array_equal(np.concatenate([p[1] for p in parts]), blocks)
    other = LanguageSampler(SIZES, seed=8, chunk_size=64).draws(0, 1000)
    assert not np.array_equal(other[0], langs)
    # random access equals sequential access, for ranges and for arbitrary positions
    assert np.array_equal(LanguageSampler(SIZES, seed=7, chunk_size=64).draws(500, 100)[1], blocks[500:600])
    picked = np.array([3, 64, 65, 400, 401, 999])
    at = LanguageSampler(SIZES, seed=7, chunk_size=64).draws_at(picked)
    assert np.array_equal(at[0], langs[picked]) and np.array_equal(at[1], blocks[picked])


def test_rank_shares_are_disjoint_and_cover_the_stream() -> None:
    world = 3
    single = LanguageSampler(SIZES, seed=2, chunk_size=128).draws(0, 3000)
    positions = []
    for rank in range(world):
        sampler = LanguageSampler(SIZES, seed=2, rank=rank, world_size=world, chunk_size=128)
        langs, blocks = sampler.draws(0, 1000)
        # local sample j of rank r is global sample j * world + r
        assert np.array_equal(langs, single[0][rank::world])
        assert np.array_equal(blocks, single[1][rank::world])
        positions.append(set(range(rank, 3000, world)))
    assert set.union(*positions) == set(range(3000))
    assert sum(len(p) for p in positions) == 3000


def test_resume_yields_identical_continuation() -> None:
    first = LanguageSampler(SIZES, seed=4, chunk_size=100)
    first.take(1234)
    state = first.state_dict()
    expected = first.take(777)
    resumed = LanguageSampler(SIZES, seed=4, chunk_size=100)
    resumed.load_state_dict(state)
    got = resumed.take(777)
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    # without the cached visit counts the continuation is recomputed from (seed, position) alone
    state_no_visits = {**state, "visits": None}
    fresh = LanguageSampler(SIZES, seed=4, chunk_size=100)
    fresh.load_state_dict(state_no_visits)
    assert np.array_equal(fresh.take(777)[1], expected[1])
    # iteration yields codes and block indices from the resumed position
    it = LanguageSampler(SIZES, seed=4, chunk_size=100)
    it.load_state_dict(state)
    pairs = [pair for _, pair in zip(range(5), it, strict=False)]
    assert pairs == [(list(SIZES)[li], b) for li, b in zip(expected[0][:5].tolist(), expected[1][:5].tolist(),
                                                           strict=True)]


def test_resume_on_a_different_world_size() -> None:
    single = LanguageSampler(SIZES, seed=4)
    single.take(600)
    state = single.state_dict()
    rest = single.draws(600, 400)
    shares = []
    for rank in range(2):
        sampler = LanguageSampler(SIZES, seed=4, rank=rank, world_size=2)
        sampler.load_state_dict(state)
        assert sampler.position == 300
        shares.append(sampler.take(200))
    assert np.array_equal(shares[0][1], rest[1][0::2]) and np.array_equal(shares[1][1], rest[1][1::2])
    with pytest.raises(XltError, match="not a multiple of world size 7"):
        LanguageSampler(SIZES, seed=4, rank=0, world_size=7).load_state_dict(state)


def test_state_from_another_configuration_is_rejected() -> None:
    state = LanguageSampler(SIZES, seed=4).state_dict()
    with pytest.raises(XltError, match="seed 4 vs 5"):
        LanguageSampler(SIZES, seed=5).load_state_dict(state)
    with pytest.raises(XltError, match="sampling distribution"):
        LanguageSampler(SIZES, seed=4, alpha=0.7).load_state_dict(state)
    with pytest.raises(XltError, match="number of blocks"):
        LanguageSampler({**SIZES, "ccc": 2}, seed=4).load_state_dict(state)


def test_skipping_ahead_equals_the_stream_and_permutes_only_the_requested_draws(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``draws(start, n)`` far into the stream equals positions ``start..start+n`` of the stream computed in one
    go, and costs n block permutations plus one vectorised language draw per chunk before ``start`` (nothing is
    replayed draw by draw); continuing from there reuses the visit counts instead of recounting from 0."""
    sizes, chunk, start = {"aaa": 1000, "bbb": 7}, 4096, 200_000  # bbb: ~5000 passes before `start`
    whole_langs, whole_blocks = LanguageSampler(sizes, seed=0, chunk_size=chunk).global_draws(0, start + 20)
    permuted, chunks = [], []
    permute = sampler_module.keyed_permutation
    monkeypatch.setattr(sampler_module, "keyed_permutation",
                        lambda index, n, keys: permuted.append(np.size(index)) or permute(index, n, keys))
    sampler = LanguageSampler(sizes, seed=0, chunk_size=chunk)
    draw_chunk = sampler._chunk_languages
    monkeypatch.setattr(sampler, "_chunk_languages", lambda c: chunks.append(c) or draw_chunk(c))
    langs, blocks = sampler.draws(start, 10)
    assert np.array_equal(langs, whole_langs[start:start + 10]) and 1 in langs
    assert np.array_equal(blocks, whole_blocks[start:start + 10])
    assert permuted == [10]
    assert set(chunks) == set(range(start // chunk + 1)) and len(chunks) <= start // chunk + 3
    permuted.clear()
    chunks.clear()
    langs, blocks = sampler.draws(start + 10, 10)
    assert np.array_equal(blocks, whole_blocks[start + 10:]) and np.array_equal(langs, whole_langs[start + 10:])
    assert permuted == [10] and set(chunks) == {start // chunk}
