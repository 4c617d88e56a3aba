"""Moeller's scaled conjugate gradient, transcribed line by line from the paper, for tests only.

M. F. Moeller, "A scaled conjugate gradient algorithm for fast supervised
learning", Neural Networks 6:525-533 (1993), section 4, steps 1-9.  Plain
NumPy on flat float64 vectors; nothing is shared with bpkit's implementation.
"""

from __future__ import annotations

import numpy as np


def scg(E, dE, w1, iterations, sigma=5e-5, lambda1=5e-7, hvp=None):
    """Run ``iterations`` iterations; returns the weights after each one and whether it was accepted.

    ``E(w)`` is the error, ``dE(w)`` its gradient; ``hvp(w, p)``, if given,
    replaces step 2's finite difference with an exact Hessian-vector product.
    """
    # 1. Choose w_1, sigma > 0, lambda_1 > 0, lambda_bar_1 = 0; p_1 = r_1 = -E'(w_1), k = 1, success = true.
    N = len(w1)
    w = np.array(w1, np.float64)
    lam, lam_bar = lambda1, 0.0
    r = -dE(w)
    p = r.copy()
    k, success = 1, True
    delta = 0.0
    weights, accepted = [], []
    for _ in range(iterations):
        pp = p @ p
        # 2. If success: sigma_k = sigma / |p_k|, s_k = (E'(w_k + sigma_k p_k) - E'(w_k)) / sigma_k, delta_k = p_k s_k.
        if success:
            if hvp is None:
                sigma_k = sigma / np.sqrt(pp)
                s = (dE(w + sigma_k * p) - dE(w)) / sigma_k
            else:
                s = hvp(w, p)
            delta = p @ s
        # 3. Scale delta_k: delta_k = delta_k + (lambda_k - lambda_bar_k) |p_k|^2.
        delta = delta + (lam - lam_bar) * pp
        # 4. If delta_k <= 0, make the Hessian matrix positive definite.
        if delta <= 0:
            lam_bar = 2 * (lam - delta / pp)
            delta = -delta + lam * pp
            lam = lam_bar
        # 5. Calculate step size: mu_k = p_k r_k, alpha_k = mu_k / delta_k.
        mu = p @ r
        alpha = mu / delta
        # 6. Calculate the comparison parameter Delta_k = 2 delta_k [E(w_k) - E(w_k + alpha_k p_k)] / mu_k^2.
        Delta = 2 * delta * (E(w) - E(w + alpha * p)) / mu**2
        # 7. If Delta_k >= 0: a successful reduction in error can be made.
        if Delta >= 0:
            w = w + alpha * p
            r_new = -dE(w)
            lam_bar, success = 0.0, True
            if k % N == 0:  # restart the algorithm
                p_new = r_new
            else:
                beta = (r_new @ r_new - r_new @ r) / mu
                p_new = r_new + beta * p
            if Delta >= 0.75:  # reduce the scale parameter
                lam = lam / 4
        else:  # a reduction in error is not possible
            lam_bar, success = lam, False
            r_new, p_new = r, p
        # 8. If Delta_k < 0.25: increase the scale parameter, lambda_k = lambda_k + delta_k (1 - Delta_k) / |p_k|^2.
        if Delta < 0.25:
            lam = lam + delta * (1 - Delta) / pp
        # 9. If the steepest descent direction r_k != 0, set k = k + 1 and go to 2; else return w_{k+1}.
        r, p = r_new, p_new
        weights.append(w.copy())
        accepted.append(bool(Delta >= 0))
        if not np.any(r):
            break
        k += 1
    return weights, accepted
