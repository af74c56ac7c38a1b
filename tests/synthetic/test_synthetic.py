"""The synthetic panel: gold data in real formats, parsed by the same readers; controlled languages."""

from __future__ import annotations

import collections
import filecmp
import json
import shutil
from pathlib import Path

import pytest

from xlt import synthetic as S
from xlt.datamodules.tasks import load_task_dataset
from xlt.errors import XltError
from xlt.formats import NLI_LABELS, UPOS_TAGS, read_conllu
from xlt.languages import PANELS_DIR, load_panel
from xlt.synthetic import generator

SCALE = 0.05  # the conftest fixture's scale
CODES = [spec.code for spec in S.SPECS]
TASKS = {"ud": "udpos", "ner": "ner", "xnli": "xnli", "pawsx": "pawsx", "qa": "qa"}


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


# ---- the panel --------------------------------------------------------------------------------------


def test_panel_has_the_required_typological_spread(synthetic_dir: Path) -> None:
    panel = load_panel(synthetic_dir / "panel.yaml")
    assert panel.codes == CODES and len(panel) >= 8 and panel.codes[0] == "qaa"
    assert all("qaa" <= code <= "qtz" for code in panel.codes)
    assert len({lang.script for lang in panel}) >= 4
    assert {lang.features["word_order"] for lang in panel} == {"SVO", "SOV", "VSO"}
    assert {lang.features["morphology"] for lang in panel} == {"analytic", "agglutinative"}
    assert {lang.features["adposition"] for lang in panel} == {"pre", "post"}
    assert {lang.features["adjective_order"] for lang in panel} == {"before", "after"}
    assert len({lang.bucket for lang in panel}) >= 3
    assert len({lang.features["overlap"] for lang in panel}) >= 5
    source = panel.get("qaa")
    assert (source.script, source.features["word_order"], source.bucket) == ("Latin", "SVO", "high")


def test_shipped_panel_config_equals_the_generated_panel(synthetic_dir: Path) -> None:
    shipped = PANELS_DIR / "synthetic.yaml"
    assert shipped.read_bytes() == (synthetic_dir / "panel.yaml").read_bytes()
    assert load_panel("synthetic").codes == CODES


def test_mlm_sizes_follow_the_buckets(synthetic_dir: Path) -> None:
    lines = {code: (synthetic_dir / "mlm" / f"{code}.txt").read_text(encoding="utf-8").splitlines()
             for code in CODES}
    expected = {"high": 1000, "mid": 400, "low": 150, "tail": 50}  # 20000/8000/3000/1000 x 0.05
    for spec in S.SPECS:
        assert len(lines[spec.code]) == expected[spec.bucket]
        assert all(line.strip() for line in lines[spec.code])
    by_bucket = collections.defaultdict(list)
    for spec in S.SPECS:
        by_bucket[spec.bucket].append(len(lines[spec.code]))
    order = [b for b in ("high", "mid", "low", "tail") if b in by_bucket]
    assert all(min(by_bucket[a]) > max(by_bucket[b]) for a, b in zip(order, order[1:], strict=False))


# ---- every file parses with the real readers --------------------------------------------------------


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_file_parses_with_the_real_readers_and_is_parallel(synthetic_dir: Path, task: str) -> None:
    manifest = json.loads((synthetic_dir / "manifest.json").read_text(encoding="utf-8"))
    for split in ("train", "dev", "test"):
        sizes = set()
        for code in CODES:
            ds = load_task_dataset(synthetic_dir / task / code, TASKS[task], split=split)
            ext = {"ud": "conllu", "ner": "txt", "xnli": "tsv", "pawsx": "tsv", "qa": "json"}[task]
            assert len(ds) == manifest["counts"][f"{task}/{code}/{split}.{ext}"]
            sizes.add(len(ds))
        assert len(sizes) == 1  # same examples in every language
        assert sizes.pop() >= (30 if split == "train" else 20)


def test_conllu_sentences_are_trees_with_ud_tags_and_consistent_text(synthetic_dir: Path) -> None:
    for code in CODES:
        path = synthetic_dir / "ud" / code / "test.conllu"
        ds = read_conllu(path)
        for upos, heads, deprels in zip(ds["upos"], ds["heads"], ds["deprels"], strict=True):
            assert set(upos) <= set(UPOS_TAGS)
            n = len(heads)
            assert all(0 <= h <= n for h in heads) and heads.count(0) == 1
            assert deprels[heads.index(0)] == "root" and deprels.count("root") == 1
            for i in range(n):  # following heads from any word reaches the root: no cycles
                seen, j = set(), i + 1
                while j != 0:
                    assert j not in seen
                    seen.add(j)
                    j = heads[j - 1]
        # "# text" is the tokens joined as SpaceAfter says
        for block in path.read_text(encoding="utf-8").strip("\n").split("\n\n"):
            lines = block.split("\n")
            text = next(line[len("# text = "):] for line in lines if line.startswith("# text = "))
            rebuilt = ""
            for line in lines:
                if not line.startswith("#"):
                    cols = line.split("\t")
                    rebuilt += cols[1] + ("" if "SpaceAfter=No" in cols[9] else " ")
            assert rebuilt.rstrip(" ") == text


