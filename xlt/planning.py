"""``xlt plan``: parameters and per-GPU memory of a recipe under a sharding, without allocating any weight.

The composed config (``--config`` files and ``--key value`` overrides, exactly as ``xlt fit`` takes them) is parsed
by the same parser as ``xlt fit`` but nothing is instantiated except the LightningModule, whose model is built on
the meta device (``configure_model`` under ``torch.device("meta")``) to count parameters by part.

Memory model (bytes per GPU; ``N`` parameters, ``W`` shards = GPUs under FSDP and 1 under DDP, ``c`` compute
bytes, ``m`` master bytes, ``r`` reduce bytes; ``b`` blocks of ``s`` tokens per GPU, width ``h``, FFN ``f·h``):

* static: parameters ``m·N/W`` (the fp32 master copy under mixed precision), gradients ``m·N/W``, AdamW
  ``exp_avg`` + ``exp_avg_sq`` ``2·m·N/W``;
* gathered working copies: FSDP2 keeps the root group (embeddings + tied LM head + head transform, ``R``
  parameters) gathered for the whole step plus two layers (current + prefetched; all layers without
  reshard-after-forward): ``c·(R + 2·L_max)``. DDP under autocast caches a ``c``-byte copy of every weight: ``c·N``;
* activations of one layer ``s·b·h·(18 + 4f)·c/2`` (Korthikanti et al. 2022, fused SDPA attention so no
  ``s²`` term), all layers without activation checkpointing; with it, each layer's input ``c·s·b·h`` plus one
  layer recomputed; embeddings ``(2c + 1)·s·b·h``;
* masked-only LM head: ``n = mask_prob·b·s`` rows; transform ``3·c·n·h`` and logits/log-softmax and its
  gradient ``(8 + c)·n·V``;
* gradient reduction (FSDP, end of backward, when activations are gone): unsharded root gradients plus the
  reduce-scatter input ``(c + r)·max(R, L_max)``;
* reserve: 2 GiB for the CUDA context, NCCL buffers and allocator slack.

peak = static + gathered + max(activations + head, gradient reduction) + reserve.
"""

from __future__ import annotations

import importlib
import json as _json
import math
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from xlt.errors import XltError

GIB = 1024**3
RESERVE_BYTES = 2 * GIB
_UNITS = {"": GIB, "b": 1, "k": 1e3, "kb": 1e3, "kib": 1024, "m": 1e6, "mb": 1e6, "mib": 1024**2, "g": 1e9,
          "gb": 1e9, "gib": GIB, "t": 1e12, "tb": 1e12, "tib": 1024**4}
_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp64": 8}
Sharding = Literal["fsdp", "ddp", "single"]


