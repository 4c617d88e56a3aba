"""Fahlman's backward pass, transcribed line by line from quickprop1.c (Quickprop 1, September 1988,
Scott Fahlman, C translation by Terry Regier), kept apart from bpkit's code.

Units are numbered as there: 0 is the bias unit (output 1.0), then the inputs, then the hidden
and output units in order; ``connections[j]`` lists the units feeding unit ``j`` (the bias first),
``weights[j][i]`` the weight of ``connections[j][i]``.  Every unit is an ASYMSIGMOID
(``1 / (1 + exp(-sum))``).  ``ERRFUN`` is taken with ``HyperErr == 0`` and without its dead zone
(``|dif| < 0.1`` counted as 0), which bpkit does not have; ``Decay`` is 0.
"""

from __future__ import annotations

import math


def activation(s):
    # ASYMSIGMOID, with quickprop1.c's clamp at |sum| > 15.
    if s < -15.0:
        return 0.0
    if s > 15.0:
        return 1.0
    return 1.0 / (1.0 + math.exp(-s))


def activation_prime(value, offset):
    # ACTIVATION_PRIME, ASYMSIGMOID: (SigmoidPrimeOffset + (value * (1.0 - value)))
    return offset + value * (1.0 - value)


def forward_pass(inputs, n_inputs, n_units, connections, weights):
    outputs = [0.0] * n_units
    outputs[0] = 1.0  # the bias unit
    for i in range(n_inputs):
        outputs[i + 1] = inputs[i]
    for j in range(1 + n_inputs, n_units):
        total = 0.0
        for i in range(len(connections[j])):
            total += outputs[connections[j][i]] * weights[j][i]
        outputs[j] = activation(total)
    return outputs


def backward_pass(goal, outputs, first_hidden, first_output, n_units, connections, weights, slopes, offset):
    error_sums = [0.0] * n_units
    for i in range(first_output, n_units):
        error_sums[i] = goal[i - first_output] - outputs[i]  # ERRFUN, HyperErr == 0
    errors = [0.0] * n_units
    # "When we reach a given unit in loop, error from all later units will have been collected."
    for j in range(n_units - 1, first_hidden - 1, -1):
        errors[j] = activation_prime(outputs[j], offset) * error_sums[j]
        for i in range(len(connections[j])):
            cix = connections[j][i]
            error_sums[cix] += errors[j] * weights[j][i]
            slopes[j][i] += errors[j] * outputs[cix]


def epoch_slopes(patterns, goals, n_inputs, n_units, first_output, connections, weights, offset):
    """The slopes one epoch accumulates (quickprop1.c's TRAIN: CLEAR_SLOPES, then each pattern)."""
    slopes = [[0.0] * len(c) for c in connections]
    for x, y in zip(patterns, goals, strict=True):
        outputs = forward_pass(x, n_inputs, n_units, connections, weights)
        backward_pass(y, outputs, 1 + n_inputs, first_output, n_units, connections, weights, slopes, offset)
    return slopes
