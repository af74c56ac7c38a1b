"""Reading checkpoints that users hand to xlt: plain types only, and only xlt's own module classes.

``torch.load(weights_only=False)`` unpickles arbitrary objects, so a crafted ``*.ckpt`` could run code; and a
checkpoint's recorded ``_class_path`` must not make xlt import and instantiate whatever class it names. xlt's
checkpoints hold tensors, numbers, strings, lists and dicts, which ``weights_only=True`` reads.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule

from xlt.errors import XltError

#: the package whose LightningModule classes a checkpoint may name
TRUSTED_PACKAGE = "xlt"


def load_checkpoint(path: str | Path, what: str, mmap: bool = False) -> Any:
    """``torch.load`` of a checkpoint file with ``weights_only=True``, onto the CPU.

    Args:
        path: The file.
        what: How the message names the file (e.g. ``"checkpoint"``, ``"model.encoder checkpoint"``).
        mmap: Memory-map the tensors instead of reading them.

    Raises:
        XltError: the file is unreadable, or holds objects other than plain types (not an xlt checkpoint).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise XltError(f"{what} {path} holds objects other than tensors and plain types ({first[:120]}) — "
                       "xlt loads only its own checkpoints; re-save the weights with `xlt fit`") from None
    except Exception as error:  # noqa: BLE001 - any unreadable file is a user error here
        raise XltError(f"{what} {path} is not a readable torch checkpoint ({type(error).__name__}) — give a "
                       "Lightning .ckpt file of `xlt fit` or a sharded checkpoint directory") from None


def xlt_module_class(class_path: str, where: str) -> type[LightningModule]:
    """The LightningModule class ``class_path`` names, if it is one of xlt's own.

    Args:
        class_path: A dotted path such as ``xlt.models.mlm.MLMPretraining``.
        where: Where the path came from, for the message (e.g. ``"checkpoint run/last.ckpt"``).

    Raises:
        XltError: the path is outside the ``xlt`` package, cannot be imported, or is not a LightningModule.
    """
    module_name, _, class_name = str(class_path).rpartition(".")
    if module_name.split(".")[0] != TRUSTED_PACKAGE:
        raise XltError(f"{where} names the class {class_path!r}, which is not one of xlt's modules — xlt only "
                       "rebuilds its own classes (e.g. xlt.models.mlm.MLMPretraining)")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise XltError(f"{where}: class {class_path!r} cannot be imported — give an xlt LightningModule class "
                       "path such as xlt.models.mlm.MLMPretraining") from None
    if not (isinstance(cls, type) and issubclass(cls, LightningModule)):
        raise XltError(f"{where}: {class_path!r} is not a LightningModule — give an xlt module class path")
    return cls


def mlm_checkpoint(path: str | Path, what: str) -> tuple[Any, dict[str, torch.Tensor]]:
    """The :class:`~xlt.models.mlm.MLMPretraining` module an MLM checkpoint of ``xlt fit`` records (built from its
    hyperparameters; weights not created) and the checkpoint's state dict.

    Args:
        path: the ``*.ckpt`` file.
        what: how the message names the argument (``model.encoder``, ``encoder``).

    Raises:
        XltError: the file is missing, unreadable, not a Lightning checkpoint, or one of another module.
    """
    from xlt.models.mlm import MLMPretraining  # the MLM module reads checkpoints through this module too

    path = Path(path)
    if not path.is_file():
        raise XltError(f"{what} checkpoint {path} not found — check the path")
    checkpoint = load_checkpoint(path, f"{what} checkpoint", mmap=True)
    try:
        hparams = dict(checkpoint["hyper_parameters"])
        state = checkpoint["state_dict"]
    except (KeyError, TypeError) as error:
        raise XltError(f"{what} {path} is not an xlt MLM checkpoint (no {error}) — pass an export directory, a hub "
                       "id or a *.ckpt of `xlt fit`") from None
    recorded = hparams.pop("_class_path", None)
    if recorded is not None and xlt_module_class(recorded, f"{what} {path}") is not MLMPretraining:
        raise XltError(f"{what} {path} is a checkpoint of {recorded}, not of MLM pretraining — pass an MLM "
                       "*.ckpt, or the export directory of a fine-tuned model")
    hparams.pop("_instantiator", None)
    return MLMPretraining(**hparams), state
