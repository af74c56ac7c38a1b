"""xlt's LightningCLI: the parser and hooks behind ``xlt fit|validate|test|predict``, and reading a recipe without
running it (``xlt plan``).

:class:`XltCLI` adds xlt's defaults to LightningCLI (OmegaConf interpolation in config files, unknown keys as
errors, MLflow tracking with the resolved config as an artifact, data→model links, preflight checks before anything
is written). :func:`parse_recipe` parses the same arguments with the same parser but instantiates nothing, and adds
a suite command's own typed options next to them. The ``xlt`` entry point and its command table are in
:mod:`xlt.cli`.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import pkgutil
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from xlt.callbacks.summary import PlainProgress, print_run_summary
from xlt.callbacks.tracking import LanguageMixLogger, ResolvedConfigToMLflow

# Lightning 2.6's own call into torch.utils._pytree warns on every fit; it says nothing about the user's run.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                        category=FutureWarning)


def _not_litlogger_tip(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("💡 Tip: For seamless cloud logging")  # an advert on every fit


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_not_litlogger_tip)


CLASS_PACKAGES = ("xlt.models", "xlt.datamodules", "xlt.callbacks")
"""Packages whose modules are imported before the parser is built: jsonargparse lists the subclasses that exist
at that moment as "known subclasses" in ``xlt fit --help``, so ``--model.help``/``--data.help`` find xlt's."""


def import_xlt_classes() -> None:
    """Import every module of :data:`CLASS_PACKAGES` (xlt's LightningModules, LightningDataModules, callbacks and
    strategies), so help and short class names (``--data UDPOSDataModule``) know them. Only the Lightning
    subcommands pay for it; ``xlt --help`` imports none of this."""
    for package_name in CLASS_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__, f"{package_name}."):
            importlib.import_module(module.name)


def terminal_attached() -> bool:
    """Whether a person watches the output: Lightning's progress bar is on by default only then, since under
    SLURM, CI or a redirect its carriage-return redraws fill the log file."""
    return sys.stdout.isatty() and sys.stderr.isatty()


class XltCLI(LightningCLI):
    """LightningCLI with xlt's defaults: OmegaConf interpolation in config files, unknown keys as
    errors, MLflow tracking with the resolved config as an artifact, and data→model links."""

    def __init__(self, args: Sequence[str] | None = None, run: bool = True, run_subdir: str | None = None,
                 parser_kwargs: dict[str, Any] | None = None) -> None:
        self.run_subdir = run_subdir  # e.g. seed3: one root directory per seed of `--seeds`
        import_xlt_classes()
        super().__init__(
            model_class=LightningModule,
            datamodule_class=LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=ResolvedConfigToMLflow,
            save_config_kwargs={"save_to_log_dir": False},
            trainer_defaults={
                "logger": {"class_path": "xlt.callbacks.tracking.TrackingLogger"},
                "callbacks": [LanguageMixLogger(), PlainProgress()],
                "enable_progress_bar": terminal_attached(),
                # xlt prints trainable / total parameters itself (models.encoder); Lightning's table adds FLOPs
                # and module-mode counts that read as noise in every log
                "enable_model_summary": False,
            },
            parser_kwargs={"parser_mode": "omegaconf", "exit_on_error": False, **(parser_kwargs or {})},
            args=list(args) if args is not None else None,
            run=run,
        )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Checkpoints without an explicit ``dirpath`` go to ``<default_root_dir>/checkpoints``, a stable place
        for ``--ckpt_path last`` (Lightning's default puts them under a new MLflow run id each time). Under
        ``--seeds`` the root, and the model's ``predictions_dir`` / ``export_dir`` when set, get a ``seed<s>``
        sub-directory, so seeds never overwrite each other's outputs."""
        trainer = super().instantiate_trainer(**kwargs)
        if self.run_subdir:
            trainer._default_root_dir = os.path.join(trainer.default_root_dir, self.run_subdir)
            for name in ("predictions_dir", "export_dir"):  # outputs named in the config: one per seed as well
                if getattr(self.model, name, None):
                    setattr(self.model, name, os.path.join(getattr(self.model, name), self.run_subdir))
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
        if getattr(self.model, "test_after_fit", False) and not self.trainer.interrupted:
            best = self.trainer.checkpoint_callback
            use_best = isinstance(best, ModelCheckpoint) and best.monitor is not None and bool(best.best_model_path)
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if use_best else None)
        print_run_summary(self.trainer, self.model, "fit")

    def after_validate(self) -> None:
        """The end-of-run summary (:mod:`xlt.callbacks.summary`)."""
        print_run_summary(self.trainer, self.model, "validate")

    def after_test(self) -> None:
        """The end-of-run summary (:mod:`xlt.callbacks.summary`)."""
        print_run_summary(self.trainer, self.model, "test")

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.language_codes", "model.init_args.languages", apply_on="instantiate")
        parser.link_arguments("data.tokenizer_dir", "model.init_args.tokenizer", apply_on="instantiate")


def parse_recipe(args: Sequence[str], command: Callable[..., Any], prog: str) -> tuple[Namespace, dict[str, Any]]:
    """Read ``xlt fit``-style arguments with :class:`XltCLI`'s parser, instantiating nothing, plus ``command``'s own
    options.

    The recipe is what ``xlt fit`` would run: repeated ``--config`` files composed in order, ``--model.*``,
    ``--data.*`` and ``--trainer.*`` overrides, interpolation and type checks, unknown keys as errors. Every
    parameter of ``command`` after its first (which receives the recipe) becomes a top-level option, typed and
    documented by the function's signature and docstring, so ``<prog> --help`` shows both.

    Args:
        args: The command line after the command's name.
        command: The suite command, ``command(recipe, **options)``.
        prog: Program name for usage and errors (``xlt plan``).

    Returns:
        ``(recipe, options)``: the parsed config without the command's options, and those options.
    """
    recipe_parameter, *own = inspect.signature(command).parameters
    doc = inspect.getdoc(command) or ""

    class RecipeReader(XltCLI):
        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            super().add_arguments_to_parser(parser)
            parser.add_function_arguments(command, skip={recipe_parameter})

        def _set_seed(self) -> None:
            pass

        def before_instantiate_classes(self) -> None:
            pass

        def instantiate_classes(self) -> None:
            pass

        def after_instantiate_classes(self) -> None:
            pass

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python")
        config = RecipeReader(list(args), run=False,
                              parser_kwargs={"prog": prog, "description": doc.split("\n\n")[0]}).config
    options = {name: config.pop(name) for name in own}
    return config, options
