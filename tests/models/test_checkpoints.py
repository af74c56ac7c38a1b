"""User-supplied checkpoints are read with ``weights_only=True`` and may name only xlt's own module classes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from xlt.errors import XltError
from xlt.models.checkpoints import load_checkpoint, xlt_module_class
from xlt.models.consolidate import consolidate
from xlt.models.mlm import MLMPretraining
from xlt.models.task import build_task_model


class Payload:
    """Unpickling this object runs ``os.system``: what a crafted checkpoint could do under weights_only=False."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return os.system, (f"touch {self.marker}",)


def _crafted(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"model.w": torch.zeros(1)}, "hyper_parameters": {"lr": 1e-3},
                "extra": Payload(marker)}, path)
    return path


def test_a_checkpoint_with_objects_is_refused_without_running_them(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    checkpoint = _crafted(tmp_path / "evil.ckpt", marker)
    with pytest.raises(XltError, match=r"evil.ckpt holds objects other than tensors and plain types"):
        consolidate(str(checkpoint), str(tmp_path / "out"))
    with pytest.raises(XltError, match=r"model.encoder checkpoint .*evil.ckpt holds objects other than"):
        build_task_model(object, str(checkpoint))
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_naming_a_foreign_class_is_refused(tmp_path: Path) -> None:
    checkpoint = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(1)},
                "hyper_parameters": {"_class_path": "collections.OrderedDict", "lr": 1e-3}}, checkpoint)
    with pytest.raises(XltError, match=r"names the class 'collections.OrderedDict', which is not one of xlt's"):
        consolidate(str(checkpoint), str(tmp_path / "out"))
    with pytest.raises(XltError, match=r"names the class 'collections.OrderedDict'"):
        build_task_model(object, str(checkpoint))
    with pytest.raises(XltError, match=r"--model_class names the class 'builtins.dict'"):
        consolidate(str(checkpoint), str(tmp_path / "out"), model_class="builtins.dict")
    assert not (tmp_path / "out").exists()


def test_only_xlt_lightning_modules_are_accepted() -> None:
    assert xlt_module_class("xlt.models.mlm.MLMPretraining", "test") is MLMPretraining
    with pytest.raises(XltError, match=r"'xlt.errors.XltError' is not a LightningModule"):
        xlt_module_class("xlt.errors.XltError", "test")
    with pytest.raises(XltError, match=r"cannot be imported"):
        xlt_module_class("xlt.models.mlm.NoSuchModule", "test")
    with pytest.raises(XltError, match=r"not one of xlt's modules"):
        xlt_module_class("xltx.models.Module", "test")  # a package named like xlt is not xlt


def test_plain_checkpoints_load(tmp_path: Path) -> None:
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"model.w": torch.arange(3.0)}, "hyper_parameters": {"betas": (0.9, 0.98)},
                "loops": {"fit_loop": {"state": [1, 2]}}}, path)
    loaded = load_checkpoint(path, "checkpoint")
    assert torch.equal(loaded["state_dict"]["model.w"], torch.arange(3.0))
    assert loaded["hyper_parameters"]["betas"] == (0.9, 0.98)