def test_ner_tags_are_valid_iob2_with_all_four_types(synthetic_dir: Path) -> None:
    types = collections.Counter()
    for code in CODES:
        ds = load_task_dataset(synthetic_dir / "ner" / code, "ner", split="train")
        for tags in ds["ner_tags"]:
            prev = "O"
            for tag in tags:
                assert tag == "O" or tag[:2] in ("B-", "I-")
                if tag.startswith("I-"):
                    assert prev[2:] == tag[2:]  # I-X only continues B-X / I-X
                if tag.startswith("B-"):
                    types[tag[2:]] += 1
                prev = tag
    assert set(types) == {"PER", "ORG", "LOC", "DATE"}


def test_qa_answers_occur_at_their_offsets_and_ids_are_shared(synthetic_dir: Path) -> None:
    ids = None
    for code in CODES:
        ds = load_task_dataset(synthetic_dir / "qa" / code, "qa", split="dev")
        for row in ds:
            (text,), (start,) = row["answers"]["text"], row["answers"]["answer_start"]
            assert text and row["context"][start:start + len(text)] == text
            assert row["question"].endswith(("?", "؟"))
        assert ids is None or list(ds["id"]) == ids
        ids = list(ds["id"])
    assert len(set(ids)) == len(ids)


def test_xnli_and_pawsx_labels(synthetic_dir: Path) -> None:
    nli = load_task_dataset(synthetic_dir / "xnli" / "qab", "xnli", split="train")
    counts = collections.Counter(nli["label"])
    assert set(counts) == set(NLI_LABELS) and max(counts.values()) - min(counts.values()) <= 1
    paws = load_task_dataset(synthetic_dir / "pawsx" / "qab", "pawsx", split="train")
    assert round(0.45 * len(paws)) == sum(paws["label"])


def test_nli_labels_follow_monotonicity_in_the_source_language(synthetic_dir: Path) -> None:
    """Entailment drops (positive premise) or adds (negated premise) words; neutral does the reverse."""
    ds = load_task_dataset(synthetic_dir / "xnli" / "qaa", "xnli", split="train")
    checked = 0
    for row in ds:
        p = collections.Counter(row["premise"].lower().rstrip(".").split())
        h = collections.Counter(row["hypothesis"].lower().rstrip(".").split())
        negated = p["not"] > 0 and h["not"] > 0
        if row["label"] == "contradiction":
            assert p != h
            continue
        smaller, larger = (h, p) if (row["label"] == "entailment") != negated else (p, h)
        assert smaller != larger and not smaller - larger  # strict sub-multiset
        checked += 1
    assert checked >= 10


def test_pawsx_pairs_share_their_words_in_the_analytic_source(synthetic_dir: Path) -> None:
    ds = load_task_dataset(synthetic_dir / "pawsx" / "qaa", "pawsx", split="train")
    for row in ds:
        a, b = row["sentence1"].lower().rstrip("."), row["sentence2"].lower().rstrip(".")
        assert a != b and sorted(a.split()) == sorted(b.split())  # the PAWS idea: same words
    assert set(ds["label"]) == {0, 1}


# ---- Tatoeba ----------------------------------------------------------------------------------------


def test_tatoeba_files_are_line_aligned_and_realise_the_same_meanings(synthetic_dir: Path) -> None:
    folder = synthetic_dir / "tatoeba"
    sources = {code: (folder / f"tatoeba.{code}-qaa.qaa").read_bytes() for code in CODES[1:]}
    assert len(set(sources.values())) == 1  # the source side is the same in every pair
    world = S.World(0)
    n = S.scaled_size(S.TATOEBA_SIZE, SCALE, S.MIN_EVAL_EXAMPLES)
    meanings = S.tatoeba_meanings(world, n)
    for code in CODES[1:]:
        ds = load_task_dataset(folder, "tatoeba", language=code)
        assert len(ds) == n and len(set(ds["source"])) == n and len(set(ds["target"])) == n
        anchored = 0
        for row, meaning in zip(ds, meanings, strict=True):
            assert row["source"] == world.grammar(code).text(meaning)
            for entity in world.entity_strings(meaning, code):
                assert entity in row["source"]
                anchored += 1
            for entity in world.entity_strings(meaning, "qaa"):
                assert entity in row["target"]
        assert anchored >= n // 2  # names and numbers shared across languages anchor most lines


