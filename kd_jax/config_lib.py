"""Shared pieces of the experiment configs: a phase's training settings and composable variants.

A config file's ``get_config(arg)`` takes the text after ``:`` in
``--config=configs/x.py:lm,paper``: variant names separated by commas, each a
function that edits the config. Variants are applied in the order the task
declares them (not the order written), so ``lm,paper`` equals ``paper,lm``;
an unknown name is an error that lists the known ones.
"""
import math
from typing import Callable, Mapping, Optional

import ml_collections

COMPUTE_DTYPES = ('float32', 'bfloat16')

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
      l2=0.0,  # λ of an L2 penalty λ·Σw² on kernels and embeddings (Keras kernel_regularizer); 0: none
      l1=0.0,  # λ of an L1 penalty λ·Σ|w| on the same parameters (Keras' l1_l2 regularizer has both); 0: none
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


# ----------------------------------------------------------------------------- validation

def _fail(field: str, message: str, value):
  raise ValueError(f'config.{field} {message}, got {value!r}')


def check_int(config, field: str, minimum: int = 0, multiple_of: int = 1):
  """``config.<field>`` (dotted) is an integer ≥ ``minimum`` (and a multiple of ``multiple_of``)."""
  value = _get(config, field)
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    _fail(field, f'must be an integer ≥ {minimum}', value)
  if value % multiple_of:
    _fail(field, f'must be a multiple of the {multiple_of} devices (each gets an equal share)', value)


def check_number(config, field: str, low: float = 0.0, high: float = float('inf'), low_open: bool = True,
                 high_open: bool = False):
  """``config.<field>`` is a finite number in the interval from ``low`` to ``high`` (open or closed ends)."""
  value = _get(config, field)
  ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
  ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
  if not ok:
    interval = f'{"(" if low_open else "["}{low:g}, {high:g}{")" if high_open else "]"}'
    _fail(field, f'must be a finite number in {interval}', value)


def check_choice(config, field: str, choices):
  value = _get(config, field)
  if value not in choices:
    _fail(field, f'must be one of {", ".join(map(str, choices))}', value)


def _get(config, field: str):
  value = config
  for part in field.split('.'):
    value = value[part]
  return value


def check_phase(config, field: str, num_devices: int):
  """The training settings ``config.<field>`` of one phase: every range and every optimizer/schedule name.

  (The model and loss names are the job's to check: they live in task and loss registries.)
  """
  from kd_jax import training  # pylint: disable=g-import-not-at-top  # configs import this module; keep JAX out
  check_number(config, f'{field}.num_epochs')
  check_int(config, f'{field}.batch_size', 1, num_devices)
  check_choice(config, f'{field}.optimizer', list(training.OPTIMIZERS))
  check_number(config, f'{field}.learning_rate')
  check_choice(config, f'{field}.schedule', training.SCHEDULES)
  if _get(config, f'{field}.schedule') == 'exponential':
    check_int(config, f'{field}.decay_steps', 1)
    check_number(config, f'{field}.decay_rate')
  check_number(config, f'{field}.clip_norm', low_open=False)
  for penalty in ('l1', 'l2'):
    if penalty in _get(config, field):  # phases saved before l1 existed have no such field
      check_number(config, f'{field}.{penalty}', low_open=False)
  for key, value in _get(config, f'{field}.model_kwargs').items():
    if 'dropout' in key:
      check_number(config, f'{field}.model_kwargs.{key}', low_open=False, high=1.0, high_open=True)


def check_job(config, num_devices: int):
  """The fields every job has: data slices, evaluation, logging, checkpointing, the divergence guard."""
  check_int(config, 'seed')
  check_int(config, 'data.num_train')
  check_int(config, 'data.num_test')
  check_int(config, 'eval.batch_size', 1, num_devices)
  check_int(config, 'eval.ece_bins', 1)
  check_int(config, 'log_every_steps', 1)
  check_int(config, 'checkpoint_every_steps')
  check_number(config, 'divergence_factor', low_open=False)
  check_choice(config, 'overwrite', (False, True))
  check_choice(config, 'compute_dtype', COMPUTE_DTYPES)
  check_choice(config, 'snapshots', (False, True))
  check_number(config, 'snapshot_first_epoch')
  check_int(config, 'steps_per_dispatch', -1)


def job_fields(config: ml_collections.ConfigDict):
  """Adds the settings every job shares beyond its task's: the divergence guard and the workdir policy."""
  # Training stops when a loss exceeds divergence_factor × max(1, the loss of the run's first step); 0: off.
  config.divergence_factor = 1e4
  # A workdir whose checkpoints were trained with other settings is refused; True deletes them and retrains.
  config.overwrite = False
  # Mixed precision: 'bfloat16' runs the models' forward and backward passes in bfloat16 on accelerators; parameters,
  # optimizer state, batch statistics, softmaxes and losses stay float32 (kd_jax/training.py: apply_fn).
  config.compute_dtype = 'float32'
  # Snapshots for the analyses (python -m kd_jax.analyze): the variables at epochs 0, f, 2f, 4f, … (f =
  # snapshot_first_epoch) and at the end of every phase, in <phase dir>/snapshots/, never deleted.
  config.snapshots = False
  config.snapshot_first_epoch = 1.0
  # Training steps per device program: K > 0 keeps the training set on the device and runs up to K steps per
  # dispatch (lax.scan, each batch gathered on the device); 0 dispatches one step per host batch; -1: 100 on
  # GPU/TPU, 0 on CPU. The same steps, batches and keys either way (kd_jax/training.py: fit).
  config.steps_per_dispatch = -1
