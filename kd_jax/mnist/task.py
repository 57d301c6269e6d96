"""MNIST as a task of the seed grid (:mod:`kd_jax.seed_grid`): its models, data, checks, predictions, metrics and
the analyses' probe.

The grid calls a task module's ``MODELS``, ``title``, ``check_data_and_eval``, ``check_model``, ``check_augment``,
``make_augment``, ``load``, ``teacher_predictor``, ``predictions`` and ``metrics_of``; ``kd_jax.analyze`` its
``probe``. ``kd_jax/sva/task.py`` is the same shape.
"""
from typing import Any, Dict, List, Sequence

import jax
import numpy as np

from kd_jax import analysis
from kd_jax import config_lib
from kd_jax import losses
from kd_jax import metrics as metrics_lib
from kd_jax import seed_grid
from kd_jax import targets as targets_lib
from kd_jax import training
from kd_jax.mnist import augment as augment_lib
from kd_jax.mnist import data as data_lib
from kd_jax.mnist import models

TEST_SET_TITLES = {'mnist': 'MNIST', 'mnist_scale': 'MNIST-Scaled', 'mnist_translate': 'MNIST-Translated'}
HEADLINE_SETS = ('mnist_translate', 'mnist_scale')
DEMO_WARNING = '**DEMO SAMPLE ONLY — not full MNIST; not comparable to the paper.**\n\n'
MODELS = models.MODELS
title = models.title
make_augment = augment_lib.make
# The paper's single-run notebook numbers on MNIST-Translated: CNN→MLP ≈ 50–53 % vs MLP ≈ 36–39 %
# (docs/paper_recipe.md): a gain of about 14 points, after 400 student epochs.
PAPER_GAIN = dict(test_set='mnist_translate', points=14.0, label='CNN→MLP − MLP ≈ 14',
                  sentence='CNN→MLP − MLP on MNIST-Translated ≈ 14 points after 400 epochs')


def check_data_and_eval(config):
  """The data and evaluation fields; up to a million ECE bins (the authors' own ECE: their notebooks)."""
  config_lib.check_job(config, jax.device_count(), max_ece_bins=1_000_000)
  config_lib.check_int(config, 'data.translate_seed')
  for name in config.data.get('demo_epochs', {}):
    if name not in config.models:
      raise ValueError(f'config.data.demo_epochs names {name!r}, which is not in config.models')
    config_lib.check_number(config, f'data.demo_epochs.{name}', low_open=False)


def load(config, workdir: str) -> seed_grid.TaskData:
  """MNIST and MNIST-C's scale and translate per ``config.data`` (:func:`load_data`). On the 4,000-digit demo
  sample (no MNIST files found), the models of ``config.data.demo_epochs`` train that many epochs instead (the
  full-MNIST schedule leaves a teacher far from converged on 31 steps an epoch); saved models are not retrained."""
  del workdir  # nothing to save beside the checkpoints
  data, train, test_sets = load_data(config)
  warning = DEMO_WARNING if data.demo_sample else ''
  changes = {}
  if data.demo_sample:
    changes = {name: {'num_epochs': float(epochs)} for name, epochs in config.data.get('demo_epochs', {}).items()
               if epochs and not config.models[name].checkpoint}
    warning += ''.join(f'On the demo sample {title(name)} trains {c["num_epochs"]:g} epochs '
                       f'(config.data.demo_epochs), not {config.models[name].num_epochs:g}.\n\n'
                       for name, c in changes.items())
  return seed_grid.TaskData(
      title='MNIST', source=data.source, warning=warning, train=train, test_sets=test_sets,
      test_titles=dict(TEST_SET_TITLES), headline_sets=HEADLINE_SETS,
      create_model=lambda name, model_kwargs: models.create_model(name, **model_kwargs), paper_gain=PAPER_GAIN,
      extra_report={'demo_sample': data.demo_sample}, model_changes=changes)


def predictions(name: str, model, instances: Sequence[Any], data: seed_grid.TaskData, mesh,
                config) -> List[Dict[str, Any]]:
  """Per instance (variables of ``model``, called ``name`` in errors): its logits on each test set. Non-finite
  outputs are an error naming the model, instance and set."""
  names = [f'{name} instance {k}' if len(instances) > 1 else name for k in range(len(instances))]
  return [logits_on_test_sets(instance_name, model, variables, data.test_sets, mesh, config)
          for instance_name, variables in zip(names, instances)]


def metrics_of(logits: Sequence[Dict[str, Any]], data: seed_grid.TaskData, config,
               reliability: bool = False) -> List[Dict[str, Dict[str, Any]]]:
  """Accuracy and ECE (with ``reliability`` its bins too) of each instance's :func:`predictions`."""
  metric = metrics_lib.reliability_metrics if reliability else metrics_lib.classification_metrics
  return [{set_name: metric(set_logits, data.test_sets[set_name].labels, config.eval.ece_bins)
           for set_name, set_logits in instance.items()} for instance in logits]


