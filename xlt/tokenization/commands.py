"""``xlt tokenizer fit|audit``: fit a tokenizer directory from a YAML config; audit tokenizers side by side."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from jsonargparse import auto_cli

# subcommand -> (module, function); imported only when used, so one subcommand's imports never break another.
SUBCOMMANDS = {
    "fit": ("xlt.tokenization.fit", "fit_command"),
    "audit": ("xlt.tokenization.audit", "audit_command"),
}


def _load(name: str) -> Callable[..., object]:
    module, function = SUBCOMMANDS[name]
    return getattr(importlib.import_module(module), function)


def tokenizer_command(argv: Sequence[str]) -> None:
    """Dispatch ``xlt tokenizer <fit|audit>``; each subcommand's options come from its function's signature."""
    argv = list(argv)
    if argv and argv[0] == "audit":  # `--tokenizer runs/tok_a runs/tok_d`: space-separated list values
        from xlt.tokenization.audit import audit_argv

        argv = [argv[0], *audit_argv(argv[1:])]
    names = [argv[0]] if argv and argv[0] in SUBCOMMANDS else list(SUBCOMMANDS)
    auto_cli({name: _load(name) for name in names}, args=argv, parser_mode="omegaconf", exit_on_error=False)