# ---- controlled languages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "script", "expected"),
    [
        ("kamal", "Devanagari", "कमल"),  # inherent vowel, no virama at the end
        ("strand", "Devanagari", "स्त्रन्द"),  # conjuncts with virama
        ("ika", "Devanagari", "इक"),  # independent vowel word-initially
        ("kamal", "Tamil", "கமல்"),  # pulli on the final consonant
        ("pasos", "Greek", "πασος"),  # final sigma
        ("yama", "Cyrillic", "яма"),
        ("amal", "Arabic", "أمال"),  # hamza on an initial vowel
        ("kamal", "Latin", "kamal"),
    ],
)
def test_transliteration_hand_checked(word: str, script: str, expected: str) -> None:
    assert S.transliterate(word, script) == expected


def test_transliteration_orthography_and_digits() -> None:
    assert S.transliterate("shach", "Latin", {"sh": "ş", "ch": "ç"}) == "şaç"
    world = S.World(0)
    assert world.grammar("qae").number(1998) == "१९९८" and world.grammar("qaf").number(42) == "٤٢"


def _fixed_meaning() -> S.Sentence:
    agent = S.NP("noun", 3, cls="animate", adjs=(("a", "any", 5),), definite=True)
    patient = S.NP("noun", 7, cls="object", definite=False)
    location = S.NP("loc", 11)
    clause = S.Clause(("make", 4), agent, "past", False, patient, None, location, S.Date(1999), None)
    return S.Sentence((clause,))


def test_word_order_adposition_and_adjective_order_per_language() -> None:
    world = S.World(0)
    sentence = _fixed_meaning()
    positions = {}
    for spec in S.SPECS:
        r = world.grammar(spec.code).realise(sentence)
        pos = {rel: r.deprels.index(rel) for rel in ("root", "nsubj", "obj")}
        order = "".join(k for k, _ in sorted({"V": pos["root"], "S": pos["nsubj"], "O": pos["obj"]}.items(),
                                             key=lambda kv: kv[1]))
        positions[spec.code] = order
        assert order == spec.word_order
        case = [i for i, d in enumerate(r.deprels) if d == "case"]
        assert case and all((i < r.heads[i] - 1) == (spec.adposition == "pre") for i in case)
        amod = r.deprels.index("amod")
        assert (amod < r.heads[amod] - 1) == (spec.adjective_order == "before")
    assert set(positions.values()) == {"SVO", "SOV", "VSO"}


def test_agglutinative_languages_suffix_case_and_use_fewer_tokens() -> None:
    world = S.World(0)
    sentence = _fixed_meaning()
    source = world.grammar("qaa").realise(sentence)
    for spec in S.SPECS:
        r = world.grammar(spec.code).realise(sentence)
        obj = r.deprels.index("obj")
        if spec.morphology == "agglutinative":
            assert r.forms[obj] != r.lemmas[obj] and "Case=Acc" in r.feats[obj]
            assert "DET" not in r.upos and len(r.forms) < len(source.forms)
        else:
            assert r.forms[obj] == r.lemmas[obj] and "DET" in r.upos


def test_controlled_copies_differ_from_the_source_in_one_factor_only(synthetic_dir: Path) -> None:
    world = S.World(0)
    sampler = world.sampler("test-controls")
    for _ in range(50):
        sentence = sampler.sentence("mlm")
        src = [w.lower() for w in world.grammar("qaa").realise(sentence).forms]
        greek = [w.lower() for w in world.grammar("qai").realise(sentence).forms]
        assert [S.transliterate(w, "Greek") for w in src] == greek  # script only
        sov = [w.lower() for w in world.grammar("qaj").realise(sentence).forms]
        assert sorted(sov) == sorted(src)  # the same words, in another order
    assert world.lexicons["qai"].forms == world.lexicons["qaa"].forms


def test_cognate_fractions_match_the_overlap_parameters() -> None:
    world = S.World(0)
    for spec in S.SPECS:
        lex = world.lexicons[spec.code]
        fraction = lex.cognates / len(lex.forms)
        assert abs(fraction - spec.overlap) < 0.06, (spec.code, fraction)
        if spec.overlap == 0.0:
            assert not set(lex.forms.values()) & set(world.lexicons["qaa"].forms.values())
    assert sum(len(v) for v in world.names.values()) >= 400


