"""Runs several kd_jax jobs — configs × seeds — on this machine, a few at a time, each with its own workdir and log.

    python launch/local.py --config=configs/mnist_cnn_to_mlp.py --config=configs/mnist_mlp.py --seeds=0,1,2 \\
        --workdir=runs/local [--parallel=2] [--dry-run] [-- --config.models.mlp.num_epochs=10]

Run ``<config>`` with seed ``s`` trains in ``<workdir>/<config name>/seed_<s>`` (``--config.seed=s``; jobs with
``num_seeds`` train seeds s, s+1, … there) and logs to ``launch.log`` in it. Running the same command again resumes
every run from its checkpoints; finished runs only re-evaluate.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import time

if __package__ in (None, ''):  # run as a script: python launch/local.py
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from launch import common  # pylint: disable=g-import-not-at-top,wrong-import-position


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--seeds', default='0', help='comma-separated seeds, e.g. 0,1,2')
  parser.add_argument('--workdir', default='runs/local', help='one directory per run is made in it')
  parser.add_argument('--parallel', type=int, default=1, help='runs at once')
  common.add_job_flags(parser, several_configs=True)
  args = common.parse_args(parser, argv)
  try:
    args.seeds = [int(s) for s in args.seeds.split(',')]
  except ValueError:
    parser.error(f'--seeds={args.seeds}: expected comma-separated integers, e.g. 0,1,2')
  if args.parallel < 1:
    parser.error(f'--parallel must be ≥ 1, got {args.parallel}')
  seed_overrides = [o for o in args.overrides if o.split('=')[0] == '--config.seed']
  if seed_overrides:
    parser.error(f'{seed_overrides[0]} after -- would give every run that seed: choose seeds with --seeds only')
  # Each run once: a seed or config given twice would be two runs in one workdir, writing one launch.log.
  args.seeds, args.config = list(dict.fromkeys(args.seeds)), unique_configs(args.config)
  by_name = {}
  for config in args.config:  # different configs whose names are one directory (x.py:a_b and x.py:a,b)
    other = by_name.setdefault(run_name(config), config)
    if other != config:
      parser.error(f'--config={other} and --config={config} would both run in {args.workdir}/{run_name(config)}: '
                   'run them with separate --workdir')
  return args


def config_key(config: str):
  """What makes two --config values one config: the file, as the job (started in the repository) finds it, and the
  set of variants (kd_jax.config_lib applies them in the config's own order, once each, ignoring blanks): so
  configs/x.py, ./configs/x.py: and its absolute path are one, and so are x.py:a,b and x.py:b, a."""
  path, _, variants = config.partition(':')
  return (os.path.realpath(os.path.join(common.ROOT, path)),
          frozenset(v.strip() for v in variants.split(',') if v.strip()))


def unique_configs(configs):
  """``configs`` without repeats (by :func:`config_key`), each as first written; a repeat spelt otherwise is noted."""
  kept = {}
  for config in configs:
    first = kept.setdefault(config_key(config), config)
    if first != config:
      print(f'# --config={config} is the same config as --config={first}; it runs once', flush=True)
  return list(kept.values())


def run_name(config: str) -> str:
  """configs/mnist_grid.py:paper,lm → mnist_grid_paper_lm."""
  stem, _, variants = config.partition(':')
  return '_'.join([os.path.splitext(os.path.basename(stem))[0]] + re.findall(r'\w+', variants))


def main(argv):
  args = parse_args(argv)
  runs = []
  for config in args.config:
    for seed in args.seeds:
      workdir = os.path.abspath(os.path.join(args.workdir, run_name(config), f'seed_{seed}'))
      runs.append((workdir, common.job_command(args.job, config, workdir, [f'--config.seed={seed}', *args.overrides],
                                               python=sys.executable)))
  if args.dry_run:
    shell = common.Shell(dry_run=True)
    for workdir, command in runs:
      log = shlex.quote(os.path.join(workdir, 'launch.log'))
      shell.run(f'mkdir -p {shlex.quote(workdir)} && cd {shlex.quote(common.ROOT)} && {shlex.join(command)} > {log} 2>&1')
    return
  failed = run_all(runs, args.parallel)
  if failed:
    raise SystemExit(f'launch: error: {len(failed)} of {len(runs)} runs failed; see ' +
                     ', '.join(f'{w}/launch.log' for w in failed))
  print(f'# all {len(runs)} runs finished; results.json (or grid.json) in each of {args.workdir}/*/seed_*')


def run_all(runs, parallel: int):
  """Runs the commands, ``parallel`` at a time; returns the workdirs of those that failed."""
  pending, running, failed = list(runs), {}, []
  while pending or running:
    while pending and len(running) < parallel:
      workdir, command = pending.pop(0)
      os.makedirs(workdir, exist_ok=True)
      print(shlex.join(command), flush=True)
      log = open(os.path.join(workdir, 'launch.log'), 'w')
      running[workdir] = (subprocess.Popen(command, cwd=common.ROOT, stdout=log, stderr=subprocess.STDOUT), log,
                          time.monotonic())
    for workdir, (proc, log, started) in list(running.items()):
      if proc.poll() is not None:
        log.close()
        del running[workdir]
        status = 'done' if proc.returncode == 0 else f'FAILED (exit {proc.returncode})'
        print(f'# {status} in {time.monotonic() - started:.0f} s: {workdir}', flush=True)
        if proc.returncode:
          failed.append(workdir)
    time.sleep(0.2)
  return failed


if __name__ == '__main__':
  main(sys.argv[1:])
