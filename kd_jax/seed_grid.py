"""The paper's MNIST grid: independent models and teacher→student pairs, several seeds each, one report.

Run by ``python -m kd_jax.grid --config=configs/mnist_grid.py --workdir=...``.

Seeds run in parallel: the N instances of a setup are one jitted program,
``jax.vmap``-ed over the stacked train states, each instance with its own init,
dropout keys and data order; instance k equals the single run of
``kd_jax.main`` with seed ``config.seed + k``. Each student instance distils
from its own teacher instance. The independent CNN/MLP rows are the teachers
themselves (trained on gold labels), as in the paper.

Modes: ``offline`` (teachers trained first, then students from the saved
teachers; optionally from teacher logits cached once over the training set)
and ``online`` (teacher and student trained together, the student on the
teacher's current logits). The reported checkpoint is the final one, not the
best: there is no model selection on the test sets.

Writes ``grid.json`` (every instance's numbers), ``grid.md`` (mean ± std and
n), ``accuracy.png`` (grouped bars with error bars) and ``reliability.png``.
"""
import json
import os
import time
from typing import Any, Dict, List, Tuple

from absl import logging
import jax
import ml_collections
import numpy as np

from kd_jax import checkpoints
from kd_jax import data as data_lib
from kd_jax import experiment
from kd_jax import losses
from kd_jax import metrics as metrics_lib
from kd_jax import models
from kd_jax import training

# As in kd_jax.main, so that instance k is the main job's run with seed k.
TEACHER_STREAM, STUDENT_STREAM = experiment.STREAMS['teacher'], experiment.STREAMS['student']
MODES = ('offline', 'online')
DISPLAY = {'cnn': 'CNN', 'mlp': 'MLP'}


def parse_setup(setup: str) -> Tuple[str, str]:
  """'cnn' -> ('cnn', ''), an independent model; 'cnn_to_mlp' -> ('cnn', 'mlp')."""
  teacher, _, student = setup.partition('_to_')
  for name in (teacher, student):
    if name and name not in models.MODELS:
      raise ValueError(f'unknown model {name!r} in grid setup {setup!r}; models: {sorted(models.MODELS)}')
  return teacher, student


def setup_title(setup: str) -> str:
  teacher, student = parse_setup(setup)
  return f'{DISPLAY[teacher]}→{DISPLAY[student]}' if student else DISPLAY[teacher]


def check_grid_config(config):
  if config.mode not in MODES:
    raise ValueError(f'unknown grid mode {config.mode!r} (config.mode); choose one of {MODES}')
  if config.num_seeds < 1:
    raise ValueError(f'config.num_seeds must be ≥ 1, got {config.num_seeds}')
  vmap_seeds(config)
  for setup in config.setups:
    for name in filter(None, parse_setup(setup)):
      if name not in config.models:
        raise ValueError(f'grid setup {setup!r} needs training settings config.models.{name}')
  losses.check_kd_config(config.kd.temperature, config.kd.alpha, config.kd.scale)
  if config.cache_teacher_logits and config.kd.teacher_mode == 'train':
    raise ValueError('config.cache_teacher_logits needs a deterministic teacher: it is invalid with '
                     "config.kd.teacher_mode='train' (dropout and batch statistics differ every step)")


def _role_cfg(config, model: str, loss: str) -> ml_collections.ConfigDict:
  """The training settings of ``model`` as a teacher/independent model, or as a student (``loss='distillation'``)."""
  cfg = ml_collections.ConfigDict(config.models[model].to_dict())
  cfg.model, cfg.loss = model, loss
  if loss == 'distillation':
    cfg.update(config.get('student_overrides', {}))
  return cfg


def _instance(tree, k: int):
  return jax.tree_util.tree_map(lambda x: x[k], tree)


