"""Probing overhead: quickstart pretraining with the probing callback at its default schedule vs without; and the
batched all-layer probe vs a per-layer loop of the same solver.

1. ``overhead``: ``xlt fit --config configs/quickstart.yaml`` (baseline) and the same with
   ``--config configs/callbacks/probing.yaml`` (rounds every 100 steps: 3 rounds in 300 steps), in this process,
   one after the other, outputs and MLflow store in a temporary directory (the shared ``runs/cache`` holds the
   synthetic panel, tokenizer and blocks, built before timing by a warm-up fit). Printed: both wall times, the
   overhead as a fraction of the baseline's wall time, and the rounds' own time split into feature extraction
   (forward passes) and probe training/scoring (the round time as a fraction of the probed run's wall time is
   the figure machine noise moves least).
2. ``batched``: UPOS-sized probes (17 classes) on 12-layer, 768-wide features (13 hidden states, ``--words``
   words): ``fit_probes(batched=True)`` — one Adam optimisation over stacked per-layer parameters — vs
   ``fit_probes(batched=False)`` — the same Adam, same steps and initialisation, one layer at a time. Results are
   checked to predict the same (> 99 % of words); the ratio is loop time / batched time, best of ``--repeats``.

    python benchmarks/probing_overhead.py                     # both parts
    python benchmarks/probing_overhead.py --part batched      # the probe speed-up only (a minute)
    python benchmarks/probing_overhead.py --max-steps 150 --every 50   # a shorter pretraining, rounds every 50
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from xlt.callbacks.probing import ProbingCallback
from xlt.lightning_cli import XltCLI
from xlt.probing.linear import LinearProbe, fit_probes

ROOT = Path(__file__).resolve().parents[1]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def fit(tmp: Path, name: str, max_steps: int, probing: bool, every: int) -> tuple[float, ProbingCallback | None]:
    args = ["fit", "--config", str(ROOT / "configs" / "quickstart.yaml")]
    if probing:
        args += ["--config", str(ROOT / "configs" / "callbacks" / "probing.yaml")]
    args += ["--trainer.default_root_dir", str(tmp / name), "--trainer.max_steps", str(max_steps),
             "--trainer.logger.init_args.tracking_uri", f"sqlite:///{tmp / 'mlflow.db'}",
             "--trainer.logger.init_args.run_name", name, "--model.init_args.export_dir", str(tmp / name / "export")]
    start = time.perf_counter()
    cli = XltCLI(args)
    seconds = time.perf_counter() - start
    callbacks = [c for c in cli.trainer.callbacks if isinstance(c, ProbingCallback)]
    if probing and every != callbacks[0].every_n_steps:
        raise SystemExit("--every must match configs/callbacks/probing.yaml's every_n_steps (or edit both)")
    return seconds, (callbacks[0] if callbacks else None)


def overhead(max_steps: int, every: int) -> None:
    with tempfile.TemporaryDirectory(prefix="xlt-probing-bench-") as tmp_name:
        tmp = Path(tmp_name)
        print(f"warm-up fit (fills runs/cache), load average {load_average()}", flush=True)
        fit(tmp, "warmup", 2, probing=False, every=every)
        base, _ = fit(tmp, "baseline", max_steps, probing=False, every=every)
        print(f"baseline   {max_steps} steps: {base:7.1f} s   (load average {load_average()})", flush=True)
        probed, callback = fit(tmp, "probing", max_steps, probing=True, every=every)
        print(f"with probe {max_steps} steps: {probed:7.1f} s   (load average {load_average()})", flush=True)
    rounds = callback.history
    features = sum(r.seconds.get("features", 0.0) for _, r in rounds)
    probes = sum(r.seconds.get("probes", 0.0) + r.seconds.get("attention", 0.0) for _, r in rounds)
    print(f"rounds at steps {[s for s, _ in rounds]}: features {features:.1f} s, probes {probes:.1f} s "
          f"({features / max(features + probes, 1e-9):.0%} / {probes / max(features + probes, 1e-9):.0%})")
    print(f"ratio probed / baseline wall time: {probed / base:.3f}  (overhead {probed / base - 1:+.1%}; target <= 5%)")
    print(f"ratio round time / probed wall time: {(features + probes) / probed:.3f}")


def batched(words: int, steps: int, repeats: int) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(13, words, 768, generator=generator)
    y = torch.randint(0, 17, (words,), generator=generator)
    family = LinearProbe(steps=steps, lr=0.01)
    times = {True: [], False: []}
    results = {}
    for _ in range(repeats):
        for mode in (True, False):
            start = time.perf_counter()
            results[mode] = fit_probes(family, x, y, 17, seed=0, batched=mode)
            times[mode].append(time.perf_counter() - start)
    # float32 matmuls of a batch of 13 and of 1 round differently; Adam's normalised steps carry that into the
    # weights, so the check is on what a probe is for: its predictions
    difference = max(float((a - b).abs().max()) for a, b in zip(results[True].params, results[False].params,
                                                               strict=True))
    agreement = float((results[True].predict(x) == results[False].predict(x)).float().mean())
    assert agreement > 0.99, f"batched and loop probes disagree on {1 - agreement:.1%} of predictions"
    best = {mode: min(t) for mode, t in times.items()}
    print(f"batched all-layer probe: {best[True]:.2f} s; per-layer loop (same Adam, steps, init): {best[False]:.2f} s"
          f"  (13 hidden states x {words} words x 768, {steps} steps, best of {repeats}; load {load_average()})")
    print(f"same predictions on {agreement:.2%} of words; largest weight difference {difference:.1e}")
    print(f"ratio loop / batched: {best[False] / best[True]:.2f}  (target >= 5x at 12 layers)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("all", "overhead", "batched"), default="all")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100, help="the overlay's every_n_steps (checked)")
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {load_average()}")
    if args.part in ("all", "batched"):
        batched(args.words, args.steps, args.repeats)
    if args.part in ("all", "overhead"):
        overhead(args.max_steps, args.every)


if __name__ == "__main__":
    main()
