"""Runs a kd_jax job on a SLURM GPU cluster: one task (one JAX process) per GPU, all of them one JAX job.

    python launch/slurm.py --name=kd-grid --nodes=2 --gpus_per_node=8 --partition=gpu --time=04:00:00 \\
        --workdir=/shared/kd/grid --job=grid --config=configs/mnist_grid.py:paper [--dry-run] [-- --config.num_seeds=5]

Writes an sbatch script to ``<logdir>/<name>.sbatch`` and submits it with ``sbatch``. ``srun`` starts one task per
GPU (JAX's SLURM detection gives each process the GPU of its ``SLURM_LOCALID``: one task per node would train on one
GPU per node); ``jax.distributed.initialize()`` reads SLURM's environment (coordinator, process count and index).
The workdir must be visible to every node (a shared file system or gs://). ``--signal=TERM@120`` gives each task
SIGTERM two minutes before the time limit or a preemption, on which kd_jax saves a checkpoint and exits 75;
``--requeue`` resubmits it, ``--open-mode=append`` keeps the log, and the job resumes from the newest checkpoints.
"""
import argparse
import os
import re
import shlex
import sys

if __package__ in (None, ''):  # run as a script: python launch/slurm.py
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from launch import common  # pylint: disable=g-import-not-at-top,wrong-import-position

# SLURM's --time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS (minutes and seconds after the first
# field 0–59, hours after a day 0–23), and UNLIMITED or INFINITE. Checked here: anything else would reach the sbatch
# script as is and fail only at submission, or, with a newline in it, add lines to the script.
TIME_FORMAT = re.compile(r'[0-9]+(:[0-5]?[0-9]){0,2}|[0-9]+-([01]?[0-9]|2[0-3])(:[0-5]?[0-9]){0,2}|UNLIMITED|INFINITE',
                         re.IGNORECASE)


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--name', required=True, help='SLURM job name (and the script\'s file name)')
  parser.add_argument('--nodes', type=int, default=1)
  parser.add_argument('--gpus_per_node', type=int, default=1)
  parser.add_argument('--cpus_per_task', type=int, default=8, help='CPU cores per task (per GPU)')
  common.add_setting(parser, 'partition', 'KD_JAX_SLURM_PARTITION', 'SLURM partition (empty: the default one)')
  common.add_setting(parser, 'account', 'KD_JAX_SLURM_ACCOUNT', 'SLURM account (empty: none)')
  parser.add_argument('--time', default='04:00:00',
                      help="wall-time limit in SLURM's formats, e.g. 04:00:00, 90 (minutes) or 1-12:00:00 (empty: the "
                           "partition's default)")
  common.add_setting(parser, 'workdir', 'KD_JAX_WORKDIR', 'a directory every node can reach (or gs://)')
  parser.add_argument('--logdir', default='slurm_logs', help='where the sbatch script and the job logs go')
  parser.add_argument('--setup', default='source .venv/bin/activate',
                      help='shell line run before the job on each node, e.g. to activate the environment')
  common.add_job_flags(parser)
  args = common.parse_args(parser, argv)
  common.require(parser, args, 'workdir')
  for name in ('nodes', 'gpus_per_node', 'cpus_per_task'):
    if getattr(args, name) < 1:
      parser.error(f'--{name} must be ≥ 1, got {getattr(args, name)}')
  if args.time and not TIME_FORMAT.fullmatch(args.time):
    parser.error(f'--time={args.time}: expected minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. '
                 '04:00:00 or 1-12:00:00), or UNLIMITED')
  if not args.dry_run:
    common.require_tool('sbatch', 'it submits the job to SLURM, so run this on the cluster (e.g. a login node)')
  return args


def sbatch_script(args) -> str:
  logdir = os.path.abspath(args.logdir)
  options = {'job-name': args.name, 'nodes': args.nodes, 'ntasks-per-node': args.gpus_per_node,
             'gpus-per-node': args.gpus_per_node, 'cpus-per-task': args.cpus_per_task, 'time': args.time,
             'output': f'{logdir}/%x-%j.out', 'open-mode': 'append', 'signal': 'TERM@120',
             'partition': args.partition, 'account': args.account}
  lines = ['#!/bin/bash'] + [f'#SBATCH --{k}={v}' for k, v in options.items() if v] + ['#SBATCH --requeue']
  workdir = args.workdir if '://' in args.workdir else os.path.abspath(args.workdir)  # srun starts in the repo
  job = common.job_command(args.job, args.config, workdir, args.overrides, python='python')
  lines += ['set -euo pipefail', f'cd {shlex.quote(common.ROOT)}', args.setup,
            '# One process per GPU; jax.distributed.initialize() reads the SLURM_* variables.',
            'srun ' + shlex.join(job)]
  return '\n'.join(line for line in lines if line) + '\n'


def main(argv):
  args = parse_args(argv)
  if not args.no_validate:
    common.validate(args.job, args.config, args.overrides, args.nodes * args.gpus_per_node)
  shell = common.Shell(args.dry_run)
  script = sbatch_script(args)
  path = os.path.join(os.path.abspath(args.logdir), f'{args.name}.sbatch')
  shell.note(f'{path}:')
  for line in script.splitlines():
    shell.note('  ' + line)
  if not args.dry_run:
    os.makedirs(args.logdir, exist_ok=True)
    with open(path, 'w') as f:
      f.write(script)
  shell.run(['sbatch', path])


if __name__ == '__main__':
  main(sys.argv[1:])
