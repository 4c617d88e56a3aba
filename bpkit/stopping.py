"""Stopping rules as pure functions with reason codes.

The training loop evaluates them once per epoch, inside the compiled program,
in this order of precedence: diverged, goal, 40-20-40 or bit fail, minimum gradient,
line search failed, validation patience, stalled, compute budget, maximum epochs.  The first that holds is the
run's stop reason; ``RUNNING`` means none did yet.

* **diverged**: the training loss is NaN or inf.  A status, never an exception.
* **goal**: training loss <= ``goal``.
* **40-20-40** (Fahlman's benchmark criterion): with targets spanning
  ``[lo, hi]``, an output below ``lo + 0.4 (hi - lo)`` reads as ``lo``, above
  ``hi - 0.4 (hi - lo)`` as ``hi``, in between as wrong; the rule holds when
  every output of every pattern reads as its target.  The rule counts the
  wrong outputs as an integer and holds when the count is 0: a float mean of
  a boolean mask is not 1.0 for many perfect outputs (in float32 the mean of
  41, 47, 55, 61, 82 or 194 trues is 0.99999994).
* **bit_fail** (FANN's ``FANN_STOPFUNC_BIT`` with no bit fail allowed): every output within
  ``bit_fail`` times the targets' span of its target (:func:`count_bit_fails`); an integer count again.
* **min_grad**: full-data gradient norm <= ``min_grad_norm``.
* **line_search_failed**: the optimizer's line search reported that it found
  no step with sufficient decrease (see :mod:`bpkit.optim.contract`).  Always
  on: a failed search is its own outcome, not "stalled" some epochs later.
* **patience** (MATLAB's ``max_fail``): the validation loss has not improved
  for ``patience`` consecutive epochs.
* **stalled**: the params did not change for ``stall_epochs`` epochs (a
  failed line search, or SCG rejecting every step).
* **max_cu**: the compute budget is spent: the run's evaluations so far, in Moeller's
  complexity units (``loss_evals + 3 grad_evals``, full-data equivalents), reach ``max_cu``.
  Judged at epoch ends, so a run overshoots by less than one epoch's cost.  Methods compared
  at equal compute get the same ``max_cu`` (and an epoch budget that does not bind first).
* **max_epochs**: the epoch budget is spent.

The two success criteria, the loss goal and 40-20-40, can each end a run at
the first epoch it holds (``stop_on="first"``, the default), or the run can go
on until *every* criterion switched on has held at some epoch
(``stop_on="all"``): then one run answers both questions, and a loss goal met
early does not hide when (or whether) 40-20-40 is met.  Either way the loop
records the first epoch each criterion held (``TrainResult.met``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

RUNNING, DIVERGED, GOAL, CRITERION, MIN_GRAD, PATIENCE, STALLED, MAX_EPOCHS, LINE_SEARCH_FAILED, MAX_CU, BIT_FAIL = (
    range(11))
REASONS = ("running", "diverged", "goal", "40-20-40", "min_grad", "patience", "stalled", "max_epochs",
           "line_search_failed", "max_cu", "bit_fail")
STOP_ON = ("first", "all")


def reason_name(code: int | jax.Array) -> str:
    return REASONS[int(code)]


@dataclasses.dataclass(frozen=True)
class StopRules:
    """Which rules apply.  ``None`` switches a rule off.

    Args:
        max_epochs: epoch budget (static: it sizes the history arrays).
        goal: stop when the training loss is at most this.
        min_grad_norm: stop when the full-data gradient norm is at most this.
        criterion_40_20_40: stop when every output is right by 40-20-40.
        bit_fail: stop when no output is a bit fail (FANN's): off its target by
            ``bit_fail`` times the targets' span or more.  The run's count of wrong
            outputs is then the bit fails; not with ``criterion_40_20_40``.
        patience: stop after this many epochs without a better validation loss.
        stall_epochs: stop after this many epochs with no change to the params.
        max_cu: stop once the run has spent this many cu (a compute budget).
        stop_on: ``"first"``: the first success criterion (goal, 40-20-40) that
            holds ends the run; ``"all"``: the run ends once every criterion
            switched on has held at some epoch (its reason: the one met last).
    """

    max_epochs: int = 100
    goal: float | None = None
    min_grad_norm: float | None = None
    criterion_40_20_40: bool = False
    bit_fail: float | None = None
    patience: int | None = None
    stall_epochs: int | None = 10
    stop_on: str = "first"
    max_cu: float | None = None

    def __post_init__(self):
        if self.stop_on not in STOP_ON:
            raise ValueError(f"stop_on must be one of {', '.join(STOP_ON)}, got {self.stop_on!r}")
        limit = 2**31 - 1  # epochs are counted in int32 inside the compiled loop
        if not (isinstance(self.max_epochs, int) and 1 <= self.max_epochs <= limit):
            raise ValueError(f"max_epochs must be an integer in 1..{limit}, got {self.max_epochs!r}")
        for name in ("patience", "stall_epochs"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and 1 <= v <= limit):
                raise ValueError(f"{name} must be an integer in 1..{limit} or None, got {v!r}")
        if self.bit_fail is not None and not 0 < self.bit_fail <= 1:
            raise ValueError(f"bit_fail must be in (0, 1] (a fraction of the targets' span; FANN's is 0.35), "
                             f"got {self.bit_fail!r}")
        if self.bit_fail is not None and self.criterion_40_20_40:
            raise ValueError("give one output criterion: criterion_40_20_40 or bit_fail, not both")
        for name in ("goal", "min_grad_norm"):
            v = getattr(self, name)
            if v is not None and not v >= 0:
                raise ValueError(f"{name} must be >= 0 or None, got {v!r}")
        if self.max_cu is not None and not self.max_cu > 0:
            raise ValueError(f"max_cu must be positive or None, got {self.max_cu!r}")


def count_wrong_40_20_40(out: jax.Array, y: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """How many output entries do *not* read as their target under 40-20-40 (int32).

    An output reads as ``lo`` below ``lo + 0.4 (hi - lo)`` and as ``hi`` above
    ``hi - 0.4 (hi - lo)``; in between it is wrong whatever the target.

    Example:
        >>> import jax.numpy as jnp
        >>> int(count_wrong_40_20_40(jnp.array([[0.1], [0.5], [0.9]]), jnp.array([[0.], [1.], [1.]]), 0., 1.))
        1
    """
    band = 0.4 * (hi - lo)
    reads_lo = out < lo + band
    reads_hi = out > hi - band
    target_hi = y > (lo + hi) / 2
    wrong = (target_hi & ~reads_hi) | (~target_hi & ~reads_lo)
    return wrong.sum(dtype="int32")  # operators only: the same code counts NumPy arrays (tests)


def count_bit_fails(out: jax.Array, y: jax.Array, lo: jax.Array | float, hi: jax.Array | float,
                    limit: float) -> jax.Array:
    """How many output entries are bit fails (int32): off their target by at least ``limit (hi - lo)``.

    FANN's ``fann_update_MSE`` counts ``|y - a| >= bit_fail_limit`` on an output in ``[0, 1]`` and
    ``|y - a| / 2 >= bit_fail_limit`` on one in ``[-1, 1]``: the same where the targets span the output's
    range.  A constant target (``hi = lo``) takes a span of 1.

    Example:
        >>> import jax.numpy as jnp
        >>> int(count_bit_fails(jnp.array([[0.3], [0.5], [0.9]]), jnp.array([[0.], [1.], [1.]]), 0., 1., 0.35))
        1
    """
    span = hi - lo
    span = span + (span == 0)  # operators only: the same code counts NumPy arrays (tests)
    return (abs(y - out) >= limit * span).sum(dtype="int32")


def count_wrong(rules: StopRules, out: jax.Array, y: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """The run's count of wrong outputs: its bit fails under ``rules.bit_fail``, else 40-20-40's."""
    if rules.bit_fail is not None:
        return count_bit_fails(out, y, lo, hi, rules.bit_fail)
    return count_wrong_40_20_40(out, y, lo, hi)


def met_now(rules: StopRules, loss: jax.Array, wrong: jax.Array) -> jax.Array:
    """``[goal holds, the output criterion (40-20-40 or bit fail) holds]`` at this epoch (bool, shape (2,)); a
    criterion switched off never holds."""
    goal = loss <= rules.goal if rules.goal is not None else jnp.asarray(False)
    crit = wrong == 0 if (rules.criterion_40_20_40 or rules.bit_fail is not None) else jnp.asarray(False)
    return jnp.stack([jnp.asarray(goal), jnp.asarray(crit)])


def first_met(met: jax.Array, holds: jax.Array, epoch: jax.Array) -> jax.Array:
    """``met`` (int32 (2,): the 1-based epoch each criterion first held, 0 if not yet) after ``epoch``."""
    return jnp.where((met == 0) & holds, jnp.asarray(epoch, jnp.int32), met)


def stop_reason(
    rules: StopRules,
    epoch: jax.Array,
    loss: jax.Array,
    grad_norm: jax.Array,
    wrong: jax.Array,
    epochs_without_improvement: jax.Array,
    epochs_unchanged: jax.Array,
    line_search_failed: jax.Array | bool = False,
    met: jax.Array | None = None,
    cu: jax.Array | None = None,
) -> jax.Array:
    """The reason code after ``epoch`` epochs (1-based), ``RUNNING`` if none holds.

    ``wrong`` is the integer count of wrong outputs (:func:`count_wrong_40_20_40`);
    ``met`` the epochs each criterion first held (:func:`first_met`, this epoch
    included), which ``stop_on="all"`` needs; ``cu`` what the run has spent, which
    ``max_cu`` needs.
    """
    checks: list[tuple[jax.Array, int | jax.Array]] = [(~jnp.isfinite(loss), DIVERGED)]
    output = rules.criterion_40_20_40 or rules.bit_fail is not None
    crit = BIT_FAIL if rules.bit_fail is not None else CRITERION
    on = [i for i, flag in enumerate((rules.goal is not None, output)) if flag]  # met's slots
    if rules.stop_on == "all" and on:
        if met is None:
            raise ValueError("stop_on='all' needs met, the epochs each criterion first held")
        codes = (GOAL, crit)
        last = codes[on[0]] if len(on) == 1 else jnp.where(met[1] > met[0], crit, GOAL)  # the one met last
        checks.append((jnp.all(met[jnp.asarray(on)] > 0), last))
    else:
        if rules.goal is not None:
            checks.append((loss <= rules.goal, GOAL))
        if output:
            checks.append((wrong == 0, crit))
    if rules.min_grad_norm is not None:
        checks.append((grad_norm <= rules.min_grad_norm, MIN_GRAD))
    checks.append((jnp.asarray(line_search_failed), LINE_SEARCH_FAILED))
    if rules.patience is not None:
        checks.append((epochs_without_improvement >= rules.patience, PATIENCE))
    if rules.stall_epochs is not None:
        checks.append((epochs_unchanged >= rules.stall_epochs, STALLED))
    if rules.max_cu is not None:
        if cu is None:
            raise ValueError("max_cu needs cu, what the run has spent")
        checks.append((cu >= rules.max_cu, MAX_CU))
    checks.append((epoch >= rules.max_epochs, MAX_EPOCHS))
    code = jnp.int32(RUNNING)
    for cond, c in reversed(checks):  # the earliest listed wins
        code = jnp.where(cond, jnp.int32(c), code)
    return code
