"""MLM pretraining throughput: xlt's packed blocks + masked-only head vs the HF padded-sentence baseline.

Both sides train the same encoder shape (XLM-R architecture, 4 layers, d=256, 4 heads, FFN 1024, 32k
vocabulary, sequences up to 128 tokens) for the same number of AdamW steps on the same synthetic corpus,
in one process, from the same initial weights:

  (A) xlt: sentences packed into 128-token blocks (no padding), ``MLMPretraining.training_step`` (BERT
      masking, LM head only at the ~15% masked positions), AdamW.
  (B) HF baseline: ``XLMRobertaForMaskedLM`` on ``<s> sentence </s>`` examples batched with
      ``DataCollatorForLanguageModeling`` (dynamic padding to the longest sentence of the batch, 15%
      masking), the model's own loss (LM head on every position), AdamW.

Batch sizes are chosen so both see about the same number of real (non-padding) tokens per step. The corpus is
random token sentences with log-normal lengths (median 25 tokens, sigma 0.7, clipped to 5..126, plus 2
specials). After warm-up steps, timing alternates A and B step by step (A B, B A, A B ...) so machine noise
hits both alike; the headline is the median over steps of the ratio of paired steps' tokens/s, next to the
overall ratio. B's collation (padding + masking) runs outside its timed steps, which favours the baseline.

Reported: real tokens/s for each and the ratio A/B; model FLOP/s as a fraction of a large fp32 matmul measured
in the same process. Model FLOPs per step (forward + backward = 3 x forward, 2 FLOPs per multiply-add):
    6 * N_layers * tokens                     dense layer weights (N_layers = parameters of all layers)
  + 12 * L * d * sum_over_tokens(context)     attention scores and weighted values (context = attended length)
  + 6 * (d^2 + d*V) * predicted_positions     LM head transform + vocabulary projection
"Useful" FLOPs count real tokens and the head on masked positions only (context: the block for A, the
sentence for B); "executed" FLOPs count what B actually computes (padded length, head on every position).

    python benchmarks/mlm_throughput.py            # 16 timed steps per side
    python benchmarks/mlm_throughput.py --quick    # 6 timed steps per side
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
import warnings

import torch
from tokenizers import Tokenizer, models
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast, XLMRobertaForMaskedLM

from xlt.models.encoder import count_parameters
from xlt.models.mlm import MLMPretraining, adamw_param_groups

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


def sentences(n: int, seed: int) -> list[list[int]]:
    """Random-token sentences; lengths log-normal (median 25, sigma 0.7) clipped to 5..126."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.exp(math.log(25) + 0.7 * torch.randn(n, generator=g)).round().clamp(5, BLOCK - 2).long()
    return [torch.randint(4, MASK, (int(k),), generator=g).tolist() for k in lengths]


