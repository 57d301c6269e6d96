"""CNN teacher → MLP student on MNIST, evaluated on MNIST, MNIST-Scaled and MNIST-Translated.

Default: sized for a 2-core CPU (under 15 minutes on full MNIST):
  python -m kd_jax.main --config=configs/mnist_cnn_to_mlp.py --workdir=/tmp/kd_mnist \
      --config.data.dir=../shared/data/mnist

The paper's recipe (full-width CNN, 400 epochs; for accelerators):
  python -m kd_jax.main --config=configs/mnist_cnn_to_mlp.py:paper --workdir=/tmp/kd_mnist_paper

Offline KD from a saved teacher (skips teacher training):
  python -m kd_jax.main --config=configs/mnist_cnn_to_mlp.py --workdir=/tmp/kd_student \
      --config.teacher.checkpoint=/tmp/kd_mnist/teacher
"""
from kd_jax.mnist import configs


def get_config(variants: str = ''):
  return configs.pair_config('cnn', 'mlp', variants)
