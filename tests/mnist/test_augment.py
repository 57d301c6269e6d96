import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import load_config
from conftest import real_digits
from kd_jax import losses
from kd_jax import main
from kd_jax import seed_grid
from kd_jax import training
from kd_jax.mnist import augment
from kd_jax.mnist import data as data_lib
from kd_jax.mnist import models

DIGITS = real_digits()[0][:16]  # uint8 [16, 28, 28]
IMAGES = jnp.asarray(DIGITS[..., None] / 255.0, jnp.float32)


def test_warp_reproduces_mnist_c_scale_and_translate():
  # Known answers: the MNIST-C test corruptions (kd_jax/mnist/data.py, scipy) as warps.
  n = len(DIGITS)
  shrunk = augment.warp(IMAGES, jnp.full((n, 2), 0.7), jnp.full((n, 2), augment.CENTRE * 0.3))
  np.testing.assert_allclose(np.asarray(shrunk[..., 0]) * 255, data_lib.mnist_c_scale(DIGITS), atol=0.51)
  offsets = np.random.default_rng(0).integers(-3, 4, (n, 2))
  shifted = augment.warp(IMAGES, jnp.ones((n, 2)), -jnp.asarray(offsets, jnp.float32))
  np.testing.assert_allclose(np.asarray(shifted[..., 0]) * 255, data_lib.mnist_c_translate(DIGITS, offsets),
                             atol=1e-3)


@pytest.mark.parametrize('name', list(augment.AUGMENTATIONS))
def test_views_are_fresh_per_key_and_the_same_for_the_same_key(name):
  fn = augment.make(name)
  a, b, again = fn(jax.random.PRNGKey(1), IMAGES), fn(jax.random.PRNGKey(2), IMAGES), fn(jax.random.PRNGKey(1), IMAGES)
  chex.assert_trees_all_equal(a, again)  # a resumed step draws the same view
  assert a.shape == IMAGES.shape and a.dtype == IMAGES.dtype
  assert float(jnp.abs(a - b).max()) > 0.01 and float(jnp.abs(a - IMAGES).max()) > 0.01
  assert float(a.min()) >= -1e-6 and float(a.max()) <= 1 + 1e-6


def test_translate_draws_whole_pixel_shifts_of_at_most_three():
  views = np.asarray(augment.translate(jax.random.PRNGKey(3), IMAGES)[..., 0])
  found = []
  for image, view in zip(DIGITS, views):
    matches = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
               if np.allclose(data_lib.mnist_c_translate(image[None], np.array([[dy, dx]]))[0] / 255.0, view,
                              atol=1e-5)]
    assert matches, 'not a whole-pixel shift within ±3'
    found.append(matches[0])
  assert len(set(found)) > 4  # drawn per image


def test_mixup_mixes_the_batch_with_itself_reversed_by_one_weight():
  mixed = np.asarray(augment.mixup(jax.random.PRNGKey(4), IMAGES))
  x, reverse = np.asarray(IMAGES), np.asarray(IMAGES)[::-1]
  weight = np.sum((mixed - reverse) * (x - reverse)) / np.sum((x - reverse) ** 2)  # least squares
  assert 0 < weight < 1
  np.testing.assert_allclose(mixed, weight * x + (1 - weight) * reverse, atol=1e-5)


def test_teacher_and_student_see_the_same_augmented_view():
  # A step that augments equals the step without augmentation on the view it draws (the step's key folded with 2):
  # the teacher's targets are for the view the student trains on.
  teacher = models.create_model('cnn', filters=(8, 8, 16), maxout_units=(8, 8, 4))
  student = models.create_model('mlp', hidden_sizes=(32,))
  teacher_variables = training.init_variables(teacher, jax.random.PRNGKey(7), IMAGES[:1])
  tx = training.make_optimizer(ml_collections.ConfigDict(dict(optimizer='sgd', learning_rate=0.1,
                                                              schedule='constant', clip_norm=0.0)), 1)
  loss = losses.get_loss('distillation', dict(temperature=2.0, alpha=1.0, scale='hinton'))
  state = training.init_state(student, tx, jax.random.PRNGKey(0), IMAGES[:1])
  batch = {'inputs': IMAGES, 'label': jnp.zeros(len(IMAGES), jnp.int32)}
  fn = augment.make('translate,scale')
  augmented, metrics = jax.jit(training.make_train_step(student, tx, loss, teacher, training.StepOptions(augment=fn)))(
      state, batch, teacher_variables)
  view = fn(jax.random.fold_in(jax.random.fold_in(state.rng, state.step), 2), IMAGES)
  plain, plain_metrics = jax.jit(training.make_train_step(student, tx, loss, teacher))(
      state, {**batch, 'inputs': view}, teacher_variables)
  chex.assert_trees_all_close(augmented.params, plain.params, atol=1e-6)
  chex.assert_trees_all_close(metrics['loss'], plain_metrics['loss'], rtol=1e-6)
  unaugmented, _ = jax.jit(training.make_train_step(student, tx, loss, teacher))(state, batch, teacher_variables)
  assert not np.allclose(unaugmented.params['Dense_0']['kernel'], augmented.params['Dense_0']['kernel'])


@pytest.mark.parametrize('overrides,match', [
    ({'models.mlp.augment': 'rotate'}, "unknown augmentation 'rotate'; choose from translate, scale, crop, mixup"),
    ({'models.cnn.augment': 'mixup'}, "config.models.cnn.augment='mixup': a mixed-up input has no one gold label"),
    ({'student_overrides': {'augment': 'mixup'}, 'kd.alpha': 0.5, 'cache_teacher_logits': False},
     'a teacher objective with config.kd.alpha=1'),
    ({'student_overrides': {'augment': 'mixup'}, 'cache_teacher_logits': False, 'kd.gold_weight': 0.1},
     'a teacher objective with config.kd.alpha=1 and config.kd.gold_weight=0'),
    ({'student_overrides': {'augment': 'crop,mixup'}, 'student_loss': 'dkd', 'cache_teacher_logits': False},
     "config.student_overrides.augment='crop,mixup' with loss 'dkd': its teacher term splits both distributions at the "
     'gold class, and a mixed-up input has no one gold class'),
    ({'student_overrides': {'augment': 'translate'}},  # the main job caches teacher logits
     r"config.student_overrides.augment='translate' needs the teacher in the step \(.*\): set "
     'config.cache_teacher_logits=False'),
])
def test_bad_augment_settings_are_refused_before_training(overrides, match):
  with pytest.raises(ValueError, match=match):
    main.check(load_config('smoke', **overrides))


def test_the_grid_checks_each_role_of_an_augmented_model():
  config = load_config('grid_smoke', **{'models.mlp.augment': 'mixup'})
  with pytest.raises(ValueError, match="config.models.mlp.augment='mixup': a mixed-up input has no one gold label"):
    seed_grid.check(config)  # the independent MLP trains on gold labels
  config.setups = ('cnn', 'cnn_to_mlp')
  config.cache_teacher_logits = False
  seed_grid.check(config)  # as a student only: function matching with mixup
