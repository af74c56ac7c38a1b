"""MLM pretraining throughput: xlt (packed blocks + masked-only head) vs HF ``run_mlm.py`` (packed, full head).

Three sides train the same encoder shape (XLM-R architecture, 4 layers, d=256, 4 heads, FFN 1024, 32k
vocabulary, sequences up to 128 tokens) for the same number of AdamW steps on the same synthetic corpus, in one
process, with the same torch threads, from the same initial weights:

  xlt                  sentences ``<s> s </s>`` concatenated and cut into 128-token blocks (no padding),
                       ``MLMPretraining.training_step`` (BERT masking 15 %, 80/10/10, re-seeded per step from
                       ``(seed, global_step, rank)``; LM head only at the masked positions), AdamW.
  hf-run_mlm-packed    HEADLINE baseline, what HF's ``examples/pytorch/language-modeling/run_mlm.py`` does by
                       default (no ``--line_by_line``): the same ``<s> s </s>`` stream chunked into the same
                       128-token blocks (``group_texts``), ``DataCollatorForLanguageModeling`` (15 %, 80/10/10),
                       ``XLMRobertaForMaskedLM``'s own loss (LM head on every position), AdamW. Same tokens,
                       same blocks, same steps as xlt.
  hf-padded-sentences  second baseline, ``run_mlm.py --line_by_line``: one ``<s> sentence </s>`` per row,
                       ``DataCollatorForLanguageModeling`` with dynamic padding to the batch's longest sentence,
                       full head; as many sentences per step as give about the same real tokens (~70 % padding).

Corpus: random token sentences with log-normal lengths (median 25 tokens, sigma 0.7, clipped to 5..126, plus 2
specials). After warm-up steps, every timed step k runs all sides on step k's data in an order that rotates and
reverses from step to step (so machine noise hits all alike); the headline is the median over steps of the ratio
of the paired steps' real tokens/s, next to the overall ratio. HF's collation (padding + masking) runs outside the
timed steps, which favours the baselines.

Step numbers: ``training_step`` is driven without a ``lightning.Trainer``; a stub (:class:`StepDriver`) carries
the attributes the module reads, and ``global_step`` is set to the step number before each step, as the fit loop
does, so that every step draws its own masks and dropout. The script checks it: the same batch at two
consecutive steps gets different masks, at the same step the same masks, and no two steps of the run share a mask.

Reported: real tokens/s per side, the ratio xlt / each baseline, and model FLOP/s as a fraction of a large fp32
matmul measured in the same process. Model FLOPs per step (forward + backward = 3 x forward, 2 FLOPs per
multiply-add):
    6 * N_layers * tokens                     dense layer weights (N_layers = parameters of all layers)
  + 12 * L * d * sum_over_tokens(context)     attention scores and weighted values (context = attended length)
  + 6 * (d^2 + d*V) * predicted_positions     LM head transform + vocabulary projection
"Useful" FLOPs count real tokens and the head on masked positions only (context: the block for packed sides,
the sentence for the padded one); "executed" FLOPs count what a side actually computes (padded length, head on
every position for the HF sides). FLOP-model bound of a ratio = the baseline's executed FLOPs per real token /
xlt's useful FLOPs per real token: the ratio if both sides ran at the same FLOP/s. For the packed baseline the
only difference is the head on ~15 % vs 100 % of the positions (~2.5x at 32k vocabulary and d=256). The model
leaves out memory-bound work (softmax / cross-entropy over the [positions, V] logits), so a measured ratio can
exceed it.

    python benchmarks/mlm_throughput.py                  # 16 timed steps per side, 3 warm-up steps
    python benchmarks/mlm_throughput.py --quick          # 6 timed steps, 2 warm-up steps
    python benchmarks/mlm_throughput.py --steps 40 --skip-padded   # more pairs for the headline only
    python benchmarks/mlm_throughput.py --threads 1      # every side single-threaded
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tokenizers import Tokenizer, models
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast, XLMRobertaForMaskedLM

from xlt.models.encoder import count_parameters
from xlt.models.masking import IGNORE_INDEX
from xlt.models.mlm import MLMPretraining
from xlt.models.optimization import adamw_param_groups

VOCAB = 32_000
BLOCK = 128
SHAPE = dict(
    vocab_size=VOCAB,
    hidden_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=1024,
    max_position_embeddings=BLOCK + 2,
    type_vocab_size=1,
)
BOS, PAD, EOS, UNK, MASK = 0, 1, 2, 3, VOCAB - 1
XLT, PACKED, PADDED = "xlt", "hf-run_mlm-packed", "hf-padded-sentences"


@dataclass
class StepDriver:
    """The attributes of a ``lightning.Trainer`` that ``MLMPretraining.training_step`` reads, single process.

    The benchmark sets ``global_step`` before each optimizer step (the number of steps completed so far, as
    Lightning's fit loop counts), so the module's per-step re-seeding of masks and dropout advances.
    """

    global_step: int = 0
    global_rank: int = 0
    world_size: int = 1
    accumulate_grad_batches: int = 1
    optimizers: list = field(default_factory=list)  # empty: the module's learning-rate log is skipped


def sentences(n: int, seed: int) -> list[list[int]]:
    """Random-token sentences; lengths log-normal (median 25, sigma 0.7) clipped to 5..126."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.exp(math.log(25) + 0.7 * torch.randn(n, generator=g)).round().clamp(5, BLOCK - 2).long()
    return [torch.randint(4, MASK, (int(k),), generator=g).tolist() for k in lengths]


def pack(corpus: list[list[int]]) -> torch.Tensor:
    """``<s> sentence </s>`` streams concatenated and cut into BLOCK-token blocks: xlt's packing and, token for
    token, ``run_mlm.py``'s ``group_texts`` (which drops the remainder too)."""
    stream = [t for s in corpus for t in [BOS, *s, EOS]]
    usable = len(stream) // BLOCK * BLOCK
    return torch.tensor(stream[:usable]).view(-1, BLOCK)


def hf_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer with XLM-R's special ids over the synthetic ids (for the collator)."""
    vocab = {f"t{i}": i for i in range(VOCAB)}
    vocab.update({"<s>": BOS, "<pad>": PAD, "</s>": EOS, "<unk>": UNK, "<mask>": MASK})
    for i in (BOS, PAD, EOS, UNK, MASK):
        del vocab[f"t{i}"]
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    assert (tok.pad_token_id, tok.mask_token_id, len(tok)) == (PAD, MASK, VOCAB)
    return tok


def matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large fp32 matmul (best of ``repeats``): the practical peak of this machine."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def flops(n_layers: int, layers: int, d: int, tokens: int, context_sum: int, head_rows: int) -> float:
    """Model FLOPs of one training step (see the module docstring)."""
    return 6 * n_layers * tokens + 12 * layers * d * context_sum + 6 * (d * d + d * VOCAB) * head_rows


def is_special(ids: torch.Tensor) -> torch.Tensor:
    """Positions the masker never selects (``<s> <pad> </s> <unk> <mask>``)."""
    return (ids <= UNK) | (ids == MASK)


def record_masks(module: MLMPretraining) -> list[torch.Tensor]:
    """Wrap ``module.masked_token_losses`` so that the masks ``training_step`` draws are kept (one bool tensor
    per call, positions with a label); returns the list they are appended to."""
    seen: list[torch.Tensor] = []
    original = module.masked_token_losses

    def recording(input_ids: torch.Tensor, labels: torch.Tensor, *args, **kwargs):
        seen.append(labels != IGNORE_INDEX)
        return original(input_ids, labels, *args, **kwargs)

    module.masked_token_losses = recording  # instance attribute: shadows the method for this module only
    return seen


def check_masks_advance(
    module: MLMPretraining, driver: StepDriver, batch: dict[str, torch.Tensor], seen: list[torch.Tensor]
) -> None:
    """The same batch at steps 0, 1, 0 (no optimizer step): masks differ between steps, repeat within one."""
    with torch.no_grad():
        for step in (0, 1, 0):
            driver.global_step = step
            module.training_step(batch, 0)
    first, second, again = seen[-3:]
    assert not torch.equal(first, second), "two consecutive steps drew the same mask: global_step does not advance"
    assert torch.equal(first, again), "the same step drew two different masks: per-step seeding is broken"
    del seen[-3:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=16, help="timed optimizer steps per side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per side before timing")
    parser.add_argument("--tokens-per-step", type=int, default=2048, help="real tokens per step (every side)")
    parser.add_argument("--quick", action="store_true", help="6 timed steps, 2 warm-up steps")
    parser.add_argument("--skip-padded", action="store_true", help=f"leave out {PADDED} (the slowest side)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.steps, args.warmup = 6, 2
    torch.manual_seed(args.seed)
    load_before = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else ["?"] * 3

    steps_total = args.warmup + args.steps
    blocks_per_step = max(1, args.tokens_per_step // BLOCK)
    corpus = sentences(int(steps_total * args.tokens_per_step / 30 * 1.3) + 200, args.seed)
    mean_example = sum(len(s) + 2 for s in corpus) / len(corpus)
    sentences_per_step = max(1, round(blocks_per_step * BLOCK / mean_example))
    packed = pack(corpus)
    assert len(packed) >= steps_total * blocks_per_step, "corpus too small"
    assert len(corpus) >= steps_total * sentences_per_step, "corpus too small"

    # xlt: the module's own training step, driven step by step, AdamW over its parameter groups
    module = MLMPretraining(encoder="xlm-roberta", config=dict(SHAPE), seed=args.seed)
    module.configure_model()
    module.train()
    driver = StepDriver()
    module._trainer = driver  # what Trainer.fit attaches; global_step / global_rank read it
    module.log = lambda *a, **k: None  # no logger connector without a Trainer (as before: log was a no-op)
    seen_masks = record_masks(module)
    adamw = dict(lr=5e-4, betas=(0.9, 0.98), eps=1e-6)
    optimizers = {XLT: torch.optim.AdamW(adamw_param_groups(module, 0.01), **adamw)}
    # HF baselines: same architecture and initial weights, one model each
    baselines: dict[str, torch.nn.Module] = {}
    sides = [XLT, PACKED] + ([] if args.skip_padded else [PADDED])
    for name in sides[1:]:
        baselines[name] = XLMRobertaForMaskedLM(module.hf_config)
        baselines[name].load_state_dict(module.model.state_dict())
        baselines[name].train()
        optimizers[name] = torch.optim.AdamW(adamw_param_groups(baselines[name], 0.01), **adamw)
    collator = DataCollatorForLanguageModeling(hf_tokenizer(), mlm_probability=0.15, seed=args.seed)

    counts = count_parameters(module.model)
    n_layers, layers, d = sum(counts.layers), SHAPE["num_hidden_layers"], SHAPE["hidden_size"]

    def blocks(step: int) -> torch.Tensor:
        return packed[step * blocks_per_step : (step + 1) * blocks_per_step]

    def collate(name: str, step: int) -> tuple[dict[str, torch.Tensor], list[int]]:
        """``run_mlm.py``'s batch for ``step``: packed blocks (group_texts) or one sentence per row."""
        if name == PACKED:
            rows = [row.tolist() for row in blocks(step)]
        else:
            start = step * sentences_per_step
            rows = [[BOS, *s, EOS] for s in corpus[start : start + sentences_per_step]]
        examples = [{"input_ids": r, "attention_mask": [1] * len(r)} for r in rows]
        return collator(examples), [len(r) for r in rows]

    check_masks_advance(module, driver, {"input_ids": blocks(0)}, seen_masks)
    records: dict[str, list[dict[str, float]]] = {name: [] for name in sides}

    def step_xlt(step: int, timed: bool) -> None:
        batch = {"input_ids": blocks(step)}
        driver.global_step = step
        start = time.perf_counter()
        loss = module.training_step(batch, 0)
        loss.backward()
        optimizers[XLT].step()
        optimizers[XLT].zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        if timed:
            tokens = batch["input_ids"].numel()
            masked = int(seen_masks[-1].sum())  # the positions this step's head ran on
            work = flops(n_layers, layers, d, tokens, tokens * BLOCK, masked)
            records[XLT].append(dict(time=elapsed, tokens=tokens, padded=tokens, useful=work, executed=work))

    collated: dict[tuple[str, int], tuple[dict[str, torch.Tensor], list[int]]] = {}

    def step_hf(name: str, step: int, timed: bool) -> None:
        batch, lengths = collated.pop((name, step)) if (name, step) in collated else collate(name, step)
        start = time.perf_counter()
        loss = baselines[name](**batch).loss
        loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        if timed:
            real = int(batch["attention_mask"].sum())
            rows, width = batch["input_ids"].shape
            masked = int((batch["labels"] != IGNORE_INDEX).sum())
            context = rows * BLOCK * BLOCK if name == PACKED else sum(k * k for k in lengths)
            records[name].append(
                dict(
                    time=elapsed,
                    tokens=real,
                    padded=rows * width,
                    useful=flops(n_layers, layers, d, real, context, masked),
                    executed=flops(n_layers, layers, d, rows * width, rows * width * width, rows * width),
                )
            )

    steppers: dict[str, Callable[[int, bool], None]] = {XLT: step_xlt}
    for name in baselines:
        steppers[name] = lambda step, timed, name=name: step_hf(name, step, timed)

    for step in range(args.warmup):
        for name in sides:
            steppers[name](step, False)
    peaks = [matmul_flops()]
    collate_time = 0.0
    for k in range(args.warmup, steps_total):
        start = time.perf_counter()
        for name in baselines:  # collation happens outside the timed steps (timed separately)
            collated[(name, k)] = collate(name, k)
        collate_time += time.perf_counter() - start
        order = sides[k % len(sides) :] + sides[: k % len(sides)]
        for name in order if k % 2 == 0 else order[::-1]:
            steppers[name](k, True)
    peaks.append(matmul_flops())
    peak = max(peaks)
    load_after = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else ["?"] * 3

    masks = seen_masks[-steps_total:]  # one per optimizer step of the run
    assert len(masks) == steps_total
    for k in range(steps_total - 1):  # the masker's draws do not depend on the ids: compare where both may mask
        both = ~is_special(blocks(k)) & ~is_special(blocks(k + 1))
        assert not torch.equal(masks[k] & both, masks[k + 1] & both), f"steps {k} and {k + 1} drew the same mask"

    def total(key: str, entry: str) -> float:
        return sum(r[entry] for r in records[key])

    def rate(key: str) -> float:
        return total(key, "tokens") / total(key, "time")

    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads (all sides); fp32 matmul 2048^3: {peak / 1e9:.1f} GFLOP/s "
        f"(best of before/after: {', '.join(f'{x / 1e9:.0f}' for x in peaks)}); "
        f"load average before {' '.join(load_before)}, after {' '.join(load_after)}"
    )
    print(f"model: XLM-R 4 layers, d=256, vocab {VOCAB}: {counts.total:,} parameters, {n_layers:,} in layers")
    print(
        f"steps: {args.steps} timed (+{args.warmup} warm-up) per side, interleaved; {XLT} and {PACKED}: the same "
        f"{blocks_per_step} blocks x {BLOCK} tokens per step"
        + ("" if args.skip_padded else f"; {PADDED}: {sentences_per_step} sentences (mean {mean_example:.1f} tokens)")
    )
    print(
        f"masks: global_step driven 0..{steps_total - 1}, one mask per step; "
        "consecutive steps differ; the same batch at steps 0, 1, 0: new mask, then the step-0 mask again"
    )
    labels = {XLT: "packed + masked-only head", PACKED: "packed + full head", PADDED: "padded + full head"}
    for key in sides:
        seconds = total(key, "time")
        useful, executed = total(key, "useful") / seconds, total(key, "executed") / seconds
        median_step = statistics.median(r["tokens"] / r["time"] for r in records[key])
        print(
            f"  {key:20s} {labels[key]:26s} {rate(key):7.0f} tokens/s (median step {median_step:7.0f})  "
            f"padding {1 - total(key, 'tokens') / total(key, 'padded'):5.1%}  "
            f"useful {useful / 1e9:5.2f} GFLOP/s = {useful / peak:5.1%} of matmul  "
            f"executed {executed / 1e9:5.2f} GFLOP/s = {executed / peak:5.1%}"
        )
    useful_per_token = total(XLT, "useful") / total(XLT, "tokens")
    for key in sides[1:]:
        paired = [
            (a["tokens"] / a["time"]) / (b["tokens"] / b["time"])
            for a, b in zip(records[XLT], records[key], strict=True)
        ]
        bound = total(key, "executed") / total(key, "tokens") / useful_per_token
        print(
            f"ratio {XLT} / {key}: {statistics.median(paired):.2f}x (FLOP-model bound {bound:.2f}x) real tokens/s, "
            f"median of {len(paired)} paired steps (range {min(paired):.2f}-{max(paired):.2f}); "
            f"{rate(XLT) / rate(key):.2f}x overall"
        )
    print(
        f"HF collation, not timed, would add {collate_time / sum(total(k, 'time') for k in baselines):.1%} "
        "to the baselines' time"
    )


if __name__ == "__main__":
    main()
