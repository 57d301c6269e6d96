"""Shared pieces of the experiment configs: a phase's training settings and composable variants.

A config file's ``get_config(arg)`` takes the text after ``:`` in
``--config=configs/x.py:lm,paper``: variant names separated by commas, each a
function that edits the config. Variants are applied in the order the task
declares them (not the order written), so ``lm,paper`` equals ``paper,lm``;
an unknown name is an error that lists the known ones.
"""
from typing import Callable, Mapping, Optional

import ml_collections

Variant = Optional[Callable[[ml_collections.ConfigDict], None]]


def phase_config(model: str, model_kwargs, loss: str, **settings) -> ml_collections.ConfigDict:
  """The training settings of one phase (teacher, student or an independent model)."""
  cfg = ml_collections.ConfigDict(dict(
      model=model,
      model_kwargs=dict(model_kwargs),
      loss=loss,
      num_epochs=1.0,
      batch_size=128,
      optimizer='adam',
      learning_rate=1e-3,
      schedule='cosine',  # constant | cosine | exponential
      decay_steps=10_000,  # exponential only: × decay_rate every decay_steps (continuous)
      decay_rate=0.96,  # exponential only
      clip_norm=1.0,
      # Teacher only: a saved teacher's Orbax directory -> offline KD, no teacher training. '{seed}' in it is
      # replaced by each seed, e.g. 'DIR/teacher/seed_{seed}': one saved teacher per student seed.
      checkpoint='',
  ))
  cfg.update(settings)
  return cfg


def parse_variants(arg: Optional[str], known: Mapping[str, Variant]) -> list:
  """The variant names in ``arg`` ('a,b'), in the order of ``known``; unknown names are an error."""
  names = [name.strip() for name in (arg or '').split(',') if name.strip()]
  unknown = [name for name in names if name not in known]
  if unknown:
    raise ValueError(f'unknown config variant {unknown[0]!r}; choose from {", ".join(known)} '
                     "(several joined by ',', e.g. --config=configs/x.py:" + ','.join(list(known)[-2:]) + ')')
  return [name for name in known if name in names]


def apply_variants(config: ml_collections.ConfigDict, arg: Optional[str],
                   known: Mapping[str, Variant]) -> ml_collections.ConfigDict:
  """Applies the variants named in ``arg`` (see :func:`parse_variants`); ``None`` entries are names for the default."""
  for name in parse_variants(arg, known):
    if known[name] is not None:
      known[name](config)
  return config
