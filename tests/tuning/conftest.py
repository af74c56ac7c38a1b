"""A sweep over a tiny MLM recipe (hidden 32, 2 layers, 4 steps, validation every 2) on the small synthetic panel."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 66, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
TRADE_OFF = [{"name": "tail_loss", "metric": "val/mlm/loss/{lang}", "bucket": "tail"},
             {"name": "high_loss", "metric": "val/mlm/loss/{lang}", "bucket": "high"}]
SPACE = {"data.init_args.alpha": {"low": 0.1, "high": 1.0},
         "data.init_args.oversampling.tail": {"low": 1.0, "high": 16.0, "log": True}}


@pytest.fixture(scope="session")
def block_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Token and block caches shared by the session's sweeps (keyed by tokenizer and settings)."""
    return tmp_path_factory.mktemp("sweep_cache")


@pytest.fixture
def write_sweep(tmp_path: Path, synthetic_dir: Path, tiny_tokenizer_dir: Path, mlflow_uri: str, block_cache: Path):
    """``write_sweep(name, sweep=..., trainer=..., model=..., callbacks=...)`` → path of a recipe + sweep YAML."""

    def write(name: str, sweep: dict[str, Any] | None = None, trainer: dict[str, Any] | None = None,
              model: dict[str, Any] | None = None, callbacks: list[dict[str, Any]] | None = None,
              storage: str | None = None) -> Path:
        config = {
            "seed_everything": 0,
            "trainer": {"accelerator": "cpu", "devices": 1, "precision": "32-true", "max_steps": 4,
                        "val_check_interval": 2, "check_val_every_n_epoch": None, "num_sanity_val_steps": 0,
                        "log_every_n_steps": 1, "enable_checkpointing": False, "enable_progress_bar": False,
                        "enable_model_summary": False, "default_root_dir": str(tmp_path / name),
                        "callbacks": callbacks,
                        "logger": {"class_path": "xlt.callbacks.tracking.TrackingLogger",
                                   "init_args": {"experiment_name": f"sweep-{name}", "tracking_uri": mlflow_uri}},
                        **(trainer or {})},
            "model": {"class_path": "xlt.models.mlm.MLMPretraining",
                      "init_args": {"encoder": "xlm-roberta", "config": TINY, "lr": 1e-3, "warmup_steps": 1,
                                    **(model or {})}},
            "data": {"class_path": "xlt.datamodules.corpus.MultilingualCorpusDataModule",
                     "init_args": {"corpus": str(synthetic_dir / "mlm"), "panel": str(synthetic_dir / "panel.yaml"),
                                   "tokenizer": str(tiny_tokenizer_dir), "block_size": 32, "batch_size": 8,
                                   "val_blocks_per_language": 2, "cache_dir": str(block_cache)}},
            "sweep": {"name": name, "storage": storage or f"sqlite:///{tmp_path / f'{name}.db'}",
                      "objectives": TRADE_OFF, "space": SPACE, "heartbeat_interval": 1, "grace_period": 2,
                      **(sweep or {})},
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of its own on a loopback port (Debian's binaries; as user postgres when run as root).

    Skipped where the binaries are absent, unless ``XLT_REQUIRE_POSTGRES=1`` (CI), where that is a failure."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        message = "PostgreSQL server binaries (initdb, pg_ctl) not found — apt-get install postgresql"
        if os.environ.get("XLT_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " (XLT_REQUIRE_POSTGRES=1)")
        pytest.skip(message)
    pytest.importorskip("psycopg", reason="the PostgreSQL driver: pip install 'xlt[postgres]'")
    root = Path(tempfile.mkdtemp(prefix="xlt-postgres-"))  # pytest's own temp dirs are closed to other users
    data = root / "data"
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses to run as root
    if as_user:
        shutil.chown(root, "postgres")
    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = partial(subprocess.run, check=True, capture_output=True, text=True, timeout=120)
    run([*as_user, initdb, "-D", str(data), "-U", "xlt", "--auth=trust", "--no-sync"])
    run([*as_user, pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-o",
         f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
    try:
        yield f"postgresql+psycopg://xlt@127.0.0.1:{port}/postgres"
    finally:
        run([*as_user, pg_ctl, "-D", str(data), "-w", "-m", "fast", "stop"])
        shutil.rmtree(root, ignore_errors=True)
