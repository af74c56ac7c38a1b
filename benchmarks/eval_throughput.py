"""Zero-shot evaluation throughput: xlt's length-bucketed batches vs HF dynamic padding and XTREME's padded loop.

One encoder (XLM-R architecture, 4 layers, d=256, 4 heads, FFN 1024, random weights: speed does not depend on
them) classifies the XNLI test split of every language of the synthetic panel (10 languages) with
``AutoModelForSequenceClassification`` under ``torch.inference_mode``, in one process, same threads:

  xlt                   ``XNLIDataModule.test_dataloader()``: each language's examples sorted by length and cut
                        into batches of at most ``eval_max_tokens`` padded tokens (one language per batch);
  hf-dynamic-padding    HEADLINE baseline, the HF default (``run_glue.py``/``run_xnli.py`` with
                        ``DataCollatorWithPadding``): the same tokenized examples in file order, batches of 32
                        padded to the batch's longest example;
  xtreme-padded-128     what XTREME's ``run_classify.py`` does: file order, batches of 32 padded to
                        ``max_seq_length`` = 128 (``padding="max_length"``).

Both baselines are collated by transformers' ``DataCollatorWithPadding`` over the HF tokenizer exported from the
same xlt tokenizer (``XltTokenizer.to_hf()``). Collation runs outside the timed loop for every side. Each side is
warmed up on its first batches before timing; then rounds run every side once, in an order that rotates from
round to round, so machine noise hits all alike; the headline is the median over rounds of the paired ratio.
Logits are compared per example (same example order): the maximum absolute difference of each baseline's logits
from xlt's is printed and must be within ``--atol`` (``torch.allclose``); argmax predictions must be identical.

    python benchmarks/eval_throughput.py            # 5 rounds
    python benchmarks/eval_throughput.py --quick    # 2 rounds
    python benchmarks/eval_throughput.py --threads 1   # every side single-threaded
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, XLMRobertaConfig

from xlt.datamodules.xnli import XNLIDataModule
from xlt.synthetic import generate_panel
from xlt.tokenization.fit import fit_tokenizer
from xlt.tokenization.tokenizer import XltTokenizer

MAX_LENGTH = 128
BATCH = 32
XLT, DYNAMIC, PADDED = "xlt", "hf-dynamic-padding", "xtreme-padded-128"


def load_average() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"


def build(work: Path) -> tuple[XNLIDataModule, torch.nn.Module, XltTokenizer]:
    panel = generate_panel(work / "panel", seed=0, scale=2.0)  # 300 test examples per language
    files = {p.stem: p for p in sorted((panel / "mlm").glob("*.txt"))}
    tokenizer = fit_tokenizer(files, work / "tok", vocab_size=8000, seed=0)
    dm = XNLIDataModule(data=str(panel / "xnli"), tokenizer=str(work / "tok"), panel="synthetic",
                        max_length=MAX_LENGTH, eval_max_tokens=8192, eval_max_rows=256)
    dm.setup("test")
    config = XLMRobertaConfig(vocab_size=dm.vocab_size, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                              intermediate_size=1024, max_position_embeddings=MAX_LENGTH + 2, num_labels=3)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    return dm, model, tokenizer


def run(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]]) -> tuple[float, list[torch.Tensor]]:
    """Time one pass over ``batches``; returns (seconds, logits of each batch)."""
    outputs = []
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            outputs.append(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits)
    return time.perf_counter() - start, outputs


def in_file_order(batches: list[dict[str, torch.Tensor]], logits: list[torch.Tensor],
                  position: dict[tuple[int, int], int]) -> torch.Tensor:
    """Per-example logits ``[n, labels]`` in file order (rows keyed by (lang, index))."""
    out = torch.full((len(position), logits[0].shape[-1]), float("nan"))
    for batch, values in zip(batches, logits, strict=True):
        rows = [position[key] for key in zip(batch["lang"].tolist(), batch["index"].tolist(), strict=True)]
        out[rows] = values.float()
    assert not out.isnan().any(), "some examples were not evaluated"
    return out


def hf_batches(dm: XNLIDataModule, collator: DataCollatorWithPadding) -> list[dict[str, torch.Tensor]]:
    """File order, BATCH examples per batch, collated by the HF collator (input_ids + lang/index to key rows)."""
    rows = [{key: r[key] for key in ("input_ids", "lang", "index")} for r in dm.features["test"].with_format(None)]
    return [collator(rows[start:start + BATCH]) for start in range(0, len(rows), BATCH)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds instead of 5")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5, --quick 2)")
    parser.add_argument("--warmup-batches", type=int, default=3, help="untimed batches per side before timing")
    parser.add_argument("--atol", type=float, default=1e-4, help="tolerance of the logits comparison")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = args.rounds or (2 if args.quick else 5)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="xlt-eval-bench-") as tmp:
        dm, model, tokenizer = build(Path(tmp))
        hf = tokenizer.to_hf()
        assert hf.pad_token_id == dm.pad_id, (hf.pad_token_id, dm.pad_id)
        sides = {  # collation outside the timed loop for every side
            XLT: list(dm.test_dataloader()),
            DYNAMIC: hf_batches(dm, DataCollatorWithPadding(hf)),  # padding=True: to the batch's longest
            PADDED: hf_batches(dm, DataCollatorWithPadding(hf, padding="max_length", max_length=MAX_LENGTH)),
        }
        keys = list(zip(dm.features["test"]["lang"], dm.features["test"]["index"], strict=True))
        position = {key: i for i, key in enumerate(keys)}
        n = len(keys)
        assert len(position) == n, "(lang, index) does not identify an example"
        cells = {name: sum(b["input_ids"].numel() for b in batches) for name, batches in sides.items()}
        real = {name: int(sum(b["attention_mask"].sum() for b in batches)) for name, batches in sides.items()}
        assert len(set(real.values())) == 1, f"sides see different tokens: {real}"
        for batches in sides.values():  # warm up every side on its own shapes
            run(model, batches[: args.warmup_batches])
        names = list(sides)
        times: dict[str, list[float]] = {name: [] for name in names}
        max_diff = dict.fromkeys(names, 0.0)
        for r in range(rounds):
            logits = {}
            for name in names[r % len(names):] + names[: r % len(names)]:
                elapsed, outputs = run(model, sides[name])
                times[name].append(elapsed)
                logits[name] = in_file_order(sides[name], outputs, position)
            for name in names[1:]:
                diff = float((logits[name] - logits[XLT]).abs().max())
                max_diff[name] = max(max_diff[name], diff)
                close = torch.allclose(logits[name], logits[XLT], atol=args.atol, rtol=0)
                assert close, f"{name}: logits differ from xlt's by {diff:.2e} (atol {args.atol:g})"
                assert torch.equal(logits[name].argmax(-1), logits[XLT].argmax(-1)), f"{name}: predictions differ"
        reference = logits[XLT]
        between = float((reference[1:] - reference[:-1]).abs().amax(-1).median())  # scale a mix-up would show
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads (all sides), "
          f"{platform.processor() or platform.machine()} {os.cpu_count()} CPUs; "
          f"load average before {load_before}, after {load_average()}")
    print(f"{n} examples (10 languages x 300), {real[XLT]} real tokens, {rounds} rounds, "
          f"{args.warmup_batches} warm-up batches per side")
    print(f"logits (per example, same order; neighbouring examples differ by median {between:.1e}): "
          + ", ".join(f"{name} max |diff| {max_diff[name]:.1e}" for name in names[1:])
          + f" (allclose atol={args.atol:g}); identical argmax")
    print(f"{'side':<22} {'batches':>8} {'examples/s':>11} {'padded tokens':>14} {'padding':>8}")
    for name in names:
        print(f"{name:<22} {len(sides[name]):8d} {n / statistics.median(times[name]):11.1f} {cells[name]:14d} "
              f"{1 - real[name] / cells[name]:8.1%}")
    for name in names[1:]:
        ratios = [b / a for a, b in zip(times[XLT], times[name], strict=True)]
        print(f"ratio {XLT} / {name}: {statistics.median(ratios):.2f}x examples/s, median of {rounds} paired rounds "
              f"({', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
