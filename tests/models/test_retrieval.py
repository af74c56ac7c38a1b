"""Tatoeba-style bitext retrieval: pooling, pairing, P@1 both ways, predictions, real files, CLI behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
import yaml
from transformers import AutoTokenizer

from xlt.cli import main
from xlt.datamodules.retrieval import RetrievalDataModule
from xlt.errors import XltError
from xlt.models.retrieval import Retrieval, mean_pool

TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
        "max_position_embeddings": 130}
MICRO = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
         "max_position_embeddings": 66}
# real Tatoeba pairs in ../shared/data/tatoeba: file code -> panel code
REAL_PAIRS = {"ara": "ara", "cmn": "zho", "deu": "deu", "fin": "fin", "fra": "fra", "hin": "hin", "ind": "ind",
              "rus": "rus", "spa": "spa", "swh": "swa", "tur": "tur"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The test machine's two cores are shared: one intra-op thread is several times faster than two here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def trainer() -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)


def synthetic_data(synthetic_dir: Path, tokenizer: Path, **kwargs: object) -> RetrievalDataModule:
    kwargs = {"train_languages": ["qaa"], **kwargs}
    return RetrievalDataModule(data=str(synthetic_dir / "tatoeba"), panel="synthetic", tokenizer=str(tokenizer),
                               **kwargs)


def scores(module: Retrieval) -> dict[str, dict[str, float]]:
    """metric -> group -> score of the last test run."""
    return {r.metric: {group: g.score for group, g in r.groups.items()} for r in module.results}


# ------------------------------------------------------------------------------------------------ hand cases


def test_mean_pool_excludes_special_tokens_and_padding() -> None:
    hidden = torch.tensor([[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]],
                           [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]],
                           [[5.0, 50.0], [7.0, 70.0], [9.0, 90.0], [9.0, 90.0]]])
    attention = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    special = torch.tensor([[1, 0, 1, 1], [1, 0, 0, 1], [1, 1, 1, 1]])  # <s> ... </s> <pad>
    pooled = mean_pool(hidden, attention, special)
    # row 0: token 1 only; row 1: tokens 1-2; row 2: nothing but specials -> its attended tokens 0-1
    assert pooled.tolist() == [[2.0, 20.0], [2.5, 25.0], [6.0, 60.0]]
    assert mean_pool(hidden, attention).tolist()[0] == [2.0, 20.0]  # without a special mask: padding only
    assert mean_pool(hidden, torch.zeros_like(attention)).tolist()[0] == [0.0, 0.0]


def test_layer_defaults_to_xtreme_middle_layer_and_is_checked() -> None:
    def resolved(layers: int, layer: int | None) -> int | None:
        config = {"hidden_size": 8, "num_hidden_layers": layers, "num_attention_heads": 1, "intermediate_size": 8,
                  "max_position_embeddings": 18, "vocab_size": 20}
        module = Retrieval(config=config, layer=layer)
        module.configure_model()
        return module.layer_index

    assert resolved(12, None) == 7 and resolved(24, None) == 13 and resolved(2, None) == 2  # hidden_states index
    assert resolved(2, 0) == 0 and resolved(2, -1) == 2 and resolved(2, -3) == 0
    with pytest.raises(XltError, match="model.layer 3 is outside"):
        resolved(2, 3)


def test_embeddings_come_from_the_chosen_layer() -> None:
    module = Retrieval(config={**MICRO, "num_hidden_layers": 2, "vocab_size": 50}, layer=-1)
    module.configure_model()
    module.model.eval()
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 9, 2, 1]])
    mask = (ids != 1).long()
    special = ((ids == 0) | (ids == 2) | (ids == 1)).long()
    with torch.no_grad():
        top = mean_pool(module.model(input_ids=ids, attention_mask=mask).last_hidden_state, mask, special)
        torch.testing.assert_close(module.embed(ids, mask, special), top)
        module.layer_index = 0
        bottom = mean_pool(module.model.embeddings(input_ids=ids), mask, special)
        torch.testing.assert_close(module.embed(ids, mask, special), bottom)


# ------------------------------------------------------------------------------------------------ synthetic panel


def test_features_pair_each_sentence_with_its_pivot_translation(synthetic_dir: Path, tiny_tokenizer_dir: Path) -> None:
    data = synthetic_data(synthetic_dir, tiny_tokenizer_dir, eval_max_tokens=512, max_length=64)
    data.setup("test")
    assert data.eval_languages() == [f"qa{c}" for c in "bcdefghij"]  # every pair, the pivot qaa excluded
    assert set(data.describe()["test"].values()) == {50}
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    folder = synthetic_dir / "tatoeba"
    own = (folder / "tatoeba.qai-qaa.qai").read_text(encoding="utf-8").splitlines()
    pivot = (folder / "tatoeba.qai-qaa.qaa").read_text(encoding="utf-8").splitlines()
    features = data.features["test"].filter(lambda row: row["lang"] == data.language_codes.index("qai"))
    row = features[3]
    assert row["index"] == 3
    assert row["input_ids"] == tokenizer(own[3])["input_ids"] and row["pivot_ids"] == tokenizer(pivot[3])["input_ids"]
    assert row["special_tokens_mask"] == [1] + [0] * (len(row["input_ids"]) - 2) + [1]

    batches = list(data.test_dataloader())
    assert sum(len(b["index"]) for b in batches) == 9 * 50
    for batch in batches:  # both sides within the token budget; each side padded on its own
        assert batch["input_ids"].numel() <= 512 and batch["pivot_ids"].numel() <= 512
        assert (batch["attention_mask"].sum(1) == (batch["input_ids"] != data.pad_id).sum(1)).all()
        assert (batch["pivot_attention_mask"].sum(1) == (batch["pivot_ids"] != data.pad_id).sum(1)).all()
        assert ((batch["special_tokens_mask"] == 1) | (batch["attention_mask"] == 1)).all()  # padding is special
    assert data.describe()["dev"] == data.describe()["test"]  # validate evaluates the same pairs


@pytest.fixture(scope="module")
def layer0_run(synthetic_dir: Path, tiny_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A random tiny encoder's embedding layer (layer 0) evaluated on every synthetic pair, with predictions."""
    out = tmp_path_factory.mktemp("retrieval_predictions")
    data = synthetic_data(synthetic_dir, tiny_tokenizer_dir)
    module = Retrieval(config={**TINY, "vocab_size": data.vocab_size}, layer=0, n_boot=20, predictions_dir=str(out))
    trainer().test(module, datamodule=data, verbose=False)
    return module, data, out


