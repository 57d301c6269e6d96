"""The seed grid, for every task: independent models and teacher→student pairs, several seeds each, one report.

Run by ``python -m kd_jax.main --config=configs/<experiment>.py --workdir=...``: every experiment is a grid (the
MNIST main jobs, ``configs/mnist_*_to_*.py``, of one pair and its control with one seed; ``configs/sva_*_to_*.py`` of
one pair and its control with 3 seeds).
``config.task`` picks the task module (``TASKS``: ``kd_jax/<task>/task.py``), which gives the grid its models,
data, checks, predictions and metrics; everything else here — seeds, modes, controls, factors, epoch sweeps,
reports — is the same for every task.

Seeds run in parallel: the N instances of a setup are one jitted program,
``jax.vmap``-ed over the stacked train states, each instance with its own init,
dropout keys and data order; instance k equals the sequential run of seed
``config.seed + k``. Each student instance distils from its own teacher instance. The independent
rows are the teachers themselves (trained on gold labels), as in the paper.

Modes: ``offline`` (teachers trained first — or restored from
``config.models.<name>.checkpoint``, '{seed}' replaced by each seed — then
students from the saved teachers; optionally from teacher logits cached once
over the training set) and ``online`` (teacher and student trained together,
the student on the teacher's current logits). The reported checkpoint is the
final one, not the best: there is no model selection on the test sets.

Writes ``grid.json`` (every instance's numbers), ``grid.md`` (mean ± std and
n; each KD setup's gain over its control — its student model's independent row, or ``labels_to_<student>`` — paired
by seed), ``accuracy.png`` (grouped bars with error bars) and ``reliability.png``.
"""
import dataclasses
import importlib
import json
import os
import re
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from absl import logging
import jax
import ml_collections
import numpy as np

from kd_jax import checkpoints
from kd_jax import config_lib
from kd_jax import grid_report as report
from kd_jax import losses
from kd_jax import metric_writer
from kd_jax import paths
from kd_jax import sharding
from kd_jax import targets as targets_lib
from kd_jax import phases
from kd_jax import training
from kd_jax import workdirs

MODES = ('offline', 'online')
# config.task -> its module for the grid; a new task is one entry here and one kd_jax/<task>/task.py.
TASKS = {'mnist': 'kd_jax.mnist.task', 'sva': 'kd_jax.sva.task'}


@dataclasses.dataclass(frozen=True)
class TaskData:
  """What a task's ``load(config, workdir)`` gives the grid: the training split, the test sets (name -> split) and
  their titles in reports, the two test sets the sweeps and ablations headline, ``create_model(name, model_kwargs)``
  (it may depend on the data, e.g. a vocabulary), metadata saved with every checkpoint, a line warning about the
  data ('' for the real data), the paper's gain to mark in plots (or None) and more fields for the report."""
  title: str
  source: str
  warning: str
  train: Any
  test_sets: Dict[str, Any]
  test_titles: Dict[str, str]
  headline_sets: Sequence[str]
  create_model: Callable[[str, Dict[str, Any]], Any]
  extra_meta: Dict[str, Any] = dataclasses.field(default_factory=dict)
  paper_gain: Optional[Dict[str, Any]] = None
  extra_report: Dict[str, Any] = dataclasses.field(default_factory=dict)
  model_changes: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)
  # a test set's outputs (what the task's predictions give) -> the class predicted for each input
  predicted_classes: Callable[[Any], np.ndarray] = lambda logits: logits.argmax(-1)
  # the split the student role trains on (KD setups and labels_to_<student>; None: ``train``), e.g. with a transfer set
  student_train: Any = None
  # (the report, the workdir) -> markdown the task adds to grid.md (it may write figures beside it)
  report_section: Callable[[Dict[str, Any], str], str] = lambda report, workdir: ''


def task_of(config):
  """The task module of ``config.task`` (MNIST for configs from before the field)."""
  task = config.get('task', 'mnist')
  if task not in TASKS:
    raise ValueError(f'unknown config.task {task!r}; the seed grid runs {sorted(TASKS)}')
  return importlib.import_module(TASKS[task])


LABELS = report.LABELS  # 'labels_to_<student>': the student role on gold labels, a KD setup's control