def parse_memory(text: str) -> int:
    """``80GiB``, ``80 GB``, ``40960MiB``, ``80`` (GiB) -> bytes.

    Raises:
        XltError: not a positive size with a known unit.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _UNITS or float(match.group(1)) <= 0:
        raise XltError(f"--gpu_memory {text!r} is not a memory size — write e.g. 80GiB, 80GB or 40960MiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def precision_bytes(precision: str) -> tuple[int, int]:
    """``(master bytes, compute bytes)`` per parameter for a Lightning precision flag."""
    flag = str(precision)
    if flag in ("64", "64-true", "double"):
        return 8, 8
    if flag in ("bf16-true", "16-true", "bf16", "16", "half"):
        return 2, 2
    if flag in ("bf16-mixed", "16-mixed"):
        return 4, 2
    return 4, 4


@dataclass(frozen=True)
class ModelSize:
    """What the memory model needs to know about an encoder (counted on the meta device)."""

    parameters: int
    root_group: int  # embeddings + head (+ tied decoder): everything outside the transformer layers
    word_embeddings: int
    layers: int
    layer_parameters: int  # the largest layer
    width: int
    intermediate: int
    heads: int
    vocab: int
    description: str = ""


@dataclass(frozen=True)
class PlanSettings:
    """How the model is run: devices, sharding, precision, batch shape.

    Attributes:
        gpus: Number of GPUs (data-parallel ranks).
        sharding: ``fsdp`` (FSDP2, everything sharded over ``gpus``), ``ddp`` (replicated) or ``single``.
        precision: Lightning precision flag (``bf16-mixed``, ``32-true`` ...).
        param_dtype: FSDP2 gather/compute dtype (``bf16``, ``fp32``, ``auto`` = bf16).
        reduce_dtype: FSDP2 gradient reduce-scatter dtype.
        batch_size: Blocks per GPU per step.
        block_size: Tokens per block.
        activation_checkpointing: Per-layer activation recomputation.
        reshard_after_forward: FSDP2 frees gathered layers after forward.
        mask_prob: Fraction of tokens the MLM head runs on.
        gpu_memory: Bytes per GPU.
    """

    gpus: int
    sharding: Sharding
    precision: str
    batch_size: int
    block_size: int
    gpu_memory: int
    param_dtype: str = "bf16"
    reduce_dtype: str = "fp32"
    activation_checkpointing: bool = False
    reshard_after_forward: bool = True
    mask_prob: float = 0.15


@dataclass
class Plan:
    """Per-GPU memory estimate (bytes) of one model under one setting."""

    model: ModelSize
    settings: PlanSettings
    static: dict[str, int]
    gathered: int
    activations: int
    head: int
    grad_reduction: int
    reserve: int
    peak: int
    fits: bool
    max_batch_size: int
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for ``--json``)."""
        return asdict(self)


def estimate(model: ModelSize, settings: PlanSettings) -> Plan:
    """The memory model of the module docstring, with the largest ``batch_size`` that fits."""
    plan = _estimate(model, settings)
    low, high = 0, 1
    while high <= 1 << 20 and _estimate(model, _with_batch(settings, high)).fits:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if _estimate(model, _with_batch(settings, middle)).fits else (low, middle)
    plan.max_batch_size = low
    return plan


def _with_batch(settings: PlanSettings, batch_size: int) -> PlanSettings:
    return PlanSettings(**{**asdict(settings), "batch_size": batch_size})


def _estimate(model: ModelSize, s: PlanSettings) -> Plan:
    master, compute = precision_bytes(s.precision)
    shards = s.gpus if s.sharding == "fsdp" else 1
    if s.sharding == "fsdp":
        compute = _BYTES.get(s.param_dtype, 2)  # the mixed-precision policy decides the gathered dtype
    reduce = _BYTES.get(s.reduce_dtype, 4)
    n = model.parameters
    static = {
        "parameters": math.ceil(master * n / shards),
        "gradients": math.ceil(master * n / shards),
        "optimizer": math.ceil(2 * master * n / shards),
    }
    if s.sharding == "fsdp":
        layers_gathered = 2 if s.reshard_after_forward else model.layers
        gathered = compute * (model.root_group + min(layers_gathered, model.layers) * model.layer_parameters)
        grad_reduction = (compute + reduce) * max(model.root_group, model.layer_parameters)
    else:
        gathered = compute * n if compute != master else 0  # autocast's cast-weight cache
        grad_reduction = 0  # DDP buckets are views of the gradients (gradient_as_bucket_view)
    tokens = s.batch_size * s.block_size
    sbh = tokens * model.width
    f = model.intermediate / model.width
    per_layer = sbh * (18 + 4 * f) * compute / 2
    if s.activation_checkpointing:
        layer_activations = model.layers * compute * sbh + per_layer
    else:
        layer_activations = model.layers * per_layer
    activations = int(layer_activations + (2 * compute + 1) * sbh)
    rows = s.mask_prob * tokens
    head = int(3 * compute * rows * model.width + (8 + compute) * rows * model.vocab)
    peak = sum(static.values()) + gathered + max(activations + head, grad_reduction) + RESERVE_BYTES
    return Plan(model=model, settings=s, static=static, gathered=int(gathered), activations=activations, head=head,
                grad_reduction=int(grad_reduction), reserve=RESERVE_BYTES, peak=int(peak),
                fits=peak <= s.gpu_memory, max_batch_size=0)