def test_word_order_copy_is_found_and_script_copy_is_not(layer0_run) -> None:
    module, _, _ = layer0_run
    result = scores(module)
    assert set(result) == {"p1", "p1_src2tgt", "p1_tgt2src"}
    # qaj: the source's words in SOV order -> nearly the same bag of embeddings; qai: the source in Greek script,
    # no shared tokens -> a random encoder can only match lengths
    assert result["p1_src2tgt"]["qaj"] > 0.9 and result["p1_tgt2src"]["qaj"] > 0.9
    assert result["p1_src2tgt"]["qai"] < 0.3 and result["p1_tgt2src"]["qai"] < 0.3
    for code in [f"qa{c}" for c in "bcdefghij"]:
        both = (result["p1_src2tgt"][code] + result["p1_tgt2src"][code]) / 2
        assert result["p1"][code] == pytest.approx(both)
    p1 = next(r for r in module.results if r.metric == "p1")
    assert p1["qaj"].n_examples == 50  # one per-example value per pair (the mean of its two hits)


def test_predictions_are_nearest_pivot_rows(layer0_run) -> None:
    module, _, out = layer0_run
    assert sorted(p.name for p in out.iterdir()) == [f"test-qa{c}.tsv" for c in "bcdefghij"]
    result = scores(module)
    for code in ("qai", "qaj"):
        rows = [int(line) for line in (out / f"test-{code}.tsv").read_text().splitlines()]
        assert len(rows) == 50 and all(0 <= r < 50 for r in rows)
        assert sum(r == i for i, r in enumerate(rows)) / 50 == pytest.approx(result["p1_src2tgt"][code])


