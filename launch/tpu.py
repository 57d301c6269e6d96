"""Runs a kd_jax job on a Cloud TPU VM or pod slice: create, install, run on every worker, fetch, delete.

    python launch/tpu.py --name=kd-grid --project=my-project --zone=us-central2-b --accelerator_type=v4-32 \\
        --workdir=gs://my-bucket/kd/grid --job=grid --config=configs/mnist_grid.py:paper [--spot] [--dry-run] \\
        [-- --config.num_seeds=5]

Steps (``--steps``, in this order): ``create`` the TPU VM (or a queued resource with ``--queued``, waiting until it
is ACTIVE), ``install`` this working tree and ``jax[tpu]`` on every worker, ``run`` the job on every worker at once
(``jax.distributed.initialize()`` finds the slice's other hosts through the TPU metadata server; the log streams
here), ``fetch`` the workdir's results (not its
checkpoints) to ``--fetch_to``, ``delete`` the VM (also when a later step fails, but never after a failed
``create``: a taken name is someone's VM; ``--keep`` keeps it). Workers install into a venv of Python 3.11 (uv) with
the ``jax[tpu]`` version kd_jax is tested with. The workdir must be
on GCS: every worker writes its part of each checkpoint there. A preempted (spot) run is resumed by running the same
command again, or by the launcher itself with ``--retry=K``: the job continues from the newest checkpoint in the
workdir.
"""
import argparse
import os
import shlex
import sys
import time

if __package__ in (None, ''):  # run as a script: python launch/tpu.py
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from launch import common  # pylint: disable=g-import-not-at-top,wrong-import-position

STEPS = ('create', 'install', 'run', 'fetch', 'delete')
VENV = 'kd_jax_venv'  # in the worker's home, beside the unpacked tree
# Every worker: unpack the tree, a venv of a Python kd_jax supports (uv fetches it: TPU images ship 3.10), kd_jax
# and the jax[tpu] it is tested with.
INSTALL = ('rm -rf kd_jax && mkdir kd_jax && tar -xzf kd_jax.tar.gz -C kd_jax && '
           'python3 -m pip install -q --user uv && '
           f'~/.local/bin/uv venv -q --python {common.WORKER_PYTHON} {VENV} && '
           f'~/.local/bin/uv pip install -q --python {VENV}/bin/python -e "./kd_jax[gcs]" '
           f'"jax[tpu]=={common.TESTED_JAX}"')
WAIT_SECONDS = 30  # between checks of a queued resource's state
# Files under a numbered directory are checkpoint steps, .jax_cache the compilation cache: results, metrics, plots and
# TensorBoard are the rest.
CHECKPOINT_FILES = r'(.*/)?([0-9]+(\.damaged)?|\.jax_cache)/.*'


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--name', required=True, help='TPU VM (and queued resource) name')
  common.add_setting(parser, 'project', 'CLOUDSDK_CORE_PROJECT', 'Google Cloud project')
  common.add_setting(parser, 'zone', 'CLOUDSDK_COMPUTE_ZONE', 'zone, e.g. us-central2-b')
  common.add_setting(parser, 'accelerator_type', 'KD_JAX_TPU_TYPE', 'e.g. v4-8, v5litepod-16')
  common.add_setting(parser, 'runtime_version', 'KD_JAX_TPU_RUNTIME', 'TPU VM software version',
                     'tpu-ubuntu2204-base')
  common.add_setting(parser, 'workdir', 'KD_JAX_WORKDIR', 'gs:// directory for checkpoints and results')
  parser.add_argument('--spot', action='store_true', help='a Spot TPU (cheaper, may be preempted)')
  parser.add_argument('--queued', action='store_true', help='request it as a queued resource and wait for it')
  parser.add_argument('--steps', default=','.join(STEPS), help=f'comma-separated subset of {",".join(STEPS)}')
  parser.add_argument('--keep', action='store_true', help='do not delete the TPU VM at the end')
  parser.add_argument('--retry', type=int, default=0,
                      help='after a failed step on a VM that was preempted (a Spot VM), create it again and resume, '
                           'up to this many times')
  parser.add_argument('--fetch_to', default='', help='local directory for the results (default: results/<name>)')
  common.add_job_flags(parser)
  args = common.parse_args(parser, argv)
  common.require(parser, args, 'project', 'zone', 'accelerator_type', 'runtime_version', 'workdir')
  if not args.workdir.startswith('gs://'):
    parser.error(f'--workdir={args.workdir}: the workers of a TPU slice share no disk; use a gs:// directory')
  args.steps = args.steps.split(',')
  unknown = sorted(set(args.steps) - set(STEPS))
  if unknown:
    parser.error(f'--steps: unknown step(s) {", ".join(unknown)}; choose from {", ".join(STEPS)}')
  if args.retry < 0:
    parser.error(f'--retry must be ≥ 0, got {args.retry}')
  if args.keep and 'delete' in args.steps:
    args.steps.remove('delete')
  args.fetch_to = args.fetch_to or os.path.join('results', args.name)
  return args


