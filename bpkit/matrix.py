"""The check matrix behind ``bpkit check``.

Every activation x every loss x depths 1-4 x float32/float64 goes through
:func:`bpkit.check_gradient` (hand-written backprop vs ``jax.grad`` vs finite
differences); the ablations run as *expected failures* (they are not gradients),
except where the substitute equals ``f'`` (a linear layer) or no derivative is
used at all (a cross-entropy output with no hidden layer), where they must
pass; the Flax model's ``jax.grad`` is checked against bpkit's hand-written
rules; and each activation's derivative is checked on a dense grid.

A case's expectation is computed, not listed: an ablated rule is expected to
be a gradient exactly when its substitute equals ``f'(z)`` at every
pre-activation ``z`` of the checked batch, in every layer whose derivative the
rule uses (hard_sigmoid is linear with slope 1/6 = f'(0) inside (-3, 3), so
there the constant-derivative ablation *is* the gradient).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from bpkit import activations as acts
from bpkit import gradcheck
from bpkit import losses as losses_
from bpkit.gradients import GRADIENT_RULES, backprop, loss_value
from bpkit.network import MLP

# None: output = hidden.  The atanh error sits on a sigmoid with 0/1 targets, where |y - a| < 1 as it is meant to be.
LOSS_OUTPUTS = {"mse": None, "bce": "sigmoid", "softmax_ce": "softmax", "atanh": "sigmoid"}
DTYPES = ("float32", "float64")
DEPTHS = (1, 2, 3, 4)
ABLATIONS = ("no_derivative", "constant_derivative")


@dataclasses.dataclass(frozen=True)
class Case:
    """One gradient check: a network, a loss, a dtype and a rule."""

    net: MLP
    loss: str
    dtype: str
    rule: str = "exact"
    flax: bool = False

    @property
    def label(self) -> str:
        return f"{self.net} {self.loss} {self.dtype} {self.rule}{' (flax)' if self.flax else ''}"

    def expected_gradient(self, zs: Sequence[jax.Array]) -> bool:
        """Whether this case's rule computes the true gradient at pre-activations ``zs``."""
        if self.rule in GRADIENT_RULES:
            return True
        pairs = list(zip(self.net.activations, zs, strict=True))
        if losses_.get(self.loss).output_activation is not None:
            pairs = pairs[:-1]  # cross-entropy output: the delta uses no f' at all
        return all(_substitute_is_exact(act, self.rule, z) for act, z in pairs)


@dataclasses.dataclass(frozen=True)
class CaseResult:
    case: Case
    expected: bool
    passed: bool
    max_rel_ad: float
    max_rel_fd: float
    report: gradcheck.GradientReport
    vacuous: bool = False  # the true gradient is identically 0: the check proves nothing

    @property
    def as_expected(self) -> bool:
        return self.passed == self.expected and not self.vacuous


MAX_DEPTH = 32  # weight layers: every depth is built and differentiated, so it is bounded before any work

def _substitute_is_exact(act: acts.Activation, rule: str, z: jax.Array) -> bool:
    if not act.elementwise:
        return False
    sub = 1.0 if rule == "no_derivative" else act.deriv_at_zero()
    return bool(np.all(np.asarray(act.deriv(z)) == sub))


def _data(net: MLP, loss: str, dtype: str, key: jax.Array, n: int = 16) -> tuple[jax.Array, jax.Array]:
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (n, net.sizes[0]), dtype)
    k = net.sizes[-1]
    if loss == "softmax_ce":
        y = jax.nn.one_hot(jax.random.randint(ky, (n,), 0, k), k, dtype=dtype)
    elif loss in ("bce", "atanh"):
        y = jax.random.bernoulli(ky, 0.5, (n, k)).astype(dtype)
    else:
        y = jax.random.uniform(ky, (n, k), dtype, -0.9, 0.9)
    return x, y


@functools.cache
def _flat(act: acts.Activation) -> bool:
    """f' == 0 everywhere (the step): an output layer of it has no gradient at all."""
    return not np.any(np.asarray(act.deriv(jnp.asarray(gradcheck.activation_grid(act, n=401)))))


def _net(hidden: str, loss: str, depth: int, shortcuts: bool = False) -> MLP:
    # mse puts the hidden activation at the output too, to check the output delta
    # through it, unless that would make the whole gradient vanish (the step).
    out = LOSS_OUTPUTS[loss] or ("identity" if _flat(acts.get(hidden)) else hidden)
    sizes = (3,) + (4,) * (depth - 1) + (2 if loss == "bce" else 3,)
    return MLP(sizes, hidden=hidden, output=out, shortcuts=shortcuts)


