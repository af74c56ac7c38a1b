"""Checkpoint -> Hugging Face export directory (``xlt consolidate``).

A run under ``FSDP2Strategy`` saves sharded checkpoints: a directory with one ``.distcp`` file per rank, the
Distributed Checkpoint ``.metadata`` and Lightning's ``meta.pt`` (loops, hyperparameters, data state). This
module merges the shards with ``torch.distributed.checkpoint.format_utils.dcp_to_torch_save`` (no process group
needed; Lightning's own consolidation tool does not handle these checkpoints), rebuilds the module from the
saved hyperparameters on the meta device, assigns the weights and writes what ``MLMPretraining.export`` writes:
a directory that ``AutoModelForMaskedLM.from_pretrained`` (and ``AutoTokenizer``) load. Plain single-file
Lightning checkpoints are accepted too.

Host memory: the merged file holds weights and optimizer states (about 16 bytes per parameter in fp32); it is
written next to the output directory and memory-mapped, then deleted.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from xlt.errors import XltError
from xlt.models.checkpoints import load_checkpoint, xlt_module_class

METADATA_FILE = "meta.pt"  # Lightning's non-tensor part of a sharded checkpoint
MODEL_PREFIX = "model."  # MLMPretraining keeps the transformers model in ``self.model``


def read_checkpoint(checkpoint: str | Path, scratch_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The LightningModule's full state dict and its saved hyperparameters.

    Args:
        checkpoint: A sharded checkpoint directory or a single-file checkpoint.
        scratch_dir: Where the merged shards are written temporarily.

    Raises:
        XltError: the path does not exist or is not a Lightning checkpoint.
    """
    path = Path(checkpoint)
    if not path.exists():
        raise XltError(f"checkpoint {path} not found — give a checkpoint file or a sharded checkpoint directory")
    if path.is_dir():
        if not (path / ".metadata").is_file() or not (path / METADATA_FILE).is_file():
            raise XltError(f"checkpoint directory {path} has no .metadata or {METADATA_FILE} — give a sharded "
                           "checkpoint saved by FSDP2Strategy (e.g. <root>/checkpoints/last.ckpt)")
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

        meta = load_checkpoint(path / METADATA_FILE, "checkpoint metadata")
        Path(scratch_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=scratch_dir, prefix=".consolidate-") as tmp:
            merged = Path(tmp) / "merged.pt"
            dcp_to_torch_save(path, merged)
            full = load_checkpoint(merged, f"merged shards of {path}", mmap=True)
        state = full.get("state_dict") if isinstance(full, dict) else None
    else:
        meta = load_checkpoint(path, "checkpoint", mmap=True)
        state = meta.get("state_dict") if isinstance(meta, dict) else None
    if not isinstance(state, dict) or not isinstance(meta, dict):
        raise XltError(f"checkpoint {path} has no state_dict — is it a Lightning checkpoint?")
    return state, dict(meta.get("hyper_parameters") or {})


def consolidate(
    checkpoint: str,
    out: str,
    tokenizer: str | None = None,
    model_class: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a Hugging Face export directory (model + tokenizer) from a (sharded) MLM pretraining checkpoint.

    Args:
        checkpoint: Sharded checkpoint directory (FSDP2) or single-file Lightning checkpoint.
        out: Output directory, loadable with ``AutoModelForMaskedLM.from_pretrained``.
        tokenizer: Tokenizer directory to use instead of the one recorded in the checkpoint (e.g. when the run's
            cache moved).
        model_class: The LightningModule class of the checkpoint (default: the class recorded by ``xlt fit``,
            else ``xlt.models.mlm.MLMPretraining``); only xlt's own classes are accepted.
        overwrite: Replace ``out`` if it exists.

    Raises:
        XltError: missing or foreign checkpoint (objects other than plain types, a class outside xlt), existing
            output without ``overwrite``, missing tokenizer.
    """
    out_path = Path(out)
    if out_path.exists() and not overwrite:
        raise XltError(f"output directory {out_path} exists — pass --overwrite true or choose another --out")
    state, hparams = read_checkpoint(checkpoint, out_path.parent)
    if tokenizer is not None:
        hparams["tokenizer"] = tokenizer
    tokenizer_dir = hparams.get("tokenizer")
    if tokenizer_dir is not None and not Path(tokenizer_dir).is_dir():
        raise XltError(f"tokenizer directory {tokenizer_dir} recorded in {checkpoint} not found — pass --tokenizer")
    recorded = hparams.get("_class_path")  # LightningCLI records the model class for load_from_checkpoint
    model_class = model_class or recorded or "xlt.models.mlm.MLMPretraining"
    hparams = {key: value for key, value in hparams.items() if not key.startswith("_")}
    cls = xlt_module_class(model_class, "--model_class" if model_class != recorded else f"checkpoint {checkpoint}")
    hparams.pop("export_dir", None)
    module = cls(**hparams)
    weights = {key[len(MODEL_PREFIX):]: value for key, value in state.items() if key.startswith(MODEL_PREFIX)}
    if not weights:
        raise XltError(f"checkpoint {checkpoint} holds no '{MODEL_PREFIX}*' weights — is it an MLM checkpoint?")
    with torch.device("meta"):
        module.configure_model()
    module.model.load_state_dict(weights, strict=True, assign=True)
    module.model.tie_weights()
    return module.export(out_path)