def teacher_logits_on(model, stacked_variables, images: np.ndarray, mesh, config) -> np.ndarray:
  """Each teacher instance's eval-mode logits on ``images``: [N, len(images), C]."""
  predict = training.make_predict_fn(model, mesh, config.eval.batch_size)
  return np.stack([predict(_instance(stacked_variables, k), images) for k in range(config.num_seeds)])


def evaluate_instances(model, stacked_variables, test_sets, mesh, config) -> List[Dict[str, Any]]:
  """Per instance and test set: accuracy, ECE and the reliability bins behind it."""
  results = []
  predict = training.make_predict_fn(model, mesh, config.eval.batch_size)
  for k in range(config.num_seeds):
    variables = _instance(stacked_variables, k)
    per_set = {}
    for name, split in test_sets.items():
      bins = metrics_lib.reliability_bins(predict(variables, split.images), split.labels, config.eval.ece_bins)
      per_set[name] = {'accuracy': float(np.sum(bins['count'] * bins['accuracy']) / np.sum(bins['count'])),
                       'ece': metrics_lib.ece_from_bins(bins),
                       'reliability': {key: value.tolist() for key, value in bins.items()}}
    results.append(per_set)
  return results


def _stack(trees):
  return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def vmap_seeds(config) -> bool:
  """``config.seed_parallelism``: 'vmap', 'sequential', or 'auto' (vmap except on CPU).

  XLA:CPU runs a vmapped CNN — a grouped convolution over instances — several
  times slower than the instances one after another (benchmarks/vmap_seeds.py),
  so 'auto' runs seeds sequentially there; the numbers are the same either way.
  """
  if config.seed_parallelism not in ('auto', 'vmap', 'sequential'):
    raise ValueError(f'unknown config.seed_parallelism {config.seed_parallelism!r}; use auto, vmap or sequential')
  if config.seed_parallelism == 'auto':
    return jax.devices()[0].platform != 'cpu'
  return config.seed_parallelism == 'vmap'


def train_instances(name: str, cfg, config, model, train, mesh, directory: str, writer, seeds, stream: int, *,
                    teacher=None, teacher_variables=None, teacher_logits=None):
  """One instance per seed, vmapped or in sequence; returns the instances' variables stacked on axis 0."""
  common = dict(seeds=seeds, stream=stream, teacher=teacher)
  if vmap_seeds(config):
    return experiment.train_model(name, cfg, config, model, train, mesh, directory, writer, stacked=True,
                                  teacher_variables=teacher_variables, teacher_logits=teacher_logits,
                                  **common).variables
  variables = []
  for k, seed in enumerate(seeds):
    common['seeds'] = [seed]
    variables.append(experiment.train_model(
        f'{name}_seed_{seed}', cfg, config, model, train, mesh, os.path.join(directory, f'seed_{seed}'), writer,
        teacher_variables=None if teacher_variables is None else _instance(teacher_variables, k),
        teacher_logits=None if teacher_logits is None else teacher_logits[k], **common).variables)
  return _stack(variables)


