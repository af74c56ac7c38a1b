"""Probing data from the real UD + Tatoeba subsets and the synthetic panel; what is missing is named at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from xlt.errors import XltError
from xlt.probing.data import load_probing_data, ud_languages


def test_real_data_english_train_every_ud_language_and_every_tatoeba_pair(data_dir: Path) -> None:
    data = load_probing_data(data_dir, max_sentences=20, seed=0)
    assert data.source == "eng" and data.train.path.name == "en_ewt-ud-train.conllu"
    assert set(data.treebanks) == set(ud_languages(data_dir)) and len(data.treebanks) >= 13
    assert data.treebanks["eng"].path.name == "en_ewt-ud-test.conllu"  # evaluated on another split than trained
    assert data.treebanks["hin"].path.name == "hi_pud-ud-test.conllu"
    assert all(len(bank.tokens) == 20 for bank in data.treebanks.values())
    assert all(len(h) == len(t) == len(u) for bank in data.treebanks.values()
               for h, t, u in zip(bank.heads, bank.tokens, bank.upos, strict=True))
    pairs = sorted(p.name.split(".")[1].split("-")[0] for p in (data_dir / "tatoeba").glob("tatoeba.*-eng.eng"))
    assert len(data.bitexts) == len(pairs) >= 10 and {b.pivot for b in data.bitexts.values()} == {"eng"}
    assert "zho" in data.bitexts and "swa" in data.bitexts  # dataset codes cmn / swh mapped to ISO 639-3
    again = load_probing_data(data_dir, max_sentences=20, seed=0)
    other = load_probing_data(data_dir, max_sentences=20, seed=1)
    assert again.treebanks["deu"].tokens == data.treebanks["deu"].tokens  # a seeded sample
    assert other.treebanks["deu"].tokens != data.treebanks["deu"].tokens


def test_synthetic_panel_is_multi_parallel_with_the_source_as_pivot(synthetic_dir: Path) -> None:
    data = load_probing_data(synthetic_dir, max_sentences=10)
    assert data.source == "qaa" and data.train.path.name == "train.conllu"
    assert {b.pivot for b in data.bitexts.values()} == {"qaa"} and "qaa" not in data.bitexts
    assert len({tuple(b.pivot_lines) for b in data.bitexts.values()}) == 1  # the same pivot lines everywhere


def test_missing_annotation_and_languages_are_named(tmp_path: Path, synthetic_dir: Path, data_dir: Path) -> None:
    with pytest.raises(XltError, match="not found"):
        load_probing_data(tmp_path / "nowhere")
    with pytest.raises(XltError, match="no ud/<code>/ treebanks"):
        load_probing_data(tmp_path, need_bitext=False)
    with pytest.raises(XltError, match="no tatoeba"):
        load_probing_data(tmp_path, need_trees=False)
    with pytest.raises(XltError, match="source language hin has no train or dev split"):
        load_probing_data(data_dir, source="hin", need_bitext=False)
    with pytest.raises(XltError, match="languages xyz have neither a treebank nor a Tatoeba pair"):
        load_probing_data(synthetic_dir, languages=["xyz"])