def test_vocabulary_has_hundreds_of_lexemes_per_open_class() -> None:
    forms = S.World(0).lexicons["qac"].forms
    per_pos = collections.Counter(key[0] for key in forms)
    assert per_pos["n"] >= 500 and per_pos["v"] >= 200 and per_pos["a"] >= 150
    assert len(set(forms.values())) == len(forms)  # no homonyms within a language


# ---- determinism and errors -------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs(synthetic_dir: Path, tmp_path: Path) -> None:
    again = S.generate_panel(tmp_path / "again", seed=0, scale=SCALE)
    files = _files(synthetic_dir)
    assert files == _files(again)
    assert len(files) == 10 * 5 * 3 + 10 + 2 * 9 + 2  # task splits, MLM, Tatoeba pairs, panel + manifest
    match, mismatch, errors = filecmp.cmpfiles(synthetic_dir, again, [str(f) for f in files], shallow=False)
    assert not mismatch and not errors
    other = S.generate_panel(tmp_path / "other", seed=1, scale=SCALE)
    assert (other / "mlm" / "qaa.txt").read_bytes() != (synthetic_dir / "mlm" / "qaa.txt").read_bytes()
    ud = Path("ud") / "qad" / "test.conllu"
    assert (other / ud).read_bytes() != (again / ud).read_bytes()
    assert (other / "panel.yaml").read_bytes() == (again / "panel.yaml").read_bytes()


def test_bad_arguments_raise_xlt_error(tmp_path: Path) -> None:
    for scale in (0, -1.0, float("nan")):
        with pytest.raises(XltError, match="scale"):
            S.generate_panel(tmp_path / "x", scale=scale)
    assert not (tmp_path / "x").exists()
    (tmp_path / "taken").mkdir()
    with pytest.raises(XltError, match="already exists"):
        S.generate_panel(tmp_path / "taken", scale=0.01)


def test_synth_cli_function_overwrites_atomically(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "panel"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    S.synth(str(out), seed=3, scale=0.01, overwrite=True)
    assert not (out / "stale.txt").exists() and (out / "panel.yaml").is_file()
    assert "10 languages" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


# ---- the shared cache -------------------------------------------------------------------------------


def test_cached_panel_is_generated_once_where_every_consumer_looks(synthetic_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    assert S.cached_panel_dir(cache, 0, 0.05) == cache / "synthetic-seed0-scale0.05"
    assert S.cached_panel_dir(str(cache), 2, 1.0) == cache / "synthetic-seed2-scale1"
    path = S.cached_panel(cache, seed=0, scale=0.01)
    assert path == S.cached_panel_dir(cache, 0, 0.01) and (path / "manifest.json").is_file()
    (path / "marker").write_text("kept")
    assert S.cached_panel(cache, seed=0, scale=0.01) == path and (path / "marker").is_file()  # reused

    def concurrent(out: Path, **_: object) -> Path:  # another process finishes first: ours finds it taken
        shutil.copytree(synthetic_dir, out)
        raise XltError(f"output directory {out} already exists")

    monkeypatch.setattr(generator, "generate_panel", concurrent)
    assert (S.cached_panel(cache, seed=0, scale=0.05) / "panel.yaml").is_file()
    monkeypatch.undo()
    (cache / "synthetic-seed0-scale0.5").mkdir()  # taken, but not by a panel: the error stands
    with pytest.raises(XltError, match="already exists"):
        S.cached_panel(cache, seed=0, scale=0.5)


def test_task_scale_sizes_the_task_files_alone(synthetic_dir: Path, tmp_path: Path) -> None:
    out = S.generate_panel(tmp_path / "p", seed=0, scale=SCALE, task_scale=0.1)
    for path in sorted((synthetic_dir / "mlm").glob("*.txt")):  # the MLM text is that of the panel at SCALE
        assert filecmp.cmp(path, out / "mlm" / path.name, shallow=False), path.name
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    base = json.loads((synthetic_dir / "manifest.json").read_text())["counts"]
    assert counts["xnli/qaa/train.tsv"] == 60 and base["xnli/qaa/train.tsv"] == 30  # 600 x 0.1 and x 0.05
    assert counts["tatoeba/tatoeba.qab-qaa.qab"] == 100
    assert sum(1 for _ in open(out / "xnli" / "qaa" / "train.tsv", encoding="utf-8")) == 61  # header + rows
    assert S.cached_panel_dir(tmp_path, 0, 1.0, 16) == tmp_path / "synthetic-seed0-scale1-tasks16"
    assert S.cached_panel_dir(tmp_path, 0, 1.0, 1.0) == tmp_path / "synthetic-seed0-scale1"  # same panel
    with pytest.raises(XltError, match="task scale -1 is not a positive number"):
        S.generate_panel(tmp_path / "bad", task_scale=-1)
    assert not (tmp_path / "bad").exists()
