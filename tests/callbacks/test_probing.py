"""ProbingCallback: rounds on schedule, logged per layer over steps, and training exactly as without it."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader

from tests.helpers.recording_logger import RecordingLogger
from xlt.callbacks.probing import ProbingCallback
from xlt.models.mlm import MLMPretraining
from xlt.probing.analysis import ProbingAnalysis
from xlt.probing.linear import LinearProbe
from xlt.probing.structural import StructuralProbe

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 66}


def _callback(synthetic_dir: Path, every: int) -> ProbingCallback:
    analysis = ProbingAnalysis(properties=["upos", "structure", "retrieval", "similarity"],
                               probe=LinearProbe(steps=20, lr=0.05), structural=StructuralProbe(rank=8, epochs=2))
    return ProbingCallback(every_n_steps=every, data=str(synthetic_dir), analysis=analysis,
                           languages=["qab"], max_sentences=12)


def _fit(tmp_path: Path, tokenizer: Path, callbacks: list[pl.Callback],
         logger: Logger | None = None) -> tuple[Logger, MLMPretraining]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 1000, (24, 16), generator=g)
    items = [{"input_ids": ids[i], "lang": torch.tensor(0)} for i in range(len(ids))]
    logger = logger or RecordingLogger()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=8, log_every_n_steps=1, logger=logger,
                         callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, num_sanity_val_steps=0, default_root_dir=tmp_path)
    module = MLMPretraining(tokenizer=str(tokenizer), config=dict(TINY), seed=3, lr=1e-3, warmup_steps=2)  # dropout on
    trainer.fit(module, DataLoader(items, batch_size=4))
    return logger, module


def test_rounds_keep_their_schedule_and_leave_the_loss_curve_and_weights_unchanged(
        tmp_path: Path, synthetic_dir: Path, tiny_tokenizer_dir: Path) -> None:
    plain, plain_module = _fit(tmp_path / "plain", tiny_tokenizer_dir, [])
    callback = _callback(synthetic_dir, every=3)
    probed, probed_module = _fit(tmp_path / "probed", tiny_tokenizer_dir, [callback])
    losses = plain.series("train/mlm/loss")
    assert len(losses) == 8 and probed.series("train/mlm/loss") == losses  # exactly equal, step by step
    for (name, a), b in zip(plain_module.state_dict().items(), probed_module.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [step for step, _ in callback.history] == [3, 6]
    for name in ("probe/upos/acc/qab/layer0", "probe/upos/acc/qab/layer2", "probe/distance/uuas/qab/layer1",
                 "probe/retrieval/p1/qab-qaa/layer2", "probe/similarity/cka/qab-qaa/layer0",
                 "probe/upos/selectivity/qab/peak_layer"):
        assert sorted(probed.series(name)) == [3, 6], name
    assert all(module.training for module in probed_module.model.modules())


def test_a_round_restores_every_random_state_and_module_mode(synthetic_dir: Path, tiny_tokenizer_dir: Path,
                                                            tmp_path: Path) -> None:
    callback = _callback(synthetic_dir, every=1)
    module = MLMPretraining(tokenizer=str(tiny_tokenizer_dir), config=dict(TINY), seed=3)
    module.configure_model()
    module.model.train()
    module.model.base_model.encoder.layer[0].eval()  # a mixed state must come back as it was
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, default_root_dir=tmp_path)
    callback.setup(trainer, module, "fit")
    torch.manual_seed(11), np.random.seed(11), random.seed(11)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(11), np.random.seed(11), random.seed(11)
    modes = [m.training for m in module.model.modules()]
    result = callback.probe_round(trainer, module)
    assert result.curves and result.seconds["features"] > 0
    assert [m.training for m in module.model.modules()] == modes
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


def test_mlflow_run_gets_per_layer_series_params_and_the_history_with_emergence_heatmaps(
        tmp_path: Path, synthetic_dir: Path, tiny_tokenizer_dir: Path, mlflow_uri: str) -> None:
    from xlt.callbacks.tracking import TrackingLogger

    logger = TrackingLogger(experiment_name="probing-callback", tracking_uri=mlflow_uri)
    callback = _callback(synthetic_dir, every=3)
    _fit(tmp_path, tiny_tokenizer_dir, [callback], logger)
    client, run_id = logger.experiment, logger.run_id
    series = {m.step: m.value for m in client.get_metric_history(run_id, "probe/upos/acc/qab/layer1")}
    assert sorted(series) == [3, 6]
    assert client.get_run(run_id).data.params["probing.probe.kind"] == "linear"
    artifacts = {a.path for a in client.list_artifacts(run_id, "probing")}
    assert {"probing/history.csv", "probing/emergence_upos_acc.png", "probing/emergence_distance_uuas.png",
            "probing/step_3", "probing/step_6"} <= artifacts
    rows = client.download_artifacts(run_id, "probing/history.csv", str(tmp_path / "download"))
    with open(rows, encoding="utf-8") as handle:
        logged = {int(r["step"]): float(r["value"]) for r in csv.DictReader(handle)
                  if (r["property"], r["metric"], r["group"], r["layer"]) == ("upos", "acc", "qab", "1")}
    assert logged == pytest.approx(series)


# ------------------------------------------------------------------------------ two processes (gloo, CPU)
ROOT = Path(__file__).resolve().parents[2]
HELPERS = ROOT / "tests" / "helpers"
CONFIGS = ROOT / "configs"


def _overlay(base: Path, name: str, synthetic_dir: Path, tokenizer_dir: Path, probing: bool) -> Path:
    callbacks = [{"class_path": "dist_record.RecordSteps", "init_args": {"out": str(base / name / "steps")}}]
    if probing:
        callbacks.append({"class_path": "probing_record.RecordedProbing", "init_args": {
            "out": str(base / name / "probing"), "every_n_steps": 3, "data": str(synthetic_dir),
            "languages": ["qab"], "max_sentences": 8, "analysis": {
                "class_path": "xlt.probing.analysis.ProbingAnalysis",
                "init_args": {"properties": ["upos", "structure", "retrieval"],
                              "probe": {"class_path": "xlt.probing.linear.LinearProbe",
                                        "init_args": {"steps": 10, "lr": 0.05}},
                              "structural": {"class_path": "xlt.probing.structural.StructuralProbe",
                                             "init_args": {"rank": 8, "epochs": 1}}}}}})
    config = {
        "trainer": {"max_steps": 6, "log_every_n_steps": 1, "num_sanity_val_steps": 0, "limit_val_batches": 0,
                    "default_root_dir": str(base / name), "enable_progress_bar": False, "logger": False,
                    "enable_checkpointing": False, "devices": 2, "callbacks": callbacks},
        "model": {"init_args": {"config": TINY, "warmup_steps": 2}},  # dropout on: a round left in eval would show
        "data": {"init_args": {"corpus": str(synthetic_dir / "mlm"), "panel": str(synthetic_dir / "panel.yaml"),
                               "tokenizer": str(tokenizer_dir), "block_size": 32, "batch_size": 4,
                               "val_blocks_per_language": 2, "cache_dir": str(base / "cache")}},
    }
    path = base / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _launch(strategy: str, overlay: Path) -> None:
    import os
    import subprocess
    import sys

    fit = ["-m", "xlt", "fit", "--config", str(CONFIGS / "quickstart.yaml"),
           "--config", str(CONFIGS / "strategy" / f"{strategy}.yaml"), "--config", str(overlay)]
    command = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *fit] \
        if strategy == "ddp" else fit  # FSDP2 on CPU: Lightning spawns the two processes
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HELPERS), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, *command], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]


def _records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("rank*.json"))]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp_cpu"])
def test_two_ranks_probe_on_schedule_and_train_exactly_as_without_the_callback(
        strategy: str, tmp_path: Path, synthetic_dir: Path, tiny_tokenizer_dir: Path) -> None:
    """DDP: rank 0 alone computes and logs the rounds, rank 1 waits. FSDP2: both ranks join the forward passes and
    compute the same round; rank 0 logs it. Either way each rank's loss curve equals the run without callback."""
    for probing in (False, True):
        _launch(strategy, _overlay(tmp_path, f"probing{probing}", synthetic_dir, tiny_tokenizer_dir, probing))
    plain, probed = _records(tmp_path / "probingFalse" / "steps"), _records(tmp_path / "probingTrue" / "steps")
    assert len(plain) == len(probed) == 2
    for a, b in zip(plain, probed, strict=True):
        assert [s["loss"] for s in a["steps"]] == [s["loss"] for s in b["steps"]] and len(a["steps"]) == 6
    rank0, rank1 = _records(tmp_path / "probingTrue" / "probing")
    assert rank0["logged"] == [3, 6] and rank1["logged"] == []
    assert [r["step"] for r in rank0["computed"]] == [3, 6]
    if strategy == "ddp":
        assert rank1["computed"] == []
    else:
        assert rank1["computed"] == rank0["computed"]  # the same seeded round on both ranks
