"""Optimizers as optax transforms: nonlinear CG, Moeller's SCG, quickprop, the RPROP family.

Everything here is an ``optax.GradientTransformationExtraArgs``, called as
``update(grads, state, params, value=, grad=, value_fn=, **extra_args)`` like
``optax.lbfgs`` (extra keyword arguments reach ``value_fn``), so it drops into
optax's own loops, into any optax chain, and into bpkit's one training loop.
Every state has one ``count`` (iterations) and one ``value``/``grad`` pair
(the loss and gradient at the returned params, ``value = inf`` when unknown),
which is what ``optax.value_and_grad_from_state`` and optax's L-BFGS example
loop read.  What an update cost, and whether its line search failed, reaches
bpkit's loop through :mod:`bpkit.optim.contract`.

========================  ===========================================  ==========================
``nonlinear_cg(beta)``    FR, PR, PR+, HS, DY; Powell-Beale restarts   :mod:`bpkit.optim.cg`
``scg()``                 Moeller's scaled conjugate gradient          :mod:`bpkit.optim.scg`
``quickprop()``           Fahlman's quickprop, FANN's formulation      :mod:`bpkit.optim.quickprop`
``rprop(variant=)``       Rprop+, Rprop-, iRprop+, iRprop-, FANN's     :mod:`bpkit.optim.rprop`
========================  ===========================================  ==========================

Cost per iteration in complexity units (Moeller: a loss evaluation 1 cu, a
gradient with its loss 3 cu), counting the gradient the caller computes at
each new point: gradient descent, quickprop and RPROP 3 cu; SCG 7 cu when the
step is accepted (Hessian-vector product, the loss at the trial point, the
gradient at the new point), 1 cu when it is rejected; CG and L-BFGS with the
zoom search 3 cu per line-search step (each step evaluates loss and gradient,
and the last one is reused as the next iteration's gradient).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import optax

from bpkit import _validate
from bpkit.optim import cg as _cg
from bpkit.optim import contract
from bpkit.optim import quickprop as _quickprop
from bpkit.optim import rprop as _rprop
from bpkit.optim import scg as _scg
from bpkit.optim.cg import (
    BETA_NAMES,
    BETAS,
    NonlinearCGState,
    beta_dy,
    beta_fr,
    beta_hs,
    beta_pr,
    beta_pr_plus,
    nonlinear_cg,
    scale_by_line_newton,
    scale_by_nonlinear_cg,
    zoom,
)
from bpkit.optim.contract import Evaluations
from bpkit.optim.quickprop import QuickpropState, quickprop
from bpkit.optim.rprop import VARIANTS as RPROP_VARIANTS
from bpkit.optim.rprop import RpropState, rprop
from bpkit.optim.scg import SCGState, scg


def _sgd(learning_rate: float = 0.1, momentum: float = 0.0, nesterov: bool = False):
    # A concrete 0 means plain GD (no trace state); a traced (vmapped) momentum keeps
    # the trace, which with momentum 0 computes v = g: the same step.
    plain = _validate.is_concrete(momentum) and not momentum
    return optax.sgd(learning_rate, momentum=None if plain else momentum, nesterov=nesterov)


def _lbfgs(c1: float = 1e-4, c2: float = 0.9, memory_size: int = 10):
    # optax's L-BFGS with its own default search (zoom, 20 steps, first trial 1, c1 1e-4, c2 0.9),
    # the Wolfe constants made data so a sweep can tune them as it tunes CG's.
    return optax.lbfgs(memory_size=memory_size, linesearch=zoom(c1, c2))


def _adam(learning_rate: float = 1e-3, **kw: Any):
    return optax.adam(learning_rate, **kw)


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": _sgd,
    "rprop": rprop,
    "adam": _adam,
    "lbfgs": _lbfgs,
    "cg": nonlinear_cg,
    "scg": scg,
    "quickprop": quickprop,
}
# The hyperparameters each optimizer takes from a config's [optimizer] table (bpkit's own
# optimizers declare theirs beside their code; bpkit.spec declares each key's type and role).
HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    "sgd": ("learning_rate", "momentum"),
    "rprop": _rprop.HYPERPARAMETERS,
    "adam": ("learning_rate",),
    "lbfgs": ("c1", "c2"),
    "cg": _cg.HYPERPARAMETERS,
    "scg": _scg.HYPERPARAMETERS,
    "quickprop": _quickprop.HYPERPARAMETERS,
}


class Recipe(NamedTuple):
    """An optimizer without its data: its name and the hyperparameters that are part of the compiled
    program (hashable).  :meth:`build` adds the rest, which may be traced (vmapped, tuned without a
    recompile), as ``optax.inject_hyperparams`` takes its numeric hyperparameters as data.

    Example:
        >>> Recipe("cg", (("beta", "fr"),)).build({"c2": 0.1})   # doctest: +SKIP
    """

    name: str
    static: tuple[tuple[str, Any], ...] = ()

    def build(self, data: dict[str, Any] | None = None) -> optax.GradientTransformationExtraArgs:
        """The transform with these static hyperparameters and ``data`` (concrete or traced)."""
        if self.name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.name!r}; valid: {', '.join(OPTIMIZERS)}")
        try:
            return optax.with_extra_args_support(OPTIMIZERS[self.name](**dict(self.static), **(data or {})))
        except TypeError as e:
            raise ValueError(f"bad hyperparameters for optimizer {self.name!r}: {e}") from None


@dataclasses.dataclass(frozen=True, eq=False)
class _ByValue:
    """A transform's ``init`` or ``update`` that compares and hashes by its optimizer's name and
    hyperparameters, so that ``jax.jit`` (which hashes static arguments) sees two equal
    optimizers as one."""

    fn: Callable = dataclasses.field(repr=False)
    key: tuple

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByValue) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


def make(name: str, **hyper: Any) -> optax.GradientTransformationExtraArgs:
    """An optimizer by name with its hyperparameters, e.g. ``make("cg", beta="fr")``:
    ``Recipe(name).build(hyper)``.

    With concrete hyperparameters the result compares and hashes by value: two
    ``make("sgd", learning_rate=0.5)`` are equal, and :func:`recipe` gives back the name and
    hyperparameters, so ``bpkit.training.train`` passes its numeric ones as data and compiles once
    for every learning rate.  With traced ones (inside ``jit`` or ``vmap``) it is the plain transform.

    Example:
        >>> make("sgd", learning_rate=0.5) == make("sgd", learning_rate=0.5)
        True
    """
    tx = Recipe(name).build(hyper)
    key = (name, tuple(sorted(hyper.items())))
    try:
        hash(key)
    except TypeError:  # traced values, or objects without a value hash: as built
        return tx
    return optax.GradientTransformationExtraArgs(_ByValue(tx.init, ("init", *key)),
                                                 _ByValue(tx.update, ("update", *key)))


def recipe(tx: Any) -> tuple[str, dict[str, Any]] | None:
    """``(name, hyperparameters)`` of an optimizer :func:`make` built, else None."""
    init = getattr(tx, "init", None)
    if isinstance(init, _ByValue):
        _, name, hyper = init.key
        return name, dict(hyper)
    return None


__all__ = [
    "BETA_NAMES", "BETAS", "Evaluations", "HYPERPARAMETERS", "NonlinearCGState", "OPTIMIZERS", "QuickpropState",
    "RPROP_VARIANTS", "Recipe", "RpropState", "SCGState", "beta_dy", "beta_fr", "beta_hs", "beta_pr", "beta_pr_plus",
    "contract", "make", "nonlinear_cg", "quickprop", "recipe", "rprop", "scale_by_line_newton", "scale_by_nonlinear_cg",
    "scg", "zoom",
]
