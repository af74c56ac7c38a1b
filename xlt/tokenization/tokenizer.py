"""The xlt tokenizer: a SentencePiece unigram model (byte fallback) with XLM-R / fairseq ids.

Id layout (the one XLM-R checkpoints use)::

    <s> = 0   <pad> = 1   </s> = 2   <unk> = 3
    SentencePiece piece i (i >= 3, i.e. every real piece incl. the 256 byte pieces) -> i + 1
    <mask> = vocab_size - 1 (the last id)

so a SentencePiece model with ``n`` pieces gives ``vocab_size = n + 2`` ids (XLM-R: 250,000 -> 250,002).

A tokenizer directory holds ``sentencepiece.bpe.model`` (the model), ``tokenizer.json`` +
``tokenizer_config.json`` (a transformers tokenizer with the same ids, for
``AutoTokenizer.from_pretrained``) and ``manifest.json`` (how it was fitted). The ``lang`` argument of
:meth:`XltTokenizer.encode` is accepted now and ignored; language-aware configurations
(language-specific vocabulary blocks) will use it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from xlt.atomic import atomic_dir, atomic_file
from xlt.errors import XltError

MODEL_FILE = "sentencepiece.bpe.model"
MANIFEST_FILE = "manifest.json"
HF_FILES = ("tokenizer.json", "tokenizer_config.json")

BOS, PAD, EOS, UNK, MASK = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
# SentencePiece ids of the control pieces our models must have (the SentencePiece defaults).
_SP_UNK, _SP_BOS, _SP_EOS = 0, 1, 2


def _default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 16))


class XltTokenizer:
    """SentencePiece unigram tokenizer with XLM-R (fairseq) id layout.

    Build it with :func:`xlt.tokenization.fit.fit_tokenizer` or :meth:`load`. It pickles (the model travels
    as bytes), so it can be used in DataLoader workers and ``datasets.map``.

    Attributes:
        bos_id, pad_id, eos_id, unk_id, mask_id: the special ids (0, 1, 2, 3, ``vocab_size - 1``).
        special_ids: all special ids, ascending.
        manifest: the fitting manifest (empty when built from a bare model).
    """

    bos_id = 0
    pad_id = 1
    eos_id = 2
    unk_id = 3

    def __init__(self, model_proto: bytes, manifest: dict[str, Any] | None = None,
                 num_threads: int | None = None) -> None:
        """Wrap a serialized SentencePiece model.

        Args:
            model_proto: the bytes of a SentencePiece ``.model`` file (unigram; ``<unk>``, ``<s>``, ``</s>``
                at SentencePiece ids 0, 1, 2 and no ``<pad>`` piece).
            manifest: metadata about how the model was fitted (kept and saved as ``manifest.json``).
            num_threads: threads for batched encoding (default: CPU count, at most 16).
        """
        self._proto = bytes(model_proto)
        self.manifest: dict[str, Any] = dict(manifest or {})
        self.num_threads = num_threads or _default_threads()
        self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        sp = self._sp
        if (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) != (_SP_UNK, _SP_BOS, _SP_EOS, -1):
            raise XltError(
                "SentencePiece model has unk/bos/eos/pad ids "
                f"{(sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id())} — xlt needs (0, 1, 2, -1); "
                "refit it with xlt.tokenization.fit.fit_tokenizer"
            )
        n = sp.get_piece_size()
        self.sp_vocab_size = n
        self.vocab_size = n + 2
        self.mask_id = n + 1
        self.special_ids: tuple[int, ...] = (self.bos_id, self.pad_id, self.eos_id, self.unk_id, self.mask_id)
        # SentencePiece id -> xlt id (vectorised remapping of whole batches).
        to_xlt = np.arange(n, dtype=np.int64) + 1
        to_xlt[[_SP_UNK, _SP_BOS, _SP_EOS]] = [self.unk_id, self.bos_id, self.eos_id]
        self._to_xlt = to_xlt.astype(np.int32)
        # xlt id -> SentencePiece id; -1 for ids without a piece (<pad>, <mask>).
        to_sp = np.full(self.vocab_size, -1, dtype=np.int64)
        to_sp[to_xlt] = np.arange(n)
        self._to_sp = to_sp

    # ------------------------------------------------------------------ properties
    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token strings and their ids."""
        return {BOS: self.bos_id, PAD: self.pad_id, EOS: self.eos_id, UNK: self.unk_id, MASK: self.mask_id}

    @property
    def model_proto(self) -> bytes:
        """The serialized SentencePiece model."""
        return self._proto

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        langs = self.manifest.get("languages")
        return f"XltTokenizer(vocab_size={self.vocab_size}" + (f", languages={langs})" if langs else ")")

    def __getstate__(self) -> dict[str, Any]:
        return {"model_proto": self._proto, "manifest": self.manifest, "num_threads": self.num_threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model_proto"], state["manifest"], state["num_threads"])  # type: ignore[misc]

    # ------------------------------------------------------------------ encoding
    def encode_arrays(self, texts: Sequence[str], lang: str | None = None) -> list[np.ndarray]:
        """Like :meth:`encode` but returns one ``int32`` array per text (no Python int lists)."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts; wrap a single text in a list")
        texts = list(texts)
        if not texts:
            return []
        try:
            pieces = self._sp.encode(texts, num_threads=self.num_threads, return_type="numpy")
        except (TypeError, ValueError):  # older sentencepiece without numpy output
            raw = self._sp.encode(texts, num_threads=self.num_threads)
            pieces = [np.asarray(p, dtype=np.int32) for p in raw]
        lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
        flat = np.concatenate(pieces) if lengths.sum() else np.zeros(0, dtype=np.int32)
        mapped = self._to_xlt[flat]
        return np.split(mapped, np.cumsum(lengths)[:-1])

    def encode(self, texts: Sequence[str], lang: str | None = None) -> list[list[int]]:
        """Token ids of each text, without special tokens.

        Args:
            texts: the texts (a list; batched with ``num_threads`` threads).
            lang: ISO 639-3 code of the texts' language; unused by this (shared-vocabulary) tokenizer.
        """
        return [a.tolist() for a in self.encode_arrays(texts, lang)]

    def tokenize(self, text: str) -> list[str]:
        """The SentencePiece pieces of one text (for inspection)."""
        return self._sp.encode(text, out_type=str)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of a sequence of ids; ``<s>``, ``<pad>``, ``</s>`` and ``<mask>`` are skipped."""
        arr = np.asarray(list(ids) if not hasattr(ids, "__array__") else ids, dtype=np.int64).reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise ValueError(f"token id out of range [0, {self.vocab_size}): {arr.min()}..{arr.max()}")
        sp_ids = self._to_sp[arr]
        keep = (sp_ids >= 0) & (sp_ids != _SP_BOS) & (sp_ids != _SP_EOS)
        return self._sp.decode(sp_ids[keep].tolist())

    def id_to_piece(self, token_id: int) -> str:
        """The piece string of an id (special tokens as ``<s>``, ``<mask>``...)."""
        specials = {v: k for k, v in self.special_tokens.items()}
        if token_id in specials:
            return specials[token_id]
        return self._sp.id_to_piece(int(self._to_sp[token_id]))

    # ------------------------------------------------------------------ persistence
    @classmethod
    def load(cls, directory: str | Path, num_threads: int | None = None) -> XltTokenizer:
        """Load a tokenizer directory written by :meth:`save` or ``fit_tokenizer``."""
        directory = Path(directory)
        model = directory / MODEL_FILE
        if not model.is_file():
            raise XltError(f"tokenizer directory {directory} has no {MODEL_FILE} — "
                           "fit one with `xlt tokenizer` or point to an existing tokenizer directory")
        manifest_path = directory / MANIFEST_FILE
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
        return cls(model.read_bytes(), manifest=manifest, num_threads=num_threads)

    def write_files(self, directory: str | Path) -> None:
        """Write the model, the transformers tokenizer files and the manifest into an existing directory."""
        directory = Path(directory)
        (directory / MODEL_FILE).write_bytes(self._proto)
        self.save_hf(directory)
        manifest = {"vocab_size": self.vocab_size, "sentencepiece_vocab_size": self.sp_vocab_size,
                    "special_ids": self.special_tokens, **self.manifest}
        with atomic_file(directory / MANIFEST_FILE) as handle:
            json.dump(manifest, handle, indent=2, ensure_ascii=False, sort_keys=False)
            handle.write("\n")

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the tokenizer directory atomically (an existing one needs ``overwrite=True``)."""
        with atomic_dir(directory, overwrite=overwrite) as tmp:
            self.write_files(tmp)
        return Path(directory)

    # ------------------------------------------------------------------ transformers
    def _hf_backend(self):
        """A ``tokenizers.Tokenizer`` that reproduces our ids exactly (byte fallback included)."""
        from tokenizers import processors
        from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

        model_pb2 = import_protobuf()
        proto = model_pb2.ModelProto()
        proto.ParseFromString(self._proto)
        vocab = [(BOS, 0.0), (PAD, 0.0), (EOS, 0.0), (UNK, 0.0)]
        vocab += [(p.piece, p.score) for p in proto.pieces[3:]]
        vocab.append((MASK, 0.0))
        proto.trainer_spec.unk_id = self.unk_id  # the Unigram model's unk id in the new layout
        backend = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {EOS}",
            pair=f"{BOS} $A {EOS} {EOS} $B {EOS}",
            special_tokens=[(BOS, self.bos_id), (EOS, self.eos_id)],
        )
        return backend

    def _hf_kwargs(self) -> dict[str, Any]:
        return {"bos_token": BOS, "eos_token": EOS, "sep_token": EOS, "cls_token": BOS, "unk_token": UNK,
                "pad_token": PAD, "mask_token": MASK, "model_input_names": ["input_ids", "attention_mask"]}

    def to_hf(self):
        """A transformers ``XLMRobertaTokenizer`` whose ids equal ours (specials, pieces and byte fallback).

        Built from our SentencePiece model as a ``tokenizer_object``: transformers 5's
        ``XLMRobertaTokenizer(vocab_file=...)`` builds a 5-token vocabulary, and its own SentencePiece
        conversion drops byte fallback (unseen characters would become ``<unk>`` instead of byte pieces).
        Its ``save_pretrained`` writes files that reload exactly (see :meth:`save_hf`).
        """
        return _xlmr_class()(tokenizer_object=self._hf_backend(), **self._hf_kwargs())

    def save_hf(self, directory: str | Path) -> None:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` for ``AutoTokenizer.from_pretrained``."""
        self.to_hf().save_pretrained(str(directory))


def _generic_tokenizer_config(directory: str | Path) -> None:
    """Point ``tokenizer_config.json`` at the generic ``TokenizersBackend`` class.

    Loading the files as ``XLMRobertaTokenizer`` would rebuild the backend without byte fallback, while the
    generic class loads ``tokenizer.json`` as written (same vocabulary, specials, normalizer and the
    ``<s> … </s>`` template as XLM-R).
    """
    path = Path(directory) / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "TokenizersBackend"
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


_XLMR_CLASS: type | None = None


def _xlmr_class() -> type:
    """``XLMRobertaTokenizer`` whose saved files reload with identical ids (byte fallback included)."""
    global _XLMR_CLASS
    if _XLMR_CLASS is None:
        from transformers import XLMRobertaTokenizer

        class XltXLMRobertaTokenizer(XLMRobertaTokenizer):
            """An XLM-R tokenizer built from an xlt SentencePiece model; saves reloadable files."""

            def save_pretrained(self, save_directory, *args, **kwargs):  # type: ignore[override]
                files = super().save_pretrained(save_directory, *args, **kwargs)
                _generic_tokenizer_config(save_directory)
                return files

        XltXLMRobertaTokenizer.__module__ = __name__
        XltXLMRobertaTokenizer.__qualname__ = "XltXLMRobertaTokenizer"
        _XLMR_CLASS = XltXLMRobertaTokenizer
    return _XLMR_CLASS


def __getattr__(name: str) -> Any:
    # The transformers subclass is built on first use (importing transformers is slow); this lets pickle
    # find it as xlt.tokenization.tokenizer.XltXLMRobertaTokenizer.
    if name == "XltXLMRobertaTokenizer":
        return _xlmr_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
