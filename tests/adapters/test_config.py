"""AdapterSetup.plan: bank languages by mode, and the one-line errors for bad setups (checked from configs and
adapter JSON files alone)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from tiny_models import LANGUAGES, build_tiny

from xlt.adapters.config import AdapterSetup
from xlt.adapters.install import install_adapters
from xlt.errors import XltError

PANEL = SimpleNamespace(name="tiny", codes=[*LANGUAGES, "qad"])


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Language adapters for qaa and qab, saved."""
    model = build_tiny()
    setup = AdapterSetup(languages=["qaa", "qab"])
    adapters = install_adapters(model, setup, setup.plan(LANGUAGES, None, 32), LANGUAGES, "tiny")
    out = tmp_path_factory.mktemp("saved") / "adapters"
    adapters.save(model, out)
    return out


def test_bank_languages() -> None:
    assert AdapterSetup().plan(LANGUAGES, PANEL, 32).bank == LANGUAGES  # MLM: every run language
    assert AdapterSetup(languages=["qab"]).plan(LANGUAGES, PANEL, 32).bank == ["qab"]


def test_task_bank_is_the_loaded_adapters_and_source_fallback(saved: Path) -> None:
    setup = AdapterSetup(train="task_adapter", task_adapter=True, load=[str(saved)], fallback="source")
    plan = setup.plan(LANGUAGES, PANEL, 32, source=["qab"], task="ner")
    assert plan.bank == ["qaa", "qab"] and plan.fallback == "qab"
    assert plan.load_language["qaa"][0] == saved / "qaa"


@pytest.mark.parametrize(("setup", "kwargs", "message"), [
    ({"languages": ["qaz"]}, {}, "'qaz' is not in panel tiny"),
    ({"language_reduction_factor": 64}, {}, "language_reduction_factor=64 leaves no bottleneck"),
    ({"invertible_reduction_factor": 17}, {}, "invertible_reduction_factor=17 leaves no bottleneck"),
    ({"fallback": "qad", "languages": ["qaa"]}, {}, "fallback 'qad' has no language adapter"),
    ({"fallback": "source"}, {}, "fallback=source needs a task"),
    ({"task_adapter": True}, {}, "a task adapter belongs to a task module"),
    ({"train": "all", "task_adapter": True}, {"task": "ner", "source": ["qaa"]}, None),
    ({"train": "language_adapters"}, {"task": "ner", "source": ["qaa"]}, "trains by MLM"),
    ({"train": "task_adapter", "task_adapter": True}, {"task": "ner", "source": ["qaa"]},
     "none is loaded for source language 'qaa'"),
])
def test_bad_setups_are_refused(setup: dict, kwargs: dict, message: str | None) -> None:
    if message is None:
        AdapterSetup(**setup).plan(LANGUAGES, PANEL, 32, **kwargs)
        return
    with pytest.raises(XltError, match=message):
        AdapterSetup(**setup).plan(LANGUAGES, PANEL, 32, **kwargs)


@pytest.mark.parametrize(("args", "message"), [
    ({"language_reduction_factor": 0}, "must be > 0"),
    ({"task_reduction_factor": -16}, "must be > 0"),
    ({"train": "task_adapter"}, "task_adapter is false"),
])
def test_bad_arguments_are_refused_at_construction(args: dict, message: str) -> None:
    with pytest.raises(XltError, match=message):
        AdapterSetup(**args)


def test_saved_adapter_errors(saved: Path) -> None:
    narrow = SimpleNamespace(name="narrow", codes=["qab", "qac"])
    with pytest.raises(XltError, match="is an adapter for 'qaa', not in panel narrow"):
        AdapterSetup(load=[str(saved)]).plan(["qab"], narrow, 32)
    with pytest.raises(XltError, match="two adapters for 'qaa'"):
        AdapterSetup(load=[str(saved), str(saved / "qaa")]).plan(LANGUAGES, PANEL, 32)
    with pytest.raises(XltError, match="sites='pfeiffer', this setup has 'houlsby'"):
        AdapterSetup(load=[str(saved)], sites="houlsby").plan(LANGUAGES, PANEL, 32)
    with pytest.raises(XltError, match="'qac' would stay frozen untrained"):
        AdapterSetup(languages=["qaa", "qac"], train="task_adapter", task_adapter=True,
                     load=[str(saved)]).plan(LANGUAGES, PANEL, 32, source=["qaa"], task="ner")


def test_config_round_trip() -> None:
    setup = AdapterSetup(languages=["qaa"], sites="houlsby", load=["x"], fallback="qaa")
    again = AdapterSetup.from_value(setup.config())
    assert again.config() == setup.config() and again.sites == "houlsby"
    assert setup.config()["class_path"] == "xlt.adapters.config.AdapterSetup"
    # plain types only: checkpoints holding the config load with weights_only=True
    assert all(isinstance(v, (str, int, float, bool, list, type(None))) for v in setup.config()["init_args"].values())