def train_online_pair(setup: str, config, train: data_lib.Split, mesh, workdir: str, writer, seeds):
  """Teacher and student trained together, one instance per seed; returns the students' stacked variables."""
  teacher_name, student_name = parse_setup(setup)
  teacher_cfg, student_cfg = (_role_cfg(config, teacher_name, 'cross_entropy'),
                              _role_cfg(config, student_name, 'distillation'))
  if teacher_cfg.batch_size != student_cfg.batch_size:
    raise ValueError(f'online KD trains {setup} on shared batches: config.models.{teacher_name}.batch_size and '
                     f'config.models.{student_name}.batch_size must be equal')
  training.check_batch_size(student_cfg.batch_size, mesh, f'the batch size of {setup}')
  teacher, student = (models.create_model(teacher_name, **teacher_cfg.model_kwargs),
                      models.create_model(student_name, **student_cfg.model_kwargs))
  kd = {k: config.kd[k] for k in ('temperature', 'alpha', 'scale')}
  stacked = vmap_seeds(config)

  def train_online(run_seeds):
    orders = [training.BatchOrder(len(train), student_cfg.batch_size, seed, STUDENT_STREAM) for seed in run_seeds]
    batches = training.Batches(train, orders, stacked=stacked)
    num_steps = max(1, int(round(max(teacher_cfg.num_epochs, student_cfg.num_epochs) * batches.steps_per_epoch)))
    teacher_tx, student_tx = (training.make_optimizer(teacher_cfg, num_steps),
                              training.make_optimizer(student_cfg, num_steps))
    step = training.make_online_step(
        training.make_train_step(teacher, teacher_tx, losses.get_loss('cross_entropy'), output_logits=True),
        training.make_train_step(student, student_tx, losses.get_loss('distillation', **kd)))
    state = (experiment.init_instances(teacher, teacher_tx, run_seeds, TEACHER_STREAM, stacked),
             experiment.init_instances(student, student_tx, run_seeds, STUDENT_STREAM, stacked))
    step_fn = training.jit_data_parallel(jax.vmap(step, in_axes=(0, 0, None)) if stacked else step, mesh,
                                         batches.partition_spec)
    name = f'{setup}_online' + ('' if stacked else f'_seed_{run_seeds[0]}')
    state = training.fit(name, step_fn, state, batches, num_steps=num_steps, mesh=mesh,
                         log_every=config.log_every_steps, writer=writer)
    mngr = checkpoints.manager(os.path.join(workdir, f'{setup}_online', '_'.join(map(str, run_seeds))))
    checkpoints.save(mngr, state[1], {'model': student_name, 'model_kwargs': student_cfg.model_kwargs.to_dict(),
                                      'phase': name, 'num_steps': num_steps, 'seeds': list(run_seeds)})
    mngr.close()
    return state[1].variables

  if stacked:
    return train_online(seeds)
  return _stack([train_online([seed]) for seed in seeds])


def run(config: ml_collections.ConfigDict, workdir: str) -> Dict[str, Any]:
  """Trains and evaluates every setup of ``config.setups``; writes and returns the report."""
  check_grid_config(config)
  os.makedirs(workdir, exist_ok=True)
  t_start = time.perf_counter()
  data, train, test_sets = experiment.load_data(config)
  mesh = training.data_mesh()
  seeds = [config.seed + k for k in range(config.num_seeds)]
  logging.info('Grid: %s, %s KD, seeds %s (%s), %d device(s)', list(config.setups), config.mode, seeds,
               'vmapped' if vmap_seeds(config) else 'one after another', mesh.size)
  writer = experiment.MetricWriter(workdir)
  rows, timing, teachers = {}, {}, {}

  def get_teacher(name):  # trained once per model, shared by its independent row and its students
    if name not in teachers:
      t0 = time.perf_counter()
      model = models.create_model(name, **config.models[name].model_kwargs)
      teachers[name] = (model, train_instances(name, _role_cfg(config, name, 'cross_entropy'), config, model,
                                               train, mesh, os.path.join(workdir, name), writer, seeds,
                                               TEACHER_STREAM))
      timing[name] = time.perf_counter() - t0
    return teachers[name]

  try:
    for setup in config.setups:
      teacher_name, student_name = parse_setup(setup)
      if not student_name:
        model, variables = get_teacher(teacher_name)
      else:
        student = models.create_model(student_name, **config.models[student_name].model_kwargs)
        t0 = time.perf_counter()
        if config.mode == 'online':
          variables = train_online_pair(setup, config, train, mesh, workdir, writer, seeds)
        else:
          teacher, teacher_variables = get_teacher(teacher_name)
          t0 = time.perf_counter()
          cached = (teacher_logits_on(teacher, teacher_variables, train.images, mesh, config)
                    if config.cache_teacher_logits else None)
          variables = train_instances(
              setup, _role_cfg(config, student_name, 'distillation'), config, student, train, mesh,
              os.path.join(workdir, setup), writer, seeds, STUDENT_STREAM,
              teacher=None if config.cache_teacher_logits else teacher,
              teacher_variables=None if config.cache_teacher_logits else teacher_variables,
              teacher_logits=cached)
        timing[setup] = time.perf_counter() - t0
        model = student
      rows[setup] = evaluate_instances(model, variables, test_sets, mesh, config)
      logging.info('%s: %s', setup, format_row(rows[setup]))
  finally:
    writer.close()

  report = {
      'setups': {setup: {'title': setup_title(setup), 'instances': rows[setup], 'summary': summarise(rows[setup]),
                         'seconds': timing.get(setup, timing.get(parse_setup(setup)[0]))}
                 for setup in config.setups},
      'seeds': seeds, 'vmapped': vmap_seeds(config), 'mode': config.mode,
      'cache_teacher_logits': bool(config.cache_teacher_logits),
      'checkpoint_rule': 'final checkpoint of each run (no early stopping or best-of selection)',
      'data_source': data.source, 'demo_sample': data.demo_sample, 'num_train': len(train),
      'num_test': len(test_sets['mnist']), 'num_devices': mesh.size, 'device': jax.devices()[0].device_kind,
      'total_seconds': time.perf_counter() - t_start, 'config': json.loads(config.to_json()),
  }
  write_report(report, workdir)
  return report


