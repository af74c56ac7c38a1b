"""Adapters saved alone: the round trip restores identical outputs; another base, other settings or a changed
file are refused with one-line errors; the fingerprint is of the base encoder's weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_models import LANGUAGES, build_tiny, randomise_adapters, token_ids
from transformers import AutoModelForTokenClassification

from xlt.adapters.config import AdapterSetup
from xlt.adapters.install import check_saved_base, install_adapters
from xlt.adapters.storage import CONFIG_FILE, WEIGHTS_FILE, base_fingerprint, file_fingerprint, read_record
from xlt.errors import XltError


def trained(tmp_path: Path, **setup_args) -> tuple[torch.Tensor, Path]:
    """Logits of a model with random ('trained') language adapters, and the directory they were saved to."""
    model = build_tiny()
    setup = AdapterSetup(**setup_args)
    adapters = install_adapters(model, setup, setup.plan(LANGUAGES, None, 32), LANGUAGES, "tiny-base")
    randomise_adapters(model)
    adapters.route(torch.tensor([0, 1, 2, 1]), 4, torch.device("cpu"))
    written = adapters.save(model, tmp_path / "adapters")
    assert [p.name for p in written] == LANGUAGES
    return model(input_ids=token_ids()).logits, tmp_path / "adapters"


def loaded(load: list[str], seed: int = 0, **setup_args):
    model = build_tiny(seed=seed)
    setup = AdapterSetup(load=load, **setup_args)
    adapters = install_adapters(model, setup, setup.plan(LANGUAGES, None, 32), LANGUAGES, "tiny-base")
    adapters.route(torch.tensor([0, 1, 2, 1]), 4, torch.device("cpu"))
    return model


def test_save_load_round_trip_restores_identical_outputs(tmp_path: Path) -> None:
    expected, directory = trained(tmp_path)
    record = read_record(directory / "qab")
    assert (record.kind, record.name, record.base_model) == ("language", "qab", "tiny-base")
    assert record.shapes["encoder.layer.0.output.xlt_adapters.language.down_weight"] == [16, 32]  # one row
    assert json.loads((directory / "index.json").read_text())["merged"] is False
    assert torch.equal(loaded([str(directory)])(input_ids=token_ids()).logits, expected)
    # one adapter directory at a time works too, and in another bank order
    model = loaded([str(directory / c) for c in ("qac", "qaa", "qab")])
    assert torch.equal(model(input_ids=token_ids()).logits, expected)


def test_fresh_adapters_differ_from_the_loaded_ones(tmp_path: Path) -> None:
    expected, _ = trained(tmp_path)
    assert not torch.allclose(loaded([])(input_ids=token_ids()).logits, expected, atol=1e-3)


def test_an_adapter_of_another_base_is_refused(tmp_path: Path) -> None:
    _, directory = trained(tmp_path)
    with pytest.raises(XltError, match=r"trained on base 'tiny-base', whose weights differ"):
        loaded([str(directory)], seed=5)


def test_other_settings_are_refused(tmp_path: Path) -> None:
    _, directory = trained(tmp_path)
    with pytest.raises(XltError, match="reduction_factor=2.0, this setup has 4.0"):
        loaded([str(directory)], language_reduction_factor=4.0)


def test_a_changed_weights_file_is_refused(tmp_path: Path) -> None:
    _, directory = trained(tmp_path)
    with (directory / "qab" / WEIGHTS_FILE).open("r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x00\x80\x3f")
    with pytest.raises(XltError, match="does not match the hash"):
        loaded([str(directory)])


def test_other_shapes_are_refused(tmp_path: Path) -> None:
    _, directory = trained(tmp_path)
    config = directory / "qaa" / CONFIG_FILE
    raw = json.loads(config.read_text())
    raw["shapes"]["encoder.layer.0.output.xlt_adapters.language.down_weight"] = [8, 32]
    config.write_text(json.dumps(raw))
    with pytest.raises(XltError, match=r"other shapes .*first difference: encoder.layer.0.output.xlt_adapters"):
        loaded([str(directory)])


@pytest.mark.parametrize("bad", ["missing", "empty"])
def test_load_paths_without_adapters_are_refused(tmp_path: Path, bad: str) -> None:
    path = tmp_path / bad
    if bad == "empty":
        path.mkdir()
    with pytest.raises(XltError, match="not found" if bad == "missing" else "holds no saved adapters"):
        AdapterSetup(load=[str(path)]).plan(LANGUAGES, None, 32)


def test_fingerprint_is_the_base_encoders(tmp_path: Path) -> None:
    """The same encoder weights under a task head (fresh pooler/classifier) give the same fingerprint; the file
    fingerprint of an export equals the in-memory one, so the CLI can refuse a base before building the model."""
    mlm = build_tiny()
    tagger = build_tiny(auto_class=AutoModelForTokenClassification, seed=7, num_labels=3)
    tagger.roberta.load_state_dict(mlm.roberta.state_dict(), strict=False)
    assert base_fingerprint(mlm.base_model.named_parameters()) == base_fingerprint(tagger.base_model.named_parameters())
    assert base_fingerprint(build_tiny(seed=1).base_model.named_parameters()) != base_fingerprint(
        mlm.base_model.named_parameters())
    mlm.save_pretrained(tmp_path / "export")
    assert file_fingerprint(tmp_path / "export", "roberta") == base_fingerprint(mlm.base_model.named_parameters())


def test_check_saved_base_refuses_from_files(tmp_path: Path) -> None:
    _, directory = trained(tmp_path)
    build_tiny(seed=0).save_pretrained(tmp_path / "same")
    other = build_tiny(seed=9)
    other.save_pretrained(tmp_path / "other")
    setup = AdapterSetup(load=[str(directory)])
    plan = setup.plan(LANGUAGES, None, 32)
    check_saved_base(plan, str(tmp_path / "same"), other.config)
    with pytest.raises(XltError, match="whose weights differ"):
        check_saved_base(plan, str(tmp_path / "other"), other.config)