def test_validate_scores_the_same_pairs(layer0_run) -> None:
    module, data, _ = layer0_run
    logged = trainer().validate(module, datamodule=data, verbose=False)[0]
    result = scores(module)
    assert logged["val/retrieval/p1/qaj"] == pytest.approx(result["p1"]["qaj"])
    assert logged["val/retrieval/p1_tgt2src/qai"] == pytest.approx(result["p1_tgt2src"]["qai"])
    assert logged["val/retrieval/p1/macro"] == pytest.approx(result["p1"]["macro"], abs=1e-6)


def test_pivot_mismatch_and_pivot_as_target_are_user_errors(synthetic_dir: Path, tiny_tokenizer_dir: Path) -> None:
    assert synthetic_data(synthetic_dir, tiny_tokenizer_dir, train_languages=None).pivot == "qaa"  # panel's first
    wrong_pivot = synthetic_data(synthetic_dir, tiny_tokenizer_dir, train_languages=["qab"])
    with pytest.raises(XltError, match=r"pairs language 'qac' with \['qaa'\], not with the pivot 'qab' — set "
                                       r"data.train_languages: \[qaa\]"):
        wrong_pivot.setup("test")
    with pytest.raises(XltError, match="lists the pivot 'qaa'"):
        synthetic_data(synthetic_dir, tiny_tokenizer_dir, eval_languages=["qab", "qaa"]).setup("test")


# ------------------------------------------------------------------------------------------------ real Tatoeba


@pytest.fixture(scope="module")
def real_panel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """English plus the 11 languages of the real Tatoeba subset (paper40 lacks Finnish and Turkish)."""
    records = [{"code": code, "name": code, "family": "f", "script": "s", "bucket": "high"}
               for code in ["eng", *REAL_PAIRS.values()]]
    path = tmp_path_factory.mktemp("panel") / "tatoeba.yaml"
    path.write_text(yaml.safe_dump({"name": "tatoeba", "languages": records}))
    return path


def test_real_tatoeba_all_pairs(data_dir: Path, real_panel: Path, tiny_tokenizer_dir: Path) -> None:
    folder = data_dir / "tatoeba"
    data = RetrievalDataModule(data=str(folder), panel=str(real_panel), tokenizer=str(tiny_tokenizer_dir),
                               max_length=32)
    module = Retrieval(config={**MICRO, "vocab_size": data.vocab_size}, n_boot=10)
    trainer().test(module, datamodule=data, verbose=False)
    sizes = {REAL_PAIRS[c]: len((folder / f"tatoeba.{c}-eng.{c}").read_text(encoding="utf-8").splitlines())
             for c in REAL_PAIRS}
    assert data.describe()["test"] == sizes and sizes["swa"] == 390 and sizes["deu"] == 1000
    result = scores(module)
    # the untrained encoder is near chance (P@1 ~ 0.005); what is checked is how the scores are formed: each
    # direction counts hits over all n pairs of the language (an integer / n), p1 is the mean of the two
    # directions, and macro is the plain mean over the 11 languages
    for code, n in sizes.items():
        for direction in ("p1_src2tgt", "p1_tgt2src"):
            hits = result[direction][code] * n
            assert hits == pytest.approx(round(hits), abs=1e-6), (direction, code, hits)
        assert result["p1"][code] == pytest.approx((result["p1_src2tgt"][code] + result["p1_tgt2src"][code]) / 2,
                                                   rel=1e-9, abs=1e-12), code
    for metric in ("p1", "p1_src2tgt", "p1_tgt2src"):
        assert set(result[metric]) >= set(REAL_PAIRS.values()) | {"macro"}
        assert result[metric]["macro"] == pytest.approx(sum(result[metric][c] for c in sizes) / len(sizes),
                                                        rel=1e-9), metric
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    first = data.features["test"][0]  # ara, row 0
    ara = (folder / "tatoeba.ara-eng.ara").read_text(encoding="utf-8").splitlines()[0]
    eng = (folder / "tatoeba.ara-eng.eng").read_text(encoding="utf-8").splitlines()[0]
    assert first["input_ids"] == tokenizer(ara, truncation=True, max_length=32)["input_ids"]
    assert first["pivot_ids"] == tokenizer(eng, truncation=True, max_length=32)["input_ids"]


