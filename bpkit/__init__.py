"""bpkit: backpropagation written by hand, checked against autodiff, measured.

The public API at a glance (data flows top to bottom)::

    activations, losses              each with its hand-written derivative / output delta
    MLP                              the network spec: init, forward, apply
    backprop, backward,              hand-written gradients (rules: exact, output_form,
      value_and_backprop             and the ablations no_derivative, constant_derivative)
    autodiff, loss_value             jax.grad of the same loss
    check_gradient, check_activation the checker: which leaf, which entry is wrong
    optim                            optax transforms: CG, SCG, quickprop, RPROP; the loop contract
    train, StopRules                 the one compiled training loop (bpkit.loop) and its stop rules
    analysis                         per-example gradients, Hessian eigenvalues, angles, layer norms
    stats                            success intervals, expected cost with restarts, bootstrap

Above these: ``bpkit.lanes`` runs many runs side by side; ``bpkit.spec`` declares every config
field and ``bpkit.config`` reads TOML files into runs; ``bpkit.experiment``, ``bpkit.plan``,
``bpkit.engine`` and ``bpkit.sweep`` run grids into ``bpkit.store``; ``bpkit.compare`` and
``bpkit.report`` turn stored runs into tuned answers with intervals.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, for type checkers; at run time they are imported when first used
    from bpkit import activations, analysis, losses, optim, stats
    from bpkit.gradcheck import check_activation, check_gradient, finite_difference_grad
    from bpkit.gradients import RULES, autodiff, backprop, backward, loss_value, value_and_backprop
    from bpkit.network import MLP
    from bpkit.stopping import StopRules
    from bpkit.training import train

# Imported on first use (PEP 562): ``import bpkit.cli`` stays light, so the command line installs its
# Ctrl-C handling (bpkit.interrupt) before JAX loads, and ``bpkit --help`` answers at once.
_MODULES = ("activations", "analysis", "losses", "optim", "stats")
_NAMES = {"check_activation": "gradcheck", "check_gradient": "gradcheck", "finite_difference_grad": "gradcheck",
          "RULES": "gradients", "autodiff": "gradients", "backprop": "gradients", "backward": "gradients",
          "loss_value": "gradients", "value_and_backprop": "gradients", "MLP": "network",
          "StopRules": "stopping", "train": "training"}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"bpkit.{name}")
    if name in _NAMES:
        value = getattr(importlib.import_module(f"bpkit.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bpkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__version__ = "0.1.0"

__all__ = [
    "MLP",
    "RULES",
    "StopRules",
    "activations",
    "analysis",
    "autodiff",
    "backprop",
    "backward",
    "check_activation",
    "check_gradient",
    "finite_difference_grad",
    "loss_value",
    "losses",
    "optim",
    "stats",
    "train",
    "value_and_backprop",
]
