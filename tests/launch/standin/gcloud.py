"""A stand-in ``gcloud`` for the subset launch/tpu.py uses, with a TPU VM's workers as local processes.

State under ``$STANDIN_ROOT`` (the test's directory): ``calls`` (every call, one line each) and ``vms/<name>/``:
``state`` (READY, or PREEMPTED when a test takes the VM away), ``port`` (the slice's coordinator port) and one home
directory per worker, ``worker_<k>/``; ``unreachable`` (a test's) holds every ``ssh`` until it is removed; ``delete`` kills the workers' jobs and moves the VM to ``deleted/<name>.<n>``. Workers: ``$STANDIN_WORKERS`` (default 2), each a CPU host of
``$STANDIN_DEVICES_PER_WORKER`` devices (default 2). ``ssh`` runs the command with bash in each worker's home at
once, in the environment a TPU VM's login shell gives (HOME, the image's ``python3`` and ``uv`` —
stand-ins too, :mod:`uv` — and what JAX learns from the metadata server: worker number, worker count, coordinator,
here through ``sitecustomize``). Not a stand-in for: the real gcloud's output formats beyond these, auth, networks,
JAX's metadata-server detection itself, TPUs.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ['STANDIN_ROOT']


def log_call(argv):
  with open(os.path.join(ROOT, 'calls'), 'a') as f:
    f.write(' '.join(argv) + '\n')


def fail(message, code=1):
  print(f'ERROR: (gcloud) {message}', file=sys.stderr)
  sys.exit(code)


def vm_dir(name):
  return os.path.join(ROOT, 'vms', name)


def workers(name):
  return sorted((d for d in os.listdir(vm_dir(name)) if d.startswith('worker_')), key=lambda d: int(d[7:]))


def flag(argv, name, default=None):
  for arg in argv:
    if arg.startswith(f'--{name}='):
      return arg.split('=', 1)[1]
  return default


def create(name):
  if os.path.exists(vm_dir(name)):
    fail(f'ALREADY_EXISTS: node {name} already exists')
  for k in range(int(os.environ.get('STANDIN_WORKERS', '2'))):
    os.makedirs(os.path.join(vm_dir(name), f'worker_{k}'))
  with socket.socket() as s:  # the coordinator port of this slice
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  write(name, 'port', str(port))
  write(name, 'state', 'READY')


def write(name, what, text):
  with open(os.path.join(vm_dir(name), what), 'w') as f:
    f.write(text)


def read(name, what):
  with open(os.path.join(vm_dir(name), what)) as f:
    return f.read().strip()


def delete(name):
  if not os.path.exists(vm_dir(name)):
    fail(f'NOT_FOUND: node {name}')
  for worker in workers(name):  # a deleted VM's processes end with it
    pid_file = os.path.join(vm_dir(name), worker, 'kd_jax_job.pid')
    if os.path.exists(pid_file):
      try:
        os.killpg(int(open(pid_file).read()), signal.SIGKILL)
      except (ProcessLookupError, ValueError):
        pass
  # Gone for gcloud; its disks kept for the test to read (deleted/<name>.<n>).
  deleted = os.path.join(ROOT, 'deleted')
  os.makedirs(deleted, exist_ok=True)
  os.rename(vm_dir(name), os.path.join(deleted, f'{name}.{len(os.listdir(deleted))}'))


def worker_env(name, k):
  home = os.path.join(vm_dir(name), f'worker_{k}')
  env = {key: value for key, value in os.environ.items() if not key.startswith(('KD_JAX_', 'STANDIN_WORKERS'))}
  env.update(HOME=home, PATH=f'{os.path.join(ROOT, "image_bin")}:{env["PATH"]}', PYTHONPATH=os.path.join(HERE, 'site'),
             JAX_PLATFORMS='cpu',
             XLA_FLAGS=f'--xla_force_host_platform_device_count={os.environ.get("STANDIN_DEVICES_PER_WORKER", "2")}',
             # What JAX would read from the metadata server (sitecustomize.py).
             STANDIN_TPU_WORKER_ID=str(k), STANDIN_TPU_WORKERS=str(len(workers(name))),
             STANDIN_TPU_COORDINATOR=f'127.0.0.1:{read(name, "port")}')
  return home, env


def ssh(name, argv):
  while os.path.exists(os.path.join(vm_dir(name), 'unreachable')):  # a test is taking the VM away
    time.sleep(0.1)
  if read(name, 'state') != 'READY':
    fail(f'ssh: node {name} is {read(name, "state")}', 255)
  command = argv[argv.index('--command') + 1]
  chosen = flag(argv, 'worker', '0')
  ks = range(len(workers(name))) if chosen == 'all' else [int(chosen)]
  procs = []
  for k in ks:
    home, env = worker_env(name, k)
    procs.append(subprocess.Popen(['bash', '-c', command], cwd=home, env=env, stdout=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL))
  codes = []
  for p in procs:  # each worker's output in turn
    out, _ = p.communicate()
    sys.stdout.write(out.decode())
    codes.append(p.returncode)
  sys.exit(next((c for c in codes if c), 0))


def scp(name_and_paths, argv):
  source, destination = name_and_paths
  chosen = flag(argv, 'worker', '0')
  if ':' in source:  # from a worker
    name, path = source.split(':', 1)
    shutil.copy(os.path.join(vm_dir(name), f'worker_{chosen}', path), destination)
    return
  name, path = destination.split(':', 1)
  ks = range(len(workers(name))) if chosen == 'all' else [int(chosen)]
  for k in ks:
    shutil.copy(source, os.path.join(vm_dir(name), f'worker_{k}', path))


def rsync(source, destination, exclude):
  for directory, _, files in os.walk(source):
    for file in files:
      relative = os.path.relpath(os.path.join(directory, file), source)
      if exclude and re.match(exclude, relative):
        continue
      os.makedirs(os.path.dirname(os.path.join(destination, relative)), exist_ok=True)
      shutil.copy(os.path.join(directory, file), os.path.join(destination, relative))


def main(argv):
  log_call(argv)
  words = [a for a in argv if not a.startswith('--')]
  if words[:2] == ['storage', 'rsync']:
    return rsync(words[2], words[3], flag(argv, 'exclude'))
  if words[:3] != ['compute', 'tpus', 'tpu-vm'] and words[:3] != ['compute', 'tpus', 'queued-resources']:
    fail(f'the stand-in does not know {" ".join(argv)}')
  kind, verb, name = words[2], words[3], words[4]
  if verb == 'create':
    return create(name)
  if verb == 'delete':
    return delete(name)
  if not os.path.exists(vm_dir(name.split(':')[0])) and verb != 'scp':
    fail(f'NOT_FOUND: node {name}')
  if verb == 'describe':
    if kind == 'queued-resources':
      return print('ACTIVE')
    if flag(argv, 'format') == 'json':
      return print(json.dumps({'state': read(name, 'state'),
                               'networkEndpoints': [{'ipAddress': '127.0.0.1'} for _ in workers(name)]}))
    return print(read(name, 'state'))
  if verb == 'ssh':
    return ssh(name, argv)
  if verb == 'scp':
    return scp(words[4:6], argv)
  fail(f'the stand-in does not know {" ".join(argv)}')


if __name__ == '__main__':
  main(sys.argv[1:])
