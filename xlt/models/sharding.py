"""FSDP2 sharding of a masked-LM encoder, for Lightning's ``ModelParallelStrategy``.

:func:`shard_masked_lm` applies ``fully_shard`` to every transformer layer and then to the model itself (the
root group). The root group holds the embeddings and the MLM head, so the word embeddings and the tied LM
decoder stay one parameter in one FSDP group (a tied parameter may not sit in two groups). Parameters,
gradients and AdamW states are sharded along dim 0 over the data-parallel mesh; each layer is all-gathered just
before its forward/backward and freed after.

:class:`FSDP2Strategy` is ``ModelParallelStrategy`` set up for pure FSDP2 (``tensor_parallel_size=1``,
``data_parallel_size`` = world size, resolved at launch so ``--trainer.num_nodes``/``--trainer.devices`` are
enough) that also carries the sharding options (:class:`ShardingOptions`): mixed precision (bf16 parameters and
compute on GPU, fp32 gradient reduction), per-layer activation checkpointing, reshard-after-forward.
``MLMPretraining.configure_model`` calls :func:`shard_masked_lm` whenever the strategy set a device mesh.

A sharded model needs its FSDP root hooks to run: code that calls ``model.base_model`` and the head directly
(instead of ``model(...)``) goes through a method registered with :func:`install_forward_method`.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn

from xlt.errors import XltError
from xlt.models.encoder import encoder_layers

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class ShardingOptions:
    """How :func:`shard_masked_lm` shards a model.

    Attributes:
        param_dtype: dtype parameters are all-gathered in and compute runs in: ``bf16``, ``fp32``, ``fp16``, or
            ``auto`` (bf16 on a CUDA mesh with bf16 support, else fp32). Sharded (master) parameters, gradients
            after reduction and optimizer states stay fp32.
        reduce_dtype: dtype of the gradient reduce-scatter (``fp32`` is the safe default).
        activation_checkpointing: Recompute each transformer layer's activations in backward (stores only the
            layer inputs).
        reshard_after_forward: Free each layer's gathered parameters after its forward (re-gathered for
            backward; ZeRO-3). ``False`` keeps them until backward (more memory, one all-gather less).
    """

    param_dtype: Literal["auto", "bf16", "fp32", "fp16"] = "auto"
    reduce_dtype: Literal["fp32", "bf16"] = "fp32"
    activation_checkpointing: bool = False
    reshard_after_forward: bool = True

    def compute_dtype(self, device_type: str) -> torch.dtype:
        """The parameter/compute dtype on a mesh of ``device_type`` (``auto`` resolved)."""
        if self.param_dtype != "auto":
            return DTYPES[self.param_dtype]
        if device_type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32


class FSDP2Strategy(ModelParallelStrategy):
    """Lightning's ``ModelParallelStrategy`` for pure FSDP2: every process is one data-parallel rank."""

    def __init__(
        self,
        param_dtype: Literal["auto", "bf16", "fp32", "fp16"] = "auto",
        reduce_dtype: Literal["fp32", "bf16"] = "fp32",
        activation_checkpointing: bool = False,
        reshard_after_forward: bool = True,
        save_distributed_checkpoint: bool = True,
        process_group_backend: str | None = None,
        timeout_s: float = 1800.0,
    ) -> None:
        """Configure FSDP2 (the device mesh is built at launch: one dimension of size world size).

        Args:
            param_dtype: Parameter/compute dtype of the sharded model (``auto``: bf16 on GPU, fp32 on CPU).
            reduce_dtype: Gradient reduce-scatter dtype.
            activation_checkpointing: Recompute each transformer layer's activations in backward.
            reshard_after_forward: Free gathered layer parameters after forward (ZeRO-3); ``False`` keeps them.
            save_distributed_checkpoint: Save sharded checkpoints (a directory, one file per rank; convert with
                ``xlt consolidate``). ``False`` gathers everything on rank 0 into one file (needs host memory).
            process_group_backend: ``nccl`` / ``gloo``; default: nccl on GPU, gloo on CPU.
            timeout_s: Collective timeout in seconds (raise it when checkpoints load slowly).
        """
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
            timeout=timedelta(seconds=timeout_s),
        )
        self.sharding = ShardingOptions(param_dtype, reduce_dtype, activation_checkpointing, reshard_after_forward)

    def setup_environment(self) -> None:
        """Resolve ``data_parallel_size`` to the world size, then set up processes and the device mesh."""
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()


def sharding_options(strategy: Any) -> ShardingOptions:
    """The strategy's :class:`ShardingOptions` (defaults for a plain ``ModelParallelStrategy``)."""
    options = getattr(strategy, "sharding", None)
    return options if isinstance(options, ShardingOptions) else ShardingOptions()


