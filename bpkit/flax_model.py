"""The same network as a Flax (Linen) module, with lossless param conversion.

``FlaxMLP(spec)`` stacks ``nn.Dense`` layers named ``layer_0 .. layer_{L-1}``
with the spec's activations, so ``FlaxMLP(spec).apply(to_flax(p), x)`` equals
``spec.apply(p, x)``, shortcut connections included (each layer's ``Dense``
reads the concatenation ``[x, a_1, ..., a_{l-1}]``, as :meth:`MLP.layer_input`).
Flax's ``kernel`` is bpkit's ``w`` (shape ``(n_in, n_out)``) and ``bias`` is ``b``; the
conversion only renames, so
``from_flax(to_flax(p))`` returns the very same arrays.

Example:
    >>> import jax
    >>> from bpkit import MLP
    >>> from bpkit.flax_model import FlaxMLP, from_flax
    >>> net = MLP((2, 3, 1), hidden="tanh", output="sigmoid")
    >>> variables = FlaxMLP(net).init(jax.random.key(0), jax.numpy.zeros((1, 2)))
    >>> [layer["w"].shape for layer in from_flax(variables)]
    [(2, 3), (3, 1)]
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bpkit.network import MLP, Params


class FlaxMLP(nn.Module):
    """A Linen module computing ``spec.apply``."""

    spec: MLP

    @nn.compact
    def __call__(self, x: jax.Array, with_logits: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Output ``a_L``; with ``with_logits``, ``(a_L, z_L)`` for the cross-entropy losses."""
        z, outs = x, [x]
        for i, (width, act) in enumerate(zip(self.spec.sizes[1:], self.spec.activations, strict=True)):
            # With shortcuts a layer reads the input and every earlier layer's output, side by side.
            u = jnp.concatenate(outs, axis=-1) if self.spec.shortcuts else outs[-1]
            z = self.spec.preactivation(nn.Dense(width, name=f"layer_{i}")(u), i)
            outs.append(act.fn(z))
        return (outs[-1], z) if with_logits else outs[-1]


def to_flax(params: Params) -> dict[str, Any]:
    """bpkit params -> Flax variables ``{"params": {"layer_i": {"kernel", "bias"}}}``."""
    return {
        "params": {
            f"layer_{i}": {"kernel": layer["w"], "bias": layer["b"]} for i, layer in enumerate(params)
        }
    }


def from_flax(variables: dict[str, Any]) -> Params:
    """Flax variables (or their ``"params"`` collection) -> bpkit params."""
    tree = variables.get("params", variables)
    names = [f"layer_{i}" for i in range(len(tree))]
    if sorted(tree) != sorted(names):
        raise ValueError(
            f"Flax params must hold layers {', '.join(names)}, got {', '.join(sorted(tree))}"
        )
    return [{"w": tree[n]["kernel"], "b": tree[n]["bias"]} for n in names]
