"""The MNIST distillation job: train (or restore) a teacher, train the independent student (the control), distil
the student, evaluate all three.

``run(config, workdir)`` is what ``python -m kd_jax.main`` calls for
``config.task='mnist'``. The independent student is the student's model with the student's recipe,
initialisation and data order, trained on gold labels alone (``config.train_independent_student``): the
distilled student's gain over it is what the teacher passed on. Layout of the workdir::

  teacher/         Orbax checkpoints of the teacher (offline KD reads these)
  independent/     Orbax checkpoints of the independent student
  student/         Orbax checkpoints of the distilled student
  metrics.jsonl    training metrics, one JSON object per logged step
  tensorboard/     the same metrics as TensorBoard event files
  results.json     accuracy, ECE and agreement with the teacher of each model on each test set; the gains
  results.md       the same as a table and one sentence per test set
  accuracy.png     accuracy per test set of the three models
"""
import json
import os
import time
from typing import Any, Dict, List, Sequence, Tuple

from absl import logging
import jax
import ml_collections
import numpy as np

from kd_jax import analysis
from kd_jax import checkpoints
from kd_jax import config_lib
from kd_jax import losses
from kd_jax import metric_writer
from kd_jax import metrics as metrics_lib
from kd_jax import paths
from kd_jax import sharding
from kd_jax import targets as targets_lib
from kd_jax import phases
from kd_jax import training
from kd_jax.mnist import augment as augment_lib
from kd_jax.mnist import data as data_lib
from kd_jax.mnist import models
from kd_jax.mnist import report


def check_config(config: ml_collections.ConfigDict):
  """Fails fast, before any data is loaded, on names and values the job cannot use."""
  # The single job keeps no reliability bins, so it allows the authors' own ECE: one million bins (their notebooks).
  check_data_and_eval(config, max_ece_bins=1_000_000)
  for phase in ('teacher', 'student'):
    config_lib.check_phase(config, phase, jax.device_count())
    check_model(config, phase)
  config_lib.check_number(config, 'data.demo_teacher_epochs', low_open=False)
  phases.check_kd_config(config, config.teacher.loss, config.student.loss, config.student.augment)
  for phase in ('teacher', 'student'):
    check_augment(config, config[phase], phase)
  phases.check_loss_batch(config.student, 'student')
  config_lib.check_choice(config, 'train_independent_student', (False, True))
  wrong = [k for k in config.independent_overrides if k in NOT_OVERRIDABLE or k not in config.student]
  if wrong:
    raise ValueError(f'config.independent_overrides.{wrong[0]}: the independent student is the student\'s model on '
                     'gold labels, with its views; it can differ only in the training settings '
                     f'{", ".join(k for k in config.student if k not in NOT_OVERRIDABLE)}')
  config_lib.check_phase(ml_collections.ConfigDict({'independent_overrides': independent_config(config)}),
                         'independent_overrides', jax.device_count())


NOT_OVERRIDABLE = ('model', 'model_kwargs', 'loss', 'checkpoint', 'augment', 'batch_size')  # same model and batches


def independent_config(config) -> ml_collections.ConfigDict:
  """The independent student's settings: the student's, on gold labels, with ``config.independent_overrides``, and
  of the student's augmentations the label-preserving ones (mixup has no one gold label)."""
  cfg = ml_collections.ConfigDict({**config.student.to_dict(), 'loss': 'cross_entropy',
                                   **config.get('independent_overrides', {})})
  cfg.augment = ','.join(n for n in augment_lib.names(cfg.get('augment', '')) if n in augment_lib.LABEL_PRESERVING)
  return cfg


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


def check_data_and_eval(config, max_ece_bins: int = 10_000):
  """The fields the single job and the grid share."""
  config_lib.check_job(config, jax.device_count(), max_ece_bins)
  config_lib.check_int(config, 'data.translate_seed')


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


def predictions(name: str, model, instances: Sequence[Any], test_sets: Dict[str, data_lib.Split], mesh,
                config) -> List[Dict[str, Any]]:
  """Per instance (variables of ``model``, called ``name`` in errors): its logits on each test set. Non-finite
  outputs are an error naming the model, instance and set."""
  names = [f'{name} instance {k}' if len(instances) > 1 else name for k in range(len(instances))]
  return [logits_on_test_sets(instance_name, model, variables, test_sets, mesh, config)
          for instance_name, variables in zip(names, instances)]


def metrics_of(logits: Sequence[Dict[str, Any]], test_sets: Dict[str, data_lib.Split], config,
               reliability: bool = False) -> List[Dict[str, Dict[str, Any]]]:
  """Accuracy and ECE (with ``reliability`` its bins too) of each instance's :func:`predictions`."""
  metric = metrics_lib.reliability_metrics if reliability else metrics_lib.classification_metrics
  return [{set_name: metric(set_logits, test_sets[set_name].labels, config.eval.ece_bins)
           for set_name, set_logits in instance.items()} for instance in logits]


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


