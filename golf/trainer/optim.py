"""Parameter groups -> Muon (block matrices) + AdamW (embeddings, scalars/control tensors), SPEC §4.1.

Each group remembers its ``base_lr``; :meth:`Optimizers.set_schedule` applies the LR
multiplier and the Muon momentum ramp before every step.
"""
from __future__ import annotations

import torch
from torch import nn

from golf import POLAR_EXPRESS, TOOLKIT
from golf.trainer.muon import Muon


def _check_groups(model: nn.Module, groups: dict) -> None:
    """Every trainable parameter in exactly one of the matrix/embed/scalar groups."""
    missing = set(groups) ^ {"matrix", "embed", "scalar"}
    if missing:
        raise ValueError(f"model.param_groups() must return keys matrix/embed/scalar, got {sorted(groups)}")
    seen: dict[int, str] = {}
    for key, items in groups.items():
        for name, p in items:
            if id(p) in seen:
                raise ValueError(f"parameter {name} is in both {seen[id(p)]!r} and {key!r} groups")
            seen[id(p)] = key
    unassigned = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if unassigned:
        raise ValueError(f"parameters not in any optimizer group: {', '.join(unassigned[:8])}")


class Optimizers:
    """The run's optimizers behind one object: ``step``, ``zero_grad``, ``state_dict`` ..."""

    def __init__(self, model: nn.Module, tcfg, device: torch.device | str = "cpu", rank: int = 0,
                 world_size: int = 1):
        groups = model.param_groups()
        if TOOLKIT:  # caller checks: toolkit only
            _check_groups(model, groups)
        self.tcfg = tcfg
        matrices = [p for _, p in groups["matrix"]]
        self.muon = Muon(matrices, lr=tcfg.matrix_lr, momentum=tcfg.muon_momentum, nesterov=True,
                         backend_steps=tcfg.muon_backend_steps, weight_decay=tcfg.muon_wd,
                         row_norm=tcfg.muon_row_norm, rank=rank, world_size=world_size) if matrices else None
        if POLAR_EXPRESS and self.muon is not None:  # the final record's Muon (a build flag, golf/__init__.py)
            for g in self.muon.param_groups:
                g.update(polar_express=tcfg.muon_polar_express, bf16_momentum=tcfg.muon_bf16_momentum)
        adam_groups = []
        if groups["embed"]:
            adam_groups.append(dict(params=[p for _, p in groups["embed"]], lr=tcfg.tied_embed_lr,
                                    weight_decay=tcfg.embed_wd, name="embed"))
        if groups["scalar"]:
            adam_groups.append(dict(params=[p for _, p in groups["scalar"]], lr=tcfg.scalar_lr,
                                    weight_decay=tcfg.adam_wd, name="scalar"))
        fused = torch.device(device).type == "cuda"
        self.adam = torch.optim.AdamW(adam_groups, betas=(tcfg.beta1, tcfg.beta2), eps=tcfg.adam_eps,
                                      fused=fused) if adam_groups else None
        self._set_base_lrs()

    def _set_base_lrs(self) -> None:
        base = {"matrix": self.tcfg.matrix_lr, "embed": self.tcfg.tied_embed_lr, "scalar": self.tcfg.scalar_lr}
        if self.muon is not None:
            for g in self.muon.param_groups:
                g["base_lr"] = base["matrix"]
        if self.adam is not None:
            for g in self.adam.param_groups:
                g["base_lr"] = base[g["name"]]

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.muon, self.adam) if o is not None]

    def set_schedule(self, lr_mult: float, momentum: float) -> None:
        for opt in self.optimizers:
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * lr_mult
        if self.muon is not None:
            for g in self.muon.param_groups:
                g["momentum"] = momentum

    def step(self, scaler=None) -> None:
        for opt in self.optimizers:
            if scaler is not None:
                scaler.step(opt)
            else:
                opt.step()

    def unscale_(self, scaler) -> None:
        for opt in self.optimizers:
            scaler.unscale_(opt)

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def state_dict(self) -> list[dict]:
        return [opt.state_dict() for opt in self.optimizers]

    def load_state_dict(self, states: list[dict]) -> None:
        opts = self.optimizers
        if TOOLKIT and len(states) != len(opts):  # resume check
            raise ValueError(f"checkpoint holds {len(states)} optimizer states, this run has {len(opts)}")
        for opt, st in zip(opts, states):
            opt.load_state_dict(st)
        if TOOLKIT:  # a resumed run takes its LRs from its (possibly changed) config, the state from the checkpoint
            self._set_base_lrs()
