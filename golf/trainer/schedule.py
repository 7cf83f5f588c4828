"""Learning-rate multiplier, Muon momentum ramp, recurrence switch-on and training-progress helpers (SPEC §4.3).

The multiplier applies to every group's base LR:

* linear warm-up over ``warmup_steps`` (``(step+1)/warmup_steps``), then 1;
* warmdown by wallclock/iteration fraction when ``warmdown_frac`` w > 0:
  ``1`` while frac < 1 - w, else ``(1 - frac)/w``, where frac is the training progress
  (elapsed/effective cap, or step/iterations, whichever is further);
* otherwise warmdown by iterations when ``warmdown_iters`` > 0: ``(iterations - step)/warmdown_iters``
  over the last ``warmdown_iters`` steps; under a wallclock cap the same length is also
  measured in time (``warmdown_iters`` × mean step time) and the smaller multiplier wins,
  so the run anneals whichever budget runs out first;
* floored at ``min_lr`` (a fraction of the base LR).

Depth recurrence switches on once (:func:`recurrence_due`): at step ``recur_start_step`` when that
is set, else once the progress reaches ``recur_start_frac`` (at once when that is <= 0).

Shipped inside the generated ``train_gpt.py``: standard library only.
"""
from __future__ import annotations


def progress(step: int, iterations: int, elapsed_ms: float = 0.0, cap_ms: float = 0.0) -> float:
    """Fraction of training done: step/iterations, or elapsed/cap under a cap (whichever is further)."""
    frac = step / iterations if iterations > 0 else 0.0
    if cap_ms and cap_ms > 0:
        frac = max(frac, elapsed_ms / cap_ms)
    return min(max(frac, 0.0), 1.0)


def lr_multiplier(step: int, iterations: int, *, elapsed_ms: float = 0.0, cap_ms: float = 0.0,
                  warmup_steps: int = 0, warmdown_iters: int = 0, warmdown_frac: float = 0.0,
                  min_lr: float = 0.0) -> float:
    """LR multiplier for the optimizer step taken after ``step`` completed steps."""
    mult = 1.0
    if warmup_steps > 0 and step < warmup_steps:
        mult = (step + 1) / warmup_steps
    if warmdown_frac > 0:
        frac = progress(step, iterations, elapsed_ms, cap_ms)
        if frac >= 1.0 - warmdown_frac:
            mult = min(mult, (1.0 - frac) / warmdown_frac)
    elif warmdown_iters > 0:
        start = iterations - warmdown_iters
        if step >= start:
            mult = min(mult, max(iterations - step, 0) / warmdown_iters)
        if cap_ms and cap_ms > 0 and step > 0 and elapsed_ms > 0:
            step_ms = elapsed_ms / step
            remaining_ms = max(cap_ms - elapsed_ms, 0.0)
            warmdown_ms = warmdown_iters * step_ms
            if remaining_ms <= warmdown_ms:
                mult = min(mult, remaining_ms / warmdown_ms)
    return max(mult, min_lr)


def in_warmdown(step: int, iterations: int, *, elapsed_ms: float = 0.0, cap_ms: float = 0.0,
                warmdown_iters: int = 0, warmdown_frac: float = 0.0) -> bool:
    """True once the warmdown phase has begun (step >= iterations - warmdown_iters, frac >= 1 - w, or
    the capped clock has less than warmdown_iters mean steps left); for logging."""
    if warmdown_frac > 0:
        return progress(step, iterations, elapsed_ms, cap_ms) >= 1.0 - warmdown_frac
    if warmdown_iters > 0:
        if step >= iterations - warmdown_iters:
            return True
        if cap_ms and cap_ms > 0 and step > 0 and elapsed_ms > 0:
            return max(cap_ms - elapsed_ms, 0.0) <= warmdown_iters * elapsed_ms / step
    return False


def recurrence_due(tcfg, step: int, elapsed_ms: float = 0.0, cap_ms: float = 0.0) -> bool:
    """True when depth recurrence should be on for the step taken after ``step`` completed steps of a
    ``TrainConfig``'s run: from ``recur_start_step`` when > 0 (the SP4096 record's rule), else once
    :func:`progress` reaches ``recur_start_frac`` (at once when that is <= 0)."""
    if tcfg.recur_start_step > 0:
        return step >= tcfg.recur_start_step
    frac = tcfg.recur_start_frac
    return frac <= 0 or progress(step, tcfg.iterations, elapsed_ms, cap_ms) >= frac


def muon_momentum(step: int, momentum: float, warmup_start: float, warmup_steps: int) -> float:
    """Momentum ramp: linear from ``warmup_start`` to ``momentum`` over ``warmup_steps`` steps."""
    if warmup_steps <= 0:
        return momentum
    t = min(step / warmup_steps, 1.0)
    return (1.0 - t) * warmup_start + t * momentum


def schedule_from_config(tcfg) -> dict:
    """Keyword arguments of :func:`lr_multiplier` taken from a ``TrainConfig``."""
    return dict(warmup_steps=tcfg.warmup_steps, warmdown_iters=tcfg.warmdown_iters,
                warmdown_frac=tcfg.warmdown_frac, min_lr=tcfg.min_lr)


def effective_cap_ms(tcfg) -> float:
    """Wallclock cap minus the GPTQ reserve, in ms (0 = no cap)."""
    if not tcfg.max_wallclock_seconds or tcfg.max_wallclock_seconds <= 0:
        return 0.0
    return max(1000.0 * (tcfg.max_wallclock_seconds - tcfg.gptq_reserve_seconds), 0.0)
