"""What a run tells the person watching it: plain periodic progress lines where no terminal is attached, and one
summary at the end of ``xlt fit|validate|test`` (results per language, sampling shares, where the outputs are, the
MLflow run and the commands to open it). Rank 0 only."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from xlt.callbacks.tracking import LanguageMixLogger, mlflow_loggers
from xlt.mlflow_store import ui_address


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class PlainProgress(Callback):
    """Plain progress lines where Lightning's progress bar is off (output not a terminal: SLURM, CI, a redirect):
    ``step 100/300  loss 6.61  lr 9.3e-04  1.8 it/s`` every ``every_n_steps`` optimizer steps and one line per
    validation with its macro metric. Does nothing while a progress bar is shown; rank 0 only.

    Args:
        every_n_steps: steps between lines; default ``trainer.log_every_n_steps``, or the multiple of it that gives
            about 20 lines over ``max_steps`` (a long run prints 20 lines, not thousands).
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        self.every_n_steps = every_n_steps
        self._last: tuple[float, int] | None = None

    def _active(self, trainer: Trainer) -> bool:
        return trainer.is_global_zero and trainer.progress_bar_callback is None and not trainer.sanity_checking

    def _interval(self, trainer: Trainer) -> int:
        if self.every_n_steps:
            return max(1, int(self.every_n_steps))
        n = max(1, int(trainer.log_every_n_steps or 1))
        if trainer.max_steps and trainer.max_steps > 20 * n:  # a multiple of log_every_n_steps, ~20 lines a run
            n *= math.ceil(trainer.max_steps / (20 * n))
        return n

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last = (time.perf_counter(), trainer.global_step)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self._active(trainer):
            return
        step = trainer.global_step
        last_step = self._last[1] if self._last else 0
        final = trainer.max_steps is not None and step == trainer.max_steps
        if step == last_step or (step % self._interval(trainer) and not final):
            return
        parts = [f"step {step}/{trainer.max_steps}" if trainer.max_steps and trainer.max_steps > 0
                 else f"step {step}"]
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        loss = _number(loss.detach() if hasattr(loss, "detach") else loss)
        if loss is not None:
            parts.append(f"loss {loss:.3f}")
        if trainer.optimizers:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.1e}")
        now = time.perf_counter()
        if self._last is not None and now > self._last[0]:
            parts.append(f"{(step - last_step) / (now - self._last[0]):.1f} it/s")
        self._last = (now, step)
        print("  ".join(parts), flush=True)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._active(trainer):
            return
        macro = {k: _number(v) for k, v in trainer.callback_metrics.items()
                 if k.startswith("val/") and k.endswith("/macro")}
        shown = "  ".join(f"{k} {v:.4g}" for k, v in sorted(macro.items()) if v is not None)
        print(f"validation at step {trainer.global_step}" + (f"  {shown}" if shown else ""), flush=True)


# ---------------------------------------------------------------------------------------------- the summary
def _mlm_table(trainer: Trainer, pl_module: LightningModule) -> list[str]:
    metrics = trainer.callback_metrics
    codes = list(getattr(pl_module, "languages", None) or getattr(trainer.datamodule, "language_codes", None) or [])
    codes = [c for c in codes if f"val/mlm/loss/{c}" in metrics]
    if not codes:
        return []
    panel = getattr(trainer.datamodule, "panel", None)
    mix = next((cb for cb in trainer.callbacks if isinstance(cb, LanguageMixLogger)), None)
    shares = getattr(mix, "last_shares", None) or {}
    target: dict[str, float] = {}
    if shares and callable(getattr(trainer.datamodule, "sampling_distribution", None)):
        target = trainer.datamodule.sampling_distribution()

    def bucket(code: str) -> str:
        return str(panel.get(code).bucket) if panel is not None and code in panel else ""

    header = f"  {'lang':<6} {'bucket':<8} {'val loss':>9} {'ppl':>9}"
    if shares:
        header += f" {'share':>7} {'target':>7}"
    lines = [f"validation at step {trainer.global_step} (masked LM, held-out blocks):", header]
    for code in codes:
        loss = float(metrics[f"val/mlm/loss/{code}"])
        ppl = _number(metrics.get(f"val/mlm/ppl/{code}"))
        row = f"  {code:<6} {bucket(code):<8} {loss:>9.3f} {ppl if ppl is not None else math.nan:>9.1f}"
        if shares:
            row += f" {shares.get(code, 0.0):>7.1%} {target.get(code, math.nan):>7.1%}"
        lines.append(row)
    macro_loss = _number(metrics.get("val/mlm/loss/macro"))
    macro_ppl = _number(metrics.get("val/mlm/ppl/macro"))
    if macro_loss is not None:
        lines.append(f"  {'macro':<6} {'':<8} {macro_loss:>9.3f} "
                     f"{macro_ppl if macro_ppl is not None else math.nan:>9.1f}")
    if shares:
        lines.append("  share: realised share of training blocks; target: the sampler's p(l)")
    return lines


def _outputs(trainer: Trainer, pl_module: LightningModule, command: str) -> list[str]:
    lines = []
    if command == "fit" and not trainer.interrupted:
        export = getattr(pl_module, "export_path", None)  # MLMPretraining; a task module has only export_dir
        path = Path(export() if callable(export) else getattr(pl_module, "export_dir", None)
                    or Path(trainer.default_root_dir) / "export")
        if path.is_dir():
            lines.append(f"  export       {path}")
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath and Path(callback.dirpath).is_dir():
            named = (f" (last: {Path(callback.last_model_path).name})" if callback.last_model_path
                     else f" (best: {Path(callback.best_model_path).name})" if callback.best_model_path else "")
            lines.append(f"  checkpoints  {callback.dirpath}{named}")
            break
    predictions = getattr(pl_module, "predictions_dir", None)
    if predictions and Path(predictions).is_dir():
        lines.append(f"  predictions  {predictions}")
    return lines


def _mlflow(trainer: Trainer) -> list[str]:
    lines = []
    for logger in mlflow_loggers(trainer):
        if not logger._initialized or logger._run_id is None:
            continue
        uri = logger._tracking_uri
        lines += [f"  MLflow       experiment '{logger._experiment_name}' (id {logger._experiment_id}), "
                  f"run {logger._run_id}",
                  f"  open it      mlflow ui --backend-store-uri {uri}",
                  f"               then {ui_address(str(logger._experiment_id), str(logger._run_id))}"]
    return lines


def run_summary(trainer: Trainer, pl_module: LightningModule, command: str) -> str:
    """The end-of-run summary of ``xlt <command>`` as text (empty off rank 0)."""
    if not trainer.is_global_zero:
        return ""
    lines = [f"xlt {command}: " + ("interrupted" if trainer.interrupted else "done")
             + f" after {trainer.global_step} steps" * (command == "fit")]
    if command in ("fit", "validate"):
        lines += _mlm_table(trainer, pl_module)
    where = _outputs(trainer, pl_module, command) + _mlflow(trainer)
    if where:
        lines += ["outputs:", *where]
    return "\n".join(lines)


def print_run_summary(trainer: Trainer, pl_module: LightningModule, command: str) -> None:
    """Print :func:`run_summary` (rank 0 only), after a blank line."""
    text = run_summary(trainer, pl_module, command)
    if text:
        print("\n" + text, flush=True)
