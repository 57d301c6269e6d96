"""Launchers: run kd_jax jobs on a Cloud TPU VM / pod slice (tpu.py), a SLURM GPU cluster (slurm.py) or this machine
(local.py). Each prints the exact commands it runs; ``--dry-run`` prints them and runs nothing."""