def parse_setup(config, setup: str) -> Tuple[str, str]:
  """'cnn' -> ('cnn', ''), an independent model; 'cnn_to_mlp' -> ('cnn', 'mlp'); 'labels_to_mlp' -> ('labels',
  'mlp'), the student role on gold labels (:data:`LABELS`); names are the task's models."""
  models = task_of(config).MODELS
  teacher, to, student = setup.partition('_to_')
  if not teacher or (to and not student) or (teacher == LABELS and not student):  # a half-written pair
    raise ValueError(f'grid setup {setup!r} is neither a model nor <teacher>_to_<student> (nor {LABELS}_to_<student>); '
                     f'models: {sorted(models)}')
  for name in (student, '' if teacher == LABELS else teacher):
    if name and name not in models:
      raise ValueError(f'unknown model {name!r} in grid setup {setup!r}; models: {sorted(models)}')
  return teacher, student


def trained_models(config, setup: str) -> Tuple[str, ...]:
  """The models ``setup`` trains or restores: its teacher (not the gold labels) and its student."""
  return tuple(name for name in parse_setup(config, setup) if name and name != LABELS)


def teacher_of(config, setup: str) -> str:
  """The model in the teacher role of ``setup`` (an independent model is its own), '' for the gold labels."""
  teacher = parse_setup(config, setup)[0]
  return '' if teacher == LABELS else teacher


def setup_title(config, setup: str) -> str:
  title = task_of(config).title
  teacher, student = parse_setup(config, setup)
  if teacher == LABELS:
    return f'{title(student)} (as a student, gold labels)'
  return f'{title(teacher)}→{title(student)}' if student else title(teacher)


def row_title(config, setup: str) -> str:
  """A report row's name: the setup's title and what its model does beyond plain KD or plain labels (the objective,
  the views it trains on)."""
  cfg = setup_config(config, setup)
  details = [cfg.loss] if report.is_kd(setup) and cfg.loss != 'distillation' else []
  if cfg.get('augment'):
    details.append(f'views: {cfg.augment}')
  return setup_title(config, setup) + (f' ({", ".join(details)})' if details else '')


