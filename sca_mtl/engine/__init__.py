"""Training and evaluation: the loops, checkpoints, distributed set-up and the random state they carry."""
