"""README's error promise, checked as a user meets it: in an empty working directory, each bad input ends with
exit code 2 and one line on stderr, and the directory is still empty (no cache, no MLflow store, no checkpoint).

The configs use their default relative paths (``runs/cache``, ``runs/quickstart``, ``sqlite:///mlflow.db``), so
anything written before the error would land in the working directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xlt.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
UDPOS = str(ROOT / "configs" / "tasks" / "udpos.yaml")
TINY = "{hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, " \
       "max_position_embeddings: 66}"


@pytest.fixture
def inputs(tmp_path: Path, synthetic_dir: Path) -> Path:
    """Input files outside the working directory: a corpus with a good, an empty and a non-UTF-8 file, a panel
    without a field."""
    base = tmp_path / "inputs"
    corpus = base / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "qaa.txt").write_text((synthetic_dir / "mlm" / "qaa.txt").read_text(encoding="utf-8"))
    (corpus / "qab.txt").write_text("\n  \n")
    (corpus / "qac.txt").write_bytes(b"fine line\nbad \xff byte\n")
    panel = yaml.safe_load((synthetic_dir / "panel.yaml").read_text(encoding="utf-8"))
    del panel["languages"][1]["script"]
    (base / "bad_panel.yaml").write_text(yaml.safe_dump(panel))
    return base


def _cases(inputs: Path, tokenizer: Path) -> dict[str, tuple[list[str], str]]:
    corpus = ["--data.init_args.corpus", str(inputs / "corpus")]
    return {
        "unknown_language": (["--config", QUICKSTART, "--data.init_args.languages", "[qaa,zzz]"], "zzz"),
        "missing_corpus_file": (["--config", QUICKSTART, *corpus, "--data.init_args.languages", "[qaa,qad]"],
                                "qad.txt"),
        "empty_corpus_file": (["--config", QUICKSTART, *corpus, "--data.init_args.languages", "[qaa,qab]"],
                              "qab.txt for language 'qab' is empty"),
        "non_utf8_corpus_file": (["--config", QUICKSTART, *corpus, "--data.init_args.languages", "[qaa,qac]"],
                                 "qac.txt"),
        "panel_without_a_field": (["--config", QUICKSTART, "--data.init_args.panel",
                                   str(inputs / "bad_panel.yaml")], "script"),
        "oversampling_factor_zero": (["--config", QUICKSTART, "--data.init_args.oversampling", "{qab: 0}"], "qab"),
        "block_size_beyond_positions": (["--config", QUICKSTART, "--data.init_args.block_size", "256"],
                                        "data.block_size 256 exceeds model positions 128"),
        "unknown_model_config_key": (["--config", QUICKSTART, "--model.init_args.config",
                                      "{hidden_size: 32, hidden_sise: 64}"], "hidden_sise"),
        "unknown_cli_key": (["--config", QUICKSTART, "--model.init_args.bogus_rate", "0.1"], "bogus_rate"),
        "task_max_length_beyond_positions": (
            ["--config", UDPOS, "--model.encoder", "xlm-roberta", "--model.config", TINY,
             "--data.tokenizer", str(tokenizer), "--data.max_length", "128"],
            "data.max_length 128 exceeds the encoder's 64 positions"),
        "task_vocabulary_beyond_the_encoder": (
            ["--config", UDPOS, "--model.encoder", "xlm-roberta", "--model.config",
             TINY.replace("}", ", vocab_size: 500}"), "--data.tokenizer", str(tokenizer), "--data.max_length", "64"],
            "has 500 embeddings"),
    }


CASES = ["unknown_language", "missing_corpus_file", "empty_corpus_file", "non_utf8_corpus_file",
         "panel_without_a_field", "oversampling_factor_zero", "block_size_beyond_positions",
         "unknown_model_config_key", "unknown_cli_key", "task_max_length_beyond_positions",
         "task_vocabulary_beyond_the_encoder"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_leaves_the_working_directory_empty(case: str, inputs: Path, empty_cwd: Path,
                                                      tiny_tokenizer_dir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    args, culprit = _cases(inputs, tiny_tokenizer_dir)[case]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args])
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("xlt: error:")]
    assert exit_info.value.code == 2, err
    assert len(error_lines) == 1 and err.rstrip("\n").endswith(error_lines[0]), err
    assert culprit in error_lines[0], error_lines[0]
    assert sorted(p.name for p in empty_cwd.iterdir()) == []  # no cache, no mlflow.db, no runs/


def test_every_case_is_listed(inputs: Path, tiny_tokenizer_dir: Path) -> None:
    assert sorted(_cases(inputs, tiny_tokenizer_dir)) == sorted(CASES)
