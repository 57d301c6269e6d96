"""Runs any kd_jax experiment (the same as ``python -m kd_jax.main``): ``python -m kd_jax.grid --config=configs/mnist_grid.py --workdir=<dir>``."""
from kd_jax import cli
from kd_jax import seed_grid

if __name__ == '__main__':
  cli.run(seed_grid.run)
