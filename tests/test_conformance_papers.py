"""bpkit's optimizers against independent transcriptions of their papers, and as optax citizens.

Each reference lives in tests/ and shares no code with bpkit: Moeller's SCG
(moeller_scg.py), the RPROP family (rprop_reference.py) and nonlinear CG
(below, NumPy).  Trajectories are compared in float64 iteration by iteration.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
import pytest
from jax.flatten_util import ravel_pytree
from references import moeller_scg, rprop_reference

from bpkit import MLP, loss_value, optim
from bpkit.stopping import StopRules
from bpkit.training import train

XOR_X = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = jnp.array([[0.0], [1.0], [1.0], [0.0]])


def xor_problem(seed, hidden="sigmoid", scale=1.0):
    net = MLP((2, 2, 1), hidden=hidden, output="sigmoid")
    w0, unravel = ravel_pytree(net.init(jax.random.key(seed), scheme="uniform", scale=scale, dtype=jnp.float64))
    f = jax.jit(lambda w: loss_value(net, unravel(w), XOR_X, XOR_Y))
    return f, w0


def drive(opt, f, w, iterations):
    """bpkit's transform in a plain loop: fresh loss and gradient each iteration; weights after each."""
    state = opt.init(w)
    step = jax.jit(lambda w, s: _step(opt, f, w, s))
    out = []
    for _ in range(iterations):
        w, state = step(w, state)
        out.append(np.asarray(w))
    return out


def _step(opt, f, w, state):
    v, g = jax.value_and_grad(f)(w)
    u, state = opt.update(g, state, w, value=v, grad=g, value_fn=f)
    return optax.apply_updates(w, u), state


# -- SCG against Moeller's steps 1-9 ------------------------------------------------------


@pytest.mark.parametrize("hvp", ["finite_difference", "exact"])
@pytest.mark.parametrize("seed, scale", [(11, 1.0), (6, 2.0)])  # several rejected steps in a row
def test_scg_follows_moellers_paper_step_by_step(seed, scale, hvp):
    f, w0 = xor_problem(seed, scale=scale)
    E = lambda w: float(f(jnp.asarray(w)))
    dE = lambda w: np.asarray(jax.grad(f)(jnp.asarray(w)))
    exact = lambda w, p: np.asarray(jax.jvp(jax.grad(f), (jnp.asarray(w),), (jnp.asarray(p),))[1])
    iterations = 40
    want, accepted = moeller_scg.scg(E, dE, np.asarray(w0), iterations, hvp=exact if hvp == "exact" else None)
    got = drive(optim.scg(hvp=hvp), f, w0, iterations)
    moved = [bool(np.any(a != b)) for a, b in zip(got, [np.asarray(w0)] + got[:-1], strict=True)]
    assert moved == accepted  # the same accepted and rejected steps, all 40 iterations
    # Several rejected steps in a row inside the compared window: where the old code went astray.
    window = 20 if hvp == "exact" else 8
    assert window - sum(accepted[:window]) > 0, accepted
    # Rounding (different summation orders) grows along the trajectory, faster with the finite
    # difference, which divides it by sigma_k = 5e-5 / |p| (measured: below 1e-9 for 20 exact
    # iterations, 1e-9 for 8 finite-difference ones; 1e-3 by iteration 40 on seed 11).
    for k in range(window):
        gap = np.max(np.abs(got[k] - want[k])) / np.max(np.abs(want[k]))
        assert gap < 1e-8, (k + 1, gap)


def test_scg_restarts_every_n_iterations_as_the_paper_says():
    # A quadratic in 3 unknowns with N = 3: restarts at k = 3, 6, ...; both reach the minimum.
    A = np.diag([1.0, 4.0, 9.0])
    b = np.array([1.0, -2.0, 3.0])
    f = lambda w: 0.5 * w @ jnp.asarray(A) @ w - jnp.asarray(b) @ w
    want, _ = moeller_scg.scg(lambda w: 0.5 * w @ A @ w - b @ w, lambda w: A @ w - b, np.zeros(3), 12)
    got = drive(optim.scg(hvp="finite_difference"), f, jnp.zeros(3), len(want))
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(got[-1], np.linalg.solve(A, b), rtol=1e-6)


# -- the RPROP family against Igel & Huesken's pseudo-code ---------------------------------


@pytest.mark.parametrize("variant", ["rprop+", "rprop-", "irprop+", "irprop-"])
def test_rprop_variants_follow_their_published_pseudo_code(variant):
    f, w0 = xor_problem(1)
    E = lambda w: float(f(jnp.asarray(w)))
    dE = lambda w: np.asarray(jax.grad(f)(jnp.asarray(w)))
    want = rprop_reference.rprop(E, dE, np.asarray(w0), 40, variant)
    got = drive(optim.rprop(0.1, variant=variant), f, w0, 40)
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{variant}, iteration {k + 1}")


