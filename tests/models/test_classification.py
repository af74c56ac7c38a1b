"""Sentence-pair classification (XNLI, PAWS-X): the fine-tuning loop learns; several seeds; label checks."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from xlt.cli import _split_seeds, main
from xlt.datamodules.xnli import XNLIDataModule
from xlt.errors import XltError
from xlt.models.classification import SequenceClassification

TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
        "max_position_embeddings": 66, "vocab_size": 1002, "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster than two on a shared 2-core machine
    yield
    torch.set_num_threads(threads)


def test_xnli_fine_tuning_fits_the_source_language(synthetic_dir: Path, tiny_tokenizer_dir: Path, tmp_path: Path,
                                                   one_thread: None) -> None:
    """Train and evaluate on the same 30 qaa pairs: the loop (labels, loss, argmax, metric) must learn them.

    Held-out synthetic XNLI needs more than a 2-layer, d=64 encoder trained from scratch on 30-600 pairs (it stays
    near chance); that is a property of the model size, not of the loop tested here.
    """
    train = synthetic_dir / "xnli" / "qaa" / "train.tsv"
    dm = XNLIDataModule(data=str(synthetic_dir / "xnli"), tokenizer=str(tiny_tokenizer_dir), panel="synthetic",
                        data_per_language={"qaa": str(train)}, eval_languages=["qaa"], max_length=64, batch_size=8)
    pl.seed_everything(0)
    model = SequenceClassification(encoder="xlm-roberta", config=TINY, lr=3e-3, warmup_ratio=0.0, n_boot=100,
                                   export_dir=str(tmp_path / "export"))
    trainer = pl.Trainer(max_epochs=25, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, dm)
    trainer.test(model, dm, verbose=False)
    (result,) = model.results
    assert result["qaa"].n_examples == 30
    assert result["qaa"].score > 0.8  # chance: 1/3


def test_model_labels_must_match_the_data(synthetic_dir: Path, tiny_tokenizer_dir: Path, tmp_path: Path) -> None:
    dm = XNLIDataModule(data=str(synthetic_dir / "xnli"), tokenizer=str(tiny_tokenizer_dir), panel="synthetic",
                        eval_languages=["qaa"], max_length=64)
    model = SequenceClassification(encoder="xlm-roberta", config=TINY, labels=["yes", "no"],
                                   export_dir=str(tmp_path / "export"))
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(XltError, match=r"model's labels \['yes', 'no'\] differ from the data's"):
        trainer.test(model, dm, verbose=False)


def test_vocabulary_larger_than_the_encoder_is_an_error(synthetic_dir: Path, tiny_tokenizer_dir: Path,
                                                        tmp_path: Path) -> None:
    dm = XNLIDataModule(data=str(synthetic_dir / "xnli"), tokenizer=str(tiny_tokenizer_dir), panel="synthetic",
                        eval_languages=["qaa"], max_length=64)
    model = SequenceClassification(encoder="xlm-roberta", config={**TINY, "vocab_size": 500},
                                   export_dir=str(tmp_path / "export"))
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(XltError, match=r"has 1002 ids but the encoder xlm-roberta has 500 embeddings"):
        trainer.test(model, dm, verbose=False)


def test_seeds_option_is_parsed_and_checked() -> None:
    assert _split_seeds(["fit", "--config", "a.yaml", "--seeds", "[1, 2,3]"]) == ([1, 2, 3], ["fit", "--config",
                                                                                          "a.yaml"])
    assert _split_seeds(["fit", "--seeds=4,5"]) == ([4, 5], ["fit"])
    assert _split_seeds(["fit"]) == (None, ["fit"])
    with pytest.raises(XltError, match="not a list of integers"):
        _split_seeds(["fit", "--seeds", "one"])
    with pytest.raises(XltError, match="use it with `xlt fit`"):
        _split_seeds(["test", "--seeds", "1"])


def test_seeds_run_one_run_per_seed_and_summarise(synthetic_dir: Path, tiny_tokenizer_dir: Path, tmp_path: Path,
                                                  mlflow_uri: str, capsys: pytest.CaptureFixture[str],
                                                  one_thread: None) -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "tasks" / "pawsx.yaml"
    main(["fit", "--config", str(config), "--model.encoder", "xlm-roberta", "--model.config", str(TINY),
          "--data.tokenizer", str(tiny_tokenizer_dir), "--data.data", str(synthetic_dir / "pawsx"),
          "--data.panel", "synthetic", "--data.eval_languages", "[qaa, qab]", "--data.max_length", "64",
          "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path),
          "--trainer.logger.init_args.tracking_uri", mlflow_uri,
          "--trainer.logger.init_args.experiment_name", "seeds", "--model.n_boot", "100", "--seeds", "[3, 4]",
          "--model.predictions_dir", str(tmp_path / "pred")])
    out = capsys.readouterr().out
    assert "test/pawsx/acc over seeds [3, 4]" in out
    assert (tmp_path / "seed3" / "export").is_dir() and (tmp_path / "seed4" / "export").is_dir()
    predicted = [(tmp_path / "pred" / f"seed{s}" / "test-qab.tsv").read_text() for s in (3, 4)]  # one per seed
    assert all(p.count("\n") == 20 for p in predicted) and not (tmp_path / "pred" / "test-qab.tsv").exists()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("seeds").experiment_id])
    assert sorted(r.data.tags["xlt.seed"] for r in runs) == ["3", "4"]
