"""Nonlinear CG, SCG and quickprop as optax transforms, on problems with known answers."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bpkit import optim


def run(opt, f, w, steps):
    state = opt.init(w)
    vg = optax.value_and_grad_from_state(f) if optax.tree.get(state, "value") is not None else jax.value_and_grad(f)

    @jax.jit
    def step(w, state):
        v, g = vg(w, state=state) if optax.tree.get(state, "value") is not None else vg(w)
        u, state = opt.update(g, state, w, value=v, grad=g, value_fn=f)
        return optax.apply_updates(w, u), state

    for _ in range(steps):
        w, state = step(w, state)
    return w, state


N = 8
_A = jax.random.normal(jax.random.key(0), (N, N), jnp.float64)
A = _A @ _A.T + 0.5 * jnp.eye(N)  # condition number ~ 100
B = jnp.arange(N, dtype=jnp.float64)
W_STAR = jnp.linalg.solve(A, B)


def quadratic(w):
    return 0.5 * w @ A @ w - B @ w


def rosenbrock(w):
    return jnp.sum(100.0 * (w[1:] - w[:-1] ** 2) ** 2 + (1.0 - w[:-1]) ** 2)


@pytest.mark.parametrize("beta", list(optim.BETAS))
def test_cg_with_exact_line_search_solves_a_quadratic_in_n_steps(beta):
    # With an exact line search, CG's directions are A-conjugate: n steps suffice.
    w, _ = run(optim.nonlinear_cg(beta, linesearch=optim.scale_by_line_newton()), quadratic, jnp.zeros(N), N)
    chex.assert_trees_all_close(w, W_STAR, rtol=1e-9, atol=1e-9)
    w_short, _ = run(optim.nonlinear_cg(beta, linesearch=optim.scale_by_line_newton()), quadratic, jnp.zeros(N), N - 2)
    assert float(jnp.max(jnp.abs(w_short - W_STAR))) > 1e-6  # and not fewer: the test can fail


@pytest.mark.parametrize("beta", list(optim.BETAS))
def test_cg_default_line_search_converges_within_a_few_n_steps(beta):
    # c2 = 0.4 (scipy's choice) loses conjugacy: scipy's own CG is at 3e-3 after
    # 3n steps on this problem. Measured: every beta within 1.5e-7 after 8n.
    w, _ = run(optim.nonlinear_cg(beta), quadratic, jnp.zeros(N), 8 * N)
    chex.assert_trees_all_close(w, W_STAR, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("hvp", ["exact", "finite_difference"])
def test_scg_solves_a_quadratic(hvp):
    w, _ = run(optim.scg(hvp=hvp), quadratic, jnp.zeros(N), 3 * N)
    # SCG's comparison E(w) - E(w + a p) drowns in rounding near the optimum,
    # so it stops short of machine precision.
    chex.assert_trees_all_close(w, W_STAR, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize(
    "opt",
    [optim.nonlinear_cg(b) for b in optim.BETAS]
    + [optim.nonlinear_cg("pr+", powell_beale=True), optim.scg(), optim.scg(hvp="finite_difference")],
    ids=[f"cg-{b}" for b in optim.BETAS] + ["cg-powell-beale", "scg-exact", "scg-fd"],
)
def test_converges_on_rosenbrock(opt):
    w, _ = run(opt, rosenbrock, jnp.array([-1.2, 1.0], jnp.float64), 400)
    chex.assert_trees_all_close(w, jnp.ones(2), atol=1e-5)


def test_beta_formulas_by_hand():
    g, g0, d0 = jnp.array([1.0, 2.0]), jnp.array([2.0, 0.0]), jnp.array([-2.0, 1.0])
    # y = g - g0 = [-1, 2]: g.y = 3, g0.g0 = 4, d0.y = 4, g.g = 5
    assert float(optim.beta_fr(g, g0, d0)) == pytest.approx(5 / 4)
    assert float(optim.beta_pr(g, g0, d0)) == pytest.approx(3 / 4)
    g_back = jnp.array([1.0, 0.0])  # pr = g.(g - g0) / g0.g0 = -1/4 < 0: pr+ clips it to 0
    assert float(optim.beta_pr(g_back, g0, d0)) == pytest.approx(-0.25)
    assert float(optim.beta_pr_plus(g_back, g0, d0)) == 0.0
    assert float(optim.beta_hs(g, g0, d0)) == pytest.approx(3 / 4)  # g.y = 3, d0.y = 4
    assert float(optim.beta_dy(g, g0, d0)) == pytest.approx(5 / 4)
    assert float(optim.beta_fr(g, jnp.zeros(2), d0)) == 0.0  # guarded division


def test_beta_by_index_equals_each_named_formula():
    # A sweep passes beta as an index (data), so six CG variants are one program: under jit and under vmap
    # over lanes with different betas, each lane must get its named formula's number, up to rounding (its
    # four dot products fuse differently from one formula's two: measured 5e-15 relative in float64).
    from bpkit.optim.cg import _beta
    k = jax.random.split(jax.random.key(4), 3)
    g, g0, d0 = ({"w": jax.random.normal(kk, (5, 3)), "b": jax.random.normal(kk, (3,))} for kk in k)
    g_back = jax.tree.map(lambda a: 0.5 * a, g0)  # pr = -1/4 here: pr+ clips it to 0
    for gg in (g, g_back):
        named = [jax.jit(optim.BETAS[n])(gg, g0, d0) for n in optim.BETA_NAMES]
        by_index = jax.jit(lambda i, gg=gg: _beta(i)(gg, g0, d0))
        lanes = jax.jit(jax.vmap(lambda i, gg=gg: _beta(i)(gg, g0, d0)))(jnp.arange(len(optim.BETA_NAMES)))
        for i, want in enumerate(named):
            np.testing.assert_allclose([by_index(jnp.int32(i)), lanes[i]], [want, want], rtol=1e-13, atol=0,
                                       err_msg=optim.BETA_NAMES[i])
    assert float(_beta(2)(g_back, g0, d0)) == 0.0
    with pytest.raises(ValueError, match=r"a CG beta index must lie in 0..4 \(fr, pr, pr\+, hs, dy\), got 5"):
        _beta(5)


def test_cg_falls_back_to_steepest_descent_and_counts_restarts():
    opt = optim.scale_by_nonlinear_cg("pr", restart_every=2)
    w = jnp.zeros(2)
    s = opt.init(w)
    u, s = opt.update(jnp.array([1.0, 0.0]), s, w, value=1.0)
    # optax's sign convention: a gradient-like vector (scale_by_learning_rate negates it).
    assert int(s.restarts) == 1 and float(u[0]) > 0 and float(s.prev_direction[0]) < 0
    _, s = opt.update(jnp.array([0.0, 1.0]), s, w, value=0.5)
    _, s = opt.update(jnp.array([0.5, 0.5]), s, w, value=0.2)  # count hits restart_every
    assert int(s.restarts) == 2


def test_quickprop_step_growth_is_capped_at_mu():
    # Constant slope: the secant has no minimum, so the step grows by at most mu.
    opt = optim.quickprop(learning_rate=0.1, mu=1.75)
    w = jnp.zeros(1)
    s = opt.init(w)
    g = jnp.array([2.0])
    d1, s = opt.update(g, s, w)
    d2, s = opt.update(g, s, w + d1)
    assert float(d1[0]) == pytest.approx(-0.2)
    assert float(d2[0]) == pytest.approx(-0.2 + 1.75 * -0.2)


def test_quickprop_secant_step_on_a_parabola():
    # f = (w - 3)^2 from w = 0 with slopes S0 = 6, S1: the secant term jumps to the minimum.
    opt = optim.quickprop(learning_rate=0.1, mu=100.0)
    w = jnp.zeros(1)
    s = opt.init(w)
    d1, s = opt.update(2 * (w - 3), s, w)
    w1 = w + d1
    d2, s = opt.update(2 * (w1 - 3), s, w1)
    secant = float(d1[0]) * float(-2 * (w1[0] - 3)) / (6.0 - float(-2 * (w1[0] - 3)))
    assert float(d2[0]) == pytest.approx(0.1 * float(-2 * (w1[0] - 3)) + secant)
    assert float(w1[0] + secant) == pytest.approx(3.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: optim.nonlinear_cg("xx"), r"unknown CG beta 'xx'; valid: fr, pr, pr\+, hs, dy"),
        (lambda: optim.zoom(c1=0.5, c2=0.4), "need c1 < c2"),
        (lambda: optim.zoom(c2=1.5), r"c2 must lie in \(0, 1\)"),
        (lambda: optim.scg(hvp="guess"), "hvp must be 'exact' or 'finite_difference'"),
        (lambda: optim.scg(sigma=0), "sigma must be positive"),
        (lambda: optim.scg(lambda_init=-1.0), "lambda_init must be positive"),
        (lambda: optim.quickprop(learning_rate=-1), "learning_rate and mu must be positive"),
        (lambda: optim.make("newton"),
         "unknown optimizer 'newton'; valid: sgd, rprop, adam, lbfgs, cg, scg, quickprop"),
        (lambda: optim.make("sgd", lr=0.1), "bad hyperparameters for optimizer 'sgd'"),
    ],
)
def test_bad_optimizer_settings(call, message):
    with pytest.raises(ValueError, match=message):
        call()
