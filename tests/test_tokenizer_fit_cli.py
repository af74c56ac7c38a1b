"""``xlt tokenizer fit``: the four shipped configurations run from the command line; bad input is one line, exit 2,
and leaves no tokenizer directory behind."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from xlt.cli import main
from xlt.tokenization.tokenizer import XltTokenizer
from xlt.tokenization.vocabulary import VocabularyConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "tokenizer"
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
    assert len({(c["vocab_size"], c["corpus"], c["panel"], c["vocabulary"]["character_coverage"])
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
    code, stdout, _ = run(["--help"], capsys)
    assert "tokenizer" in stdout and "vocabulary configurations a–d" in stdout
