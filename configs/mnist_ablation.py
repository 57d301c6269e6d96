"""Which part of the authors' recipe carries the MNIST effect? One factor at a time from the CPU recipe, 4 seeds.

Independent CNN (the teacher), independent MLP and CNN→MLP, the MLPs at 50 epochs (where the gain peaked), for each
factor: the CPU recipe; train-mode teacher targets (dropout on, batch statistics: the authors' distiller); the
authors' MLP regularisers (L1 = L2 = 1e-5) with Hinton's T² and with their 1/T² scale; student lr 1e-4; a teacher
trained 20 epochs instead of 5; all of them together. Writes ablation.md/.json (factor → gain ± std, the teacher's
Translated accuracy beside it); every factor is a resumable grid in <workdir>/<factor>:

  python -m kd_jax.grid --config=configs/mnist_ablation.py --workdir=/tmp/kd_ablation \
      --config.data.dir=../shared/data/mnist

Fewer factors: --config.factors (a dict), e.g. in a config of your own; a smoke run: configs/mnist_ablation.py:smoke.
"""
from kd_jax.mnist import configs


def get_config(variants: str = ''):
  return configs.grid_config(','.join(['ablation', variants]))
