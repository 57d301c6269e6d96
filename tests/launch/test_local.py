import json
import os

from conftest import JIT_CACHE
from conftest import ROOT
from launchers import launch
from launchers import words

TINY = ['--config.data.num_train=256', '--config.data.num_test=100', '--config.models.cnn.num_epochs=1',
        '--config.models.mlp.num_epochs=1']
CACHE = {'JAX_COMPILATION_CACHE_DIR': JIT_CACHE, 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
         'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '-1'}


def test_dry_run_prints_one_command_per_config_and_seed(tmp_path):
  code, lines, _ = launch('local', '--config=configs/smoke.py', '--config=configs/sva_smoke.py:lm', '--seeds=0,4',
                          f'--workdir={tmp_path}', '--dry-run', '--', '--config.log_every_steps=5')
  assert code == 0 and len(lines) == 4
  for line, (name, config, seed) in zip(lines, [('smoke', 'configs/smoke.py', 0), ('smoke', 'configs/smoke.py', 4),
                                                ('sva_smoke_lm', 'configs/sva_smoke.py:lm', 0),
                                                ('sva_smoke_lm', 'configs/sva_smoke.py:lm', 4)]):
    workdir = f'{tmp_path}/{name}/seed_{seed}'
    command = words(line)
    assert command[:6] == ['mkdir', '-p', workdir, '&&', 'cd', ROOT]
    assert command[8:14] == ['-m', 'kd_jax.main', f'--config={config}', f'--workdir={workdir}', f'--config.seed={seed}',
                             '--config.log_every_steps=5']
    assert command[-3:] == ['>', f'{workdir}/launch.log', '2>&1']
  assert not os.listdir(tmp_path)


def test_runs_two_seeds_side_by_side_and_reports_a_failed_run(tmp_path):
  code, lines, err = launch('local', '--config=configs/smoke.py', '--seeds=0,1', '--parallel=2',
                            f'--workdir={tmp_path}', '--', *TINY, env=CACHE)
  assert code == 0, err
  results = [json.load(open(tmp_path / 'smoke' / f'seed_{s}' / 'grid.json')) for s in (0, 1)]
  assert [r['seeds'] for r in results] == [[0], [1]]
  students = [r['setups']['cnn_to_mlp']['instances'] for r in results]
  assert students[0] != students[1]  # different seeds, different students
  assert sum(line.startswith('# done in ') for line in lines) == 2
  code, lines, err = launch('local', '--config=configs/smoke.py', f'--workdir={tmp_path}/bad', '--',
                            '--config.models.cnn.num_epochs=-1')
  assert code == 1
  assert f'1 of 1 runs failed; see {tmp_path}/bad/smoke/seed_0/launch.log' in err
  assert 'num_epochs' in open(tmp_path / 'bad' / 'smoke' / 'seed_0' / 'launch.log').read()


def test_bad_seeds_are_a_usage_error():
  code, _, err = launch('local', '--config=configs/smoke.py', '--seeds=0,x', '--dry-run')
  assert code == 2 and '--seeds=0,x: expected comma-separated integers' in err
  code, lines, err = launch('local', '--config=configs/smoke.py', '--seeds=0,1', '--dry-run', '--',
                            '--config.seed=5')
  assert code == 2 and not lines
  assert '--config.seed=5 after -- would give every run that seed: choose seeds with --seeds only' in err


def test_dry_run_prints_each_run_once(tmp_path):
  code, lines, _ = launch('local', '--config=configs/smoke.py', '--config=configs/smoke.py', '--seeds=0,1,0',
                          f'--workdir={tmp_path}', '--dry-run')
  assert code == 0 and [words(line)[2] for line in lines] == [f'{tmp_path}/smoke/seed_0', f'{tmp_path}/smoke/seed_1']


def test_one_config_spelt_several_ways_runs_once(tmp_path):
  """A file written another way (a trailing ':', ./, its absolute path, ..) or variants in another order, repeated or
  spaced are one config (kd_jax.config_lib applies variants in the config's order, once each): they used to be
  runs of their own, into one workdir and one launch.log opened for writing by each."""
  code, lines, err = launch('local', '--config=configs/smoke.py', '--config=configs/smoke.py:',
                            '--config=./configs/smoke.py', f'--config={ROOT}/configs/smoke.py',
                            '--config=configs/../configs/smoke.py',
                            '--config=configs/sva_smoke.py:lm,paper', '--config=configs/sva_smoke.py:paper, lm,lm',
                            '--seeds=0,1', f'--workdir={tmp_path}', '--dry-run')
  assert code == 0, err
  notes, commands = [line for line in lines if line.startswith('# ')], [line for line in lines if line[0] != '#']
  assert [words(line)[2] for line in commands] == [f'{tmp_path}/{name}/seed_{seed}'
                                                   for name in ('smoke', 'sva_smoke_lm_paper') for seed in (0, 1)]
  assert notes == [f'# --config={config} is the same config as --config={first}; it runs once' for config, first in (
      ('configs/smoke.py:', 'configs/smoke.py'), ('./configs/smoke.py', 'configs/smoke.py'),
      (f'{ROOT}/configs/smoke.py', 'configs/smoke.py'), ('configs/../configs/smoke.py', 'configs/smoke.py'),
      ('configs/sva_smoke.py:paper, lm,lm', 'configs/sva_smoke.py:lm,paper'))]


def test_different_configs_that_would_share_a_workdir_are_refused(tmp_path):
  """Configs that differ but whose run names are one directory (a variant with '_' in its name, a file of the same
  name elsewhere) would write one workdir and launch.log: refused before anything runs."""
  for first, second, name in (('configs/sva_smoke.py:paper_teacher', 'configs/sva_smoke.py:paper,teacher',
                               'sva_smoke_paper_teacher'),
                              ('configs/smoke.py', f'{tmp_path}/smoke.py', 'smoke')):
    code, lines, err = launch('local', f'--config={first}', f'--config={second}', f'--workdir={tmp_path}/runs',
                              '--dry-run')
    assert code == 2 and not lines, err
    assert (f'--config={first} and --config={second} would both run in {tmp_path}/runs/{name}: run them with '
            'separate --workdir') in err
