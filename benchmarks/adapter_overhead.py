"""Adapter costs: adapter-only vs full fine-tuning steps, inference overhead, routing, optimizer memory.

One masked-LM encoder (XLM-R architecture, 4 layers, d=256, 4 heads, FFN 1024, 8k vocabulary, random weights:
speed does not depend on them), batches of 16 blocks x 128 random tokens (15 % of positions predicted), stepped through
``MLMPretraining.masked_token_losses`` (masked-only LM head; with adapters, rows sorted by language and routed),
AdamW, in one process with the same torch threads:

  full                 HEADLINE baseline: full fine-tuning of the plain model (every weight trains);
  adapters             MAD-X language adapters (reduction 2) + invertible adapter, base and head frozen
                       (``AdapterSetup(train="language_adapters")``): backward still runs through every layer
                       (the invertible adapter sits under layer 0) but skips the frozen weights' gradient GEMMs,
                       so the step should approach 2/3 of full fine-tuning's;
  inference            forward only (``torch.inference_mode``) of the plain model vs adapters at reduction 16
                       and 2 (target: < 10 % at 16);
  routing              adapter training steps on batches mixing 4 languages vs batches of one language, same bank
                       of 4 (target: < 10 %).

Every timed round runs each side once, in an order that rotates from round to round, so machine noise hits all
alike; each ``ratio`` line is the median over rounds of the paired ratio. Optimizer memory is the bytes of AdamW
state after one step.

    python benchmarks/adapter_overhead.py            # 8 rounds
    python benchmarks/adapter_overhead.py --quick    # 3 rounds
    python benchmarks/adapter_overhead.py --threads 1   # every side single-threaded (an oversubscribed machine
                                                        # makes multi-threaded small GEMMs wait on each other)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from xlt.adapters.config import AdapterSetup
from xlt.models.mlm import MLMPretraining
from xlt.models.optimization import adamw_param_groups

LANGUAGES = ["qaa", "qab", "qac", "qad"]
BATCH, LENGTH, VOCAB = 16, 128, 8000


def load_average() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"


CONFIG = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024,
          "vocab_size": VOCAB, "max_position_embeddings": 130}


def variant(reduction: float | None, train: bool = True) -> MLMPretraining:
    """The module (same initial base weights: same seed) with language adapters at ``reduction`` (``None``: none)."""
    adapters = None if reduction is None else AdapterSetup(language_reduction_factor=reduction, invertible=True)
    module = MLMPretraining(config=CONFIG, languages=LANGUAGES, seed=0, adapters=adapters)
    module.configure_model()
    module.model.train(train)
    with torch.no_grad():  # trained-looking adapters (fresh ones are zero, which costs the same)
        for name, parameter in module.model.named_parameters():
            if "xlt_" in name:
                parameter.normal_(0, 0.02)
    return module


def batch(seed: int, mixed: bool) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB - 1, (BATCH, LENGTH), generator=generator)
    labels = torch.where(torch.rand(BATCH, LENGTH, generator=generator) < 0.15, ids, -100)
    lang = torch.arange(BATCH) % len(LANGUAGES) if mixed else torch.zeros(BATCH, dtype=torch.long)
    return {"input_ids": ids, "labels": labels, "lang": lang}


def train_step(module: MLMPretraining, optimizer: torch.optim.Optimizer) -> Callable[[dict], None]:
    def step(data: dict) -> None:
        losses, _ = module.masked_token_losses(data["input_ids"], data["labels"], langs=data["lang"])
        losses.mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def infer_step(module: MLMPretraining) -> Callable[[dict], None]:
    def step(data: dict) -> None:
        with torch.inference_mode():
            if module.adapters is not None:
                module.adapters.route(data["lang"], BATCH, data["input_ids"].device)
            module.model.base_model(input_ids=data["input_ids"])
    return step


def optimizer_bytes(optimizer: torch.optim.Optimizer) -> int:
    return sum(v.numel() * v.element_size() for state in optimizer.state.values() for v in state.values()
               if isinstance(v, torch.Tensor))


def timed(sides: dict[str, tuple[Callable[[dict], None], bool]], rounds: int, warmup: int = 2) -> dict:
    """Per side, the seconds of each timed round (all sides on the same round's batch, rotating order)."""
    names, times = list(sides), {name: [] for name in sides}
    for index in range(warmup + rounds):
        order = names[index % len(names):] + names[:index % len(names)]
        for name in order:
            step, mixed = sides[name]
            data = batch(index, mixed)
            start = time.perf_counter()
            step(data)
            if index >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def ratio(times: dict, side: str, baseline: str, label: str) -> float:
    paired = statistics.median(a / b for a, b in zip(times[side], times[baseline], strict=True))
    print(f"ratio {label}: {paired:.3f}  ({statistics.median(times[side]) * 1e3:.0f} ms vs "
          f"{statistics.median(times[baseline]) * 1e3:.0f} ms median)")
    return paired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 8")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rounds = 3 if args.quick else 8
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}, load average {load_average()}")
    full, adapter2 = variant(None), variant(2)
    full_optimizer = torch.optim.AdamW(adamw_param_groups(full, 0.01), lr=1e-4)
    adapter_optimizer = torch.optim.AdamW(adamw_param_groups(adapter2, 0.01), lr=1e-4)
    train = timed({"full": (train_step(full, full_optimizer), False),
                   "adapters": (train_step(adapter2, adapter_optimizer), False),
                   "adapters-mixed": (train_step(adapter2, adapter_optimizer), True)}, rounds)
    ratio(train, "adapters", "full", "adapter-only step / full fine-tuning step (target ~0.667)")
    ratio(train, "adapters-mixed", "adapters", "routed 4-language batch / one-language batch (target < 1.10)")
    full_bytes, adapter_bytes = optimizer_bytes(full_optimizer), optimizer_bytes(adapter_optimizer)
    print(f"optimizer state: full {full_bytes:,} B, adapter-only {adapter_bytes:,} B "
          f"(ratio adapter-only / full {adapter_bytes / full_bytes:.4f})")
    del full_optimizer, adapter_optimizer
    plain, adapter16 = variant(None, train=False), variant(16, train=False)
    adapter2.model.eval()
    infer = timed({"none": (infer_step(plain), False), "r16": (infer_step(adapter16), False),
                   "r2": (infer_step(adapter2), False)}, rounds * 2)
    ratio(infer, "r16", "none", "inference with adapters at reduction 16 / none (target < 1.10)")
    ratio(infer, "r2", "none", "inference with adapters at reduction 2 / none")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
