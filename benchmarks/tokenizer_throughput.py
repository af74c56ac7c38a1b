"""Tokenizer throughput: xlt's batched ``XltTokenizer.encode`` vs HF ``XLMRobertaTokenizerFast``; fitting times a–d.

Corpus: the synthetic panel (10 languages, 6 scripts; 75,000 sentences at scale 1), generated into a temporary
directory (or ``--cache_dir``). In one process:

1. **Fitting time** of the four vocabulary configurations on that corpus (base vocabulary ``--vocab_size``,
   configuration d with ``--language_pieces`` pieces for each of the 5 low + tail languages).
2. **Encoding throughput**, sentences/s, same sentences, same SentencePiece model, batches of ``--batch``
   sentences of one language, no special tokens, both sides returning ``list[list[int]]``:

   (A) xlt: ``XltTokenizer.encode(batch, lang)`` (SentencePiece's C++ batch encoder, ``num_threads`` threads,
       vectorised id remapping);
   (B) HF: ``XLMRobertaTokenizerFast`` (transformers 5: ``XLMRobertaTokenizer``, the ``tokenizers``-backed class)
       built from the same model by ``XltTokenizer.to_hf()`` (its ids equal ours, checked on every sentence),
       called as ``hf(batch, add_special_tokens=False)["input_ids"]`` (Rust, parallel over the batch).

   Shared vocabulary (a), then configuration (d) routed by language (B: the shared HF tokenizer for
   non-designated languages, ``hf/<code>/`` for designated ones). Passes alternate A B, B A, ... so machine
   noise hits both; reported: each side's median pass, the median of paired pass ratios A/B (headline) and the
   ratio of total times.

    python benchmarks/tokenizer_throughput.py              # scale 1, 5 passes per side
    python benchmarks/tokenizer_throughput.py --quick      # scale 0.3, vocabulary 4000, 3 passes per side
    python benchmarks/tokenizer_throughput.py --threads 1  # both sides single-threaded
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

CONFIG_NAMES = {"shared": "a", "balanced": "b", "proportional_2x": "c", "lang_specific": "d"}
DESIGNATED = ["qaf", "qag", "qah", "qai", "qaj"]


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="scale 0.3 corpus, 3 passes")
    parser.add_argument("--scale", type=float, default=None, help="synthetic corpus scale (default 1, quick 0.3)")
    parser.add_argument("--passes", type=int, default=None, help="timed passes per side (default 5, quick 3)")
    parser.add_argument("--batch", type=int, default=1000, help="sentences per encode call")
    parser.add_argument("--vocab_size", type=int, default=None, help="base vocabulary of a-d (8000, quick 4000)")
    parser.add_argument("--language_pieces", type=int, default=500, help="block size of configuration d")
    parser.add_argument("--threads", type=int, default=None, help="threads per side (default: all cores)")
    parser.add_argument("--cache_dir", default=None, help="where to generate the synthetic panel (default: temp)")
    return parser.parse_args()


def main() -> None:
    args = _parse()
    if args.threads is not None:  # before tokenizers starts its thread pool
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)
        if args.threads == 1:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
    scale = args.scale if args.scale is not None else (0.3 if args.quick else 1.0)
    passes = args.passes or (3 if args.quick else 5)
    args.vocab_size = args.vocab_size or (4000 if args.quick else 8000)

    import sentencepiece
    import tokenizers
    import transformers
    from transformers import AutoTokenizer

    from xlt.synthetic import cached_panel
    from xlt.tokenization.fit import fit_configuration
    from xlt.tokenization.tokenizer import XltTokenizer
    from xlt.tokenization.vocabulary import VocabularyConfig

    threads = args.threads or max(1, min(os.cpu_count() or 1, 16))
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; python "
          f"{platform.python_version()}, sentencepiece {sentencepiece.__version__}, tokenizers "
          f"{tokenizers.__version__}, transformers {transformers.__version__}; threads per side: {threads}")
    with tempfile.TemporaryDirectory(prefix="xlt-tokbench-") as tmp:
        corpus = cached_panel(args.cache_dir or tmp, seed=0, scale=scale)
        files = {p.stem: p for p in sorted((corpus / "mlm").glob("*.txt"))}
        texts = {code: [t.strip() for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
                 for code, path in files.items()}
        n_sentences = sum(map(len, texts.values()))
        n_chars = sum(len(t) for ts in texts.values() for t in ts)
        print(f"corpus: synthetic panel scale {scale:g}: {len(files)} languages, {n_sentences} sentences, "
              f"{n_chars / 1e6:.2f} M characters")

        # ---------------------------------------------------------------- fitting time a-d
        print(f"\nfitting (base vocabulary {args.vocab_size}; d: {args.language_pieces} pieces x "
              f"{len(DESIGNATED)} languages {', '.join(DESIGNATED)})")
        dirs = {}
        for configuration, letter in CONFIG_NAMES.items():
            vocabulary = VocabularyConfig(configuration, alpha=0.0, language_pieces=args.language_pieces,
                                          designated_languages=DESIGNATED if letter == "d" else None,
                                          sentencepiece_options={"num_threads": threads})
            dirs[letter] = Path(tmp) / f"tok_{letter}"
            start = time.perf_counter()
            tok = fit_configuration(files, dirs[letter], args.vocab_size, vocabulary)
            seconds = time.perf_counter() - start
            print(f"  ({letter}) {configuration:<16} {seconds:6.1f} s   {tok.vocab_size} ids")

        # ---------------------------------------------------------------- encoding throughput
        for letter in ("a", "d"):
            ours = XltTokenizer.load(dirs[letter], num_threads=threads)
            hf_shared = AutoTokenizer.from_pretrained(str(dirs[letter]))
            theirs = {code: (AutoTokenizer.from_pretrained(str(dirs[letter] / "hf" / code)) if code in ours.blocks
                             else hf_shared) for code in texts}
            batches = [(code, ts[i:i + args.batch]) for code, ts in texts.items()
                       for i in range(0, len(ts), args.batch)]

            def run_a(batches=batches, ours=ours) -> list[list[list[int]]]:
                return [ours.encode(batch, code) for code, batch in batches]

            def run_b(batches=batches, theirs=theirs) -> list[list[list[int]]]:
                return [theirs[code](batch, add_special_tokens=False)["input_ids"] for code, batch in batches]

            if run_a() != run_b():
                sys.exit(f"({letter}): ids differ between xlt and HF — benchmark invalid")
            times: dict[str, list[float]] = {"A": [], "B": []}
            for p in range(passes):
                for side in ("AB" if p % 2 == 0 else "BA"):
                    start = time.perf_counter()
                    (run_a if side == "A" else run_b)()
                    times[side].append(time.perf_counter() - start)
            ratios = [b / a for a, b in zip(times["A"], times["B"], strict=True)]
            rate_a = n_sentences / statistics.median(times["A"])
            rate_b = n_sentences / statistics.median(times["B"])
            label = "shared vocabulary" if letter == "a" else "language-specific, routed by language"
            print(f"\nencode ({letter}) {label}: {len(batches)} batches, ids identical on all {n_sentences} sentences")
            print(f"  (A) xlt XltTokenizer.encode        {rate_a:10.0f} sentences/s (median of {passes} passes)")
            print(f"  (B) HF XLMRobertaTokenizerFast     {rate_b:10.0f} sentences/s")
            print(f"  ratio A/B: median of paired passes {statistics.median(ratios):.2f}x "
                  f"(range {min(ratios):.2f}-{max(ratios):.2f}), total {sum(times['B']) / sum(times['A']):.2f}x")


if __name__ == "__main__":
    main()