def summarise(instances: List[Dict[str, Any]]) -> Dict[str, Dict[str, Dict[str, float]]]:
  """Mean, sample standard deviation (ddof=1; 0 for one instance) and n per test set and metric."""
  summary = {}
  for test_set in data_lib.TEST_SETS:
    summary[test_set] = {}
    for metric in ('accuracy', 'ece'):
      values = np.array([inst[test_set][metric] for inst in instances])
      summary[test_set][metric] = {'mean': float(values.mean()), 'n': len(values),
                                   'std': float(metrics_lib.sample_std(values))}
  return summary


def format_row(instances) -> str:
  summary = summarise(instances)
  return ', '.join(f'{experiment.TEST_SET_TITLES[t]} {100 * summary[t]["accuracy"]["mean"]:.2f}%'
                   for t in data_lib.TEST_SETS)


def grid_table(report) -> str:
  titles = experiment.TEST_SET_TITLES
  lines = ['| setup | n | ' + ' | '.join(f'{titles[t]} acc (%) | {titles[t]} ECE' for t in data_lib.TEST_SETS)
           + ' |', '|---|---' + '|---' * (2 * len(data_lib.TEST_SETS)) + '|']
  for setup in report['setups'].values():
    s = setup['summary']
    cells = ' | '.join(f'{100 * s[t]["accuracy"]["mean"]:.2f} ± {100 * s[t]["accuracy"]["std"]:.2f} | '
                       f'{s[t]["ece"]["mean"]:.4f} ± {s[t]["ece"]["std"]:.4f}' for t in data_lib.TEST_SETS)
    lines.append(f'| {setup["title"]} | {s["mnist"]["accuracy"]["n"]} | {cells} |')
  return '\n'.join(lines)


def write_report(report, workdir: str):
  with open(os.path.join(workdir, 'grid.json'), 'w') as f:
    json.dump(report, f, indent=1)
  plot_accuracy(report, os.path.join(workdir, 'accuracy.png'))
  plot_reliability(report, os.path.join(workdir, 'reliability.png'))
  warning = experiment.DEMO_WARNING if report['demo_sample'] else ''
  logits = 'cached once per teacher instance' if report['cache_teacher_logits'] else 'computed in the step'
  seconds = ', '.join(f'{s["title"]} {s["seconds"]:.0f} s' for s in report['setups'].values() if s['seconds'])
  text = (f'# kd_jax MNIST grid\n\n{warning}Data: {report["data_source"]}\n\n'
          f'{report["mode"]} KD; seeds {report["seeds"]} (n = {len(report["seeds"])} per setup, '
          f'{"vmapped" if report["vmapped"] else "run one after another"}); '
          f'teacher logits {logits if report["mode"] == "offline" else "from the co-trained teacher"}; '
          f'{report["num_train"]} train examples, {report["num_test"]} test examples per set. '
          f'Cells: mean ± sample std (ddof = 1) over instances. Checkpoint rule: {report["checkpoint_rule"]}. '
          f'ECE: {report["config"]["eval"]["ece_bins"]} equal-width bins.\n\n{grid_table(report)}\n\n'
          f'![accuracy](accuracy.png)\n\n![reliability](reliability.png)\n\n'
          f'Wall time: {report["total_seconds"]:.0f} s on {report["num_devices"]} × {report["device"]} '
          f'({seconds}).\n')
  with open(os.path.join(workdir, 'grid.md'), 'w') as f:
    f.write(text)
  print(text, flush=True)


