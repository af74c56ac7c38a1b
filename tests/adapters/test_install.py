"""Adapters in training runs: adapter-only modes train exactly the adapters (base bit-identical, no optimizer
state for frozen weights); the MAD-X recipe end to end through the CLI (language adapters for every panel
language by one MLM run, a task adapter on the source language, zero-shot test with each target's adapter);
bad adapter input ends with exit 2 before anything is written."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from mlflow.tracking import MlflowClient
from tiny_models import LANGUAGES, build_tiny, randomise_adapters, token_ids
from torch.utils.data import DataLoader
from transformers import AutoModelForMaskedLM, AutoModelForTokenClassification

from xlt.adapters.config import AdapterSetup
from xlt.adapters.install import install_adapters
from xlt.cli import main
from xlt.models.mlm import MLMPretraining
from xlt.models.optimization import adamw_param_groups

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = ROOT / "configs" / "adapters"
NER = ROOT / "configs" / "tasks" / "ner.yaml"
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 66}
SYNTHETIC = ["qaa", "qab", "qac", "qad", "qae", "qaf", "qag", "qah", "qai", "qaj"]


def is_adapter(name: str) -> bool:
    return "xlt_adapters." in name or "xlt_invertible." in name


# ----------------------------------------------------------------------------------------- training modes
def test_language_adapter_mlm_trains_only_the_adapters(tmp_path: Path) -> None:
    module = MLMPretraining(config={**TINY, "vocab_size": 64, "max_position_embeddings": 34}, seed=3,
                            languages=["qaa", "qab"], adapters=AdapterSetup(), warmup_steps=0, schedule="constant")
    module.configure_model()
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    ids = torch.randint(4, 63, (8, 16), generator=torch.Generator().manual_seed(0))
    items = [{"input_ids": ids[i], "lang": torch.tensor(i % 2)} for i in range(8)]
    trainer = pl.Trainer(accelerator="cpu", max_steps=4, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(items, batch_size=4))
    after = module.model.state_dict()
    for key, value in before.items():
        if is_adapter(key):
            assert not torch.equal(after[key], value), key  # every adapter tensor trained (both languages routed)
        else:
            assert torch.equal(after[key], value), key  # the base and the MLM head: bit-identical
    optimizer = trainer.optimizers[0]
    with_state = {id(p) for p in optimizer.state}
    named = dict(module.model.named_parameters())
    assert with_state == {id(p) for n, p in named.items() if is_adapter(n)}  # frozen weights take no AdamW state
    assert all(named[n].grad is None for n in named if not is_adapter(n))
    export = module.export(tmp_path / "export")
    reloaded = AutoModelForMaskedLM.from_pretrained(export).state_dict()  # the base alone, as AutoModel knows it
    assert all(torch.equal(reloaded[k], before[k]) for k in reloaded)
    assert sorted(p.name for p in (export / "adapters").iterdir()) == ["index.json", "qaa", "qab"]


def test_task_adapter_mode_trains_the_task_adapter_and_head_only(tmp_path: Path) -> None:
    mlm = build_tiny()
    setup = AdapterSetup(languages=["qaa", "qab"])
    adapters = install_adapters(mlm, setup, setup.plan(LANGUAGES, None, 32), LANGUAGES, "tiny")
    randomise_adapters(mlm)
    adapters.save(mlm, tmp_path / "adapters")
    tagger = build_tiny(auto_class=AutoModelForTokenClassification, seed=4, num_labels=3)
    tagger.roberta.load_state_dict(build_tiny().roberta.state_dict(), strict=False)  # same base as the adapters
    task_setup = AdapterSetup(train="task_adapter", task_adapter=True, load=[str(tmp_path / "adapters")])
    plan = task_setup.plan(LANGUAGES, None, 32, source=["qaa"], task="ner")
    installed = install_adapters(tagger, task_setup, plan, LANGUAGES, "tiny")
    tagger.train()
    before = {k: v.clone() for k, v in tagger.state_dict().items()}
    optimizer = torch.optim.AdamW(adamw_param_groups(tagger, 0.01), lr=1e-2)
    ids, labels = token_ids(4), torch.randint(0, 3, (4, 10), generator=torch.Generator().manual_seed(3))
    for _ in range(3):
        installed.route(torch.tensor([0, 0, 1, 2]), 4, ids.device)
        tagger(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = tagger.state_dict()
    trained = sorted(k for k in before if not torch.equal(after[k], before[k]))
    assert trained and all(".task." in k or k.startswith("classifier.") for k in trained)
    assert {k for k in before if ".task." in k or k.startswith("classifier.")} == set(trained)


# ----------------------------------------------------------------------------------------- the CLI recipe
@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> dict[str, Path]:
    """Two tiny random MLM encoders exported like `xlt fit` does (the tokenizer's files included)."""
    out = {}
    for name, seed in (("base", 0), ("other", 1)):
        module = MLMPretraining(encoder="xlm-roberta", tokenizer=str(tiny_tokenizer_dir), seed=seed, config=TINY)
        module.configure_model()
        out[name] = module.export(tmp_path_factory.mktemp(name) / "export")
    return out


def common(root: Path, mlflow_uri: str) -> list[str]:
    return ["--trainer.default_root_dir", str(root), "--trainer.logger.init_args.tracking_uri", mlflow_uri,
            "--trainer.logger.init_args.experiment_name", "adapters"]


@pytest.fixture(scope="module")
def madx(tmp_path_factory: pytest.TempPathFactory, bases: dict[str, Path], synthetic_dir: Path,
         mlflow_uri: str) -> dict[str, Path]:
    """Language adapters for all panel languages (one MLM run), then MAD-X NER fit and test."""
    base = tmp_path_factory.mktemp("madx")
    main(["fit", "--config", str(ADAPTERS / "lang_adapters_all.yaml"), "--model.encoder", str(bases["base"]),
          "--data.corpus", str(synthetic_dir / "mlm"), "--data.panel", str(synthetic_dir / "panel.yaml"),
          "--data.block_size", "32", "--data.batch_size", "8", "--data.val_blocks_per_language", "2",
          "--data.cache_dir", str(base / "cache"), "--trainer.max_steps", "4", "--trainer.val_check_interval", "4",
          *common(base / "lang", mlflow_uri)])
    task = ["--config", str(NER), "--config", str(ADAPTERS / "madx.yaml"), "--model.encoder", str(bases["base"]),
            "--model.adapters.init_args.load", f"[{base / 'lang' / 'export' / 'adapters'}]",
            "--data.data", str(synthetic_dir / "ner"), "--data.panel", "synthetic", "--data.max_length", "64",
            "--data.cache_dir", str(base / "cache"), "--model.n_boot", "100", *common(base / "ner", mlflow_uri)]
    main(["fit", *task, "--trainer.max_epochs", "1"])
    main(["test", *task, "--ckpt_path", str(base / "ner" / "checkpoints" / "last.ckpt"),
          "--trainer.logger.init_args.run_name", "madx-test"])
    return {"base": base, "task": task}


def runs(mlflow_uri: str) -> list:
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("adapters")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def test_one_mlm_run_trains_and_saves_every_panel_languages_adapter(madx: dict[str, Path], bases: dict[str, Path],
                                                                    mlflow_uri: str) -> None:
    export = madx["base"] / "lang" / "export"
    assert sorted(p.name for p in (export / "adapters").iterdir()) == ["index.json", *SYNTHETIC]
    mlm_run = runs(mlflow_uri)[0]
    trainable, total = (int(mlm_run.data.params[f"parameters/{k}"]) for k in ("trainable", "total"))
    # 10 languages x (2 layers x (16x32 + 16 + 32x16 + 32) + invertible 2 x (8x16 + 8 + 16x8 + 16))
    assert trainable == 10 * (2 * (512 + 16 + 512 + 32) + 2 * (128 + 8 + 128 + 16))
    assert total - trainable == sum(p.numel() for p in AutoModelForMaskedLM.from_pretrained(bases["base"]).parameters())


def test_madx_zero_shot_logs_per_language_metrics_with_cis(madx: dict[str, Path], mlflow_uri: str) -> None:
    fit_run, test_run = runs(mlflow_uri)[1:3]
    for run in (fit_run, test_run):
        metrics = run.data.metrics
        for code in [*SYNTHETIC, "macro"]:
            assert f"test/ner/f1/{code}" in metrics and f"test/ner/f1_ci_low/{code}" in metrics, code
    # the test command rebuilds the model, reloads the language adapters and the checkpoint: same numbers
    assert {k: v for k, v in test_run.data.metrics.items() if k.startswith("test/")} == pytest.approx(
        {k: v for k, v in fit_run.data.metrics.items() if k.startswith("test/")}, abs=1e-12)
    assert int(fit_run.data.params["parameters/trainable"]) < int(fit_run.data.params["parameters/total"]) // 4
    export = madx["base"] / "ner" / "export"
    assert sorted(p.name for p in (export / "adapters").iterdir()) == ["index.json", "task.ner"]
    AutoModelForTokenClassification.from_pretrained(export)  # the export without adapters loads as it is


# ----------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case", ["other_base", "no_language_adapter", "not_in_panel", "no_bottleneck"])
def test_bad_adapter_input_exits_2_before_anything_is_written(case: str, madx: dict[str, Path],
                                                              bases: dict[str, Path], synthetic_dir: Path,
                                                              empty_cwd: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    adapters = madx["base"] / "lang" / "export" / "adapters"
    task = ["--config", str(NER), "--config", str(ADAPTERS / "madx.yaml"), "--data.data", str(synthetic_dir / "ner"),
            "--data.panel", "synthetic", "--data.max_length", "64"]
    mlm = ["--config", str(ADAPTERS / "lang_adapters_all.yaml"), "--model.encoder", str(bases["base"]),
           "--data.corpus", str(synthetic_dir / "mlm"), "--data.panel", str(synthetic_dir / "panel.yaml")]
    args, culprit = {
        "other_base": ([*task, "--model.encoder", str(bases["other"]), "--model.adapters.init_args.load",
                        f"[{adapters}]"], "whose weights differ from model.encoder"),
        "no_language_adapter": ([*task, "--model.encoder", str(bases["base"]), "--model.adapters.init_args.load",
                                 f"[{adapters / 'qab'}]"], "none is loaded for source language 'qaa'"),
        "not_in_panel": ([*mlm, "--model.adapters.init_args.languages", "[qaa, zzz]"], "'zzz' is not in panel"),
        "no_bottleneck": ([*mlm, "--model.adapters.init_args.language_reduction_factor", "64"],
                          "leaves no bottleneck"),
    }[case]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args])
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("xlt: error:")]
    assert exit_info.value.code == 2, err
    assert len(error_lines) == 1 and culprit in error_lines[0], err
    assert sorted(p.name for p in empty_cwd.iterdir()) == []  # no cache, no mlflow.db, no runs/
