"""The analyses of finished runs: training paths, converged solutions, shared errors (kd_jax/analysis.py).

    python -m kd_jax.analyze --config=configs/analyze.py --config.workdirs=/tmp/kd_grid --workdir=/tmp/kd_analysis

``config.workdirs``: one or more workdirs (comma-separated) of finished jobs of one task — grids, or the single jobs
that came before them; ``--workdir``: where analysis.json, analysis.md and the figures go. The task and its data settings are read
from each workdir's results (``results.json`` or ``grid.json``).
"""
import json
import os
from typing import Any, Dict, Tuple

from absl import logging
from etils import epath
import ml_collections

from kd_jax import analysis
from kd_jax import cli
from kd_jax import config_lib
from kd_jax import seed_grid
from kd_jax import workdirs

RESULT_FILES = ('grid.json', 'results.json')


def saved_report(workdir: str) -> Tuple[Dict[str, Any], ml_collections.ConfigDict]:
  """The report (``grid.json`` or ``results.json``) of a finished job in ``workdir``, and the config it ran with."""
  for name in RESULT_FILES:
    path = epath.Path(workdir) / name
    if path.exists():
      try:
        report = json.loads(path.read_text())
        return report, ml_collections.ConfigDict(report['config'])
      except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f'{path} is not a results file kd_jax wrote ({type(e).__name__}: {e}); analyse the '
                         'workdir of a finished job, or re-run that job to write it again') from None
  raise FileNotFoundError(f'{workdir} holds neither {" nor ".join(RESULT_FILES)}: analyse the workdir of a '
                          'finished job (config.workdirs)')


def restored_checkpoints(job_config: ml_collections.ConfigDict) -> Dict[str, str]:
  """Setup → checkpoint path of the models a finished job restored instead of training (a grid's
  ``models.<name>.checkpoint``, the single jobs' ``teacher.checkpoint``)."""
  if 'models' in job_config:
    return {name: model.checkpoint for name, model in job_config.models.items() if model.get('checkpoint')}
  teacher = job_config.get('teacher', {}).get('checkpoint')
  return {'teacher': teacher} if teacher else {}


def reported(report: Dict[str, Any]) -> analysis.Reported:
  """What a finished job's report describes: the seeds ``seed`` … ``seed + num_seeds - 1`` of its config (one for the
  former MNIST single job, whose config had no num_seeds) and the models it evaluated (reports written since Dec 6, 2026)."""
  config = report['config']
  return analysis.Reported(seeds=[config.get('seed', 0) + k for k in range(config.get('num_seeds', 1))],
                           models=report.get('evaluated_checkpoints'))


def clear_previous(out: str):
  """An output directory analysed before holds that analysis's files (figures of other sets, other factors): they
  go, so that what is there is this analysis alone. The directory is claimed for analyses (:mod:`kd_jax.workdirs`);
  its job record and lock stay."""
  root = epath.Path(out)
  old = [path for path in root.iterdir() if path.name not in (workdirs.RECORD, workdirs.LOCK)]
  for path in old:
    if path.is_dir():
      path.rmtree()
    else:
      path.unlink()
  if old:
    logging.info('%s: removed the previous analysis (%d entries)', out, len(old))


def check_config(config):
  config_lib.check_int(config, 'num_examples', 1)
  config_lib.check_choice(config, 'train_mode', (False, True))
  if not [w for w in config.workdirs.split(',') if w]:
    raise ValueError("config.workdirs is empty: give the workdir(s) of finished jobs, e.g. --config.workdirs=/tmp/kd_grid")


def ablation_factors(workdir: str) -> Dict[str, str]:
  """The finished factor grids of an ablation (``kd_jax.grid`` with ``config.factors``) in ``workdir``: name →
  directory, in the ablation's order; {} for any other workdir."""
  path = epath.Path(workdir) / 'ablation.json'
  if not path.exists():
    return {}
  return {name: str(epath.Path(workdir) / name) for name in json.loads(path.read_text())['student_epochs']}


def run(config, out: str):
  check_config(config)
  job_dirs = [w for w in config.workdirs.split(',') if w]
  factors = ablation_factors(job_dirs[0]) if len(job_dirs) == 1 else {}
  if factors:
    return run_factors(config, job_dirs[0], factors, out)
  job_reports, job_configs = zip(*[saved_report(w) for w in job_dirs])
  tasks = sorted({c.get('task', 'mnist') for c in job_configs})
  if len(tasks) > 1:
    raise ValueError(f'config.workdirs mixes tasks {tasks}: analyse one task at a time')
  probe = seed_grid.task_of(job_configs[0]).probe(job_configs[0], job_dirs[0])
  several = len(job_dirs) > 1
  runs = [run for w, job_report, job_config in zip(job_dirs, job_reports, job_configs)
          for run in analysis.find_runs(w, prefix=f'{os.path.basename(os.path.normpath(w))}:' if several else '',
                                        restored=restored_checkpoints(job_config), reported=reported(job_report))]
  with workdirs.claim(out, 'analysis'):
    clear_previous(out)
    return analysis.analyse(runs, probe, out, config)


def run_factors(config, workdir: str, factors: Dict[str, str], out: str):
  """An ablation: each finished factor's grid analysed on its own (``out/<factor>``), then one table of every
  factor's students — the ablation's gains beside their distance to the teacher and shared errors."""
  with workdirs.claim(out, 'analysis'):
    clear_previous(out)
    reports = {}
    for name, directory in factors.items():
      sub = ml_collections.ConfigDict(config.to_dict())
      sub.workdirs = directory
      reports[name] = run(sub, os.path.join(out, name))
    ablation = json.loads((epath.Path(workdir) / 'ablation.json').read_text())
    return analysis.write_factors_report(reports, ablation['student_epochs'], out)


if __name__ == '__main__':
  cli.run(run)
