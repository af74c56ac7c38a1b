"""Shared fixtures: real data location, a small synthetic panel, a tiny tokenizer, one MLflow store per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"

# Tests never use the network: a hub lookup fails at once instead of retrying for ~45 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data subsets (``../shared/data`` or ``$XLT_DATA_DIR``); skips when absent, fails in CI."""
    path = Path(os.environ.get("XLT_DATA_DIR", DEFAULT_DATA_DIR))
    if not path.is_dir():
        message = f"real data directory {path} not found (set XLT_DATA_DIR)"
        if os.environ.get("XLT_REQUIRE_DATA") == "1":
            pytest.fail(message + " and XLT_REQUIRE_DATA=1")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic panel (all tasks, all languages), generated once per test session."""
    from xlt.synthetic import generate_panel

    return generate_panel(tmp_path_factory.mktemp("synthetic") / "panel", seed=0, scale=0.05)


@pytest.fixture(scope="session")
def synthetic_mlm_files(synthetic_dir: Path) -> dict[str, Path]:
    """The synthetic panel's MLM text file per language code."""
    return {p.stem: p for p in sorted((synthetic_dir / "mlm").glob("*.txt"))}


@pytest.fixture(scope="session")
def synthetic_mlm_lines(synthetic_mlm_files: dict[str, Path]) -> dict[str, list[str]]:
    """The synthetic panel's non-empty MLM lines per language code."""
    return {code: [t.strip() for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
            for code, path in synthetic_mlm_files.items()}


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(synthetic_mlm_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SentencePiece tokenizer (vocabulary 1000) fitted on the synthetic panel's MLM text."""
    from xlt.tokenization.fit import fit_tokenizer

    out = tmp_path_factory.mktemp("tokenizer") / "tok"
    fit_tokenizer(synthetic_mlm_files, out, vocab_size=1000, seed=0)
    return out


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One migrated SQLite MLflow store shared by the session (migrations cost seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def task_panel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic panel with 150 train / 38 dev / 38 test examples per task and language (few-shot k=100)."""
    from xlt.synthetic import generate_panel

    return generate_panel(tmp_path_factory.mktemp("task_panel") / "panel", seed=0, scale=0.25)


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, with MLflow's default store (``./mlflow.db``) in it: a test of bad input checks
    that nothing at all was written."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return work
