"""Pruning in ``xlt sweep``: the shipped CPU oversampling study (configs/sweeps/oversampling.yaml) run twice in one
process — without pruning, then with the recipe's multi-objective rule (``DominatedPruner``: a trial dominated by
k=2 completed trials at a validation stops) — with the same study seed, hence the same per-trial sampler and fit
seeds. Printed: trials x training steps run, wall time, and the trial ``xlt sweep best`` picks (lowest tail-bucket
loss on the Pareto front) in each, with its parameters.

Baseline: the same study without pruning (every trial runs all its steps). Target: >= 40 % of training steps saved.

    python benchmarks/sweep_pruning.py                      # 10 trials, 40 steps, validation every 10
    python benchmarks/sweep_pruning.py --trials 6 --steps 20 --every 5   # quicker
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from xlt.lightning_cli import parse_recipe
from xlt.tuning.best import choose
from xlt.tuning.command import spec_from_config, sweep_command
from xlt.tuning.pruning import INTERMEDIATE_PREFIX
from xlt.tuning.study import run_sweep
from xlt.tuning.trial_run import plain_config

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "sweeps" / "oversampling.yaml"


def steps_run(trial: optuna.trial.FrozenTrial, max_steps: int) -> int:
    """Training steps a trial ran: all of them when it completed, up to its last validation when pruned."""
    if trial.state == TrialState.COMPLETE:
        return max_steps
    reported = [int(k.removeprefix(INTERMEDIATE_PREFIX)) for k in trial.user_attrs if k.startswith(INTERMEDIATE_PREFIX)]
    return max(reported, default=0)


def run(name: str, prune: bool, args: argparse.Namespace, root: Path) -> tuple[float, int, FrozenTrial]:
    recipe, options = parse_recipe(
        ["--config", str(CONFIG), "--trainer.max_steps", str(args.steps), "--trainer.val_check_interval",
         str(args.every), "--trainer.logger", "false", "--trainer.default_root_dir", str(root / name)],
        sweep_command, "xlt sweep")
    spec = spec_from_config(options["sweep"])
    pruner = dataclasses.replace(spec.multi_objective_pruner, warmup_steps=args.every) if prune else None
    spec = dataclasses.replace(spec, name=name, storage=f"sqlite:///{root / 'studies.db'}",
                               multi_objective_pruner=pruner)
    start = time.perf_counter()
    study = run_sweep(plain_config(recipe), spec, args.trials)
    wall = time.perf_counter() - start
    assert study is not None
    steps = sum(steps_run(t, args.steps) for t in study.trials)
    best = choose(study, spec.objective_set)
    pruned = sum(t.state == TrialState.PRUNED for t in study.trials)
    values = ", ".join(f"{v:.4f}" for v in best.values)
    params = ", ".join(f"{k.split('.')[-1]}={v:.3g}" for k, v in best.params.items())
    print(f"{name:<10} {len(study.trials)} trials ({pruned} pruned), {steps} steps, wall {wall:6.1f} s; best: trial "
          f"{best.number} (tail, high = {values}; {params})", flush=True)
    return wall, steps, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--every", type=int, default=10, help="validation interval (steps)")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.trials} trials x {args.steps} steps, "
          f"validation every {args.every}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        base_wall, base_steps, base_best = run("no_prune", False, args, Path(tmp))
        wall, steps, best = run("prune", True, args, Path(tmp))
    same = base_best.params == best.params
    print(f"ratio steps pruned / unpruned {steps / base_steps:.3f} ({100 * (1 - steps / base_steps):.0f} % of "
          f"training steps saved; target >= 40 %)")
    print(f"ratio wall pruned / unpruned {wall / base_wall:.3f}")
    print(f"same best trial: {'yes' if same else 'no'}")
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
