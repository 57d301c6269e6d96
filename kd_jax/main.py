"""Runs a kd_jax experiment: ``python -m kd_jax.main --config=configs/<x>.py --workdir=<dir>``."""
from kd_jax import cli
from kd_jax import experiment

if __name__ == '__main__':
  cli.run(experiment.run)
