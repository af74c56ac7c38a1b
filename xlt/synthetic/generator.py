"""Entry points: generate the synthetic panel into a directory, the ``xlt synth`` command, and the shared cache.

:func:`generate_panel` validates its arguments and writes every task atomically (a pure function of
``(seed, scale)``); :func:`synth` is the command-line wrapper. :func:`cached_panel` is the one place the
panel's cache location ``<cache_dir>/synthetic-seed{seed}-scale{scale:g}`` is worked out and filled: the
MLM corpus, the task data modules and the tokenizer commands all share it.
"""

from __future__ import annotations

import json
import numbers
import time
from pathlib import Path

from xlt.atomic import atomic_dir
from xlt.errors import XltError
from xlt.languages import save_panel
from xlt.synthetic.specs import SOURCE, SPECS, synthetic_panel
from xlt.synthetic.writers import _Generator, _write

GENERATOR_VERSION = "1"


def generate_panel(out_dir: str | Path, seed: int = 0, scale: float = 1.0, overwrite: bool = False) -> Path:
    """Generate the synthetic panel (text for MLM and gold data for six tasks) under ``out_dir``.

    The output is written atomically and is a pure function of ``(seed, scale)``: the same arguments give
    byte-identical files. See :mod:`xlt.synthetic` for the layout.

    Args:
        out_dir: directory to create.
        seed: seed of the world (lexicons, names) and of every sentence stream.
        scale: multiplies corpus and task sizes (``1.0``: MLM 20000/8000/3000/1000 sentences for the
            high/mid/low/tail buckets; task splits 600/150/150 examples; dev/test keep at least 20).
        overwrite: replace an existing ``out_dir``.

    Returns:
        The output directory.
    """
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0 or scale != scale:
        raise XltError(f"synthetic scale {scale!r} is not a positive number — use e.g. --scale 1.0 or 0.05")
    if scale > 1000:
        raise XltError(f"synthetic scale {scale} is too large — use a value up to 1000")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise XltError(f"synthetic seed {seed!r} is not an integer — pass e.g. --seed 0")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise XltError(f"output path {out} exists and is not a directory — choose another path")
    seed = int(seed)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        gen = _Generator(tmp, seed, float(scale))
        gen.mlm()
        gen.ud_ner("ud", "ud")
        gen.ud_ner("ner", "ner")
        gen.xnli()
        gen.pawsx()
        gen.qa()
        gen.tatoeba()
        save_panel(synthetic_panel(), tmp / "panel.yaml")
        manifest = {"generator": "xlt.synthetic", "version": GENERATOR_VERSION, "seed": seed,
                    "scale": float(scale), "source": SOURCE, "counts": dict(sorted(gen.counts.items()))}
        _write(tmp / "manifest.json", json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return out


def synth(out: str = "data/synthetic", seed: int = 0, scale: float = 1.0, overwrite: bool = False) -> None:
    """Generate the synthetic language panel (MLM text and gold data for every task) into a directory.

    Args:
        out: output directory (created atomically).
        seed: seed of the synthetic world and of every sentence stream; same seed, same bytes.
        scale: size multiplier (1.0: MLM 20000/8000/3000/1000 sentences per high/mid/low/tail language,
            task splits of 600/150/150 examples).
        overwrite: replace ``out`` if it exists.
    """
    start = time.perf_counter()
    path = generate_panel(out, seed=seed, scale=scale, overwrite=overwrite)
    print(f"wrote synthetic panel ({len(SPECS)} languages, seed {seed}, scale {scale}) to {path} "
          f"in {time.perf_counter() - start:.1f}s")


def cached_panel_dir(cache_dir: str | Path, seed: int = 0, scale: float = 1.0) -> Path:
    """Where the panel of ``(seed, scale)`` is cached under ``cache_dir`` (it may not exist yet)."""
    return Path(cache_dir) / f"synthetic-seed{seed}-scale{scale:g}"


def cached_panel(cache_dir: str | Path, seed: int = 0, scale: float = 1.0) -> Path:
    """The panel of ``(seed, scale)`` under ``cache_dir``, generated on first use and reused afterwards.

    Generation is atomic (the directory appears complete or not at all), so processes that share a cache may
    race: one that finds the directory taken by a concurrent generation uses that one.
    """
    path = cached_panel_dir(cache_dir, seed, scale)
    if not _complete(path):
        try:
            generate_panel(path, seed=seed, scale=scale, overwrite=False)
        except XltError:
            if not _complete(path):  # not a concurrent generation
                raise
    return path


def _complete(path: Path) -> bool:
    return (path / "manifest.json").is_file()  # written last, inside the atomically renamed directory
