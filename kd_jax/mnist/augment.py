"""Augmentations inside the train step (``config.<phase>.augment``): function matching (Beyer et al. 2022).

A KD student's step augments its batch before the teacher and the student see it, so both see the *same* view, also
views off the training manifold; a gold-label phase with the same setting is the control that separates what the
augmentation gives from what the teacher gives. Views are drawn afresh every step from the step's own key
(:func:`kd_jax.training.make_train_step`), so a resumed run sees the same views.

``augment`` is a comma-separated list of the entries below, applied in that order, e.g. ``'translate,scale'``.
The geometric ones cover MNIST-C's test corruptions (shifts of ±3 pixels, a shrink to 70%) with fresh draws:
``translate``: a whole-pixel shift, each of dy, dx uniform in {−3, …, 3}; ``scale``: a shrink about the centre by a
factor uniform in [0.7, 1]; ``crop``: a random square crop of 50–100% of the area, resized to 28×28; ``mixup``: the
batch mixed with itself reversed, one weight λ ~ U(0, 1) per batch (its gold labels are then no one class, so it is
for teacher objectives only).
"""
from typing import Callable, Dict, Optional

import jax
import jax.numpy as jnp

SIZE = 28
CENTRE = SIZE / 2  # jax.image's continuous coordinates: pixel i covers [i, i + 1)


def warp(images, scale, translation):
  """Each image [B, 28, 28, C] mapped by x ↦ scale·x + translation ([B, 2] each, (row, column)), bilinear, zero
  outside — the MNIST-C scale's sampling, without antialiasing."""
  def one(image, s, t):
    return jax.image.scale_and_translate(image, image.shape, (0, 1), s, t, method='linear', antialias=False)
  return jax.vmap(one)(images, scale, translation)


def translate(key, images):
  shifts = jax.random.randint(key, (len(images), 2), -3, 4).astype(jnp.float32)
  return warp(images, jnp.ones((len(images), 2)), shifts)


def scale(key, images):
  factor = jax.random.uniform(key, (len(images), 1), minval=0.7, maxval=1.0)
  return warp(images, jnp.tile(factor, (1, 2)), jnp.tile(CENTRE * (1.0 - factor), (1, 2)))


def crop(key, images):
  area_key, corner_key = jax.random.split(key)
  side = SIZE * jnp.sqrt(jax.random.uniform(area_key, (len(images), 1), minval=0.5, maxval=1.0))
  corner = jax.random.uniform(corner_key, (len(images), 2)) * (SIZE - side)
  zoom = SIZE / side  # the crop [corner, corner + side) onto [0, 28)
  return warp(images, jnp.tile(zoom, (1, 2)), -zoom * corner)


def mixup(key, images):
  weight = jax.random.uniform(key)
  return weight * images + (1.0 - weight) * images[::-1]


AUGMENTATIONS: Dict[str, Callable] = {'translate': translate, 'scale': scale, 'crop': crop, 'mixup': mixup}
LABEL_PRESERVING = ('translate', 'scale', 'crop')


def names(setting: str):
  """The entries of an ``augment`` setting, checked."""
  chosen = [name.strip() for name in setting.split(',') if name.strip()]
  unknown = [name for name in chosen if name not in AUGMENTATIONS]
  if unknown:
    raise ValueError(f'unknown augmentation {unknown[0]!r}; choose from {", ".join(AUGMENTATIONS)}')
  return chosen


def make(setting: str) -> Optional[Callable]:
  """``augment(key, images) -> images`` for the setting, or None for ''."""
  chosen = names(setting)
  if not chosen:
    return None

  def augment(key, images):
    for name, subkey in zip(chosen, jax.random.split(key, len(chosen))):
      images = AUGMENTATIONS[name](subkey, images)
    return images
  return augment
