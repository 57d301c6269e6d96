"""Runs a kd_jax experiment: ``python -m kd_jax.main --config=configs/<x>.py --workdir=<dir>``.

A config with ``config.setups`` is a seed grid (:mod:`kd_jax.seed_grid`, every task: the MNIST main jobs, the
grids, ablations, sweeps); any other is the single job of its ``config.task`` (``JOBS``: SVA's, which adds language
modelling, a transfer set and cross-fitted targets to what the grid runs). A job module is imported only when a
config asks for it.
"""
import importlib

from kd_jax import cli
from kd_jax import seed_grid
from kd_jax import workdirs

# task -> module with check_config(config) and run(config, workdir): the jobs that are not (yet) the seed grid
JOBS = {'sva': 'kd_jax.sva.experiment'}


def check(config):
  """The module that runs ``config`` (the seed grid, or a task's single job), after checking every setting (nothing
  is read or written)."""
  if 'setups' in config:
    seed_grid.check(config)
    return seed_grid
  task = config.get('task', 'mnist')
  if task not in JOBS and task not in seed_grid.TASKS:
    raise ValueError(f'unknown config.task {task!r}; choose one of {sorted(set(JOBS) | set(seed_grid.TASKS))}')
  if task not in JOBS:
    raise ValueError(f'config.task={task!r} without config.setups: {task} runs on the seed grid only (give a grid '
                     f'config, e.g. configs/mnist_cnn_to_mlp.py); single jobs exist for {sorted(JOBS)}')
  job = importlib.import_module(JOBS[task])
  job.check_config(config)
  return job


def run(config, workdir):
  if 'setups' in config:
    return seed_grid.run(config, workdir)  # it checks the config, then claims the workdir
  job = check(config)  # a config that cannot run claims no workdir
  with workdirs.claim(workdir, f'{config.get("task", "mnist")} job'):
    return job.run(config, workdir)


if __name__ == '__main__':
  cli.run(run)
