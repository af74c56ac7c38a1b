"""Zero-shot evaluation throughput: xlt's length-bucketed batches vs the padded loop of XTREME-style scripts.

One encoder (XLM-R architecture, 4 layers, d=256, 4 heads, FFN 1024, random weights: speed does not depend on
them) classifies the XNLI test split of every language of the synthetic panel (10 languages) with
``AutoModelForSequenceClassification`` under ``torch.inference_mode``, in one process:

  (A) xlt: ``XNLIDataModule.test_dataloader()`` — each language's examples sorted by length and cut into batches
      of at most ``eval_max_tokens`` padded tokens (one language per batch);
  (B) baseline, what XTREME's ``run_classify.py`` does: the same tokenized examples in file order, batches of 32
      padded to ``max_seq_length`` = 128 (``padding="max_length"``);
  (C) a fairer baseline: file order, batches of 32 padded to the longest example of the batch (dynamic padding,
      HF ``DataCollatorWithPadding``).

Rounds alternate A, B, C so machine noise hits all alike; the headline is the median ratio of paired rounds.
Predictions of A and B are checked to be identical (same examples, same argmax).

    python benchmarks/eval_throughput.py            # 5 rounds
    python benchmarks/eval_throughput.py --quick    # 2 rounds
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, XLMRobertaConfig

from xlt.datamodules.task_data import pad_batch
from xlt.datamodules.xnli import XNLIDataModule
from xlt.synthetic import generate_panel
from xlt.tokenization.fit import fit_tokenizer

MAX_LENGTH = 128
BATCH = 32


def build(work: Path) -> tuple[XNLIDataModule, torch.nn.Module]:
    panel = generate_panel(work / "panel", seed=0, scale=2.0)  # 300 test examples per language
    files = {p.stem: p for p in sorted((panel / "mlm").glob("*.txt"))}
    fit_tokenizer(files, work / "tok", vocab_size=8000, seed=0)
    dm = XNLIDataModule(data=str(panel / "xnli"), tokenizer=str(work / "tok"), panel="synthetic",
                        max_length=MAX_LENGTH, eval_max_tokens=8192, eval_max_rows=256)
    dm.setup("test")
    config = XLMRobertaConfig(vocab_size=dm.vocab_size, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                              intermediate_size=1024, max_position_embeddings=MAX_LENGTH + 2, num_labels=3)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    return dm, model


def run(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]]) -> tuple[float, dict[tuple[int, int], int]]:
    predictions: dict[tuple[int, int], int] = {}
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            for lang, index, label in zip(batch["lang"].tolist(), batch["index"].tolist(),
                                          logits.argmax(-1).tolist(), strict=True):
                predictions[(lang, index)] = label
    return time.perf_counter() - start, predictions


def fixed_batches(dm: XNLIDataModule, pad_to: int | None) -> list[dict[str, torch.Tensor]]:
    rows = list(dm.features["test"].with_format(None))
    batches = []
    for start in range(0, len(rows), BATCH):
        batch = pad_batch(rows[start:start + BATCH], dm.pad_id, {})
        if pad_to is not None and batch["input_ids"].shape[1] < pad_to:
            extra = pad_to - batch["input_ids"].shape[1]
            batch["input_ids"] = torch.nn.functional.pad(batch["input_ids"], (0, extra), value=dm.pad_id)
            batch["attention_mask"] = torch.nn.functional.pad(batch["attention_mask"], (0, extra), value=0)
        batches.append(batch)
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds instead of 5")
    args = parser.parse_args()
    rounds = 2 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="xlt-eval-bench-") as tmp:
        dm, model = build(Path(tmp))
        bucketed = list(dm.test_dataloader())  # collation outside the timed loop for every side
        padded = fixed_batches(dm, MAX_LENGTH)
        dynamic = fixed_batches(dm, None)
        n = len(dm.features["test"])
        sides = {"A xlt length-bucketed": bucketed, "B padded to 128 (XTREME)": padded,
                 "C dynamic padding, file order": dynamic}
        cells = {name: sum(b["input_ids"].numel() for b in batches) for name, batches in sides.items()}
        real = int(sum(b["attention_mask"].sum() for b in bucketed))
        run(model, bucketed[:2])  # warm-up
        times: dict[str, list[float]] = {name: [] for name in sides}
        reference = None
        for _ in range(rounds):
            for name, batches in sides.items():
                elapsed, predictions = run(model, batches)
                times[name].append(elapsed)
                reference = reference or predictions
                assert predictions == reference, f"{name}: predictions differ from the other sides"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{n} examples (10 languages x 300), {real} real tokens, {rounds} rounds; identical predictions: yes")
    print(f"{'side':<32} {'examples/s':>11} {'padded tokens':>14} {'padding':>8}")
    for name, values in times.items():
        print(f"{name:<32} {n / statistics.median(values):11.1f} {cells[name]:14d} {1 - real / cells[name]:8.1%}")
    a = times["A xlt length-bucketed"]
    for name in list(sides)[1:]:
        ratios = [b / x for x, b in zip(a, times[name], strict=True)]
        print(f"ratio A / {name.split()[0]}: median {statistics.median(ratios):.2f}x (rounds: "
              f"{', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
