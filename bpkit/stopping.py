"""Stopping rules as pure functions with reason codes.

The training loop evaluates them once per epoch, inside the compiled program,
in this order of precedence: diverged, goal, 40-20-40, minimum gradient,
validation patience, stalled, maximum epochs.  The first that holds is the
run's stop reason; ``RUNNING`` means none did yet.

* **diverged**: the training loss is NaN or inf.  A status, never an exception.
* **goal**: training loss <= ``goal``.
* **40-20-40** (Fahlman's benchmark criterion): with targets spanning
  ``[lo, hi]``, an output below ``lo + 0.4 (hi - lo)`` reads as ``lo``, above
  ``hi - 0.4 (hi - lo)`` as ``hi``, in between as wrong; the rule holds when
  every output of every pattern reads as its target.
* **min_grad**: full-data gradient norm <= ``min_grad_norm``.
* **patience** (MATLAB's ``max_fail``): the validation loss has not improved
  for ``patience`` consecutive epochs.
* **stalled**: the params did not change for ``stall_epochs`` epochs (a
  failed line search, or SCG rejecting every step).
* **max_epochs**: the epoch budget is spent.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

RUNNING, DIVERGED, GOAL, CRITERION, MIN_GRAD, PATIENCE, STALLED, MAX_EPOCHS = range(8)
REASONS = ("running", "diverged", "goal", "40-20-40", "min_grad", "patience", "stalled", "max_epochs")


def reason_name(code: int) -> str:
    return REASONS[int(code)]


@dataclasses.dataclass(frozen=True)
class StopRules:
    """Which rules apply.  ``None`` switches a rule off.

    Args:
        max_epochs: epoch budget (static: it sizes the history arrays).
        goal: stop when the training loss is at most this.
        min_grad_norm: stop when the full-data gradient norm is at most this.
        criterion_40_20_40: stop when every output is right by 40-20-40.
        patience: stop after this many epochs without a better validation loss.
        stall_epochs: stop after this many epochs with no change to the params.
    """

    max_epochs: int = 100
    goal: float | None = None
    min_grad_norm: float | None = None
    criterion_40_20_40: bool = False
    patience: int | None = None
    stall_epochs: int | None = 10

    def __post_init__(self):
        if not (isinstance(self.max_epochs, int) and self.max_epochs >= 1):
            raise ValueError(f"max_epochs must be a positive integer, got {self.max_epochs!r}")
        for name in ("patience", "stall_epochs"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
        for name in ("goal", "min_grad_norm"):
            v = getattr(self, name)
            if v is not None and not v >= 0:
                raise ValueError(f"{name} must be >= 0 or None, got {v!r}")


def fraction_right_40_20_40(out: jax.Array, y: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """Fraction of output entries that read as their target under 40-20-40."""
    band = 0.4 * (hi - lo)
    reads_lo = out < lo + band
    reads_hi = out > hi - band
    target_hi = y > (lo + hi) / 2
    right = jnp.where(target_hi, reads_hi, reads_lo)
    return jnp.mean(right.astype(out.dtype))


def stop_reason(
    rules: StopRules,
    epoch: jax.Array,
    loss: jax.Array,
    grad_norm: jax.Array,
    fraction_right: jax.Array,
    epochs_without_improvement: jax.Array,
    epochs_unchanged: jax.Array,
) -> jax.Array:
    """The reason code after ``epoch`` epochs (1-based), ``RUNNING`` if none holds."""
    checks = [(~jnp.isfinite(loss), DIVERGED)]
    if rules.goal is not None:
        checks.append((loss <= rules.goal, GOAL))
    if rules.criterion_40_20_40:
        checks.append((fraction_right >= 1.0, CRITERION))
    if rules.min_grad_norm is not None:
        checks.append((grad_norm <= rules.min_grad_norm, MIN_GRAD))
    if rules.patience is not None:
        checks.append((epochs_without_improvement >= rules.patience, PATIENCE))
    if rules.stall_epochs is not None:
        checks.append((epochs_unchanged >= rules.stall_epochs, STALLED))
    checks.append((epoch >= rules.max_epochs, MAX_EPOCHS))
    code = jnp.int32(RUNNING)
    for cond, c in reversed(checks):  # the earliest listed wins
        code = jnp.where(cond, jnp.int32(c), code)
    return code
