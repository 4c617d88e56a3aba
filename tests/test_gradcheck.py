"""The checker flags known-wrong rules, names the wrong leaf and entry, and passes right ones.

The rules here are user code: a 2-layer tanh/sigmoid net written from scratch
with its own backprop, not bpkit's, with one classic bug at a time.
"""

import jax
import jax.numpy as jnp
import pytest

from bpkit import MLP, backprop, check_gradient, loss_value


def user_loss(p, x, y):
    h = jnp.tanh(x @ p["W1"] + p["b1"][None, :])
    out = jax.nn.sigmoid(h @ p["W2"] + p["b2"][None, :])
    return 0.5 * jnp.sum((out - y) ** 2) / x.shape[0]


def user_grad(p, x, y, bug=None):
    z1 = x @ p["W1"] + p["b1"][None, :]
    h = jnp.tanh(z1)
    out = jax.nn.sigmoid(h @ p["W2"] + p["b2"][None, :])
    d2 = (out - y) / x.shape[0] * out * (1 - out)
    if bug == "sign":
        d2 = -d2
    back = d2 if bug == "missing_weight" else d2 @ p["W2"].T
    d1 = back if bug == "omitted_derivative" else back * (1 - h**2)
    g = {
        "W1": x.T @ d1,
        "b1": d1.sum(0),
        "W2": h.T @ d2,
        "b2": d2.sum(0),
    }
    if bug == "missing_input":
        g["W1"] = jnp.ones_like(x).T @ d1  # forgot a_{l-1}: delta alone, like lr * delta
    return g


@pytest.fixture(scope="module")
def problem():
    k = jax.random.split(jax.random.key(0), 4)
    # Hidden width 1, so W2 (1, 1) and the "missing weight" bug keeps shapes.
    p = {
        "W1": jax.random.normal(k[0], (3, 1), jnp.float64),
        "b1": jax.random.normal(k[1], (1,), jnp.float64) * 0.1,
        "W2": jax.random.normal(k[2], (1, 1), jnp.float64) * 2,
        "b2": jnp.zeros((1,), jnp.float64),
    }
    x = jax.random.normal(k[3], (7, 3), jnp.float64)
    y = (x[:, :1] > 0).astype(jnp.float64)
    return p, x, y


def test_right_user_rule_passes(problem):
    report = check_gradient(user_loss, user_grad, *problem)
    assert report.passed, str(report)
    assert report.max_rel_error < 1e-9
    assert "PASSED" in str(report)


@pytest.mark.parametrize(
    "bug, wrong_leaves",
    [
        ("missing_input", {"['W1']"}),
        ("sign", {"['W1']", "['b1']", "['W2']", "['b2']"}),
        ("missing_weight", {"['W1']", "['b1']"}),
        ("omitted_derivative", {"['W1']", "['b1']"}),
    ],
)
def test_known_wrong_user_rules_are_flagged_at_the_right_leaves(problem, bug, wrong_leaves):
    report = check_gradient(user_loss, lambda p, x, y: user_grad(p, x, y, bug), *problem)
    assert not report.passed
    flagged = {leaf.path for _, leaf in report.failures}
    assert flagged == wrong_leaves, str(report)
    text = str(report)
    assert "<-- WRONG" in text and "FAILED" in text
    for path in wrong_leaves:
        assert f"wrong: {path}" in text or path in text


def test_worst_entry_is_the_wrong_one(problem):
    def one_bad_entry(p, x, y):
        g = user_grad(p, x, y)
        g["W1"] = g["W1"].at[2, 0].add(0.5)
        return g

    report = check_gradient(user_loss, one_bad_entry, *problem)
    (_, leaf), *_ = report.failures
    assert leaf.path == "['W1']" and leaf.worst_index == (2, 0)
    assert leaf.got - leaf.expected == pytest.approx(0.5, abs=1e-9)
    d = report.to_dict()
    assert d["passed"] is False and d["comparisons"][0]["leaves"][0]["path"] == "['W1']"


def test_float32_passes_at_documented_tolerance():
    net = MLP((3, 4, 2), hidden="tanh", output="sigmoid")
    p = net.init(jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), (5, 3))
    y = jnp.ones((5, 2)) * 0.25
    report = check_gradient(lambda p, x, y: loss_value(net, p, x, y), lambda p, x, y: backprop(net, p, x, y), p, x, y)
    assert report.passed, str(report)
    assert report.comparisons[0].rtol == 1e-4


