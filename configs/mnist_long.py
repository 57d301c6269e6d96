"""Long students: the paper's four MNIST setups with the MLPs at 10, 50, 100, 200 and 400 epochs, 4 seeds.

One grid per student budget (students and the independent MLP at matched epochs, the 5-epoch CNN teacher trained
once, teacher logits cached), then student_epochs.md / .png: accuracy and ECE against epochs, and the CNN→MLP gain
over the MLP on MNIST-Translated next to the paper's ≈14 points.

  python -m kd_jax.grid --config=configs/mnist_long.py --workdir=/tmp/kd_long --config.data.dir=../shared/data/mnist

Fewer budgets: --config.student_epochs='(10,50)'. On a GPU/TPU the students run 100 steps per device program.
"""
from kd_jax.mnist import configs


def get_config(variants: str = ''):
  return configs.grid_config(','.join(['long', variants]))
