"""The ``xlt`` command: Lightning's fit/validate/test/predict plus the suite's own subcommands.

``xlt fit --config configs/quickstart.yaml`` runs through :class:`~xlt.lightning_cli.XltCLI` (LightningCLI, OmegaConf
interpolation within each config file, MLflow tracking by default). Every suite subcommand is a typed function in
:data:`SUITE_COMMANDS` (nested mappings are command groups: ``xlt tokenizer fit``); jsonargparse turns its
signature into options and its docstring into ``--help``. User mistakes end in one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonargparse import ArgumentError, auto_cli

from xlt.errors import XltError

LIGHTNING_COMMANDS = {
    "fit": "train a model (MLM pretraining, adapters, task fine-tuning) from composed YAML configs",
    "validate": "run one validation epoch of a model on a datamodule",
    "test": "evaluate a model on a datamodule's test sets",
    "predict": "write a model's predictions for a datamodule",
}


@dataclass(frozen=True)
class Command:
    """A suite subcommand: a typed function whose parameters are its options (docstring = ``--help``).

    Attributes:
        function: ``module:function``, imported only when the command runs (``xlt --help`` stays fast and one
            command's imports never break another).
        help: The command's line in ``xlt --help``.
        recipe: The function's first parameter receives an ``xlt fit``-style recipe (``--config`` files,
            ``--model.*``/``--data.*``/``--trainer.*``), parsed by LightningCLI's parser; its other parameters
            are options next to the recipe's (:func:`xlt.lightning_cli.parse_recipe`).
    """

    function: str
    help: str
    recipe: bool = False

    def load(self) -> Callable[..., Any]:
        module, _, name = self.function.partition(":")
        return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Group:
    """A command group (``xlt tokenizer fit|audit``): a help line and its subcommands; with ``default``, the group's
    name alone runs that command (``xlt sweep --config …`` next to ``xlt sweep best --config …``)."""

    help: str
    commands: Mapping[str, Command]
    default: Command | None = None


SUITE_COMMANDS: dict[str, Command | Group] = {
    "synth": Command("xlt.synthetic:synth",
                     "generate the synthetic language panel: MLM text and gold data for the six tasks"),
    "tokenizer": Group("fit and audit tokenizers: vocabulary configurations a–d", {
        "fit": Command("xlt.tokenization.fit_command:fit_command",
                       "fit a tokenizer directory in one of the vocabulary configurations a–d"),
        "audit": Command("xlt.tokenization.audit_command:audit_command",
                         "tokenizers side by side: fertility, continued words, UNK/byte fallback, script coverage"),
    }),
    "plan": Command("xlt.planning:plan",
                    "parameters and per-GPU memory of a recipe under DDP/FSDP2, without allocating weights",
                    recipe=True),
    "consolidate": Command("xlt.models.consolidate:consolidate",
                           "sharded (FSDP2) or single-file checkpoint -> Hugging Face export directory"),
    "probe": Command("xlt.probing.command:probe",
                     "layer-wise probing of an encoder: UPOS/relation/structural probes, retrieval, CKA, attention"),
    "report": Command("xlt.evaluation.report:report",
                      "the paper's Table 2 (tasks x model configurations, macro scores with CIs) from MLflow runs"),
    "compare": Command("xlt.evaluation.compare:compare",
                       "paired bootstrap of prediction files: two runs on one test set, or two languages of a "
                       "parallel one, over seeds"),
    "experiment": Group("the paper's claims as recipes of xlt commands: run, plan for a cluster, report", {
        "run": Command("xlt.experiments.command:run",
                       "run an experiment's stages in order (finished stages skipped, interrupted fits resumed)"),
        "plan": Command("xlt.experiments.command:plan",
                        "print an experiment's stage commands in dependency order, in levels of independent units"),
        "report": Command("xlt.experiments.command:report",
                          "the results page: claims, tables, plots and verdicts from the stages' MLflow runs"),
    }),
    "sweep": Group("run or resume an Optuna study over a fit recipe (each trial a fit and an MLflow child run)", {
        "best": Command("xlt.tuning.command:best_command",
                        "print the chosen trial's full fit config as YAML (xlt fit --config accepts it)", recipe=True),
    }, default=Command("xlt.tuning.command:sweep_command", "run or resume the study", recipe=True)),
}


def run_command(entry: Command | Group, args: Sequence[str], prog: str) -> None:
    """Parse ``args`` for one table entry and call its function (a group dispatches on its first argument)."""
    args = list(args)
    if isinstance(entry, Group):
        if args and args[0] in entry.commands:
            run_command(entry.commands[args[0]], args[1:], f"{prog} {args[0]}")
        elif entry.default is not None:
            run_command(entry.default, args, prog)
        else:  # help, or an error naming the valid subcommands
            auto_cli({name: command.load() for name, command in entry.commands.items()}, args=args, prog=prog,
                     description=entry.help, parser_mode="omegaconf", exit_on_error=False)
    elif entry.recipe:
        from xlt.lightning_cli import parse_recipe

        function = entry.load()
        if not args:
            raise XltError(f"{prog} needs a recipe — pass --config <recipe.yaml> (and overlays), as for xlt fit")
        recipe, options = parse_recipe(args, function, prog)
        function(recipe, **options)
    else:
        auto_cli(entry.load(), args=args, prog=prog, parser_mode="omegaconf", exit_on_error=False)


def _help_rows() -> list[tuple[str, str]]:
    rows = list(LIGHTNING_COMMANDS.items())
    for name, entry in SUITE_COMMANDS.items():
        rows.append((name, entry.help))
        if isinstance(entry, Group):
            rows += [(f"{name} {sub}", command.help) for sub, command in entry.commands.items()]
    return rows


def _print_help() -> None:
    rows = _help_rows()
    width = max(len(name) for name, _ in rows)
    lines = ["usage: xlt <command> [options]   (xlt <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in rows]
    print("\n".join(lines))


_PARSER_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:",
                 "- Expected a <class 'NoneType'>", "Given value type")


def _one_line(exc: BaseException) -> str:
    """Fold jsonargparse's multi-line report into one line: the key, the class, the specific complaint and the
    value given."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    parts = [line.lstrip("- ").rstrip(":").replace("Given value: ", "given ", 1) for line in lines
             if not line.startswith(_PARSER_NOISE)]
    return (": ".join(parts) or exc.__class__.__name__) + " — see the command's --help for valid keys and types"


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``xlt`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args or args[0] in ("-h", "--help"):
            _print_help()
            return
        command = args[0]
        if command in SUITE_COMMANDS:
            run_command(SUITE_COMMANDS[command], args[1:], f"xlt {command}")
        elif command in LIGHTNING_COMMANDS:
            from xlt.lightning_cli import XltCLI

            seeds, rest = _split_seeds(args)
            if seeds is None:
                XltCLI(None if argv is None else args)
            else:
                run_seeds(rest, seeds)
        else:
            raise XltError(f"unknown command '{command}' — run 'xlt --help' for the list")
    except Exception as exc:  # noqa: BLE001 - user errors may arrive wrapped by jsonargparse or Lightning
        user_error = _find_user_error(exc)
        if user_error is None:
            raise
        print(f"xlt: error: {user_error}", file=sys.stderr)
        sys.exit(XltError.exit_code)


def _split_seeds(args: list[str]) -> tuple[list[int] | None, list[str]]:
    """Take ``--seeds [1,2,3]`` (or ``--seeds=1,2,3``) out of the arguments."""
    for i, arg in enumerate(args):
        if arg == "--seeds" or arg.startswith("--seeds="):
            value = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            rest = args[:i] + args[i + (1 if "=" in arg else 2):]
            try:
                seeds = [int(v) for v in str(value).strip("[] ").replace(",", " ").split()]
            except ValueError:
                seeds = []
            if not seeds:
                raise XltError(f"--seeds {value!r} is not a list of integers — e.g. --seeds '[1,2,3]'")
            if rest[0] != "fit":
                raise XltError("--seeds runs several fine-tuning runs — use it with `xlt fit`")
            return seeds, rest
    return None, args


def run_seeds(args: list[str], seeds: list[int]) -> None:
    """``xlt fit ... --seeds [s1, s2, ...]``: one run per seed (``seed_everything`` = s; few-shot samples and
    head initialisation follow it), then every test metric's mean ± std over the seeds next to each run's
    bootstrap CI. Each seed is its own MLflow run; ``xlt report`` aggregates them the same way."""
    from xlt.evaluation.disaggregation import across_seeds
    from xlt.lightning_cli import XltCLI

    results: dict[tuple[str, str, str], list[Any]] = {}
    for seed in seeds:
        cli = XltCLI([*args, "--seed_everything", str(seed)], run_subdir=f"seed{seed}")
        for result in getattr(cli.model, "results", []):
            results.setdefault((result.stage, result.task, result.metric), []).append(result)
    for (stage, task, metric), runs in results.items():
        summary = across_seeds(runs)
        print(f"\n{stage}/{task}/{metric} over seeds {seeds}: group, mean ± std, CI of each seed")
        for group, row in summary.items():
            cis = ", ".join(f"[{100 * r.groups[group].low:.1f}, {100 * r.groups[group].high:.1f}]"
                            for r in runs if r.groups[group].low is not None)
            print(f"  {group:<20} {100 * row.mean:5.1f} ± {100 * row.std:4.1f}   {cis}")


def _find_user_error(exc: BaseException) -> str | None:
    """The one-line message of the :class:`XltError` behind ``exc`` (jsonargparse wraps errors raised while it
    instantiates classes), or of a jsonargparse parse error (unknown key, wrong type); ``None`` otherwise."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, XltError):
            return str(cause)
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, ArgumentError):
        return _one_line(exc)
    return None

if __name__ == "__main__":
    main()
