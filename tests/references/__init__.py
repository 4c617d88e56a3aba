"""Line-by-line transcriptions of the papers bpkit's optimizers are checked against, kept apart from
bpkit's own code: Moeller's SCG (1993), Fahlman's quickprop (quickprop1.c), Igel & Huesken's Rprop
family (2000).  FANN's C library, the other independent reference, is reached through
:mod:`bpkit.fann`."""
