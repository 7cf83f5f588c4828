"""Device and precision choice, shared by training, ``golf build`` and the generated ``train_gpt.py``."""
from __future__ import annotations

import torch

from golf.errors import GolfError


class RunError(RuntimeError, GolfError):
    """A run cannot go on for a reason the message states (device, precision, data, divergence):
    shown to the user as one line, never as a traceback."""


class DeviceError(RunError):
    """A device or precision this machine cannot provide."""


def resolve_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` (this rank's GPU, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(spec)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec} requested but no CUDA GPU is visible to torch")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


def resolve_precision(dtype: str, device: torch.device) -> tuple[torch.dtype | None, bool, str]:
    """``(autocast dtype or None, use GradScaler, label)`` for ``train.dtype`` on ``device``; ``auto`` is
    bf16 on GPUs that have it, fp16 (with a GradScaler) on older ones such as the T4, fp32 on the CPU."""
    if dtype not in ("auto", "bf16", "fp16", "fp32"):
        raise DeviceError(f"train.dtype must be auto|bf16|fp16|fp32, got {dtype!r}")
    if device.type != "cuda":
        if dtype == "fp16":
            raise DeviceError("fp16 training needs a CUDA GPU; use fp32 or bf16 on CPU")
        return (torch.bfloat16, False, "bf16") if dtype == "bf16" else (None, False, "fp32")
    if dtype == "auto":
        dtype = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if dtype == "bf16":
        return torch.bfloat16, False, "bf16"
    if dtype == "fp16":
        return torch.float16, True, "fp16"
    return None, False, "fp32"


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The evaluation autocast dtype on ``device`` (None: full precision)."""
    return resolve_precision("auto", device)[0]


def compiled_graphs() -> int:
    """Graphs torch.compile has built in this process so far (torch._dynamo's own counter)."""
    from torch._dynamo.utils import counters
    return int(counters["stats"]["unique_graphs"])
