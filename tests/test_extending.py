"""README's "where to add things", followed to the letter: a dummy model, loss and task added through each recipe
run through the jobs that should pick them up, with no other change."""
import functools
import json
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from conftest import load_config
from kd_jax import config_lib
from kd_jax import losses
from kd_jax import main
from kd_jax import metrics
from kd_jax import seed_grid
from kd_jax.mnist import configs as mnist_configs
from kd_jax.mnist import models
from kd_jax.training import PENULTIMATE


class Linear(nn.Module):
  """The dummy model: one hidden layer, sowing its penultimate features as every model does."""
  width: int = 8

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.Dense(self.width)(x.reshape((x.shape[0], -1))))
    self.sow('intermediates', PENULTIMATE, x)
    return nn.Dense(10)(x)


def test_a_model_added_by_the_recipe_runs_in_the_grid_and_every_variant(monkeypatch, tiny_mnist_dir, tmp_path):
  monkeypatch.setitem(models.MODELS, 'linear', Linear)
  entry = dict(cpu=dict(width=16), paper=dict(width=32), smoke=dict(width=8), learning_rate=1e-2, num_epochs=1.0,
               grid_epochs=1.0, demo_epochs=0.0, paper_regularisers=dict(l2=1e-6))
  monkeypatch.setitem(mnist_configs.MODEL_SETTINGS, 'linear', entry)
  paper = mnist_configs.pair_config('cnn', 'linear', 'paper')  # used to be a bare KeyError
  seed_grid.check(paper)
  student = seed_grid.role_config(paper, 'linear', 'student')
  assert (student.model_kwargs.width, student.l2) == (32, 1e-6)
  config = load_config('grid_smoke', data_dir=tiny_mnist_dir, **{'data.num_test': 0})
  config.setups = ('mlp', 'linear', 'mlp_to_linear')
  report = seed_grid.run(config, str(tmp_path))
  assert report['setups']['mlp_to_linear']['title'] == 'MLP→Linear'
  assert len(report['setups']['mlp_to_linear']['instances']) == 2
  monkeypatch.setitem(mnist_configs.MODEL_SETTINGS, 'linear', {k: v for k, v in entry.items() if k != 'paper'})
  with pytest.raises(ValueError, match=r"MODEL_SETTINGS\['linear'\] lacks paper \(every model gives"):
    mnist_configs.pair_config('cnn', 'linear', 'paper')


def _half_logits(student_logits, teacher_logits, labels, *, temperature, half_logits_weight):
  """The dummy objective's teacher term: KD's KL from the teacher's logits halved (softer targets), times its weight."""
  log_targets = jax.nn.log_softmax(teacher_logits / 2 / temperature)
  return half_logits_weight * optax.losses.kl_divergence_with_log_targets(
      jax.nn.log_softmax(student_logits / temperature), jax.lax.stop_gradient(log_targets))


def test_a_loss_added_by_the_recipe_trains_a_student_on_every_task(monkeypatch, tiny_mnist_dir, tmp_path):
  monkeypatch.setitem(losses.LOSSES, 'half_logits', losses.LossSpec(
      losses.teacher_objective('half_logits', _half_logits),
      kd_fields=(*losses.TEACHER_FIELDS, 'half_logits_weight'), uses_teacher=True))
  monkeypatch.setitem(losses.OBJECTIVE_WEIGHTS, 'half_logits_weight', 1.0)
  seed_grid.check(load_config('sva_smoke', student_loss='half_logits'))
  config = load_config('smoke', data_dir=tiny_mnist_dir, **{'student_loss': 'half_logits',
                                                           'setups': ('cnn', 'cnn_to_mlp')})
  report = main.run(config, str(tmp_path))
  assert report['cache_teacher_logits'] and report['setups']['cnn_to_mlp']['title'] == 'CNN→MLP (half_logits)'
  assert 0.0 <= report['setups']['cnn_to_mlp']['instances'][0]['mnist']['accuracy'] <= 1.0


class ParitySplit:
  """The dummy task's data: 8-bit vectors labelled by the parity of their first bit (10 classes, 2 used)."""

  def __init__(self, n, seed):
    rng = np.random.default_rng(seed)
    self.inputs = rng.integers(0, 2, (n, 8)).astype(np.float32)
    self.labels = self.inputs[:, 0].astype(np.int32)

  def __len__(self):
    return len(self.labels)

  def batch(self, idx):
    return {'inputs': self.inputs[idx], 'label': self.labels[idx]}


def _parity_task():
  """The dummy task's module for the seed grid: the names kd_jax/<task>/task.py gives."""
  task = types.ModuleType('parity_task')
  task.MODELS = {'linear': Linear}
  task.title = str.title
  task.check_data_and_eval = task.check_model = task.check_augment = lambda *args: None
  task.make_augment = lambda setting: None
  task.load = lambda config, workdir: seed_grid.TaskData(
      title='Parity', source='random bits', warning='', train=ParitySplit(64, 0), test_sets={'test': ParitySplit(32, 1)},
      test_titles={'test': 'held-out bits'}, headline_sets=('test', 'test'), create_model=lambda name, kwargs: Linear())
  logits = lambda model, variables, split: np.asarray(model.apply(variables, jnp.asarray(split.inputs)))
  task.teacher_predictor = lambda mesh, config: lambda model: functools.partial(logits, model)
  task.predictions = lambda name, model, instances, data, mesh, config: [
      {'test': logits(model, variables, data.test_sets['test'])} for variables in instances]
  task.metrics_of = lambda outputs, data, config, reliability=False: [
      {'test': metrics.reliability_metrics(row['test'], data.test_sets['test'].labels)} for row in outputs]
  return task


def test_a_task_added_by_the_recipe_runs_on_the_seed_grid(monkeypatch, tmp_path):
  monkeypatch.setitem(seed_grid.TASKS, 'parity', 'parity_task')
  monkeypatch.setitem(__import__('sys').modules, 'parity_task', _parity_task())
  phase = dict(model='linear', model_kwargs={}, loss='cross_entropy', optimizer='sgd', learning_rate=0.1,
               schedule='constant', clip_norm=0.0, batch_size=16, num_epochs=2.0, checkpoint='')
  config = ml_collections.ConfigDict(dict(
      task='parity', seed=0, num_seeds=2, setups=('linear', 'linear_to_linear'), cache_teacher_logits=True,
      models={'linear': phase}, kd=losses.kd_settings(2.0), data=dict(num_train=0, num_test=0),
      eval=dict(batch_size=16, ece_bins=15), log_every_steps=4, checkpoint_every_steps=0))
  config_lib.grid_fields(config)
  config.seed_parallelism = 'sequential'
  config_lib.job_fields(config)
  report = seed_grid.run(config, str(tmp_path))
  assert [s['title'] for s in report['setups'].values()] == ['Linear', 'Linear→Linear']
  assert len(report['setups']['linear_to_linear']['instances']) == 2 and report['num_test'] == {'test': 32}
  assert 'held-out bits' in (tmp_path / 'grid.md').read_text()
  assert json.loads((tmp_path / 'kd_jax_job.json').read_text())['job'] == 'parity grid'
