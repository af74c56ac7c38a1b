"""Atomic output directories: the old directory stays in place until the new one is."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from xlt import atomic
from xlt.atomic import atomic_dir
from xlt.errors import XltError


def _write(path: Path, text: str) -> None:
    with atomic_dir(path, overwrite=True) as tmp:
        (tmp / "content.txt").write_text(text)


def test_replacing_a_directory_never_leaves_the_path_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "export"
    _write(out, "old")
    seen: list[str] = []
    real_rmtree = shutil.rmtree

    def rmtree_after_swap(path: str | Path, *args: object, **kwargs: object) -> None:
        seen.append((out / "content.txt").read_text())  # when the old copy is deleted, the new one is in place
        real_rmtree(path, *args, **kwargs)

    real_rename = Path.rename
    present_at_rename: list[bool] = []

    def rename(self: Path, target: Path) -> Path:
        present_at_rename.append(out.is_dir())
        return real_rename(self, target)

    monkeypatch.setattr(atomic.shutil, "rmtree", rmtree_after_swap)
    monkeypatch.setattr(Path, "rename", rename)
    _write(out, "new")
    assert seen == ["new"]
    assert all(present_at_rename)  # renaming the old one away first would leave no output between two renames
    assert (out / "content.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary or old copy left


def test_the_linux_swap_is_one_exchange(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not atomic._exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) is unavailable on this platform or file system")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def test_without_exchange_a_failed_move_puts_the_old_directory_back(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "export"
    _write(out, "old")
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if Path(target) == out and ".tmp" in self.name:
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="No space left"):
        _write(out, "new")
    assert (out / "content.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_without_exchange_the_fallback_replaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "export"
    _write(out, "old")
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    _write(out, "new")
    assert (out / "content.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_a_failing_block_leaves_the_old_directory_and_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "export"
    _write(out, "old")
    with pytest.raises(RuntimeError), atomic_dir(out, overwrite=True) as tmp:
        (tmp / "content.txt").write_text("half")
        raise RuntimeError("crash while writing")
    assert (out / "content.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_an_existing_directory_needs_overwrite(tmp_path: Path) -> None:
    _write(tmp_path / "export", "old")
    with pytest.raises(XltError, match="already exists — pass --overwrite"), atomic_dir(tmp_path / "export"):
        pass
