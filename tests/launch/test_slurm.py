import os

from conftest import ROOT
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