def test_mismatched_pytree_is_a_clear_error(problem):
    with pytest.raises(ValueError, match=r"grad_fn's pytree does not match params: missing \['b2'\]"):
        check_gradient(user_loss, lambda p, x, y: {k: v for k, v in user_grad(p, x, y).items() if k != "b2"}, *problem)


def test_mismatched_leaf_shape_is_a_clear_error(problem):
    def transposed(p, x, y):
        g = user_grad(p, x, y)
        g["W1"] = g["W1"].T
        return g

    with pytest.raises(ValueError, match=r"leaf \['W1'\] has shape \(1, 3\), params' has \(3, 1\)"):
        check_gradient(user_loss, transposed, *problem)


def test_non_finite_input_is_a_clear_error(problem):
    p, x, y = problem
    with pytest.raises(ValueError, match=r"args\[0\] holds 1 non-finite value\(s\) \(first: NaN at index \(1, 2\)\)"):
        check_gradient(user_loss, user_grad, p, x.at[1, 2].set(jnp.nan), y)
    with pytest.raises(ValueError, match=r"params\['b2'\] holds 1 non-finite"):
        check_gradient(user_loss, user_grad, {**p, "b2": jnp.array([jnp.inf])}, x, y)


def test_finite_difference_order_2_and_bad_options(problem):
    report = check_gradient(user_loss, user_grad, *problem, fd_order=2, fd_step=1e-6)
    assert report.passed, str(report)
    with pytest.raises(ValueError, match="fd_order must be one of"):
        check_gradient(user_loss, user_grad, *problem, fd_order=3)


def _compiles(caplog, fn):
    """How many programs ``fn()`` compiled (JAX's compile log; the persistent cache does not hide them)."""
    caplog.clear()
    with jax.log_compiles(True), caplog.at_level("WARNING", logger="jax"):
        fn()
    return sum(r.getMessage().startswith("Compiling") for r in caplog.records)


@pytest.mark.parametrize("bug", [None, "missing_input", "sign", "omitted_derivative"])
def test_fused_check_is_one_program_with_the_same_verdicts(problem, bug, caplog):
    # One executable per check, not one per operation (each keeps ~1.4 MB resident on CPU).
    p, x, y = problem
    grad = lambda p, x, y: user_grad(p, x, y, bug)
    reports = {}
    counts = {}
    for fuse in (True, False):
        jax.clear_caches()  # this process's compiled operations: counted afresh, whatever ran before
        counts[fuse] = _compiles(caplog, lambda fuse=fuse: reports.__setitem__(
            fuse, check_gradient(user_loss, grad, p, x, y, fuse=fuse)))
    assert counts[True] == 1 and counts[False] > 10, counts
    fused, apart = reports[True], reports[False]
    assert fused.passed == apart.passed == (bug is None)
    assert {leaf.path for _, leaf in fused.failures} == {leaf.path for _, leaf in apart.failures}
    for a, b in zip(fused.comparisons, apart.comparisons, strict=True):
        for la, lb in zip(a.leaves, b.leaves, strict=True):
            assert la.path == lb.path and la.passed == lb.passed
            if not la.passed:  # a real error, not rounding: the same entry, the same size
                assert la.worst_index == lb.worst_index
                assert la.max_rel_error == pytest.approx(lb.max_rel_error, rel=1e-6)


def test_fused_check_keeps_the_clear_errors_and_float32(problem):
    with pytest.raises(ValueError, match=r"leaf \['W1'\] has shape \(1, 3\), params' has \(3, 1\)"):
        check_gradient(user_loss, lambda p, x, y: {**user_grad(p, x, y), "W1": user_grad(p, x, y)["W1"].T},
                       *problem, fuse=True)
    with pytest.raises(ValueError, match="fd_order must be one of"):
        check_gradient(user_loss, user_grad, *problem, fd_order=3, fuse=True)
    net = MLP((3, 4, 2), hidden="tanh", output="sigmoid")
    p = net.init(jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), (5, 3))
    y = jnp.ones((5, 2)) * 0.25
    report = check_gradient(lambda p, x, y: loss_value(net, p, x, y), lambda p, x, y: backprop(net, p, x, y), p, x, y,
                            fuse=True)
    assert report.passed and report.comparisons[0].rtol == 1e-4, str(report)  # float32 params, float32 tolerance
