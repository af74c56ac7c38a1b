"""The task data base: languages, few-shot sampling, length-bucketed evaluation batches, errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from xlt.datamodules.pawsx import PAWSXDataModule
from xlt.datamodules.qa import QADataModule
from xlt.datamodules.task_data import LengthBucketBatches, few_shot_indices, pad_batch
from xlt.datamodules.xnli import XNLIDataModule
from xlt.errors import XltError
from xlt.formats import read_nli_tsv
from xlt.sources import HubText, SyntheticPanel, TextDirectory
from xlt.synthetic import cached_panel_dir

ROOT = Path(__file__).resolve().parents[2]

SYNTHETIC = ["qaa", "qab", "qac", "qad", "qae", "qaf", "qag", "qah", "qai", "qaj"]


def xnli(panel_dir: Path, tokenizer: Path, **kwargs) -> XNLIDataModule:
    return XNLIDataModule(data=str(panel_dir / "xnli"), tokenizer=str(tokenizer), panel="synthetic", **kwargs)


def test_few_shot_indices_are_seeded_distinct_and_stratified() -> None:
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    picked = few_shot_indices(100, 10, seed=1, labels=labels)
    assert len(picked) == len(set(picked)) == 10
    assert Counter(labels[i] for i in picked) == {"a": 6, "b": 3, "c": 1}
    assert picked == few_shot_indices(100, 10, seed=1, labels=labels)
    assert picked != few_shot_indices(100, 10, seed=2, labels=labels)
    # largest remainders: quotas 3.5 / 3.5 with k=7 over a 50/50 split → 4 + 3 (ties by label order)
    halves = ["x"] * 50 + ["y"] * 50
    assert Counter(halves[i] for i in few_shot_indices(100, 7, 0, halves)) == {"x": 4, "y": 3}
    assert few_shot_indices(5, 10, seed=0) == [0, 1, 2, 3, 4]


def test_few_shot_training_set_is_source_plus_exactly_k_per_target(task_panel_dir: Path,
                                                                    tiny_tokenizer_dir: Path) -> None:
    dm = xnli(task_panel_dir, tiny_tokenizer_dir, few_shot=100, seed=7)
    dm.setup("fit")
    sizes = dm.describe()["train"]
    assert sizes == {"qaa": 150, **{code: 100 for code in SYNTHETIC[1:]}}
    assert len(dm.features["train"]) == 150 + 9 * 100
    chosen = {code: [tuple(r.values()) for r in rows] for code, rows in dm.splits["train"].items()}
    for code in SYNTHETIC[1:]:
        full = read_nli_tsv(task_panel_dir / "xnli" / code / "train.tsv")
        full_rows = [tuple(r.values()) for r in full]
        assert set(chosen[code]) <= set(full_rows)  # drawn from the language's own train split
        counts = Counter(r[2] for r in chosen[code])
        expected = Counter(full["label"])
        for label, n in expected.items():  # stratified: shares within one example of the split's
            assert abs(counts[label] - 100 * n / len(full)) <= 1
    again = xnli(task_panel_dir, tiny_tokenizer_dir, few_shot=100, seed=7)
    again.setup("fit")
    assert {c: [tuple(r.values()) for r in rows] for c, rows in again.splits["train"].items()} == chosen
    other = xnli(task_panel_dir, tiny_tokenizer_dir, few_shot=100, seed=8)
    other.setup("fit")
    assert [tuple(r.values()) for r in other.splits["train"]["qab"]] != chosen["qab"]
    assert [tuple(r.values()) for r in other.splits["train"]["qaa"]] == chosen["qaa"]  # source: all of it


def test_one_language_sample_does_not_depend_on_the_others(task_panel_dir: Path, tiny_tokenizer_dir: Path) -> None:
    both = xnli(task_panel_dir, tiny_tokenizer_dir, few_shot=20, few_shot_languages=["qab", "qac"], seed=1)
    alone = xnli(task_panel_dir, tiny_tokenizer_dir, few_shot=20, few_shot_languages=["qac"], seed=1)
    both.setup("fit")
    alone.setup("fit")
    assert both.splits["train"]["qac"]["premise"] == alone.splits["train"]["qac"]["premise"]


def test_model_selection_chooses_the_dev_languages(task_panel_dir: Path, tiny_tokenizer_dir: Path) -> None:
    source = xnli(task_panel_dir, tiny_tokenizer_dir, eval_languages=["qaa", "qab", "qaj"])
    target = xnli(task_panel_dir, tiny_tokenizer_dir, eval_languages=["qaa", "qab", "qaj"], model_selection="target")
    assert source.split_languages("dev") == ["qaa"]
    assert target.split_languages("dev") == ["qab", "qaj"]
    assert source.split_languages("test") == ["qaa", "qab", "qaj"]
    assert xnli(task_panel_dir, tiny_tokenizer_dir).eval_languages() == SYNTHETIC


def test_evaluation_batches_are_length_bucketed_per_language(task_panel_dir: Path, tiny_tokenizer_dir: Path) -> None:
    dm = xnli(task_panel_dir, tiny_tokenizer_dir, eval_max_tokens=800, eval_max_rows=64)
    dm.setup("test")
    seen: list[tuple[int, int]] = []
    padded = real = 0
    for batch in dm.test_dataloader():
        assert batch["lang"].unique().numel() == 1  # one language per batch
        assert batch["input_ids"].numel() <= 800 and len(batch["input_ids"]) <= 64
        padded += batch["input_ids"].numel()
        real += int(batch["attention_mask"].sum())
        seen += list(zip(batch["lang"].tolist(), batch["index"].tolist(), strict=True))
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 10 * 38  # every example exactly once
    assert real / padded > 0.85  # sorted by length: little padding (unsorted batches of 10: ~0.75)
    # two ranks split the batches without overlap
    lengths = [len(x) for x in dm.features["test"]["input_ids"]]
    langs = dm.features["test"]["lang"]
    ranks = [LengthBucketBatches(lengths, langs, 800, 64, rank, 2).batches for rank in (0, 1)]
    flat = [i for batches in ranks for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))


def test_pad_batch_pads_ids_and_labels() -> None:
    batch = pad_batch([{"input_ids": [0, 5, 2], "labels": [-100, 3, -100], "label": 1},
                       {"input_ids": [0, 2], "labels": [-100, -100], "label": 0}], pad_id=1, pad_keys={"labels": -100})
    assert batch["input_ids"].tolist() == [[0, 5, 2], [0, 2, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, 3, -100], [-100, -100, -100]]
    assert batch["label"].tolist() == [1, 0]


def test_pair_encoding_truncates_to_max_length(task_panel_dir: Path, tiny_tokenizer_dir: Path) -> None:
    dm = PAWSXDataModule(data=str(task_panel_dir / "pawsx"), tokenizer=str(tiny_tokenizer_dir), panel="synthetic",
                         max_length=24, eval_languages=["qaa"])
    dm.setup("test")
    ids = dm.features["test"]["input_ids"]
    assert max(len(x) for x in ids) == 24
    assert all(x[0] == 0 and x[-1] == 2 for x in ids)  # <s> ... </s> kept by truncation
    assert set(dm.features["test"]["label"]) == {0, 1}
    assert dm.label_names == ["0", "1"]


def test_eval_language_without_data_is_an_error_naming_it(tmp_path: Path, task_panel_dir: Path,
                                                         tiny_tokenizer_dir: Path) -> None:
    data = tmp_path / "xnli"
    for code in ("qaa", "qab"):
        (data / code).mkdir(parents=True)
        for split in ("train", "dev", "test"):
            (data / code / f"{split}.tsv").write_bytes((task_panel_dir / "xnli" / code / f"{split}.tsv").read_bytes())
    dm = XNLIDataModule(data=str(data), tokenizer=str(tiny_tokenizer_dir), panel="synthetic",
                        eval_languages=["qab", "qac"])
    with pytest.raises(XltError, match=r"no test data for language 'qac' \(xnli\)"):
        dm.setup("test")
    assert XNLIDataModule(data=str(data), tokenizer=str(tiny_tokenizer_dir), panel="synthetic").eval_languages() == \
        ["qaa", "qab"]


def test_bad_arguments_are_one_line_errors(task_panel_dir: Path, tiny_tokenizer_dir: Path) -> None:
    with pytest.raises(XltError, match="unknown language code 'xyz' for panel 'synthetic'"):
        xnli(task_panel_dir, tiny_tokenizer_dir, eval_languages=["xyz"])
    with pytest.raises(XltError, match="few_shot -1"):
        xnli(task_panel_dir, tiny_tokenizer_dir, few_shot=-1)
    with pytest.raises(XltError, match=r"few_shot 500 > the 150 train examples of language 'qab'"):
        xnli(task_panel_dir, tiny_tokenizer_dir, few_shot=500, few_shot_languages=["qab"]).setup("fit")
    with pytest.raises(XltError, match="tokenizer 'nowhere/tok' could not be loaded"):
        xnli(task_panel_dir, Path("nowhere/tok")).setup("test")


def test_label_map_and_label_errors(tmp_path: Path, tiny_tokenizer_dir: Path) -> None:
    from datasets import Dataset, DatasetDict

    rows = {"sentence1": ["a b", "c d", "e f"], "sentence2": ["b a", "d c", "f e"], "label": [0, 1, 1]}
    repo = tmp_path / "pawsx_repo"
    DatasetDict({"test": Dataset.from_dict(rows), "train": Dataset.from_dict(rows)}).save_to_disk(str(repo))
    dm = PAWSXDataModule(data=str(repo), tokenizer=str(tiny_tokenizer_dir), panel="synthetic",
                         train_languages=["qaa"], eval_languages=["qaa"], label_map={"1": "0"})
    dm.setup("test")
    assert dm.features["test"]["label"] == [0, 0, 0]
    dm = PAWSXDataModule(data=str(repo), tokenizer=str(tiny_tokenizer_dir), panel="synthetic",
                         train_languages=["qaa"], eval_languages=["qaa"], label_map={"1": "yes"})
    with pytest.raises(XltError, match=r"labels \['yes'\] of language 'qaa' are not in the pawsx label set"):
        dm.setup("test")


def test_stratified_sample_keeps_a_rare_label_under_every_seed() -> None:
    """A label with 2 % of the rows gets its largest-remainder quota (1 of k=30: quotas 27 / 2.4 / 0.6) under
    every seed; an unstratified sample of 30 of these 100 rows misses both of its rows about half the time
    (C(98,30) / C(100,30) = 0.49), and flooring the quotas gives it none."""
    labels = np.random.default_rng(0).permutation(["common"] * 90 + ["less"] * 8 + ["rare"] * 2).tolist()
    for seed in range(20):
        picked = few_shot_indices(100, 30, seed=seed, labels=labels)
        assert len(set(picked)) == 30
        assert Counter(labels[i] for i in picked) == {"common": 27, "less": 2, "rare": 1}, seed


# ---------------------------------------------------------------------------------------------- sources
def test_source_objects_and_shorthand_strings_read_the_same_rows(task_panel_dir: Path, tiny_tokenizer_dir: Path,
                                                                 tmp_path: Path) -> None:
    import torch

    cache = tmp_path / "cache"
    cache.mkdir()
    cached_panel_dir(cache, 0, 0.25).symlink_to(task_panel_dir)  # as if generated by prepare_data (saves time)
    common = {"tokenizer": str(tiny_tokenizer_dir), "eval_languages": ["qab", "qac"], "few_shot": 20, "seed": 3,
              "cache_dir": str(cache)}
    panel = XNLIDataModule(data=SyntheticPanel(seed=0, scale=0.25), **common)  # panel default: synthetic
    folder = XNLIDataModule(data=str(task_panel_dir / "xnli"), panel="synthetic", **common)
    directory = XNLIDataModule(data=TextDirectory(str(task_panel_dir / "xnli")), panel="synthetic", **common)
    assert panel.panel_spec == "synthetic" and panel.data == SyntheticPanel(0, 0.25, str(cache))
    assert folder.data == directory.data == TextDirectory(str(task_panel_dir / "xnli"))
    assert panel.source_of("qab") == (str(cached_panel_dir(cache, 0, 0.25) / "xnli" / "qab"), None)
    assert folder.source_of("qab") == (str(task_panel_dir / "xnli" / "qab"), None)
    for dm in (panel, folder, directory):
        dm.setup("fit")
        dm.setup("test")
    assert (cache / "synthetic-seed0-scale0.25").is_symlink()  # the cached panel was used, not regenerated
    for split in ("train", "dev", "test"):
        expected = {code: rows.to_dict() for code, rows in folder.splits[split].items()}
        assert {code: rows.to_dict() for code, rows in panel.splits[split].items()} == expected
        assert {code: rows.to_dict() for code, rows in directory.splits[split].items()} == expected
        assert panel.features[split]["input_ids"] == folder.features[split]["input_ids"]
    # checkpoints hold the source as a plain config (weights_only=True) and build the same module back
    assert panel.hparams["data"] == {"class_path": "xlt.sources.SyntheticPanel",
                                     "init_args": {"seed": 0, "scale": 0.25, "cache_dir": None}}
    assert folder.hparams["data"] == str(task_panel_dir / "xnli")  # a string stays as typed
    torch.save({"hparams": dict(panel.hparams)}, tmp_path / "h.pt")
    loaded = torch.load(tmp_path / "h.pt", weights_only=True)["hparams"]
    assert XNLIDataModule(**loaded).data == panel.data
    # the panel default and the QA protocol follow the source
    assert XNLIDataModule(data="synthetic", cache_dir=str(cache)).data == SyntheticPanel(0, 1.0, str(cache))
    assert XNLIDataModule(data="synthetic").panel_spec == "synthetic"
    # a folder of a directory `xlt synth` wrote: the directory's panel.yaml (its path, as runs record it)
    carried = str((task_panel_dir / "panel.yaml").resolve())
    assert XNLIDataModule(data=str(task_panel_dir / "xnli")).panel_spec == carried
    qa = QADataModule(data=SyntheticPanel(scale=0.25), cache_dir=str(cache), data_per_language={
        "qab": str(task_panel_dir / "qa" / "qab" / "train.json"),
        "qac": {"class_path": "xlt.sources.TextDirectory", "init_args": {"path": str(task_panel_dir / "qa")}}})
    assert qa.official_normalization("qaa") == ("squad_v1", "synthetic panel")
    assert qa.official_normalization("qab") == ("squad_v1", "SQuAD-format data")
    assert qa.source_of("qab") == (str(task_panel_dir / "qa" / "qab" / "train.json"), None)
    assert qa.source_of("qac") == (str(task_panel_dir / "qa" / "qac"), None)
    assert qa.is_synthetic("qaa") and not qa.is_synthetic("qac")


def test_data_from_xlt_synth_carries_its_panel(tmp_path: Path, tiny_tokenizer_dir: Path) -> None:
    """`xlt synth --out X` then a task module on `X/ud` (or `X`, or a TextDirectory of either) with no panel uses
    X's panel.yaml, not paper40 (which would reject qaa); explicit panels and data without a panel.yaml keep the
    old defaults."""
    from xlt.cli import main
    from xlt.datamodules.udpos import UDPOSDataModule

    out = tmp_path / "synth"
    main(["synth", "--out", str(out), "--scale", "0.05"])
    panel_file = str((out / "panel.yaml").resolve())
    for data in (str(out / "ud"), str(out), TextDirectory(str(out / "ud"))):
        dm = UDPOSDataModule(data=data, tokenizer=str(tiny_tokenizer_dir), eval_languages=["qab"])
        assert dm.panel.codes == SYNTHETIC and dm.panel_spec == panel_file, data  # the tag xlt.panel
        assert dm.train_languages == ["qaa"]
    dm = UDPOSDataModule(data=str(out / "ud"), tokenizer=str(tiny_tokenizer_dir), eval_languages=["qab"])
    dm.setup("test")
    assert list(dm.splits["test"]) == ["qab"]
    explicit = UDPOSDataModule(data=str(out / "ud"), panel="paper40")
    assert explicit.panel_spec == "paper40" and "qaa" not in explicit.panel
    bare = tmp_path / "bare" / "ud"
    bare.mkdir(parents=True)
    assert UDPOSDataModule(data=str(bare)).panel_spec == "paper40"


def test_a_run_on_carried_panel_data_tags_the_panel_file(synthetic_dir: Path, tiny_tokenizer_dir: Path,
                                                          tmp_path: Path) -> None:
    """The run tag ``xlt.panel`` of a task run on `<synth_out>/ud` without a panel is the panel.yaml's path."""
    import lightning.pytorch as pl
    from mlflow.tracking import MlflowClient

    from xlt.callbacks.tracking import TrackingLogger
    from xlt.datamodules.udpos import UDPOSDataModule
    from xlt.models.token_classification import TokenClassification

    dm = UDPOSDataModule(data=str(synthetic_dir / "ud"), tokenizer=str(tiny_tokenizer_dir), eval_languages=["qab"])
    config = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
              "max_position_embeddings": 130, "vocab_size": len(dm.tokenizer_for("qaa"))}
    model = TokenClassification(encoder="xlm-roberta", config=config, n_boot=10, seed=0,
                                predictions_dir=str(tmp_path / "pred"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = TrackingLogger(experiment_name="carried-panel", tracking_uri=uri)
    pl.Trainer(accelerator="cpu", logger=logger, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).test(model, dm, verbose=False)
    tags = MlflowClient(tracking_uri=uri).get_run(logger.run_id).data.tags
    assert tags["xlt.panel"] == str((synthetic_dir / "panel.yaml").resolve())


def test_hub_sources_name_the_dataset_and_each_language_config(monkeypatch: pytest.MonkeyPatch,
                                                               tiny_tokenizer_dir: Path) -> None:
    import datasets

    calls = []

    def fake_load_dataset(path: str, name: str | None = None, split: str | None = None, **_: object):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict({"sentence1": ["a b"], "sentence2": ["b a"], "label": [1]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    short = PAWSXDataModule(data="org/pawsx", tokenizer=str(tiny_tokenizer_dir), panel="synthetic")
    assert short.data == HubText("org/pawsx", config="") and short.panel_spec == "synthetic"
    assert PAWSXDataModule(data="hf:org/pawsx").data == short.data and short.source_of("qab") == ("org/pawsx", None)
    assert PAWSXDataModule(data="org/pawsx").panel_spec == "paper40"
    hub = PAWSXDataModule(data=HubText("org/pawsx", config="x-{code}"), tokenizer=str(tiny_tokenizer_dir),
                          panel="synthetic", train_languages=["qaa"], eval_languages=["qab"])
    assert hub.source_of("qab") == ("org/pawsx", "x-qab")
    hub.setup("test")
    assert calls[-1] == ("org/pawsx", "x-qab", "test") and hub.splits["test"]["qab"]["label"] == [1]


def test_task_configs_show_the_source_object_and_keep_the_shorthand(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from xlt.cli import main

    def printed(*args: str):
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", "--config", str(ROOT / "configs" / "tasks" / "udpos.yaml"), *args, "--print_config"])
        captured = capsys.readouterr()
        assert exit_info.value.code in (0, None), captured.err
        return yaml.safe_load(captured.out)["data"]["init_args"]

    synthetic = {"class_path": "xlt.sources.SyntheticPanel",
                 "init_args": {"seed": 0, "scale": 1.0, "cache_dir": None, "task_scale": None}}
    assert printed()["data"] == synthetic
    assert printed("--data.data.init_args.scale", "0.5")["data"]["init_args"]["scale"] == 0.5
    for short in ("../shared/data/ud", "synthetic", "google/xtreme_s", "hf:google/xtreme_s"):
        assert printed("--data.data", short)["data"] == short
    per_language = printed("--data.data_per_language", "{eng: path/to/ud, deu: org/ud}")["data_per_language"]
    assert per_language == {"eng": "path/to/ud", "deu": "org/ud"}
