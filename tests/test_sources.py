"""Text sources (xlt.sources): languages, text, checks, cache identities, shorthand strings, CLI forms."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
import yaml

from xlt import sources
from xlt.datamodules.corpus import MultilingualCorpusDataModule
from xlt.errors import XltError
from xlt.sources import (
    HubText,
    SyntheticPanel,
    TextDirectory,
    TextSource,
    as_task_source,
    as_text_source,
    find_text_file,
    list_text_files,
)

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")


@pytest.fixture
def text_dir(tmp_path: Path) -> Path:
    base = tmp_path / "text"
    base.mkdir()
    (base / "qaa.txt").write_text("one line\ntwo words\n", encoding="utf-8")
    (base / "qab.txt").write_text("ein satz\n", encoding="utf-8")
    return base


def old_file_identity(path: Path) -> dict:
    """What MultilingualCorpusDataModule._source_identity gave for a local file before sources were objects."""
    stat = path.stat()
    return {"kind": "file", "path": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns}


# ---------------------------------------------------------------------------------------------- discovery
def test_text_file_discovery_both_layouts(tmp_path: Path, text_dir: Path) -> None:
    assert find_text_file(text_dir, "qaa") == text_dir / "qaa.txt"
    assert find_text_file(text_dir, "qac") is None
    nested = tmp_path / "panel"
    (nested / "mlm").mkdir(parents=True)
    (nested / "mlm" / "qac.txt").write_text("x\n", encoding="utf-8")
    assert find_text_file(nested, "qac") == nested / "mlm" / "qac.txt"
    assert list_text_files(text_dir) == {"qaa": text_dir / "qaa.txt", "qab": text_dir / "qab.txt"}
    assert list_text_files(nested) == {"qac": nested / "mlm" / "qac.txt"}


# ---------------------------------------------------------------------------------------------- TextDirectory
def test_text_directory(text_dir: Path, tmp_path: Path) -> None:
    source = TextDirectory(str(text_dir))
    assert source.languages() == ["qaa", "qab"]
    assert source.languages(["qab", "qac", "qaa"]) == ["qab", "qaa"]  # the candidates' order
    assert source.text_file("qaa") == text_dir / "qaa.txt" and source.text_file("qac") is None
    assert source.language_identity("qaa") == old_file_identity(text_dir / "qaa.txt")
    files = {code: [str((text_dir / f"{code}.txt").resolve()), (text_dir / f"{code}.txt").stat().st_size,
                    (text_dir / f"{code}.txt").stat().st_mtime_ns] for code in ("qaa", "qab")}
    assert source.identity(["qaa", "qab"]) == {"kind": "dir", "files": files}
    assert source.describe("qab") == str(text_dir / "qab.txt")
    source.check(["qaa", "qab"], read=True)
    ds = source.dataset("qaa", tmp_path / "hf")
    assert isinstance(ds, datasets.Dataset) and source.column == "text"
    assert ds[source.column] == ["one line", "two words"]
    assert source.config() == {"class_path": "xlt.sources.TextDirectory", "init_args": {"path": str(text_dir)}}


def test_text_directory_errors_name_the_file(text_dir: Path) -> None:
    with pytest.raises(XltError, match="corpus directory /nonexistent/corpus not found"):
        TextDirectory("/nonexistent/corpus").check()
    with pytest.raises(XltError, match="corpus directory /nonexistent/corpus not found"):
        TextDirectory("/nonexistent/corpus").languages(["qaa"])
    source = TextDirectory(str(text_dir))
    with pytest.raises(XltError, match=rf"corpus file {text_dir}/qac\.txt for language 'qac' not found"):
        source.check(["qaa", "qac"])
    (text_dir / "qab.txt").write_text(" \n\n", encoding="utf-8")
    source.check(["qab"])  # cheap: existence only
    with pytest.raises(XltError, match=r"qab\.txt for language 'qab' is empty"):
        source.check(["qaa", "qab"], read=True)
    (text_dir / "qab.txt").write_bytes(b"fine\nbad \xff\n")
    with pytest.raises(XltError, match=r"qab\.txt line 2 is not valid UTF-8"):
        source.check(["qab"], read=True)


# ---------------------------------------------------------------------------------------------- SyntheticPanel
def test_synthetic_panel(synthetic_dir: Path, tmp_path: Path) -> None:
    source = SyntheticPanel(scale=0.05, cache_dir=str(tmp_path))
    assert source.identity(["qaa"]) == {"kind": "synthetic", "seed": 0, "scale": 0.05}
    assert SyntheticPanel(seed=3, scale=1).identity([]) == {"kind": "synthetic", "seed": 3, "scale": 1.0}
    assert isinstance(SyntheticPanel(scale=1).scale, float)  # the cache key's JSON says 1.0, as before
    assert source.panel_dir == tmp_path / "synthetic-seed0-scale0.05"
    codes = yaml.safe_load((synthetic_dir / "panel.yaml").read_text(encoding="utf-8"))["languages"]
    assert source.languages() == [lang["code"] for lang in codes]
    assert source.languages(["qah", "qaa"]) == ["qah", "qaa"]
    assert not source.prepared
    source.check(["qaa"], read=True)  # generated text: nothing to check before prepare
    shutil.copytree(synthetic_dir, source.panel_dir)  # as if generated (saves time)
    source.prepare()  # cached: nothing is generated
    assert source.prepared
    path = source.panel_dir / "mlm" / "qah.txt"
    assert source.text_file("qah") == path and source.describe("qah") == str(path)
    assert source.language_identity("qah") == old_file_identity(path)
    assert len(source.dataset("qah", tmp_path / "hf")) == len(path.read_text(encoding="utf-8").splitlines())
    with pytest.raises(XltError, match="no cache_dir"):
        SyntheticPanel().prepare()


def test_synthetic_panel_takes_the_data_module_cache_dir(tmp_path: Path) -> None:
    bound = as_text_source(SyntheticPanel(seed=2), str(tmp_path / "c"))
    assert bound == SyntheticPanel(seed=2, cache_dir=str(tmp_path / "c"))
    own = SyntheticPanel(cache_dir=str(tmp_path / "own"))
    assert as_text_source(own, str(tmp_path / "c")) is own
    dm = MultilingualCorpusDataModule(corpus=SyntheticPanel(scale=0.5), cache_dir=str(tmp_path / "c"))
    assert dm.corpus.panel_dir == tmp_path / "c" / "synthetic-seed0-scale0.5"
    assert dm.hparams["corpus"] == {"class_path": "xlt.sources.SyntheticPanel",
                                    "init_args": {"seed": 0, "scale": 0.5, "cache_dir": None}}  # plain types
    buffer = io.BytesIO()
    torch.save(dict(dm.hparams), buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["corpus"] == dm.hparams["corpus"]  # checkpoints load safely
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------------------------------------- HubText
def test_hub_text(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = HubText("org/cc", config="wiki.{code}", split="validation", column="sentence")
    assert source.identity(["qaa"]) == {"kind": "hf", "id": "org/cc", "config": "wiki.{code}",
                                        "split": "validation", "column": "sentence"}
    assert source.language_identity("qaa") == {"kind": "hf", "id": "org/cc", "config": "wiki.qaa",
                                               "split": "validation", "column": "sentence"}
    assert HubText("org/cc", config="").language_identity("qaa")["config"] is None
    assert source.describe("qaa") == "org/cc config 'wiki.qaa'"
    assert source.languages(["qab", "qaa"]) == ["qab", "qaa"] and source.text_file("qaa") is None
    with pytest.raises(XltError, match="cannot list its languages"):
        source.languages()
    calls = []

    def fake_hub(dataset_id, config, split, cache_dir):
        calls.append((dataset_id, config, split))
        if config == "wiki.qab":
            raise FileNotFoundError("no such config\nmore detail")
        return datasets.Dataset.from_dict({"sentence": ["a b", "c"], "id": [0, 1]})

    monkeypatch.setattr(sources, "_load_hub_dataset", fake_hub)
    assert source.dataset("qaa", tmp_path)[source.column] == ["a b", "c"]
    assert calls == [("org/cc", "wiki.qaa", "validation")]
    with pytest.raises(XltError, match=r"hub dataset org/cc \(config 'wiki.qab', split 'validation'\) for "
                                       r"language 'qab' could not be loaded: no such config") as info:
        source.dataset("qab", tmp_path)
    assert "\n" not in str(info.value)
    with pytest.raises(XltError, match="hub dataset org/cc for language 'qaa' has no column 'text' "
                                       r"\(columns: sentence, id\)"):
        HubText("org/cc", config="wiki.{code}").dataset("qaa", tmp_path)


# ---------------------------------------------------------------------------------------------- shorthand
def test_shorthand_strings(tmp_path: Path, text_dir: Path) -> None:
    cache = str(tmp_path / "cache")
    assert as_text_source("synthetic", cache) == SyntheticPanel(0, 1.0, cache)
    assert as_text_source("hf:org/cc", cache) == HubText("org/cc", "{code}", "train", "text")
    assert as_text_source("hf: org/cc ", cache) == HubText("org/cc")
    assert as_text_source(str(text_dir), cache) == TextDirectory(str(text_dir))
    with pytest.raises(XltError, match="corpus 'hf:' names no dataset — use hf:<dataset_id>"):
        as_text_source("hf:", cache)
    for source in (SyntheticPanel(1, 0.5, cache), TextDirectory(str(text_dir)), HubText("a/b", "", "dev", "s")):
        assert as_text_source(source.config(), cache) == source  # a checkpoint's hyperparameters load back
        assert isinstance(source, TextSource)
    with pytest.raises(XltError, match="is not a text source"):
        as_text_source({"class_path": "os.system", "init_args": {}}, cache)
    with pytest.raises(XltError, match="is not a text source"):
        as_text_source(3, cache)  # type: ignore[arg-type]


def test_task_data_shorthand_and_locations(tmp_path: Path, text_dir: Path) -> None:
    cache = str(tmp_path / "cache")
    assert as_task_source("synthetic", cache) == SyntheticPanel(0, 1.0, cache)
    assert as_task_source(str(text_dir), cache) == TextDirectory(str(text_dir))  # an existing path
    assert as_task_source(str(text_dir / "qaa.txt"), cache) == TextDirectory(str(text_dir / "qaa.txt"))
    assert as_task_source("./data/ud", cache) == TextDirectory("./data/ud")  # written as a path
    assert as_task_source("google/xtreme_s", cache) == HubText("google/xtreme_s", config="")  # a plain hub id
    assert as_task_source("hf:google/xtreme_s", cache) == HubText("google/xtreme_s", config="")
    with pytest.raises(XltError, match="data 'hf:' names no dataset — use hf:<dataset_id>"):
        as_task_source("hf:", cache)
    source = HubText("a/b", "{code}", "dev", "s")
    assert as_task_source(source, cache) is source and as_task_source(source.config(), cache) == source
    (text_dir / "qab").mkdir()
    assert TextDirectory(str(text_dir)).task_location("ud", "qab") == (str(text_dir / "qab"), None)
    assert TextDirectory(str(text_dir)).task_location("ud", "qac") == (str(text_dir), None)
    panel = SyntheticPanel(scale=0.5, cache_dir=cache)
    assert panel.task_location("ud", "qaa") == (str(panel.panel_dir / "ud"), None)
    assert HubText("a/b", config="{code}").task_location("ud", "deu") == ("a/b", "deu")
    assert HubText("a/b", config="").task_location("ud", "deu") == ("a/b", None)


def test_old_and_new_forms_give_the_same_cache_names(text_dir: Path, tmp_path: Path) -> None:
    panel = tmp_path / "panel.yaml"
    panel.write_text(yaml.safe_dump({"name": "p", "languages": [
        {"code": c, "name": c, "family": "f", "script": "Latin", "bucket": "high"} for c in ("qaa", "qab")]}))
    common = {"panel": str(panel), "cache_dir": str(tmp_path / "c"), "tokenizer_vocab_size": 300}
    for short, obj in [("synthetic", SyntheticPanel(seed=0, scale=1.0)), (str(text_dir), TextDirectory(str(text_dir))),
                       ("hf:org/cc", HubText("org/cc"))]:
        a = MultilingualCorpusDataModule(corpus=short, **common)
        b = MultilingualCorpusDataModule(corpus=obj, **common)
        assert a.tokenizer_dir == b.tokenizer_dir and a.language_codes == b.language_codes == ["qaa", "qab"]
        assert a.hparams["corpus"] == short  # a string stays as typed
    # the tokenizer directory of the quickstart's corpus, as before sources were objects
    quick = MultilingualCorpusDataModule(corpus=SyntheticPanel(), tokenizer_vocab_size=4000, cache_dir="runs/cache")
    assert quick.tokenizer_dir == "runs/cache/tokenizer-9b8e94571c5b"


def test_data_module_errors_name_the_source(text_dir: Path, tmp_path: Path) -> None:
    panel = tmp_path / "panel.yaml"
    panel.write_text(yaml.safe_dump({"name": "p", "languages": [
        {"code": "qaz", "name": "z", "family": "f", "script": "Latin", "bucket": "high"}]}))
    with pytest.raises(XltError, match=f"corpus directory {text_dir} has no <code>.txt file for any language of "
                                       "panel 'p' \\(qaz\\)"):
        MultilingualCorpusDataModule(corpus=TextDirectory(str(text_dir)), panel=str(panel))
    with pytest.raises(XltError, match="corpus directory /nonexistent/corpus not found"):
        MultilingualCorpusDataModule(corpus=TextDirectory("/nonexistent/corpus"))


# ---------------------------------------------------------------------------------------------- CLI forms
def _printed_corpus(capsys: pytest.CaptureFixture[str], *args: str):
    from xlt.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", QUICKSTART, *args, "--print_config"])
    captured = capsys.readouterr()
    assert exit_info.value.code in (0, None), captured.err
    return yaml.safe_load(captured.out)["data"]["init_args"]["corpus"]


def test_cli_object_form_and_shorthand(capsys: pytest.CaptureFixture[str], text_dir: Path) -> None:
    synthetic = {"class_path": "xlt.sources.SyntheticPanel",
                 "init_args": {"seed": 0, "scale": 1.0, "cache_dir": None, "task_scale": None}}
    assert _printed_corpus(capsys) == synthetic  # the quickstart shows the source object
    assert _printed_corpus(capsys, "--data.init_args.corpus.init_args.scale", "0.5")["init_args"]["scale"] == 0.5
    assert _printed_corpus(capsys, "--data.init_args.corpus", "synthetic") == "synthetic"
    assert _printed_corpus(capsys, "--data.init_args.corpus", str(text_dir)) == str(text_dir)
    assert _printed_corpus(capsys, "--data.init_args.corpus", "hf:org/cc") == "hf:org/cc"
    hub = _printed_corpus(capsys, "--data.init_args.corpus", "HubText", "--data.init_args.corpus.dataset", "org/cc",
                          "--data.init_args.corpus.column", "sentence")
    assert hub == {"class_path": "xlt.sources.HubText",
                   "init_args": {"dataset": "org/cc", "config": "{code}", "split": "train", "column": "sentence"}}


def test_sources_do_not_import_data_modules() -> None:
    code = "import sys, xlt.sources; sys.exit(any(m.startswith('xlt.datamodules') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
