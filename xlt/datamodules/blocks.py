"""Packed single-language blocks: tokenizing a language's text, packing its token stream into fixed-length blocks
(``.npy``, memory-mapped), and the datasets and resumable loader that serve them to the corpus data module.

A block holds ``block_size`` consecutive tokens of one language (``<s> sentence </s>`` streams concatenated, no
padding, the incomplete tail dropped). :class:`TrainBatches` draws training batches from the blocks through a
:class:`~xlt.datamodules.sampler.LanguageSampler`; batch ``b`` is a pure function of the seed and ``b``, and
:class:`TrainLoader` starts at the batch the trainer has processed, so a resumed run sees the batches of an
uninterrupted one. :class:`ValBlocks` are the held-out last blocks of every language.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from xlt.datamodules.sampler import LanguageSampler
from xlt.tokenization.tokenizer import XltTokenizer


def pack_blocks(token_batches: Iterator[np.ndarray], total_tokens: int, block_size: int,
                out_path: str | Path) -> int:
    """Write a token stream as ``[total_tokens // block_size, block_size]`` int32 blocks to ``out_path``.

    ``token_batches`` yields consecutive pieces of the stream; the blocks are the stream cut every
    ``block_size`` tokens (no padding; the incomplete tail is dropped). Written atomically (``.npy``).
    Returns the number of blocks.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    n_blocks = total_tokens // block_size
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    blocks = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int32, shape=(n_blocks, block_size))
    try:
        flat = blocks.reshape(-1)
        limit, pos = flat.size, 0
        for piece in token_batches:
            if pos >= limit:
                break
            take = min(piece.size, limit - pos)
            flat[pos:pos + take] = piece[:take]
            pos += take
        if pos != limit:
            raise RuntimeError(f"token stream ended after {pos} of {limit} tokens")
        blocks.flush()
        del flat, blocks
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n_blocks


def arrow_token_batches(ds: Any, column: str = "input_ids", batch_size: int = 65536) -> Iterator[np.ndarray]:
    for table in ds.with_format("arrow").iter(batch_size=batch_size):
        yield table.column(column).combine_chunks().flatten().to_numpy(zero_copy_only=False)


def count_tokens(ds: Any, column: str = "input_ids") -> int:
    import pyarrow.compute as pc

    total = 0
    for table in ds.with_format("arrow").iter(batch_size=65536):
        total += int(pc.sum(pc.list_value_length(table.column(column))).as_py() or 0)
    return total


class TokenizeFn:
    """``datasets.map`` function: text rows -> ``<s> ids </s>`` rows (blank rows dropped)."""

    def __init__(self, tokenizer: XltTokenizer, lang: str, column: str) -> None:
        self.tokenizer, self.lang, self.column = tokenizer, lang, column

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        texts = [t.strip() for t in batch[self.column] if t is not None and t.strip()]
        arrays = self.tokenizer.encode_arrays(texts, self.lang)
        bos = np.array([self.tokenizer.bos_id], dtype=np.int32)
        eos = np.array([self.tokenizer.eos_id], dtype=np.int32)
        return {"input_ids": [np.concatenate([bos, a, eos]) for a in arrays]}