def test_identical_sides_retrieve_themselves(data_dir: Path, real_panel: Path, tiny_tokenizer_dir: Path,
                                             tmp_path: Path) -> None:
    """English against itself: every sentence finds itself unless another sentence tokenizes identically
    (ties go to the first such row), so P@1 = distinct token sequences / sentences in both directions."""
    english = data_dir / "tatoeba" / "tatoeba.deu-eng.eng"
    (tmp_path / "tatoeba.deu-eng.deu").symlink_to(english)
    (tmp_path / "tatoeba.deu-eng.eng").symlink_to(english)
    data = RetrievalDataModule(data=str(tmp_path), panel=str(real_panel), tokenizer=str(tiny_tokenizer_dir),
                               max_length=32)
    module = Retrieval(config={**MICRO, "vocab_size": data.vocab_size}, n_boot=10)
    trainer().test(module, datamodule=data, verbose=False)
    ids = data.features["test"]["input_ids"]
    expected = len(set(map(tuple, ids))) / len(ids)
    result = scores(module)
    assert data.eval_languages() == ["deu"] and len(ids) == 1000
    assert result["p1_src2tgt"]["deu"] == pytest.approx(expected) and result["p1_tgt2src"]["deu"] == pytest.approx(
        expected)
    assert expected > 0.95


# ------------------------------------------------------------------------------------------------ CLI


def cli_args(synthetic_dir: Path, tokenizer: Path, tmp_path: Path, *extra: str) -> list[str]:
    config = {**TINY, "vocab_size": len(AutoTokenizer.from_pretrained(tokenizer))}
    return ["--model", "xlt.models.retrieval.Retrieval", "--model.init_args.config", json.dumps(config),
            "--model.init_args.n_boot", "10",
            "--data", "xlt.datamodules.retrieval.RetrievalDataModule",
            "--data.init_args.data", str(synthetic_dir / "tatoeba"), "--data.init_args.panel", "synthetic",
            "--data.init_args.train_languages", "[qaa]", "--data.init_args.tokenizer", str(tokenizer),
            "--data.init_args.eval_languages", "[qai,qaj]",
            "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path / "run"), *extra]


def test_cli_fit_is_refused(synthetic_dir: Path, tiny_tokenizer_dir: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *cli_args(synthetic_dir, tiny_tokenizer_dir, tmp_path, "--trainer.logger", "false")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "xlt: error: retrieval has nothing to train" in err and "run `xlt test`" in err
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "export").exists()


def test_cli_test_logs_both_directions_to_mlflow(synthetic_dir: Path, tiny_tokenizer_dir: Path, tmp_path: Path,
                                                  mlflow_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    logger = {"class_path": "xlt.callbacks.tracking.TrackingLogger",
              "init_args": {"experiment_name": "tests", "run_name": "retrieval", "tracking_uri": mlflow_uri}}
    main(["test", *cli_args(synthetic_dir, tiny_tokenizer_dir, tmp_path, "--trainer.logger", json.dumps(logger),
                            "--model.init_args.layer", "0",
                            "--model.init_args.predictions_dir", str(tmp_path / "predictions"))])
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("tests")
    run = client.search_runs([experiment.experiment_id], "tags.`mlflow.runName` = 'retrieval'")[0]
    metrics = run.data.metrics
    for name in ("p1", "p1_src2tgt", "p1_tgt2src"):
        assert {f"test/retrieval/{name}/{g}" for g in ("qai", "qaj", "macro")} <= set(metrics)
    assert metrics["test/retrieval/p1/qaj"] > 0.9 and metrics["test/retrieval/p1/qai"] < 0.3
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == ["test-qai.tsv", "test-qaj.tsv"]
