"""A simulated TPU pod slice, end to end: ``python launch/tpu.py`` for real against a stand-in ``gcloud``
(tests/launch/standin/) whose 2 workers are local processes, each a host of 2 CPU devices; the job finds its peers
through ``jax.distributed.initialize()`` with no arguments (the stand-in's cluster in place of the metadata server)
and trains over gloo. Replaced by stand-ins: gcloud itself, uv's download of Python and jax[tpu], GCS (the workdir
is a directory both workers share, ``--shared_workdir``), JAX's metadata-server detection and the TPUs.
"""
import json
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT
from launchers import CACHE_ENV
from launchers import JOB
from launchers import STANDIN
from launchers import TEACHER_CHECKPOINT
from launchers import TIMEOUT_S


def _standin(tmp_path):
  """The stand-in's directory and the launcher's environment (gcloud on PATH; the image's python3 and uv)."""
  root = tmp_path / 'gcloud'
  for directory, tools in (('bin', {'gcloud': 'gcloud.py'}), ('image_bin', {})):
    (root / directory).mkdir(parents=True)
    for tool, script in tools.items():
      (root / directory / tool).write_text(f'#!/bin/sh\nexec {sys.executable} {STANDIN}/{script} "$@"\n')
      (root / directory / tool).chmod(0o755)
  # The image's python3: `python3 -m pip install --user uv` puts the stand-in uv where pip would.
  (root / 'image_bin' / 'python3').write_text(
      '#!/bin/sh\nif [ "$*" = "-m pip install -q --user uv" ]; then mkdir -p ~/.local/bin && '
      f'printf \'#!/bin/sh\\nexec {sys.executable} {STANDIN}/uv.py "$@"\\n\' > ~/.local/bin/uv && '
      f'chmod +x ~/.local/bin/uv; else exec {sys.executable} "$@"; fi\n')
  (root / 'image_bin' / 'python3').chmod(0o755)
  env = {k: v for k, v in os.environ.items() if not k.startswith(('KD_JAX_', 'CLOUDSDK_', 'XLA_FLAGS'))}
  env.update(PATH=f'{root / "bin"}:{env["PATH"]}', STANDIN_ROOT=str(root), STANDIN_PYTHON=sys.executable, **CACHE_ENV)
  return root, env


def _launch(env, name, workdir, fetch_to, *flags):
  return subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'launch', 'tpu.py'), f'--name={name}', '--project=p', '--zone=z',
       '--accelerator_type=v4-8', f'--workdir={workdir}', '--shared_workdir', '--config=configs/smoke.py',
       f'--fetch_to={fetch_to}', '--poll_seconds=1', *flags, '--', *JOB],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=TIMEOUT_S):
  try:
    out, _ = proc.communicate(timeout=timeout)
  finally:
    if proc.poll() is None:
      proc.kill()
  return proc.returncode, out


def _comparable(report):
  """A grid report's numbers: every setup's instances and the devices (not timings, paths or config)."""
  return {setup: value['instances'] for setup, value in report['setups'].items()}, report['num_devices']


def test_a_preempted_pod_slice_resumes_to_the_results_of_an_unbroken_run(tmp_path):
  root, env = _standin(tmp_path)
  # Unbroken: create → install → run on 2 workers → fetch → delete.
  code, out = _finish(_launch(env, 'kd-pod', tmp_path / 'bucket' / 'unbroken', tmp_path / 'unbroken'))
  assert code == 0, out[-3000:]
  unbroken = json.loads((tmp_path / 'unbroken' / 'grid.json').read_text())
  assert unbroken['num_devices'] == 4  # 2 hosts × 2 devices: one job over both workers
  logs = [(tmp_path / 'unbroken' / 'logs' / f'worker_{k}.log').read_text() for k in (0, 1)]
  assert all('cnn_to_mlp_seed_0 step' in log for log in logs), logs[1][-2000:]
  assert not (tmp_path / 'unbroken').joinpath(*TEACHER_CHECKPOINT).exists()  # results, not checkpoints
  installs = (root / 'installs').read_text().splitlines()  # each worker: a venv of 3.11, then kd_jax and jax[tpu]
  assert sorted(installs) == ['pip install -q --python kd_jax_venv/bin/python -e ./kd_jax[gcs] jax[tpu]==0.10.2'] * 2 + [
      'venv -q --python 3.11 kd_jax_venv'] * 2
  assert not os.listdir(root / 'vms')  # deleted

  # Preempted: SIGTERM to worker 1 alone once the teacher has saved its first checkpoint, the VM PREEMPTED.
  workdir = tmp_path / 'bucket' / 'preempted'
  launcher = _launch(env, 'kd-pod', workdir, tmp_path / 'preempted', '--spot', '--retry=1')
  vm = root / 'vms' / 'kd-pod'
  deadline = time.monotonic() + TIMEOUT_S
  try:
    while not workdir.joinpath(*TEACHER_CHECKPOINT).is_dir():
      assert launcher.poll() is None and time.monotonic() < deadline, 'the run ended before its first checkpoint'
      time.sleep(0.1)
    # A preemption: the VM stops answering, one host gets SIGTERM, the processes end, the VM is PREEMPTED.
    (vm / 'unreachable').touch()
    os.killpg(int((vm / 'worker_1' / 'kd_jax_job.pid').read_text()), signal.SIGTERM)
    while not all((vm / f'worker_{k}' / 'kd_jax_job.exit').exists() for k in (0, 1)):
      assert time.monotonic() < deadline, 'the workers did not stop after SIGTERM'
      time.sleep(0.1)
    (vm / 'state').write_text('PREEMPTED')
    (vm / 'unreachable').unlink()
  finally:
    code, out = _finish(launcher)
  assert code == 0, out[-3000:]
  assert 'kd-pod is PREEMPTED; the job on it was stopped' in out and 'was preempted: creating it again and resuming' in out
  # Both workers stopped at the same step and saved there together, though only worker 1 was signalled.
  first = root / 'deleted' / 'kd-pod.1'  # (kd-pod.0: the unbroken run's VM)
  stops = [[line for line in (first / f'worker_{k}' / 'kd_jax_job.log').read_text().splitlines()
            if 'preempted (SIGTERM) at step' in line] for k in (0, 1)]
  assert len(stops[0]) == len(stops[1]) == 1, stops
  assert stops[0][0].split('at step')[1].split(';')[0] == stops[1][0].split('at step')[1].split(';')[0]
  assert [(first / f'worker_{k}' / 'kd_jax_job.exit').read_text().strip() for k in (0, 1)] == ['75', '75']
  resumed_log = (tmp_path / 'preempted' / 'logs' / 'worker_0.log').read_text()
  assert 'resuming from the checkpoint at step' in resumed_log
  resumed = json.loads((tmp_path / 'preempted' / 'grid.json').read_text())
  assert _comparable(resumed) == _comparable(unbroken)  # not just close: the same 2-process run


def test_a_failed_create_deletes_nothing(tmp_path):
  root, env = _standin(tmp_path)
  subprocess.run(['gcloud', 'compute', 'tpus', 'tpu-vm', 'create', 'kd-pod', '--zone=z'], env=env, check=True)
  code, out = _finish(_launch(env, 'kd-pod', tmp_path / 'run', tmp_path / 'results', '--no_validate'))
  assert code == 1 and 'ALREADY_EXISTS' in out
  calls = (root / 'calls').read_text().splitlines()
  assert len(calls) == 2 and ' delete ' not in calls[1]
  assert (root / 'vms' / 'kd-pod' / 'state').read_text() == 'READY'  # someone's VM, untouched