# ---------------------------------------------------------------------------------------------- the recipe
def model_size(model_namespace: Any, data_namespace: Any = None) -> tuple[ModelSize, Any]:
    """Build the configured LightningModule, then its model on the meta device; count by part.

    Args:
        model_namespace: ``model`` section of a parsed config (``class_path`` + ``init_args``).
        data_namespace: ``data`` section; its ``tokenizer`` directory is used when the model names none (as
            ``xlt fit`` links it).

    Returns:
        ``(ModelSize, module)``.
    """
    import torch

    from xlt.models.encoder import count_parameters, describe

    module_name, _, class_name = str(model_namespace.class_path).rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    init_args = _as_dict(getattr(model_namespace, "init_args", None))
    data_args = _as_dict(getattr(data_namespace, "init_args", None)) if data_namespace is not None else {}
    if init_args.get("tokenizer") is None and data_args.get("tokenizer") and Path(data_args["tokenizer"]).is_dir():
        init_args["tokenizer"] = data_args["tokenizer"]
    module = cls(**init_args)
    with torch.device("meta"):
        module.configure_model()
    counts = count_parameters(module.model)
    config = module.model.config
    shape = describe(config)
    layers = max(counts.layers) if counts.layers else 0
    size = ModelSize(parameters=counts.total, root_group=counts.total - sum(counts.layers),
                     word_embeddings=counts.word_embeddings, layers=len(counts.layers), layer_parameters=layers,
                     width=shape.width, intermediate=shape.intermediate, heads=shape.heads, vocab=shape.vocab,
                     description=str(shape))
    return size, module


def _as_dict(namespace: Any) -> dict[str, Any]:
    if namespace is None:
        return {}
    if hasattr(namespace, "as_dict"):
        return namespace.as_dict()
    return dict(namespace)


def settings_from_config(config: Any, gpus: int | None = None, gpu_memory: str = "80GiB",
                         sharding: Sharding | None = None, batch_size: int | None = None,
                         block_size: int | None = None,
                         activation_checkpointing: bool | None = None) -> tuple[PlanSettings, list[str]]:
    """Plan settings from a parsed config and ``xlt plan``'s own options (options win; see :func:`plan`)."""
    notes: list[str] = []
    trainer = config.trainer
    strategy = trainer.strategy
    options: dict[str, Any] = {}
    if hasattr(strategy, "class_path"):
        name = str(strategy.class_path).rsplit(".", 1)[-1]
        options = _as_dict(getattr(strategy, "init_args", None))
        configured = "fsdp" if name in ("FSDP2Strategy", "ModelParallelStrategy", "FSDPStrategy") else "ddp"
    else:
        name = str(strategy)
        configured = "fsdp" if "fsdp" in name else "ddp" if "ddp" in name else "auto"
    if gpus is None:
        if isinstance(trainer.devices, int) or str(trainer.devices).isdigit():
            gpus = int(trainer.devices) * int(trainer.num_nodes or 1)
        else:
            gpus = int(trainer.num_nodes or 1)
            notes.append(f"trainer.devices={trainer.devices}: assumed 1 GPU per node — pass --gpus")
    if gpus < 1:
        raise XltError(f"--gpus {gpus} must be at least 1")
    sharding = sharding or configured
    if sharding == "auto":
        sharding = "ddp" if gpus > 1 else "single"
    data = _as_dict(getattr(config.data, "init_args", None))
    batch = batch_size or data.get("batch_size")
    block = block_size or data.get("block_size")
    if not batch or not block:
        raise XltError("the config sets no data.init_args.batch_size / block_size — pass --batch_size and --block_size")
    checkpointing = options.get("activation_checkpointing", False)
    if activation_checkpointing is not None:
        checkpointing = activation_checkpointing
    param_dtype = options.get("param_dtype", "auto")
    settings = PlanSettings(
        gpus=gpus, sharding=sharding, precision=str(trainer.precision), batch_size=int(batch), block_size=int(block),
        gpu_memory=parse_memory(gpu_memory),
        param_dtype="bf16" if param_dtype == "auto" else param_dtype,
        reduce_dtype=options.get("reduce_dtype", "fp32"), activation_checkpointing=bool(checkpointing),
        reshard_after_forward=bool(options.get("reshard_after_forward", True)),
        mask_prob=float(_as_dict(getattr(config.model, "init_args", None)).get("mask_prob", 0.15)),
    )
    return settings, notes