def test_the_variants_differ_so_the_tests_can_tell_them_apart():
    f, w0 = xor_problem(1)
    ends = {v: drive(optim.rprop(0.1, variant=v), f, w0, 40)[-1] for v in optim.RPROP_VARIANTS}
    names = list(ends)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.max(np.abs(ends[a] - ends[b])) > 1e-6, (a, b)


def test_optax_rprop_is_irprop_minus_applied_one_iteration_late():
    # optax 0.2.8's scale_by_rprop returns the step it decided at the *previous* call (zero at the
    # first), and zero where the gradient's sign has just flipped: iRprop-'s decisions, one call late.
    f, w0 = xor_problem(2)
    theirs = drive(optax.rprop(0.1), f, w0, 40)
    assert np.array_equal(theirs[0], np.asarray(w0))  # the first update is zero
    opt = optim.rprop(0.1, variant="irprop-")
    state, w, late, replay = opt.init(w0), w0, jnp.zeros_like(w0), []
    for _ in range(40):
        g = jax.grad(f)(w)
        dw, state = opt.update(g, state, w)
        flipped = (state.prev_grad == 0) & (g != 0)  # iRprop- zeroes the gradient where its sign flipped
        w, late = w + jnp.where(flipped, 0.0, late), dw
        replay.append(np.asarray(w))
    np.testing.assert_allclose(np.array(replay), np.array(theirs), rtol=1e-12, atol=1e-14)
    mine = drive(optim.rprop(0.1, variant="irprop-"), f, w0, 40)
    assert np.max(np.abs(mine[-1] - theirs[-1])) > 1e-3  # so it is not iRprop- itself


# -- nonlinear CG: each beta against its textbook formula ------------------------------------

_RNG = np.random.default_rng(0)
_A = _RNG.normal(size=(12, 6))
_B = _RNG.normal(size=12)


def _convex(w):  # sum log cosh(A w - b) + |w|^2 / 20: strictly convex, not quadratic
    return jnp.sum(jnp.log(jnp.cosh(jnp.asarray(_A) @ w - jnp.asarray(_B)))) + 0.05 * w @ w


def _cg_reference(w, iterations, beta, powell_beale):
    """Nonlinear CG with an exact Newton step along each direction, restarts as documented."""
    grad = lambda w: _A.T @ np.tanh(_A @ w - _B) + 0.1 * w
    hess = lambda w: _A.T @ np.diag(1 / np.cosh(_A @ w - _B) ** 2) @ _A + 0.1 * np.eye(len(w))
    formulas = {
        "fr": lambda g, g0, d0: (g @ g) / (g0 @ g0),
        "pr": lambda g, g0, d0: g @ (g - g0) / (g0 @ g0),
        "pr+": lambda g, g0, d0: max(0.0, g @ (g - g0) / (g0 @ g0)),
        "hs": lambda g, g0, d0: g @ (g - g0) / (d0 @ (g - g0)),
        "dy": lambda g, g0, d0: (g @ g) / (d0 @ (g - g0)),
    }
    out, g0, d0, since, beale = [], None, None, 0, 0
    for _ in range(iterations):
        g = grad(w)
        restart = since == 0 or since >= len(w)
        if powell_beale and g0 is not None and abs(g @ g0) >= 0.2 * (g @ g):
            restart, beale = True, beale + (not restart)
        d = -g if restart else -g + formulas[beta](g, g0, d0) * d0
        if g @ d >= 0:
            d, restart = -g, True
        w = w - (g @ d) / (d @ hess(w) @ d) * d
        since = 1 if restart else since + 1
        g0, d0 = g, d
        out.append(w)
    return out, beale


@pytest.mark.parametrize("powell_beale", [False, True])
@pytest.mark.parametrize("beta", list(optim.BETAS))
def test_nonlinear_cg_follows_each_beta_formula(beta, powell_beale):
    w0 = np.zeros(6)
    want, beale = _cg_reference(w0, 20, beta, powell_beale)
    got = drive(optim.nonlinear_cg(beta, powell_beale=powell_beale, linesearch=optim.scale_by_line_newton()),
                _convex, jnp.zeros(6), 20)
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10, err_msg=f"{beta}, iteration {k + 1}")
    if powell_beale:
        assert beale > 0  # Powell-Beale's test triggered restarts the periodic rule would not have made


# -- optax citizens ----------------------------------------------------------------------


