import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from conftest import load_config
from kd_jax.mnist import data as data_lib
from kd_jax.mnist import experiment

def smoke_config(data_dir, **overrides):
  return load_config('smoke', data_dir=data_dir, **overrides)


def _check_results(results):
  for role in ('teacher', 'student'):
    assert set(results[role]) == set(data_lib.TEST_SETS)
    for metrics in results[role].values():
      assert 0.0 <= metrics['accuracy'] <= 1.0 and 0.0 <= metrics['ece'] <= 1.0
  assert results['data_source']


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory, tiny_mnist_dir):
  workdir = str(tmp_path_factory.mktemp('run'))
  config = smoke_config(tiny_mnist_dir, **{'data.num_train': 0, 'data.num_test': 0})
  return workdir, experiment.run(config, workdir)


def test_end_to_end_writes_results_checkpoints_and_metrics(finished_run):
  workdir, results = finished_run
  _check_results(results)
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f)['teacher'] == results['teacher']
  table = open(os.path.join(workdir, 'results.md')).read()
  assert '| teacher (cnn) |' in table and '| student (mlp) |' in table and 'MNIST-Translated acc' in table
  assert results['num_train'] == 1000 and results['num_test'] == 200 and not results['demo_sample']
  assert os.listdir(os.path.join(workdir, 'teacher')) and os.listdir(os.path.join(workdir, 'student'))
  assert os.listdir(os.path.join(workdir, 'tensorboard'))
  phases = {json.loads(line)['phase'] for line in open(os.path.join(workdir, 'metrics.jsonl'))}
  assert phases == {'teacher', 'student'}
  assert results['teacher']['mnist']['accuracy'] > 0.2  # the tiny teacher learned something


def test_offline_kd_from_the_saved_teacher(finished_run, tiny_mnist_dir, tmp_path):
  first_workdir, first = finished_run
  config = smoke_config(tiny_mnist_dir, **{'data.num_train': 0, 'data.num_test': 0,
                                           'teacher.checkpoint': os.path.join(first_workdir, 'teacher')})
  results = experiment.run(config, str(tmp_path))
  assert not os.path.exists(tmp_path / 'teacher')  # no teacher was trained
  assert results['teacher'] == first['teacher']  # the very same teacher
  assert results['student'] == first['student']  # same seed, same teacher, same data order


def test_rerun_in_a_finished_workdir_resumes_instead_of_retraining(finished_run, tiny_mnist_dir):
  workdir, first = finished_run
  config = smoke_config(tiny_mnist_dir, **{'data.num_train': 0, 'data.num_test': 0})
  assert experiment.run(config, workdir)['student'] == first['student']
  config.student.num_epochs = 2.0
  with pytest.raises(ValueError, match='fresh --workdir'):
    experiment.run(config, workdir)


def test_missing_teacher_checkpoint_never_means_a_random_teacher(tiny_mnist_dir, tmp_path):
  config = smoke_config(tiny_mnist_dir, **{'teacher.checkpoint': str(tmp_path / 'no_teacher')})
  with pytest.raises(FileNotFoundError, match='teacher checkpoint directory .* does not exist'):
    experiment.run(config, str(tmp_path / 'work'))
  assert not os.path.exists(tmp_path / 'work' / 'student')


@pytest.mark.parametrize('overrides,error,match', [
    ({'teacher.model': 'vit'}, ValueError, "unknown model 'vit'"),
    ({'student.loss': 'hinge'}, ValueError, "unknown loss 'hinge'"),
    ({'teacher.loss': 'distillation'}, ValueError, 'teacher trains on gold labels'),
    ({'kd.temperature': 0.0}, ValueError, 'temperature must be > 0'),
    ({'kd.alpha': 2.0}, ValueError, r'\[0, 1\]'),
    ({'kd.teacher_mode': 'frozen'}, ValueError, 'teacher_mode'),
    ({'data.dir': '/nonexistent/mnist'}, FileNotFoundError, 'MNIST data directory'),
])
def test_bad_config_is_a_clear_error(tmp_path, overrides, error, match):
  config = smoke_config('', **overrides)
  with pytest.raises(error, match=match):
    experiment.run(config, str(tmp_path))


def test_command_line_reports_a_bad_override(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'kd_jax.main', '--config=configs/smoke.py', f'--workdir={tmp_path}',
       '--config.kd.temperature=-1'], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert 'config.kd.temperature=-1' in result.stderr


def test_real_mnist_slice(full_mnist_dir, tmp_path):
  results = experiment.run(smoke_config(full_mnist_dir), str(tmp_path))
  _check_results(results)
  assert 'MNIST IDX files' in results['data_source'] and results['num_train'] == 512


@pytest.mark.parametrize('pair', ['cnn_to_mlp', 'mlp_to_mlp', 'cnn_to_cnn', 'mlp_to_cnn'])
@pytest.mark.parametrize('variant', ['cpu', 'paper'])
def test_pair_configs_are_valid(pair, variant):
  config = load_config(f'mnist_{pair}', variant)
  experiment.check_config(config)
  teacher, student = pair.split('_to_')
  assert (config.teacher.model, config.student.model) == (teacher, student)
  assert config.student.loss == 'distillation'
  assert config.kd.scale == ('paper' if variant == 'paper' else 'hinton')
  if variant == 'paper':
    assert config.teacher.num_epochs == 400 and config.teacher.optimizer == 'radam'
  with pytest.raises(ValueError, match='unknown config variant'):
    load_config(f'mnist_{pair}', 'tpu')
  both = load_config(f'mnist_{pair}', 'smoke,' + variant)  # variants compose
  experiment.check_config(both)
  assert both.data.num_train == 512 and both.student.num_epochs == 3.0
  assert both.kd.scale == config.kd.scale and both.student.optimizer == config.student.optimizer


@pytest.mark.parametrize('name,setups', [('mnist_grid', 6), ('mnist_cnn', 1), ('mnist_mlp', 1)])
def test_grid_configs_are_valid(name, setups):
  from kd_jax.mnist import grid  # pylint: disable=g-import-not-at-top
  for variant in ('cpu', 'paper'):
    config = load_config(name, variant)
    grid.check_grid_config(config)
    assert len(config.setups) == setups and config.num_seeds == 4
