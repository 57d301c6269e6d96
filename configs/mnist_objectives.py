"""Which way of distilling carries the CNN's inductive bias furthest? CNN→MLP with each teacher objective (KD, DKD,
DIST, logit standardisation; RKD, similarity preservation, linear CKA and FitNets on the penultimate features, added
to KD), from cached logits (the feature ones with the teacher in the step) and with function matching (teacher and
student on the same fresh view: crops + mixup; shifts + shrinks), 4 seeds, at the ablation's winning recipe (MLP
L1 = L2 = 1e-5, 50 epochs): 24 factors.

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
from kd_jax.mnist import configs


def get_config(variants: str = ''):
  return configs.grid_config(','.join(['objectives', variants]))
