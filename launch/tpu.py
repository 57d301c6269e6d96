"""Runs a kd_jax job on a Cloud TPU VM or pod slice: create, install, run on every worker, fetch, delete.

    python launch/tpu.py --name=kd-grid --project=my-project --zone=us-central2-b --accelerator_type=v4-32 \\
        --workdir=gs://my-bucket/kd/grid --job=grid --config=configs/mnist_grid.py:paper [--spot] [--dry-run] \\
        [-- --config.num_seeds=5]

Steps (``--steps``, in this order): ``create`` the TPU VM (or a queued resource with ``--queued``, waiting until it
is ACTIVE), ``install`` this working tree and ``jax[tpu]`` on every worker, ``run`` the job on every worker at once,
detached (it survives this laptop; ``jax.distributed.initialize()`` finds the slice's other hosts through the TPU
metadata server), waiting for it while worker 0's log is shown here, ``fetch`` the workdir's results (not its
checkpoints) and every worker's log to ``--fetch_to``, ``delete`` the VM (also when a later step fails, but never
after a failed ``create``: a taken name is someone's VM; never while the job runs on after Ctrl-C; ``--keep`` keeps
it). On a job started earlier (``--detach``, or after Ctrl-C): ``--steps=status``, ``logs`` (``--worker=K``) or
``stop`` (SIGTERM: it saves and exits). Workers install into a venv of Python 3.11 (uv) with the ``jax[tpu]``
version kd_jax is tested with. The workdir must be on GCS (or a disk every worker mounts, ``--shared_workdir``):
every worker writes its part of each checkpoint there. A preempted (spot) run is resumed by running the same command
again, or by the launcher itself with ``--retry=K``: the job continues from the newest checkpoint in the workdir.
"""
import argparse
import json
import os
import re
import shlex
import sys
import time

if __package__ in (None, ''):  # run as a script: python launch/tpu.py
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from launch import common  # pylint: disable=g-import-not-at-top,wrong-import-position

STEPS = ('create', 'install', 'run', 'fetch', 'delete')
ACTIONS = ('status', 'logs', 'stop')  # on a job started earlier, each on its own: --steps=status
VENV = 'kd_jax_venv'  # in the worker's home, beside the unpacked tree
# Every worker: unpack the tree, a venv of a Python kd_jax supports (uv fetches it: TPU images ship 3.10), kd_jax
# and the jax[tpu] it is tested with.
INSTALL = ('rm -rf kd_jax && mkdir kd_jax && tar -xzf kd_jax.tar.gz -C kd_jax && '
           '(test -x ~/.local/bin/uv || python3 -m pip install -q --user uv) && '
           f'~/.local/bin/uv venv -q --python {common.WORKER_PYTHON} {VENV} && '
           f'~/.local/bin/uv pip install -q --python {VENV}/bin/python -e "./kd_jax[gcs]" '
           f'"jax[tpu]=={common.TESTED_JAX}"')
# The job on each worker, detached (it survives this laptop and its ssh): its log, process group and exit status
# in the worker's home. bash traps TERM so that it outlives the job's SIGTERM to write the exit status.
JOB_LOG, JOB_PID, JOB_EXIT = '~/kd_jax_job.log', '~/kd_jax_job.pid', '~/kd_jax_job.exit'
# One line per worker: 'kd_jax_job <host>: <exit status | running | lost>' (lost: gone without an exit status).
JOB_STATE = (f'echo "kd_jax_job $(hostname): $(cat {JOB_EXIT} 2>/dev/null || '
             f'(kill -0 $(cat {JOB_PID}) 2>/dev/null && echo running) || echo lost)"')
STOP = f'kill -TERM -- -$(cat {JOB_PID})'  # the job's process group: kd_jax saves a checkpoint and exits 75
PREEMPTED_EXIT = 75  # kd_jax stopped by SIGTERM after saving: the job can resume
WAIT_SECONDS = 30  # between checks of a queued resource's state and of a running job
# Files under a numbered directory are checkpoint steps, .jax_cache the compilation cache: results, metrics, plots and
# TensorBoard are the rest.
CHECKPOINT_FILES = r'(.*/)?([0-9]+(\.damaged)?|\.jax_cache)/.*'


