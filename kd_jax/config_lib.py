"""Shared pieces of the experiment configs: a phase's training settings and composable variants.

A config file's ``get_config(arg)`` takes the text after ``:`` in
``--config=configs/x.py:lm,paper``: variant names separated by commas, each a
function that edits the config. Variants are applied in the order the task
declares them (not the order written), so ``lm,paper`` equals ``paper,lm``;
an unknown name is an error that lists the known ones.
"""
import math
from typing import Any, Callable, Mapping, Optional

import ml_collections
import numpy as np

COMPUTE_DTYPES = ('float32', 'bfloat16')
MATMUL_PRECISIONS = ('default', 'high', 'highest')  # jax_default_matmul_precision

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
      # replaced by each seed, e.g. 'DIR/cnn/seed_{seed}': one saved teacher per student seed.
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


def check_int(config, field: str, minimum: int = 0, multiple_of: int = 1, maximum: Optional[int] = None):
  """``config.<field>`` (dotted) is an integer ≥ ``minimum`` (≤ ``maximum``; a multiple of ``multiple_of``)."""
  value = get_field(config, field)
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
      maximum is not None and value > maximum):
    _fail(field, f'must be an integer ≥ {minimum}' + (f' and ≤ {maximum}' if maximum is not None else ''), value)
  if value % multiple_of:
    below, above = value // multiple_of * multiple_of, -(-value // multiple_of) * multiple_of
    nearest = f'{below} or {above}' if below >= max(minimum, 1) else f'{above}'
    raise ValueError(f'config.{field} must be a multiple of the {multiple_of} devices (each gets an equal share), '
                     f'got {value}: use {nearest}')


def check_number(config, field: str, low: float = 0.0, high: float = float('inf'), low_open: bool = True,
                 high_open: bool = False):
  """``config.<field>`` is a finite number in the interval from ``low`` to ``high`` (open or closed ends; an
  infinite bound means none on that side)."""
  value = get_field(config, field)
  ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
  ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
  if not ok:
    if math.isinf(high) and math.isinf(low):
      allowed = ''
    elif math.isinf(high):
      allowed = f'{">" if low_open else "≥"} {low:g}'
    elif math.isinf(low):
      allowed = f'{"<" if high_open else "≤"} {high:g}'
    else:
      allowed = f'in {"(" if low_open else "["}{low:g}, {high:g}{")" if high_open else "]"}'
    _fail(field, f'must be a finite number {allowed}'.strip(), value)


def check_choice(config, field: str, choices):
  value = get_field(config, field)
  if value not in choices:
    _fail(field, f'must be one of {", ".join(map(str, choices))}', value)


def get_field(config, field: str):
  """``config.<field>`` (dotted)."""
  value = config
  for part in field.split('.'):
    value = value[part]
  return value


def check_phase(config, field: str, num_devices: int):
  """The training settings ``config.<field>`` of one phase: every range and every optimizer/schedule name.

  (The model and loss names are the job's to check: they live in task and loss registries.)
  """
  from kd_jax import training  # pylint: disable=g-import-not-at-top  # configs import this module; keep JAX out
  check_number(config, f'{field}.num_epochs', high=MAX_EPOCHS)
  check_int(config, f'{field}.batch_size', 1, num_devices)
  check_choice(config, f'{field}.optimizer', list(training.OPTIMIZERS))
  check_number(config, f'{field}.learning_rate', high=FLOAT32_MAX)  # optimizers compute in float32
  check_choice(config, f'{field}.schedule', training.SCHEDULES)
  if get_field(config, f'{field}.schedule') == 'exponential':
    check_int(config, f'{field}.decay_steps', 1)
    check_number(config, f'{field}.decay_rate', high=1.0)
  check_number(config, f'{field}.clip_norm', low_open=False, high=FLOAT32_MAX)
  for penalty in ('l1', 'l2'):
    if penalty in get_field(config, field):  # phases saved before l1 existed have no such field
      check_number(config, f'{field}.{penalty}', low_open=False, high=FLOAT32_MAX)
  check_model_kwargs(config, field)


FLOAT32_MAX = float(np.finfo(np.float32).max)  # training computes in float32
MAX_EPOCHS = 100_000  # beyond this a number of epochs is a typo, not a plan (and its step count overflows int32)


def check_model_kwargs(config, field: str):
  """The model settings ``config.<field>.model_kwargs``: rates in [0, 1), sizes integers ≥ 1, every number finite."""
  for key, value in get_field(config, f'{field}.model_kwargs').items():
    name = f'{field}.model_kwargs.{key}'
    if 'dropout' in key or 'momentum' in key:
      check_number(config, name, low_open=False, high=1.0, high_open=True)
    elif isinstance(value, bool) or isinstance(value, str):
      continue
    elif isinstance(value, int) or (isinstance(value, (tuple, list)) and value and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value)):
      if min(value if isinstance(value, (tuple, list)) else [value]) < 1:
        _fail(name, 'must hold integers ≥ 1 (sizes and counts)', value)
    elif isinstance(value, float):
      check_number(config, name, low=-math.inf)


def check_model_builds(field: str, build: Callable[[], Any], example):
  """Builds the model of ``config.<field>`` and initialises it (shapes only) on ``example`` (a batch of one), so
  that settings that cannot make a model fail before any training, naming the field. Models raise ``ValueError``
  messages that start with the ``model_kwargs`` field at fault (``'num_heads=3 must divide dim=128'``)."""
  import jax  # pylint: disable=g-import-not-at-top  # configs import this module; keep JAX out of them
  try:
    model = build()
    jax.eval_shape(lambda: model.init({'params': jax.random.PRNGKey(0)}, example, train=False))
  except Exception as e:  # pylint: disable=broad-except
    message = ' '.join(str(e).split())
    raise ValueError(f'config.{field}.model_kwargs{"." if _names_a_field(message) else ": "}{message}') from None


