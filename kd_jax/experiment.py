"""The MNIST distillation job: train (or restore) a teacher, distil a student, evaluate both.

``run(config, workdir)`` is what ``python -m kd_jax.main`` calls. Layout of
the workdir::

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
from typing import Any, Dict, Optional, Sequence

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kd_jax import checkpoints
from kd_jax import data as data_lib
from kd_jax import losses
from kd_jax import metrics as metrics_lib
from kd_jax import models
from kd_jax import training

TEST_SET_TITLES = {'mnist': 'MNIST', 'mnist_scale': 'MNIST-Scaled', 'mnist_translate': 'MNIST-Translated'}
_TEACHER_MODES = ('eval', 'train')
DEMO_WARNING = '**DEMO SAMPLE ONLY — not full MNIST; not comparable to the paper.**\n\n'
STREAMS = {'teacher': 0, 'student': 1}  # separate rng / data-order streams per phase


class MetricWriter:
  """Training metrics to ``metrics.jsonl`` and TensorBoard event files."""

  def __init__(self, workdir: str):
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
    self._tensorboard = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def write(self, phase: str, step: int, scalars: Dict[str, float]):
    self._jsonl.write(json.dumps({'phase': phase, 'step': step, **scalars}) + '\n')
    self._jsonl.flush()
    for name, value in scalars.items():
      self._tensorboard.add_scalar(f'{phase}/{name}', value, step)

  def close(self):
    self._jsonl.close()
    self._tensorboard.close()


def check_config(config: ml_collections.ConfigDict):
  """Fails fast, before any data is loaded, on names and values the job cannot use."""
  for phase in ('teacher', 'student'):
    cfg = config[phase]
    models.create_model(cfg.model, **cfg.model_kwargs)
    losses.get_loss(cfg.loss, **_kd_settings(config))
  if config.teacher.loss != 'cross_entropy':
    raise ValueError(f'the teacher trains on gold labels: config.teacher.loss must be cross_entropy, '
                     f'got {config.teacher.loss!r}')
  if config.kd.get('teacher_mode', 'eval') not in _TEACHER_MODES:
    raise ValueError(f'unknown config.kd.teacher_mode {config.kd.teacher_mode!r}; choose one of {_TEACHER_MODES}')


def _kd_settings(config):
  return {k: config.kd[k] for k in ('temperature', 'alpha', 'scale')}


def init_instances(model, tx, seeds: Sequence[int], stream: int, stacked: bool, example_input=None):
  """The initial state of seed ``s`` is init_state(fold_in(PRNGKey(s), stream)); stacked: one per seed, vmapped."""
  keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), stream) for s in seeds])
  if stacked:
    return jax.vmap(lambda key: training.init_state(model, tx, key, example_input))(keys)
  return training.init_state(model, tx, keys[0], example_input)


def train_model(name: str, cfg, config, model, train: data_lib.Split, mesh, directory: str,
                writer: Optional[MetricWriter], *, seeds: Sequence[int], stream: int, stacked: bool = False,
                teacher: Optional[nn.Module] = None, teacher_variables=None, teacher_logits=None,
                extra_meta: Optional[Dict[str, Any]] = None):
  """Trains ``model`` with the settings ``cfg``, resuming from the checkpoints in ``directory`` if any.

  One run (``seeds=[s]``), or with ``stacked`` one vmapped instance per seed,
  each with its own init, dropout keys and data order, and each paired with its
  own teacher instance (``teacher_variables`` / ``teacher_logits`` stacked on
  the leading axis). Instance k equals the single run with seed ``seeds[k]``.
  ``extra_meta`` is saved with each checkpoint's metadata (e.g. a vocabulary).
  """
  training.check_batch_size(cfg.batch_size, mesh, f'the batch size of {name}')
  orders = [training.BatchOrder(len(train), cfg.batch_size, seed, stream, getattr(train, 'lengths', None))
            for seed in seeds]
  batches = training.Batches(train, orders, stacked, teacher_logits)
  num_steps = max(1, int(round(cfg.num_epochs * batches.steps_per_epoch)))
  tx = training.make_optimizer(cfg, num_steps)
  state = init_instances(model, tx, seeds, stream, stacked, train.batch(np.arange(1))['inputs'])
  meta = {'model': cfg.model, 'model_kwargs': cfg.model_kwargs.to_dict(), 'phase': name, 'num_steps': num_steps,
          'seeds': list(seeds), 'stacked': stacked, **(extra_meta or {})}
  mngr = checkpoints.manager(directory)
  try:
    restored, saved_meta = checkpoints.restore_latest(mngr, jax.eval_shape(lambda: state))
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'{mngr.directory} holds a checkpoint that does not fit the settings of {name}; '
                     f'use a fresh --workdir: {e}') from e
  if restored is not None:
    if saved_meta.get('num_steps') != num_steps:
      raise ValueError(f'{mngr.directory} is a run of {saved_meta.get("num_steps")} steps but {name} '
                       f'asks for {num_steps}; use a fresh --workdir')
    logging.info('%s: resuming from the checkpoint at step %d in %s', name, training.current_step(restored),
                 mngr.directory)
    state = restored
  step = training.make_train_step(model, tx, losses.get_loss(cfg.loss, **_kd_settings(config)), teacher,
                                  teacher_train_mode=config.kd.get('teacher_mode', 'eval') == 'train')
  step_fn = training.jit_data_parallel(jax.vmap(step) if stacked else step, mesh, batches.partition_spec)
  state = training.fit(name, step_fn, state, batches, num_steps=num_steps, mesh=mesh,
                       teacher_variables=teacher_variables, log_every=config.log_every_steps, writer=writer,
                       save_fn=lambda s: checkpoints.save(mngr, s, meta),
                       checkpoint_every=config.get('checkpoint_every_steps', 0))
  mngr.close()
  return state


def evaluate(model, variables, test_sets: Dict[str, data_lib.Split], mesh, config) -> Dict[str, Dict[str, float]]:
  predict = training.make_predict_fn(model, mesh, config.eval.batch_size)
  return {name: metrics_lib.classification_metrics(predict(variables, split.images), split.labels,
                                                   config.eval.ece_bins)
          for name, split in test_sets.items()}


def results_table(results: Dict[str, Any], model_names: Dict[str, str]) -> str:
  header = '| model | ' + ' | '.join(f'{TEST_SET_TITLES[t]} acc | {TEST_SET_TITLES[t]} ECE'
                                     for t in data_lib.TEST_SETS) + ' |'
  lines = [header, '|---' * (1 + 2 * len(data_lib.TEST_SETS)) + '|']
  for role in ('teacher', 'student'):
    cells = ' | '.join(f'{100 * results[role][t]["accuracy"]:.2f}% | {results[role][t]["ece"]:.4f}'
                       for t in data_lib.TEST_SETS)
    lines.append(f'| {role} ({model_names[role]}) | {cells} |')
  return '\n'.join(lines)


def load_data(config):
  """MNIST per ``config.data``: (the MnistData, the training split, the test sets), sliced to num_train/num_test."""
  data = data_lib.load_mnist(config.data.dir, config.data.translate_seed)
  train = data.train.take(config.data.num_train) if config.data.num_train else data.train
  test_sets = {k: (v.take(config.data.num_test) if config.data.num_test else v) for k, v in data.test.items()}
  return data, train, test_sets


def run(config: ml_collections.ConfigDict, workdir: str) -> Dict[str, Any]:
  """Runs the whole job and returns what it writes to ``results.json``."""
  check_config(config)
  os.makedirs(workdir, exist_ok=True)
  t_start = time.perf_counter()
  data, train, test_sets = load_data(config)
  mesh = training.data_mesh()
  logging.info('Devices: %d × %s; train %d examples, test %d per set', mesh.size, jax.devices()[0].platform,
               len(train), len(test_sets['mnist']))
  teacher = models.create_model(config.teacher.model, **config.teacher.model_kwargs)
  student = models.create_model(config.student.model, **config.student.model_kwargs)
  writer = MetricWriter(workdir)
  timing = {}
  try:
    t0 = time.perf_counter()
    if config.teacher.checkpoint:
      teacher_dir = config.teacher.checkpoint
      logging.info('Offline KD: using the saved teacher in %s (no teacher training)', teacher_dir)
    else:
      teacher_dir = os.path.join(workdir, 'teacher')
      train_model('teacher', config.teacher, config, teacher, train, mesh, teacher_dir, writer,
                  seeds=[config.seed], stream=STREAMS['teacher'])
    # The student always distils from the restored checkpoint: the job is offline KD end to end.
    abstract = jax.eval_shape(lambda: training.init_variables(teacher, jax.random.PRNGKey(0)))
    teacher_variables, teacher_meta = checkpoints.restore_model(
        teacher_dir, config.teacher.model, config.teacher.model_kwargs.to_dict(), abstract)
    logging.info('Teacher restored from %s (step %d)', teacher_dir, teacher_meta['step'])
    timing['teacher_seconds'] = time.perf_counter() - t0

    t0 = time.perf_counter()
    distil = config.student.loss == 'distillation'
    student_state = train_model('student', config.student, config, student, train, mesh,
                                os.path.join(workdir, 'student'), writer, seeds=[config.seed],
                                stream=STREAMS['student'], teacher=teacher if distil else None,
                                teacher_variables=teacher_variables if distil else None)
    timing['student_seconds'] = time.perf_counter() - t0
  finally:
    writer.close()

  t0 = time.perf_counter()
  results = {'teacher': evaluate(teacher, teacher_variables, test_sets, mesh, config),
             'student': evaluate(student, student_state.variables, test_sets, mesh, config)}
  timing['eval_seconds'] = time.perf_counter() - t0
  timing['total_seconds'] = time.perf_counter() - t_start
  results.update(data_source=data.source, demo_sample=data.demo_sample, teacher_checkpoint=os.path.abspath(teacher_dir),
                 num_train=len(train), num_test=len(test_sets['mnist']), num_devices=mesh.size,
                 timing=timing, config=json.loads(config.to_json()))
  _write_results(results, workdir, {'teacher': config.teacher.model, 'student': config.student.model})
  return results


def _write_results(results, workdir, model_names):
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=2)
  table = results_table(results, model_names)
  warning = DEMO_WARNING if results['demo_sample'] else ''
  text = (f'# kd_jax results\n\n{warning}Data: {results["data_source"]}\n\n'
          f'Train examples: {results["num_train"]}; test examples per set: {results["num_test"]}; '
          f'final checkpoints (not best); ECE with {results["config"]["eval"]["ece_bins"]} equal-width bins.\n\n'
          f'{table}\n\nWall time: {results["timing"]["total_seconds"]:.0f} s on {results["num_devices"]} device(s).\n')
  with open(os.path.join(workdir, 'results.md'), 'w') as f:
    f.write(text)
  print(text, flush=True)