class JobLeftRunning(Exception):
  """The launcher stopped waiting (Ctrl-C) while the job runs on: the VM must not be deleted."""


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--name', required=True, help='TPU VM (and queued resource) name')
  common.add_setting(parser, 'project', 'CLOUDSDK_CORE_PROJECT', 'Google Cloud project')
  common.add_setting(parser, 'zone', 'CLOUDSDK_COMPUTE_ZONE', 'zone, e.g. us-central2-b')
  common.add_setting(parser, 'accelerator_type', 'KD_JAX_TPU_TYPE', 'e.g. v4-8, v5litepod-16')
  common.add_setting(parser, 'runtime_version', 'KD_JAX_TPU_RUNTIME', 'TPU VM software version',
                     'tpu-ubuntu2204-base')
  common.add_setting(parser, 'workdir', 'KD_JAX_WORKDIR', 'gs:// directory for checkpoints and results')
  parser.add_argument('--shared_workdir', action='store_true',
                      help='the workdir is a directory every worker mounts (e.g. Filestore over NFS), not gs://')
  parser.add_argument('--env', action='append', default=[], metavar='KEY=VALUE',
                      help="the job's environment on every worker (repeat the flag), e.g. LIBTPU_INIT_ARGS=…")
  parser.add_argument('--spot', action='store_true', help='a Spot TPU (cheaper, may be preempted)')
  parser.add_argument('--queued', action='store_true', help='request it as a queued resource and wait for it')
  parser.add_argument('--valid_until_duration', default='',
                      help='queued: the request lapses if not granted within this long, e.g. 6h (gcloud syntax)')
  parser.add_argument('--queue_timeout', type=float, default=0,
                      help='queued: give up waiting (and delete the request) after this many seconds; 0: never')
  parser.add_argument('--internal_ips', action='store_true',
                      help="reach the workers by their internal IPs (from a VM in the slice's network)")
  parser.add_argument('--steps', default=','.join(STEPS),
                      help=f'comma-separated subset of {",".join(STEPS)}; or one of {", ".join(ACTIONS)} for a '
                           'job started earlier')
  parser.add_argument('--worker', default='0', help="logs: the worker whose log to show (a number, or all)")
  parser.add_argument('--detach', action='store_true',
                      help='start the job and return (no fetch, no delete): check it with --steps=status/logs')
  parser.add_argument('--poll_seconds', type=float, default=WAIT_SECONDS, help=argparse.SUPPRESS)
  parser.add_argument('--keep', action='store_true', help='do not delete the TPU VM at the end')
  parser.add_argument('--retry', type=int, default=0,
                      help='after a failed step on a VM that was preempted (a Spot VM), create it again and resume, '
                           'up to this many times')
  parser.add_argument('--fetch_to', default='', help='local directory for the results (default: results/<name>)')
  common.add_job_flags(parser)
  args = common.parse_args(parser, argv)
  common.require(parser, args, 'project', 'zone', 'accelerator_type', 'runtime_version', 'workdir')
  size_error = tpu_size_error(args.accelerator_type)
  if size_error:
    parser.error(f'--accelerator_type={args.accelerator_type}: {size_error}')
  if not args.workdir.startswith('gs://') and not args.shared_workdir:
    parser.error(f'--workdir={args.workdir}: the workers of a TPU slice share no disk; use a gs:// directory (or '
                 'one every worker mounts, with --shared_workdir)')
  bad_env = [e for e in args.env if '=' not in e or not e.split('=', 1)[0].isidentifier()]
  if bad_env:
    parser.error(f'--env={bad_env[0]}: expected KEY=VALUE')
  args.steps = args.steps.split(',')
  unknown = sorted(set(args.steps) - set(STEPS) - set(ACTIONS))
  if unknown:
    parser.error(f'--steps: unknown step(s) {", ".join(unknown)}; choose from {", ".join(STEPS + ACTIONS)}')
  if set(args.steps) & set(ACTIONS) and len(args.steps) > 1:
    parser.error(f'--steps={",".join(args.steps)}: {", ".join(ACTIONS)} each run on their own')
  if args.retry < 0:
    parser.error(f'--retry must be ≥ 0, got {args.retry}')
  if args.detach:  # the job outlives this invocation: nothing after it can run now
    args.steps = [s for s in args.steps if s not in ('fetch', 'delete')]
  if args.keep and 'delete' in args.steps:
    args.steps.remove('delete')
  args.fetch_to = args.fetch_to or os.path.join('results', args.name)
  if not args.dry_run:
    common.require_tool('gcloud', 'the Google Cloud CLI, which creates and reaches the TPU VM (install it: '
                                  'https://cloud.google.com/sdk/docs/install)')
  return args


