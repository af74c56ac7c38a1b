"""Distributed training on CPU (2 processes, gloo) and planning.

A module fixture runs the same tiny MLM recipe (dropout 0, global batch 8, 6 steps, checkpoint every 3) four
ways: one process in-process (batch 8), FSDP2 over 2 processes spawned by Lightning (batch 4 each), the FSDP2 run
resumed from its sharded step-3 checkpoint, and DDP over 2 processes launched by torchrun. The tests compare
what each rank recorded (tests/helpers/dist_record.py) and the exported weights. Unit tests cover the
data-parallel invariance helpers, FSDP2 sharding in-process (world size 1), the strategy, configs and `xlt plan`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from xlt.cli import main
from xlt.errors import XltError
from xlt.models.data_parallel import global_token_mean, mask_global_rows
from xlt.models.mlm import MLMPretraining

ROOT = Path(__file__).resolve().parents[2]
HELPERS = ROOT / "tests" / "helpers"
CONFIGS = ROOT / "configs"
QUICKSTART = CONFIGS / "quickstart.yaml"
FSDP_CPU = CONFIGS / "strategy" / "fsdp_cpu.yaml"
DDP = CONFIGS / "strategy" / "ddp.yaml"
STEPS, CKPT_STEP, GLOBAL_BATCH = 6, 3, 8
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 66, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
# float32 summation order differs between 1 and 2 ranks (gradient all-reduce / reduce-scatter). Measured on CPU
# (2 processes, gloo): losses within 1.4e-7 relative (9.5e-7 absolute on losses near 7, two float32 ulps), exported
# weights within 3.8e-8 after 6 steps (FSDP2 and DDP alike). The bounds are ~4x that; README quotes them.
LOSS_REL = 6e-7
WEIGHT_ATOL = 1.5e-7
if str(HELPERS) not in sys.path:
    sys.path.insert(0, str(HELPERS))


# ------------------------------------------------------------------------------------------ multi-process runs
def overlay(base: Path, name: str, synthetic_dir: Path, tokenizer_dir: Path, *, batch: int,
            devices: int | None = None) -> Path:
    """Config overlay for one run: tiny model without dropout, records to ``<base>/<name>/record``."""
    trainer = {
        "max_steps": STEPS, "val_check_interval": CKPT_STEP, "log_every_n_steps": 1, "num_sanity_val_steps": 0,
        "default_root_dir": str(base / name), "enable_progress_bar": False, "logger": False,
        "gradient_clip_val": 1.0,
        "callbacks": [
            {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
             "init_args": {"every_n_train_steps": CKPT_STEP, "save_last": True, "save_top_k": -1}},
            {"class_path": "dist_record.RecordSteps", "init_args": {"out": str(base / name / "record")}},
        ],
    }
    if devices is not None:
        trainer["devices"] = devices
    config = {
        "trainer": trainer,
        "model": {"init_args": {"config": TINY, "warmup_steps": 2}},
        "data": {"init_args": {"corpus": str(synthetic_dir / "mlm"), "panel": str(synthetic_dir / "panel.yaml"),
                               "tokenizer": str(tokenizer_dir), "block_size": 32, "batch_size": batch,
                               "val_blocks_per_language": 2, "cache_dir": str(base / "cache")}},
    }
    path = base / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def launch(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HELPERS), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path, tiny_tokenizer_dir: Path) -> SimpleNamespace:
    """The four runs (see the module docstring); the single-process one runs first and fills the data cache."""
    base = tmp_path_factory.mktemp("distributed")
    args = (synthetic_dir, tiny_tokenizer_dir)
    checkpoint = single_fsdp_and_resumed(base, overlay, args)
    half = GLOBAL_BATCH // 2
    ddp = launch(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "xlt", "fit",
                  "--config", str(QUICKSTART), "--config", str(DDP),
                  "--config", str(overlay(base, "ddp", *args, batch=half, devices=2))])
    assert ddp.returncode == 0, ddp.stderr[-4000:]
    return SimpleNamespace(base=base, checkpoint=checkpoint, **records(base, ("single", "fsdp", "resumed", "ddp")))


def single_fsdp_and_resumed(base: Path, make_overlay: Callable[..., Path], args: tuple[Path, Path]) -> Path:
    """Run ``single`` (in process, the global batch), ``fsdp`` (2 processes, half the batch each) and ``resumed``
    (FSDP2 again from ``fsdp``'s step-CKPT_STEP shards) with the overlays ``make_overlay`` writes; returns that
    checkpoint."""
    main(["fit", "--config", str(QUICKSTART), "--config", str(make_overlay(base, "single", *args,
                                                                           batch=GLOBAL_BATCH))])
    half = GLOBAL_BATCH // 2
    fsdp = launch(["-m", "xlt", "fit", "--config", str(QUICKSTART), "--config", str(FSDP_CPU),
                   "--config", str(make_overlay(base, "fsdp", *args, batch=half))])
    assert fsdp.returncode == 0, fsdp.stderr[-4000:]
    checkpoint = base / "fsdp" / "checkpoints" / f"epoch=0-step={CKPT_STEP}.ckpt"
    resumed = launch(["-m", "xlt", "fit", "--config", str(QUICKSTART), "--config", str(FSDP_CPU),
                      "--config", str(make_overlay(base, "resumed", *args, batch=half)),
                      "--ckpt_path", str(checkpoint)])
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    return checkpoint


def records(base: Path, names: tuple[str, ...]) -> dict[str, list[dict]]:
    """Each run's per-rank records (``<base>/<name>/record/rank*.json``)."""
    return {name: [json.loads(p.read_text()) for p in sorted((base / name / "record").glob("rank*.json"))]
            for name in names}


def losses(records: list[dict]) -> list[float]:
    assert len({json.dumps([s["loss"] for s in r["steps"]]) for r in records}) == 1  # global loss: same on all ranks
    return [step["loss"] for step in records[0]["steps"]]


def exported(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(path).state_dict()


def test_fsdp2_and_ddp_loss_curves_equal_single_process(runs: SimpleNamespace) -> None:
    single = losses(runs.single)
    assert len(single) == STEPS and len(set(single)) == STEPS
    for name in ("fsdp", "ddp"):
        records = getattr(runs, name)
        assert [r["world"] for r in records] == [2, 2]
        assert records[0]["strategy"] == {"fsdp": "FSDP2Strategy", "ddp": "DDPStrategy"}[name]
        assert losses(records) == pytest.approx(single, rel=LOSS_REL, abs=0), name


def test_validation_metrics_are_reduced_across_ranks(runs: SimpleNamespace) -> None:
    """Per-language validation loss over 2 ranks equals the single process's (masks of the global batch)."""
    single = runs.single[0]["val"]
    assert [v["step"] for v in single] == [CKPT_STEP, STEPS]
    for name in ("fsdp", "ddp"):
        records = getattr(runs, name)
        assert records[0]["val"] == records[1]["val"], name
        for ours, reference in zip(records[0]["val"], single, strict=True):
            assert set(ours) == set(reference) and "val/mlm/loss/qaj" in ours
            for key, value in reference.items():
                assert ours[key] == pytest.approx(value, rel=LOSS_REL, abs=0), (name, key)


def test_each_rank_holds_half_of_every_sharded_parameter(runs: SimpleNamespace) -> None:
    first, second = runs.fsdp
    assert first["sharded"] and second["sharded"] and not runs.single[0]["sharded"]
    assert first["tied"] and second["tied"]  # word embeddings and LM decoder: still one parameter
    assert first["shards"].keys() == second["shards"].keys()
    for name, (local0, full) in first["shards"].items():
        local1, _ = second["shards"][name]
        rows = full[0]
        # FSDP2 splits dim 0 in chunks of ceil(rows / 2): equal halves, or one row apart for odd row counts
        assert (local0[0], local1[0]) == ((rows + 1) // 2, rows // 2), name
        assert local0[1:] == local1[1:] == full[1:], name
    vocab = first["shards"]["roberta.embeddings.word_embeddings.weight"]
    assert vocab == [[501, 32], [1002, 32]]  # 1002 ids: 501 rows on each rank
    assert all(local == full for r in runs.single for local, full in r["shards"].values())


def test_ranks_read_disjoint_data_whose_union_is_the_single_process_data(runs: SimpleNamespace) -> None:
    """Row k of rank r's batch is row 2k + r of the single process's batch of the same step (FSDP2 and DDP)."""
    single = runs.single[0]["steps"]
    for name in ("fsdp", "ddp"):
        ranks = [r["steps"] for r in getattr(runs, name)]
        for step, reference in enumerate(single):
            for key in ("input_ids", "lang"):
                interleaved = [ranks[k % 2][step][key][k // 2] for k in range(GLOBAL_BATCH)]
                assert interleaved == reference[key], (name, step, key)


def test_sharded_checkpoint_resumes_to_the_uninterrupted_run(runs: SimpleNamespace) -> None:
    assert sorted(p.name for p in runs.checkpoint.iterdir() if p.suffix == ".distcp") == ["__0_0.distcp",
                                                                                          "__1_0.distcp"]
    assert [r["start_step"] for r in runs.resumed] == [CKPT_STEP, CKPT_STEP]
    assert [s["step"] for s in runs.resumed[0]["steps"]] == list(range(CKPT_STEP + 1, STEPS + 1))
    assert losses(runs.resumed) == losses(runs.fsdp)[CKPT_STEP:]  # bit for bit (README)
    uninterrupted, resumed = exported(runs.base / "fsdp" / "export"), exported(runs.base / "resumed" / "export")
    assert uninterrupted.keys() == resumed.keys()
    for name, value in uninterrupted.items():
        assert torch.equal(resumed[name], value), name


def test_ddp_export_matches_the_single_process_weights(runs: SimpleNamespace) -> None:
    ddp, single = exported(runs.base / "ddp" / "export"), exported(runs.base / "single" / "export")
    assert ddp.keys() == single.keys()
    for name, value in ddp.items():
        torch.testing.assert_close(value, single[name], rtol=0, atol=WEIGHT_ATOL, msg=name)


def test_sharded_export_and_consolidated_checkpoint_match_the_single_process_weights(
        runs: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    out = runs.base / "consolidated"
    main(["consolidate", str(runs.base / "fsdp" / "checkpoints" / "last.ckpt"), str(out)])
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(out)) == 1002
    consolidated, export = exported(out), exported(runs.base / "fsdp" / "export")
    single = exported(runs.base / "single" / "export")
    assert consolidated.keys() == export.keys() == single.keys()
    for name, value in export.items():
        assert torch.equal(consolidated[name], value), name  # gathered at fit end == merged from the shards
        torch.testing.assert_close(value, single[name], rtol=0, atol=WEIGHT_ATOL, msg=name)
    with pytest.raises(SystemExit) as exit_info:  # the output exists: refuse without --overwrite
        main(["consolidate", str(runs.checkpoint), str(out)])
    assert exit_info.value.code == 2 and "exists" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- data-parallel invariance
def tiny_module(**kwargs) -> MLMPretraining:
    config = {**TINY, "vocab_size": 64, "max_position_embeddings": 34}
    return MLMPretraining(config=config, seed=3, **kwargs)


@pytest.mark.parametrize("world", [2, 3])
def test_rank_masks_are_the_rows_of_the_global_batch_masks(world: int) -> None:
    masker = tiny_module().masker
    global_batch = torch.randint(4, 63, (4 * world, 16), generator=torch.Generator().manual_seed(0))
    expected = masker(global_batch, torch.Generator().manual_seed(7))
    for rank in range(world):
        mine = global_batch[rank::world]
        masked, labels = mask_global_rows(masker, mine, torch.Generator().manual_seed(7), rank, world)
        assert torch.equal(masked, expected[0][rank::world]) and torch.equal(labels, expected[1][rank::world])


def test_global_token_mean_hand_case() -> None:
    """Rank 0 has masked-token losses [1, 2, 3], rank 1 has [4]: global mean 10/4 = 2.5; each rank back-propagates
    2·S_r/4 (3 and 2), whose average over ranks is 2.5 — not the mean of per-rank means (2 + 4) / 2 = 3."""
    sums = torch.tensor([6.0, 4.0], dtype=torch.float64)
    counts = torch.tensor([3.0, 1.0], dtype=torch.float64)

    def all_reduce_sum(_: torch.Tensor) -> torch.Tensor:
        return torch.stack([sums.sum(), counts.sum()])

    rank0 = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss0, mean0 = global_token_mean(rank0, 2, all_reduce_sum)
    loss1, mean1 = global_token_mean(torch.tensor([4.0]), 2, all_reduce_sum)
    assert (loss0.item(), loss1.item(), mean0.item(), mean1.item()) == (3.0, 2.0, 2.5, 2.5)
    loss0.backward()
    assert rank0.grad.tolist() == [0.5, 0.5, 0.5]  # 2/4 per token: averaged over 2 ranks gives 1/4 = 1/N
    empty, mean = global_token_mean(torch.zeros(0, requires_grad=True), 1)
    assert empty.item() == 0.0 and mean.item() == 0.0 and empty.requires_grad


# --------------------------------------------------------------------------------- FSDP2 in-process (world 1)
@pytest.fixture
def process_group(tmp_path: Path):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1, 1), mesh_dim_names=("data_parallel", "tensor_parallel"))
    finally:
        dist.destroy_process_group()


def test_sharded_module_keeps_ties_and_computes_the_unsharded_loss(process_group, tmp_path: Path) -> None:
    from torch.distributed.tensor import DTensor
    from transformers import AutoModelForMaskedLM

    from xlt.models.sharding import full_state_dict, is_sharded

    reference, sharded = tiny_module(), tiny_module()
    reference.configure_model()
    sharded._device_mesh = process_group
    sharded.configure_model()
    model = sharded.model
    assert is_sharded(model) and not is_sharded(reference.model)
    assert type(model).__name__ == "FSDPXLMRobertaForMaskedLM"
    assert model.lm_head.decoder.weight is model.roberta.embeddings.word_embeddings.weight
    assert all(isinstance(p, DTensor) for p in model.parameters())
    ids = torch.randint(4, 63, (3, 16), generator=torch.Generator().manual_seed(1))
    masked, labels = reference.masker(ids, torch.Generator().manual_seed(2))
    expected, actual = reference.mlm_loss(masked, labels), sharded.masked_token_losses(masked, labels)[0].mean()
    assert actual.item() == pytest.approx(expected.item(), abs=1e-6)
    expected.backward()
    actual.backward()
    grad = model.roberta.embeddings.word_embeddings.weight.grad.full_tensor()
    torch.testing.assert_close(grad, reference.model.roberta.embeddings.word_embeddings.weight.grad)

    state = full_state_dict(model)
    assert state.keys() == reference.model.state_dict().keys()
    sharded.export(tmp_path / "export", state)
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "export")
    assert reloaded.config.architectures == ["XLMRobertaForMaskedLM"]
    for name, value in reference.model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], value), name


