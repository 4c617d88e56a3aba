"""bpkit: backpropagation, written by hand, checked against autodiff."""
from bpkit import activations, losses
from bpkit.network import MLP
from bpkit.gradients import autodiff, backprop, backward, loss_value, value_and_backprop
from bpkit.gradcheck import check_activation, check_gradient, finite_difference_grad
