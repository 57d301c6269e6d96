import json
import os

import chex
import jax
import numpy as np
import pytest

from conftest import load_config
from kd_jax import data as data_lib
from kd_jax import experiment
from kd_jax import models
from kd_jax import seed_grid
from kd_jax import training

def grid_smoke_config(data_dir='', **overrides):
  return load_config('grid_smoke', data_dir=data_dir, **overrides)


def _split(n=96, seed=0):
  rng = np.random.default_rng(seed)
  return data_lib.Split(rng.uniform(size=(n, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, n).astype(np.int32))


def _sgd(config, model):
  cfg = seed_grid._role_cfg(config, model, 'distillation')  # pylint: disable=protected-access
  cfg.update(optimizer='sgd', learning_rate=0.05, num_epochs=2.0, batch_size=16)
  return cfg


@pytest.fixture(scope='module')
def stacked_teachers():
  config = grid_smoke_config()
  teacher = models.create_model('cnn', **config.models.cnn.model_kwargs)
  variables = jax.vmap(lambda k: training.init_variables(teacher, k))(jax.random.split(jax.random.PRNGKey(5), 2))
  return config, teacher, variables


def test_vmapped_instance_equals_the_single_run_of_its_seed(tmp_path, stacked_teachers):
  # SGD keeps rounding differences (vmapped vs plain kernels) at rounding size; Adam would amplify them
  # on weights with ~zero gradient (see test_training).
  config, teacher, teacher_variables = stacked_teachers
  student = models.create_model('mlp', **config.models.mlp.model_kwargs)
  split, mesh = _split(), training.data_mesh()
  kwargs = dict(stream=seed_grid.STUDENT_STREAM, teacher=teacher)
  stacked = experiment.train_model('vmapped', _sgd(config, 'mlp'), config, student, split, mesh,
                                   str(tmp_path / 'vmapped'), None, seeds=[3, 4], stacked=True,
                                   teacher_variables=teacher_variables, **kwargs)
  single = experiment.train_model('single', _sgd(config, 'mlp'), config, student, split, mesh,
                                  str(tmp_path / 'single'), None, seeds=[4],
                                  teacher_variables=seed_grid._instance(teacher_variables, 1),  # pylint: disable=protected-access
                                  **kwargs)
  assert int(single.step) == 12 and list(np.asarray(stacked.step)) == [12, 12]
  chex.assert_trees_all_close(seed_grid._instance(stacked.variables, 1), single.variables,  # pylint: disable=protected-access
                              rtol=1e-4, atol=1e-5)
  # The two instances really are different runs.
  assert not np.allclose(stacked.params['Dense_0']['kernel'][0], stacked.params['Dense_0']['kernel'][1])


def test_cached_teacher_logits_give_the_same_student(tmp_path, stacked_teachers):
  config, teacher, teacher_variables = stacked_teachers
  student = models.create_model('mlp', **config.models.mlp.model_kwargs)
  split, mesh = _split(), training.data_mesh()
  cached = seed_grid.teacher_logits_on(teacher, teacher_variables, split.images, mesh, config)
  chex.assert_shape(cached, (2, len(split), 10))
  common = dict(seeds=[0, 1], stream=seed_grid.STUDENT_STREAM, stacked=True)
  in_step = experiment.train_model('in_step', _sgd(config, 'mlp'), config, student, split, mesh,
                                   str(tmp_path / 'in_step'), None, teacher=teacher,
                                   teacher_variables=teacher_variables, **common)
  from_cache = experiment.train_model('cached', _sgd(config, 'mlp'), config, student, split, mesh,
                                      str(tmp_path / 'cached'), None, teacher_logits=cached, **common)
  chex.assert_trees_all_close(from_cache.variables, in_step.variables, rtol=1e-4, atol=1e-5)


def test_online_step_trains_both_and_feeds_the_student_the_teachers_current_logits(stacked_teachers):
  config, teacher, _ = stacked_teachers
  student = models.create_model('mlp', **config.models.mlp.model_kwargs)
  opt = _sgd(config, 'mlp')
  tx = training.make_optimizer(opt, 10)
  teacher_step = training.make_train_step(teacher, tx, seed_grid.losses.get_loss('cross_entropy'),
                                          output_logits=True)
  student_step = training.make_train_step(student, tx, seed_grid.losses.get_loss('distillation', temperature=2.0))
  online = jax.jit(training.make_online_step(teacher_step, student_step))
  states = (training.init_state(teacher, tx, jax.random.PRNGKey(0)), training.init_state(student, tx,
                                                                                           jax.random.PRNGKey(1)))
  split = _split(16)
  batch = {'inputs': split.images, 'label': split.labels}
  (new_teacher, new_student), metrics = online(states, batch, None)
  teacher_after, teacher_metrics = jax.jit(teacher_step)(states[0], batch, None)
  student_after, _ = jax.jit(student_step)(states[1], {**batch, 'teacher_logits': teacher_metrics['logits']}, None)
  chex.assert_trees_all_close(new_teacher.params, teacher_after.params, rtol=1e-6)
  chex.assert_trees_all_close(new_student.params, student_after.params, rtol=1e-6)
  assert not np.allclose(new_teacher.params['Dense_0']['kernel'], states[0].params['Dense_0']['kernel'])
  assert {'teacher_loss', 'teacher_accuracy', 'teacher_agreement', 'loss'} <= set(metrics)
  assert 'logits' not in metrics and 'teacher_logits' not in metrics


@pytest.fixture(scope='module')
def grid_report(tmp_path_factory, tiny_mnist_dir):
  workdir = str(tmp_path_factory.mktemp('grid'))
  # Seeds one after another: on CPU a vmapped CNN is slow (grouped convolutions); vmap is checked below.
  config = grid_smoke_config(tiny_mnist_dir, **{'data.num_train': 0, 'data.num_test': 0,
                                                'seed_parallelism': 'sequential'})
  config.setups = ('cnn', 'mlp', 'cnn_to_mlp', 'mlp_to_mlp', 'cnn_to_cnn', 'mlp_to_cnn')
  return workdir, seed_grid.run(config, workdir)


def test_grid_report(grid_report):
  workdir, report = grid_report
  assert list(report['setups']) == ['cnn', 'mlp', 'cnn_to_mlp', 'mlp_to_mlp', 'cnn_to_cnn', 'mlp_to_cnn']
  assert not report['vmapped'] and report['seeds'] == [0, 1] and 'final checkpoint' in report['checkpoint_rule']
  for setup in report['setups'].values():
    assert len(setup['instances']) == 2
    accuracies = [inst['mnist_translate']['accuracy'] for inst in setup['instances']]
    summary = setup['summary']['mnist_translate']['accuracy']
    assert summary['n'] == 2
    np.testing.assert_allclose(summary['mean'], np.mean(accuracies))
    np.testing.assert_allclose(summary['std'], np.std(accuracies, ddof=1))
    bins = setup['instances'][0]['mnist']['reliability']
    assert sum(bins['count']) == 200
  assert report['setups']['cnn']['instances'][0] != report['setups']['cnn']['instances'][1]
  with open(os.path.join(workdir, 'grid.json')) as f:
    assert json.load(f)['setups']['cnn_to_mlp']['title'] == 'CNN→MLP'
  table = open(os.path.join(workdir, 'grid.md')).read()
  for title in ('CNN', 'MLP', 'CNN→MLP', 'MLP→MLP', 'CNN→CNN', 'MLP→CNN'):
    assert f'| {title} | 2 |' in table
  assert 'final checkpoint' in table and '±' in table
  for name in ('accuracy.png', 'reliability.png'):
    with open(os.path.join(workdir, name), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_vmapped_grid_matches_seeds_run_one_after_another(grid_report, tiny_mnist_dir, tmp_path):
  _, sequential = grid_report
  config = grid_smoke_config(tiny_mnist_dir, **{'data.num_train': 0, 'data.num_test': 0,
                                                'seed_parallelism': 'vmap'})
  config.setups = ('mlp',)
  vmapped = seed_grid.run(config, str(tmp_path))
  assert vmapped['vmapped']
  for k in range(2):
    for test_set in data_lib.TEST_SETS:
      np.testing.assert_allclose(sequential['setups']['mlp']['instances'][k][test_set]['accuracy'],
                                 vmapped['setups']['mlp']['instances'][k][test_set]['accuracy'], atol=0.011)


def test_online_grid(tiny_mnist_dir, tmp_path):
  config = grid_smoke_config(tiny_mnist_dir, **{'mode': 'online', 'data.num_train': 0, 'data.num_test': 0})
  config.setups = ('cnn_to_mlp',)
  report = seed_grid.run(config, str(tmp_path))
  assert report['mode'] == 'online' and len(report['setups']['cnn_to_mlp']['instances']) == 2
  assert os.listdir(tmp_path / 'cnn_to_mlp_online')
  assert not os.path.exists(tmp_path / 'cnn')  # no separately trained teacher


@pytest.mark.parametrize('overrides,match', [
    ({'mode': 'distant'}, "unknown grid mode 'distant'"),
    ({'num_seeds': 0}, 'num_seeds must be ≥ 1'),
    ({'kd.teacher_mode': 'train'}, 'cache_teacher_logits needs a deterministic teacher'),
    ({'seed_parallelism': 'threads'}, "unknown config.seed_parallelism 'threads'"),
    ({'kd.alpha': -1.0}, r'\[0, 1\]'),
])
def test_bad_grid_config(tmp_path, overrides, match):
  with pytest.raises(ValueError, match=match):
    seed_grid.run(grid_smoke_config(**overrides), str(tmp_path))


def test_unknown_model_in_a_setup(tmp_path):
  config = grid_smoke_config()
  config.setups = ('cnn_to_vit',)
  with pytest.raises(ValueError, match="unknown model 'vit' in grid setup 'cnn_to_vit'"):
    seed_grid.run(config, str(tmp_path))