def check_grid_config(config):
  if 'setups' not in config:
    raise ValueError('config.setups is missing: every kd_jax experiment is a seed grid of its setups (e.g. '
                     "configs/mnist_cnn_to_mlp.py's ('cnn', 'mlp', 'cnn_to_mlp'))")
  if config.mode not in MODES:
    raise ValueError(f'unknown grid mode {config.mode!r} (config.mode); choose one of {MODES}')
  if config.num_seeds < 1:
    raise ValueError(f'config.num_seeds must be ≥ 1, got {config.num_seeds}')
  if not config.setups or len(set(config.setups)) != len(config.setups):
    raise ValueError(f'config.setups must name each setup once, and at least one, got {config.setups!r}')
  if config.student_epochs and not any(report.is_kd(setup) for setup in config.setups):
    raise ValueError(f'config.student_epochs trains students at each budget, but config.setups={config.setups!r} has '
                     'no <teacher>_to_<student> setup')
  if config.student_epochs and config.mode == 'online':
    raise ValueError("config.student_epochs needs config.mode='offline' (teachers trained once, then reused)")
  if any(isinstance(e, bool) or not isinstance(e, (int, float)) or not e > 0 for e in config.student_epochs):
    raise ValueError(f'config.student_epochs must hold positive numbers of epochs, got {config.student_epochs!r}')
  ensemble = config.teacher_ensemble
  if ensemble not in ('', *targets_lib.ENSEMBLE_COMBINATIONS):
    raise ValueError(f"config.teacher_ensemble must be '' (each student's own teacher) or one of "
                     f'{", ".join(targets_lib.ENSEMBLE_COMBINATIONS)}, got {ensemble!r}')
  if ensemble and config.num_seeds < 2:
    raise ValueError(f"config.teacher_ensemble={ensemble!r} averages the teachers of all seeds: it needs "
                     f'config.num_seeds ≥ 2, got {config.num_seeds}')
  if ensemble and config.mode != 'offline':
    raise ValueError(f"config.teacher_ensemble={ensemble!r} needs config.mode='offline' (online KD co-trains one "
                     'teacher per student)')
  if ensemble and losses.loss_spec(config.student_loss).uses_features:
    raise ValueError(f"config.teacher_ensemble={ensemble!r} gives logits, not features: config.student_loss="
                     f"{config.student_loss!r} reads the teacher's features; choose an objective on logits "
                     '(distillation, dkd, dist, standardised_distillation)')
  config_lib.check_int(config, 'cross_fit_folds', 0)
  if config.cross_fit_folds == 1:
    raise ValueError('config.cross_fit_folds=1 leaves a fold teacher nothing to train on: use 0 (off) or k ≥ 2')
  if config.cross_fit_folds and (config.mode != 'offline' or not config.cache_teacher_logits or ensemble
                                 or config.student_epochs or not any(report.is_kd(s) for s in config.setups)):
    raise ValueError("config.cross_fit_folds gives each student cached, cross-fitted logits of its own seed's fold "
                     "teachers: it needs a <teacher>_to_<student> setup, config.mode='offline', cached teacher logits "
                     '(cache_teacher_logits=True: a classifier\'s), no teacher_ensemble and no student_epochs')
  if config.mode == 'online' and config.kd.get('targets', 'teacher') != 'teacher':
    raise ValueError(f'config.kd.targets={config.kd.targets!r} is a control made from cached teacher logits; online '
                     "KD learns from the co-trained teacher's current logits: use config.mode='offline'")
  if config.snapshots and config.mode == 'online':
    raise ValueError("config.snapshots=True needs config.mode='offline': the online grid takes no snapshots")
  vmap_seeds(config)
  task = task_of(config)
  task.check_data_and_eval(config)
  for setup in config.setups:
    for name in trained_models(config, setup):
      if name not in config.models:
        raise ValueError(f'grid setup {setup!r} needs training settings config.models.{name}')
      config_lib.check_phase(config, f'models.{name}', jax.device_count())
      task.check_model(config, f'models.{name}')
      if config.models[name].get('augment') and config.mode == 'online':
        raise ValueError(f"config.models.{name}.augment needs config.mode='offline' (the online pair has no "
                         'augmentation)')
    teacher_name, student_name = teacher_of(config, setup), parse_setup(config, setup)[1]
    if teacher_name:
      task.check_augment(config, role_config(config, teacher_name, 'teacher'), f'models.{teacher_name}')
    if student_name:
      student = setup_config(config, setup)
      # Errors name the field that set the value: the model's own, or student_overrides for the student role.
      field = lambda key: 'student_overrides' if key in config.student_overrides else f'models.{student_name}'
      task.check_augment(config, student, field('augment'))
      phases.check_loss_batch(student, field('batch_size'))
  phases.check_kd_config(config, student_loss=config.student_loss)
  if not targets_lib.uses_teacher(ml_collections.ConfigDict({'loss': config.student_loss})):
    raise ValueError(f'config.student_loss={config.student_loss!r} learns from gold labels alone: a student model\'s '
                     'own setup (e.g. mlp) is that; a <teacher>_to_<student> setup needs a teacher objective')
  seeds = [config.seed + k for k in range(config.num_seeds)]
  for name in dict.fromkeys(n for setup in config.setups for n in trained_models(config, setup)):
    template = config.models[name].checkpoint
    missing = [d for d in dict.fromkeys(phases.checkpoint_path(template, seed) for seed in seeds)
               if not paths.absolute(d).is_dir()] if template else []
    if missing:  # here, not when the grid reaches that model, perhaps after hours of training others
      raise FileNotFoundError(f'config.models.{name}.checkpoint={template!r}: {missing[0]} does not exist; give the '
                              f'<workdir>/{name}/seed_{{seed}} of a finished grid (<workdir>/{name}, without {{seed}}, '
                              f'where its seeds were vmapped), or leave it empty to train {name}')
  shared_teachers(config)


def shared_teachers(config):
  """The models whose saved teacher (``config.models.<name>.checkpoint``) is one model for every seed: refused
  unless ``config.kd.shared_teacher`` (:func:`kd_jax.phases.teacher_is_shared`)."""
  seeds = [config.seed + k for k in range(config.num_seeds)]
  return [name for name in dict.fromkeys(filter(None, (teacher_of(config, setup) for setup in config.setups)))
          if phases.teacher_is_shared(config, config.models[name].checkpoint, seeds, f'models.{name}.checkpoint')]


def setup_config(config, setup: str) -> ml_collections.ConfigDict:
  """The training settings of the model ``setup`` trains: an independent model's teacher role, a KD setup's student
  role, a ``labels_to_<student>`` setup's student role with the gold labels' loss."""
  teacher, student = parse_setup(config, setup)
  if not student:
    return role_config(config, teacher, 'teacher')
  cfg = role_config(config, student, 'student')
  if teacher == LABELS:
    cfg.loss = 'cross_entropy'
  return cfg


def role_config(config, model: str, role: str) -> ml_collections.ConfigDict:
  """The training settings of ``model`` as a ``'teacher'`` (also the independent model) or a ``'student'``."""
  cfg = ml_collections.ConfigDict(config.models[model].to_dict())
  cfg.model = model
  if role == 'student':
    cfg.loss = config.student_loss
    cfg.update(config.student_overrides)
  else:
    cfg.loss = 'cross_entropy'
  return cfg


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