def run_opt(init_params, fun, opt, max_iter, tol, **data):
    """optax's documented L-BFGS loop (optax docs, "L-BFGS"), unchanged but for data as extra arguments."""
    value_and_grad_fun = optax.value_and_grad_from_state(fun)

    def step(carry):
        params, state = carry
        value, grad = value_and_grad_fun(params, state=state, **data)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fun, **data)
        params = optax.apply_updates(params, updates)
        return params, state

    def continuing_criterion(carry):
        _, state = carry
        iter_num = otu.tree_get(state, "count")
        grad = otu.tree_get(state, "grad")
        err = otu.tree_l2_norm(grad)
        return (iter_num == 0) | ((iter_num < max_iter) & (err >= tol))

    init_carry = (init_params, opt.init(init_params))
    return jax.lax.while_loop(continuing_criterion, step, init_carry)


BPKIT_OPTIMIZERS = {
    **{f"cg-{b}": (lambda b=b: optim.nonlinear_cg(b)) for b in optim.BETAS},
    "cg-powell-beale": lambda: optim.nonlinear_cg("pr+", powell_beale=True),
    "scg-exact": lambda: optim.scg(),
    "scg-fd": lambda: optim.scg(hvp="finite_difference"),
    "quickprop": lambda: optim.quickprop(0.5),
    **{f"rprop-{v}": (lambda v=v: optim.rprop(0.1, variant=v)) for v in optim.RPROP_VARIANTS},
}


@pytest.mark.filterwarnings("ignore:optax.tree_utils.tree_l2_norm is deprecated")  # optax's example, verbatim
@pytest.mark.parametrize("name", list(BPKIT_OPTIMIZERS))
def test_each_optimizer_runs_in_optax_lbfgs_example_loop(name):
    net = MLP((2, 3, 1), hidden="tanh", output="sigmoid")
    params = net.init(jax.random.key(0), dtype=jnp.float64)

    def fun(params, x, y):  # the data reach value_fn through update's extra arguments
        return loss_value(net, params, x, y)

    p, state = jax.jit(lambda p: run_opt(p, fun, BPKIT_OPTIMIZERS[name](), 300, 1e-9, x=XOR_X, y=XOR_Y))(params)
    start, end = float(fun(params, XOR_X, XOR_Y)), float(fun(p, XOR_X, XOR_Y))
    assert int(otu.tree_get(state, "count")) > 1 and end < 0.5 * start, (start, end)


def test_scale_by_nonlinear_cg_descends_under_scale_by_learning_rate():
    opt = optax.chain(optim.scale_by_nonlinear_cg(), optax.scale_by_learning_rate(0.05))
    w = jnp.array([3.0, -2.0])
    f = lambda w: jnp.sum(w**2)
    state = opt.init(w)
    for _ in range(5):
        v, g = jax.value_and_grad(f)(w)
        u, state = opt.update(g, state, w, value=v)
        assert float(f(w + u)) < float(v)
        w = w + u


# -- a line search that fails is its own outcome ----------------------------------------------


def _search_failing_at(k):
    """A line search (any transform) that reports failure through the contract from its k-th call."""

    def init(params):
        return (jnp.zeros((), jnp.int32), optim.contract.initial(params))

    def update(updates, state, params=None, **extra):
        n = state[0] + 1
        evals = optim.contract.initial(updates)._replace(failed=n >= k)
        return optax.tree.scale(jnp.where(n >= k, 0.0, 1e-3), updates), (n, evals)

    return optax.GradientTransformationExtraArgs(init, update)


def test_failed_line_search_ends_the_run_with_its_status():
    net = MLP((2, 2, 1), hidden="tanh", output="sigmoid")
    params = net.init(jax.random.key(0), dtype=jnp.float64)
    r = train(net, optim.nonlinear_cg(linesearch=_search_failing_at(3)), params, XOR_X, XOR_Y,
              key=jax.random.key(0), rules=StopRules(max_epochs=100, stall_epochs=10))
    assert r.reason == "line_search_failed" and int(r.epochs) == 3  # not "stalled" ten epochs later
    healthy = train(net, optim.nonlinear_cg(), params, XOR_X, XOR_Y, key=jax.random.key(0),
                    rules=StopRules(max_epochs=100, goal=1e-3))
    assert healthy.reason == "goal"
    # optax's zoom search reports failure in its info; the contract reads it by the state's type.
    cliff = optax.scale_by_zoom_linesearch(max_linesearch_steps=3, initial_guess_strategy="one")
    # A direction along which every trial step raises the loss: the search must report failure.
    f = lambda w: jnp.where(jnp.sum(w) == 0.0, 0.0, 1.0 + jnp.sum(w**2))
    w = jnp.zeros(2)
    search = optax.chain(optax.sgd(1.0), cliff)
    state = search.init(w)
    _, state = search.update(jnp.ones(2), state, w, value=f(w), grad=jnp.ones(2), value_fn=f)
    report = optim.contract.report(state)
    assert bool(report.failed) and int(report.grad_evals) == 3
