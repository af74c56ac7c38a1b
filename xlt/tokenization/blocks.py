"""Language-specific vocabulary blocks (configuration d): choose a language's block, build its model.

A designated language ``L`` gets a block of ``K`` pieces: the pieces of a unigram model fitted on ``L``'s text
that the shared model lacks, the ``K`` most probable (highest score) first. ``L``'s SentencePiece model is
the shared model, unchanged (same pieces, ids and scores, same normalizer), with the block appended; the
block pieces keep their scores from ``L``'s own model. Segmenting ``L``'s text with it is a Viterbi search
over shared pieces and ``L``'s block, so ``L`` never produces another language's pieces.
"""

from __future__ import annotations

from typing import Any

from xlt.tokenization.tokenizer import parse_model

_NORMAL = 1


def block_candidates(shared_proto: bytes, language_proto: bytes, size: int) -> list[tuple[str, float]]:
    """The block of a language: up to ``size`` (piece, score) pairs of its model missing from the shared one.

    Only ordinary pieces count (no control, byte or unknown pieces); ordered by descending score (ties by
    the order in the language's model).

    Example: shared pieces ``{▁a, b}`` and a language model with ``▁ab`` (-2.0), ``b`` (-3.0), ``▁x`` (-1.0):
    ``size=1`` gives ``[("▁x", -1.0)]``, ``size=5`` gives ``[("▁x", -1.0), ("▁ab", -2.0)]``.
    """
    shared = {piece.piece for piece in parse_model(shared_proto).pieces}
    candidates = [(piece.piece, float(piece.score)) for piece in parse_model(language_proto).pieces
                  if piece.type == _NORMAL and piece.piece not in shared]
    candidates.sort(key=lambda item: -item[1])  # stable: ties keep the language model's order
    return candidates[:size]


def language_model(shared_proto: bytes, block: list[tuple[str, float]]) -> bytes:
    """The shared model with ``block``'s pieces appended (a serialized SentencePiece model)."""
    proto = parse_model(shared_proto)
    for piece, score in block:
        proto.pieces.add(piece=piece, score=score, type=_NORMAL)
    proto.trainer_spec.vocab_size = len(proto.pieces)
    return proto.SerializeToString()


def piece_count(proto: bytes) -> int:
    """Number of pieces of a serialized SentencePiece model."""
    return len(parse_model(proto).pieces)


def describe_block(block: list[tuple[str, float]], requested: int, candidate_pieces: int) -> dict[str, Any]:
    """Manifest entry of a fitted block (before the tokenizer adds its id range)."""
    return {"requested": requested, "candidate_pieces": candidate_pieces,
            "top_pieces": [piece for piece, _ in block[:10]]}