def train_instances(phase: phases.Phase, targets: targets_lib.Targets, config, job: phases.Job):
  """One instance per seed of ``phase.seeds``, vmapped or in sequence (then each in ``<directory>/seed_<s>``);
  returns the instances' variables (for online KD: the students'), stacked on axis 0."""
  phase = with_task_settings(phase, config)
  if vmap_seeds(config):
    return training.exported(phases.train_model(phase.replace(stacked=True), targets, job)).variables
  variables = []
  for k, seed in enumerate(phase.seeds):
    state = phases.train_model(phase.replace(name=f'{phase.name}_seed_{seed}', seeds=[seed],
                                             directory=os.path.join(phase.directory, f'seed_{seed}')),
                               targets.instance(k), job)
    variables.append(training.exported(state).variables)
  return phases.stack(variables)


def with_task_settings(phase: phases.Phase, config) -> phases.Phase:
  """``phase`` with errors naming its model's settings and the task's augmentation its settings ask for."""
  return phase.replace(field=f'config.models.{phase.settings.model}',
                       augment=task_of(config).make_augment(phase.settings.get('augment', '')))


def cross_fitted_targets(name: str, config, data: TaskData, job: phases.Job, workdir: str) -> targets_lib.Targets:
  """Cached eval-mode logits of model ``name`` on every training input, each from a fold teacher that did not
  train on it, one array per seed (``config.cross_fit_folds`` = k).

  Per seed, the training split is cut into k folds (drawn with the seed); fold teacher j trains with ``name``'s
  teacher settings, seed and initialisation on the other folds, in ``<workdir>/<name>_folds/seed_<s>/fold_<j>``
  (resumed like any run; one seed after another, since the folds differ per seed), and labels fold j.
  """
  cfg = role_config(config, name, 'teacher')
  cfg.checkpoint = ''  # fold teachers are always trained here
  model = data.create_model(name, cfg.model_kwargs)
  logits_on = task_of(config).teacher_predictor(job.mesh, config)(model)
  train, per_seed = data.train, []
  for seed in [config.seed + k for k in range(config.num_seeds)]:
    folds = np.array_split(np.random.default_rng(seed).permutation(len(train)), config.cross_fit_folds)
    logits = None
    for j, held_out in enumerate(folds):
      phase = phases.Phase(f'{name}_fold_{j}_seed_{seed}', cfg, model, train.subset(np.setdiff1d(
          np.arange(len(train)), held_out)), os.path.join(workdir, f'{name}_folds', f'seed_{seed}', f'fold_{j}'),
                           [seed], phases.TEACHER_STREAM, extra_meta=data.extra_meta)
      state = phases.train_model(with_task_settings(phase, config), targets_lib.GOLD_LABELS, job)
      fold_logits = logits_on(training.exported(state).variables, train)
      logits = np.empty_like(fold_logits) if logits is None else logits
      logits[held_out] = fold_logits[held_out]
    per_seed.append(logits)
  return targets_lib.Targets(logits=np.stack(per_seed), logits_instances=len(per_seed))


def teacher_agreement(student_outputs, teacher_outputs, predicted_classes):
  """Per student instance and test set: the fraction of test inputs on which it predicts the class its own teacher
  predicts (``teacher_outputs``: one per instance, or one teacher's for all)."""
  agreement = []
  for k, mine in enumerate(student_outputs):
    theirs = teacher_outputs[k if len(teacher_outputs) > 1 else 0]
    agreement.append({name: float(np.mean(predicted_classes(mine[name]) == predicted_classes(theirs[name])))
                      for name in mine})
  return agreement


def online_targets(setup: str, config, mesh, create_model) -> targets_lib.Targets:
  """Online KD's targets for ``setup``: its teacher model trained beside the student, on shared batches."""
  teacher_name, student_name = parse_setup(config, setup)
  teacher_cfg, student_cfg = (role_config(config, teacher_name, 'teacher'),
                              role_config(config, student_name, 'student'))
  if teacher_cfg.batch_size != student_cfg.batch_size:
    raise ValueError(f'online KD trains {setup} on shared batches: config.models.{teacher_name}.batch_size and '
                     f'config.models.{student_name}.batch_size must be equal')
  sharding.check_batch_size(student_cfg.batch_size, mesh, f'the batch size of {setup}')
  return targets_lib.Targets(online=targets_lib.OnlineTeacher(
      create_model(teacher_name, teacher_cfg.model_kwargs), teacher_cfg))


def check(config) -> Dict[str, ml_collections.ConfigDict]:
  """Every setting of the grid (and of each ablation factor, whose configs it returns); nothing is read."""
  check_grid_config(config)
  return factor_configs(config)