def plot_accuracy(report, path: str):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  setups = list(report['setups'].values())
  x = np.arange(len(data_lib.TEST_SETS))
  width = 0.8 / len(setups)
  fig, ax = plt.subplots(figsize=(9, 4.5))
  for i, setup in enumerate(setups):
    s = setup['summary']
    ax.bar(x + (i - (len(setups) - 1) / 2) * width, [100 * s[t]['accuracy']['mean'] for t in data_lib.TEST_SETS],
           width, yerr=[100 * s[t]['accuracy']['std'] for t in data_lib.TEST_SETS], capsize=3,
           label=setup['title'])
  ax.set_xticks(x, [experiment.TEST_SET_TITLES[t] for t in data_lib.TEST_SETS])
  ax.set_ylabel('accuracy (%)')
  ax.set_ylim(0, 100)
  ax.set_title(f'Accuracy, mean ± std over {len(report["seeds"])} seeds ({report["mode"]} KD)')
  ax.legend(ncol=len(setups), fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.08))
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_reliability(report, path: str):
  """Reliability diagrams of the CNN, the MLP and CNN→MLP (those present), bins pooled over instances."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  shown = [s for s in ('cnn', 'mlp', 'cnn_to_mlp') if s in report['setups']] or list(report['setups'])[:3]
  fig, axes = plt.subplots(len(data_lib.TEST_SETS), len(shown), figsize=(3.2 * len(shown), 9), squeeze=False)
  for col, setup in enumerate(shown):
    for row, test_set in enumerate(data_lib.TEST_SETS):
      bins = [inst[test_set]['reliability'] for inst in report['setups'][setup]['instances']]
      count = np.sum([b['count'] for b in bins], axis=0)
      safe = np.maximum(count, 1)
      accuracy = np.sum([np.array(b['accuracy']) * b['count'] for b in bins], axis=0) / safe
      confidence = np.sum([np.array(b['confidence']) * b['count'] for b in bins], axis=0) / safe
      edges = np.linspace(0, 1, len(count) + 1)
      ax = axes[row, col]
      filled = count > 0
      ax.bar(edges[:-1], np.where(filled, accuracy, 0), width=np.diff(edges), align='edge',
             edgecolor='black', linewidth=0.5, label='accuracy')
      ax.bar(edges[:-1], np.where(filled, np.abs(confidence - accuracy), 0), bottom=np.minimum(accuracy, confidence),
             width=np.diff(edges), align='edge', color='red', alpha=0.3, label='gap to mean confidence')
      ax.plot([0, 1], [0, 1], 'k--', linewidth=0.8)
      ece = report['setups'][setup]['summary'][test_set]['ece']['mean']
      ax.set_title(f'{report["setups"][setup]["title"]} · {experiment.TEST_SET_TITLES[test_set]}\nECE {ece:.3f}',
                   fontsize=9)
      ax.set_xlim(0, 1)
      ax.set_ylim(0, 1)
      if row == len(data_lib.TEST_SETS) - 1:
        ax.set_xlabel('confidence')
      if col == 0:
        ax.set_ylabel('accuracy')
  axes[0, 0].legend(fontsize=7, loc='upper left')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)

