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

The logit objectives at their own papers' settings, not at KD's T = 5 without gold labels (KD beside them as it
ran above), from cached logits and with function matching on crops (these add gold labels, which a mixed-up input
lacks):

  python -m kd_jax.grid --config=configs/mnist_objectives.py:own_settings --workdir=/tmp/kd_own_settings \
      --config.data.dir=../shared/data/mnist

KD's two function-matching factors alone, the same students again (for the held-out corruptions, docs/results.md;
the first run's checkpoints were not kept):

  python -m kd_jax.grid --config=configs/mnist_objectives.py:kd_function_matching \
      --workdir=/tmp/kd_function_matching --config.data.dir=../shared/data/mnist

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


# Each logit objective at its own paper's settings: DKD T = 4, gold CE at 1, its warm-up — 20 of mdistiller's 240
# CIFAR epochs, the same fraction of our 50 (Zhao et al. 2022); DIST τ = 1, gold CE at 1 (Huang et al. 2022, their
# ImageNet settings); logit standardisation base temperature 2, gold CE 0.1, KD weight 9 (Sun et al. 2024). Their
# own weights (DKD 1 / 8, DIST 1 / 1) are kd_jax's defaults already.
OWN_SETTINGS = {
    'dkd': {'temperature': 4.0, 'gold_weight': 1.0, 'warmup_epochs': 50 * 20 / 240},
    'dist': {'temperature': 1.0, 'gold_weight': 1.0},
    'standardised_distillation': {'temperature': 2.0, 'gold_weight': 0.1, 'standardised_weight': 9.0},
}


def own_settings(config):
  """The logit objectives at their own papers' settings (:data:`OWN_SETTINGS`), the same recipe otherwise (the
  objectives grid's teachers and independent MLP: the same settings, so the same numbers); KD as it ran in the
  objectives grid for reference. Each from cached logits, then with function matching on crops (each adds gold
  labels, so no mixup), beside the crop-trained gold-label MLP. Applied after :func:`objectives`."""
  plain = [('distillation', {'student_loss': 'distillation', 'cache_teacher_logits': True})]
  matched = []
  for objective, kd in OWN_SETTINGS.items():
    plain.append((f'{objective}_own', {'student_loss': objective, 'cache_teacher_logits': True, 'kd': kd}))
    matched.append((f'{objective}_own_fm_crop', {'student_loss': objective, 'cache_teacher_logits': False, 'kd': kd,
                                                  'student_overrides': {'augment': 'crop'},
                                                  'models': {'mlp': {'augment': 'crop'}}}))
  config.factors = tuple(plain + matched)


def fm_augmented_teacher(config):
  """After the objectives: KD with function matching on shifts + shrinks again, from CNN teachers trained on those
  views too — a function-matched student goes only as far as its teacher is good on the views, and the objectives
  grid's teachers never saw them. One grid (no factors): the augmented CNNs, the gold-label control, the students."""
  views = FUNCTION_MATCHING['fm_translate_scale'][0]
  config.factors = ()
  config.update(student_loss='distillation', cache_teacher_logits=False, student_overrides={'augment': views})
  config.models.cnn.augment = config.models.mlp.augment = views


def kd_function_matching(config):
  """After :func:`objectives`: KD's two function-matching factors alone (crops + mixup; shifts + shrinks), the same
  settings — trained again to evaluate their students on MNIST-C corruptions no view covers, since their first run's
  checkpoints were not kept (on the same machine and cores, the same students bit for bit: docs/results.md)."""
  config.factors = tuple((name, factor) for name, factor in config.factors
                         if name in ('distillation_fm_crop_mixup', 'distillation_fm_translate_scale'))


def get_config(variants: str = ''):
  return configs.grid_config(variants, experiment=objectives,
                             experiment_variants={'fm_augmented_teacher': fm_augmented_teacher,
                                                  'own_settings': own_settings,
                                                  'kd_function_matching': kd_function_matching})
