import json
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT
from conftest import assert_same_numbers
from launchers import CACHE_ENV
from launchers import JOB
from launchers import STANDIN
from launchers import TEACHER_CHECKPOINT
from launchers import TIMEOUT_S
from launchers import launch
from launchers import words


def test_dry_run_prints_the_sbatch_script_and_submits_nothing(tmp_path):
  code, lines, _ = launch('slurm', '--name=kd', '--nodes=2', '--gpus_per_node=8', '--partition=gpu', '--time=02:00:00',
                          '--workdir=runs/kd', f'--logdir={tmp_path}/logs', '--config=configs/smoke.py', '--dry-run',
                          '--', '--config.seed=3', cwd=str(tmp_path))
  assert code == 0 and lines.pop(0) == '# the config is valid for main on 16 device(s)'  # 2 nodes × 8 GPUs
  script = [line.removeprefix('#   ') for line in lines[1:-1]]
  assert lines[0] == f'# {tmp_path}/logs/kd.sbatch:'
  # One task (JAX process) per GPU: JAX's SLURM detection gives each process the GPU of its SLURM_LOCALID.
  assert script[:11] == ['#!/bin/bash', '#SBATCH --job-name=kd', '#SBATCH --nodes=2', '#SBATCH --ntasks-per-node=8',
                         '#SBATCH --gpus-per-node=8', '#SBATCH --cpus-per-task=8', '#SBATCH --time=02:00:00',
                         f'#SBATCH --output={tmp_path}/logs/%x-%j.out', '#SBATCH --open-mode=append',
                         '#SBATCH --signal=TERM@120', '#SBATCH --partition=gpu']
  assert '#SBATCH --requeue' in script and not any('--account' in line for line in script)
  assert script[-4:-2] == [f'cd {ROOT}', 'source .venv/bin/activate']
  # The relative workdir is made absolute: srun starts in the repository, not where the launcher ran.
  assert words(script[-1]) == ['srun', 'python', '-m', 'kd_jax.main', '--config=configs/smoke.py',
                               f'--workdir={tmp_path}/runs/kd', '--config.seed=3']
  assert words(lines[-1]) == ['sbatch', f'{tmp_path}/logs/kd.sbatch']
  assert not os.path.exists(tmp_path / 'logs')  # a dry run writes nothing


def test_the_script_is_written_before_sbatch_runs(tmp_path):
  fake_bin = tmp_path / 'bin'
  fake_bin.mkdir()
  (fake_bin / 'sbatch').write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/submitted\n')
  (fake_bin / 'sbatch').chmod(0o755)
  code, _, err = launch('slurm', '--name=g', '--workdir=gs://b/g', f'--logdir={tmp_path}/logs', '--job=grid',
                        '--config=configs/grid_smoke.py', env={'PATH': f'{fake_bin}:{os.environ["PATH"]}',
                                                               'KD_JAX_SLURM_ACCOUNT': 'lab'}, cwd=str(tmp_path))
  assert code == 0, err
  assert (tmp_path / 'submitted').read_text().split() == [f'{tmp_path}/logs/g.sbatch']
  script = (tmp_path / 'logs' / 'g.sbatch').read_text()
  assert '#SBATCH --account=lab\n' in script
  assert script.endswith('srun python -m kd_jax.grid --config=configs/grid_smoke.py --workdir=gs://b/g\n')


def test_bad_settings_are_usage_errors():
  code, _, err = launch('slurm', '--name=kd', '--config=configs/smoke.py', '--dry-run')
  assert code == 2 and 'missing --workdir (or $KD_JAX_WORKDIR)' in err
  code, _, err = launch('slurm', '--name=kd', '--workdir=/w', '--nodes=0', '--config=configs/smoke.py', '--dry-run')
  assert code == 2 and '--nodes must be ≥ 1, got 0' in err