def pack(corpus: list[list[int]]) -> torch.Tensor:
    """``<s> sentence </s>`` streams concatenated and cut into BLOCK-token blocks (packing, no padding)."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=16, help="timed optimizer steps per side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per side before timing")
    parser.add_argument("--tokens-per-step", type=int, default=2048, help="real tokens per step (both sides)")
    parser.add_argument("--quick", action="store_true", help="6 timed steps, 2 warm-up steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup = 6, 2
    warnings.filterwarnings("ignore", message=".*self.trainer.* reference is not registered.*")
    torch.manual_seed(args.seed)

    steps_total = args.warmup + args.steps
    blocks_per_step = max(1, args.tokens_per_step // BLOCK)
    corpus = sentences(int(steps_total * args.tokens_per_step / 30 * 1.3) + 200, args.seed)
    mean_example = sum(len(s) + 2 for s in corpus) / len(corpus)
    sentences_per_step = max(1, round(blocks_per_step * BLOCK / mean_example))
    packed = pack(corpus)
    assert len(packed) >= steps_total * blocks_per_step, "corpus too small"

    # (A) xlt: the module's own training step math, AdamW over its parameter groups
    module = MLMPretraining(encoder="xlm-roberta", config=dict(SHAPE), seed=args.seed)
    module.configure_model()
    module.train()
    opt_a = torch.optim.AdamW(adamw_param_groups(module, 0.01), lr=5e-4, betas=(0.9, 0.98), eps=1e-6)
    # (B) HF baseline: same architecture and initial weights
    baseline = XLMRobertaForMaskedLM(module.hf_config)
    baseline.load_state_dict(module.model.state_dict())
    baseline.train()
    opt_b = torch.optim.AdamW(adamw_param_groups(baseline, 0.01), lr=5e-4, betas=(0.9, 0.98), eps=1e-6)
    collator = DataCollatorForLanguageModeling(hf_tokenizer(), mlm_probability=0.15, seed=args.seed)

    counts = count_parameters(module.model)
    n_layers, layers, d = sum(counts.layers), SHAPE["num_hidden_layers"], SHAPE["hidden_size"]

    def batch_a(step: int) -> dict[str, torch.Tensor]:
        return {"input_ids": packed[step * blocks_per_step : (step + 1) * blocks_per_step]}

    def batch_b(step: int) -> tuple[dict[str, torch.Tensor], list[int]]:
        start = step * sentences_per_step
        chunk = corpus[start : start + sentences_per_step]
        examples = [{"input_ids": [BOS, *s, EOS]} for s in chunk]
        return collator(examples), [len(e["input_ids"]) for e in examples]

    records: dict[str, list[dict[str, float]]] = {"A": [], "B": []}

    def step_a(step: int, timed: bool) -> None:
        batch = batch_a(step)
        start = time.perf_counter()
        loss = module.training_step(batch, step)
        loss.backward()
        opt_a.step()
        opt_a.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        if timed:
            ids = batch["input_ids"]
            tokens = ids.numel()
            masked = 0.15 * int(((ids > UNK) & (ids != MASK)).sum())  # expected masked rows (sampled in-step)
            work = flops(n_layers, layers, d, tokens, tokens * BLOCK, masked)
            records["A"].append(dict(time=elapsed, tokens=tokens, padded=tokens, useful=work, executed=work))

    collated: dict[int, tuple[dict[str, torch.Tensor], list[int]]] = {}

    def step_b(step: int, timed: bool) -> None:
        batch, lengths = collated.pop(step) if step in collated else batch_b(step)
        start = time.perf_counter()
        loss = baseline(**batch).loss
        loss.backward()
        opt_b.step()
        opt_b.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        if timed:
            real = int(batch["attention_mask"].sum())
            rows, width = batch["input_ids"].shape
            masked = int((batch["labels"] != -100).sum())
            records["B"].append(
                dict(
                    time=elapsed,
                    tokens=real,
                    padded=rows * width,
                    useful=flops(n_layers, layers, d, real, sum(k * k for k in lengths), masked),
                    executed=flops(n_layers, layers, d, rows * width, rows * width * width, rows * width),
                )
            )

    for step in range(args.warmup):
        step_a(step, timed=False)
        step_b(step, timed=False)
    peaks = [matmul_flops()]
    collate_time = 0.0
    for k in range(args.warmup, args.warmup + args.steps):
        start = time.perf_counter()
        collated[k] = batch_b(k)  # B's collation happens outside its timed step (timed separately)
        collate_time += time.perf_counter() - start
        for side in "AB" if k % 2 == 0 else "BA":
            (step_a if side == "A" else step_b)(k, timed=True)
    peaks.append(matmul_flops())
    peak = max(peaks)

    def total(key: str, field: str) -> float:
        return sum(r[field] for r in records[key])

    def median_rate(key: str) -> float:
        return statistics.median(r["tokens"] / r["time"] for r in records[key])

    paired = [
        (a["tokens"] / a["time"]) / (b["tokens"] / b["time"]) for a, b in zip(records["A"], records["B"], strict=True)
    ]

    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; fp32 matmul 2048^3: {peak / 1e9:.1f} GFLOP/s "
        f"(best of before/after: {', '.join(f'{x / 1e9:.0f}' for x in peaks)})"
    )
    print(f"model: XLM-R 4 layers, d=256, vocab {VOCAB}: {counts.total:,} parameters, {n_layers:,} in layers")
    print(
        f"steps: {args.steps} timed (+{args.warmup} warm-up) per side, alternating; "
        f"A: {blocks_per_step} blocks x {BLOCK} tokens; B: {sentences_per_step} sentences "
        f"(mean {mean_example:.1f} tokens)"
    )
    for key, name in (("A", "xlt packed + masked-only head"), ("B", "HF padded + full head")):
        seconds = total(key, "time")
        useful, executed = total(key, "useful") / seconds, total(key, "executed") / seconds
        print(
            f"  ({key}) {name:30s} {total(key, 'tokens') / seconds:7.0f} tokens/s (median step "
            f"{median_rate(key):7.0f})  padding {1 - total(key, 'tokens') / total(key, 'padded'):5.1%}  "
            f"useful {useful / 1e9:5.2f} GFLOP/s = {useful / peak:5.1%} of matmul  "
            f"executed {executed / 1e9:5.2f} GFLOP/s = {executed / peak:5.1%}"
        )
    ratio = (total("A", "tokens") / total("A", "time")) / (total("B", "tokens") / total("B", "time"))
    print(
        f"ratio A/B real tokens/s: {statistics.median(paired):.2f}x median of paired steps "
        f"(range {min(paired):.2f}-{max(paired):.2f}), {ratio:.2f}x overall (target >= 2.5x); "
        f"B's collation, not timed, would add {collate_time / total('B', 'time'):.1%}"
    )


if __name__ == "__main__":
    main()
