"""Device and precision choice (golf.device), shared by training, building and train_gpt.py."""
from __future__ import annotations

import pytest
import torch

from golf.device import DeviceError, RunError, autocast_dtype, resolve_device, resolve_precision
from golf.trainer.loop import TrainError


def test_precision_on_the_cpu():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == (None, False, "fp32")
    assert resolve_precision("fp32", cpu) == (None, False, "fp32")
    assert resolve_precision("bf16", cpu) == (torch.bfloat16, False, "bf16")
    assert autocast_dtype(cpu) is None
    with pytest.raises(DeviceError, match="fp16 training needs a CUDA GPU"):
        resolve_precision("fp16", cpu)
    with pytest.raises(DeviceError, match="auto|bf16|fp16|fp32, got 'int4'"):
        resolve_precision("int4", cpu)


def test_devices_and_the_error_family():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(DeviceError, match="device cuda:1 requested but no CUDA GPU"):
            resolve_device("cuda:1")
    # one family of one-line errors: the CLIs and train_gpt.py catch RunError
    assert issubclass(DeviceError, RunError) and issubclass(TrainError, RunError)
