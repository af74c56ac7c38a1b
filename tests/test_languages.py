"""Language panels: the shipped paper40 panel (content and numbers), code mapping, validation, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xlt.errors import XltError
from xlt.languages import BUCKETS, PANELS_DIR, Language, Panel, load_panel, save_panel, to_iso639_3

PAPER_FAMILIES = {"Germanic", "Romance", "Slavic", "Indo-Aryan", "Iranian", "Sino-Tibetan", "Niger-Congo",
                  "Afro-Asiatic", "Austronesian"}


@pytest.fixture(scope="module")
def paper40() -> Panel:
    return load_panel("paper40")


def _rank_buckets(panel: Panel) -> dict[str, str]:
    """The documented bucket rule: rank by size ascending (missing size lowest); 10% / 20% / 40% / 30%."""
    ranked = sorted(panel, key=lambda lang: -1.0 if lang.size_gib is None else lang.size_gib)
    n = len(ranked)
    cuts = [("tail", 0.1 * n), ("low", 0.3 * n), ("mid", 0.7 * n), ("high", float(n))]
    return {lang.code: next(b for b, cut in cuts if rank < cut) for rank, lang in enumerate(ranked)}


# --- paper40 content -------------------------------------------------------------------------------------

def test_paper40_by_name_and_by_path(paper40: Panel) -> None:
    assert paper40.name == "paper40"
    assert len(paper40) == 40
    assert load_panel(PANELS_DIR / "paper40.yaml") == paper40
    assert paper40.codes[0] == "eng"  # English (the fine-tuning source) is language id 0


def test_paper40_codes_are_unique_iso639_3(paper40: Panel) -> None:
    codes = paper40.codes
    assert len(set(codes)) == 40
    assert all(len(c) == 3 and c.isascii() and c.isalpha() and c.islower() for c in codes)
    # every code is a fixed point of the dataset-code mapping (so readers' codes land on panel codes)
    assert all(to_iso639_3(c) == c for c in codes)


def test_paper40_families_and_scripts(paper40: Panel) -> None:
    families = {lang.family for lang in paper40}
    # the paper's nine families, plus the families of two languages it names: Welsh and Tamil
    assert families == PAPER_FAMILIES | {"Celtic", "Dravidian"}
    assert paper40.get("cym").family == "Celtic" and paper40.get("tam").family == "Dravidian"
    scripts = {lang.script for lang in paper40}
    assert {"Latin", "Cyrillic", "Arabic", "Devanagari", "Tamil", "Bengali"} <= scripts
    assert scripts == {"Latin", "Cyrillic", "Arabic", "Devanagari", "Tamil", "Bengali", "Sinhala", "Han"}
    assert paper40.get("sin").script == "Sinhala" and paper40.get("tam").script == "Tamil"


def test_paper40_contains_the_papers_low_resource_languages(paper40: Panel) -> None:
    for code in ("sin", "cym", "yor", "tam"):
        assert code in paper40
    # bottom decile by CC-100 size: Welsh and Yoruba are tail; Sinhala (3.6 GiB) and Tamil (12.2 GiB) are
    # not, despite §IV.B — the panel follows the published sizes (see configs/panels/README.md)
    assert paper40.get("cym").bucket == "tail"
    assert paper40.get("yor").bucket == "tail"
    assert paper40.get("sin").bucket == "low"
    assert paper40.get("tam").bucket == "mid"
    assert [lang.code for lang in paper40 if lang.bucket == "tail"] == ["pus", "yor", "hau", "cym"]


def test_paper40_published_sizes(paper40: Panel) -> None:
    # XLM-R (Conneau et al. 2020) Table 6, "Size (GiB)"
    expected = {"eng": 300.8, "rus": 278.0, "ind": 148.3, "zho": 46.9, "hin": 20.2, "tam": 12.2, "ben": 8.4,
                "sin": 3.6, "swa": 1.6, "cym": 0.8, "pus": 0.7, "hau": 0.3}
    assert {c: paper40.get(c).size_gib for c in expected} == expected
    assert paper40.get("yor").size_gib is None  # not in XLM-R's CC-100
    assert [lang.code for lang in paper40 if lang.size_gib is None] == ["yor"]
    # checksum over all 39 sizes, summed by hand per family: 492.6 + 263.8 + 519.7 + 44.5 + 112.3 + 46.9 + 1.6
    # + 28.3 + 159.9 + 0.8 + 12.2
    assert sum(lang.size_gib or 0.0 for lang in paper40) == pytest.approx(1682.6)


def test_paper40_buckets_follow_the_rank_rule(paper40: Panel) -> None:
    assert {lang.code: lang.bucket for lang in paper40} == _rank_buckets(paper40)
    counts = {b: sum(lang.bucket == b for lang in paper40) for b in BUCKETS}
    assert counts == {"high": 12, "mid": 16, "low": 8, "tail": 4}


def test_paper40_buckets_are_monotone_in_size(paper40: Panel) -> None:
    sizes = {b: [lang.size_gib for lang in paper40 if lang.bucket == b and lang.size_gib is not None]
             for b in BUCKETS}
    for lower, upper in (("tail", "low"), ("low", "mid"), ("mid", "high")):
        assert max(sizes[lower]) <= min(sizes[upper]), (lower, upper)
    # the cut points stated in the panel's `source`
    assert (max(sizes["tail"]), min(sizes["low"])) == (0.8, 1.3)
    assert (max(sizes["low"]), min(sizes["mid"])) == (4.3, 4.8)
    assert (max(sizes["mid"]), min(sizes["high"])) == (46.9, 49.0)


def test_paper40_designated_are_the_12_smallest(paper40: Panel) -> None:
    designated = [lang.code for lang in paper40 if lang.designated]
    assert len(designated) == 12
    ranked = sorted(paper40, key=lambda lang: -1.0 if lang.size_gib is None else lang.size_gib)
    assert set(designated) == {lang.code for lang in ranked[:12]}
    assert set(designated) == {lang.code for lang in paper40 if lang.bucket in ("tail", "low")}
    assert {"sin", "cym", "yor"} <= set(designated) and "tam" not in designated


def test_paper40_features(paper40: Panel) -> None:
    assert all(lang.features.get("word_order") in {"SVO", "SOV", "VSO"} for lang in paper40)
    assert paper40.get("hin").features["word_order"] == "SOV"
    assert paper40.get("cym").features["word_order"] == "VSO"
    assert paper40.get("tam").features["morphology"] == "agglutinative"
    assert paper40.get("deu").features["v2"] == "yes"  # quoted in YAML, not the boolean True
    morph = {lang.features["morphology"] for lang in paper40 if "morphology" in lang.features}
    assert morph == {"analytic", "fusional", "agglutinative"}


# --- code mapping ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "expected"), [
    ("en", "eng"), ("swh", "swa"), ("cmn", "zho"), ("zh", "zho"), ("zh-Hant", "zho"), ("zh_CN", "zho"),
    ("EN", "eng"), (" yo ", "yor"), ("pes", "fas"), ("zsm", "msa"), ("gn", "grn"), ("no", "nor"),
    ("nb", "nor"), ("ca", "cat"), ("arb", "ara"), ("fil", "tgl"), ("eng", "eng"), ("quy", "quy"),
])
def test_to_iso639_3(given: str, expected: str) -> None:
    assert to_iso639_3(given) == expected


# --- validation ------------------------------------------------------------------------------------------

GOOD = {"code": "cym", "name": "Welsh", "family": "Celtic", "script": "Latin", "bucket": "tail"}


def _write(tmp_path: Path, data: object, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(XltError) as info:
        load_panel(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def _panel(*languages: dict, **top: object) -> dict:
    return {"name": "t", "languages": list(languages), **top}


def test_minimal_panel_loads(tmp_path: Path) -> None:
    panel = load_panel(_write(tmp_path, {"languages": [GOOD]}, "mini.yaml"))
    assert panel.name == "mini" and panel.source == ""  # name defaults to the file name
    assert panel.languages == (Language("cym", "Welsh", "Celtic", "Latin", "tail"),)
    assert panel.get("cym").size_gib is None and panel.get("cym").designated is False


@pytest.mark.parametrize("field", ["code", "name", "family", "script", "bucket"])
def test_missing_field_names_language_and_field(tmp_path: Path, field: str) -> None:
    other = dict(GOOD, code="yor", name="Yoruba", family="Niger-Congo")
    broken = {k: v for k, v in other.items() if k != field}
    message = _error(_write(tmp_path, _panel(GOOD, broken)))
    assert f"missing field '{field}'" in message
    assert ("'yor'" in message) if field != "code" else ("#2" in message)


def test_empty_field_counts_as_missing(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, _panel(dict(GOOD, script=""))))
    assert "'cym'" in message and "missing field 'script'" in message


def test_unknown_bucket(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, _panel(dict(GOOD, bucket="tiny"))))
    assert "'cym'" in message and "'tiny'" in message and "high, mid, low, tail" in message


def test_duplicate_code(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, _panel(GOOD, dict(GOOD, name="Cymraeg"))))
    assert "['cym']" in message and "more than once" in message


@pytest.mark.parametrize(("code", "hint"), [("cy", "cym"), ("CYM", "cym"), ("cymr", None), ("c1m", None)])
def test_bad_code(tmp_path: Path, code: str, hint: str | None) -> None:
    message = _error(_write(tmp_path, _panel(dict(GOOD, code=code))))
    assert f"'{code}'" in message and "ISO 639-3" in message
    assert (f"did you mean '{hint}'" in message) if hint else ("did you mean" not in message)


def test_languages_not_a_list(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, {"name": "t", "languages": {"cym": GOOD}}))
    assert "'languages' list" in message and "dict" in message


def test_empty_languages_and_empty_file(tmp_path: Path) -> None:
    assert "'languages' list" in _error(_write(tmp_path, {"languages": []}, "empty_list.yaml"))
    assert "must be a mapping" in _error(_write(tmp_path, "", "empty.yaml"))
    assert "must be a mapping" in _error(_write(tmp_path, "- cym\n- yor\n", "list.yaml"))


def test_language_entry_not_a_mapping(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, _panel(GOOD, "yor")))
    assert "language #2" in message and "'yor'" in message and "not a mapping" in message


def test_unknown_key_in_language(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, _panel(dict(GOOD, size_gb=0.8))))
    assert "'cym'" in message and "['size_gb']" in message and "size_gib" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, {"name": "t", "language": [GOOD]}))  # typo for 'languages'
    assert "['language']" in message and "allowed: name, source, languages" in message


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "name: t\nlanguages:\n  - {code: cym, name: Welsh\n"))
    assert "not valid YAML" in message and "line " in message


@pytest.mark.parametrize(("field", "value", "culprit"), [
    ("size_gib", -1.0, "size_gib -1.0"), ("size_gib", "big", "size_gib 'big'"),
    ("size_gib", True, "size_gib True"), ("size_gib", float("nan"), "size_gib nan"),
    ("designated", "yes please", "designated 'yes please'"), ("features", ["SVO"], "features"),
])
def test_bad_optional_values(tmp_path: Path, field: str, value: object, culprit: str) -> None:
    message = _error(_write(tmp_path, _panel(dict(GOOD, **{field: value}))))
    assert "'cym'" in message and culprit in message


def test_missing_panel_name_lists_known_panels(tmp_path: Path) -> None:
    with pytest.raises(XltError) as info:
        load_panel("no_such_panel")
    assert "no_such_panel.yaml not found" in str(info.value) and "paper40" in str(info.value)
    with pytest.raises(XltError, match="not found"):
        load_panel(tmp_path / "absent.yaml")


# --- Panel API -------------------------------------------------------------------------------------------

def test_get_unknown_code_names_it(paper40: Panel) -> None:
    assert paper40.get("yor").name == "Yoruba"
    with pytest.raises(XltError) as info:
        paper40.get("xxx")
    assert "'xxx'" in str(info.value) and "'paper40'" in str(info.value) and "yor" in str(info.value)


def test_subset_keeps_order_and_rejects_repeats(paper40: Panel) -> None:
    sub = paper40.subset(["yor", "eng", "cym"])
    assert sub.codes == ["yor", "eng", "cym"] and "tam" not in sub and "cym" in sub
    with pytest.raises(XltError, match="more than once"):
        paper40.subset(["yor", "yor"])
    with pytest.raises(XltError, match="'qqq'"):
        paper40.subset(["eng", "qqq"])


# --- save / load -----------------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path: Path, paper40: Panel) -> None:
    out = tmp_path / "nested" / "copy.yaml"
    save_panel(paper40, out)
    back = load_panel(out)
    assert back == paper40  # name, source, order, every required/optional field (features compared below)
    assert [lang.features for lang in back] == [lang.features for lang in paper40]
    assert back.get("deu").features["v2"] == "yes"
    assert sorted(p.name for p in out.parent.iterdir()) == ["copy.yaml"]  # no temporary file left


def test_save_is_atomic_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "panel.yaml"
    original = Panel("orig", (Language("cym", "Welsh", "Celtic", "Latin", "tail"),))
    save_panel(original, out)
    before = out.read_bytes()
    real_open = open

    class HalfWritten:
        """A file that writes half of what it is given, then fails like a full disk."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            self.handle = real_open(*args, **kwargs)

        def __enter__(self) -> HalfWritten:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def write(self, text: str) -> int:
            self.handle.write(text[: len(text) // 2])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr("xlt.atomic.open", HalfWritten, raising=False)
    with pytest.raises(OSError, match="No space left"):
        save_panel(Panel("new", original.languages, source="x" * 1000), out)
    monkeypatch.undo()
    assert out.read_bytes() == before  # the old file is intact, never half-overwritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["panel.yaml"]  # the temporary file was removed


def test_atomic_outputs_get_umask_permissions(tmp_path) -> None:
    import os
    import stat

    from xlt.atomic import atomic_dir, atomic_file

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "x").write_text("1")
        with atomic_file(tmp_path / "f.txt") as handle:
            handle.write("1")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644


def test_label_puts_the_panel_name_after_the_code(paper40: Panel) -> None:
    synthetic = load_panel("synthetic")
    assert paper40.label("yor") == "yor Yoruba"
    assert synthetic.label("qaa") == "qaa Anglish"
    assert synthetic.label("qai") == "qai Greek Anglish"  # the script copy, as the panel names it
    assert synthetic.label("yor") == "yor"  # outside the panel: the bare code
    assert Panel("p", (Language("abc", "ABC", "F", "Latin", "high"),)).label("abc") == "abc"  # name == code
    assert synthetic.labels(["qaj", "zzz"]) == {"qaj": "qaj Verb-final Anglish", "zzz": "zzz"}
    assert list(synthetic.labels()) == synthetic.codes
