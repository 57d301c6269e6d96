"""Which part of the authors' recipe carries the MNIST effect? One factor at a time from the CPU recipe, 4 seeds.

Independent CNN (the teacher), independent MLP and CNN→MLP, the MLPs at 50 epochs (where the gain peaked), for each
factor: the CPU recipe; train-mode teacher targets (dropout on, batch statistics: the authors' distiller); the
authors' MLP regularisers (L1 = L2 = 1e-5) with Hinton's T² and with their 1/T² scale; student lr 1e-4; a teacher
trained 20 epochs instead of 5; all of them together. Writes ablation.md/.json (factor → gain ± std, the teacher's
Translated accuracy beside it); every factor is a resumable grid in <workdir>/<factor>:

  python -m kd_jax.grid --config=configs/mnist_ablation.py --workdir=/tmp/kd_ablation \
      --config.data.dir=../shared/data/mnist

Fewer factors: --config.factors (a dict), e.g. in a config of your own; a smoke run: configs/mnist_ablation.py:smoke.

How far the student follows its teacher's strength under the authors' recipe: `all` with 5 / 50 / 20 teacher epochs
(its 20-epoch factor, last, is the ablation's `all`, setting for setting):

  python -m kd_jax.grid --config=configs/mnist_ablation.py:teacher_epochs --workdir=/tmp/kd_ablation_teacher_epochs \
      --config.data.dir=../shared/data/mnist

Whether gradient clipping moves the gain (kd_jax clips at global norm 1 by default; the authors' code never
clipped): `all` unclipped in every role, then `all` itself:

  python -m kd_jax.grid --config=configs/mnist_ablation.py:unclipped --workdir=/tmp/kd_ablation_unclipped \
      --config.data.dir=../shared/data/mnist
"""
from kd_jax.mnist import configs


def ablation(config):
  """From the CPU recipe (a 5-epoch CNN teacher, MLPs at 50 epochs), one factor of the authors' recipe at a time,
  then all of them together. The MLP's changes apply to the independent MLP too (the gain is paired under the same
  optimiser and regularisers)."""
  config.setups = ('cnn', 'mlp', 'cnn_to_mlp')
  config.models.cnn.num_epochs = 5.0
  config.models.mlp.num_epochs = 50.0
  config.log_every_steps = 500
  config.checkpoint_every_steps = 5_000
  mlp_regularisers = dict(configs.MLP_REGULARISERS)  # the CNN's L2 2e-9 is left out: it would retrain teachers
  train_mode = {'kd': {'teacher_mode': 'train'}, 'cache_teacher_logits': False}
  strong_teacher = {'cnn': {'num_epochs': 20.0}}
  config.factors = (
      ('cpu_recipe', {}),
      ('student_lr_1e-4', {'models': {'mlp': {'learning_rate': 1e-4}}}),
      ('mlp_regularisers', {'models': {'mlp': mlp_regularisers}}),
      ('mlp_regularisers_paper_scale', {'models': {'mlp': mlp_regularisers}, 'kd': {'scale': 'paper'}}),
      ('train_mode_targets', train_mode),
      ('teacher_20_epochs', {'models': strong_teacher}),
      ('all', all_factors(teacher_epochs=20.0)),
  )


def all_factors(teacher_epochs: float, **model_changes) -> dict:
  """Every factor together: the MLP regularisers with the authors' 1/T² scale, the MLPs at Adam 1e-4, the
  training-mode teacher in the student's step, a teacher of ``teacher_epochs``; ``model_changes`` for both models."""
  return {'models': {'cnn': {'num_epochs': teacher_epochs, **model_changes},
                     'mlp': {**configs.MLP_REGULARISERS, 'learning_rate': 1e-4, **model_changes}},
          'kd': {'teacher_mode': 'train', 'scale': 'paper'}, 'cache_teacher_logits': False}


def teacher_epochs(config):
  """After :func:`ablation`: `all` with teachers of 5, 50 and 20 epochs — whether a stronger teacher (the authors'
  trained 400 epochs at paper width) moves the student under their recipe. The 20-epoch factor is the ablation's
  `all` (the same name and settings), last because the ablation has its numbers already."""
  config.factors = (('all_teacher_5_epochs', all_factors(teacher_epochs=5.0)),
                    ('all_teacher_50_epochs', all_factors(teacher_epochs=50.0)),
                    ('all', all_factors(teacher_epochs=20.0)))


def unclipped(config):
  """After :func:`ablation`: `all` with no gradient clipping in any role (teacher, independent models, students),
  as in the authors' code, then `all` (clipped at global norm 1, kd_jax's default), last because the ablation has
  its numbers already."""
  config.factors = (('all_unclipped', all_factors(teacher_epochs=20.0, clip_norm=0.0)),
                    ('all', all_factors(teacher_epochs=20.0)))


def get_config(variants: str = ''):
  return configs.grid_config(variants, experiment=ablation,
                             experiment_variants={'teacher_epochs': teacher_epochs, 'unclipped': unclipped})