def run(config: ml_collections.ConfigDict, workdir: str) -> Dict[str, Any]:
  """The grid, or with ``config.student_epochs`` one grid per student budget (:func:`run_student_epochs`), or with
  ``config.factors`` one grid per factor of an ablation (:func:`run_factors`)."""
  factors = check(config)  # checked before the workdir is claimed
  with workdirs.claim(workdir, f'{config.get("task", "mnist")} grid'):
    if factors:
      return run_factors(config, factors, workdir)
    if config.student_epochs:
      return run_student_epochs(config, workdir)
    return run_grid(config, workdir)


def factor_config(config: ml_collections.ConfigDict, factor: str, changes) -> ml_collections.ConfigDict:
  """``config`` with ``changes`` (a dict nested like the config) made, and no factors."""
  sub = ml_collections.ConfigDict(config.to_dict())
  sub.factors = ()

  def merge(target, changes, prefix):
    for key, value in changes.items():
      if key not in target and prefix != 'student_overrides.':  # (that one holds any setting of a model)
        raise ValueError(f'config.factors: factor {factor!r} changes config.{prefix}{key}, which the grid config '
                         'does not have')
      if isinstance(value, (dict, ml_collections.ConfigDict)):
        merge(target[key], value, f'{prefix}{key}.')
      else:
        target[key] = value
  merge(sub, dict(changes), '')
  return sub


def factor_configs(config: ml_collections.ConfigDict) -> Dict[str, ml_collections.ConfigDict]:
  """Each factor's grid config (``config.factors``), every one of them checked; {} for no factors."""
  if len({name for name, _ in config.factors}) != len(config.factors):
    raise ValueError(f'config.factors names a factor twice: {[name for name, _ in config.factors]}')
  for name, _ in config.factors:  # a factor's name is its directory in the workdir: never '..', '/x' or 'a/b'
    if not isinstance(name, str) or not re.fullmatch(r'[A-Za-z0-9_][A-Za-z0-9_.+-]*', name) or name.startswith('..'):
      raise ValueError(f'config.factors: factor name {name!r} must be a plain directory name (letters, digits, '
                       "'_', '-', '.', '+'), since it names the factor's directory in the workdir")
  if config.factors and not any(report.is_kd(setup) and report.control_of(setup, config.setups) in config.setups
                                for setup in config.setups):
    raise ValueError(f'config.factors: an ablation reports each KD setup\'s gain over its control, but '
                     f'config.setups={config.setups!r} has no <teacher>_to_<student> setup whose control is a setup '
                     'too (its student model, e.g. cnn_to_mlp with mlp, or labels_to_<student>)')
  subs = {name: factor_config(config, name, changes) for name, changes in config.factors}
  for factor, changes in config.factors:
    for name, fields in dict(changes).get('models', {}).items():
      trained = sorted(set(fields) - {'checkpoint'})
      if trained and subs[factor].models[name].checkpoint:
        raise ValueError(f'config.factors: factor {factor!r} changes config.models.{name}.{trained[0]}, but '
                         f'config.models.{name}.checkpoint restores saved {name} instances, which never trained with '
                         'it: give the factor its own checkpoint, or none to train them')
  for sub in subs.values():
    check_grid_config(sub)
  return subs


def saved_instances(config, grid_dir: str, name: str) -> str:
  """The ``checkpoint`` path of model ``name``'s instances trained by the grid in ``grid_dir``: one vmapped
  checkpoint, or one per seed ('{seed}')."""
  return os.path.join(grid_dir, name, *(() if vmap_seeds(config) else ('seed_{seed}',)))