def plan_recipe(recipe: Any, gpus: int | None = None, gpu_memory: str = "80GiB", sharding: Sharding | None = None,
                batch_size: int | None = None, block_size: int | None = None,
                activation_checkpointing: bool | None = None) -> Plan:
    """Estimate a parsed recipe (the options are :func:`plan`'s)."""
    start = time.perf_counter()
    settings, notes = settings_from_config(recipe, gpus=gpus, gpu_memory=gpu_memory, sharding=sharding,
                                           batch_size=batch_size, block_size=block_size,
                                           activation_checkpointing=activation_checkpointing)
    size, module = model_size(recipe.model, recipe.data)
    if getattr(module, "tokenizer_dir", None) is None:
        notes.append(f"vocabulary {size.vocab:,} from the model config: no tokenizer directory yet; xlt fit uses the "
                     "tokenizer's size (the data module's fitted tokenizer, data.tokenizer_vocab_size + specials)")
    result = estimate(size, settings)
    result.notes = notes
    result.seconds = time.perf_counter() - start
    return result


def make_plan(args: Sequence[str]) -> Plan:
    """Parse ``xlt plan`` arguments (its options plus ``xlt fit``-style recipe arguments) and estimate."""
    from xlt.lightning_cli import parse_recipe

    if not args:
        raise XltError("xlt plan needs a recipe — pass --config <recipe.yaml> (and overlays), as for xlt fit")
    recipe, options = parse_recipe(args, plan, prog="xlt plan")
    options.pop("json")
    return plan_recipe(recipe, **options)


