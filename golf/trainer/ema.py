"""Exponential moving average of the model weights (fp32 copy of the full state dict).

``e <- d*e + (1-d)*theta`` after every optimizer step once started; no bias correction;
copied into the model once at the end of training (SPEC §4.3).
"""
from __future__ import annotations

import torch
from torch import nn

from golf import TOOLKIT


class EMA:
    def __init__(self, decay: float):
        if TOOLKIT and not 0.0 <= decay < 1.0:  # golf train validated the artifact's config
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = None  # {name: fp32 tensor} once started

    @property
    def active(self) -> bool:
        return self.shadow is not None

    @torch.no_grad()
    def start(self, model: nn.Module) -> None:
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if TOOLKIT and self.shadow is None:  # not started: nothing to do (the loop never asks)
            return
        d = self.decay
        for k, v in model.state_dict().items():
            e = self.shadow[k]
            if v.is_floating_point():
                e.mul_(d).add_(v.detach().float(), alpha=1.0 - d)
            else:
                e.copy_(v)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        if TOOLKIT and self.shadow is None:  # not started: nothing to do (the loop never asks)
            return
        sd = model.state_dict()
        for k, v in sd.items():
            v.copy_(self.shadow[k].to(v.dtype))

    if TOOLKIT:  # checkpoints (train_gpt.py's compile priming leaves the EMA alone: it has no state map entry)
        def state_dict(self) -> dict:
            return {"decay": self.decay, "shadow": self.shadow}

        def load_state_dict(self, state: dict) -> None:
            self.decay = float(state["decay"])
            shadow = state.get("shadow")
            self.shadow = None if shadow is None else {k: v.float().clone() for k, v in shadow.items()}