def check_augment(config, cfg, field: str):
  """``cfg.augment`` (``config.<field>.augment``): known names; mixup only where no gold label is learned; no cached
  teacher logits (they are for the unaugmented inputs)."""
  chosen = augment_lib.names(cfg.get('augment', ''))
  distils = targets_lib.uses_teacher(cfg)
  if 'mixup' in chosen and (not distils or config.kd.alpha < 1.0 or config.kd.get('gold_weight', 0.0)):
    raise ValueError(f"config.{field}.augment={cfg.augment!r}: a mixed-up input has no one gold label; mixup is for "
                     'a student learning from the teacher alone (a teacher objective with config.kd.alpha=1 and '
                     'config.kd.gold_weight=0)')
  if 'mixup' in chosen and losses.loss_spec(cfg.loss).splits_at_gold:
    raise ValueError(f"config.{field}.augment={cfg.augment!r} with loss {cfg.loss!r}: its teacher term splits both "
                     'distributions at the gold class, and a mixed-up input has no one gold class (it used to take '
                     "the first image's); use views without mixup, e.g. 'crop'")
  if chosen and distils and config.cache_teacher_logits is True:
    raise ValueError(f'config.{field}.augment={cfg.augment!r} needs the teacher in the step (its targets for each '
                     'new view): set config.cache_teacher_logits=False')


def check_model(config, field: str):
  """The model of ``config.<field>`` is built and initialised on one image (errors name the model_kwargs field)."""
  cfg = config_lib.get_field(config, field)
  config_lib.check_model_builds(field, lambda: models.create_model(cfg.model, **cfg.model_kwargs),
                                np.zeros((1, 28, 28, 1), np.float32))


def load_data(config):
  """MNIST per ``config.data``: (the MnistData, the training split, the test sets), sliced to num_train/num_test."""
  data = data_lib.load_mnist(config.data.dir, config.data.translate_seed)
  for field, available, what in (('num_train', len(data.train), 'training examples'),
                                 ('num_test', len(data.test['mnist']), 'test examples per set')):
    if config.data[field] > available:
      raise ValueError(f'config.data.{field}={config.data[field]} asks for more than the {available} {what} there are '
                       f'(0 = all of them); data: {data.source}')
  train = data.train.take(config.data.num_train) if config.data.num_train else data.train
  config_lib.check_batch_sizes(config, len(train), data.source)
  test_sets = {k: (v.take(config.data.num_test) if config.data.num_test else v) for k, v in data.test.items()}
  return data, train, test_sets


def probe(config, workdir: str) -> analysis.Probe:
  """What the analyses (python -m kd_jax.analyze) run this task's models on: the MNIST test sets; MNIST-C's shear,
  rotate and stripe (``HELD_OUT_SETS``: corruptions no training view covers); and ``views_<augmentation>``: the
  MNIST test images under one fixed draw of each label-preserving augmentation — the views a function-matching
  teacher labels (is it right there, and does its student copy its errors?)."""
  del workdir  # the data settings are all in the config
  _, _, test_sets = load_data(config)
  mnist = test_sets['mnist']
  test_sets = {**test_sets, **data_lib.held_out_corruptions(mnist, config.data.translate_seed)}
  sets = {name: analysis.ProbeSet(split.images, split.labels) for name, split in test_sets.items()}
  for i, name in enumerate(augment_lib.LABEL_PRESERVING):
    views = augment_lib.make(name)(jax.random.PRNGKey(i), mnist.images)
    sets[f'views_{name}'] = analysis.ProbeSet(np.asarray(views), mnist.labels)
  return analysis.Probe(sets,
                        lambda meta: models.create_model(meta['model'], **meta['model_kwargs']),
                        default_sets=('mnist_translate', 'mnist_scale'))


def logits_on_test_sets(name: str, model, variables, test_sets: Dict[str, data_lib.Split], mesh,
                        config) -> Dict[str, Any]:
  """``model``'s logits on each test set; non-finite ones are an error naming ``name`` and the set."""
  predict = training.make_predict_fn(model, mesh, config.eval.batch_size, config.compute_dtype)
  return {set_name: metrics_lib.check_finite(predict(variables, split.images), f'{name} on {set_name}')
          for set_name, split in test_sets.items()}


def teacher_predictor(mesh, config):
  """``predictor(model) -> logits_on(variables, split)``: a teacher's eval-mode logits on a training split
  (:class:`kd_jax.targets.Teacher`)."""
  def predictor(model):
    predict = training.make_predict_fn(model, mesh, config.eval.batch_size, config.compute_dtype)
    return lambda variables, split: predict(variables, split.images)
  return predictor