def test_activation_checkpointing_recomputes_layers_with_equal_gradients(process_group) -> None:
    from xlt.models.sharding import ShardingOptions

    grads, calls = [], []
    for checkpointing in (False, True):
        module = tiny_module()  # options come from the strategy, as under FSDP2Strategy
        module._trainer = SimpleNamespace(strategy=SimpleNamespace(
            sharding=ShardingOptions(activation_checkpointing=checkpointing)))
        module._device_mesh = process_group
        module.configure_model()
        module.model.train()
        count = [0]
        module.model.roberta.encoder.layer[0].intermediate.register_forward_hook(
            lambda *_, count=count: count.__setitem__(0, count[0] + 1))
        ids = torch.randint(4, 63, (2, 16), generator=torch.Generator().manual_seed(1))
        masked, labels = module.masker(ids, torch.Generator().manual_seed(2))
        module.masked_token_losses(masked, labels)[0].mean().backward()
        calls.append(count[0])
        grads.append(module.model.roberta.encoder.layer[0].intermediate.dense.weight.grad.full_tensor())
    assert calls == [1, 2]  # recomputed once in backward
    torch.testing.assert_close(grads[0], grads[1])


def test_tensor_parallel_mesh_is_refused() -> None:
    from xlt.models.sharding import data_parallel_mesh

    class Mesh:
        mesh_dim_names = ("data_parallel", "tensor_parallel")
        ndim = 2

        def __getitem__(self, name: str) -> SimpleNamespace:
            return SimpleNamespace(size=lambda: 2)

    with pytest.raises(XltError, match="tensor_parallel_size=2 — xlt shards with FSDP2 only"):
        data_parallel_mesh(Mesh())