def main(argv):
  args = parse_args(argv)
  shell = common.Shell(args.dry_run)
  tpu = Tpu(shell, args)
  if args.steps[0] in ACTIONS:
    return tpu.action(args.steps[0])
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
      tpu.create()
    preempted, left_running = False, False
    try:
      if 'install' in args.steps:
        archive = f'/tmp/kd_jax_{args.name}.tar.gz'
        shell.run(f'git -C {common.ROOT} ls-files -z --cached --others --exclude-standard '
                  f'| tar -C {common.ROOT} -czf {archive} --null -T -')
        tpu.scp(archive, f'{args.name}:kd_jax.tar.gz', 'all')
        tpu.on_workers(INSTALL)
      if 'run' in args.steps:
        tpu.start(job)
        if not args.detach:
          tpu.wait()
      if 'fetch' in args.steps:
        tpu.fetch()
    except JobLeftRunning as e:
      left_running = True
      raise SystemExit(str(e)) from None
    except SystemExit as e:
      preempted = attempt < args.retry and 'create' in args.steps and tpu.state() == 'PREEMPTED'
      if not preempted:
        raise
      shell.note(str(e).removeprefix('launch: error: '))
    finally:
      if ('delete' in args.steps or preempted) and not left_running:
        tpu.delete()  # a preempted VM keeps its name: it goes before it is made again
    if not preempted:
      return


