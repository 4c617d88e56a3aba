"""Fahlman's backward pass, transcribed line by line from quickprop1.c (Quickprop 1, September 1988,
Scott Fahlman, C translation by Terry Regier), kept apart from bpkit's code.

Units are numbered as there: 0 is the bias unit (output 1.0), then the inputs, then the hidden
and output units in order; ``connections[j]`` lists the units feeding unit ``j`` (the bias first),
``weights[j][i]`` the weight of ``connections[j][i]``.  Every unit is an ASYMSIGMOID
(``1 / (1 + exp(-sum))``) or, with ``symmetric=True``, a SIGMOID (``1 / (1 + exp(-sum)) - 0.5``).
``ERRFUN`` is taken with ``HyperErr == 0`` without its dead zone (``|dif| < 0.1`` counted as 0),
which bpkit does not have, or with ``HyperErr == 1`` (``hyper=True``, the atanh error).
:func:`train_one_epoch` is TRAIN_ONE_EPOCH: CLEAR_SLOPES (with ``Decay``), the patterns' slopes,
then UPDATE_WEIGHTS (``Epsilon``, ``SplitEpsilon``, ``Momentum``, ``ModeSwitchThreshold``, ``MaxFactor``).
"""

from __future__ import annotations

import math


def activation(s, symmetric=False):
    if symmetric:
        # SIGMOID: "Symmetrical sigmoid function in range -0.5 to +0.5."
        if s < -15.0:
            return -0.5
        if s > 15.0:
            return 0.5
        return 1.0 / (1.0 + math.exp(-s)) - 0.5
    # ASYMSIGMOID, with quickprop1.c's clamp at |sum| > 15.
    if s < -15.0:
        return 0.0
    if s > 15.0:
        return 1.0
    return 1.0 / (1.0 + math.exp(-s))


def activation_prime(value, offset, symmetric=False):
    if symmetric:
        # SIGMOID: (SigmoidPrimeOffset + (0.25 -  value*value))
        return offset + (0.25 - value * value)
    # ACTIVATION_PRIME, ASYMSIGMOID: (SigmoidPrimeOffset + (value * (1.0 - value)))
    return offset + value * (1.0 - value)


def errfun(desired, actual, hyper=False):
    dif = desired - actual
    if not hyper:
        return dif  # HyperErr == 0, without the dead zone
    # "Using atanh for error"
    if dif < -0.9999999:
        return -17.0
    if dif > 0.9999999:
        return 17.0
    return math.log((1.0 + dif) / (1.0 - dif))


def forward_pass(inputs, n_inputs, n_units, connections, weights, symmetric=False):
    outputs = [0.0] * n_units
    outputs[0] = 1.0  # the bias unit
    for i in range(n_inputs):
        outputs[i + 1] = inputs[i]
    for j in range(1 + n_inputs, n_units):
        total = 0.0
        for i in range(len(connections[j])):
            total += outputs[connections[j][i]] * weights[j][i]
        outputs[j] = activation(total, symmetric)
    return outputs


def backward_pass(goal, outputs, first_hidden, first_output, n_units, connections, weights, slopes, offset,
                  symmetric=False, hyper=False):
    error_sums = [0.0] * n_units
    for i in range(first_output, n_units):
        error_sums[i] = errfun(goal[i - first_output], outputs[i], hyper)
    errors = [0.0] * n_units
    # "When we reach a given unit in loop, error from all later units will have been collected."
    for j in range(n_units - 1, first_hidden - 1, -1):
        errors[j] = activation_prime(outputs[j], offset, symmetric) * error_sums[j]
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


def train_one_epoch(patterns, goals, n_inputs, n_units, first_output, connections, weights, delta_weights,
                    slopes, prev_slopes, *, offset, symmetric, hyper, decay, epsilon, split_epsilon, momentum,
                    mode_switch_threshold, max_factor):
    """TRAIN_ONE_EPOCH: every list is changed in place, as quickprop1.c's globals are."""
    first_hidden = 1 + n_inputs
    # CLEAR_SLOPES
    for i in range(first_hidden, n_units):
        for j in range(len(connections[i])):
            prev_slopes[i][j] = slopes[i][j]
            slopes[i][j] = decay * weights[i][j]
    for x, y in zip(patterns, goals, strict=True):
        outputs = forward_pass(x, n_inputs, n_units, connections, weights, symmetric)
        backward_pass(y, outputs, first_hidden, first_output, n_units, connections, weights, slopes, offset,
                      symmetric, hyper)
    # UPDATE_WEIGHTS
    shrink_factor = max_factor / (1.0 + max_factor)
    for j in range(first_hidden, n_units):
        n_conn = len(connections[j])
        for i in range(n_conn):
            next_step = 0.0
            eps = (epsilon * slopes[j][i]) / n_conn if split_epsilon else epsilon * slopes[j][i]
            if delta_weights[j][i] > mode_switch_threshold:
                if slopes[j][i] > 0.0:
                    next_step += eps
                if slopes[j][i] > shrink_factor * prev_slopes[j][i]:
                    next_step += max_factor * delta_weights[j][i]
                else:
                    next_step += (slopes[j][i] / (prev_slopes[j][i] - slopes[j][i])) * delta_weights[j][i]
            elif delta_weights[j][i] < -mode_switch_threshold:
                if slopes[j][i] < 0.0:
                    next_step += eps
                if slopes[j][i] < shrink_factor * prev_slopes[j][i]:
                    next_step += max_factor * delta_weights[j][i]
                else:
                    next_step += (slopes[j][i] / (prev_slopes[j][i] - slopes[j][i])) * delta_weights[j][i]
            else:
                next_step += eps + momentum * delta_weights[j][i]
            delta_weights[j][i] = next_step
            weights[j][i] += next_step
