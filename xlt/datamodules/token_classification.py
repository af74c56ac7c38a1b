"""Token classification data (the shared part of UD POS tagging and NER).

Each sentence is a list of words with one tag per word. Words are encoded with the fast tokenizer's
``is_split_into_words=True``; a word's tag goes to its FIRST sub-token, every other sub-token and the special
tokens get ``-100`` (not scored, not trained on), as in XTREME. Features per sentence:

- ``input_ids``: the sub-token ids, at most ``max_length`` (specials included);
- ``labels``: tag id on first sub-tokens, ``-100`` elsewhere;
- ``word_ids``: the word's index on its first sub-token, ``-100`` elsewhere (predictions go back to words);
- ``n_words``: the sentence's word count (words cut off by truncation get a fallback tag in prediction files).

A word that the tokenizer turns into nothing (e.g. a lone zero-width space) is encoded as the unknown token,
so every word before the truncation point is scored. Words after it are dropped from evaluation like XTREME
does; :attr:`TokenClassificationDataModule.truncated_words` counts them per split and language and a warning
is given once per split and language.
"""

from __future__ import annotations

from typing import Any, ClassVar

from datasets import Dataset
from lightning.pytorch.utilities import rank_zero_warn

from xlt.datamodules.task_data import IGNORE_INDEX, TaskDataModule
from xlt.errors import XltError

ENCODE_CHUNK = 1000


def first_subtoken_labels(word_ids: list[int | None], tag_ids: list[int]) -> tuple[list[int], list[int]]:
    """``(labels, word_index)`` per sub-token: the word's tag id and index on its first sub-token, -100 elsewhere.

    ``word_ids`` is a fast tokenizer's ``word_ids()`` of one sentence (``None`` on special tokens).
    """
    labels, words = [], []
    previous = None
    for word in word_ids:
        if word is None or word == previous:
            labels.append(IGNORE_INDEX)
            words.append(IGNORE_INDEX)
        else:
            labels.append(tag_ids[word])
            words.append(word)
        previous = word
    return labels, words


class TokenClassificationDataModule(TaskDataModule):
    """Sentences of words with one tag per word; subclasses name the tag column and the label set."""

    #: the reader schema's column holding one tag per word
    tag_column: ClassVar[str] = ""
    pad_keys: ClassVar[dict[str, int]] = {"labels": IGNORE_INDEX, "word_ids": IGNORE_INDEX}

    @property
    def truncated_words(self) -> dict[str, dict[str, int]]:
        """split -> language -> words dropped by truncation (not evaluated; fallback tag in prediction files)."""
        return self.__dict__.setdefault("_truncated_words", {})

    @property
    def empty_words(self) -> dict[str, dict[str, int]]:
        """split -> language -> words the tokenizer produced no sub-token for (encoded as the unknown token)."""
        return self.__dict__.setdefault("_empty_words", {})

    # ------------------------------------------------------------------------------------------ labels
    def tag_of(self, tag: str) -> str:
        """A dataset tag after ``label_map``."""
        return self.label_map.get(tag, tag)

    def tags_in(self, rows: Dataset) -> set[str]:
        """The tags (after ``label_map``) used in ``rows``."""
        if self.tag_column not in rows.column_names:
            return set()
        return {self.tag_of(tag) for tags in rows[:][self.tag_column] for tag in tags}

    def labels_of(self, rows: Dataset) -> list[Any] | None:
        """No sentence label: few-shot samples are drawn without stratification."""
        return None

    def map_labels(self, rows: Dataset, code: str, split: str) -> Dataset:
        """Apply ``label_map`` to the tags and check them against the training label set.

        Raises:
            XltError: naming the language, the source and the unknown tags, when some tag (after the map) is not
                in the training label set.
        """
        labels = list(self.label_names or [])
        unknown = sorted(self.tags_in(rows) - set(labels))
        if unknown:
            source, _ = self.source_of(code)
            raise XltError(f"{self.task}: the {split} tags {unknown} of language '{code}' ({source}) are not in the "
                           f"training label set {labels} — map them onto it with data.label_map "
                           f"(e.g. {{{unknown[0]}: O}})")
        if not self.label_map:
            return rows
        column, mapping = self.tag_column, dict(self.label_map)
        return rows.map(lambda batch: {column: [[mapping.get(t, t) for t in tags] for tags in batch[column]]},
                        batched=True, desc=None)

    # ------------------------------------------------------------------------------------------ encoding
    def encode(self, rows: Dataset, code: str, split: str) -> Dataset:
        """``input_ids``, ``labels`` (first sub-tokens), ``word_ids`` and ``n_words`` of each sentence."""
        tokenizer = self.tokenizer_for(code)
        index = {name: i for i, name in enumerate(self.label_names or [])}
        columns = rows[:]
        words_per_row: list[list[str]] = columns["tokens"]
        tags_per_row: list[list[str]] = columns[self.tag_column]
        out: dict[str, list] = {"input_ids": [], "labels": [], "word_ids": [], "n_words": []}
        truncated = empty = 0
        for start in range(0, len(words_per_row), ENCODE_CHUNK):
            words = [list(w) for w in words_per_row[start:start + ENCODE_CHUNK]]
            encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=self.max_length)
            ids = list(encoded["input_ids"])
            word_ids = [encoded.word_ids(i) for i in range(len(words))]
            for i, sentence in enumerate(words):
                if len({w for w in word_ids[i] if w is not None}) == len(sentence):
                    continue
                blank = self.words_without_subtokens(tokenizer, sentence)
                if blank:
                    empty += len(blank)
                    sentence = [tokenizer.unk_token if j in blank else w for j, w in enumerate(sentence)]
                    again = tokenizer([sentence], is_split_into_words=True, truncation=True,
                                      max_length=self.max_length)
                    ids[i], word_ids[i] = again["input_ids"][0], again.word_ids(0)
            for i, sentence in enumerate(words):
                tag_ids = [index[self.tag_of(t)] for t in tags_per_row[start + i]]
                labels, positions = first_subtoken_labels(word_ids[i], tag_ids)
                kept = sum(p != IGNORE_INDEX for p in positions)
                truncated += len(sentence) - kept
                out["input_ids"].append(ids[i])
                out["labels"].append(labels)
                out["word_ids"].append(positions)
                out["n_words"].append(len(sentence))
        self.truncated_words.setdefault(split, {})[code] = truncated
        self.empty_words.setdefault(split, {})[code] = empty
        if truncated:
            total = sum(out["n_words"])
            rank_zero_warn(f"{self.task} {split} '{code}': {truncated} of {total} words lie beyond "
                           f"data.max_length={self.max_length} sub-tokens; they are not evaluated (as in XTREME) "
                           "and get a fallback tag in prediction files — raise data.max_length to keep them")
        return Dataset.from_dict(out)

    @staticmethod
    def words_without_subtokens(tokenizer: Any, sentence: list[str]) -> set[int]:
        """Indices of the words of ``sentence`` that the tokenizer encodes as no sub-token at all."""
        full = tokenizer([sentence], is_split_into_words=True, truncation=False)
        present = {w for w in full.word_ids(0) if w is not None}
        return {j for j in range(len(sentence)) if j not in present}
