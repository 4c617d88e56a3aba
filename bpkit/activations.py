"""Activation functions, each beside its hand-written derivative.

Every activation is one :class:`Activation` object holding

* ``fn(z)``: the forward map ``a = f(z)``;
* ``deriv(z)``: the exact derivative ``f'(z)``, written by hand (no autodiff);
* ``output_deriv(a)`` (optional): the same derivative written in terms of the
  output ``a = f(z)``, as classic backprop code does (``s(1 - s)``, ``1 - a^2``).

Backprop multiplies the incoming gradient ``g = dC/da`` by the local derivative
(:meth:`Activation.vjp`), so it never branches on an activation's name.

Conventions at kinks follow ``jax.grad`` so that hand-written and automatic
gradients agree entry for entry: ``relu'(0) = 0``, ``leaky_relu'(0) = 1``,
``hard_tanh'(+-1) = 1``, ``relu6'(0) = relu6'(6) = 0``, ``step'(z) = 0``.

Output-form derivatives are algebraically equal to the exact ones but lose
precision in saturation: for the logistic sigmoid at ``z = 40`` in float32,
``a = 1`` exactly, so ``a(1 - a) = 0`` while ``s(z) s(-z) ~ 4e-18``.  The exact
forms here are written to stay accurate there (``sigmoid(z) * sigmoid(-z)``,
``sech^2`` from ``exp(-2|z|)``).  ``jax.grad`` of ``jax.nn.sigmoid`` and
``jnp.tanh`` itself uses the output form, so in deep saturation it returns 0
where the exact derivative is a tiny positive number; gradient checks compare
with an absolute floor for that reason.

Example:
    >>> from bpkit import activations
    >>> act = activations.get("sigmoid")
    >>> float(act.deriv(0.0))
    0.25
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

Array = jax.Array
Elementwise = Callable[[Array], Array]

LECUN_A = 1.7159  # LeCun et al. 1998: f(x) = 1.7159 tanh(2x/3), so f(+-1) = +-1.
LECUN_B = 2.0 / 3.0
LEAKY_SLOPE = 0.01
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
GELU_C = math.sqrt(2.0 / math.pi)
GELU_K = 0.044715


@dataclasses.dataclass(frozen=True)
class Activation:
    """An elementwise activation ``a = f(z)`` and its hand-written derivative.

    Attributes:
        name: registry name.
        fn: forward map ``z -> f(z)``.
        deriv: exact derivative ``z -> f'(z)``.
        output_deriv: ``a -> f'(f^{-1}(a))`` where a closed form exists, else None.
        kinks: points where ``f`` is not differentiable (the derivative there
            follows ``jax.grad``'s convention).
        description: one line for tables and ``--help``.
    """

    name: str
    fn: Elementwise = dataclasses.field(repr=False)
    deriv: Elementwise = dataclasses.field(repr=False)
    output_deriv: Elementwise | None = dataclasses.field(default=None, repr=False)
    kinks: tuple[float, ...] = ()
    description: str = ""

    elementwise = True

    def __call__(self, z: Array) -> Array:
        return self.fn(z)

    def vjp(self, z: Array, a: Array, g: Array) -> Array:
        """Pull ``g = dC/da`` back through the activation: ``dC/dz = g * f'(z)``."""
        del a
        return g * self.deriv(z)

    def vjp_from_output(self, a: Array, g: Array) -> Array:
        """Same as :meth:`vjp`, with ``f'`` computed from the output ``a``."""
        if self.output_deriv is None:
            valid = ", ".join(n for n, act in REGISTRY.items() if act.has_output_form)
            raise ValueError(
                f"activation {self.name!r} has no output-form derivative; "
                f"these do: {valid}"
            )
        return g * self.output_deriv(a)

    @property
    def has_output_form(self) -> bool:
        return self.output_deriv is not None

    def deriv_at_zero(self) -> float:
        """``f'(0)``: the constant the 'constant derivative' ablation uses.

        Evaluated at trace time even inside ``jit``/``scan`` (a Python float, not a tracer).
        """
        with jax.ensure_compile_time_eval():
            return float(self.deriv(jnp.zeros(())))


@dataclasses.dataclass(frozen=True)
class Softmax(Activation):
    """Softmax over the last axis: ``a_k = exp(z_k) / sum_j exp(z_j)``.

    Not elementwise: its Jacobian is ``diag(a) - a a^T``, so the pull-back is
    ``dC/dz = a * (g - sum_k g_k a_k)``.  It is meant as an output layer for
    softmax cross-entropy, where the delta simplifies to ``a - y``.
    """

    elementwise = False

    def vjp(self, z: Array | None, a: Array, g: Array) -> Array:
        del z
        return a * (g - jnp.sum(g * a, axis=-1, keepdims=True))

    def vjp_from_output(self, a: Array, g: Array) -> Array:
        return self.vjp(None, a, g)

    @property
    def has_output_form(self) -> bool:
        return True

    def deriv_at_zero(self) -> float:
        raise ValueError(
            "activation 'softmax' is not elementwise, so the constant-derivative "
            "ablation has no single f'(0); use it with elementwise activations"
        )


# ----------------------------------------------------------------------------
# Stable building blocks.


def _sigmoid(z):
    return jax.nn.sigmoid(z)


def _sech2(z):
    """sech(z)^2 = 4 e^{-2|z|} / (1 + e^{-2|z|})^2, accurate in saturation."""
    e = jnp.exp(-2.0 * jnp.abs(z))
    return 4.0 * e / (1.0 + e) ** 2


def _normal_pdf(z):
    return jnp.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _normal_cdf(z):
    return 0.5 * (1.0 + erf(z / math.sqrt(2.0)))


def _gelu_tanh_deriv(z):
    u = GELU_C * (z + GELU_K * z**3)
    # 0.5 (1 + tanh u) = sigmoid(2u): no cancellation when tanh u -> -1.
    return _sigmoid(2.0 * u) + 0.5 * z * _sech2(u) * GELU_C * (1.0 + 3.0 * GELU_K * z * z)


def _mish_deriv(z):
    sp = jax.nn.softplus(z)
    return jnp.tanh(sp) + z * _sech2(sp) * _sigmoid(z)


def _step(z):
    return jnp.where(z > 0, jnp.ones_like(z), jnp.zeros_like(z))


def _zeros(z):
    return jnp.zeros_like(z)


def _ones(z):
    return jnp.ones_like(z)


def _where(cond, z, yes, no):
    """Derivative value ``yes`` where ``cond`` holds, ``no`` elsewhere, in z's dtype."""
    return jnp.where(cond, jnp.asarray(yes, z.dtype), jnp.asarray(no, z.dtype))


def _arr(z):
    z = jnp.asarray(z)
    return z if jnp.issubdtype(z.dtype, jnp.floating) else z.astype(jnp.float32)


def _make(name, fn, deriv, output_deriv=None, kinks=(), description=""):
    def wrap(f):
        return None if f is None else (lambda x: f(_arr(x)))

    return Activation(name, wrap(fn), wrap(deriv), wrap(output_deriv), kinks, description)


_ACTIVATIONS: tuple[Activation, ...] = (
    _make("identity", lambda z: z, _ones, _ones, description="linear, f(z) = z"),
    _make("step", _step, _zeros, _zeros, kinks=(0.0,),
          description="threshold 1[z > 0]; derivative 0, so nothing learns through it"),
    _make("sigmoid", _sigmoid, lambda z: _sigmoid(z) * _sigmoid(-z),
          lambda a: a * (1.0 - a), description="logistic 1/(1+e^-z), f' = s(1-s) <= 1/4"),
    _make("sigmoid_symmetric", lambda z: jnp.tanh(0.5 * z), lambda z: 0.5 * _sech2(0.5 * z),
          lambda a: 0.5 * (1.0 - a * a), description="FANN's 2s(z)-1 = tanh(z/2)"),
    _make("sigmoid_centered", lambda z: _sigmoid(z) - 0.5, lambda z: _sigmoid(z) * _sigmoid(-z),
          lambda a: 0.25 - a * a, description="s(z) - 1/2 in (-1/2, 1/2), quickprop1.c's SIGMOID unit"),
    _make("tanh", jnp.tanh, _sech2, lambda a: 1.0 - a * a,
          description="hyperbolic tangent, f' = 1 - tanh^2 <= 1"),
    _make("scaled_tanh", lambda z: LECUN_A * jnp.tanh(LECUN_B * z),
          lambda z: LECUN_A * LECUN_B * _sech2(LECUN_B * z),
          lambda a: LECUN_B / LECUN_A * (LECUN_A**2 - a * a),
          description="LeCun's 1.7159 tanh(2z/3): f(+-1) = +-1"),
    _make("hard_tanh", jax.nn.hard_tanh, lambda z: _where(jnp.abs(z) <= 1, z, 1, 0),
          kinks=(-1.0, 1.0), description="clip(z, -1, 1)"),
    _make("relu", jax.nn.relu, lambda z: _where(z > 0, z, 1, 0),
          lambda a: _where(a > 0, a, 1, 0), kinks=(0.0,), description="max(0, z), relu'(0) = 0"),
    _make("leaky_relu", jax.nn.leaky_relu, lambda z: _where(z >= 0, z, 1, LEAKY_SLOPE),
          lambda a: _where(a >= 0, a, 1, LEAKY_SLOPE), kinks=(0.0,),
          description=f"max(z, {LEAKY_SLOPE} z)"),
    _make("relu6", jax.nn.relu6, lambda z: _where((z > 0) & (z < 6), z, 1, 0),
          kinks=(0.0, 6.0), description="min(max(0, z), 6)"),
    # Written on z + 3, as jax.nn.hard_sigmoid is, so the kink rounds the same way.
    _make("hard_sigmoid", jax.nn.hard_sigmoid, lambda z: _where((z + 3 > 0) & (z + 3 < 6), z, 1 / 6, 0),
          kinks=(-3.0, 3.0), description="relu6(z + 3) / 6"),
    _make("elu", jax.nn.elu, lambda z: jnp.where(z > 0, 1.0, jnp.exp(jnp.minimum(z, 0.0))),
          lambda a: jnp.where(a > 0, 1.0, a + 1.0), description="z if z > 0 else e^z - 1"),
    _make("selu", jax.nn.selu,
          lambda z: SELU_SCALE * jnp.where(z > 0, 1.0, SELU_ALPHA * jnp.exp(jnp.minimum(z, 0.0))),
          lambda a: jnp.where(a > 0, SELU_SCALE, a + SELU_SCALE * SELU_ALPHA), kinks=(0.0,),
          description="self-normalising scaled ELU (slope 1.758 left of 0, 1.051 right)"),
    _make("softplus", jax.nn.softplus, _sigmoid, lambda a: -jnp.expm1(-a),
          description="log(1 + e^z), f' = sigmoid"),
    _make("softsign", jax.nn.soft_sign, lambda z: 1.0 / (1.0 + jnp.abs(z)) ** 2,
          lambda a: (1.0 - jnp.abs(a)) ** 2, description="z / (1 + |z|)"),
    _make("gelu", lambda z: jax.nn.gelu(z, approximate=False),
          lambda z: _normal_cdf(z) + z * _normal_pdf(z), description="z Phi(z), exact"),
    _make("gelu_tanh", lambda z: jax.nn.gelu(z, approximate=True), _gelu_tanh_deriv,
          description="GELU, tanh approximation"),
    _make("silu", jax.nn.silu, lambda z: _sigmoid(z) * (1.0 + z * _sigmoid(-z)),
          description="swish, z sigmoid(z)"),
    _make("mish", jax.nn.mish, _mish_deriv, description="z tanh(softplus(z))"),
    _make("gaussian", lambda z: jnp.exp(-z * z), lambda z: -2.0 * z * jnp.exp(-z * z),
          description="e^{-z^2} (radial)"),
    _make("sine", jnp.sin, jnp.cos, description="sin(z)"),
)


def _no_elementwise_deriv(z):
    raise ValueError("activation 'softmax' has a Jacobian, not an elementwise derivative; use vjp")


SOFTMAX = Softmax(
    "softmax",
    fn=lambda z: jax.nn.softmax(_arr(z), axis=-1),
    deriv=_no_elementwise_deriv,
    description="exp(z_k) / sum_j exp(z_j), over the last axis (output layer)",
)

REGISTRY: dict[str, Activation] = {a.name: a for a in _ACTIVATIONS}
REGISTRY[SOFTMAX.name] = SOFTMAX

# Aliases users reach for; they resolve to the canonical objects above.
ALIASES: dict[str, str] = {
    "linear": "identity",
    "logistic": "sigmoid",
    "threshold": "step",
    "lecun_tanh": "scaled_tanh",
    "swish": "silu",
}


def names(elementwise_only: bool = False) -> tuple[str, ...]:
    """Registered activation names, in registry order."""
    return tuple(n for n, a in REGISTRY.items() if a.elementwise or not elementwise_only)


def get(name: str | Activation) -> Activation:
    """Look up an activation by name (or pass one through).

    Raises:
        ValueError: for an unknown name; the message lists the valid names.
    """
    if isinstance(name, Activation):
        return name
    if not isinstance(name, str):
        raise ValueError(f"activation must be a name string, got {type(name).__name__}")
    key = ALIASES.get(name, name)
    if key not in REGISTRY:
        raise ValueError(
            f"unknown activation {name!r}; valid: {', '.join(REGISTRY)} "
            f"(aliases: {', '.join(ALIASES)})"
        )
    return REGISTRY[key]


def switched(code: Array | int, choices: Sequence[str]) -> Activation:
    """The activation ``choices[code]``, where the int32 ``code`` may be traced: one compiled program serves
    runs whose hidden units differ (a sweep's program takes the code as data, one per run).

    ``fn``, ``deriv`` and ``output_deriv`` each ``jax.lax.switch`` on ``code`` among the choices' own;
    under ``jax.vmap`` with one code per run, every choice is computed and each run's own selected, so a
    run's numbers are those of its own activation.  Its name joins the choices' with "|".

    Example:
        >>> act = switched(1, ("sigmoid", "tanh"))
        >>> float(act(0.5)) == float(get("tanh")(0.5))
        True
    """
    picked = tuple(get(n) for n in choices)
    if not picked or not all(a.elementwise for a in picked):
        raise ValueError(f"switched needs one or more elementwise activations, got {list(choices)!r}")

    def pick(fns: Sequence[Elementwise]) -> Elementwise:
        return lambda z: jax.lax.switch(code, fns, z)

    outs = [a.output_deriv for a in picked]
    return Activation("|".join(a.name for a in picked), pick([a.fn for a in picked]),
                      pick([a.deriv for a in picked]),
                      pick(outs) if all(o is not None for o in outs) else None,  # type: ignore[arg-type]
                      description=f"one of {', '.join(a.name for a in picked)}, chosen by a code")