def _names_a_field(message: str) -> bool:
  head = message.split('=', 1)[0]
  return '=' in message and head.isidentifier()

def check_batch_sizes(config, num_examples: int, source: str):
  """Every phase's batch (``teacher``, ``student``, a grid's ``models.*``) fits in the ``num_examples`` training
  examples (checked once the data is read, before any training)."""
  phase_names = [name for name in ('teacher', 'student') if name in config]
  phase_names += [f'models.{name}' for name in config.get('models', {})]
  for phase in phase_names:
    batch_size = get_field(config, f'{phase}.batch_size')
    if batch_size > num_examples:
      raise ValueError(f'config.{phase}.batch_size={batch_size} is larger than the {num_examples} training examples '
                       f'of {source}')


def check_job(config, num_devices: int, max_ece_bins: int = 10_000):
  """The fields every job has: data slices, evaluation, logging, checkpointing, the divergence guard.
  ``max_ece_bins``: more bins than test examples measure little, and reports that keep the bins grow with them."""
  check_int(config, 'seed')
  check_int(config, 'data.num_train')
  check_int(config, 'data.num_test')
  check_int(config, 'eval.batch_size', 1)  # rounded up to a multiple of the devices (training.make_predict_fn)
  check_int(config, 'eval.ece_bins', 1, maximum=max_ece_bins)
  check_int(config, 'log_every_steps', 1)
  check_int(config, 'checkpoint_every_steps')
  check_number(config, 'divergence_factor', low_open=False)
  check_choice(config, 'overwrite', (False, True))
  check_choice(config, 'compute_dtype', COMPUTE_DTYPES)
  if 'matmul_precision' in config:  # configs saved before these fields existed lack them
    check_choice(config, 'matmul_precision', MATMUL_PRECISIONS)
    check_number(config, 'distributed_timeout')
  check_choice(config, 'snapshots', (False, True))
  check_number(config, 'snapshot_first_epoch')
  check_int(config, 'steps_per_dispatch', -1)


def grid_fields(config: ml_collections.ConfigDict):
  """Adds the seed grid's fields beyond a task's setups and models (kd_jax/seed_grid.py), the same for every task."""
  config.mode = 'offline'  # 'offline' | 'online'
  config.seed_parallelism = 'auto'  # 'vmap' | 'sequential' | 'auto': vmap except on CPU (slower there)
  config.student_loss = 'distillation'  # the loss of every student (kd_jax/losses.py), its settings in config.kd
  # 'logits' or 'probabilities': every student distils from one ensemble of all seeds' teachers of its setup (their
  # logits averaged, or their softmaxes at the KD temperature), not from its own seed's teacher; '' = its own.
  config.teacher_ensemble = ''
  config.student_overrides = {}  # settings that differ for the student role, e.g. {'learning_rate': 1e-4}
  # E.g. (10, 50, 100): one grid per number of student epochs (students and their independent rows at matched
  # epochs, teacher-only models trained once), and a report of the results against it; () = one grid.
  config.student_epochs = ()
  # An ablation: (factor name, the settings it changes, nested like this config) pairs, one grid each in this order
  # (kd_jax/seed_grid.py: run_factors). () = one grid.
  config.factors = ()
  # k ≥ 2: each student learns from cached logits of k fold teachers of its seed, each input's from the one that
  # did not train on it (cross-fitted targets); its teacher's row stays the teacher of the whole split. 0: off.
  config.cross_fit_folds = 0


def job_fields(config: ml_collections.ConfigDict):
  """Adds the settings every job shares beyond its task's: the divergence guard and the workdir policy."""
  # Training stops when a loss exceeds divergence_factor × max(1, the loss of the run's first step); 0: off.
  config.divergence_factor = 1e4
  # A workdir whose checkpoints were trained with other settings is refused; True deletes them and retrains.
  config.overwrite = False
  # Mixed precision: 'bfloat16' runs the models' forward and backward passes in bfloat16 on accelerators; parameters,
  # optimizer state, batch statistics, softmaxes and losses stay float32 (kd_jax/training.py: apply_fn).
  config.compute_dtype = 'float32'
  # float32 matmuls and convolutions: 'default' lets the backend choose — on TPU that is ONE bfloat16 pass (fast,
  # ~3 significant digits); 'high' is 3 passes, 'highest' full float32 (6 passes on TPU). CPUs and GPUs without
  # TF32 compute float32 anyway.
  config.matmul_precision = 'default'
  # JAX's persistent compilation cache, so that a resumed or preempted job does not compile again: '' is
  # <workdir>/.jax_cache (a gs:// workdir works), 'off' turns it off, anything else is the directory.
  config.compilation_cache_dir = ''
  # Multi-process jobs: how long (s) a process waits for the others to join before it gives up with one line.
  config.distributed_timeout = 300.0
  # Snapshots for the analyses (python -m kd_jax.analyze): the variables at epochs 0, f, 2f, 4f, … (f =
  # snapshot_first_epoch) and at the end of every phase, in <phase dir>/snapshots/, never deleted.
  config.snapshots = False
  config.snapshot_first_epoch = 1.0
  # Training steps per device program: K > 0 keeps the training set on the device and runs up to K steps per
  # dispatch (lax.scan, each batch gathered on the device); 0 dispatches one step per host batch; -1: 100 on
  # GPU/TPU, 0 on CPU. The same steps, batches and keys either way (kd_jax/training.py: fit).
  config.steps_per_dispatch = -1
