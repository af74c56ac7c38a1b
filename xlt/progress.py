"""Third-party progress bars during xlt's own work: off while xlt loads, tokenizes, packs and saves (a bar per
language, split or shard tells the user nothing; xlt prints one line per stage instead), back on afterwards so the
user's own code keeps them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """``datasets`` and ``transformers`` progress bars off inside the block (one bar per language, split or shard
    is noise in xlt's own data preparation and export), restored afterwards for the user's own code."""
    from datasets.utils import logging as datasets_logging
    from transformers.utils import logging as transformers_logging

    datasets_on = datasets_logging.is_progress_bar_enabled()
    transformers_on = transformers_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if datasets_on:
            datasets_logging.enable_progress_bar()
        if transformers_on:
            transformers_logging.enable_progress_bar()
