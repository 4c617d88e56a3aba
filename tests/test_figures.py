"""bpkit.figures: the medians the figures draw, against a brute-force computation."""


import numpy as np


def test_the_median_learning_curve_goes_through_the_measured_epochs_only():
    import statistics

    from bpkit.figures import median_curve

    rng = np.random.default_rng(0)
    every = 3  # measured every 3 epochs and at the last, as a sweep stores it; runs stop at other epochs
    losses = []
    for e in (10, 13, 7, 13):
        losses.append([float(rng.uniform(0.01, 1)) if (i + 1) % every == 0 or i + 1 == e else None for i in range(e)])
    losses[2][5] = 0.0  # a loss of 0 has no place on a log axis
    epochs, med = median_curve(losses)
    want = {}
    for i in range(13):  # brute force: each run's value at epoch i + 1 (its last after it stopped)
        vals = [c[min(i, len(c) - 1)] for c in losses]
        vals = [v for v in vals if v is not None and v > 0]
        if vals:
            want[i + 1] = statistics.median(vals)
    assert epochs.tolist() == list(want) and np.isfinite(med).all()
    np.testing.assert_allclose(med, list(want.values()), rtol=1e-15)
    assert median_curve([])[0].size == 0
