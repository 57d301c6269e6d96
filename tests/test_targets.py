"""What a phase learns from: the one in-step-or-cached decision, and teacher ensembles (with MNIST models)."""
import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy.special import softmax

from conftest import load_config
from kd_jax import run_settings
from kd_jax import sharding
from kd_jax import targets as targets_lib
from kd_jax import phases
from kd_jax import training
from kd_jax.mnist import task as mnist_task
from kd_jax.mnist import models
from test_phases import IMAGE, _sgd, _split, _train


def _config(**changes):
  config = load_config('smoke')
  config.update(changes)
  return config


@pytest.mark.parametrize('cache,loss,augment,mode,expected', [
    (True, 'cross_entropy', '', 'eval', 'gold labels'),
    (True, 'distillation', '', 'eval', 'cached'),
    (True, 'dkd', '', 'eval', 'cached'),
    (False, 'distillation', 'crop', 'eval', 'in the step'),  # the targets of each new view
    (False, 'rkd', '', 'eval', 'in the step'),  # the teacher's features
    (False, 'distillation', '', 'train', 'in the step'),  # a new dropout draw each step
    (False, 'distillation', '', 'eval', 'in the step'),
])
def test_the_phase_learns_from_what_the_config_asks(cache, loss, augment, mode, expected):
  config = _config(cache_teacher_logits=cache)
  config.kd.teacher_mode = mode
  cfg = ml_collections.ConfigDict({'loss': loss, 'augment': augment})
  calls = []
  teacher = targets_lib.Teacher('model', {'params': 1}, lambda model: lambda v, split: calls.append(v) or np.ones(3))
  targets = targets_lib.for_phase(config, cfg, teacher, 'train split')
  kind = 'cached' if targets.cached else 'in the step' if targets.in_step else 'gold labels'
  assert kind == expected
  assert calls == ([{'params': 1}] if expected == 'cached' else [])  # the teacher ran over the split only to cache
  assert targets.mode == (mode if expected == 'in the step' else 'eval')


def test_targets_are_one_kind_and_a_distilling_phase_needs_a_teacher():
  with pytest.raises(ValueError, match='one of: the teacher in its step, cached logits, an online teacher'):
    targets_lib.Targets(teacher=targets_lib.Teacher('m', {}, None), logits=np.zeros((2, 10)))
  with pytest.raises(ValueError, match="the 'distillation' objective learns from a teacher, and this phase has none"):
    targets_lib.for_phase(_config(), ml_collections.ConfigDict({'loss': 'distillation'}), None, None)


def _members(n=3):
  model = models.create_model('mlp', hidden_sizes=(16,), dropout_rate=0.0)
  variables = jax.vmap(lambda k: training.init_variables(model, k, IMAGE))(jax.random.split(jax.random.PRNGKey(1), n))
  return model, variables


@pytest.mark.parametrize('temperature', [1.0, 4.0])
def test_an_ensemble_averages_its_members_logits_or_their_softmaxes_at_the_kd_temperature(temperature):
  model, variables = _members()
  inputs = jnp.asarray(_split(8).images)
  each = np.stack([model.apply(phases.instance(variables, k), inputs) for k in range(3)])
  assert not np.allclose(each[0], each[1])  # three different members
  mean_logits = targets_lib.Ensemble(model, 'logits', temperature).apply(variables, inputs)
  chex.assert_trees_all_close(mean_logits, each.mean(0), rtol=1e-5, atol=1e-6)
  probabilities = targets_lib.Ensemble(model, 'probabilities', temperature).apply(variables, inputs)
  chex.assert_trees_all_close(softmax(np.asarray(probabilities, np.float64) / temperature, -1),
                              softmax(each.astype(np.float64) / temperature, -1).mean(0), rtol=1e-5, atol=1e-6)
  assert not np.allclose(softmax(np.asarray(mean_logits) / temperature, -1),
                         softmax(np.asarray(probabilities) / temperature, -1), atol=1e-4)  # two different targets
  with pytest.raises(ValueError, match="unknown teacher ensemble combination 'votes'"):
    targets_lib.Ensemble(model, 'votes')
  with pytest.raises(ValueError, match='a teacher ensemble needs at least 2 trained teachers, got 0'):
    targets_lib.ensemble_of(targets_lib.Teacher(model, phases.instance(variables, 0), None), 'logits', 1.0)


def test_one_ensemble_teaches_every_seed_the_same_in_the_step_cached_vmapped_or_alone(tmp_path):
  config = load_config('grid_smoke')
  teacher, variables = _members()
  student = models.create_model('mlp', **config.models.mlp.model_kwargs)
  split, cfg = _split(), _sgd(config, 'mlp')
  ensemble = targets_lib.ensemble_of(targets_lib.Teacher(teacher, variables, mnist_task.teacher_predictor(
      sharding.data_mesh(), config), instances=3), 'probabilities', config.kd.temperature)
  config.cache_teacher_logits = True
  cached = targets_lib.for_phase(config, cfg, ensemble, split)
  chex.assert_shape(cached.logits, (len(split), 10))  # one ensemble's logits, shared by every instance
  config.cache_teacher_logits = False
  in_step = targets_lib.for_phase(config, cfg, ensemble, split)
  common = dict(stream=phases.STUDENT_STREAM)
  from_cache = _train('cached', cfg, config, student, split, tmp_path / 'cached', seeds=[0, 1], stacked=True,
                      targets=cached, **common)
  stepped = _train('in_step', cfg, config, student, split, tmp_path / 'in_step', seeds=[0, 1], stacked=True,
                   targets=in_step, **common)
  alone = _train('alone', cfg, config, student, split, tmp_path / 'alone', seeds=[1], targets=in_step.instance(1),
                 **common)
  chex.assert_trees_all_close(from_cache.variables, stepped.variables, rtol=1e-4, atol=1e-5)
  chex.assert_trees_all_close(phases.instance(stepped.variables, 1), alone.variables, rtol=1e-4, atol=1e-5)
  # Its own seeds' students, not copies: the same targets, other initialisations and batches.
  assert not np.allclose(stepped.params['Dense_0']['kernel'][0], stepped.params['Dense_0']['kernel'][1])


def test_a_workdir_tells_an_ensemble_teacher_from_its_members_and_one_combination_from_the_other():
  model, variables = _members()
  cfg = ml_collections.ConfigDict({'loss': 'distillation'})
  config = _config()
  phase = phases.Phase('student', cfg, model, _split(8), '', [0, 1], phases.STUDENT_STREAM, stacked=True)
  teacher = targets_lib.Teacher(model, variables, None, instances=3)
  fingerprint = lambda t: run_settings.of_phase(phase, targets_lib.Targets(teacher=t), config, 5)
  each = [fingerprint(teacher)] + [fingerprint(targets_lib.ensemble_of(teacher, combine, 2.0))
                                   for combine in targets_lib.ENSEMBLE_COMBINATIONS]
  assert each[0] != each[1] != each[2] != each[0]  # the same variables, three different targets
  assert 'teacher ensemble' not in each[0]  # fingerprints without an ensemble are as before