def render(plan: Plan) -> str:
    """The human-readable plan."""
    m, s = plan.model, plan.settings
    gib = lambda value: f"{value / GIB:8.2f}"  # noqa: E731
    master, compute = precision_bytes(s.precision)
    if s.sharding == "fsdp":
        compute = _BYTES.get(s.param_dtype, 2)
    dtype = {8: "fp64", 4: "fp32", 2: "bf16"}
    shards = s.gpus if s.sharding == "fsdp" else 1
    share = f"1/{shards} shard" if shards > 1 else "full copy"
    tokens = s.batch_size * s.block_size
    lines = [
        f"model        {m.description}",
        f"parameters   {m.parameters:,} (meta device; {plan.seconds:.1f} s)",
        f"             outside the layers {m.root_group:,} (word embeddings {m.word_embeddings:,}, tied to the LM "
        f"head), {m.layers} layers x {m.layer_parameters:,}",
        f"run          {s.gpus} GPU(s), {s.sharding}{' (FSDP2: layer groups + root)' if s.sharding == 'fsdp' else ''},"
        f" precision {s.precision} (master {dtype[master]}, compute {dtype[compute]}"
        f"{', reduce ' + s.reduce_dtype if s.sharding == 'fsdp' else ''})",
        f"batch        {s.batch_size} x {s.block_size} tokens per GPU = {tokens:,}; global {tokens * s.gpus:,} "
        f"tokens/step; activation checkpointing {'on' if s.activation_checkpointing else 'off'}",
        "",
    ]
    rows: list[tuple[str, str, int]] = [
        ("parameters", f"{dtype[master]} master weights, {share}", plan.static["parameters"]),
        ("gradients", f"{dtype[master]}, {share}", plan.static["gradients"]),
        ("optimizer", f"AdamW exp_avg + exp_avg_sq {dtype[master]}, {share}", plan.static["optimizer"]),
    ]
    if s.sharding == "fsdp":
        layers_gathered = "2 layers" if s.reshard_after_forward else "all layers"
        rows.append(("gathered", f"{dtype[compute]} root group (embeddings + head) + {layers_gathered}", plan.gathered))
    else:
        rows.append(("cast weights", f"autocast cache of {dtype[compute]} weights", plan.gathered))
    masked_rows = int(s.mask_prob * tokens)
    rows += [
        ("activations", f"{m.layers} layers{' (checkpointed)' if s.activation_checkpointing else ''} + embeddings",
         plan.activations),
        ("LM head", f"{masked_rows:,} masked rows x {m.vocab:,} logits, fp32 log-softmax + grad", plan.head),
    ]
    if s.sharding == "fsdp":
        rows.append(("grad reduction", "root grads + reduce-scatter input (end of backward)", plan.grad_reduction))
    rows += [
        ("reserve", "CUDA context, NCCL buffers, allocator slack", plan.reserve),
        ("peak", "static + gathered + max(activations + head, grad reduction)", plan.peak),
    ]
    lines.append(f"{'per-GPU memory':<78}{'GiB':>8}")
    lines += [f"  {label:<15} {text:<60}{gib(value)}" for label, text, value in rows]
    lines += [
        "",
        f"fits in {s.gpu_memory / GIB:g} GiB per GPU: {'yes' if plan.fits else 'NO'} "
        f"({100 * plan.peak / s.gpu_memory:.0f}% of it); largest batch_size per GPU that fits: {plan.max_batch_size}",
    ]
    if not plan.fits and s.sharding != "fsdp":
        lines.append("hint: shard with --config configs/strategy/fsdp.yaml (or --sharding fsdp)")
    elif not plan.fits and not s.activation_checkpointing:
        lines.append("hint: --activation_checkpointing true, more GPUs, or a smaller data.batch_size")
    lines += [f"note: {note}" for note in plan.notes]
    return "\n".join(lines)


def plan(recipe: Any, gpus: int | None = None, gpu_memory: str = "80GiB", sharding: Sharding | None = None,
         batch_size: int | None = None, block_size: int | None = None, activation_checkpointing: bool | None = None,
         json: bool = False) -> Plan:
    """Parameters and per-GPU memory of a recipe under a sharding, without allocating weights.

    The recipe is read as by ``xlt fit``: ``--config`` files (repeat to compose overlays), ``--model.init_args.X
    V``, ``--data.init_args.X V``, ``--trainer.X V``; only the model is built, on the meta device. Prints the plan.

    Args:
        recipe: The parsed ``xlt fit`` config (the command line fills it).
        gpus: Number of GPUs (default: trainer.devices x trainer.num_nodes).
        gpu_memory: Memory per GPU, e.g. ``80GiB``, ``141GB``, ``40960MiB``; a bare number is GiB.
        sharding: Override the config's strategy: ``fsdp`` (FSDP2Strategy/ModelParallelStrategy), ``ddp`` or
            ``single``.
        batch_size: Blocks per GPU (default: data.init_args.batch_size).
        block_size: Tokens per block (default: data.init_args.block_size).
        activation_checkpointing: Override the strategy's activation_checkpointing (``true``/``false``).
        json: Print the plan as JSON instead of the table.

    Returns:
        The plan.
    """
    result = plan_recipe(recipe, gpus=gpus, gpu_memory=gpu_memory, sharding=sharding, batch_size=batch_size,
                         block_size=block_size, activation_checkpointing=activation_checkpointing)
    sys.stdout.write((_json.dumps(result.as_dict(), indent=2) if json else render(result)) + "\n")
    return result
