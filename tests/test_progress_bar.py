"""Lightning's progress bar is on where a terminal is attached and off in logs (SLURM, CI, redirects)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch.callbacks import RichProgressBar

import xlt.lightning_cli
from xlt.lightning_cli import XltCLI

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("config", "attached"), [("quickstart.yaml", True), ("quickstart.yaml", False),
                                                  ("tasks/udpos.yaml", True)])
def test_progress_bar_follows_the_terminal(config: str, attached: bool, tmp_path: Path, mlflow_uri: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xlt.lightning_cli, "terminal_attached", lambda: attached)
    cli = XltCLI(["--config", str(ROOT / "configs" / config), "--trainer.default_root_dir", str(tmp_path),
                  "--trainer.logger.init_args.tracking_uri", mlflow_uri, "--model.init_args.encoder", "xlm-roberta"],
                 run=False)
    assert (cli.trainer.progress_bar_callback is not None) is attached
    if attached:  # a person watches: Lightning's rich bar (Lightning picks it whenever rich is installed)
        assert isinstance(cli.trainer.progress_bar_callback, RichProgressBar)


@pytest.mark.parametrize(("attached", "enabled"), [(True, False), (False, True)])
def test_the_config_overrides_the_terminal_default(attached: bool, enabled: bool, tmp_path: Path, mlflow_uri: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal user can turn the bar off; a log can have it forced on."""
    monkeypatch.setattr(xlt.lightning_cli, "terminal_attached", lambda: attached)
    cli = XltCLI(["--config", str(ROOT / "configs" / "quickstart.yaml"), "--trainer.enable_progress_bar",
                  str(enabled).lower(), "--trainer.default_root_dir", str(tmp_path),
                  "--trainer.logger.init_args.tracking_uri", mlflow_uri], run=False)
    assert (cli.trainer.progress_bar_callback is not None) is enabled
