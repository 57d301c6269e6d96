"""Long students: the paper's four MNIST setups with the MLPs at 10, 50, 100, 200 and 400 epochs, 4 seeds.

One grid per student budget (students and the independent MLP at matched epochs, the 5-epoch CNN teacher trained
once, teacher logits cached), then student_epochs.md / .png: accuracy and ECE against epochs, and the CNN→MLP gain
over the MLP on MNIST-Translated next to the paper's ≈14 points.

  python -m kd_jax.grid --config=configs/mnist_long.py --workdir=/tmp/kd_long --config.data.dir=../shared/data/mnist

Fewer budgets: --config.student_epochs='(10,50)'; the authors' MLP regularisers in every MLP role:
--config=configs/mnist_long.py:mlp_regularisers. On a GPU/TPU the students run 100 steps per device program.
"""
from kd_jax.mnist import configs


def long_students(config):
  """A stronger CNN teacher (5 epochs, trained once), MLPs at 10 … 400 epochs from cached teacher logits (students
  and the independent MLP alike)."""
  config.setups = ('cnn', 'mlp', 'cnn_to_mlp', 'mlp_to_mlp')
  config.models.cnn.num_epochs = 5.0
  config.student_epochs = (10, 50, 100, 200, 400)
  config.log_every_steps = 500  # a line every ~2 min for the CPU CNN, every ~1.5 s for the MLPs
  config.checkpoint_every_steps = 20_000


def get_config(variants: str = ''):
  return configs.grid_config(variants, experiment=long_students)