class Tpu:
  """The gcloud commands for one TPU VM (or queued resource) ``args.name``, printed as they run."""

  def __init__(self, shell: common.Shell, args):
    self.shell, self.args = shell, args
    self.where = [f'--zone={args.zone}', f'--project={args.project}']
    self.tpus = ['gcloud', 'compute', 'tpus']
    self.ip = ['--internal-ip'] if args.internal_ips else []

  def on_workers(self, command: str, worker='all', **kwargs):
    """``command`` (a shell line) run over ssh on ``worker`` ('all', or its number)."""
    return self.shell.run([*self.tpus, 'tpu-vm', 'ssh', self.args.name, f'--worker={worker}', *self.where,
                           *self.ip, '--command', command], **kwargs)

  def scp(self, source: str, destination: str, worker, **kwargs):
    return self.shell.run([*self.tpus, 'tpu-vm', 'scp', source, destination, f'--worker={worker}', *self.where,
                           *self.ip], **kwargs)

  def create(self):
    args, spot = self.args, ['--spot'] if self.args.spot else []
    if not args.queued:
      self.shell.run([*self.tpus, 'tpu-vm', 'create', args.name, *self.where,
                      f'--accelerator-type={args.accelerator_type}', f'--version={args.runtime_version}', *spot])
      return
    valid = [f'--valid-until-duration={args.valid_until_duration}'] if args.valid_until_duration else []
    self.shell.run([*self.tpus, 'queued-resources', 'create', args.name, f'--node-id={args.name}', *self.where,
                    f'--accelerator-type={args.accelerator_type}', f'--runtime-version={args.runtime_version}', *spot,
                    *valid])
    describe = [*self.tpus, 'queued-resources', 'describe', args.name, *self.where, '--format=value(state.state)']
    if args.dry_run:
      self.shell.note(f'repeated every {args.poll_seconds:.0f} s until the state is ACTIVE' +
                      (f' (at most {args.queue_timeout:.0f} s)' if args.queue_timeout else '') + ':')
      self.shell.run(describe)
      return
    start = time.monotonic()
    while True:
      state = self.shell.run(describe, capture=True, echo=False).strip()
      print(f'# queued resource {args.name}: {state}', flush=True)
      if state == 'ACTIVE':
        return
      failed = state in ('FAILED', 'SUSPENDED')
      if failed or (args.queue_timeout and time.monotonic() - start > args.queue_timeout):
        # Our own request (its create succeeded): withdraw it, so that it is not granted later and billed.
        self.shell.run([*self.tpus, 'queued-resources', 'delete', args.name, *self.where, '--force', '--quiet'],
                       check=False)
        raise SystemExit(f'launch: error: queued resource {args.name} is {state}' if failed else
                         f'launch: error: queued resource {args.name} still {state} after --queue_timeout='
                         f'{args.queue_timeout:.0f} s; the request was withdrawn')
      time.sleep(args.poll_seconds)

  def delete(self):
    if self.args.queued:
      self.shell.run([*self.tpus, 'queued-resources', 'delete', self.args.name, *self.where, '--force', '--quiet'],
                     check=False)
    else:
      self.shell.run([*self.tpus, 'tpu-vm', 'delete', self.args.name, *self.where, '--quiet'], check=False)

  def state(self) -> str:
    """The TPU VM's state (e.g. READY, PREEMPTED), as gcloud describes it."""
    return (self.shell.run([*self.tpus, 'tpu-vm', 'describe', self.args.name, *self.where, '--format=value(state)'],
                           capture=True, check=False) or '').strip()

  def num_workers(self) -> int:
    """The slice's hosts: one network endpoint each."""
    out = self.shell.run([*self.tpus, 'tpu-vm', 'describe', self.args.name, *self.where, '--format=json'],
                         capture=True, check=False)
    return len(json.loads(out or '{}').get('networkEndpoints', []))

  def start(self, job):
    """Starts ``job`` detached on every worker (it outlives ssh and this laptop)."""
    env = ' '.join(shlex.quote(e) for e in ['KD_JAX_DISTRIBUTED=auto', *self.args.env])
    detached = f"trap true TERM; env {env} {shlex.join(job)} > {JOB_LOG} 2>&1; echo $? > {JOB_EXIT}"
    self.on_workers(f'cd kd_jax && rm -f {JOB_EXIT} && (setsid nohup bash -c {shlex.quote(detached)} '
                    f'> /dev/null 2>&1 < /dev/null & echo $! > {JOB_PID})')

  def job_states(self):
    """Each worker's job: its exit status, 'running' or 'lost'; None when the workers cannot be reached."""
    out = self.on_workers(JOB_STATE, capture=True, check=False, echo=False)
    states = [line.split(': ', 1)[1].strip() for line in (out or '').splitlines() if line.startswith('kd_jax_job ')]
    return states or None

  def wait(self):
    """Until the job has ended on every worker, showing worker 0's log as it grows; a failed job fails the step."""
    args, shown, failed_since = self.args, 0, None
    if args.dry_run:
      self.shell.note(f'every {args.poll_seconds:.0f} s until the job has ended on every worker: its state, and the '
                      'new lines of the log of worker 0')
      self.on_workers(JOB_STATE)
      self.on_workers(f'tail -n +1 {JOB_LOG}', worker=0)
      return
    print(f'# waiting for the job on every worker (Ctrl-C stops waiting; the job runs on)', flush=True)
    try:
      while True:
        time.sleep(args.poll_seconds)
        log = self.on_workers(f'tail -n +{shown + 1} {JOB_LOG}', worker=0, capture=True, check=False, echo=False)
        if log:
          print(log, end='' if log.endswith('\n') else '\n', flush=True)
          shown += log.count('\n')
        states = self.job_states()
        if states is None:  # unreachable: a network hiccup, or the VM was taken away (then it is not READY)
          state = self.state()
          if state not in ('READY', ''):
            raise SystemExit(f'launch: error: {args.name} is {state}; the job on it was stopped')
          print('# the workers did not answer; trying again', flush=True)
          continue
        ended = [s for s in states if s != 'running']
        if len(ended) == len(states):
          break
        crashed = [s for s in ended if s not in ('0', str(PREEMPTED_EXIT))]
        if crashed:  # the others wait for it in a collective forever: end them too (after one more look)
          if failed_since is not None:
            self.on_workers(f'kill -KILL -- -$(cat {JOB_PID})', check=False)
          failed_since = failed_since or time.monotonic()
    except KeyboardInterrupt:
      raise JobLeftRunning(
          f'launch: stopped waiting; the job runs on, on {args.name}. See it with --steps=status or --steps=logs '
          '(--worker=K), stop it with --steps=stop, then --steps=fetch,delete') from None
    codes = sorted(set(states), key=lambda s: (s == '0', s == str(PREEMPTED_EXIT), s))
    if codes != ['0']:
      raise SystemExit(f'launch: error: the job ended with {", ".join(f"{s} on {states.count(s)} worker(s)" for s in codes)}'
                       f" (worker logs: --steps=logs --worker=K)")

  def fetch(self):
    """The workdir's results (not its checkpoints) and every worker's log (logs/worker_<k>.log)."""
    args = self.args
    self.shell.run(['mkdir', '-p', os.path.join(args.fetch_to, 'logs')])
    self.shell.run(['gcloud', 'storage', 'rsync', '--recursive', f'--exclude={CHECKPOINT_FILES}', args.workdir,
                    args.fetch_to])
    if args.dry_run:
      self.shell.note('for each worker K of the slice (networkEndpoints of describe --format=json):')
      self.scp(f'{args.name}:{JOB_LOG.removeprefix("~/")}', os.path.join(args.fetch_to, 'logs', 'worker_K.log'), 'K')
      return
    for k in range(self.num_workers()):
      self.scp(f'{args.name}:{JOB_LOG.removeprefix("~/")}', os.path.join(args.fetch_to, 'logs', f'worker_{k}.log'), k,
               check=False)

  def action(self, name: str):
    """status, logs or stop of the job started on the VM earlier."""
    if name == 'status':
      self.on_workers(JOB_STATE)
    elif name == 'logs':
      self.on_workers(f'tail -n 100 {JOB_LOG}', worker=self.args.worker)
    else:
      self.on_workers(STOP)