def data_parallel_mesh(mesh: Any | None = None) -> Any:
    """The data-parallel dimension of ``mesh``; without a mesh, a new 1-D mesh over all ranks.

    A new mesh uses ``cuda`` when available and an explicit ``cpu`` mesh (gloo) otherwise.

    Raises:
        XltError: the mesh has a tensor-parallel dimension larger than 1 (xlt shards with FSDP only).
    """
    if mesh is None:
        import torch.distributed as dist
        from torch.distributed.device_mesh import init_device_mesh

        if not dist.is_initialized():
            raise RuntimeError("sharding needs an initialised process group (launch with torchrun or Lightning)")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return init_device_mesh(device, (dist.get_world_size(),), mesh_dim_names=("data_parallel",))
    names = mesh.mesh_dim_names or ()
    if "tensor_parallel" in names and mesh["tensor_parallel"].size() > 1:
        raise XltError(
            f"trainer.strategy has tensor_parallel_size={mesh['tensor_parallel'].size()} — xlt shards with FSDP2 "
            "only: use xlt.models.sharding.FSDP2Strategy or set tensor_parallel_size: 1"
        )
    if "data_parallel" in names and mesh.ndim > 1:
        return mesh["data_parallel"]
    return mesh


def shard_masked_lm(model: nn.Module, mesh: Any | None = None, options: ShardingOptions | None = None) -> nn.Module:
    """Apply FSDP2 to a transformers masked-LM model in place: one group per transformer layer, then the root.

    Embeddings, the MLM head and the tied decoder land in the root group together. Model weights must be real
    (not meta) tensors: they are sharded as they are, so every rank must hold the same initial weights.

    Args:
        model: The masked-LM model (its layer stack is found by :func:`xlt.models.encoder.encoder_layers`).
        mesh: Device mesh from the strategy (its ``data_parallel`` dimension is used); ``None`` builds one.
        options: Sharding options (default :class:`ShardingOptions`).

    Returns:
        ``model`` (now an ``FSDPModule``).
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    options = options or ShardingOptions()
    mesh = data_parallel_mesh(mesh)
    compute = options.compute_dtype(mesh.device_type)
    reduce = DTYPES[options.reduce_dtype]
    policy = MixedPrecisionPolicy(param_dtype=None if compute == torch.float32 else compute,
                                  reduce_dtype=None if reduce == compute else reduce)
    if options.activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    layers = encoder_layers(model)
    for index, layer in enumerate(layers):
        # the last layer's parameters are needed again right away by backward: keep them gathered
        reshard = options.reshard_after_forward and index < len(layers) - 1
        fully_shard(layer, mesh=mesh, mp_policy=policy, reshard_after_forward=reshard)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def is_sharded(model: nn.Module) -> bool:
    """True if FSDP2 was applied to ``model`` or one of its submodules."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(module, FSDPModule) for module in model.modules())


def install_forward_method(model: nn.Module, name: str, function: Callable[..., Any]) -> None:
    """Bind ``function(model, ...)`` as ``model.<name>`` and make FSDP treat it as a forward of the root.

    On a sharded model the root's parameters (embeddings, head) are gathered before the method runs and
    gradient hooks are attached to its outputs, exactly as for ``model(...)``; on an unsharded model it is a
    plain bound method.
    """
    from torch.distributed.fsdp import register_fsdp_forward_method

    object.__setattr__(model, name, types.MethodType(function, model))
    register_fsdp_forward_method(model, name)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor] | None:
    """Gather a sharded model's full state dict on CPU (a collective: call it on every rank).

    Returns:
        The full state dict on global rank 0, an empty dict on other ranks, ``None`` if ``model`` is not sharded.
    """
    if not is_sharded(model):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def local_shard_sizes(model: nn.Module) -> dict[str, tuple[list[int], list[int]]]:
    """``name -> (shape held by this rank, full shape)`` for every parameter (equal when not sharded)."""
    sizes = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):  # tied parameters under each name
        local = parameter.to_local() if hasattr(parameter, "to_local") else parameter
        sizes[name] = (list(local.shape), list(parameter.shape))
    return sizes


def unsharded_from_state_dict(build: Callable[[], nn.Module], state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """An unsharded model holding ``state_dict`` (no copy): ``build()`` on the meta device, then weights assigned.

    Args:
        build: Builds the (unsharded) model architecture; called under ``torch.device("meta")``.
        state_dict: Full weights, e.g. from :func:`full_state_dict` or a consolidated checkpoint.
    """
    with torch.device("meta"):
        model = build()
    model.load_state_dict(state_dict, strict=True, assign=True)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    left = [name for name, parameter in model.named_parameters() if parameter.is_meta]
    if left:
        raise RuntimeError(f"state dict left parameters unset: {', '.join(left[:5])}")
    return model
