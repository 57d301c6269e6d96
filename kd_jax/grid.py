"""Runs the MNIST seed grid: ``python -m kd_jax.grid --config=configs/mnist_grid.py --workdir=<dir>``."""
from kd_jax import cli
from kd_jax.mnist import grid

if __name__ == '__main__':
  cli.run(grid.run)
