"""The RPROP family as published, weight by weight in plain Python, for tests only.

C. Igel and M. Huesken, "Improving the Rprop learning algorithm", NC 2000,
figures 1-4 (Rprop+, Rprop-, iRprop+, iRprop-); Rprop+ is Riedmiller and
Braun (1993).  Nothing is shared with bpkit's implementation.
"""

from __future__ import annotations

import numpy as np


def sign(v):
    return (v > 0) - (v < 0)


def rprop(E, dE, w1, iterations, variant, delta0=0.1, eta_minus=0.5, eta_plus=1.2, delta_min=1e-6, delta_max=50.0):
    """Weights after each of ``iterations`` iterations of one variant."""
    w = [float(v) for v in w1]
    n = len(w)
    delta = [delta0] * n
    g_prev = [0.0] * n
    dw_prev = [0.0] * n
    E_prev = float("inf")
    out = []
    for _ in range(iterations):
        g = [float(v) for v in dE(np.array(w))]
        E_t = float(E(np.array(w)))
        for i in range(n):
            c = g_prev[i] * g[i]
            if c > 0:
                delta[i] = min(delta[i] * eta_plus, delta_max)
                dw_prev[i] = -sign(g[i]) * delta[i]
                w[i] += dw_prev[i]
            elif c < 0:
                delta[i] = max(delta[i] * eta_minus, delta_min)
                if variant == "rprop+":
                    w[i] -= dw_prev[i]
                    g[i] = 0.0
                elif variant == "irprop+":
                    if E_t > E_prev:
                        w[i] -= dw_prev[i]
                    g[i] = 0.0
                elif variant == "irprop-":
                    g[i] = 0.0
                    dw_prev[i] = 0.0
                else:  # rprop-
                    dw_prev[i] = -sign(g[i]) * delta[i]
                    w[i] += dw_prev[i]
            else:
                dw_prev[i] = -sign(g[i]) * delta[i]
                w[i] += dw_prev[i]
            g_prev[i] = g[i]
        E_prev = E_t
        out.append(np.array(w))
    return out