def test_fsdp2_strategy_is_pure_data_parallel_over_all_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.strategies import ModelParallelStrategy

    from xlt.models.sharding import FSDP2Strategy, ShardingOptions, sharding_options

    seen = {}
    monkeypatch.setattr(ModelParallelStrategy, "setup_environment",
                        lambda self: seen.update(dp=self._data_parallel_size, tp=self._tensor_parallel_size))
    strategy = FSDP2Strategy(param_dtype="bf16", activation_checkpointing=True)
    strategy.num_nodes, strategy.parallel_devices = 2, [torch.device("cpu")] * 4
    strategy.setup_environment()
    assert seen == {"dp": 8, "tp": 1}
    assert sharding_options(strategy) == ShardingOptions("bf16", "fp32", True, True)
    assert sharding_options(ModelParallelStrategy()) == ShardingOptions()
    assert ShardingOptions("auto").compute_dtype("cpu") == torch.float32


def print_config(capsys: pytest.CaptureFixture[str], *configs: Path) -> dict:
    args = ["fit", *[a for c in configs for a in ("--config", str(c))], "--print_config"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    assert exit_info.value.code in (0, None), captured.err
    return yaml.safe_load(captured.out)


def test_strategy_overlays_compose_with_the_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    cpu = print_config(capsys, QUICKSTART, FSDP_CPU)["trainer"]
    assert cpu["strategy"]["class_path"] == "xlt.models.sharding.FSDP2Strategy"
    assert (cpu["devices"], cpu["accelerator"], cpu["strategy"]["init_args"]["process_group_backend"]) == (2, "cpu",
                                                                                                          "gloo")
    gpu = print_config(capsys, CONFIGS / "multi_l_plus.yaml", CONFIGS / "strategy" / "fsdp.yaml")["trainer"]
    assert gpu["strategy"]["init_args"]["param_dtype"] == "bf16" and gpu["precision"] == "bf16-mixed"
    ddp = print_config(capsys, CONFIGS / "multi_s.yaml", DDP)["trainer"]
    assert ddp["strategy"]["class_path"] == "lightning.pytorch.strategies.DDPStrategy"


# ----------------------------------------------------------------------------------------------- consolidate
def test_consolidate_rejects_what_is_not_a_checkpoint(tmp_path: Path) -> None:
    from xlt.models.consolidate import consolidate

    with pytest.raises(XltError, match="not found"):
        consolidate(str(tmp_path / "missing.ckpt"), str(tmp_path / "out"))
    (tmp_path / "dir.ckpt").mkdir()
    with pytest.raises(XltError, match="has no .metadata"):
        consolidate(str(tmp_path / "dir.ckpt"), str(tmp_path / "out"))
    (tmp_path / "junk.ckpt").write_text("not torch")
    with pytest.raises(XltError, match="not a readable torch checkpoint"):
        consolidate(str(tmp_path / "junk.ckpt"), str(tmp_path / "out"))


# ------------------------------------------------------------------------------------------------------ plan
def xlmr_parameters(vocab: int, width: int, layers: int, ffn: int, positions: int) -> int:
    """Hand count of an XLM-R masked LM with tied decoder."""
    embeddings = vocab * width + positions * width + 2 * width + 2 * width  # token types: config default 2
    layer = 4 * (width * width + width) + 2 * width + (width * ffn + ffn) + (ffn * width + width) + 2 * width
    head = width * width + width + 2 * width + vocab  # transform, LayerNorm, output bias (decoder tied)
    return embeddings + layers * layer + head


def test_plan_multi_l_plus_counts_the_meta_model_in_seconds() -> None:
    import resource

    from xlt.planning import make_plan

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    plan = make_plan(["--config", str(CONFIGS / "multi_l_plus.yaml"), "--config", str(CONFIGS / "strategy/fsdp.yaml"),
                      "--gpus", "64", "--gpu_memory", "80GiB"])
    assert time.perf_counter() - start < 30  # ~2 s unloaded; the fp32 weights alone would be 12.5 GiB
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 500
    assert plan.model.parameters == xlmr_parameters(850_000, 2048, 32, 8192, 514) == 3_358_376_016
    assert plan.model.word_embeddings == 850_000 * 2048 and plan.model.layers == 32
    s = plan.settings
    assert (s.gpus, s.sharding, s.batch_size, s.block_size, s.param_dtype) == (64, "fsdp", 32, 512, "bf16")
    assert plan.static["optimizer"] == pytest.approx(8 * 3_358_376_016 / 64, abs=1)
    assert plan.fits and plan.max_batch_size >= s.batch_size


def test_plan_memory_model_hand_numbers() -> None:
    from xlt.planning import GIB, ModelSize, PlanSettings, estimate

    model = ModelSize(parameters=1_000_000_000, root_group=200_000_000, word_embeddings=190_000_000, layers=10,
                      layer_parameters=80_000_000, width=1000, intermediate=4000, heads=10, vocab=100_000)
    fsdp = estimate(model, PlanSettings(gpus=8, sharding="fsdp", precision="bf16-mixed", batch_size=4,
                                        block_size=500, gpu_memory=80 * GIB))
    assert fsdp.static == {"parameters": 500_000_000, "gradients": 500_000_000, "optimizer": 1_000_000_000}
    assert fsdp.gathered == 2 * (200_000_000 + 2 * 80_000_000)
    sbh = 4 * 500 * 1000
    assert fsdp.activations == 10 * sbh * 34 + 5 * sbh  # (18 + 4·4)·c/2 per layer, (2c + 1) embeddings
    rows = 0.15 * 2000
    assert fsdp.head == int(3 * 2 * rows * 1000 + 10 * rows * 100_000)
    assert fsdp.grad_reduction == (2 + 4) * 200_000_000
    assert fsdp.activations + fsdp.head == 991_800_000 < fsdp.grad_reduction  # this small batch: reduction peaks
    assert fsdp.peak == 2 * 10**9 + 720_000_000 + 1_200_000_000 + 2 * GIB
    ddp = estimate(model, PlanSettings(gpus=8, sharding="ddp", precision="bf16-mixed", batch_size=4,
                                       block_size=500, gpu_memory=80 * GIB, activation_checkpointing=True))
    assert ddp.static["optimizer"] == 8 * 10**9 and ddp.gathered == 2 * 10**9 and ddp.grad_reduction == 0
    assert ddp.activations == 10 * 2 * sbh + 34 * sbh + 5 * sbh  # layer inputs + one recomputed layer
    fitting = estimate(model, PlanSettings(gpus=8, sharding="fsdp", precision="bf16-mixed",
                                           batch_size=fsdp.max_batch_size, block_size=500, gpu_memory=80 * GIB))
    over = estimate(model, PlanSettings(gpus=8, sharding="fsdp", precision="bf16-mixed",
                                        batch_size=fsdp.max_batch_size + 1, block_size=500, gpu_memory=80 * GIB))
    assert fitting.fits and not over.fits


def test_plan_command_output_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    recipe = ["--config", str(CONFIGS / "multi_l_plus.yaml")]
    main(["plan", *recipe, "--config", str(CONFIGS / "strategy/fsdp.yaml"), "--gpus", "64"])
    out = capsys.readouterr().out
    assert "parameters   3,358,376,016" in out and "fits in 80 GiB per GPU: yes" in out
    main(["plan", *recipe, "--config", str(DDP), "--gpus", "64", "--json", "true"])
    ddp = json.loads(capsys.readouterr().out)
    assert ddp["settings"]["sharding"] == "ddp" and not ddp["fits"]  # 16 bytes x 3.4B parameters per GPU
    for bad, culprit in ((["--gpu_memory", "80XB"], "80XB"), (["--gpus", "0"], "--gpus 0"),
                         (["--sharding", "zero9"], "zero9"), ([], "needs a recipe")):
        with pytest.raises(SystemExit) as exit_info:
            main(["plan", *(recipe if bad else []), *bad])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and culprit in err, err


# ---------------------------------------------------------------------------- adapters under FSDP2 (issue 12)
ADAPTER_SETUP = {"class_path": "xlt.adapters.config.AdapterSetup",
                 "init_args": {"train": "language_adapters", "invertible": True, "sites": "houlsby"}}


def adapter_overlay(base: Path, name: str, synthetic_dir: Path, tokenizer_dir: Path, *, batch: int) -> Path:
    """The recipe of :func:`overlay` with a routed bank of language adapters for all 10 languages, base frozen."""
    path = overlay(base, name, synthetic_dir, tokenizer_dir, batch=batch)
    config = yaml.safe_load(path.read_text())
    config["model"]["init_args"]["adapters"] = ADAPTER_SETUP
    config["model"]["init_args"]["lr"] = 1e-2  # adapters only: a visible loss curve in 6 steps
    config["trainer"]["callbacks"][1]["class_path"] = "dist_adapter_record.RecordAdapterSteps"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def adapter_runs(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path,
                 tiny_tokenizer_dir: Path) -> SimpleNamespace:
    """Adapter training three ways: one process, FSDP2 over 2 processes, FSDP2 resumed from its step-3 shards."""
    base = tmp_path_factory.mktemp("adapters_distributed")
    single_fsdp_and_resumed(base, adapter_overlay, (synthetic_dir, tiny_tokenizer_dir))
    return SimpleNamespace(base=base, **records(base, ("single", "fsdp", "resumed")))


def test_fsdp2_adapter_training_loss_curve_equals_single_process(adapter_runs: SimpleNamespace) -> None:
    """Within LOSS_REL (6e-7 relative, a few float32 ulps), as for full training."""
    single = losses(adapter_runs.single)
    assert len(single) == STEPS and len(set(single)) == STEPS
    assert [r["world"] for r in adapter_runs.fsdp] == [2, 2]
    assert losses(adapter_runs.fsdp) == pytest.approx(single, rel=LOSS_REL, abs=0)


def test_fsdp2_shards_the_adapter_banks_and_keeps_frozen_weights_out_of_the_optimizer(
        adapter_runs: SimpleNamespace) -> None:
    first, second = adapter_runs.fsdp
    bank = "roberta.encoder.layer.0.attention.output.xlt_adapters.language.down_weight"
    assert first["shards"][bank] == [[5, 16, 32], [10, 16, 32]] == second["shards"][bank]  # 10 languages, 5 each
    trainable = first["trainable"]
    assert trainable == adapter_runs.single[0]["trainable"] and all(
        "xlt_adapters.language." in n or "xlt_invertible." in n for n in trainable)
    # houlsby: 2 layers x 2 sites x 4 tensors, invertible: F and G x 4 tensors
    assert len(trainable) == 2 * 2 * 4 + 2 * 4 == first["optimizer_state"] == adapter_runs.single[0]["optimizer_state"]


def test_fsdp2_adapter_training_resumes_from_a_sharded_checkpoint(adapter_runs: SimpleNamespace) -> None:
    assert [r["start_step"] for r in adapter_runs.resumed] == [CKPT_STEP, CKPT_STEP]
    assert losses(adapter_runs.resumed) == losses(adapter_runs.fsdp)[CKPT_STEP:]  # bit for bit
    from safetensors.torch import load_file

    for code in ("qaa", "qaj"):
        weights = [load_file(adapter_runs.base / name / "export" / "adapters" / code / "adapter.safetensors")
                   for name in ("fsdp", "resumed", "single")]
        assert weights[0].keys() == weights[1].keys() == weights[2].keys()
        assert weights[0]["encoder.layer.1.output.xlt_adapters.language.up_weight"].abs().max() > 0  # trained
        for key, value in weights[0].items():
            assert torch.equal(weights[1][key], value), (code, key)
            torch.testing.assert_close(value, weights[2][key], rtol=0, atol=WEIGHT_ATOL, msg=key)
