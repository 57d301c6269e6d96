"""Runs a kd_jax experiment: ``python -m kd_jax.main --config=configs/<x>.py --workdir=<dir>``.

The config's ``task`` picks the job: 'mnist' (default) or 'sva' (subject–verb agreement).
"""
from kd_jax import cli
from kd_jax import experiment
from kd_jax.sva import experiment as sva_experiment

JOBS = {'mnist': experiment.run, 'sva': sva_experiment.run}


def run(config, workdir):
  task = config.get('task', 'mnist')
  if task not in JOBS:
    raise ValueError(f'unknown config.task {task!r}; choose one of {sorted(JOBS)}')
  return JOBS[task](config, workdir)


if __name__ == '__main__':
  cli.run(run)
