"""Vocabulary configurations: which of the paper's four vocabularies (§III.C) to fit, and its settings.

:class:`VocabularyConfig` is the one shape of a vocabulary configuration, wherever one is written: the
``vocabulary:`` block of ``xlt tokenizer fit`` (``configs/tokenizer/*.yaml``, ``--vocabulary.<field>``), the
corpus DataModule's ``tokenizer_fit`` and the ``vocabulary`` argument of the fitting functions
(:mod:`xlt.tokenization.fit`). :func:`resolve_designated` picks the languages that get a block of their own
(configuration d).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from xlt.errors import XltError
from xlt.languages import Panel

__all__ = ["CONFIGURATIONS", "DEFAULT_INPUT_SENTENCE_SIZE", "Configuration", "VocabularyConfig", "resolve_designated"]

DEFAULT_INPUT_SENTENCE_SIZE = 2_000_000
CONFIGURATIONS = ("shared", "balanced", "proportional_2x", "lang_specific")
Configuration = Literal["shared", "balanced", "proportional_2x", "lang_specific"]


@dataclass
class VocabularyConfig:
    """How a vocabulary is fitted: one of the paper's four configurations (§III.C) and its settings.

    Args:
        configuration: ``shared`` (a): one vocabulary, fitting sample proportional to corpus size;
            ``balanced`` (b): same size, per-language sample quotas ``∝ lines ** alpha`` (small languages'
            text is repeated to reach their quota); ``proportional_2x`` (c): twice the vocabulary size,
            proportional sample; ``lang_specific`` (d): the shared vocabulary of (a) plus a block of
            ``language_pieces`` pieces for each designated language.
        alpha: ``balanced`` only: quota exponent (0 = uniform over languages, 0.3 = XLM-R-style temperature,
            1 = proportional).
        language_pieces: ``lang_specific`` only: pieces per designated language's block (the paper: 50,000).
        designated_languages: ``lang_specific`` only: languages that get a block (default: the panel's
            ``designated: true`` languages present in the corpus).
        character_coverage: SentencePiece character coverage of every model fitted.
        input_sentence_size: lines in the fitting sample (bounded memory; per-language quotas come out of
            it).
        base_tokenizer: ``lang_specific`` only: an existing shared tokenizer directory (e.g. configuration a,
            the vocabulary of a checkpoint to extend) to add the blocks to, instead of fitting the shared
            model.
        sentencepiece_options: further SentencePiece trainer options (``num_threads``, ``split_digits`` ...).
    """

    configuration: Configuration = "shared"
    alpha: float = 0.0
    language_pieces: int = 1000
    designated_languages: list[str] | None = None
    character_coverage: float = 0.9995
    input_sentence_size: int = DEFAULT_INPUT_SENTENCE_SIZE
    base_tokenizer: str | None = None
    sentencepiece_options: dict[str, Any] = field(default_factory=dict)

    def check(self, where: str = "") -> None:
        """Raise :class:`XltError` (naming ``where``, e.g. ``data.tokenizer_fit.``) for invalid settings."""
        if self.configuration not in CONFIGURATIONS:
            raise XltError(f"{where}configuration '{self.configuration}' is unknown — use one of "
                           f"{', '.join(CONFIGURATIONS)}")
        if not (self.alpha >= 0 and math.isfinite(self.alpha)):
            raise XltError(f"{where}alpha {self.alpha} must be >= 0 (0 = uniform, 1 = proportional)")
        if self.language_pieces < 1:
            raise XltError(f"{where}language_pieces {self.language_pieces} must be a positive integer")
        if not 0 < self.character_coverage <= 1:
            raise XltError(f"{where}character_coverage {self.character_coverage} must be in (0, 1]")
        if self.input_sentence_size < 1:
            raise XltError(f"{where}input_sentence_size {self.input_sentence_size} must be positive")
        if self.base_tokenizer is not None and self.configuration != "lang_specific":
            raise XltError(f"{where}base_tokenizer is only used by configuration lang_specific — remove it "
                           f"or set configuration: lang_specific")
        if self.designated_languages is not None and len(set(self.designated_languages)) != len(
                self.designated_languages):
            raise XltError(f"{where}designated_languages {self.designated_languages} lists a language twice")

    def identity(self) -> dict[str, Any]:
        """The settings that change the fitted vocabulary (for cache keys); irrelevant ones are dropped."""
        out: dict[str, Any] = {"configuration": self.configuration,
                               "character_coverage": self.character_coverage,
                               "input_sentence_size": self.input_sentence_size,
                               "sentencepiece_options": dict(sorted(self.sentencepiece_options.items()))}
        if self.configuration == "balanced":
            out["alpha"] = self.alpha
        if self.configuration == "lang_specific":
            out.update(language_pieces=self.language_pieces, designated_languages=self.designated_languages,
                       base_tokenizer=self.base_tokenizer)
        return out


def resolve_designated(vocabulary: VocabularyConfig, languages: Sequence[str], panel: Panel | None,
                       where: str = "") -> list[str]:
    """The designated languages of a ``lang_specific`` fit, in corpus order; ``[]`` for other configurations.

    Explicit ``designated_languages`` must all be in ``languages`` (the corpus); otherwise the panel's
    ``designated: true`` languages present in the corpus are used, and there must be at least one.
    """
    if vocabulary.configuration != "lang_specific":
        return []
    if vocabulary.designated_languages is not None:
        absent = [code for code in vocabulary.designated_languages if code not in languages]
        if absent:
            raise XltError(f"{where}designated_languages {', '.join(absent)} not in the corpus (languages: "
                           f"{', '.join(languages)}) — add their text or drop them from designated_languages")
        if not vocabulary.designated_languages:
            raise XltError(f"{where}designated_languages is empty — list at least one language or use "
                           "configuration shared")
        chosen = set(vocabulary.designated_languages)
    else:
        marked = {lang.code for lang in panel if lang.designated} if panel is not None else set()
        chosen = marked & set(languages)
        if not chosen:
            name = f"panel '{panel.name}'" if panel is not None else "no panel"
            raise XltError(f"{where}designated_languages is unset and {name} marks none of the corpus languages "
                           "designated — set designated_languages (e.g. the tail languages) or mark "
                           "languages `designated: true` in the panel")
    return [code for code in languages if code in chosen]