def main(argv):
  args = parse_args(argv)
  shell = common.Shell(args.dry_run)
  where = [f'--zone={args.zone}', f'--project={args.project}']
  tpus = ['gcloud', 'compute', 'tpus']
  on_workers = [*tpus, 'tpu-vm', 'ssh', args.name, '--worker=all', *where, '--command']
  # Checks --config before anything is created. The workers' Python is the venv's; KD_JAX_DISTRIBUTED=auto makes
  # the job call jax.distributed.initialize(), which finds a TPU VM slice's hosts through its metadata server.
  job = common.job_command(args.job, args.config, args.workdir, args.overrides, python=f'../{VENV}/bin/python')
  if not args.no_validate:
    common.validate(args.job, args.config, args.overrides, tpu_devices(args.accelerator_type))
  for attempt in range(args.retry + 1):
    if attempt:
      shell.note(f'{args.name} was preempted: creating it again and resuming from the checkpoints in '
                 f'{args.workdir} (attempt {attempt + 1} of {args.retry + 1})')
    if 'create' in args.steps:  # outside the try: a failed create (e.g. the name is taken) deletes nothing
      create(shell, args, tpus, where)
    preempted = False
    try:
      if 'install' in args.steps:
        archive = f'/tmp/kd_jax_{args.name}.tar.gz'
        shell.run(f'git -C {common.ROOT} ls-files -z --cached --others --exclude-standard '
                  f'| tar -C {common.ROOT} -czf {archive} --null -T -')
        shell.run([*tpus, 'tpu-vm', 'scp', archive, f'{args.name}:kd_jax.tar.gz', '--worker=all', *where])
        shell.run([*on_workers, INSTALL])
      if 'run' in args.steps:
        shell.run([*on_workers, 'cd kd_jax && KD_JAX_DISTRIBUTED=auto ' + shlex.join(job)])
      if 'fetch' in args.steps:
        shell.run(['mkdir', '-p', args.fetch_to])
        shell.run(['gcloud', 'storage', 'rsync', '--recursive', f'--exclude={CHECKPOINT_FILES}', args.workdir,
                   args.fetch_to])
    except SystemExit:
      preempted = attempt < args.retry and 'create' in args.steps and state(shell, args, tpus, where) == 'PREEMPTED'
      if not preempted:
        raise
    finally:
      if 'delete' in args.steps or preempted:  # a preempted VM keeps its name: it goes before it is made again
        if args.queued:
          shell.run([*tpus, 'queued-resources', 'delete', args.name, *where, '--force', '--quiet'], check=False)
        else:
          shell.run([*tpus, 'tpu-vm', 'delete', args.name, *where, '--quiet'], check=False)
    if not preempted:
      return


def state(shell, args, tpus, where) -> str:
  """The TPU VM's state (e.g. READY, PREEMPTED), as gcloud describes it."""
  return (shell.run([*tpus, 'tpu-vm', 'describe', args.name, *where, '--format=value(state)'], capture=True,
                    check=False) or '').strip()


# JAX devices per unit of the accelerator type's size: v2/v3 count TensorCores, one device each; v4/v5p count
# TensorCores too, but two make one device (megacore); v5e/v6e count chips, one core each.
DEVICES_PER_UNIT = {'v2': 1, 'v3': 1, 'v4': 0.5, 'v5p': 0.5, 'v5litepod': 1, 'v5e': 1, 'v6e': 1}


def tpu_devices(accelerator_type: str) -> int:
  """The number of JAX devices of a TPU slice, e.g. v4-32 → 16, v5litepod-16 → 16, v3-8 → 8."""
  generation, _, size = accelerator_type.rpartition('-')
  if generation not in DEVICES_PER_UNIT or not size.isdigit():
    raise SystemExit(f'launch: error: --accelerator_type={accelerator_type}: expected <generation>-<size> with a '
                     f'generation of {", ".join(DEVICES_PER_UNIT)} (or pass --no_validate)')
  return max(1, int(int(size) * DEVICES_PER_UNIT[generation]))


def create(shell, args, tpus, where):
  spot = ['--spot'] if args.spot else []
  if not args.queued:
    shell.run([*tpus, 'tpu-vm', 'create', args.name, *where, f'--accelerator-type={args.accelerator_type}',
               f'--version={args.runtime_version}', *spot])
    return
  shell.run([*tpus, 'queued-resources', 'create', args.name, f'--node-id={args.name}', *where,
             f'--accelerator-type={args.accelerator_type}', f'--runtime-version={args.runtime_version}', *spot])
  describe = [*tpus, 'queued-resources', 'describe', args.name, *where, '--format=value(state.state)']
  if args.dry_run:
    shell.note(f'repeated every {WAIT_SECONDS} s until the state is ACTIVE:')
    shell.run(describe)
    return
  while True:
    state = shell.run(describe, capture=True).strip()
    print(f'# queued resource {args.name}: {state}', flush=True)
    if state == 'ACTIVE':
      return
    if state in ('FAILED', 'SUSPENDED'):
      raise SystemExit(f'launch: error: queued resource {args.name} is {state}')
    time.sleep(WAIT_SECONDS)


if __name__ == '__main__':
  main(sys.argv[1:])
