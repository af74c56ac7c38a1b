"""Checks of a parsed ``xlt fit|validate|test|predict`` config, run before anything is written.

LightningCLI instantiates the logger (whose MLflow client creates the SQLite store) in the same pass as the model
and the data module, and data modules write caches (synthetic panel, tokenizer, Arrow files, blocks) in
``prepare_data``. To keep README's promise that bad input ends before anything is written, the CLI first builds
the model and the data module alone, from a copy of the config without logger and callbacks (their constructors
check their own arguments and read no data), then asks the data module to check its inputs (``check_inputs``)
and the model to check itself against the data module (``check_data``). Both hooks are optional, so any
LightningModule / LightningDataModule can be used with ``xlt fit``.
"""

from __future__ import annotations

from typing import Any

from jsonargparse import ArgumentParser, Namespace


def preflight(parser: ArgumentParser, config: Namespace, subcommand: str | None) -> None:
    """Instantiate ``config``'s model and data module without logger or callbacks and run their checks.

    Raises:
        XltError: from the constructors or the checks, naming the key, file or language at fault.
    """
    probe = config.clone()
    prefix = f"{subcommand}." if subcommand else ""
    if probe.get(f"{prefix}trainer") is not None:
        probe[f"{prefix}trainer.logger"] = False  # the logger would create the MLflow store
        probe[f"{prefix}trainer.callbacks"] = None
    instantiated = parser.instantiate_classes(probe)
    section = instantiated.get(subcommand) if subcommand else instantiated
    data: Any = section.get("data")
    model: Any = section.get("model")
    check_inputs = getattr(data, "check_inputs", None)
    if callable(check_inputs):
        check_inputs()
    check_data = getattr(model, "check_data", None)
    if callable(check_data):
        check_data(data)
