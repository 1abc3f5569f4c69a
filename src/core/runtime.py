"""What training and scoring share about where and how a model runs: the device, the precision
(autocast), moving batches, CPU threads, seeds, and out-of-memory errors that name the batch size.

The engine (src.training) and the evaluate stages both import this module; it imports neither.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from src.core.errors import PipelineError


# ---- device and precision ---------------------------------------------------------------------------
def resolve_device(device: str | torch.device = "auto", key: str = "device") -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without one is an error, not a silent CPU run."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PipelineError(f"{key} = {device}: CUDA is not available on this machine (use 'auto' or 'cpu')")
    return device


# A batch of the project's loaders is a dict: ``labels`` and the model's keyword inputs. A plain PyTorch
# loader (a TensorDataset, say) yields ``(inputs..., labels)``: its inputs travel under this key and
# reach the model positionally.
POSITIONAL_INPUTS = "positional_inputs"


def as_batch(batch: Any) -> dict[str, Any]:
    """``batch`` as a dict: a mapping (a collate function's dict, a tokenizer's BatchEncoding) as it is,
    ``(inputs..., labels)`` with its inputs under POSITIONAL_INPUTS; anything else is a PipelineError
    saying which formats the engine takes."""
    if isinstance(batch, Mapping):
        return dict(batch)
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return {POSITIONAL_INPUTS: tuple(batch[:-1]), "labels": batch[-1]}
    raise PipelineError(f"a batch is {type(batch).__name__}: {_BATCH_FORMATS}")


def batch_labels(batch: dict[str, Any]) -> torch.Tensor:
    """The labels of a batch ``as_batch`` made; a PipelineError naming its keys when it has none."""
    if "labels" not in batch:
        raise PipelineError(f"a batch is a dict with the keys {sorted(map(str, batch))}: {_BATCH_FORMATS}")
    return batch["labels"]


_BATCH_FORMATS = "expected a dict with 'labels' and the model's keyword inputs, or an (inputs..., labels) tuple"


def move_batch(batch: Any, device: torch.device) -> dict[str, Any]:
    """The batch (see ``as_batch``) with its tensors on ``device``."""
    non_blocking = device.type == "cuda"  # overlaps host->GPU copies with compute (pinned memory)

    def move(value: Any) -> Any:
        if torch.is_tensor(value):
            return value.to(device, non_blocking=non_blocking)
        return tuple(move(v) for v in value) if isinstance(value, tuple) else value

    return {k: move(v) for k, v in as_batch(batch).items()}


def forward_logits(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """The model's logits for a batch: ``model(*inputs)`` for an (inputs..., labels) batch, else
    ``model(**inputs)`` for every key but ``labels``. The output may be a tensor, an object or dict
    with ``logits`` (Hugging Face models) or a tuple whose first element is the logits."""
    if POSITIONAL_INPUTS in batch:
        output = model(*batch[POSITIONAL_INPUTS])
    else:
        output = model(**{k: v for k, v in batch.items() if k != "labels"})
    if hasattr(output, "logits"):
        output = output.logits
    elif isinstance(output, dict) and "logits" in output:
        output = output["logits"]
    elif isinstance(output, (tuple, list)) and output:
        output = output[0]
    if not torch.is_tensor(output):
        raise PipelineError(
            f"the model returned {type(output).__name__}: expected a logits tensor, an output with "
            "'logits', or a tuple whose first element is the logits"
        )
    return output


@functools.cache
def cpu_has_amx_bf16() -> bool:
    """AMX (Intel Sapphire Rapids and later): bf16 matmuls on tile units, made for bf16 autocast.

    On a 2-core Intel Xeon with AMX, bf16 trains BERT 1.37x faster than fp32 (docs/decisions.md).
    With AVX512-BF16 alone it depends on the CPU, slower on one and faster on another
    (docs/decisions.md, "Speed"); fp32 on every such CPU keeps the results, and
    train_bert's speed against the Trainer's fp32, the same on all of them."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_bf16" in flags


def autocast_dtype(device: torch.device, mixed_precision: bool) -> torch.dtype | None:
    """bf16 on GPUs that have it and on CPUs with AMX, fp16 on older GPUs (needs loss scaling),
    None (full precision) otherwise: every other CPU trains and scores faster in fp32."""
    if not mixed_precision:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_amx_bf16() else None


def autocast_context(device: torch.device, mixed_precision: bool):
    dtype = autocast_dtype(device, mixed_precision)
    return torch.autocast(device_type=device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


# ---- process set-up ----------------------------------------------------------------------------------
def available_cpu_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def use_all_cpu_cores() -> None:
    """Torch's threads: the cores this process may use, shared among the processes torchrun started on
    this machine (LOCAL_WORLD_SIZE), unless OMP_NUM_THREADS says otherwise (src.launch sets it to that
    share too). More threads than cores only wait on each other."""
    if "OMP_NUM_THREADS" not in os.environ:
        workers = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
        torch.set_num_threads(max(1, available_cpu_cores() // max(1, workers)))


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def _raised_in(exc: BaseException, module: str, function: str) -> bool:
    """Whether ``module.function`` is on the traceback of ``exc`` (by name: this module must not
    import the engine, or every evaluate stage would depend on it)."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == function and frame.f_globals.get("__name__") == module:
            return True
        tb = tb.tb_next
    return False


def _lower_batch_size(key: str, value: int | list[int]) -> str:
    """Advice naming ``key``; a list is a tuning search space of batch sizes."""
    largest = max(value) if isinstance(value, list) else value
    if largest <= 1:
        return f"{key} is already 1: lower max_length, use a smaller model_name or a larger GPU"
    if isinstance(value, list):
        return f"{key} = {value} holds sizes too large for this GPU: keep sizes up to {largest // 2}"
    return f"{key} = {value} is too large for this GPU: try {key}={largest // 2}"


@contextlib.contextmanager
def explain_out_of_memory(
    key: str, value: int | list[int], eval_key: str | None = None, eval_value: int | None = None
) -> Iterator[None]:
    """Turn a GPU out-of-memory error into a PipelineError naming the batch size to lower.

    With ``eval_key``, an OOM raised inside validation (``src.training.evaluation.evaluate``) names
    the evaluation batch size instead.
    """
    try:
        yield
    except torch.OutOfMemoryError as exc:
        if eval_key is not None and _raised_in(exc, "src.training.evaluation", "evaluate"):
            key, value = eval_key, eval_value
        raise PipelineError(f"out of GPU memory: {_lower_batch_size(key, value)}") from None


def _lookup(params: dict, dotted_keys: tuple[str, ...]) -> tuple[str, Any]:
    """The first of ``dotted_keys`` present in ``params``, with its value."""
    for dotted in dotted_keys:
        node = params
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return dotted, node
    raise KeyError(dotted_keys)


def out_of_memory_names(batch_size_keys: tuple[str, ...], eval_key: str | None = None):
    """Decorate a stage's ``main(params)`` with ``explain_out_of_memory`` on its batch-size keys.

    ``batch_size_keys``: where the training batch size comes from, the first one present wins
    (tune: the search space when it searches batch sizes, else the top-level ``batch_size``).
    """

    def decorate(main: Callable[[dict], None]) -> Callable[[dict], None]:
        @functools.wraps(main)
        def run(params: dict) -> None:
            key, value = _lookup(params, batch_size_keys)
            eval_value = _lookup(params, (eval_key,))[1] if eval_key else None
            with explain_out_of_memory(key, value, eval_key, eval_value):
                main(params)

        return run

    return decorate
