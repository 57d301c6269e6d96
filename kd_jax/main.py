"""Runs a kd_jax experiment: ``python -m kd_jax.main --config=configs/<x>.py --workdir=<dir>``.

Every experiment is a seed grid (:mod:`kd_jax.seed_grid`) of its ``config.task``: the main jobs (one pair and its
control), the grids, ablations and student-budget sweeps, on MNIST and on subject–verb agreement.
"""
from kd_jax import cli
from kd_jax import seed_grid


def check(config):
  """The module that runs ``config``, after checking every setting (nothing is read or written)."""
  seed_grid.check(config)
  return seed_grid


def run(config, workdir):
  return seed_grid.run(config, workdir)  # it checks the config, then claims the workdir


if __name__ == '__main__':
  cli.run(run)
