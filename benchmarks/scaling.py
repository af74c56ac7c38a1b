"""Data-parallel scaling on CPU: tokens/s of 1 vs 2 processes (DDP and FSDP2) training the tiny MLM.

Weak scaling, as data parallelism is used: every process trains the same per-process batch (16 blocks x 64
tokens, the ``configs/scale/cpu_tiny.yaml`` shape: XLM-R, 2 layers, d=64, 2 heads, FFN 256, vocabulary 2000),
so W processes train W times the tokens per step. Each configuration runs in its own ``python`` launch through
``lightning.Trainer`` (Lightning spawns the second process; gloo), with ``MLMPretraining.training_step`` and
AdamW, on random token blocks (no corpus preparation in the timing). Every process uses ONE intra-op thread, so
1 process = 1 core and 2 processes = 2 cores; a second baseline is 1 process with 2 threads (both cores).

    scaling efficiency = tokens/s with W processes / (W x tokens/s with 1 process)          (wall clock)
    CPU efficiency     = tokens per CPU-second with W processes / that of 1 process    (work, load-independent)

Step times are measured on rank 0 between consecutive ``on_train_batch_end`` calls after warm-up (they include
the gradient all-reduce / FSDP all-gathers and reduce-scatters and the optimizer step); the median is reported.
Configurations are run ``--repeats`` times in rotating order so that load from other jobs hits all alike.

    python benchmarks/scaling.py            # 40 timed steps, 2 repeats
    python benchmarks/scaling.py --quick    # 15 timed steps, 1 repeat
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPE = dict(vocab_size=2000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
             max_position_embeddings=66, type_vocab_size=1)
BATCH, BLOCK = 16, 64
CONFIGS = {  # name -> (processes, threads per process, strategy)
    "1 proc x 1 thread": (1, 1, "single"),
    "1 proc x 2 threads": (1, 2, "single"),
    "2 procs DDP": (2, 1, "ddp"),
    "2 procs FSDP2": (2, 1, "fsdp"),
}


def worker(args: argparse.Namespace) -> None:
    """One training run (Lightning re-launches this same command for rank 1); rank 0 writes the step times."""
    import torch

    torch.set_num_threads(args.threads)
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, IterableDataset

    from xlt.models.mlm import MLMPretraining

    class RandomBlocks(IterableDataset):
        def __init__(self, seed: int) -> None:
            self.seed = seed

        def __iter__(self):
            rank = int(os.environ.get("LOCAL_RANK", 0))
            generator = torch.Generator().manual_seed(self.seed + rank)
            while True:
                ids = torch.randint(4, SHAPE["vocab_size"] - 1, (BATCH, BLOCK), generator=generator)
                yield {"input_ids": ids, "lang": torch.zeros(BATCH, dtype=torch.long)}

    times: list[tuple[float, float]] = []

    class Timer(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            times.append((time.perf_counter(), time.process_time()))

    if args.strategy == "fsdp":
        from xlt.models.sharding import FSDP2Strategy

        strategy = FSDP2Strategy(param_dtype="fp32", process_group_backend="gloo")
    elif args.strategy == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(process_group_backend="gloo", gradient_as_bucket_view=True)
    else:
        strategy = "auto"
    module = MLMPretraining(config=dict(SHAPE), lr=1e-3, warmup_steps=0, schedule="constant", seed=0,
                            export_dir=str(Path(args.out).with_suffix(".export")))
    trainer = pl.Trainer(accelerator="cpu", devices=args.procs, strategy=strategy, max_steps=args.warmup + args.steps,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, callbacks=[Timer()])
    trainer.fit(module, DataLoader(RandomBlocks(0), batch_size=None))
    timed = times[args.warmup:]
    wall = [b[0] - a[0] for a, b in zip(timed, timed[1:], strict=False)]
    cpu = [b[1] - a[1] for a, b in zip(timed, timed[1:], strict=False)]
    Path(f"{args.out}.rank{trainer.global_rank}").write_text(json.dumps({"wall": wall, "cpu": cpu}))


def run_config(name: str, steps: int, warmup: int, tmp: Path) -> tuple[float, float]:
    """``(tokens/s, tokens per CPU-second)`` of one configuration, all processes together, in a fresh launch.

    Wall time: rank 0's median step. CPU time: the sum over ranks of each rank's median CPU time per step
    (``time.process_time``, all threads of the process) — work done, whatever other jobs on the machine do.
    """
    procs, threads, strategy = CONFIGS[name]
    out = tmp / f"{strategy}-{procs}-{threads}-{time.monotonic_ns()}.json"
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--procs", str(procs), "--threads",
               str(threads), "--strategy", strategy, "--steps", str(steps), "--warmup", str(warmup), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-3000:]}")
    ranks = [json.loads(Path(f"{out}.rank{r}").read_text()) for r in range(procs)]
    tokens = procs * BATCH * BLOCK
    return tokens / statistics.median(ranks[0]["wall"]), tokens / sum(statistics.median(r["cpu"]) for r in ranks)


def main() -> None:
    """Run every configuration, print tokens/s and the scaling efficiency vs 1 process x 1 thread."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="15 timed steps, 1 repeat")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration (rotating order)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--procs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="single", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.steps, args.repeats = 15, 1
    names = list(CONFIGS)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            order = names[repeat % len(names):] + names[:repeat % len(names)]
            for name in order:
                results[name].append(run_config(name, args.steps, args.warmup, Path(tmp)))
                wall, cpu = results[name][-1]
                print(f"  run {repeat + 1}: {name:<20} {wall:9.0f} tokens/s {cpu:9.0f} tokens/CPU-s", flush=True)
    load_after = os.getloadavg()[0]
    import torch

    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"load average {load_before:.1f} -> {load_after:.1f}")
    print(f"tiny MLM: {SHAPE['num_hidden_layers']} layers, d={SHAPE['hidden_size']}, vocabulary "
          f"{SHAPE['vocab_size']}; {BATCH} x {BLOCK} tokens per process per step; {args.steps} timed steps x "
          f"{args.repeats} runs (medians per run; best run shown)\n")
    wall_base = max(w for w, _ in results["1 proc x 1 thread"])
    cpu_base = max(c for _, c in results["1 proc x 1 thread"])
    print(f"{'configuration':<22}{'tokens/s':>10}{'vs 1x1':>8}{'scaling eff.':>14}{'tokens/CPU-s':>14}{'CPU eff.':>10}")
    for name in names:
        procs = CONFIGS[name][0]
        wall, cpu = max(w for w, _ in results[name]), max(c for _, c in results[name])
        print(f"{name:<22}{wall:10.0f}{wall / wall_base:7.2f}x{100 * wall / (procs * wall_base):13.0f}%"
              f"{cpu:14.0f}{100 * cpu / cpu_base:9.0f}%")
    print("\nscaling eff. = tokens/s / (processes x tokens/s of 1 proc x 1 thread): wall clock, includes waiting "
          "for other jobs' CPU use; CPU eff. = tokens per CPU-second relative to 1 proc x 1 thread: work added by "
          "parallelism (collectives, sharding bookkeeping), independent of machine load.")

if __name__ == "__main__":
    main()
