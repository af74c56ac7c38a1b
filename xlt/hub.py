"""Telling local paths from Hugging Face hub ids, so that a mistyped path fails at once instead of after the hub
client's network retries (about 45 s offline)."""

from __future__ import annotations

import re
from pathlib import Path

from xlt.errors import XltError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def meant_as_path(source: str) -> bool:
    """Whether a source that does not exist was meant as a local path: it cannot be a hub id (``name`` or
    ``owner/name``), starts with ``.``, ``/`` or ``~``, or its parent is an existing directory (a typo in
    ``runs/<name>``)."""
    if source.startswith((".", "/", "~")) or not _HUB_ID.match(source):
        return True
    parent = Path(source).parent
    return parent != Path(".") and parent.is_dir()


def require_local_or_hub(source: str, what: str) -> None:
    """Raise an :class:`XltError` naming ``what`` when ``source`` does not exist and was meant as a path."""
    if not Path(source).expanduser().exists() and meant_as_path(source):
        raise XltError(f"{what} {source} not found — check the path, or run the step that writes it first")
