"""Entry points: generate the synthetic panel into a directory, the ``xlt synth`` command, and the shared cache.

:func:`generate_panel` validates its arguments and writes every task atomically (a pure function of
``(seed, scale, task_scale)``); :func:`synth` is the command-line wrapper. :func:`cached_panel` is the one
place the panel's cache location (:func:`cached_panel_dir`) is worked out and filled: the MLM corpus, the
task data modules and the tokenizer commands all share it.
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


def _check_scale(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or value != value:
        raise XltError(f"synthetic {name.replace('_', ' ')} {value!r} is not a positive number — use e.g. "
                       f"--{name} 1.0 or 0.05")
    if value > 1000:
        raise XltError(f"synthetic {name.replace('_', ' ')} {value} is too large — use a value up to 1000")


def generate_panel(out_dir: str | Path, seed: int = 0, scale: float = 1.0, overwrite: bool = False,
                   task_scale: float | None = None) -> Path:
    """Generate the synthetic panel (text for MLM and gold data for six tasks) under ``out_dir``.

    The output is written atomically and is a pure function of ``(seed, scale, task_scale)``: the same
    arguments give byte-identical files. See :mod:`xlt.synthetic` for the layout.

    Args:
        out_dir: directory to create.
        seed: seed of the world (lexicons, names) and of every sentence stream.
        scale: multiplies the MLM corpus sizes (``1.0``: 20000/8000/3000/1000 sentences for the
            high/mid/low/tail buckets) and, unless ``task_scale`` is given, the task sizes.
        overwrite: replace an existing ``out_dir``.
        task_scale: multiplies the task sizes (``1.0``: splits of 600/150/150 examples, 1000 Tatoeba lines;
            dev/test keep at least 20); ``None``: ``scale``. The MLM text does not depend on it.

    Returns:
        The output directory.
    """
    _check_scale("scale", scale)
    if task_scale is not None:
        _check_scale("task_scale", task_scale)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise XltError(f"synthetic seed {seed!r} is not an integer — pass e.g. --seed 0")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise XltError(f"output path {out} exists and is not a directory — choose another path")
    seed = int(seed)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        gen = _Generator(tmp, seed, float(scale), None if task_scale is None else float(task_scale))
        gen.mlm()
        gen.ud_ner("ud", "ud")
        gen.ud_ner("ner", "ner")
        gen.xnli()
        gen.pawsx()
        gen.qa()
        gen.tatoeba()
        save_panel(synthetic_panel(), tmp / "panel.yaml")
        manifest = {"generator": "xlt.synthetic", "version": GENERATOR_VERSION, "seed": seed,
                    "scale": float(scale), "task_scale": gen.task_scale, "source": SOURCE,
                    "counts": dict(sorted(gen.counts.items()))}
        _write(tmp / "manifest.json", json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return out


def synth(out: str = "data/synthetic", seed: int = 0, scale: float = 1.0, overwrite: bool = False,
          task_scale: float | None = None) -> None:
    """Generate the synthetic language panel (MLM text and gold data for every task) into a directory.

    Args:
        out: output directory (created atomically).
        seed: seed of the synthetic world and of every sentence stream; same seed, same bytes.
        scale: size multiplier (1.0: MLM 20000/8000/3000/1000 sentences per high/mid/low/tail language,
            task splits of 600/150/150 examples).
        overwrite: replace ``out`` if it exists.
        task_scale: size multiplier of the task files alone (default: ``scale``), e.g. ``--scale 1
            --task_scale 16`` for the lab's task data (docs/lab.md) without a 16-times larger MLM corpus.
    """
    start = time.perf_counter()
    path = generate_panel(out, seed=seed, scale=scale, overwrite=overwrite, task_scale=task_scale)
    tasks = "" if task_scale is None else f", task scale {task_scale}"
    print(f"wrote synthetic panel ({len(SPECS)} languages, seed {seed}, scale {scale}{tasks}) to {path} "
          f"in {time.perf_counter() - start:.1f}s")


def cached_panel_dir(cache_dir: str | Path, seed: int = 0, scale: float = 1.0,
                     task_scale: float | None = None) -> Path:
    """Where the panel of ``(seed, scale, task_scale)`` is cached under ``cache_dir`` (it may not exist yet):
    ``synthetic-seed<seed>-scale<scale>``, with ``-tasks<task_scale>`` when the task scale differs."""
    tasks = "" if task_scale is None or float(task_scale) == float(scale) else f"-tasks{task_scale:g}"
    return Path(cache_dir) / f"synthetic-seed{seed}-scale{scale:g}{tasks}"


def cached_panel(cache_dir: str | Path, seed: int = 0, scale: float = 1.0,
                 task_scale: float | None = None) -> Path:
    """The panel of ``(seed, scale, task_scale)`` under ``cache_dir``, generated on first use and reused
    afterwards.

    Generation is atomic (the directory appears complete or not at all), so processes that share a cache may
    race: one that finds the directory taken by a concurrent generation uses that one.
    """
    path = cached_panel_dir(cache_dir, seed, scale, task_scale)
    if not _complete(path):
        try:
            generate_panel(path, seed=seed, scale=scale, overwrite=False, task_scale=task_scale)
        except XltError:
            if not _complete(path):  # not a concurrent generation
                raise
    return path


def _complete(path: Path) -> bool:
    return (path / "manifest.json").is_file()  # written last, inside the atomically renamed directory
