"""The analyses of finished runs (training paths, converged solutions, error overlap).

    python -m kd_jax.analyze --config=configs/analyze.py --config.workdirs=/tmp/kd_grid --workdir=/tmp/kd_analysis

An ablation's workdir (``kd_jax.grid`` with factors) is analysed factor by factor, into ``<workdir>/<factor>``, plus
``factors.md``: every factor's gain beside its students' distance to the teacher and the teacher's errors they share.
Train the runs with ``--config.snapshots=True`` for training paths (short CPU runs:
``--config.snapshot_first_epoch=0.0625``).
"""
import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.workdirs = ''  # comma-separated workdirs of finished jobs of one task
  # Probe sets, comma-separated ('' = the task's: MNIST-Translated and -Scaled; SVA: pooled tests). MNIST also has
  # mnist; mnist_shear, mnist_rotate, mnist_stripe: MNIST-C corruptions no training view covers; and
  # views_translate, views_scale, views_crop: the MNIST test images under one fixed draw of each label-preserving
  # augmentation, the views a function-matching teacher labels.
  config.sets = ''
  config.num_examples = 2000  # the first N items of each probe set
  config.path_seeds = (0,)  # whose snapshots make the training-path figure
  config.train_mode = False  # True: dropout on and batch statistics, as the paper code's analyses ran
  return config
