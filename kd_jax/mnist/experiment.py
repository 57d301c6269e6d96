"""The MNIST distillation job: train (or restore) a teacher, distil a student, evaluate both.

``run(config, workdir)`` is what ``python -m kd_jax.main`` calls for
``config.task='mnist'``. Layout of the workdir::

  teacher/         Orbax checkpoints of the teacher (offline KD reads these)
  student/         Orbax checkpoints of the student
  metrics.jsonl    training metrics, one JSON object per logged step
  tensorboard/     the same metrics as TensorBoard event files
  results.json     accuracy and ECE of teacher and student on each test set
  results.md       the same as a Markdown table
"""
import json
import os
import time
from typing import Any, Dict, List, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from kd_jax import analysis
from kd_jax import config_lib
from kd_jax import metrics as metrics_lib
from kd_jax import paths
from kd_jax import sharding
from kd_jax import trainer
from kd_jax import training
from kd_jax.mnist import augment as augment_lib
from kd_jax.mnist import data as data_lib
from kd_jax.mnist import models
from kd_jax.mnist import report


def check_config(config: ml_collections.ConfigDict):
  """Fails fast, before any data is loaded, on names and values the job cannot use."""
  check_data_and_eval(config)
  for phase in ('teacher', 'student'):
    config_lib.check_phase(config, phase, jax.device_count())
    check_model(config, phase)
  config_lib.check_choice(config, 'cache_teacher_logits', (False, True))
  config_lib.check_number(config, 'data.demo_teacher_epochs', low_open=False)
  trainer.check_kd_config(config, config.teacher.loss, config.student.loss)
  for phase in ('teacher', 'student'):
    check_augment(config, config[phase], phase)


def check_augment(config, cfg, field: str):
  """``cfg.augment`` (``config.<field>.augment``): known names; mixup only where no gold label is learned; no cached
  teacher logits (they are for the unaugmented inputs)."""
  chosen = augment_lib.names(cfg.get('augment', ''))
  distils = trainer.uses_teacher(cfg)
  if 'mixup' in chosen and (not distils or config.kd.alpha < 1.0):
    raise ValueError(f"config.{field}.augment={cfg.augment!r}: a mixed-up input has no one gold label; mixup is for "
                     'a student learning from the teacher alone (a teacher objective with config.kd.alpha=1)')
  if chosen and distils and config.cache_teacher_logits:
    raise ValueError(f'config.{field}.augment={cfg.augment!r} needs the teacher in the step (its targets for each '
                     'new view): set config.cache_teacher_logits=False')


def check_model(config, field: str):
  """The model of ``config.<field>`` is built and initialised on one image (errors name the model_kwargs field)."""
  cfg = config_lib.get_field(config, field)
  config_lib.check_model_builds(field, lambda: models.create_model(cfg.model, **cfg.model_kwargs),
                                np.zeros((1, 28, 28, 1), np.float32))


def check_data_and_eval(config):
  """The fields the single job and the grid share."""
  config_lib.check_job(config, jax.device_count())
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
  """What the analyses (python -m kd_jax.analyze) run this task's models on: the MNIST test sets, and
  ``views_<augmentation>``: the MNIST test images under one fixed draw of each label-preserving augmentation — the
  views a function-matching teacher labels (is it right there, and does its student copy its errors?)."""
  del workdir  # the data settings are all in the config
  _, _, test_sets = load_data(config)
  sets = {name: analysis.ProbeSet(split.images, split.labels) for name, split in test_sets.items()}
  mnist = test_sets['mnist']
  for i, name in enumerate(augment_lib.LABEL_PRESERVING):
    views = augment_lib.make(name)(jax.random.PRNGKey(i), mnist.images)
    sets[f'views_{name}'] = analysis.ProbeSet(np.asarray(views), mnist.labels)
  return analysis.Probe(sets,
                        lambda meta: models.create_model(meta['model'], **meta['model_kwargs']),
                        default_sets=('mnist_translate', 'mnist_scale'))


def evaluate(name: str, model, instances: Sequence[Any], test_sets: Dict[str, data_lib.Split], mesh, config,
             reliability: bool = False) -> List[Dict[str, Dict[str, Any]]]:
  """Per instance (variables of ``model``, called ``name`` in errors) and test set: accuracy and ECE, with
  ``reliability`` its bins too. Non-finite outputs are an error naming the model, instance and set."""
  predict = training.make_predict_fn(model, mesh, config.eval.batch_size, config.compute_dtype)
  metric = metrics_lib.reliability_metrics if reliability else metrics_lib.classification_metrics
  return [{set_name: metric(metrics_lib.check_finite(predict(variables, split.images),
                                                     f'{name}{f" instance {k}" if len(instances) > 1 else ""} on '
                                                     f'{set_name}'), split.labels, config.eval.ece_bins)
           for set_name, split in test_sets.items()} for k, variables in enumerate(instances)]


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
  writer = trainer.MetricWriter(workdir)
  timing = {}
  try:
    t0 = time.perf_counter()
    # The student always distils from the teacher's checkpoint: the job is offline KD end to end.
    teacher_variables, teacher_dir, _ = trainer.teacher_for_seed(
        config.teacher, config, teacher, train, mesh, os.path.join(workdir, 'teacher'), writer, seed=config.seed,
        augment=augment_lib.make(config.teacher.augment))
    timing['teacher_seconds'] = time.perf_counter() - t0

    t0 = time.perf_counter()
    distil = trainer.uses_teacher(config.student)
    cached = distil and config.cache_teacher_logits
    teacher_logits = (training.make_predict_fn(teacher, mesh, config.eval.batch_size, config.compute_dtype)(
        teacher_variables, train.images) if cached else None)
    in_step = distil and not cached
    student_state = trainer.train_model('student', config.student, config, student, train, mesh,
                                        os.path.join(workdir, 'student'), writer, seeds=[config.seed],
                                        stream=trainer.STUDENT_STREAM, teacher=teacher if in_step else None,
                                        teacher_variables=teacher_variables if in_step else None,
                                        teacher_logits=teacher_logits,
                                        augment=augment_lib.make(config.student.augment))
    timing['student_seconds'] = time.perf_counter() - t0
  finally:
    writer.close()

  t0 = time.perf_counter()
  results = {'teacher': evaluate('teacher', teacher, [teacher_variables], test_sets, mesh, config)[0],
             'student': evaluate('student', student, [student_state.variables], test_sets, mesh, config)[0]}
  timing['eval_seconds'] = time.perf_counter() - t0
  timing['total_seconds'] = time.perf_counter() - t_start
  results.update(data_source=data.source, demo_sample=data.demo_sample, teacher_checkpoint=str(paths.absolute(teacher_dir)),
                 num_train=len(train), num_test=len(test_sets['mnist']), num_devices=mesh.size,
                 timing=timing, config=json.loads(config.to_json()))
  # The student's row names its objective when it is not plain KD (e.g. 'mlp, dkd').
  student = config.student.model + ('' if config.student.loss == 'distillation' else f', {config.student.loss}')
  report.write_results(results, workdir, {'teacher': config.teacher.model, 'student': student})
  return results
