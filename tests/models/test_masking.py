"""BERT masking: selection rate, 80/10/10 split, specials untouched, labels, determinism."""

from __future__ import annotations

import pytest
import torch

from xlt.models.masking import IGNORE_INDEX, TokenMasker, mask_tokens

VOCAB = 1000
MASK_ID = VOCAB - 1
SPECIALS = [0, 1, 2, 3, MASK_ID]


def corpus(rows: int = 2000, cols: int = 500, seed: int = 0) -> torch.Tensor:
    """Random ids with about 10% special tokens (bos/eos/pad/unk) sprinkled in."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, MASK_ID, (rows, cols), generator=g)
    specials = torch.rand(rows, cols, generator=g) < 0.1
    ids[specials] = torch.randint(0, 4, (int(specials.sum()),), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    return ids


@pytest.fixture(scope="module")
def masked() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids = corpus()
    original = ids.clone()
    out, labels = TokenMasker(VOCAB, MASK_ID, SPECIALS)(ids, torch.Generator().manual_seed(123))
    assert torch.equal(ids, original), "input must not be modified"
    return ids, out, labels


def test_selection_rate_is_mask_prob_of_non_special_positions(masked) -> None:
    ids, _, labels = masked
    non_special = ~torch.isin(ids, torch.tensor(SPECIALS))
    selected = labels != IGNORE_INDEX
    rate = selected.sum().item() / non_special.sum().item()
    assert abs(rate - 0.15) < 0.005


def test_specials_are_never_selected_nor_changed(masked) -> None:
    ids, out, labels = masked
    special = torch.isin(ids, torch.tensor(SPECIALS))
    assert special.sum() > 50_000
    assert (labels[special] == IGNORE_INDEX).all()
    assert torch.equal(out[special], ids[special])


def test_labels_hold_originals_and_unselected_positions_are_unchanged(masked) -> None:
    ids, out, labels = masked
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(out[~selected], ids[~selected])


def test_80_10_10_split_of_selected_positions(masked) -> None:
    ids, out, labels = masked
    selected = labels != IGNORE_INDEX
    n = selected.sum().item()
    to_mask = (out[selected] == MASK_ID).sum().item() / n
    unchanged = (out[selected] == ids[selected]).sum().item() / n
    changed = 1 - to_mask - unchanged
    candidates = VOCAB - len(SPECIALS)
    # a random replacement equals the original with probability 1/candidates
    assert abs(to_mask - 0.8) < 0.01
    assert abs(unchanged - (0.1 + 0.1 / candidates)) < 0.01
    assert abs(changed - 0.1 * (1 - 1 / candidates)) < 0.01


def test_random_replacements_are_uniform_non_special_tokens(masked) -> None:
    ids, out, labels = masked
    replaced = (labels != IGNORE_INDEX) & (out != MASK_ID) & (out != ids)
    tokens = out[replaced]
    assert not torch.isin(tokens, torch.tensor(SPECIALS)).any()
    counts = torch.bincount(tokens, minlength=VOCAB)[4:MASK_ID].float()
    # ~14k draws over 995 ids: mean ~14; every id drawn and none far above a Poisson tail
    assert counts.min() >= 1 and counts.max() <= 3 * counts.mean()


def test_same_generator_seed_gives_same_masking_and_other_seeds_differ() -> None:
    ids = corpus(200, 100)
    a = mask_tokens(
        ids,
        vocab_size=VOCAB,
        mask_id=MASK_ID,
        special_ids=SPECIALS,
        generator=torch.Generator().manual_seed(7),
    )
    b = mask_tokens(
        ids,
        vocab_size=VOCAB,
        mask_id=MASK_ID,
        special_ids=SPECIALS,
        generator=torch.Generator().manual_seed(7),
    )
    c = mask_tokens(
        ids,
        vocab_size=VOCAB,
        mask_id=MASK_ID,
        special_ids=SPECIALS,
        generator=torch.Generator().manual_seed(8),
    )
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_global_rng_is_not_used() -> None:
    ids = corpus(50, 50)
    masker = TokenMasker(VOCAB, MASK_ID, SPECIALS)
    torch.manual_seed(0)
    a = masker(ids, torch.Generator().manual_seed(1))
    torch.manual_seed(99)
    b = masker(ids, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0])


@pytest.mark.parametrize("prob", [0.05, 0.3])
def test_mask_prob_is_configurable(prob: float) -> None:
    ids = torch.randint(4, MASK_ID, (500, 400), generator=torch.Generator().manual_seed(0))
    _, labels = TokenMasker(VOCAB, MASK_ID, SPECIALS, mask_prob=prob)(ids, torch.Generator().manual_seed(0))
    assert abs((labels != IGNORE_INDEX).float().mean().item() - prob) < 0.005


def test_mask_id_is_always_special_and_bad_settings_raise() -> None:
    masker = TokenMasker(10, 9, [0, 1])
    assert masker.special_ids == [0, 1, 9]
    with pytest.raises(ValueError):
        TokenMasker(10, 9, [], mask_prob=1.5)
    with pytest.raises(ValueError):
        TokenMasker(10, 9, [], mask_replace_prob=0.9, random_replace_prob=0.2)
    with pytest.raises(ValueError):
        TokenMasker(10, 10, [])
