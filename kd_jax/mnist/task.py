"""MNIST as a task of the seed grid (:mod:`kd_jax.seed_grid`): its models, data, checks, predictions and metrics.

The grid calls a task module's ``MODELS``, ``title``, ``check_data_and_eval``, ``check_model``, ``check_augment``,
``make_augment``, ``load``, ``teacher_predictor``, ``predictions`` and ``metrics_of``; ``kd_jax/sva/task.py`` is the
same shape.
"""
from kd_jax import seed_grid
from kd_jax.mnist import augment as augment_lib
from kd_jax.mnist import experiment
from kd_jax.mnist import models
from kd_jax.mnist import report

MODELS = models.MODELS
title = models.title
check_data_and_eval = experiment.check_data_and_eval
check_model = experiment.check_model
check_augment = experiment.check_augment
make_augment = augment_lib.make
teacher_predictor = experiment.teacher_predictor
# The paper's single-run notebook numbers on MNIST-Translated: CNN→MLP ≈ 50–53 % vs MLP ≈ 36–39 %
# (docs/paper_recipe.md): a gain of about 14 points, after 400 student epochs.
PAPER_GAIN = dict(test_set='mnist_translate', points=14.0, label='CNN→MLP − MLP ≈ 14',
                  sentence='CNN→MLP − MLP on MNIST-Translated ≈ 14 points after 400 epochs')


def load(config, workdir: str) -> seed_grid.TaskData:
  """MNIST and MNIST-C's scale and translate per ``config.data`` (:func:`kd_jax.mnist.experiment.load_data`)."""
  del workdir  # nothing to save beside the checkpoints
  data, train, test_sets = experiment.load_data(config)
  return seed_grid.TaskData(
      title='MNIST', source=data.source, warning=report.DEMO_WARNING if data.demo_sample else '', train=train,
      test_sets=test_sets, test_titles=dict(report.TEST_SET_TITLES), headline_sets=report.OOD_SETS[::-1],
      create_model=lambda name, model_kwargs: models.create_model(name, **model_kwargs), paper_gain=PAPER_GAIN,
      extra_report={'demo_sample': data.demo_sample})


def predictions(name: str, model, instances, data: seed_grid.TaskData, mesh, config):
  return experiment.predictions(name, model, instances, data.test_sets, mesh, config)


def metrics_of(logits, data: seed_grid.TaskData, config, reliability: bool = False):
  return experiment.metrics_of(logits, data.test_sets, config, reliability)
