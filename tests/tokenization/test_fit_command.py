"""``xlt tokenizer fit``: the four shipped configurations run from the command line; bad input is one line, exit 2,
and leaves no tokenizer directory behind."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from xlt import sources
from xlt.cli import main
from xlt.sources import HubText, SyntheticPanel, TextDirectory
from xlt.tokenization.fit_command import fit_command
from xlt.tokenization.tokenizer import XltTokenizer
from xlt.tokenization.vocabulary import VocabularyConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "tokenizer"
NAMES = ["shared", "balanced", "proportional_2x", "lang_specific"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_shipped_configs_are_the_four_comparable_recipes() -> None:
    loaded = {name: yaml.safe_load((CONFIGS / f"{name}.yaml").read_text(encoding="utf-8")) for name in NAMES}
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(NAMES)
    for name, config in loaded.items():
        assert config["vocabulary"]["configuration"] == name and config["output"] == f"runs/tokenizers/{name}"
    # one base size and one corpus for all four, so that they differ only in the configuration
    assert len({(c["vocab_size"], str(c["corpus"]), c["panel"], c["vocabulary"]["character_coverage"])
                for c in loaded.values()}) == 1
    assert loaded["balanced"]["vocabulary"]["alpha"] == 0.0
    assert loaded["lang_specific"]["vocabulary"]["designated_languages"] == ["qaf", "qag", "qah", "qai", "qaj"]


def test_one_shape_for_a_vocabulary_configuration() -> None:
    """``vocabulary:`` of the tokenizer recipes and ``tokenizer_fit:`` of the corpus DataModule are one
    VocabularyConfig; no vocabulary setting is written flat beside it."""
    fields = {f.name for f in dataclasses.fields(VocabularyConfig)}
    for path in sorted(CONFIGS.glob("*.yaml")):
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert set(config["vocabulary"]) <= fields and not set(config) & fields, path.name
        assert VocabularyConfig(**config["vocabulary"]).configuration == path.stem
    recipe = yaml.safe_load((CONFIGS.parent / "multi_l_plus.yaml").read_text(encoding="utf-8"))
    tokenizer_fit = recipe["data"]["init_args"]["tokenizer_fit"]
    assert set(tokenizer_fit) <= fields and VocabularyConfig(**tokenizer_fit).configuration == "lang_specific"


@pytest.mark.parametrize("name", NAMES)
def test_fit_each_configuration_from_its_yaml(name: str, synthetic_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / name
    argv = ["tokenizer", "fit", "--config", str(CONFIGS / f"{name}.yaml"), "--corpus", str(synthetic_dir),
            "--panel", str(synthetic_dir / "panel.yaml"), "--vocab_size", "1000", "--vocabulary.language_pieces", "40",
            "--output", str(out)]
    code, stdout, stderr = run(argv, capsys)
    assert code == 0, stderr
    tok = XltTokenizer.load(out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["configuration"] == name and manifest["languages"] == [f"qa{c}" for c in "abcdefghij"]
    assert tok.shared_vocab_size == (2002 if name == "proportional_2x" else 1002)
    if name == "lang_specific":
        assert list(tok.blocks) == ["qaf", "qag", "qah", "qai", "qaj"]
        assert all(stop - start == 40 for start, stop in tok.blocks.values())
        assert tok.vocab_size == 1002 + 5 * 40
    else:
        assert not tok.blocks and tok.vocab_size == tok.shared_vocab_size
    assert stdout.startswith(f"wrote {out}: configuration {name}, ") and f"= {tok.vocab_size} ids" in stdout


@pytest.fixture
def small_corpus(synthetic_dir: Path, tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for code in ("qaa", "qab", "qah"):
        shutil.copy(synthetic_dir / "mlm" / f"{code}.txt", corpus / f"{code}.txt")
    return corpus


BAD = {
    "designated language absent": (["--vocabulary.configuration", "lang_specific",
                                    "--vocabulary.designated_languages", "[qah, qzz]"],
                                   "designated_languages qzz not in the corpus"),
    "vocabulary below the alphabet": (["--vocab_size", "280"],
                                      "vocab_size 280 is too small for this corpus — it needs at least"),
    "vocabulary below specials + bytes": (["--vocab_size", "100"],
                                          "vocab_size 100 is too small — byte fallback alone needs 259"),
    "empty language file": (["--languages", "[qaa, qab]"], "qab.txt for language 'qab' is empty"),
    "non-UTF-8 bytes": (["--languages", "[qaa, qab]"], "qab.txt line 3 is not valid UTF-8"),
    "no blocks possible": (["--vocabulary.configuration", "lang_specific", "--vocabulary.language_pieces", "0"],
                           "language_pieces 0 must be a positive integer"),
    "unknown configuration": (["--vocabulary.configuration", "huge"], "configuration"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case: str, small_corpus: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    extra, message = BAD[case]
    if case == "empty language file":
        (small_corpus / "qab.txt").write_text("\n  \n", encoding="utf-8")
    if case == "non-UTF-8 bytes":
        (small_corpus / "qab.txt").write_bytes(b"first line\nsecond line\nbad \xff byte\nlast\n")
    out = tmp_path / "out" / "tok"
    code, _, stderr = run(["tokenizer", "fit", "--corpus", str(small_corpus), "--output", str(out), *extra], capsys)
    assert code == 2
    assert stderr.startswith("xlt: error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr
    assert not out.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # no temporary left


def test_existing_output_needs_overwrite(small_corpus: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tok"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    argv = ["tokenizer", "fit", "--corpus", str(small_corpus), "--vocab_size", "600", "--output", str(out)]
    code, _, stderr = run(argv, capsys)
    assert code == 2 and stderr.count("\n") == 1
    assert f"tokenizer directory {out} already exists — pass --overwrite true" in stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    code, _, stderr = run([*argv, "--overwrite", "true"], capsys)
    assert code == 0, stderr
    assert not (out / "keep.txt").exists() and XltTokenizer.load(out).vocab_size == 602
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "tok"]  # no temporary siblings


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(["tokenizer", "fit", "--help"], capsys)
    assert code == 0
    for option in ("--vocabulary.configuration", "--vocab_size", "--vocabulary.alpha", "--vocabulary.language_pieces",
                   "--vocabulary.designated_languages", "--vocabulary.base_tokenizer", "--overwrite", "--output"):
        assert option in stdout
    assert "Base SentencePiece pieces of the shared vocabulary" in stdout
    for source in ("--corpus CORPUS", "--corpus.help", "xlt.sources.SyntheticPanel", "xlt.sources.TextDirectory",
                   "xlt.sources.HubText", "--corpus.scale", "--corpus.init_args.scale", "hf:<dataset_id>"):
        assert source in stdout, source
    code, stdout, _ = run(["--help"], capsys)
    assert "tokenizer" in stdout and "vocabulary configurations a–d" in stdout


# --------------------------------------------------------------------------------------------- the corpus as a source
def _printed(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code, stdout, stderr = run(["tokenizer", "fit", "--config", str(CONFIGS / "shared.yaml"), *args, "--print_config"],
                               capsys)
    assert code == 0, stderr
    return yaml.safe_load(stdout)


def test_print_config_shows_the_source_object_and_keeps_the_shorthand(capsys: pytest.CaptureFixture[str]) -> None:
    synthetic = {"class_path": "xlt.sources.SyntheticPanel",
                 "init_args": {"seed": 0, "scale": 1.0, "cache_dir": None, "task_scale": None}}
    assert _printed(capsys)["corpus"] == synthetic
    assert _printed(capsys, "--corpus.init_args.scale", "0.5")["corpus"]["init_args"]["scale"] == 0.5
    for short in ("synthetic", "data/cc100", "hf:org/cc"):  # the configs' paper-scale lines use a directory
        assert _printed(capsys, "--corpus", short)["corpus"] == short
    hub = _printed(capsys, "--corpus", "HubText", "--corpus.dataset", "org/cc", "--corpus.column", "sentence")
    assert hub["corpus"] == {"class_path": "xlt.sources.HubText",
                             "init_args": {"dataset": "org/cc", "config": "{code}", "split": "train",
                                           "column": "sentence"}}
    assert "synthetic_seed" not in _printed(capsys) and "synthetic_scale" not in _printed(capsys)


def test_object_and_shorthand_forms_fit_the_same_tokenizer(small_corpus: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    common = ["tokenizer", "fit", "--vocab_size", "400"]
    code, _, stderr = run([*common, "--corpus", str(small_corpus), "--output", str(tmp_path / "short")], capsys)
    assert code == 0, stderr
    code, _, stderr = run([*common, "--corpus", "TextDirectory", "--corpus.path", str(small_corpus), "--output",
                           str(tmp_path / "object")], capsys)
    assert code == 0, stderr
    fit_command(output=str(tmp_path / "python"), corpus=TextDirectory(str(small_corpus)), vocab_size=400)
    model = (tmp_path / "short" / "sentencepiece.bpe.model").read_bytes()
    for name in ("object", "python"):
        assert (tmp_path / name / "sentencepiece.bpe.model").read_bytes() == model
        assert json.loads((tmp_path / name / "manifest.json").read_text(encoding="utf-8"))["languages"] == \
            ["qaa", "qab", "qah"]


def test_synthetic_panel_source_is_generated_into_cache_dir(synthetic_dir: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(synthetic_dir, cache / "synthetic-seed0-scale0.05")  # as if generated (saves time)
    own = tmp_path / "own"
    shutil.copytree(synthetic_dir, own / "synthetic-seed0-scale0.05")
    fit_command(output=str(tmp_path / "a"), corpus=SyntheticPanel(scale=0.05), vocab_size=600,
                languages=["qaa", "qah"], cache_dir=str(cache))
    fit_command(output=str(tmp_path / "b"), corpus=SyntheticPanel(scale=0.05, cache_dir=str(own)), vocab_size=600,
                languages=["qaa", "qah"], cache_dir=str(tmp_path / "unused"))
    assert not (tmp_path / "unused").exists()  # a source with its own cache_dir keeps it
    for name in ("a", "b"):
        manifest = json.loads((tmp_path / name / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["languages"] == ["qaa", "qah"]
    assert manifest["sources"]["qah"] == str(own / "synthetic-seed0-scale0.05" / "mlm" / "qah.txt")
    code, _, stderr = run(["tokenizer", "fit", "--corpus", "SyntheticPanel", "--corpus.scale", "0.05", "--languages",
                           "[qzz]", "--cache_dir", str(cache), "--output", str(tmp_path / "c")], capsys)
    assert code == 2 and "qzz" in stderr and "panel" in stderr  # the panel's own panel.yaml is the default panel


def test_hub_corpus_is_fitted_from_its_rows(small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import datasets

    calls = []

    def fake_hub(dataset_id: str, config: str | None, split: str, cache_dir: str) -> datasets.Dataset:
        calls.append((dataset_id, config, split, cache_dir))
        lines = (small_corpus / f"{config.removeprefix('wiki.')}.txt").read_text(encoding="utf-8").splitlines()
        return datasets.Dataset.from_dict({"sentence": lines})

    monkeypatch.setattr(sources, "_load_hub_dataset", fake_hub)
    cache = tmp_path / "cache"
    fit_command(output=str(tmp_path / "hub"), corpus=HubText("org/cc", "wiki.{code}", "train", "sentence"),
                vocab_size=400, languages=["qaa", "qab", "qah"], cache_dir=str(cache))
    assert calls == [("org/cc", f"wiki.{c}", "train", str(cache / "hf")) for c in ("qaa", "qab", "qah")]
    manifest = json.loads((tmp_path / "hub" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["languages"] == ["qaa", "qab", "qah"]
    assert json.loads(manifest["sources"]["qab"]) == HubText("org/cc", "wiki.{code}", "train",
                                                             "sentence").language_identity("qab")
    assert XltTokenizer.load(tmp_path / "hub").shared_vocab_size == 402
    code, _, stderr = run(["tokenizer", "fit", "--corpus", "hf:org/cc", "--output", str(tmp_path / "x")], capsys)
    assert code == 2 and "cannot list its languages" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "x").exists()
