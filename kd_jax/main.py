"""Runs a kd_jax experiment: ``python -m kd_jax.main --config=configs/<x>.py --workdir=<dir>``.

The config's ``task`` picks the job; a new task is one entry in ``JOBS`` (its
module is imported only when a config asks for it).
"""
import importlib

from kd_jax import cli
from kd_jax import workdirs

# task -> module with check_config(config) and run(config, workdir)
JOBS = {'mnist': 'kd_jax.mnist.experiment', 'sva': 'kd_jax.sva.experiment'}


def check(config):
  """The task's job module for ``config``, after checking every setting (nothing is read or written)."""
  if 'setups' in config:
    raise ValueError('this is a seed-grid config (it has config.setups): run it with python -m kd_jax.grid')
  task = config.get('task', 'mnist')
  if task not in JOBS:
    raise ValueError(f'unknown config.task {task!r}; choose one of {sorted(JOBS)}')
  job = importlib.import_module(JOBS[task])
  job.check_config(config)
  return job


def run(config, workdir):
  job = check(config)  # a config that cannot run claims no workdir
  with workdirs.claim(workdir, f'{config.get("task", "mnist")} job'):
    return job.run(config, workdir)


if __name__ == '__main__':
  cli.run(run)
