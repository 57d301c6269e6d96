"""Flax (linen) models from the paper's MNIST experiments.

Every model is a pure function of ``{'params', 'batch_stats'}`` and inputs:
``model.apply(variables, x, train=...)``. In training mode BatchNorm uses batch
statistics (and the caller must mark ``batch_stats`` mutable); in eval mode it
uses the running averages. Each model sows the input of its output layer as
``intermediates/penultimate`` (for the analyses: ``mutable=['intermediates']``).
"""
from typing import Any, ClassVar, Dict, Sequence

import flax.linen as nn
import jax.numpy as jnp

from kd_jax.training import PENULTIMATE

# Keras defaults used by the paper's code: BN momentum 0.99, epsilon 1e-3,
# Glorot-uniform kernels.
_BN_EPSILON = 1e-3
_KERNEL_INIT = nn.initializers.glorot_uniform()


def maxout(x: jnp.ndarray, num_units: int) -> jnp.ndarray:
  """Max over consecutive groups of channels, leaving ``num_units`` channels."""
  channels = x.shape[-1]
  if channels % num_units:
    raise ValueError(f'maxout: {channels} channels do not split into {num_units} groups')
  x = x.reshape(x.shape[:-1] + (num_units, channels // num_units))
  return x.max(axis=-1)


def max_pool(x: jnp.ndarray, size: int) -> jnp.ndarray:
  """Non-overlapping max pooling (VALID: a last partial window is dropped) as a reshape and a max.

  The same values as ``nn.max_pool(x, (size, size), strides=(size, size))``, and the same gradients wherever the
  window maximum is unique (ties inside a window get the gradient shared; in this CNN pooling follows a ReLU, whose
  zero outputs, the only common ties, pass no gradient). XLA:CPU runs its backward much faster than
  reduce_window's select-and-scatter; in a forward-only program reduce_window is the faster one (CNN inference:
  12,574 vs 9,510 ex/s measured), so the CNN pools this way only in training mode.
  """
  n, h, w, c = x.shape
  x = x[:, :h // size * size, :w // size * size]
  return x.reshape(n, h // size, size, w // size, size, c).max(axis=(2, 4))


class CNN(nn.Module):
  """The paper's VanillaCNN: 3 × [conv → maxout → BN → ReLU → max-pool → dropout] → GAP → dense.

  Where a maxout group has one channel (``filters == maxout_units``, the first two layers of the paper's and the
  CPU configs) the convolution has no bias: BatchNorm subtracts the batch mean right after it, so a bias there
  changes nothing the model computes (the same function class). Its true gradient is 0 and the computed one is
  rounding noise that depends on the device count; Adam scales that noise into full-size steps, so with the bias
  1- and 8-device runs drifted apart. Where a group has several channels, their biases shift which one wins the
  max, so those convolutions keep theirs.

  Training pools with :func:`max_pool`, eval with ``nn.max_pool`` (the same values; each the faster one there).
  """
  filters: Sequence[int] = (128, 64, 64)
  maxout_units: Sequence[int] = (128, 64, 16)
  pool_sizes: Sequence[int] = (1, 2, 2)
  kernel_size: int = 3
  dropout_rate: float = 0.3
  bn_momentum: float = 0.99
  num_classes: int = 10
  # XLA options for compiling a step that trains this model, by backend (kd_jax.training.compiler_options).
  # XLA:CPU's default hands dots, reductions and convolutions to YNNPACK, whose convolutions run this CNN's forward
  # and kernel-gradient passes 8× / 4× slower than Eigen's (training step ~2×; docs/performance.md), so training
  # keeps the default's other two. Not an empty list: XLA's own float32 reductions then lose precision (relative
  # error 1e-4 over 700k terms vs 6e-8), and BatchNorm's gradient, a difference of such sums, came out wrong.
  # Inference keeps the default: there the whole forward graph fuses into one YNNPACK program, the faster one.
  training_compiler_options: ClassVar[Dict[str, Dict[str, Any]]] = {'cpu': {
      'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE'}}

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _as_images(x)
    layers = dict(filters=self.filters, maxout_units=self.maxout_units, pool_sizes=self.pool_sizes)
    if len({len(v) for v in layers.values()}) != 1:
      raise ValueError(f'filters={tuple(self.filters)} must have one entry per layer, as maxout_units and pool_sizes: '
                       f'{ {k: tuple(v) for k, v in layers.items()} }')
    if any(f % u for f, u in zip(self.filters, self.maxout_units)):
      raise ValueError(f'maxout_units={tuple(self.maxout_units)} must divide filters={tuple(self.filters)} layer by '
                       'layer (maxout takes the max over equal groups of channels)')
    for i, (filters, units, pool) in enumerate(zip(self.filters, self.maxout_units, self.pool_sizes)):
      x = nn.Conv(filters, (self.kernel_size,) * 2, padding='VALID', kernel_init=_KERNEL_INIT,
                  use_bias=filters != units, name=f'Conv_{i}')(x)
      x = maxout(x, units)
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=_BN_EPSILON)(x)
      x = nn.relu(x)
      if pool > 1:  # the same values either way: whichever is faster on XLA:CPU (training: backward; eval: forward)
        x = max_pool(x, pool) if train else nn.max_pool(x, (pool, pool), strides=(pool, pool))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = x.mean(axis=(1, 2))  # global average pooling
    self.sow('intermediates', PENULTIMATE, x)
    return nn.Dense(self.num_classes, kernel_init=_KERNEL_INIT)(x)


class MLP(nn.Module):
  """The paper's VanillaFF: 784 → [512, 128, 32] (Dense → ReLU → BN → dropout) → dense."""
  hidden_sizes: Sequence[int] = (512, 128, 32)
  dropout_rate: float = 0.1
  bn_momentum: float = 0.99
  num_classes: int = 10

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _as_images(x).reshape(x.shape[0], -1)
    for size in self.hidden_sizes:
      x = nn.Dense(size, kernel_init=_KERNEL_INIT)(x)
      x = nn.relu(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=_BN_EPSILON)(x)
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    self.sow('intermediates', PENULTIMATE, x)
    return nn.Dense(self.num_classes, kernel_init=_KERNEL_INIT)(x)


def _as_images(x: jnp.ndarray) -> jnp.ndarray:
  if x.ndim != 4 or x.shape[1:] != (28, 28, 1):
    raise ValueError(f'expected a batch of 28×28×1 images (shape [N, 28, 28, 1]), got shape {x.shape}')
  return x


# Config name -> model class; a new model is one entry here (and its settings in kd_jax/mnist/configs.py).
MODELS = {'cnn': CNN, 'mlp': MLP}


def create_model(name: str, **kwargs) -> nn.Module:
  """Builds a model by its config name (``'cnn'`` or ``'mlp'``) from its ``model_kwargs``."""
  if name not in MODELS:
    raise ValueError(f'unknown model {name!r}; choose one of {sorted(MODELS)}')
  return MODELS[name](**kwargs)


def title(name: str) -> str:
  """The model's name in reports ('cnn' -> 'CNN')."""
  return MODELS[name].__name__