def run_factors(config: ml_collections.ConfigDict, subs: Dict[str, ml_collections.ConfigDict],
                workdir: str) -> Dict[str, Any]:
  """An ablation: one grid per entry of ``config.factors`` ((name, the settings it changes, nested like the
  config) pairs; ``subs``: their configs, :func:`factor_configs`), in ``<workdir>/<name>``, in the order given.

  A model in the teacher role (a teacher, or an independent row) is trained once per distinct setting: a factor
  whose settings for it equal an earlier factor's restores that factor's instances (e.g. every factor that changes
  only the students distils from the first factor's teachers). Writes ``ablation.json/.md``: per factor, each
  setup's summary and each KD setup's gain over its independent student, paired by seed — rewritten after every
  factor, so a long ablation shows the factors finished so far (and says how many remain).
  """
  teacher_role = set(filter(None, (teacher_of(config, setup) for setup in config.setups)))
  grids, trained_teachers = {}, {}  # trained_teachers: (name, settings) → the directory that trained them
  # A resumed ablation re-evaluates its finished factors first; until it has passed them, the report of the run
  # before (the same factors: their settings are checked on resume) stays, so that the report, and an analysis
  # reading it meanwhile, never sees fewer finished factors than there are.
  report_path = paths.absolute(workdir) / 'ablation.json'
  reported = set(json.loads(report_path.read_text())['student_epochs']) if report_path.exists() else set()
  for factor, sub in subs.items():
    directory = os.path.join(workdir, factor)
    for name in teacher_role:  # the same settings on the same data: a factor that changes config.data retrains
      key = (name, json.dumps([role_config(sub, name, 'teacher').to_dict(), sub.data.to_dict()], sort_keys=True))
      if key in trained_teachers and not sub.models[name].checkpoint:
        sub.models[name].checkpoint = saved_instances(sub, trained_teachers[key], name)
      trained_teachers.setdefault(key, directory)
    logging.info('Ablation factor %r: grid in %s', factor, directory)
    grids[factor] = run_grid(sub, directory)
    ablation = report.student_epochs_summary(grids)
    first = next(iter(grids.values()))
    for name, grid_report in grids.items():
      ablation['student_epochs'][name]['gain_over_first_factor_independent'] = report.gains_over_independent(
          grid_report, first)
    ablation['factors'] = {name: json.loads(json.dumps(dict(changes), default=lambda c: c.to_dict()))
                           for name, changes in config.factors}
    ablation['factors_to_run'] = [name for name in subs if name not in grids]
    if not set(grids) < reported:
      report.write_ablation_report(ablation, workdir)
  return ablation


def run_student_epochs(config: ml_collections.ConfigDict, workdir: str) -> Dict[str, Any]:
  """One grid per entry E of ``config.student_epochs``, in ``<workdir>/student_epochs_<E>``.

  Every model that is a student in some setup trains E epochs in every role (its
  independent row too: the comparison is at matched epochs); a model that is only
  a teacher is trained once, in the first grid, and restored from there by the
  others (the same teachers at every E). Writes ``student_epochs.json/.md`` and
  ``student_epochs.png`` (accuracy and ECE against E; each KD setup's gain over
  its independent student, paired by seed).
  """
  students = {parse_setup(config, setup)[1] for setup in config.setups} - {''}
  teachers_only = set(filter(None, (teacher_of(config, setup) for setup in config.setups))) - students
  grids, first_dir = {}, None
  for epochs in config.student_epochs:
    sub = ml_collections.ConfigDict(config.to_dict())
    sub.student_epochs = ()
    for name in students:
      sub.models[name].num_epochs = float(epochs)
    for name in teachers_only:
      if first_dir is not None and not sub.models[name].checkpoint:
        sub.models[name].checkpoint = saved_instances(config, first_dir, name)
    directory = os.path.join(workdir, f'student_epochs_{epochs:g}')
    logging.info('Student epochs %g: grid in %s', epochs, directory)
    grids[f'{epochs:g}'] = run_grid(sub, directory)
    first_dir = first_dir or directory
  sweep = report.student_epochs_summary(grids)
  report.write_student_epochs_report(sweep, workdir)
  return sweep


def check_layout(config, workdir: str) -> None:
  """A workdir trained with its seeds vmapped (one checkpoint per setup, ``<setup>/<step>``) is not resumed one seed
  after another (``<setup>/seed_<s>/<step>``), or the other way round: that would train every setup again beside
  the finished one, silently."""
  vmapped = vmap_seeds(config)
  for setup in config.setups:
    directory = paths.absolute(workdir) / setup
    if not directory.is_dir():
      continue
    entries = [p.name for p in directory.iterdir()]
    other = (any(e.startswith('seed_') for e in entries) if vmapped else any(e.isdigit() for e in entries))
    if other:
      raise ValueError(f'{directory} holds {setup} trained with its seeds '
                       f'{"one after another" if vmapped else "vmapped"}; this run would '
                       f'{"vmap them" if vmapped else "run them one after another"} and train it again beside it. '
                       f'Set --config.seed_parallelism={"sequential" if vmapped else "vmap"} to resume it, or use '
                       'another --workdir')


