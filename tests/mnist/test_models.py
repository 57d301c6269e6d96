import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.mnist import configs
from kd_jax.mnist import models


def _count(tree):
  return sum(x.size for x in jax.tree_util.tree_leaves(tree))


@pytest.mark.parametrize('name,kwargs', [('cnn', {}), ('mlp', {}),
                                         ('cnn', dict(filters=(32, 32, 64), maxout_units=(32, 32, 16)))])
def test_logits_shape_dtype_and_modes(name, kwargs):
  model = models.create_model(name, **kwargs)
  x = jax.random.uniform(jax.random.PRNGKey(0), (6, 28, 28, 1))
  variables = model.init(jax.random.PRNGKey(1), x)
  eval_logits = model.apply(variables, x, train=False)
  train_logits, updates = model.apply(variables, x, train=True, rngs={'dropout': jax.random.PRNGKey(2)},
                                      mutable=['batch_stats'])
  chex.assert_shape([eval_logits, train_logits], (6, 10))
  chex.assert_type([eval_logits, train_logits], jnp.float32)
  chex.assert_tree_all_finite(train_logits)
  # Training mode updates the BatchNorm running statistics; eval mode is deterministic.
  assert not np.allclose(jax.tree_util.tree_leaves(updates['batch_stats'])[0],
                         jax.tree_util.tree_leaves(variables['batch_stats'])[0])
  chex.assert_trees_all_equal(eval_logits, model.apply(variables, x, train=False))


def test_paper_sizes():
  x = jnp.zeros((1, 28, 28, 1))
  cnn = models.CNN().init(jax.random.PRNGKey(0), x)['params']
  mlp = models.MLP().init(jax.random.PRNGKey(0), x)['params']
  kernels = lambda p: sum(v.size for k, v in jax.tree_util.tree_flatten_with_path(p)[0] if 'kernel' in str(k))
  # The paper recipe: ~112k CNN weights and ~472k MLP weights.
  assert 110_000 < kernels(cnn) < 114_000
  assert 465_000 < kernels(mlp) < 475_000
  assert cnn['Dense_0']['kernel'].shape == (16, 10)  # global-average-pooled 16 maxout units
  assert _count(mlp) > _count(cnn)


def test_maxout_takes_group_maxima():
  x = jnp.array([[1., 5., 2., 0., 3., 3.]])
  chex.assert_trees_all_equal(models.maxout(x, 3), jnp.array([[5., 2., 3.]]))
  chex.assert_trees_all_equal(models.maxout(x, 6), x)
  with pytest.raises(ValueError, match='do not split'):
    models.maxout(x, 4)


def test_unknown_model_and_wrong_input_shape():
  with pytest.raises(ValueError, match="unknown model 'resnet'.*cnn.*mlp"):
    models.create_model('resnet')
  with pytest.raises(ValueError, match='28×28×1'):
    models.MLP().init(jax.random.PRNGKey(0), jnp.zeros((2, 784)))


@pytest.mark.parametrize('width', ['cpu', 'paper'])
def test_the_sliced_convolution_is_the_same_function_as_lax_conv(width):
  kwargs = dict(configs.MODEL_SETTINGS['cnn'][width])
  sliced, lax_conv = (models.create_model('cnn', **kwargs, conv_impl=impl) for impl in ('sliced', 'lax'))
  images = jnp.asarray(np.random.default_rng(0).uniform(size=(16, 28, 28, 1)), jnp.float32)
  variables = sliced.init(jax.random.PRNGKey(0), images[:1])
  # The same parameters, initialised to the same values: checkpoints move between the two.
  chex.assert_trees_all_equal(variables, lax_conv.init(jax.random.PRNGKey(0), images[:1]))
  for train in (False, True):
    apply = lambda model, v: model.apply(v, images, train=train, rngs={'dropout': jax.random.PRNGKey(1)},
                                         mutable=['batch_stats'])[0]
    chex.assert_trees_all_close(apply(sliced, variables), apply(lax_conv, variables), atol=1e-5, rtol=1e-5)
    grads = [jax.grad(lambda v, m=m: jnp.sum(apply(m, v) ** 2))(variables) for m in (sliced, lax_conv)]
    chex.assert_trees_all_close(grads[0], grads[1], atol=1e-4, rtol=1e-4)  # another summation order
  with pytest.raises(ValueError, match="unknown conv_impl 'fft'"):
    models.create_model('cnn', conv_impl='fft').init(jax.random.PRNGKey(0), images[:1])


def test_max_pool_equals_flax_max_pool_values_and_gradients():
  x = jax.nn.relu(jnp.asarray(np.random.default_rng(0).normal(size=(4, 13, 13, 8)), jnp.float32))
  reference = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  chex.assert_trees_all_equal(models.max_pool(x, 2), reference(x))  # 13 → 6: the last row and column dropped
  chex.assert_shape(models.max_pool(x, 2), (4, 6, 6, 8))
  weights = jnp.arange(4 * 6 * 6 * 8, dtype=jnp.float32).reshape(4, 6, 6, 8)
  grads = [jax.grad(lambda x, f=f: jnp.sum(f(x) * weights))(x) for f in (lambda x: models.max_pool(x, 2), reference)]
  chex.assert_trees_all_equal(grads[0] * (x > 0), grads[1] * (x > 0))  # where the ReLU passes gradients
