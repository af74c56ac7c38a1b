"""Check that every unit's command line parses before any stage runs: the command's own parser, instantiating
nothing and reading no data (a stage's inputs may be another stage's future outputs, so the data and model
checks of ``xlt fit``'s preflight run when the stage itself starts)."""

from __future__ import annotations

import warnings
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser

from xlt.errors import XltError
from xlt.experiments.recipe import LIGHTNING, Recipe, Unit


def _fit_recipe(recipe: Any) -> None:
    """A Lightning command's configs and options (parsed as ``xlt fit`` parses them)."""


def _suite_entry(words: tuple[str, ...]) -> Any:
    from xlt.cli import SUITE_COMMANDS, Group

    entry = SUITE_COMMANDS[words[0]]
    if isinstance(entry, Group):
        entry = entry.commands[words[1]] if len(words) > 1 else entry.default
    return entry


def _without_ckpt_path(args: list[str]) -> list[str]:
    """``--ckpt_path`` belongs to the Lightning subcommand, not to the config the parse-only reader sees."""
    out, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "--ckpt_path":
            skip = i + 1 < len(args)
            continue
        if not arg.startswith("--ckpt_path="):
            out.append(arg)
    return out


def check_unit(recipe: Recipe, unit: Unit) -> None:
    """Raise :class:`XltError` naming the recipe and stage unless the unit's command line parses."""
    from xlt.lightning_cli import parse_recipe

    argv = unit.argv()
    words, args = unit.command, argv[len(unit.command):]
    prog = "xlt " + " ".join(words)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python")
            if words[0] in LIGHTNING:
                parse_recipe(_without_ckpt_path(args), _fit_recipe, prog)
            else:
                entry = _suite_entry(words)
                if entry.recipe:
                    parse_recipe(args, entry.load(), prog)
                else:
                    parser = ArgumentParser(prog=prog, parser_mode="omegaconf", exit_on_error=False)
                    parser.add_argument("--config", action=ActionConfigFile)  # as auto_cli gives every command
                    parser.add_function_arguments(entry.load(), fail_untyped=False)
                    parser.parse_args(args)
    except (ArgumentError, XltError) as error:
        detail = " ".join(str(error).split())
        raise XltError(f"{recipe.path}: stage {unit.name}: `{prog}` rejects its configs/args ({detail[:400]}) — "
                       "fix the stage's configs or args in the recipe") from error


def check_recipe(recipe: Recipe) -> None:
    """Check one unit of each stage per distinct config list (see :func:`check_unit`): units that differ only in
    matrix values share option keys and types, and a parse costs a second or two."""
    seen: set[tuple] = set()
    for unit in recipe.units:
        signature = (unit.stage, unit.configs)
        if signature not in seen:
            seen.add(signature)
            check_unit(recipe, unit)
