"""Multilingual MLM corpus: text per language -> tokens (cached Arrow) -> packed blocks -> language sampler.

Pipeline (``prepare_data``, cached under ``cache_dir`` and reused when nothing changed):

1. the text source (:mod:`xlt.sources`: :class:`~xlt.sources.SyntheticPanel`, generated once into
   ``cache_dir``; :class:`~xlt.sources.TextDirectory` of ``<code>.txt``; :class:`~xlt.sources.HubText`) gives
   each language's text as a ``datasets.Dataset`` with a text column;
2. the tokenizer is fitted on them when none is given (``<cache_dir>/tokenizer-<hash>``);
3. ``Dataset.map(batched=True)`` tokenizes each language into a memory-mapped Arrow file
   (``<s> sentence </s>`` per line, blank lines dropped) with a fingerprint of source + tokenizer;
4. each language's token stream is packed into ``[n_blocks, block_size]`` ``int32`` arrays (``.npy``,
   memory-mapped): plain concatenation, no padding, the incomplete tail dropped, so every block holds one
   language. The last ``val_blocks_per_language`` blocks of each language are held out for validation.

Training batches come from :class:`xlt.datamodules.sampler.LanguageSampler` (``p(l) ∝ f_l · n_l ** alpha``
over training blocks); rank ``r`` of ``W`` takes global samples ``i ≡ r (mod W)``.

Resume: training batch ``b`` (rank-local, counted over the whole run) is a pure function of the seed and
``b``; epoch ``e`` covers batches ``[e·S, (e+1)·S)`` with ``S = steps_per_epoch``. :meth:`state_dict`
records the batches the trainer has *processed* (from its progress counters, not from how far the
prefetching loader ran), and the next loader iterator starts there, so a run resumed from a mid-epoch
checkpoint sees exactly the batches of an uninterrupted run. Use ``steps_per_epoch`` (not
``limit_train_batches``) to set the epoch length.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch.utils.data import DataLoader

from xlt.datamodules.blocks import (
    Blocks,
    Progress,
    TokenizeFn,
    TrainBatches,
    TrainLoader,
    ValBlocks,
    arrow_token_batches,
    collate_blocks,
    count_tokens,
    pack_blocks,
)
from xlt.datamodules.sampler import LanguageSampler, check_compatible, resolve_factors
from xlt.errors import XltError
from xlt.languages import Panel, load_panel
from xlt.progress import quiet_progress_bars
from xlt.sources import TextSource, as_text_source, default_panel
from xlt.tokenization.fit import fit_tokenizer_from_datasets
from xlt.tokenization.tokenizer import MODEL_FILE, XltTokenizer, tokenizer_fingerprint
from xlt.tokenization.vocabulary import VocabularyConfig, resolve_designated

log = logging.getLogger(__name__)
# Our IterableDataset shards batches across workers itself, so its __len__ is exact; Lightning warns anyway.
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")

PIPELINE_VERSION = 1
MIN_BLOCK_SIZE = 8
TOKENIZER_FIT_SEED = 0  # tokenizers do not depend on the run seed, so seeds of one setup share one tokenizer


def _digest(obj: Any, length: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:length]


# ---------------------------------------------------------------------------------------------- the module
class MultilingualCorpusDataModule(L.LightningDataModule):
    """Packed multilingual MLM blocks with temperature-based language sampling.

    Batches are ``{"input_ids": LongTensor[B, block_size], "lang": LongTensor[B]}``; ``lang`` indexes
    :attr:`language_codes`. After ``__init__``, :attr:`language_codes`, :attr:`tokenizer_dir` and
    :attr:`block_size` are set (nothing is read or fitted yet).
    """

    def __init__(
        self,
        corpus: TextSource | str = "synthetic",
        panel: str | None = None,
        languages: list[str] | None = None,
        tokenizer: str | None = None,
        tokenizer_vocab_size: int = 8000,
        tokenizer_fit: VocabularyConfig | None = None,
        block_size: int = 128,
        batch_size: int = 32,
        alpha: float = 0.3,
        oversampling: dict[str, float] | None = None,
        val_blocks_per_language: int = 16,
        cache_dir: str = "runs/cache",
        seed: int = 0,
        num_workers: int = 0,
        steps_per_epoch: int = 1000,
    ) -> None:
        """Configure the corpus; no data is read here.

        Args:
            corpus: where the text comes from, a text source (:mod:`xlt.sources`):
                ``{class_path: xlt.sources.SyntheticPanel, init_args: {seed: 0, scale: 1.0}}`` (the synthetic
                panel, generated into ``cache_dir``), ``xlt.sources.TextDirectory`` (``path``: a directory of
                ``<code>.txt`` files, one sentence per line; ``<dir>/mlm/<code>.txt`` also works) or
                ``xlt.sources.HubText`` (``dataset``, ``config``, ``split``, ``column``: a hub dataset, one config
                per language). Short forms: ``synthetic``, a directory path, ``hf:<dataset_id>``.
            panel: language panel (name under configs/panels or a YAML path); gives codes and buckets.
                Default: the ``panel.yaml`` the corpus directory carries (``xlt synth`` writes one; also found
                from its ``mlm/`` folder), else ``synthetic``.
            languages: ISO 639-3 codes to train on (default: the panel's languages that have text).
            tokenizer: tokenizer directory; ``None`` fits one in ``prepare_data`` into
                ``<cache_dir>/tokenizer-<hash of corpus, languages and vocabulary size>``.
            tokenizer_vocab_size: SentencePiece pieces of the fitted tokenizer (ids = this + 2); the base
                (shared) size with ``tokenizer_fit``.
            tokenizer_fit: vocabulary configuration of the fitted tokenizer (a–d of the paper, e.g.
                ``{configuration: lang_specific, language_pieces: 50000}``; see
                :class:`xlt.tokenization.vocabulary.VocabularyConfig`). Default: one shared vocabulary.
            block_size: tokens per packed block (>= 8).
            batch_size: blocks per batch and process.
            alpha: sampling exponent, ``p(l) ∝ f_l · n_l ** alpha`` (XLM-R used 0.3; 1 = proportional).
            oversampling: factors ``f`` by language code or bucket name, e.g. ``{tail: 3.0}`` (> 0).
            val_blocks_per_language: held-out blocks per language for validation (never trained on).
            cache_dir: cache for the synthetic panel, tokenizer, tokenized Arrow files and packed blocks.
            seed: seed of the sampling stream.
            num_workers: DataLoader worker processes.
            steps_per_epoch: training batches per epoch (the sampler is infinite).
        """
        super().__init__()
        self.save_hyperparameters(logger=False)  # the CLI logs the whole resolved config
        if block_size < MIN_BLOCK_SIZE:
            raise XltError(f"block_size {block_size} is too small — use at least {MIN_BLOCK_SIZE}")
        positive = {"batch_size": batch_size, "val_blocks_per_language": val_blocks_per_language,
                    "steps_per_epoch": steps_per_epoch, "tokenizer_vocab_size": tokenizer_vocab_size}
        for name, value in positive.items():
            if value < 1:
                raise XltError(f"{name} {value} must be a positive integer")
        if num_workers < 0:
            raise XltError(f"num_workers {num_workers} must be >= 0")
        if alpha < 0:
            raise XltError(f"alpha {alpha} must be >= 0 (1 = proportional to corpus size, 0 = uniform)")
        self.block_size, self.batch_size = int(block_size), int(batch_size)
        self.alpha, self.oversampling = float(alpha), dict(oversampling or {})
        self.val_blocks_per_language, self.seed = int(val_blocks_per_language), int(seed)
        self.num_workers, self.steps_per_epoch = int(num_workers), int(steps_per_epoch)
        self.tokenizer_vocab_size = int(tokenizer_vocab_size)
        if isinstance(tokenizer_fit, dict):
            tokenizer_fit = VocabularyConfig(**tokenizer_fit)
        self.tokenizer_fit = tokenizer_fit
        if tokenizer_fit is not None:  # checkpoints hold plain types (they load with weights_only=True)
            self.hparams["tokenizer_fit"] = dataclasses.asdict(tokenizer_fit)
        if isinstance(corpus, TextSource):  # checkpoints hold plain types (they load with weights_only=True)
            self.hparams["corpus"] = corpus.config()
        self.cache_root = Path(cache_dir)
        self.corpus: TextSource = as_text_source(corpus, cache_dir)  # a source without a cache uses cache_dir
        self.panel: Panel = load_panel(panel or default_panel(self.corpus, "synthetic"))
        self.corpus.check()  # the source exists (a corpus directory is there); nothing is read

        if languages is not None:
            if not languages:
                raise XltError("languages is empty — list at least one language code or leave it unset")
            for code in languages:
                self.panel.get(code)  # XltError naming the panel for unknown codes
            if len(set(languages)) != len(languages):
                raise XltError(f"languages {languages} lists a language more than once")
            codes = list(languages)
            self.corpus.check(codes)  # cheap: each language has text (a file-backed source: its file exists)
        else:
            codes = self.corpus.languages(self.panel.codes)
            if not codes:
                raise XltError(f"{self.corpus} has no <code>.txt file for any language of panel "
                               f"'{self.panel.name}' ({', '.join(self.panel.codes)})")
        self.language_codes: list[str] = codes
        self._buckets = {c: self.panel.get(c).bucket for c in codes}
        resolve_factors(codes, self.oversampling, self._buckets)  # validate keys and factors now

        if tokenizer is not None:
            if not (Path(tokenizer) / MODEL_FILE).is_file():
                raise XltError(f"tokenizer directory {tokenizer} has no {MODEL_FILE} — fit one with "
                               "`xlt tokenizer`, or leave data.tokenizer unset to fit one automatically")
            self.tokenizer_dir: str = str(tokenizer)
            self._fit_tokenizer = False
        else:
            key = {"corpus": self.corpus.identity(codes), "languages": sorted(codes),
                   "vocab_size": self.tokenizer_vocab_size, "fit_seed": TOKENIZER_FIT_SEED}
            if tokenizer_fit is not None and tokenizer_fit.identity() != VocabularyConfig().identity():
                tokenizer_fit.check("data.tokenizer_fit.")
                resolve_designated(tokenizer_fit, codes, self.panel, "data.tokenizer_fit.")  # fail fast
                key["vocabulary"] = tokenizer_fit.identity()
            self.tokenizer_dir = str(self.cache_root / f"tokenizer-{_digest(key, 12)}")
            self._fit_tokenizer = True

        self.sampler: LanguageSampler | None = None
        self.num_blocks: dict[str, int] = {}
        self._blocks: Blocks | None = None
        self._progress = Progress()
        self._pending_state: dict[str, Any] | None = None
        self._rank, self._world_size = 0, 1

    # ------------------------------------------------------------------------------------------ caching
    def _cache_paths(self, tokenizer_key: str) -> dict[str, tuple[Path, Path]]:
        paths = {}
        for code in self.language_codes:
            token_fp = _digest({"source": self.corpus.language_identity(code), "tokenizer": tokenizer_key,
                                "pipeline": PIPELINE_VERSION})
            block_fp = _digest({"tokens": token_fp, "block_size": self.block_size})
            paths[code] = (self.cache_root / "tokenized" / f"{code}-{token_fp}.arrow",
                           self.cache_root / "blocks" / f"{code}-{block_fp}-b{self.block_size}.npy")
        return paths

    def _tokenizer_key(self) -> str:
        return tokenizer_fingerprint(self.tokenizer_dir)  # the shared model and any language blocks

    def _block_paths(self) -> dict[str, Path] | None:
        """The packed block files if the tokenizer exists (they may not exist yet)."""
        if not (Path(self.tokenizer_dir) / MODEL_FILE).is_file():
            return None
        if not self.corpus.prepared:  # e.g. the synthetic panel is not generated yet
            return None
        return {code: blocks for code, (_, blocks) in self._cache_paths(self._tokenizer_key()).items()}

    def check_inputs(self) -> None:
        """Read every local corpus file once (missing, empty, non-UTF-8 → :class:`XltError` naming the file and
        line) unless its blocks are cached already; the CLI calls this before any logger or cache is created, and
        ``prepare_data`` before the first language is loaded, so a bad file leaves nothing behind. (The synthetic
        panel is generated, not read here; a hub dataset is checked when it is loaded.)"""
        block_paths = self._block_paths()
        if block_paths is not None and all(p.is_file() for p in block_paths.values()):
            return  # the cache key holds each file's size and mtime: these files were read before
        self.corpus.check(self.language_codes, read=True)

    def prepare_data(self) -> None:
        """Generate / load the text, fit the tokenizer if needed, tokenize and pack (all cached); one line per stage
        instead of a ``datasets`` bar per language and split."""
        self.corpus.prepare()  # the synthetic panel: generated once into its cache
        block_paths = self._block_paths()
        if block_paths is not None and all(p.is_file() for p in block_paths.values()):
            return  # everything cached: nothing is read or tokenized
        self.check_inputs()
        with quiet_progress_bars():
            self._prepare()

    def _prepare(self) -> None:
        hf_cache = self.cache_root / "hf"
        texts = {code: self.corpus.dataset(code, hf_cache) for code in self.language_codes}
        if not (Path(self.tokenizer_dir) / MODEL_FILE).is_file():
            if not self._fit_tokenizer:
                raise XltError(f"tokenizer directory {self.tokenizer_dir} has no {MODEL_FILE}")
            log.info("fitting a %d-piece tokenizer into %s", self.tokenizer_vocab_size, self.tokenizer_dir)
            try:
                fit_tokenizer_from_datasets(
                    texts, self.tokenizer_dir, self.tokenizer_vocab_size, seed=TOKENIZER_FIT_SEED,
                    text_column=self.corpus.column,
                    describe={c: json.dumps(self.corpus.language_identity(c)) for c in texts},
                    vocabulary=self.tokenizer_fit, panel=self.panel,
                )
            except XltError:
                if not (Path(self.tokenizer_dir) / MODEL_FILE).is_file():  # not a concurrent fit
                    raise
            rank_zero_info(f"xlt: fitted a {self.tokenizer_vocab_size}-piece tokenizer on {len(texts)} languages "
                           f"into {self.tokenizer_dir}")
        tokenizer = XltTokenizer.load(self.tokenizer_dir)
        languages, tokens, blocks = 0, 0, 0
        for code, (token_path, block_path) in self._cache_paths(self._tokenizer_key()).items():
            if block_path.is_file():
                continue
            tokenized = self._tokenize(code, texts[code], tokenizer, token_path)
            total = count_tokens(tokenized)
            n_blocks = pack_blocks(arrow_token_batches(tokenized), total, self.block_size, block_path)
            log.info("%s: %d sentences, %d tokens -> %d blocks of %d", code, len(tokenized), total, n_blocks,
                     self.block_size)
            languages, tokens, blocks = languages + 1, tokens + total, blocks + n_blocks
        if languages:
            rank_zero_info(f"xlt: tokenized {languages} languages ({tokens:,} tokens) -> {blocks:,} blocks of "
                           f"{self.block_size} in {self.cache_root / 'blocks'}")

    def _tokenize(self, code: str, text, tokenizer: XltTokenizer, token_path: Path):
        import datasets

        token_path.parent.mkdir(parents=True, exist_ok=True)
        column = self.corpus.column
        features = datasets.Features({"input_ids": datasets.List(datasets.Value("int32"))})
        tokenized = text.map(
            TokenizeFn(tokenizer, code, column), batched=True, batch_size=1000,
            remove_columns=text.column_names, cache_file_name=str(token_path), load_from_cache_file=True,
            new_fingerprint=token_path.stem.split("-", 1)[1], features=features, desc=f"tokenizing {code}",
        )
        if len(tokenized) == 0:
            raise XltError(f"corpus for language '{code}' ({self.corpus.describe(code)}) has no text — add text or "
                           "drop the language from data.languages")
        return tokenized

    # ------------------------------------------------------------------------------------------ setup
    def _open_blocks(self) -> dict[str, Path]:
        paths = self._block_paths()
        if paths is None or not all(p.is_file() for p in paths.values()):
            self.prepare_data()
            paths = self._block_paths()
        assert paths is not None
        self._blocks = Blocks([str(paths[c]) for c in self.language_codes])
        self.num_blocks = {c: int(a.shape[0]) for c, a in zip(self.language_codes, self._blocks.arrays,
                                                                strict=True)}
        for code, n in self.num_blocks.items():
            if n <= self.val_blocks_per_language:
                raise XltError(
                    f"language '{code}' has only {n} blocks of {self.block_size} tokens "
                    f"({self.corpus.describe(code)}) — need more than val_blocks_per_language="
                    f"{self.val_blocks_per_language}: add text, lower data.block_size or "
                    "data.val_blocks_per_language, or drop the language")
        return paths

    def setup(self, stage: str | None = None) -> None:
        """Open the packed blocks and build this rank's sampler (rank / world size from the trainer)."""
        if self.trainer is not None:
            self._rank, self._world_size = int(self.trainer.global_rank), int(self.trainer.world_size)
        if self._blocks is None:
            self._open_blocks()
        layout = (self._rank, self._world_size)
        if self.sampler is None or (self.sampler.rank, self.sampler.world_size) != layout:
            train_blocks = {c: n - self.val_blocks_per_language for c, n in self.num_blocks.items()}
            self.sampler = LanguageSampler(train_blocks, alpha=self.alpha, oversampling=self.oversampling,
                                           buckets=self._buckets, seed=self.seed, rank=self._rank,
                                           world_size=self._world_size)
        if self._pending_state is not None:
            self._apply_state(self._pending_state)
            self._pending_state = None

    def sampling_distribution(self) -> dict[str, float]:
        """The target sampling distribution ``p(l)`` over :attr:`language_codes` (prepares data if needed)."""
        if self.sampler is None:
            self.setup("fit")
        assert self.sampler is not None
        return self.sampler.distribution()

    # ------------------------------------------------------------------------------------------ loaders
    def _train_range(self) -> tuple[int, int]:
        """Rank-local batch range of the iterator being created: the rest of the current epoch."""
        steps = self.steps_per_epoch
        if self.trainer is not None:
            epoch = int(self.trainer.current_epoch)
        else:
            epoch = self._progress.iterations
        self._progress.iterations += 1
        start = max(epoch * steps, self._progress.resume_batch)
        return start, (start // steps + 1) * steps

    def train_dataloader(self) -> DataLoader:
        """Infinite-sampler batches, ``steps_per_epoch`` per epoch (one process's share)."""
        if self.sampler is None:
            self.setup("fit")
        assert self.sampler is not None and self._blocks is not None
        dataset = TrainBatches(self._blocks, self.sampler, self.batch_size, self.steps_per_epoch,
                                self._progress)
        return TrainLoader(dataset, start_fn=self._train_range,
                            state_fns=(self.state_dict, self.load_state_dict), batch_size=None,
                            num_workers=self.num_workers, pin_memory=torch.cuda.is_available(),
                            persistent_workers=False)

    def val_dataloader(self) -> DataLoader:
        """Every language's held-out blocks, in language order (Lightning shards it across ranks)."""
        if self._blocks is None:
            self.setup("validate")
        assert self._blocks is not None
        first_rows = [self.num_blocks[c] - self.val_blocks_per_language for c in self.language_codes]
        dataset = ValBlocks(self._blocks, first_rows, self.val_blocks_per_language)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                          collate_fn=collate_blocks, pin_memory=torch.cuda.is_available())

    # ------------------------------------------------------------------------------------------ resume
    def _consumed_batches(self) -> int:
        """Rank-local training batches the trainer has processed (not what the loader prefetched)."""
        trainer = self.trainer
        if trainer is None:
            return max(self._progress.resume_batch, self._progress.yielded)
        fit_loop = trainer.fit_loop
        epochs_started = int(fit_loop.epoch_progress.current.started)
        in_epoch = int(fit_loop.epoch_loop.batch_progress.current.processed)
        return max(0, epochs_started - 1) * self.steps_per_epoch + in_epoch

    def state_dict(self) -> dict[str, Any]:
        """Resume state: batches processed so far and the data configuration they refer to."""
        state: dict[str, Any] = {
            "consumed_batches": self._consumed_batches(),
            "batch_size": self.batch_size,
            "world_size": self._world_size,
            "steps_per_epoch": self.steps_per_epoch,
        }
        if self.sampler is not None:
            sampler_state = self.sampler.state_dict()
            sampler_state.pop("global_position")
            sampler_state.pop("visits")
            state["sampler"] = sampler_state
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the training stream where the checkpointed run stopped."""
        if self.sampler is not None:
            self._apply_state(state_dict)
        else:
            self._pending_state = dict(state_dict)

    def _apply_state(self, state: dict[str, Any]) -> None:
        assert self.sampler is not None
        if "sampler" in state:
            s = state["sampler"]
            check_compatible(s, self.sampler.seed, self.sampler.languages, self.sampler.num_blocks.tolist(),
                             self.sampler.probabilities, self.sampler.chunk_size)
        saved_global = int(state.get("batch_size", self.batch_size)) * int(state.get("world_size", 1))
        if saved_global != self.batch_size * self._world_size or \
                int(state.get("steps_per_epoch", self.steps_per_epoch)) != self.steps_per_epoch:
            raise XltError(
                f"checkpoint data state has batch_size×world_size={saved_global} and steps_per_epoch="
                f"{state.get('steps_per_epoch')}; this run has {self.batch_size * self._world_size} and "
                f"{self.steps_per_epoch} — resume with the same global batch size and steps_per_epoch")
        self._progress.resume_batch = int(state["consumed_batches"])
        self._progress.yielded = self._progress.resume_batch