# ---------------------------------------------------------------------------------------------- datasets
class Blocks:
    """Lazily memory-mapped per-language block arrays (pickles as paths, for DataLoader workers)."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self._arrays: list[np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self.paths, "_arrays": None}

    @property
    def arrays(self) -> list[np.ndarray]:
        if self._arrays is None:
            self._arrays = [np.load(p, mmap_mode="r") for p in self.paths]
        return self._arrays

    def gather(self, langs: np.ndarray, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """Batch ``{"input_ids": [n, block_size], "lang": [n]}``: blocks ``rows`` of languages ``langs``."""
        arrays = self.arrays
        out = np.empty((langs.size, arrays[0].shape[1]), dtype=np.int64)
        for li in np.unique(langs):
            sel = langs == li
            out[sel] = arrays[li][rows[sel]]
        return {"input_ids": torch.from_numpy(out), "lang": torch.from_numpy(langs.astype(np.int64))}


class TrainBatches(IterableDataset):
    """Yields ready training batches ``start..stop-1`` (rank-local batch numbers); workers interleave."""

    def __init__(self, blocks: Blocks, sampler: LanguageSampler, batch_size: int, epoch_batches: int,
                 progress: Progress) -> None:
        self.blocks, self.sampler, self.batch_size = blocks, sampler, batch_size
        self.epoch_batches = epoch_batches
        self.progress = progress
        self.start, self.stop = 0, epoch_batches
        self.group = 16  # batches drawn per vectorised sampler call

    def __len__(self) -> int:
        return self.epoch_batches

    def set_range(self, start: int, stop: int) -> None:
        """Serve batches ``[start, stop)`` on the next iteration; precompute visit counts up to ``start``."""
        self.start, self.stop = start, stop
        self.sampler._visits_before(start * self.batch_size * self.sampler.world_size)

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        """Rank-local training batch number ``index``."""
        return next(self._batches([index]))

    def _batches(self, indices: list[int]) -> Iterator[dict[str, torch.Tensor]]:
        """Batches ``indices`` (ascending), drawn and gathered in one vectorised call."""
        size = self.batch_size
        positions = (np.asarray(indices, dtype=np.int64)[:, None] * size + np.arange(size)).reshape(-1)
        langs, rows = self.sampler.draws_at(positions)
        merged = self.blocks.gather(langs, rows)
        for k in range(len(indices)):
            yield {key: value[k * size:(k + 1) * size].clone() for key, value in merged.items()}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        mine = list(range(self.start + worker, self.stop, workers))
        for g in range(0, len(mine), self.group):
            group = mine[g:g + self.group]
            for index, batch in zip(group, self._batches(group), strict=True):
                if info is None:
                    self.progress.yielded = index + 1
                yield batch


class ValBlocks(Dataset):
    """The held-out blocks of every language, in language order (fixed, deterministic)."""

    def __init__(self, blocks: Blocks, first_rows: list[int], per_language: int) -> None:
        self.blocks, self.first_rows, self.per_language = blocks, first_rows, per_language

    def __len__(self) -> int:
        return len(self.first_rows) * self.per_language

    def _locate(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        langs = idx // self.per_language
        return langs, np.asarray(self.first_rows, dtype=np.int64)[langs] + idx % self.per_language

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.blocks.gather(*self._locate([index]))
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return self.blocks.gather(*self._locate(indices))


def collate_blocks(batch: Any) -> dict[str, torch.Tensor]:
    if isinstance(batch, dict):  # from __getitems__
        return batch
    return {k: torch.stack([item[k] for item in batch]) for k in batch[0]}


class Progress:
    """Where the next training iterator starts (shared between the DataModule and its loaders)."""

    def __init__(self) -> None:
        self.resume_batch = 0  # from a checkpoint
        self.iterations = 0  # loader iterators created (the epoch counter without a trainer)
        self.yielded = 0  # batches produced in the main process (position without a trainer)


class TrainLoader(DataLoader):
    """A DataLoader that asks its DataModule where to start each time an iterator is created.

    Its ``state_dict`` / ``load_state_dict`` are the DataModule's, so Lightning also treats the loader as
    resumable (and it resumes correctly when passed to ``Trainer.fit`` without the DataModule).
    """

    def __init__(self, dataset: TrainBatches, start_fn: Callable[[], tuple[int, int]] | None = None,
                 state_fns: tuple[Callable[[], dict], Callable[[dict], None]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.start_fn = start_fn
        self.state_fns = state_fns

    def __iter__(self):
        if self.start_fn is not None:
            self.dataset.set_range(*self.start_fn())
        return super().__iter__()

    def state_dict(self) -> dict[str, Any]:
        """The DataModule's resume state."""
        return self.state_fns[0]() if self.state_fns is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Apply a resume state (see :meth:`MultilingualCorpusDataModule.load_state_dict`)."""
        if self.state_fns is not None and state_dict:
            self.state_fns[1](state_dict)
