"""The xlt tokenizer: SentencePiece unigram (byte fallback) with XLM-R / fairseq ids, optionally language-aware.

Id layout (the one XLM-R checkpoints use)::

    <s> = 0   <pad> = 1   </s> = 2   <unk> = 3
    SentencePiece piece i (i >= 3, i.e. every real piece incl. the 256 byte pieces) -> i + 1
    <mask> = n + 1 (the last id of the shared vocabulary)

so a shared SentencePiece model with ``n`` pieces gives ``shared_vocab_size = n + 2`` ids (XLM-R: 250,000 ->
250,002).

**Language-specific blocks** (vocabulary configuration d). A tokenizer may carry, for each *designated*
language ``L``, a block of ``k_L`` extra pieces. ``L``'s SentencePiece model is the shared model with ``L``'s
block appended (same shared pieces and scores, then the block's pieces with the scores of a unigram model
fitted on ``L``'s text). Blocks get global ids after the shared vocabulary, in manifest order::

    [0, n + 2)                       shared ids (specials, pieces, <mask>)
    [n + 2, n + 2 + k_1)             block of the first designated language
    [n + 2 + k_1, n + 2 + k_1 + k_2) block of the second ...

``vocab_size`` is the global size (shared + all blocks); ``<mask>`` stays at ``n + 1`` so that a checkpoint
trained with the shared tokenizer is a prefix of the extended vocabulary. :meth:`XltTokenizer.encode` routes
by language: text in a designated language is segmented with its own model (shared pieces + its block),
text in any other language (or ``lang=None``) with the shared model alone — exactly the shared tokenizer's
ids — so a language never produces another language's block ids.

A tokenizer directory holds ``sentencepiece.bpe.model`` (the shared model), ``languages/<code>.model`` (one
per designated language), ``tokenizer.json`` + ``tokenizer_config.json`` (a transformers tokenizer of the
shared model with the same ids, for ``AutoTokenizer.from_pretrained``; for configuration d this is exact for
non-designated languages), ``hf/<code>/`` (configuration d: a transformers tokenizer for designated language
``<code>`` over the global vocabulary, whose ids equal ours for that language's text) and ``manifest.json``
(how it was fitted, block id ranges). Load the full language-aware tokenizer with :meth:`XltTokenizer.load`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from xlt.atomic import atomic_dir, atomic_file
from xlt.errors import XltError

MODEL_FILE = "sentencepiece.bpe.model"
MANIFEST_FILE = "manifest.json"
LANGUAGE_MODELS_DIR = "languages"
HF_LANGUAGE_DIR = "hf"
HF_FILES = ("tokenizer.json", "tokenizer_config.json")

BOS, PAD, EOS, UNK, MASK = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
# SentencePiece ids of the control pieces our models must have (the SentencePiece defaults).
_SP_UNK, _SP_BOS, _SP_EOS = 0, 1, 2
_NORMAL = 1  # SentencePiece piece type of ordinary pieces


def _default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 16))


def _model_pb2():
    from sentencepiece import sentencepiece_model_pb2

    return sentencepiece_model_pb2


def parse_model(model_proto: bytes):
    """A serialized SentencePiece model as a ``ModelProto`` message."""
    proto = _model_pb2().ModelProto()
    proto.ParseFromString(model_proto)
    return proto


def language_model_file(code: str) -> str:
    """Path of a designated language's SentencePiece model inside a tokenizer directory."""
    return f"{LANGUAGE_MODELS_DIR}/{code}.model"


def tokenizer_fingerprint(directory: str | Path) -> str:
    """A short hash of a tokenizer directory's models (shared model, then the language models in block order).

    Reads only files (no SentencePiece loading); for a tokenizer without blocks it is the hash of the shared
    model alone.
    """
    directory = Path(directory)
    digest = hashlib.sha256((directory / MODEL_FILE).read_bytes())
    manifest_path = directory / MANIFEST_FILE
    blocks = {}
    if manifest_path.is_file():
        blocks = json.loads(manifest_path.read_text(encoding="utf-8")).get("blocks") or {}
    for code, block in blocks.items():
        digest.update(f"\0{code}\0{block['start']}\0".encode())
        digest.update((directory / block.get("model", language_model_file(code))).read_bytes())
    return digest.hexdigest()[:16]