def evaluate_roles(trained: Dict[str, Tuple[Any, Any]], test_sets: Dict[str, data_lib.Split], mesh,
                   config) -> Dict[str, Dict[str, Dict[str, float]]]:
  """Per role (``'teacher'`` first, then the students: role -> (model, variables)) and test set: accuracy, ECE and,
  for the students, ``teacher_agreement``: the fraction of test inputs on which they predict the teacher's class
  (the paper's claim is about behaviour, not accuracy alone)."""
  results, teacher_predictions = {}, {}
  for role, (model, variables) in trained.items():
    results[role] = {}
    for set_name, logits in logits_on_test_sets(role, model, variables, test_sets, mesh, config).items():
      results[role][set_name] = metrics_lib.classification_metrics(logits, test_sets[set_name].labels,
                                                                   config.eval.ece_bins)
      predictions = np.asarray(logits).argmax(-1)
      if role == 'teacher':
        teacher_predictions[set_name] = predictions
      else:
        results[role][set_name]['teacher_agreement'] = float(np.mean(predictions == teacher_predictions[set_name]))
  return results


def gains(results) -> Dict[str, Dict[str, float]]:
  """Per test set: the distilled student's metrics minus the independent student's."""
  return {set_name: {metric: value - results['independent'][set_name][metric] for metric, value in row.items()}
          for set_name, row in results['student'].items()}


def run(config: ml_collections.ConfigDict, workdir: str) -> Dict[str, Any]:
  """Runs the whole job and returns what it writes to ``results.json``."""
  check_config(config)
  paths.absolute(workdir).mkdir(parents=True, exist_ok=True)
  t_start = time.perf_counter()
  data, train, test_sets = load_data(config)
  if data.demo_sample and config.data.demo_teacher_epochs and not config.teacher.checkpoint:
    # 4,000 digits are 31 steps an epoch: the full-MNIST schedule leaves the teacher far from converged.
    logging.warning('Demo sample: the teacher trains %g epochs (config.data.demo_teacher_epochs) instead of %g',
                    config.data.demo_teacher_epochs, config.teacher.num_epochs)
    config = ml_collections.ConfigDict(config.to_dict())
    config.teacher.num_epochs = config.data.demo_teacher_epochs
  mesh = sharding.data_mesh()
  logging.info('Devices: %d × %s; train %d examples, test %d per set', mesh.size, jax.devices()[0].platform,
               len(train), len(test_sets['mnist']))
  teacher = models.create_model(config.teacher.model, **config.teacher.model_kwargs)
  student = models.create_model(config.student.model, **config.student.model_kwargs)
  control = config.train_independent_student and targets_lib.uses_teacher(config.student)
  if config.train_independent_student and not control:
    logging.info('config.student.loss=%r learns from gold labels alone: it is its own independent student (none '
                 'trained besides it)', config.student.loss)
  writer = metric_writer.MetricWriter(workdir)
  job = phases.Job(config, mesh, writer)
  timing = {}
  try:
    t0 = time.perf_counter()
    # The student always distils from the teacher's checkpoint: the job is offline KD end to end.
    teacher_variables, teacher_dir, _ = phases.teacher_for_seed(phases.Phase(
        'teacher', config.teacher, teacher, train, os.path.join(workdir, 'teacher'), [config.seed],
        phases.TEACHER_STREAM, augment=augment_lib.make(config.teacher.augment)), job)
    timing['teacher_seconds'] = time.perf_counter() - t0
    # The independent student and the distilled one: one model, one initialisation and data order (the student
    # stream of config.seed); only what they learn from differs.
    student_roles = {'student': config.student}
    if control:
      student_roles = {'independent': independent_config(config), **student_roles}
    trained = {'teacher': (teacher, teacher_variables)}
    trained_teacher = targets_lib.Teacher(teacher, teacher_variables, teacher_predictor(mesh, config))
    for role, cfg in student_roles.items():
      t0 = time.perf_counter()
      state = phases.train_model(
          phases.Phase(role, cfg, student, train, os.path.join(workdir, role), [config.seed], phases.STUDENT_STREAM,
                       field='config.student', augment=augment_lib.make(cfg.augment)),
          targets_lib.for_phase(config, cfg, trained_teacher, train), job)
      trained[role] = (student, state.variables)
      timing[f'{role}_seconds'] = time.perf_counter() - t0
  finally:
    writer.close()

  t0 = time.perf_counter()
  results = evaluate_roles(trained, test_sets, mesh, config)
  if control:
    results.update(gain=gains(results), independent_settings=student_roles['independent'].to_dict())
  timing['eval_seconds'] = time.perf_counter() - t0
  timing['total_seconds'] = time.perf_counter() - t_start
  results.update(data_source=data.source, demo_sample=data.demo_sample, teacher_checkpoint=str(paths.absolute(teacher_dir)),
                 num_train=len(train), num_test=len(test_sets['mnist']), num_devices=mesh.size,
                 teacher_logits='cached' if targets_lib.caches_teacher_logits(config, config.student) else 'in the step',
                 timing=timing, config=json.loads(config.to_json()),
                 evaluated_checkpoints=checkpoints.models_under(workdir, list(trained)))
  report.write_results(results, workdir)
  return results
