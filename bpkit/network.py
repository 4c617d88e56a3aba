"""A multilayer perceptron as a frozen spec with pure ``init``/``apply`` functions.

Layer ``l = 1..L`` computes ``z_l = u_l W_l + b_l`` and ``a_l = f_l(z_l)``,
with ``a_0 = x`` (rows are examples).  Its input ``u_l`` is ``a_{l-1}``, or with
``shortcuts=True`` every earlier layer side by side, ``u_l = [a_0, a_1, ..., a_{l-1}]``
(Lang & Witbrock's two-spirals net: every layer feeds every later layer).
Params are a plain pytree: a list with one ``{"w": W_l, "b": b_l}`` dict per
layer, ``W_l`` of shape ``(fan_in_l, n_l)``: ``fan_in_l = n_{l-1}``, or
``n_0 + ... + n_{l-1}`` with shortcuts (rows in the order of ``u_l``).

The spec is hashable, so it can be a static argument of ``jax.jit``: it fixes
the compiled program (sizes, activations).  Everything numeric (params, init
scale) is data.

Example:
    >>> import jax
    >>> from bpkit import MLP
    >>> net = MLP((2, 2, 1), hidden="tanh", output="sigmoid")
    >>> params = net.init(jax.random.key(0))
    >>> net.apply(params, jax.numpy.zeros((4, 2))).shape
    (4, 1)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp

from bpkit import _validate
from bpkit import activations as acts

Array = jax.Array
Params = list[dict[str, Array]]

_init = jax.nn.initializers
INIT_SCHEMES: dict[str, str] = {
    "lecun_normal": "weights ~ N(0, 1/fan_in) (truncated), biases 0; LeCun 1998",
    "glorot_uniform": "weights ~ U(-r, r), r = sqrt(6/(fan_in+fan_out)), biases 0",
    "he_normal": "weights ~ N(0, 2/fan_in) (truncated), biases 0; for ReLU",
    "uniform": "weights and biases ~ U(-scale, scale); classic backprop",
}
_VARIANCE_INIT = {
    "lecun_normal": _init.lecun_normal(),
    "glorot_uniform": _init.glorot_uniform(),
    "he_normal": _init.he_normal(),
}


class Cache(NamedTuple):
    """What the forward pass keeps for backprop.

    ``zs[l]`` is layer ``l+1``'s pre-activation, ``activations[0]`` the input
    and ``activations[l+1]`` layer ``l+1``'s output.
    """

    zs: tuple[Array, ...]
    activations: tuple[Array, ...]


@dataclasses.dataclass(frozen=True)
class MLP:
    """Spec of a fully connected network.

    Args:
        sizes: layer widths, inputs first, e.g. ``(2, 2, 1)`` for XOR's 2-2-1.
        hidden: one activation (a name, or an :class:`~bpkit.activations.Activation` such as
            :func:`~bpkit.activations.switched`) for all hidden layers, or one per hidden layer.
        output: the output layer's activation.
        shortcuts: every layer takes the input and every earlier layer's output,
            not only the layer below (see the module docstring).
        sum_limit: every pre-activation is clipped to ``[-sum_limit, sum_limit]``, as
            FANN's ``fann_run`` clips each neuron's sum (at ``150/steepness`` on
            ``steepness * z``: ``|z| <= 600`` for the sigmoids at FANN's default
            steepness 0.5). The clip's derivative is 0 beyond the limit; FANN's
            backprop ignores the clip, and so does the ``fann_clipped`` rule. None: no clip.
        steepness: each layer computes ``a = f(steepness * (W u + b))``: one number for
            every layer or one per weight layer (output last).  FANN's steepness ``s``
            on its sigmoid and symmetric sigmoid is ``2 s`` here (FANN's default 0.5 is
            1), on a tanh or linear layer ``s``.  The sum clip applies after it.
    """

    sizes: tuple[int, ...]
    hidden: str | tuple[str | acts.Activation, ...] = "sigmoid"
    output: str = "sigmoid"
    shortcuts: bool = False
    sum_limit: float | None = None
    steepness: float | tuple[float, ...] = 1.0

    def __post_init__(self):
        sizes = tuple(self.sizes) if isinstance(self.sizes, Sequence) else None
        if (
            sizes is None
            or len(sizes) < 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes)
        ):
            raise ValueError(
                f"sizes must be at least two positive integers (inputs, ..., outputs), got {self.sizes!r}"
            )
        n_hidden = len(sizes) - 2
        h = self.hidden
        hidden: tuple[str | acts.Activation, ...] = (h,) * n_hidden if isinstance(h, (str, acts.Activation)) \
            else tuple(h)
        if len(hidden) != n_hidden:
            raise ValueError(
                f"hidden names {len(hidden)} activation(s) but sizes {sizes} has "
                f"{n_hidden} hidden layer(s); give one name or one per hidden layer"
            )
        for width, name in zip(sizes[1:], hidden + (self.output,), strict=True):
            act = acts.get(name)  # raises on an unknown name, listing the valid ones
            if not act.elementwise and width == 1:
                raise ValueError(
                    f"a {act.name} layer of 1 unit always outputs 1 and cannot learn; give it 2 or more "
                    f"units, or use an elementwise activation (sigmoid for a single output)"
                )
        if not isinstance(self.shortcuts, bool):
            raise ValueError(f"shortcuts must be true or false, got {self.shortcuts!r}")
        limit = self.sum_limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0):
            raise ValueError(f"sum_limit must be a positive number or None, got {limit!r}")
        steep = self.steepness
        steep = (steep,) * (len(sizes) - 1) if isinstance(steep, (int, float)) else tuple(steep)
        if len(steep) != len(sizes) - 1 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf for v in steep):
            raise ValueError(f"steepness must be one positive number or one per weight layer ({len(sizes) - 1}), "
                             f"got {self.steepness!r}")
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "hidden", hidden)
        object.__setattr__(self, "steepness", tuple(float(v) for v in steep))

    # -- structure ---------------------------------------------------------------

    @property
    def gains(self) -> tuple[float, ...]:
        """Each weight layer's steepness (``steepness`` as one number per layer)."""
        return cast(tuple[float, ...], self.steepness)

    @property
    def num_layers(self) -> int:
        """Number of weight layers L."""
        return len(self.sizes) - 1

    @property
    def activations(self) -> tuple[acts.Activation, ...]:
        """The activation of each weight layer, output last."""
        return tuple(acts.get(n) for n in (*self.hidden, self.output))

    @property
    def hidden_names(self) -> tuple[str, ...]:
        """Each hidden layer's activation name, as given (an :class:`~bpkit.activations.Activation` by its name)."""
        return tuple(h if isinstance(h, str) else h.name for h in self.hidden)

    @property
    def fan_ins(self) -> tuple[int, ...]:
        """Rows of each ``W_l``: ``n_{l-1}``, or ``n_0 + ... + n_{l-1}`` with shortcuts."""
        if self.shortcuts:
            return tuple(sum(self.sizes[:l]) for l in range(1, len(self.sizes)))
        return self.sizes[:-1]

    @property
    def num_params(self) -> int:
        return sum((m + 1) * n for m, n in zip(self.fan_ins, self.sizes[1:], strict=True))

    def layer_input(self, activations: Sequence[Array], l: int) -> Array:
        """``u_{l+1}``, the input of weight layer ``l`` (0-based), from ``a_0 .. a_l``."""
        if self.shortcuts and l > 0:
            return jnp.concatenate(tuple(activations[: l + 1]), axis=1)
        return activations[l]

    def __str__(self) -> str:
        names = "/".join(dict.fromkeys(self.hidden_names)) or "-"
        return f"{'-'.join(map(str, self.sizes))}{' shortcut' if self.shortcuts else ''} {names}->{self.output}"

    # -- pure functions ------------------------------------------------------------

    def init(
        self,
        key: Array,
        scheme: str = "lecun_normal",
        scale: float | Array = 1.0,
        dtype: Any = jnp.float32,
        bias: float | Array = 0.0,
    ) -> Params:
        """Fresh params.  ``scale`` multiplies the weights (for ``"uniform"``
        it is the half-width ``r`` of ``U(-r, r)``); it is data, so it can be vmapped.
        ``bias`` is added to every bias (a positive one starts ReLU units alive on
        non-negative inputs); it is data too.
        """
        if scheme not in INIT_SCHEMES:
            raise ValueError(f"unknown init scheme {scheme!r}; valid: {', '.join(INIT_SCHEMES)}")
        params = []
        shapes = zip(self.fan_ins, self.sizes[1:], strict=True)
        for k, (m, n) in zip(jax.random.split(key, self.num_layers), shapes, strict=True):
            kw, kb = jax.random.split(k)
            if scheme == "uniform":
                w = jax.random.uniform(kw, (m, n), dtype, -1.0, 1.0) * scale
                b = jax.random.uniform(kb, (n,), dtype, -1.0, 1.0) * scale
            else:
                w = _VARIANCE_INIT[scheme](kw, (m, n), dtype) * scale
                b = jnp.zeros((n,), dtype)
            params.append({"w": w.astype(dtype), "b": (b + bias).astype(dtype)})
        return params

    def forward(self, params: Params, x: Array) -> tuple[Array, Cache]:
        """Output and the cache of pre-activations and activations per layer.

        ``x`` is cast to the params' dtype.
        """
        self.check_params(params)
        _validate.require_matrix("input x", x, self.sizes[0], "inputs")
        a = jnp.asarray(x, params[0]["w"].dtype)
        zs, outs = [], [a]
        for l, (layer, act) in enumerate(zip(params, self.activations, strict=True)):
            z = self.preactivation(self.layer_input(outs, l) @ layer["w"] + layer["b"][None, :], l)
            a = act.fn(z)
            zs.append(z)
            outs.append(a)
        return a, Cache(tuple(zs), tuple(outs))

    def preactivation(self, s: Array, l: int) -> Array:
        """Layer ``l``'s ``z`` from its sum ``s = W u + b``: ``steepness * s``, clipped to ``[-sum_limit,
        sum_limit]`` (each only where set)."""
        k = self.gains[l]
        z = s if k == 1.0 else s * jnp.asarray(k, s.dtype)
        return z if self.sum_limit is None else jnp.clip(z, -self.sum_limit, self.sum_limit)

    def apply(self, params: Params, x: Array) -> Array:
        """The network's output ``a_L`` for inputs ``x`` of shape ``(N, sizes[0])``."""
        return self.forward(params, x)[0]

    # -- checks ------------------------------------------------------------------------

    def check_params(self, params: Params) -> None:
        """Raise a one-line ValueError unless ``params`` fits this spec."""
        if not isinstance(params, (list, tuple)) or len(params) != self.num_layers:
            got = len(params) if isinstance(params, (list, tuple)) else type(params).__name__
            raise ValueError(
                f"params must be a list of {self.num_layers} layer dicts for sizes {self.sizes}, got {got}"
            )
        for i, (layer, m, n) in enumerate(zip(params, self.fan_ins, self.sizes[1:], strict=True)):
            if not isinstance(layer, dict) or set(layer) != {"w", "b"}:
                raise ValueError(f"params[{i}] must be a dict with keys 'w' and 'b'")
            for leaf, want in (("w", (m, n)), ("b", (n,))):
                shape = tuple(jnp.shape(layer[leaf]))
                if shape != want:
                    raise ValueError(
                        f"params[{i}]['{leaf}'] has shape {shape}, the spec {self.sizes} needs {want}"
                    )