def cases(
    activations: Sequence[str] | None = None,
    losses: Sequence[str] | None = None,
    depths: Sequence[int] = DEPTHS,
    dtypes: Sequence[str] = DTYPES,
    ablations: bool = True,
    flax: bool = True,
    shortcuts: bool = True,
) -> list[Case]:
    """The matrix's cases, without duplicates (a depth-1 cross-entropy net has no hidden activation).

    ``shortcuts``: also every activation and loss through a depth-3 net whose
    layers feed every later layer (in float64 if asked for; Flax's mirror in every dtype).
    """
    activations = list(activations or acts.names(elementwise_only=True))
    losses = list(losses or LOSS_OUTPUTS)
    for name in activations:
        if not acts.get(name).elementwise:
            raise ValueError(f"activation {name!r} is not elementwise; the matrix uses it only as an output")
    for name in losses:
        if name not in LOSS_OUTPUTS:
            raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSS_OUTPUTS)}")
    for d in depths:
        if not (isinstance(d, int) and 1 <= d <= MAX_DEPTH):
            raise ValueError(f"depths must be weight-layer counts in 1..{MAX_DEPTH}, got {d!r}")
    for dt in dtypes:
        if dt not in DTYPES:
            raise ValueError(f"unknown dtype {dt!r}; valid: {', '.join(DTYPES)}")
    out: dict[Case, None] = {}
    for h in activations:
        for loss in losses:
            for depth in depths:
                for dt in dtypes:
                    out[Case(_net(h, loss, depth), loss, dt)] = None
        if ablations:
            for loss in losses:
                for depth in sorted({min(depths), 2}):
                    for rule in ABLATIONS:
                        out[Case(_net(h, loss, depth), loss, "float64", rule)] = None
        if shortcuts:
            for loss in losses:
                dt = "float64" if "float64" in dtypes else dtypes[0]
                out[Case(_net(h, loss, 3, shortcuts=True), loss, dt)] = None
    if flax:
        for loss in losses:
            h = activations[0]
            for dt in dtypes:
                for sc in (False, True) if shortcuts else (False,):
                    out[Case(_net(h, loss, 3, sc), loss, dt, flax=True)] = None
    return list(out)


def run_case(case: Case, seed: int = 0, fuse: bool = False) -> CaseResult:
    """Check one case's hand-written gradient against jax.grad and finite differences.

    ``fuse``: the three in one compiled program (:func:`bpkit.gradcheck.check_gradient`), a third
    of the memory op by op needs over the full matrix, slower from a cold cache (``bpkit check
    --fused``)."""
    net, loss, dtype = case.net, case.loss, jnp.dtype(case.dtype)
    kp, kd = jax.random.split(jax.random.key(seed))
    # Uniform init gives non-zero biases, so no pre-activation sits exactly on a kink.
    params = net.init(kp, scheme="uniform", scale=0.7, dtype=dtype)
    x, y = _data(net, loss, case.dtype, kd)
    kinked = any(a.kinks for a in net.activations)
    # Op by op, shapes repeat across the matrix, so cases reuse each operation's compiled kernel;
    # fused, each case is one program (less memory resident, nothing shared).
    fd: dict[str, Any] = {"fd_order": 2, "fd_step": 1e-6} if kinked else {}
    fd["compile"], fd["fuse"] = False, fuse

    def hand(p, x, y):
        return backprop(net, p, x, y, loss, case.rule)

    if case.flax:
        from bpkit.flax_model import FlaxMLP, from_flax, to_flax

        module, lobj = FlaxMLP(net), losses_.get(loss)

        def loss_fn(v, x, y):
            out, z = cast(tuple, module.apply(v, x, with_logits=True))
            return lobj.value(z, out, y)

        def grad_fn(v, x, y):
            return to_flax(hand(from_flax(v), x, y))

        report = gradcheck.check_gradient(loss_fn, grad_fn, to_flax(params), x, y, **fd)
    else:
        report = gradcheck.check_gradient(
            lambda p, x, y: loss_value(net, p, x, y, loss), hand, params, x, y, **fd
        )
    ad, fdc = report.comparisons
    expected = case.expected_gradient(net.forward(params, x)[1].zs)
    vacuous = all(leaf.scale == 0 for leaf in ad.leaves)
    return CaseResult(case, expected, report.passed, ad.max_rel_error, fdc.max_rel_error, report, vacuous)


def run(all_cases: Iterable[Case], progress: Callable[[int, int], Any] | None = None,
        fuse: bool = False) -> list[CaseResult]:
    all_cases = list(all_cases)
    results = []
    for i, c in enumerate(all_cases):
        results.append(run_case(c, fuse=fuse))
        if progress:
            progress(i + 1, len(all_cases))
    return results


def check_activations(names: Sequence[str] | None = None,
                      dtypes: Sequence[str] = DTYPES) -> list[gradcheck.ActivationReport]:
    return [
        gradcheck.check_activation(n, dt)
        for n in (names or acts.names(elementwise_only=True))
        for dt in dtypes
    ]


def summary_table(results: Sequence[CaseResult]) -> str:
    """One row per (network kind, loss, rule): worst relative errors over depths, per dtype."""
    groups: dict[tuple, list[CaseResult]] = {}
    for r in results:
        c = r.case
        hidden = "/".join(dict.fromkeys(c.net.hidden_names)) or "-"
        key = (hidden, c.net.output, c.loss, c.rule + (" flax" if c.flax else ""))
        groups.setdefault(key, []).append(r)
    cols = ("hidden", "output", "loss", "rule", "cases", "f64 vs grad", "f64 vs fd", "f32 vs grad", "f32 vs fd",
            "expect", "result")
    rows = []
    for (hidden, out, loss, rule), rs in groups.items():
        def worst(dt, attr, rs=rs):
            vals = [getattr(r, attr) for r in rs if r.case.dtype == dt]
            return f"{max(vals):.1e}" if vals else "-"

        expect = {r.expected for r in rs}
        ok = all(r.as_expected for r in rs)
        rows.append((
            hidden, out, loss, rule, str(len(rs)),
            worst("float64", "max_rel_ad"), worst("float64", "max_rel_fd"),
            worst("float32", "max_rel_ad"), worst("float32", "max_rel_fd"),
            "/".join("gradient" if e else "not a gradient" for e in sorted(expect, reverse=True)),
            "ok" if ok else ("VACUOUS" if any(r.vacuous for r in rs) else "UNEXPECTED"),
        ))
    widths = [max(len(r[i]) for r in rows + [cols]) for i in range(len(cols))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*cols), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])
