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
from typing import Any, Callable

import optax

from bpkit import _validate
from bpkit.optim import contract
from bpkit.optim.cg import (
    BETA_NAMES, BETAS, NonlinearCGState, beta_dy, beta_fr, beta_hs, beta_pr, beta_pr_plus, nonlinear_cg, scale_by_line_newton,
    scale_by_nonlinear_cg, zoom,
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


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": _sgd,
    "rprop": rprop,
    "adam": lambda learning_rate=1e-3, **kw: optax.adam(learning_rate, **kw),
    "lbfgs": _lbfgs,
    "cg": nonlinear_cg,
    "scg": scg,
    "quickprop": quickprop,
}
# The hyperparameters each optimizer takes from a config's [optimizer] table.
HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    "sgd": ("learning_rate", "momentum"),
    "rprop": ("learning_rate", "variant"),
    "adam": ("learning_rate",),
    "lbfgs": ("c1", "c2"),
    "cg": ("beta", "powell_beale", "c1", "c2"),
    "scg": ("hvp", "lambda_init", "sigma"),
    "quickprop": ("learning_rate", "mu"),
}
LINE_SEARCH = {"cg", "lbfgs", "scg"}  # batch methods: they evaluate the loss themselves


# Continuous hyperparameters (CG's and L-BFGS's Wolfe constants c1, c2; SCG's lambda_init, sigma): data of the
# compiled program, not part of it. ``train`` passes
# them as arguments, so another learning rate reuses the program, and sweeps vmap them.
DATA_HYPERPARAMETERS = ("learning_rate", "momentum", "mu", "c1", "c2", "lambda_init", "sigma")


@dataclasses.dataclass(frozen=True, eq=False)
class _ByValue:
    """A transform's ``init`` or ``update`` that compares and hashes by (name, hyperparameters).

    ``jax.jit`` hashes static arguments; an optax transform is a NamedTuple of two
    functions, hashed by identity, so an equal optimizer built again would compile
    again.  Wrapped in this, two ``make("sgd", learning_rate=0.5)`` are equal.
    """

    fn: Callable = dataclasses.field(repr=False)
    key: tuple

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByValue) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


def make(name: str, **hyper: Any) -> optax.GradientTransformationExtraArgs:
    """An optimizer by name with its hyperparameters, e.g. ``make("cg", beta="fr")``.

    With concrete hyperparameters the result compares and hashes by value: two
    ``make("sgd", learning_rate=0.5)`` are equal, so ``train`` compiles once for
    both, and :func:`spec` gives back the name and hyperparameters.  With traced
    ones (inside ``jit`` or ``vmap``) it is the plain transform.

    Example:
        >>> make("sgd", learning_rate=0.5) == make("sgd", learning_rate=0.5)
        True
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    try:
        tx = optax.with_extra_args_support(OPTIMIZERS[name](**hyper))
    except TypeError as e:
        raise ValueError(f"bad hyperparameters for optimizer {name!r}: {e}") from None
    key = (name, tuple(sorted(hyper.items())))
    try:
        hash(key)
    except TypeError:  # traced values, or objects without a value hash: as built
        return tx
    return optax.GradientTransformationExtraArgs(_ByValue(tx.init, ("init", *key)), _ByValue(tx.update, ("update", *key)))


def spec(tx: Any) -> tuple[str, dict[str, Any]] | None:
    """``(name, hyperparameters)`` of an optimizer :func:`make` built, else None."""
    init = getattr(tx, "init", None)
    if isinstance(init, _ByValue):
        _, name, hyper = init.key
        return name, dict(hyper)
    return None


__all__ = [
    "BETA_NAMES", "BETAS", "DATA_HYPERPARAMETERS", "Evaluations", "HYPERPARAMETERS", "LINE_SEARCH", "NonlinearCGState", "OPTIMIZERS", "QuickpropState",
    "RPROP_VARIANTS", "RpropState", "SCGState", "beta_dy", "beta_fr", "beta_hs", "beta_pr", "beta_pr_plus",
    "contract", "make", "nonlinear_cg", "spec", "quickprop", "rprop", "scale_by_line_newton", "scale_by_nonlinear_cg",
    "scg", "zoom",
]
