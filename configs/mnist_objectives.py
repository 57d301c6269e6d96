"""Which way of distilling carries the CNN's inductive bias furthest? CNN→MLP with each teacher objective (KD, DKD,
DIST, logit standardisation; RKD, similarity preservation, linear CKA and FitNets on the penultimate features, added
to KD), from cached logits (the feature ones with the teacher in the step) and with function matching (teacher and
student on the same fresh view: crops + mixup, DKD crops alone; shifts + shrinks), 4 seeds, at the ablation's winning
recipe (MLP L1 = L2 = 1e-5, 50 epochs): 24 factors.

Each factor is a resumable grid in <workdir>/<factor>: its independent MLP is the no-KD MLP (plain factors) or the
gold-label control with the same label-preserving augmentation (function-matching factors); ablation.md/.json gives
each factor's CNN→MLP gain over it, paired by seed:

  python -m kd_jax.grid --config=configs/mnist_objectives.py --workdir=/tmp/kd_objectives \
      --config.data.dir=../shared/data/mnist

Fewer factors: a config of your own with --config.factors; the CNN teachers of another grid:
--config.models.cnn.checkpoint=DIR/cnn/seed_{seed}.

The shifts + shrinks student again, from CNN teachers trained on those views too (one grid, no factors):

  python -m kd_jax.grid --config=configs/mnist_objectives.py:fm_augmented_teacher \
      --workdir=/tmp/kd_fm_augmented_teacher --config.data.dir=../shared/data/mnist
"""
from kd_jax import losses
from kd_jax.mnist import configs

# The teacher objectives compared by the objectives grid (kd_jax/losses.py): logit ones, then feature ones.
OBJECTIVES = ('distillation', 'dkd', 'dist', 'standardised_distillation', 'rkd', 'sp', 'cka', 'fitnets')
# Function matching's views: Beyer et al.'s kind (crops, and mixup off the data manifold; a crop also moves and
# enlarges the digit in the frame, so it covers much of what MNIST-C's translate tests) and MNIST-C's own kind
# (shifts and shrinks, freshly drawn), each beside its gold-label control (the independent MLP with the
# label-preserving part).
FUNCTION_MATCHING = {'fm_crop_mixup': ('crop,mixup', 'crop'), 'fm_translate_scale': ('translate,scale',) * 2}


def objectives(config):
  """Which way of distilling carries the CNN's bias furthest: CNN→MLP with each teacher objective, from cached
  logits, then with function matching (the teacher in the step, both models seeing the same fresh view), at the
  ablation's winning recipe (MLP L1 = L2 = 1e-5, 50 student epochs, the 5-epoch CNN teacher). Each factor pairs its
  students with its independent MLP: the no-KD MLP without augmentation, the gold-label augmentation control with."""
  config.setups = ('cnn', 'mlp', 'cnn_to_mlp')
  config.models.cnn.num_epochs = 5.0
  config.models.mlp.update(num_epochs=50.0, **configs.MLP_REGULARISERS)
  config.log_every_steps = 500
  config.checkpoint_every_steps = 5_000
  # Feature objectives read the teacher's features in the step: nothing to cache.
  plain = tuple((objective, {'student_loss': objective,
                             'cache_teacher_logits': not losses.loss_spec(objective).uses_features})
                for objective in OBJECTIVES)
  matched = []
  for name, (student_views, control_views) in FUNCTION_MATCHING.items():
    for objective in OBJECTIVES:
      factor, views = f'{objective}_{name}', student_views
      if 'mixup' in views and losses.loss_spec(objective).splits_at_gold:
        # DKD splits both distributions at the gold class, which a mixed-up input lacks: its control's views alone.
        factor, views = f'{objective}_fm_{control_views.replace(",", "_")}', control_views
      matched.append((factor, {'student_loss': objective, 'cache_teacher_logits': False,
                               'student_overrides': {'augment': views}, 'models': {'mlp': {'augment': control_views}}}))
  config.factors = plain + tuple(matched)


def fm_augmented_teacher(config):
  """After the objectives: KD with function matching on shifts + shrinks again, from CNN teachers trained on those
  views too — a function-matched student goes only as far as its teacher is good on the views, and the objectives
  grid's teachers never saw them. One grid (no factors): the augmented CNNs, the gold-label control, the students."""
  views = FUNCTION_MATCHING['fm_translate_scale'][0]
  config.factors = ()
  config.update(student_loss='distillation', cache_teacher_logits=False, student_overrides={'augment': views})
  config.models.cnn.augment = config.models.mlp.augment = views


def get_config(variants: str = ''):
  return configs.grid_config(variants, experiment=objectives,
                             experiment_variants={'fm_augmented_teacher': fm_augmented_teacher})
