"""The ``xlt`` command: Lightning's fit/validate/test/predict plus the suite's own subcommands.

``xlt fit --config configs/quickstart.yaml`` runs through :class:`XltCLI` (LightningCLI, OmegaConf
interpolation within each config file, MLflow tracking by default). Suite subcommands (``xlt synth``)
are plain functions whose docstrings become their ``--help``. User mistakes end in one line on stderr
and exit code 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from jsonargparse import ArgumentError, auto_cli
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from xlt.callbacks.tracking import LanguageMixLogger, ResolvedConfigToMLflow
from xlt.errors import XltError

LIGHTNING_COMMANDS = {
    "fit": "train a model (MLM pretraining, adapters, task fine-tuning) from composed YAML configs",
    "validate": "run one validation epoch of a model on a datamodule",
    "test": "evaluate a model on a datamodule's test sets",
    "predict": "write a model's predictions for a datamodule",
}


def _synth(argv: Sequence[str]) -> None:
    from xlt.synthetic import synth

    auto_cli(synth, args=list(argv), parser_mode="omegaconf", exit_on_error=False)


def _tokenizer(argv: Sequence[str]) -> None:
    from xlt.tokenization.commands import tokenizer_command

    tokenizer_command(argv)


def _plan(argv: Sequence[str]) -> None:
    from xlt.planning import plan_command

    plan_command(argv)


def _consolidate(argv: Sequence[str]) -> None:
    from xlt.models.consolidate import consolidate

    auto_cli(consolidate, args=list(argv), parser_mode="omegaconf", exit_on_error=False)


def _report(argv: Sequence[str]) -> None:
    from xlt.evaluation.report import report

    auto_cli(report, args=list(argv), parser_mode="omegaconf", exit_on_error=False)


SUITE_COMMANDS: dict[str, tuple[Callable[[Sequence[str]], None], str]] = {
    "synth": (_synth, "generate the synthetic language panel: MLM text and gold data for the six tasks"),
    "tokenizer": (_tokenizer, "fit and audit tokenizers: vocabulary configurations a–d"),
    "plan": (_plan, "parameters and per-GPU memory of a recipe under DDP/FSDP2, without allocating weights"),
    "consolidate": (_consolidate, "sharded (FSDP2) or single-file checkpoint -> Hugging Face export directory"),
    "report": (_report, "the paper's Table 2 (tasks x model configurations, macro scores with CIs) from MLflow runs"),
}


def terminal_attached() -> bool:
    """Whether a person watches the output: Lightning's progress bar is on by default only then, since under
    SLURM, CI or a redirect its carriage-return redraws fill the log file."""
    return sys.stdout.isatty() and sys.stderr.isatty()


class XltCLI(LightningCLI):
    """LightningCLI with xlt's defaults: OmegaConf interpolation in config files, unknown keys as
    errors, MLflow tracking with the resolved config as an artifact, and data→model links."""

    def __init__(self, args: Sequence[str] | None = None, run: bool = True, run_subdir: str | None = None) -> None:
        self.run_subdir = run_subdir  # e.g. seed3: one root directory per seed of `--seeds`
        super().__init__(
            model_class=LightningModule,
            datamodule_class=LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=ResolvedConfigToMLflow,
            save_config_kwargs={"save_to_log_dir": False},
            trainer_defaults={
                "logger": {"class_path": "xlt.callbacks.tracking.TrackingLogger"},
                "callbacks": [LanguageMixLogger()],
                "enable_progress_bar": terminal_attached(),
            },
            parser_kwargs={"parser_mode": "omegaconf", "exit_on_error": False},
            args=list(args) if args is not None else None,
            run=run,
        )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Checkpoints without an explicit ``dirpath`` go to ``<default_root_dir>/checkpoints``, a stable place
        for ``--ckpt_path last`` (Lightning's default puts them under a new MLflow run id each time)."""
        trainer = super().instantiate_trainer(**kwargs)
        if self.run_subdir:
            trainer._default_root_dir = os.path.join(trainer.default_root_dir, self.run_subdir)
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                callback.dirpath = os.path.join(trainer.default_root_dir, "checkpoints")
        return trainer

    def before_instantiate_classes(self) -> None:
        """A task data module without ``tokenizer`` uses the model's encoder (an export directory or hub id);
        then the whole config is checked (:mod:`xlt.preflight`) before any logger, cache or store exists."""
        from xlt.preflight import preflight

        self._default_tokenizer_from_encoder()
        preflight(self.parser, self.config, self.subcommand)

    def _default_tokenizer_from_encoder(self) -> None:
        from xlt.hub import require_local_or_hub
        from xlt.models.encoder import is_model_type

        config = self.config.get(self.subcommand) if self.subcommand else self.config
        data, model = config.get("data"), config.get("model")
        data_args = getattr(data, "init_args", None)
        model_args = getattr(model, "init_args", None)
        if data_args is None or model_args is None or "tokenizer" not in data_args:
            return
        encoder = model_args.get("encoder")
        if data_args.get("tokenizer") is None and encoder and not is_model_type(str(encoder)):
            require_local_or_hub(str(encoder), "model.encoder")
            data_args["tokenizer"] = str(encoder)

    def before_fit(self) -> None:
        """A fit resumed with ``--ckpt_path`` (``last`` or a path) continues the checkpoint's MLflow run."""
        from xlt.callbacks.tracking import continue_checkpoint_runs

        continue_checkpoint_runs(self.trainer, self.config_init[self.subcommand].get("ckpt_path"))

    def after_fit(self) -> None:
        """Task modules with ``test_after_fit`` evaluate on every evaluation language after ``xlt fit``:
        the best checkpoint when a monitored ModelCheckpoint exists, else the final weights."""
        if not getattr(self.model, "test_after_fit", False) or self.trainer.interrupted:
            return
        best = self.trainer.checkpoint_callback
        use_best = isinstance(best, ModelCheckpoint) and best.monitor is not None and bool(best.best_model_path)
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if use_best else None)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.language_codes", "model.init_args.languages", apply_on="instantiate")
        parser.link_arguments("data.tokenizer_dir", "model.init_args.tokenizer", apply_on="instantiate")


def _print_help() -> None:
    width = max(map(len, [*LIGHTNING_COMMANDS, *SUITE_COMMANDS]))
    lines = ["usage: xlt <command> [options]   (xlt <command> --help for its options)", "", "commands:"]
    for name, text in LIGHTNING_COMMANDS.items():
        lines.append(f"  {name:<{width}}  {text}")
    for name, (_, text) in SUITE_COMMANDS.items():
        lines.append(f"  {name:<{width}}  {text}")
    print("\n".join(lines))


_PARSER_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:",
                 "- Expected a <class 'NoneType'>", "Given value")


def _one_line(exc: BaseException) -> str:
    """Fold jsonargparse's multi-line report into one line: the key, the class and the specific complaint."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    parts = [line.lstrip("- ").rstrip(":") for line in lines if not line.startswith(_PARSER_NOISE)]
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
            SUITE_COMMANDS[command][0](args[1:])
        elif command in LIGHTNING_COMMANDS:
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