def test_a_preempted_job_of_two_nodes_by_two_tasks_is_requeued_and_resumes(tmp_path):
  """``python launch/slurm.py`` for real with a stand-in sbatch and srun (tests/launch/standin/): 4 local processes
  that find each other through JAX's own SLURM detection (``jax.distributed.initialize()``, no arguments) and train
  over gloo; SLURM's SIGTERM to every task once the teacher has saved, the requeued job resumes and its results
  match the same job run as one process of 4 devices (to rounding: reductions over 4 processes add in another order;
  this is also kd_jax's 4-processes-equal-one test)."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for tool, target in (('sbatch', f'{STANDIN}/sbatch.py'), ('srun', f'{STANDIN}/srun.py'), ('python', '')):
    (bin_dir / tool).write_text(f'#!/bin/sh\nexec {sys.executable} {target} "$@"\n')
    (bin_dir / tool).chmod(0o755)
  env = {k: v for k, v in os.environ.items() if not k.startswith(('KD_JAX_', 'XLA_FLAGS'))}
  env.update(PATH=f'{bin_dir}:{env["PATH"]}', STANDIN_ROOT=str(tmp_path), **CACHE_ENV)
  workdir = tmp_path / 'run'
  launcher = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'launch', 'slurm.py'), '--name=kd', '--nodes=2', '--gpus_per_node=2',
       f'--workdir={workdir}', f'--logdir={tmp_path}/logs', '--setup=true', '--config=configs/smoke.py', '--', *JOB],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  deadline = time.monotonic() + TIMEOUT_S
  try:
    while not workdir.joinpath(*TEACHER_CHECKPOINT).is_dir():
      assert launcher.poll() is None and time.monotonic() < deadline, 'the job ended before its first checkpoint'
      time.sleep(0.1)
    for pid in (tmp_path / 'tasks').read_text().split():  # a preemption: SIGTERM to every task
      os.kill(int(pid), signal.SIGTERM)
    out, _ = launcher.communicate(timeout=TIMEOUT_S)
  finally:
    if launcher.poll() is None:
      launcher.kill()
  assert launcher.returncode == 0, out[-2000:]
  assert (tmp_path / 'jobs').read_text().split() == ['75', '0']  # stopped with a checkpoint, requeued, finished
  log = next((tmp_path / 'logs').glob('kd-*.out')).read_text()
  assert log.count('preempted (SIGTERM) at step') == 4 and 'resuming from the checkpoint at step' in log, log[-3000:]
  resumed = json.loads((workdir / 'grid.json').read_text())
  assert resumed['num_devices'] == 4  # 2 nodes × 2 tasks, one device each
  single = tmp_path / 'single'
  subprocess.run([sys.executable, '-m', 'kd_jax.main', '--config=configs/smoke.py', f'--workdir={single}', *JOB],
                 cwd=ROOT, check=True, capture_output=True,
                 env={**env, 'XLA_FLAGS': '--xla_force_host_platform_device_count=4', 'JAX_PLATFORMS': 'cpu'})
  assert_same_numbers(resumed, json.loads((single / 'grid.json').read_text()))


def test_a_time_limit_in_no_slurm_format_is_a_usage_error(tmp_path):
  """--time used to be written into the script as is: sbatch refused it only at submission (or a newline in it added
  lines to the script)."""
  flags = ['--name=kd', '--workdir=/w', f'--logdir={tmp_path}', '--config=configs/smoke.py', '--dry-run',
           '--no_validate']
  for time in ('abc', '4h', '1:00:00:00', '10:60', '1:60:00', '1-24', '1-', ':30', '2 days', '04:00:00\n#SBATCH -N 64'):
    code, lines, err = launch('slurm', *flags, f'--time={time}')
    assert code == 2 and not lines, time
    assert (f'--time={time}: expected minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 04:00:00 or '
            '1-12:00:00), or UNLIMITED') in err
  for time in ('90', '0', '30:00', '4:00:00', '100:00:00', '2-12', '2-12:30', '2-0:30:00', 'UNLIMITED', 'infinite'):
    code, lines, err = launch('slurm', *flags, f'--time={time}')
    assert code == 0 and f'#   #SBATCH --time={time}' in lines, (time, err)
  code, lines, err = launch('slurm', *flags, '--time=')  # empty: the partition's default limit
  assert code == 0 and not any('--time' in line for line in lines), err


def test_without_sbatch_one_line_names_it_before_anything_is_written(tmp_path):
  """No sbatch on PATH (not on the cluster) used to be a FileNotFoundError traceback, after the script was written."""
  flags = ['--name=kd', '--workdir=/w', f'--logdir={tmp_path}/logs', '--config=configs/smoke.py', '--no_validate']
  code, lines, err = launch('slurm', *flags, env={'PATH': str(tmp_path)})
  assert code == 2 and not lines and not os.path.exists(tmp_path / 'logs')
  assert err.splitlines() == ['launch: error: sbatch not found on PATH: it submits the job to SLURM, so run this on the '
                              'cluster (e.g. a login node); --dry-run prints the plan without it']
  code, lines, err = launch('slurm', *flags, '--dry-run', env={'PATH': str(tmp_path)})  # a dry run needs no sbatch
  assert code == 0 and words(lines[-1]) == ['sbatch', f'{tmp_path}/logs/kd.sbatch'], err
