"""Batched all-layer probes: planted labels recovered at their layer only; control tasks; batched == loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xlt.probing.linear import (
    LinearProbe,
    MLPProbe,
    control_labels,
    fit_probes,
    label_distribution,
    sentence_correct,
)


def _planted(n: int, n_classes: int, layer: int, n_layers: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Layer ``layer`` carries the one-hot label (plus noise); every other layer is noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n_classes, (n,), generator=g)
    x = torch.randn(n_layers, n, 12, generator=g)
    x[layer, :, :n_classes] += 8 * torch.nn.functional.one_hot(labels, n_classes).float()
    return x, labels.numpy()


def test_planted_label_is_recovered_at_its_layer_and_chance_elsewhere() -> None:
    x, y = _planted(600, 5, layer=2, n_layers=4, seed=0)
    fitted = fit_probes(LinearProbe(steps=200, lr=0.05), x[:, :400], y[:400], 5, seed=0)
    accuracy = (fitted.predict(x[:, 400:]) == torch.as_tensor(y[400:])).float().mean(dim=1)
    assert accuracy[2] > 0.99
    chance = np.bincount(y[400:]).max() / 200
    assert all(accuracy[i] < chance + 0.1 for i in (0, 1, 3))


def test_control_labels_are_fixed_per_type_seeded_and_follow_the_distribution() -> None:
    types = [f"w{i}" for i in range(4000)]
    labels = control_labels(types + types[:10], np.array([0.6, 0.3, 0.1, 0.0]), seed=1)
    assert np.array_equal(labels[4000:], labels[:10])  # same type, same label
    shares = np.bincount(labels[:4000], minlength=4) / 4000
    assert shares == pytest.approx([0.6, 0.3, 0.1, 0.0], abs=0.03)
    assert np.array_equal(control_labels(types, np.array([0.6, 0.3, 0.1, 0.0]), seed=1), labels[:4000])
    assert not np.array_equal(control_labels(types, np.array([0.6, 0.3, 0.1, 0.0]), seed=2), labels[:4000])
    assert set(control_labels(types[:50], np.array([0.0, 1.0]), seed=0)) == {1}
    assert label_distribution(np.array([0, 0, 1, 3]), 4) == pytest.approx([0.5, 0.25, 0.0, 0.25])


def test_control_accuracy_and_selectivity_match_the_hand_computed_case() -> None:
    """Layer 0 = one-hot UPOS, layer 1 = one-hot word type. Each type has one UPOS; its control label is random.

    A probe on UPOS alone cannot tell types of one tag apart: its best control prediction is each tag group's
    majority control label, so control accuracy = Σ_tag max_label count / N and selectivity = 1 − that. A probe
    on word identity memorises any control labelling: control accuracy 1, selectivity 0.
    """
    rng = np.random.default_rng(0)
    n_types, n_tags = 40, 4
    type_tag = rng.integers(0, n_tags, n_types)
    words = rng.integers(0, n_types, 400)
    tags = type_tag[words]
    names = [f"t{w}" for w in words]
    control = control_labels(names, label_distribution(tags, n_tags), seed=3)
    x = torch.zeros(2, len(words), n_types)
    x[0, np.arange(len(words)), tags] = 1.0
    x[1, np.arange(len(words)), words] = 1.0
    task = fit_probes(LinearProbe(steps=150, lr=0.2), x, tags, n_tags, seed=0)
    ctrl = fit_probes(LinearProbe(steps=150, lr=0.2), x, control, n_tags, seed=0)
    task_acc = (task.predict(x) == torch.as_tensor(tags)).double().mean(1).numpy()
    control_acc = (ctrl.predict(x) == torch.as_tensor(control)).double().mean(1).numpy()
    by_hand = sum(np.bincount(control[tags == t], minlength=n_tags).max() for t in range(n_tags)) / len(words)
    assert by_hand < 0.9  # the case is not degenerate
    assert task_acc == pytest.approx([1.0, 1.0])
    assert control_acc == pytest.approx([by_hand, 1.0])
    assert task_acc - control_acc == pytest.approx([1 - by_hand, 0.0])


@pytest.mark.parametrize("family", [LinearProbe(steps=40, lr=0.05), LinearProbe(rank=3, steps=40, lr=0.05),
                                    MLPProbe(hidden=16, rank=4, steps=40, lr=0.05, weight_decay=1e-3)],
                         ids=["linear", "linear-rank3", "mlp-rank4"])
def test_batched_all_layer_probe_equals_the_per_layer_loop(family) -> None:
    """Same seeds, same solver: parameters agree to 1e-5 and predictions exactly."""
    x, y = _planted(300, 4, layer=1, n_layers=3, seed=1)
    batched = fit_probes(family, x, y, 4, seed=7, batched=True)
    loop = fit_probes(family, x, y, 4, seed=7, batched=False)
    for a, b in zip(batched.params, loop.params, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.equal(batched.predict(x), loop.predict(x))


def test_sentence_correct_counts_per_sentence_and_layer() -> None:
    predictions = torch.tensor([[0, 1, 1, 2, 2], [0, 0, 0, 0, 0]])
    stats = sentence_correct(predictions, np.array([0, 1, 2, 2, 0]), np.array([0, 2, 5]))
    assert stats.tolist() == [[[2, 2], [1, 3]], [[1, 2], [1, 3]]]
