"""Adapters saved alone: ``adapter.safetensors`` + ``adapter.json`` per adapter, loaded back with checks.

A language adapter trained once is reused across tasks, so it travels without its base model. Its JSON names
the base model and carries a fingerprint of the base's weights (SHA-256 over the base encoder's floating-point
tensors, pooler excluded: task models add a fresh one) and the SHA-256 of the adapter file; loading refuses an
adapter of another base, of other shapes, or whose file does not match its hash, with a one-line ``XltError``.

File keys are the model's parameter names relative to the base encoder, with the bank row removed: a language
adapter holds one row of every language bank (``encoder.layer.0.output.xlt_adapters.language.down_weight``
``[r, d]``), of the invertible coupling (``embeddings.xlt_invertible.bank.f.down_weight``) and its copies of the
lower layers (``encoder.layer.0.xlt_language_layers.copy.attention.self.query.weight``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from xlt.adapters.bottleneck import SITE_NAME
from xlt.adapters.invertible import INVERTIBLE_NAME
from xlt.adapters.routing import LAYERS_NAME
from xlt.atomic import atomic_dir
from xlt.errors import XltError

WEIGHTS_FILE = "adapter.safetensors"
CONFIG_FILE = "adapter.json"
FORMAT_VERSION = 1


def is_adapter_key(name: str) -> bool:
    """Whether a parameter / state-dict name belongs to an inserted adapter rather than the base model."""
    return any(f"{marker}." in name for marker in (SITE_NAME, INVERTIBLE_NAME, LAYERS_NAME))


@dataclass(frozen=True)
class AdapterRecord:
    """What ``adapter.json`` says about one saved adapter.

    Attributes:
        kind: ``language`` or ``task``.
        name: The language code (language adapters) or the task name.
        base_model: The encoder the adapter was trained on (as given in the config).
        base_fingerprint: :func:`base_fingerprint` of that encoder's weights.
        weights_sha256: SHA-256 of ``adapter.safetensors``.
        shapes: Parameter name -> shape, as in the file.
        settings: The adapter settings it was built with (sites, placement, reduction factors ...).
    """

    kind: str
    name: str
    base_model: str
    base_fingerprint: str
    weights_sha256: str
    shapes: dict[str, list[int]]
    settings: dict[str, Any]


def base_fingerprint(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 over the base encoder's floating-point tensors (names relative to the base; adapters and pooler
    left out), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        if is_adapter_key(name) or name.startswith("pooler.") or not tensor.is_floating_point():
            continue
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{data.dtype}:{list(tensor.shape)};".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def relative_to_base(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of a model's state dict under its base model (``prefix`` = ``base_model_prefix``), renamed
    relative to it."""
    start = f"{prefix}."
    return {key[len(start):]: value for key, value in state.items() if key.startswith(start)}


def file_fingerprint(directory: Path, prefix: str) -> str | None:
    """:func:`base_fingerprint` of a ``save_pretrained`` directory's safetensors weights, without building the
    model; ``None`` when it holds no safetensors files."""
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        tensors.update(load_file(file))
    base = relative_to_base(tensors, prefix)
    return base_fingerprint((base or tensors).items())  # a bare AutoModel export has no prefix


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_adapter(directory: str | Path, tensors: Mapping[str, torch.Tensor], *, kind: str, name: str,
                 base_model: str, fingerprint: str, settings: Mapping[str, Any]) -> Path:
    """Write one adapter (weights + JSON) to ``directory`` atomically, replacing it."""
    directory = Path(directory)
    weights = {key: value.detach().cpu().contiguous().clone() for key, value in tensors.items()}
    with atomic_dir(directory, overwrite=True) as tmp:
        save_file(weights, tmp / WEIGHTS_FILE)
        record = AdapterRecord(kind=kind, name=name, base_model=base_model, base_fingerprint=fingerprint,
                               weights_sha256=_sha256(tmp / WEIGHTS_FILE),
                               shapes={key: list(value.shape) for key, value in sorted(weights.items())},
                               settings=dict(settings))
        (tmp / CONFIG_FILE).write_text(json.dumps({"format": FORMAT_VERSION, **asdict(record)}, indent=2) + "\n")
    return directory


def read_record(directory: Path) -> AdapterRecord:
    """The record of the adapter saved in ``directory``; an ``XltError`` if it is not a readable one."""
    config = directory / CONFIG_FILE
    if not config.is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise XltError(f"model.adapters.load: {directory} holds no {CONFIG_FILE} + {WEIGHTS_FILE} — pass a "
                       "directory written by an adapter run (<export>/adapters/<name>) or its parent")
    try:
        raw = json.loads(config.read_text())
        raw.pop("format", None)
        return AdapterRecord(**raw)
    except (json.JSONDecodeError, TypeError) as error:
        raise XltError(f"model.adapters.load: {config} is not an adapter config ({error}) — save it again") from None


def find_adapters(paths: Iterable[str]) -> list[tuple[Path, AdapterRecord]]:
    """The adapters under ``paths``: each an adapter directory or a directory of adapter directories."""
    found = []
    for entry in paths:
        path = Path(entry)
        if not path.is_dir():
            raise XltError(f"model.adapters.load: {path} not found — check the path")
        if (path / CONFIG_FILE).exists():
            found.append((path, read_record(path)))
            continue
        children = sorted(child for child in path.iterdir() if (child / CONFIG_FILE).exists())
        if not children:
            raise XltError(f"model.adapters.load: {path} holds no saved adapters (*/{CONFIG_FILE}) — check the path")
        found.extend((child, read_record(child)) for child in children)
    return found


def load_adapter_tensors(directory: Path, record: AdapterRecord) -> dict[str, torch.Tensor]:
    """The weights of a saved adapter, after checking them against their recorded hash and shapes."""
    file = directory / WEIGHTS_FILE
    if _sha256(file) != record.weights_sha256:
        raise XltError(f"model.adapters.load: {file} does not match the hash in its {CONFIG_FILE} — it was changed "
                       "or truncated; save the adapter again")
    try:
        with safe_open(file, framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open has no iter
    except SafetensorError as error:
        raise XltError(f"model.adapters.load: {file} is not readable ({error}) — save the adapter again") from None


def check_compatible(directory: Path, record: AdapterRecord, expected: Mapping[str, torch.Size] | None,
                     fingerprint: str | None, base_model: str) -> None:
    """Refuse an adapter trained on another base (``fingerprint``) or of other shapes than ``expected``
    (``None``: either not known yet)."""
    if fingerprint is not None and record.base_fingerprint != fingerprint:
        raise XltError(f"model.adapters.load: {directory} was trained on base {record.base_model!r}, whose weights "
                       f"differ from model.encoder {base_model!r} — load adapters trained on this encoder")
    if expected is None:
        return
    shapes = {key: list(shape) for key, shape in expected.items()}
    if record.shapes != shapes:
        differing = sorted(set(record.shapes) ^ set(shapes)) or sorted(
            key for key in shapes if record.shapes.get(key) != shapes[key])
        raise XltError(f"model.adapters.load: {directory} has other shapes than this model's {record.kind} adapter "
                       f"(first difference: {differing[0]}) — match its settings {record.settings}")