# JAX devices per unit of the accelerator type's size: v2/v3 count TensorCores, one device each; v4/v5p count
# TensorCores too, but two make one device (megacore); v5e/v6e count chips, one core each.
DEVICES_PER_UNIT = {'v2': 1, 'v3': 1, 'v4': 0.5, 'v5p': 0.5, 'v5litepod': 1, 'v5e': 1, 'v6e': 1}


# The sizes each generation comes in, in the units above: a simple check that refuses types no slice has (v4-7,
# v5litepod-2, v6e-512), not gcloud's exact list. v2/v3/v4/v5p slices are whole hosts of 4 chips (8 TensorCores), so
# N is a multiple of 8, up to the pod (v2-512, v3-2048, v4-8192: 4,096 chips) or v5p's largest slice (v5p-12288);
# v5e/v6e slices are the 2D shapes 1x1, 2x2, 2x4, 4x4, 4x8, 8x8, 8x16 and 16x16 of chips.
_WHOLE_HOSTS = {'v2': 512, 'v3': 2048, 'v4': 8192, 'v5p': 12288}
_SLICE_CHIPS = (1, 4, 8, 16, 32, 64, 128, 256)
TPU_SIZES = {**{g: range(8, top + 1, 8) for g, top in _WHOLE_HOSTS.items()},
             **{g: _SLICE_CHIPS for g in ('v5litepod', 'v5e', 'v6e')}}


def tpu_size_error(accelerator_type: str) -> str:
  """Why a TPU type of a known generation does not exist ('' if it may; a generation unknown here is tpu_devices'
  to refuse, or gcloud's with --no_validate)."""
  generation, _, size = accelerator_type.rpartition('-')
  sizes = TPU_SIZES.get(generation)
  if sizes is None or (re.fullmatch(r'[1-9][0-9]*', size) and int(size) in sizes):
    return ''
  known = (f'{generation}-N with N a multiple of 8 from 8 to {sizes[-1]}' if isinstance(sizes, range) else
           f'{generation}-N with N one of {", ".join(map(str, sizes))}')
  return f'no such TPU type: {known}'


def tpu_devices(accelerator_type: str) -> int:
  """The number of JAX devices of a TPU slice, e.g. v4-32 → 16, v5litepod-16 → 16, v3-8 → 8."""
  generation, _, size = accelerator_type.rpartition('-')
  if generation not in DEVICES_PER_UNIT or not size.isdigit():
    raise SystemExit(f'launch: error: --accelerator_type={accelerator_type}: expected <generation>-<size> with a '
                     f'generation of {", ".join(DEVICES_PER_UNIT)} (or pass --no_validate)')
  return max(1, int(int(size) * DEVICES_PER_UNIT[generation]))


if __name__ == '__main__':
  main(sys.argv[1:])