class XltTokenizer:
    """SentencePiece unigram tokenizer with XLM-R (fairseq) id layout and optional language-specific blocks.

    Build it with :func:`xlt.tokenization.fit.fit_tokenizer` / :func:`xlt.tokenization.fit.fit_configuration`
    or :meth:`load`. It pickles (the models travel as bytes), so it can be used in DataLoader workers and
    ``datasets.map``.

    Attributes:
        bos_id, pad_id, eos_id, unk_id, mask_id: the special ids (0, 1, 2, 3, ``shared_vocab_size - 1``).
        special_ids: all special ids, ascending.
        vocab_size: the global number of ids (shared vocabulary + every language block).
        shared_vocab_size: ids of the shared vocabulary (``sp_vocab_size + 2``).
        blocks: designated language -> ``(start, stop)`` global id range of its block (empty without blocks).
        manifest: the fitting manifest (empty when built from a bare model).
    """

    bos_id = 0
    pad_id = 1
    eos_id = 2
    unk_id = 3

    def __init__(self, model_proto: bytes, manifest: dict[str, Any] | None = None,
                 num_threads: int | None = None, language_models: Mapping[str, bytes] | None = None) -> None:
        """Wrap a serialized SentencePiece model (and, for configuration d, the designated languages' models).

        Args:
            model_proto: the bytes of a SentencePiece ``.model`` file (unigram; ``<unk>``, ``<s>``, ``</s>``
                at SentencePiece ids 0, 1, 2 and no ``<pad>`` piece).
            manifest: metadata about how the model was fitted (kept and saved as ``manifest.json``).
            num_threads: threads for batched encoding (default: CPU count, at most 16).
            language_models: designated language code -> the bytes of its SentencePiece model, which must be
                the shared model's pieces followed by the language's block; blocks get global ids in this
                order.
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
        self.shared_vocab_size = n + 2
        self.mask_id = n + 1
        self.special_ids: tuple[int, ...] = (self.bos_id, self.pad_id, self.eos_id, self.unk_id, self.mask_id)
        # SentencePiece id -> xlt id (vectorised remapping of whole batches).
        to_xlt = np.arange(n, dtype=np.int64) + 1
        to_xlt[[_SP_UNK, _SP_BOS, _SP_EOS]] = [self.unk_id, self.bos_id, self.eos_id]
        self._to_xlt = to_xlt.astype(np.int32)
        self._language_protos: dict[str, bytes] = {}
        self._language_sp: dict[str, spm.SentencePieceProcessor] = {}
        self._language_to_xlt: dict[str, np.ndarray] = {}
        self._block_pieces: dict[str, list[str]] = {}
        self.blocks: dict[str, tuple[int, int]] = {}
        start = self.shared_vocab_size
        for code, proto in (language_models or {}).items():
            pieces = self._check_language_model(code, proto)
            self._language_protos[code] = bytes(proto)
            self._language_sp[code] = spm.SentencePieceProcessor(model_proto=bytes(proto))
            self._block_pieces[code] = pieces
            self.blocks[code] = (start, start + len(pieces))
            self._language_to_xlt[code] = np.concatenate(
                [self._to_xlt, np.arange(start, start + len(pieces), dtype=np.int32)])
            start += len(pieces)
        self.vocab_size = start
        # xlt id -> SentencePiece id of the decoding model; -1 for ids without a piece (<pad>, <mask>).
        to_sp = np.full(self.vocab_size, -1, dtype=np.int64)
        to_sp[to_xlt] = np.arange(n)
        self._to_sp = to_sp
        self._decoder: spm.SentencePieceProcessor | None = None if self.blocks else self._sp

    def _check_language_model(self, code: str, proto: bytes) -> list[str]:
        """The block pieces of a language model; an error unless it is the shared model plus a block."""
        shared = parse_model(self._proto)
        model = parse_model(bytes(proto))
        n = len(shared.pieces)
        if len(model.pieces) < n or any(a.piece != b.piece for a, b in zip(shared.pieces, model.pieces[:n],
                                                                           strict=False)):
            raise XltError(f"language model for '{code}' does not start with the shared model's pieces — refit "
                           "the tokenizer (xlt tokenizer fit) so that shared model and blocks match")
        block = model.pieces[n:]
        if any(piece.type != _NORMAL for piece in block):
            raise XltError(f"language model for '{code}' has non-normal pieces in its block — refit the tokenizer")
        return [piece.piece for piece in block]

    # ------------------------------------------------------------------ properties
    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token strings and their ids."""
        return {BOS: self.bos_id, PAD: self.pad_id, EOS: self.eos_id, UNK: self.unk_id, MASK: self.mask_id}

    @property
    def model_proto(self) -> bytes:
        """The serialized shared SentencePiece model."""
        return self._proto

    @property
    def language_models(self) -> dict[str, bytes]:
        """Designated language -> its serialized SentencePiece model (shared pieces + block)."""
        return dict(self._language_protos)

    @property
    def designated_languages(self) -> list[str]:
        """The languages with a block, in block order."""
        return list(self.blocks)

    def block_of(self, token_id: int) -> str | None:
        """The designated language whose block holds ``token_id`` (``None`` for shared ids)."""
        for code, (start, stop) in self.blocks.items():
            if start <= token_id < stop:
                return code
        return None

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        langs = self.manifest.get("languages")
        extra = f", blocks={ {c: list(r) for c, r in self.blocks.items()} }" if self.blocks else ""
        return f"XltTokenizer(vocab_size={self.vocab_size}" + (f", languages={langs}" if langs else "") + extra + ")"

    def __getstate__(self) -> dict[str, Any]:
        return {"model_proto": self._proto, "manifest": self.manifest, "num_threads": self.num_threads,
                "language_models": self._language_protos}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model_proto"], state["manifest"], state["num_threads"],  # type: ignore[misc]
                      state.get("language_models"))

    # ------------------------------------------------------------------ encoding
    def _route(self, lang: str | None) -> tuple[spm.SentencePieceProcessor, np.ndarray]:
        if lang is not None and lang in self._language_sp:
            return self._language_sp[lang], self._language_to_xlt[lang]
        return self._sp, self._to_xlt

    def _encode_one(self, texts: list[str], lang: str | None) -> list[np.ndarray]:
        sp, to_xlt = self._route(lang)
        try:
            pieces = sp.encode(texts, num_threads=self.num_threads, return_type="numpy")
        except (TypeError, ValueError):  # older sentencepiece without numpy output
            raw = sp.encode(texts, num_threads=self.num_threads)
            pieces = [np.asarray(p, dtype=np.int32) for p in raw]
        lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
        flat = np.concatenate(pieces) if lengths.sum() else np.zeros(0, dtype=np.int32)
        mapped = to_xlt[flat]
        return np.split(mapped, np.cumsum(lengths)[:-1])

    def encode_arrays(self, texts: Sequence[str], lang: str | Sequence[str | None] | None = None) -> list[np.ndarray]:
        """Like :meth:`encode` but returns one ``int32`` array per text (no Python int lists)."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts; wrap a single text in a list")
        texts = list(texts)
        if not texts:
            return []
        if lang is None or isinstance(lang, str) or not self.blocks:
            return self._encode_one(texts, lang if isinstance(lang, str) else None)
        langs = list(lang)
        if len(langs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(langs)} languages")
        out: list[np.ndarray] = [np.zeros(0, dtype=np.int32)] * len(texts)
        groups: dict[str | None, list[int]] = {}
        for index, code in enumerate(langs):
            groups.setdefault(code if code in self.blocks else None, []).append(index)
        for code, indices in groups.items():
            for index, ids in zip(indices, self._encode_one([texts[i] for i in indices], code), strict=True):
                out[index] = ids
        return out

    def encode(self, texts: Sequence[str], lang: str | Sequence[str | None] | None = None) -> list[list[int]]:
        """Token ids of each text, without special tokens.

        Args:
            texts: the texts (a list; batched with ``num_threads`` threads).
            lang: ISO 639-3 code of the texts' language, or one code per text. Text in a designated
                language is segmented with the shared pieces plus that language's block; any other code
                (or ``None``) uses the shared vocabulary alone.
        """
        return [a.tolist() for a in self.encode_arrays(texts, lang)]

    def tokenize(self, text: str, lang: str | None = None) -> list[str]:
        """The SentencePiece pieces of one text (for inspection), segmented as :meth:`encode` would."""
        return self._route(lang)[0].encode(text, out_type=str)

    def _decoding_model(self) -> spm.SentencePieceProcessor:
        """A model holding every piece string once (shared + all blocks) and the map of ids onto it."""
        if self._decoder is None:
            proto = parse_model(self._proto)
            index = {piece.piece: i for i, piece in enumerate(proto.pieces)}
            for code, (start, _) in self.blocks.items():
                for offset, piece in enumerate(self._block_pieces[code]):
                    if piece not in index:
                        index[piece] = len(proto.pieces)
                        proto.pieces.add(piece=piece, score=0.0, type=_NORMAL)
                    self._to_sp[start + offset] = index[piece]
            proto.trainer_spec.vocab_size = len(proto.pieces)
            self._decoder = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
        return self._decoder

    def decode(self, ids: Iterable[int]) -> str:
        """Text of a sequence of ids; ``<s>``, ``<pad>``, ``</s>`` and ``<mask>`` are skipped."""
        arr = np.asarray(list(ids) if not hasattr(ids, "__array__") else ids, dtype=np.int64).reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise ValueError(f"token id out of range [0, {self.vocab_size}): {arr.min()}..{arr.max()}")
        decoder = self._decoding_model()
        sp_ids = self._to_sp[arr]
        keep = (sp_ids >= 0) & (sp_ids != _SP_BOS) & (sp_ids != _SP_EOS)
        return decoder.decode(sp_ids[keep].tolist())

    def id_to_piece(self, token_id: int) -> str:
        """The piece string of an id (special tokens as ``<s>``, ``<mask>``...)."""
        specials = {v: k for k, v in self.special_tokens.items()}
        if token_id in specials:
            return specials[token_id]
        code = self.block_of(int(token_id)) if token_id >= self.shared_vocab_size else None
        if code is not None:
            return self._block_pieces[code][int(token_id) - self.blocks[code][0]]
        return self._sp.id_to_piece(int(self._to_sp[token_id]))

    def block_piece_segmentations(self, lang: str) -> dict[int, list[int]]:
        """Each block id of ``lang`` -> the shared ids of its piece string segmented by the shared model.

        The piece is segmented as it stands (a leading ``▁`` is a word start; no dummy prefix is added to
        word-internal pieces), so the parts spell exactly the block piece. Used to initialise the embedding
        rows of language-specific pieces (:mod:`xlt.models.embeddings`).
        """
        if lang not in self.blocks:
            raise XltError(f"language '{lang}' has no vocabulary block — designated languages: "
                           f"{', '.join(self.blocks) or 'none'}")
        proto = parse_model(self._proto)
        proto.normalizer_spec.add_dummy_prefix = False
        proto.normalizer_spec.remove_extra_whitespaces = False
        raw = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
        texts = [piece.replace("\u2581", " ") for piece in self._block_pieces[lang]]
        start = self.blocks[lang][0]
        return {start + i: self._to_xlt[np.asarray(ids, dtype=np.int64)].tolist()
                for i, ids in enumerate(raw.encode(texts))}

    # ------------------------------------------------------------------ persistence
    @classmethod
    def load(cls, directory: str | Path, num_threads: int | None = None) -> XltTokenizer:
        """Load a tokenizer directory written by :meth:`save` or the fitting functions (blocks included)."""
        directory = Path(directory)
        model = directory / MODEL_FILE
        if not model.is_file():
            raise XltError(f"tokenizer directory {directory} has no {MODEL_FILE} — "
                           "fit one with `xlt tokenizer` or point to an existing tokenizer directory")
        manifest_path = directory / MANIFEST_FILE
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
        language_models = {}
        for code, block in (manifest.get("blocks") or {}).items():
            path = directory / block.get("model", language_model_file(code))
            if not path.is_file():
                raise XltError(f"tokenizer directory {directory} lacks {path.relative_to(directory)} (block of "
                               f"language '{code}') — copy the whole directory or refit the tokenizer")
            language_models[code] = path.read_bytes()
        tokenizer = cls(model.read_bytes(), manifest=manifest, num_threads=num_threads,
                        language_models=language_models)
        for code, block in (manifest.get("blocks") or {}).items():
            if tuple(tokenizer.blocks[code]) != (block["start"], block["stop"]):
                raise XltError(f"{manifest_path}: block of '{code}' is recorded as [{block['start']}, "
                               f"{block['stop']}) but its model gives {list(tokenizer.blocks[code])} — refit")
        return tokenizer

    def block_manifest(self) -> dict[str, dict[str, Any]]:
        """Per designated language: global id range, size and model file (merged into ``manifest.json``)."""
        recorded = self.manifest.get("blocks") or {}
        return {code: {**recorded.get(code, {}), "start": start, "stop": stop, "size": stop - start,
                       "model": language_model_file(code)} for code, (start, stop) in self.blocks.items()}

    def write_files(self, directory: str | Path) -> None:
        """Write the model(s), the transformers tokenizer files and the manifest into an existing directory."""
        directory = Path(directory)
        (directory / MODEL_FILE).write_bytes(self._proto)
        for code, proto in self._language_protos.items():
            path = directory / language_model_file(code)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(proto)
        self.save_hf(directory)
        manifest = {"vocab_size": self.vocab_size, "shared_vocab_size": self.shared_vocab_size,
                    "sentencepiece_vocab_size": self.sp_vocab_size, "special_ids": self.special_tokens,
                    **{k: v for k, v in self.manifest.items() if k not in ("blocks", "hf")}}
        if self.blocks:
            manifest["blocks"] = self.block_manifest()
            manifest["hf"] = {"shared": ".", **{code: f"{HF_LANGUAGE_DIR}/{code}" for code in self.blocks}}
        with atomic_file(directory / MANIFEST_FILE) as handle:
            json.dump(manifest, handle, indent=2, ensure_ascii=False, sort_keys=False)
            handle.write("\n")

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the tokenizer directory atomically (an existing one needs ``overwrite=True``)."""
        with atomic_dir(directory, overwrite=overwrite) as tmp:
            self.write_files(tmp)
        return Path(directory)

    # ------------------------------------------------------------------ transformers
    def _hf_backend(self, lang: str | None = None):
        """A ``tokenizers.Tokenizer`` that reproduces our ids exactly (byte fallback included).

        With ``lang`` (a designated language) the vocabulary is the global one: the shared layout, then
        every block in order, where the other languages' blocks are placeholder pieces that contain a space
        (normalized text never does, so they are never produced) scored like the least likely real piece.
        """
        from tokenizers import processors
        from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

        model_pb2 = import_protobuf()
        proto = model_pb2.ModelProto()
        proto.ParseFromString(self._language_protos[lang] if lang is not None else self._proto)
        n = self.sp_vocab_size
        vocab = [(BOS, 0.0), (PAD, 0.0), (EOS, 0.0), (UNK, 0.0)]
        vocab += [(p.piece, p.score) for p in proto.pieces[3:n]]
        vocab.append((MASK, 0.0))
        if lang is not None:
            floor = min(p.score for p in proto.pieces if p.type == _NORMAL)
            for code, (start, stop) in self.blocks.items():
                if code == lang:
                    vocab += [(p.piece, p.score) for p in proto.pieces[n:]]
                else:
                    vocab += [(f"<xlt {code} block {i}>", floor) for i in range(stop - start)]
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

    def to_hf(self, lang: str | None = None):
        """A transformers ``XLMRobertaTokenizer`` whose ids equal ours (specials, pieces and byte fallback).

        Built from our SentencePiece model as a ``tokenizer_object``: transformers 5's
        ``XLMRobertaTokenizer(vocab_file=...)`` builds a 5-token vocabulary, and its own SentencePiece
        conversion drops byte fallback (unseen characters would become ``<unk>`` instead of byte pieces).
        Its ``save_pretrained`` writes files that reload exactly (see :meth:`save_hf`).

        Args:
            lang: a designated language: the tokenizer segments like ``encode(texts, lang)`` and covers the
                global vocabulary. Default (or a language without a block): the shared tokenizer.
        """
        lang = lang if lang in self.blocks else None
        return _xlmr_class()(tokenizer_object=self._hf_backend(lang), **self._hf_kwargs())

    def save_hf(self, directory: str | Path) -> None:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` for ``AutoTokenizer.from_pretrained``.

        The directory gets the shared tokenizer; each designated language also gets ``hf/<code>/``.
        """
        self.to_hf().save_pretrained(str(directory))
        for code in self.blocks:
            self.to_hf(code).save_pretrained(str(Path(directory) / HF_LANGUAGE_DIR / code))


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