def check_report_kept(config, workdir: str, seeds) -> None:
  """A re-run that would replace a finished grid's report with one of fewer seeds or setups is refused (unless
  ``config.overwrite``): the instances it leaves out would vanish from the report while their runs stay."""
  report_path = paths.absolute(workdir) / 'grid.json'
  if config.get('overwrite', False) or not report_path.exists():
    return
  reported = json.loads(report_path.read_text())
  fewer_seeds = sorted(set(reported.get('seeds', [])) - set(seeds))
  fewer_setups = sorted(set(reported.get('setups', {})) - set(config.setups))
  if fewer_seeds or fewer_setups:
    left_out = ' and '.join(f'{what} {which}' for what, which in (('seeds', fewer_seeds), ('setups', fewer_setups))
                            if which)
    raise ValueError(f'{report_path} reports {left_out} that this run (seeds {seeds}, setups {list(config.setups)}) '
                     'leaves out: it would replace that report with a smaller one. Use another --workdir, or '
                     '--config.overwrite=True to replace it')


def run_grid(config: ml_collections.ConfigDict, workdir: str) -> Dict[str, Any]:
  """Trains and evaluates every setup of ``config.setups``; writes and returns the report."""
  paths.absolute(workdir).mkdir(parents=True, exist_ok=True)
  t_start = time.perf_counter()
  seeds = [config.seed + k for k in range(config.num_seeds)]
  check_report_kept(config, workdir, seeds)
  check_layout(config, workdir)
  task = task_of(config)
  data = task.load(config, workdir)
  if data.model_changes:
    config = ml_collections.ConfigDict(config.to_dict())
    for name, changes in data.model_changes.items():
      logging.warning('config.models.%s: %s for this data (%s)', name, changes, data.source)
      config.models[name].update(changes)
  train = data.train
  student_train = train if data.student_train is None else data.student_train
  if config.cross_fit_folds and student_train is not train:  # the fold teachers label the teacher role's split
    raise ValueError(f'config.cross_fit_folds: the students of {data.source} train on more than the teachers (a '
                     'transfer set), which no fold teacher labels; use one or the other')
  mesh = sharding.data_mesh()
  logging.info('Grid: %s, %s KD, seeds %s (%s), %d device(s)', list(config.setups), config.mode, seeds,
               'vmapped' if vmap_seeds(config) else 'one after another', mesh.size)
  writer = metric_writer.MetricWriter(workdir)
  job = phases.Job(config, mesh, writer)
  rows, timing, teachers, ensembles, cross_fit = {}, {}, {}, {}, {}
  fold_targets = {}  # teacher model → its cross-fitted targets, made once for all its students
  test_logits = {}  # setup, or '<teacher> ensemble' → each instance's logits on the test sets, predicted once
  teachers_logits = {}  # KD setup → its teachers' logits on the test sets
  shared = shared_teachers(config)

  def get_teacher(name):  # trained (or restored) once per model, shared by its independent row and its students
    if name not in teachers:
      t0 = time.perf_counter()
      cfg = role_config(config, name, 'teacher')
      model = data.create_model(name, cfg.model_kwargs)
      phase = phases.Phase(name, cfg, model, train, os.path.join(workdir, name), seeds, phases.TEACHER_STREAM,
                           extra_meta=data.extra_meta)
      if cfg.checkpoint:  # offline KD from saved teachers, one per seed
        variables = phases.stack([phases.teacher_for_seed(phase.replace(seeds=[seed], directory=''), job)[0]
                                  for seed in seeds])
      else:
        variables = train_instances(phase, targets_lib.GOLD_LABELS, config, job)
      teachers[name] = targets_lib.Teacher(model, variables, task.teacher_predictor(mesh, config),
                                           instances=len(seeds))
      timing[name] = time.perf_counter() - t0
    return teachers[name]

  def teacher_test_logits(name, teacher):  # its row's, when the grid has one; else predicted here, once
    key = f'{name} ensemble' if config.teacher_ensemble else name
    if key not in test_logits:
      count = 1 if name in shared else max(teacher.instances, 1)
      test_logits[key] = task.predictions(key, teacher.model, [teacher.instance(k).variables for k in range(count)],
                                          data, mesh, config)
    return test_logits[key]

  checkpoint_names = {setup: setup for setup in config.setups}  # each setup's directory in the workdir
  # (and the fold teachers' of cross-fitted targets, evaluated too: the analyses find every model under the workdir)
  checkpoint_names.update({f'{name} folds': f'{name}_folds' for name in dict.fromkeys(
      teacher_of(config, setup) for setup in config.setups if report.is_kd(setup)) if config.cross_fit_folds})
  try:
    for setup in config.setups:
      teacher_name, student_name = parse_setup(config, setup)
      if not student_name:
        model, variables = get_teacher(teacher_name).model, get_teacher(teacher_name).variables
      else:
        model = data.create_model(student_name, config.models[student_name].model_kwargs)
        cfg = setup_config(config, setup)
        phase = phases.Phase(setup, cfg, model, student_train, os.path.join(workdir, setup), seeds,
                             phases.STUDENT_STREAM, extra_meta=data.extra_meta)
        if teacher_name == LABELS:
          t0 = time.perf_counter()
          targets = targets_lib.GOLD_LABELS
        elif config.mode == 'online':
          t0 = time.perf_counter()
          targets = online_targets(setup, config, mesh, data.create_model)
          checkpoint_names[setup] = f'{setup}_online'
          phase = phase.replace(name=checkpoint_names[setup], directory=os.path.join(workdir, checkpoint_names[setup]))
        else:
          teacher = get_teacher(teacher_name)
          if config.teacher_ensemble:
            teacher = ensembles.setdefault(teacher_name, targets_lib.ensemble_of(
                teacher, config.teacher_ensemble, config.kd.temperature))
          t0 = time.perf_counter()
          if config.cross_fit_folds:
            if teacher_name not in fold_targets:
              fold_targets[teacher_name] = cross_fitted_targets(teacher_name, config, data, job, workdir)
            targets = fold_targets[teacher_name]
            labels = phase.train.batch(np.arange(len(phase.train)))['label']
            cross_fit[setup] = {'folds': config.cross_fit_folds,
                                'target_accuracy': [float(np.mean(l.argmax(-1) == labels)) for l in targets.logits]}
          else:
            targets = targets_lib.for_phase(config, cfg, teacher, phase.train)
        variables = train_instances(phase, targets, config, job)
        timing[setup] = time.perf_counter() - t0
      instances = 1 if not student_name and teacher_name in shared else config.num_seeds  # one shared teacher: one row
      if setup not in test_logits:  # a teacher's may be there already, predicted for its students' agreement
        test_logits[setup] = task.predictions(setup, model, [phases.instance(variables, k) for k in range(instances)],
                                              data, mesh, config)
      rows[setup] = task.metrics_of(test_logits[setup], data, config,
                                   reliability=config.eval.ece_bins <= report.MAX_RELIABILITY_BINS)
      if report.is_kd(setup) and config.mode == 'offline':
        teachers_logits[setup] = teacher_test_logits(teacher_name, teacher)
        for row, agreement in zip(rows[setup], teacher_agreement(test_logits[setup], teachers_logits[setup],
                                                                  data.predicted_classes)):
          for name, metrics in row.items():
            metrics['teacher_agreement'] = agreement[name]
      logging.info('%s: %s', setup, report.format_row(rows[setup], data.test_titles))
  finally:
    writer.close()

  grid_report = {
      'setups': {setup: {'title': row_title(config, setup), 'instances': rows[setup],
                         'summary': report.summarise(rows[setup]),
                         'seconds': timing.get(setup, timing.get(teacher_of(config, setup)))}
                 for setup in config.setups},
      'seeds': seeds, 'vmapped': vmap_seeds(config), 'mode': config.mode, 'shared_teachers': shared,
      'teacher_ensembles': {name: {'combine': config.teacher_ensemble, 'members': len(seeds),
                                   'metrics': task.metrics_of(teacher_test_logits(name, ensemble), data, config)[0]}
                            for name, ensemble in ensembles.items()},
      'cache_teacher_logits': bool(config.cache_teacher_logits), 'cross_fit': cross_fit,
      'checkpoint_rule': 'final checkpoint of each run (no early stopping or best-of selection)',
      'task_title': data.title, 'test_sets': data.test_titles, 'headline_sets': list(data.headline_sets),
      'paper_gain': data.paper_gain, 'data_source': data.source, 'data_warning': data.warning, **data.extra_report,
      'num_train': len(train), 'num_student_train': len(student_train),
      'num_test': {name: len(split) for name, split in data.test_sets.items()},
      'model_titles': {name: task.title(name) for name in config.models}, 'num_devices': mesh.size,
      'device': jax.devices()[0].device_kind,
      'total_seconds': time.perf_counter() - t_start, 'config': json.loads(config.to_json()),
      'evaluated_checkpoints': checkpoints.models_under(workdir, list(checkpoint_names.values())),
  }
  grid_report['gain_over_independent'] = report.gains_over_independent(grid_report, grid_report)
  # The control's agreement with each KD setup's teacher: how much of the student's agreement the labels alone give.
  grid_report['control_agreement'] = {
      setup: report.summarise([{name: {'teacher_agreement': value} for name, value in instance.items()}
                               for instance in teacher_agreement(test_logits[control], theirs, data.predicted_classes)])
      for setup, theirs in teachers_logits.items()
      if (control := report.control_of(setup, config.setups)) in config.setups}
  report.write_grid_report(grid_report, workdir, data.report_section)
  return grid_report
