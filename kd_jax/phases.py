"""Phases: one model trained on what it learns from — what the seed grid (every task) does with a model, knowing
no task (the step and the loop it runs are :mod:`kd_jax.training`'s).

* :func:`train_model` trains a :class:`Phase` — one run or a vmapped stack of seeds — on its
  :class:`kd_jax.targets.Targets`, resuming from its checkpoints and refusing other settings
  (:mod:`kd_jax.run_settings`);
* :func:`teacher_for_seed` gives the teacher of one seed for KD: restored from
  its settings' ``checkpoint`` (offline KD; ``'{seed}'`` in the path is replaced by
  the seed) or trained first, and in both cases read back from its checkpoint;
* :func:`check_kd_config` validates the KD settings of a teacher → student job.

Random streams: the initial state of seed ``s`` in a phase is
``init_state(fold_in(PRNGKey(s), stream))`` and its data order is a function of
(s, stream, epoch), with one stream for teachers and one for students, so a
student instance is the same whichever other setups or seeds run beside it.
"""
import dataclasses
import os
import signal
from typing import Any, Callable, Dict, Optional, Sequence

from absl import logging
from etils import epath
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kd_jax import checkpoints
from kd_jax import input_pipeline
from kd_jax import interrupts
from kd_jax import losses
from kd_jax import metric_writer
from kd_jax import paths
from kd_jax import run_settings
from kd_jax import sharding
from kd_jax import targets as targets_lib
from kd_jax import training

TEACHER_STREAM, STUDENT_STREAM = 0, 1


# ----------------------------------------------------------------------------- KD settings

def check_kd_config(config, student_loss: str = 'distillation', student_augment: str = ''):
  """Fails fast, before any data is read, on the student's loss name, ``config.kd`` values and teacher settings."""
  losses.get_loss(student_loss, config.kd, steps_per_epoch=1)  # built to check its fields; the phase counts its steps
  mode = targets_lib.teacher_mode(config)
  if mode not in targets_lib.TEACHER_MODES:
    raise ValueError(f'unknown config.kd.teacher_mode {mode!r}; choose one of {targets_lib.TEACHER_MODES}')
  cache = config.get('cache_teacher_logits', False)
  if not isinstance(cache, bool):  # not `in (False, True)`: 1 == True would pass it
    raise ValueError(f'config.cache_teacher_logits must be one of False, True, got {cache!r}')
  if cache is True and mode == 'train':
    raise ValueError('config.cache_teacher_logits needs a deterministic teacher: cached logits are eval-mode '
                     "logits, so set cache_teacher_logits=False for config.kd.teacher_mode='train'")
  if losses.loss_spec(student_loss).uses_features and cache is True:
    raise ValueError(f'the {student_loss!r} objective reads the teacher\'s features in the step: set '
                     'config.cache_teacher_logits=False')
  control = config.kd.get('targets', 'teacher')
  if control not in losses.TARGETS:
    raise ValueError(f'unknown config.kd.targets {control!r}; choose one of {list(losses.TARGETS)}')
  student = ml_collections.ConfigDict({'loss': student_loss, 'augment': student_augment})
  if control != 'teacher' and not targets_lib.caches_teacher_logits(config, student):
    raise ValueError(f'config.kd.targets={control!r} is a control built from cached teacher logits: it needs '
                     'config.cache_teacher_logits=True')


def check_loss_batch(cfg, field: str):
  """A phase's batch is large enough for its loss: objectives that normalise over the batch need ≥ 2 examples."""
  needed = losses.loss_spec(cfg.loss).min_batch
  if cfg.batch_size < needed:
    raise ValueError(f'config.{field}.batch_size={cfg.batch_size}: the {cfg.loss!r} objective normalises over the '
                     f'batch and needs at least {needed} examples in it')


# ----------------------------------------------------------------------------- training

@dataclasses.dataclass(frozen=True)
class Job:
  """What every phase of a job shares: the job's config (KD, logging, checkpointing, precision settings), the
  device mesh and the metric writer."""
  config: ml_collections.ConfigDict
  mesh: Any
  writer: Optional[metric_writer.MetricWriter] = None


@dataclasses.dataclass(frozen=True)
class Phase:
  """One model's training run — or a vmapped stack of seeds (``stacked``), instance k equal to the run of
  ``seeds[k]`` alone: its settings (``config.<field>``: model, objective, optimiser, epochs), model, training split
  (any split with ``len`` and ``batch(indices)``), checkpoint directory and random stream.

  ``field`` names the settings in errors (default ``config.<name>``); ``augment(key, inputs)`` is the task's
  augmentation inside the step; ``extra_meta`` is saved with each checkpoint's metadata (e.g. a vocabulary).
  """
  name: str
  settings: ml_collections.ConfigDict
  model: nn.Module
  train: Any
  directory: str
  seeds: Sequence[int]
  stream: int
  stacked: bool = False
  field: str = ''
  augment: Optional[Callable] = None
  extra_meta: Dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def settings_field(self) -> str:
    return self.field or f'config.{self.name}'

  def replace(self, **changes) -> 'Phase':
    return dataclasses.replace(self, **changes)


def example_input(split):
  """One training input (a batch of one): fixes a model's parameter shapes."""
  return split.batch(np.arange(1))['inputs']


def instance_keys(seeds: Sequence[int], stream: int) -> jax.Array:
  """One initialisation key per seed: ``fold_in(PRNGKey(s), stream)`` (each phase role has its own stream)."""
  return jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), stream) for s in seeds])


def init_instances(model, tx, keys: jax.Array, stacked: bool, example, init_aux=None):
  """The initial state of each key of :func:`instance_keys`; stacked: one per key, vmapped (else the first)."""
  if stacked:
    return jax.vmap(lambda key: training.init_state(model, tx, key, example, init_aux))(keys)
  return training.init_state(model, tx, keys[0], example, init_aux)


def _step_and_state(phase: Phase, targets: targets_lib.Targets, job: Job, batches: input_pipeline.Batches,
                    num_steps: int):
  """The phase's pure train step, its initial state and the models it runs (for their compiler options)."""
  cfg, config, example = phase.settings, job.config, example_input(phase.train)
  tx = training.make_optimizer(cfg, num_steps)
  loss_fn = losses.get_loss(cfg.loss, config.kd, batches.steps_per_epoch)
  if targets.online is not None:  # the teacher trains beside the student, on gold labels, from the same batches
    online = targets.online
    teacher_tx = training.make_optimizer(online.settings, num_steps)
    step = training.make_online_step(
        training.make_train_step(online.model, teacher_tx, losses.get_loss(online.settings.loss, config.kd),
                                 options=training.StepOptions(output_logits=True, compute_dtype=config.compute_dtype)),
        training.make_train_step(phase.model, tx, loss_fn,
                                 options=training.StepOptions(compute_dtype=config.compute_dtype)))
    state = tuple(init_instances(model, t, instance_keys(phase.seeds, stream), phase.stacked, example)
                  for model, t, stream in ((online.model, teacher_tx, TEACHER_STREAM), (phase.model, tx, phase.stream)))
    return step, state, (online.model, phase.model)
  teacher = targets.teacher.model if targets.in_step else None
  state = init_instances(phase.model, tx, instance_keys(phase.seeds, phase.stream), phase.stacked, example,
                         training.aux_initialiser(loss_fn, phase.model, teacher, example))
  step = training.make_train_step(phase.model, tx, loss_fn, teacher, training.StepOptions(
      teacher_train_mode=targets.mode == 'train', compute_dtype=config.compute_dtype, augment=phase.augment))
  # A teacher in the step runs its forward there: its options count too (in training mode the CNN teacher's forward
  # ran 3× slower under the MLP student's defaults).
  return step, state, tuple(filter(None, (teacher, phase.model)))


def train_model(phase: Phase, targets: targets_lib.Targets, job: Job):
  """Trains ``phase`` on ``targets`` (:mod:`kd_jax.targets`), resuming from the checkpoints in its directory if
  any; returns the final state (for online KD, the (teacher, student) pair).

  Vmapped instances each pair with their own teacher instance (stacked teacher variables or cached logits), or all
  share one teacher (e.g. an ensemble). Checkpoints record the settings that determine the result
  (:func:`kd_jax.run_settings.of_phase`); resuming under other settings is refused with the differences, unless
  ``config.overwrite`` (then the phase trains again beside the old checkpoints and replaces them once complete).
  """
  cfg, config, name, directory = phase.settings, job.config, phase.name, phase.directory
  sharding.check_batch_size(cfg.batch_size, job.mesh, f'the batch size of {name}')
  if phase.augment is not None and targets.cached:
    raise ValueError(f'{name}: an augmented student needs the teacher in the step (its targets for each new view); '
                     'cached teacher logits are for the unaugmented inputs: set config.cache_teacher_logits=False')
  if targets.cached and phase.stacked and not targets.instances:  # one teacher's logits for every instance
    targets = dataclasses.replace(targets, logits=np.broadcast_to(targets.logits, (len(phase.seeds),
                                                                                 *targets.logits.shape)),
                                  logits_instances=len(phase.seeds))
  if targets_lib.uses_teacher(cfg):
    targets = targets.with_logits(targets_lib.control_targets(phase, config, targets.logits))
  train = phase.train
  orders = [input_pipeline.BatchOrder(len(train), cfg.batch_size, seed, phase.stream, getattr(train, 'lengths', None))
            for seed in phase.seeds]
  batches = input_pipeline.Batches(train, orders, phase.stacked, targets.logits)
  epochs = max(cfg.num_epochs, targets.online.settings.num_epochs) if targets.online is not None else cfg.num_epochs
  num_steps = max(1, int(round(epochs * batches.steps_per_epoch)))
  step, state, models = _step_and_state(phase, targets, job, batches, num_steps)
  settings = run_settings.of_phase(phase, targets, config, num_steps)
  meta = {'model': cfg.model, 'model_kwargs': cfg.model_kwargs.to_dict(), 'phase': name, 'num_steps': num_steps,
          'seeds': list(phase.seeds), 'stacked': phase.stacked, 'settings': settings, **phase.extra_meta}
  mngr, state, restored, directory = _restore_or_start(phase, config, state, settings)
  if job.writer is not None:  # a fresh start drops all the phase's old records (step 0's diagnostic too)
    job.writer.truncate(name, training.current_step(state) if restored else -1)
  if not restored and (targets.in_step or targets.cached):
    targets_lib.report_teacher_targets(phase, targets, job)

  def save(s):
    if job.writer is not None:
      job.writer.flush()  # the metric records up to this checkpoint survive a kill
    checkpoints.save(mngr, s, meta)

  snapshot_mngr = checkpoints.manager(snapshot_dir(directory), max_to_keep=None) if config.snapshots else None

  def snapshot(s):
    done = training.current_step(s)
    checkpoints.save_snapshot(snapshot_mngr, done, training.exported(s).variables,
                              {**meta, 'epoch': done / batches.steps_per_epoch})

  loop = training.Loop(
      num_steps=num_steps, mesh=job.mesh, steps_per_dispatch=config.steps_per_dispatch,
      compiler_options=training.compiler_options(*models), log_every=config.log_every_steps, writer=job.writer,
      save=save, checkpoint_every=config.get('checkpoint_every_steps', 0),
      divergence_factor=config.get('divergence_factor', 0.0), settings_field=phase.settings_field,
      snapshot=snapshot if config.snapshots else None,
      snapshot_steps=snapshot_steps(num_steps, batches.steps_per_epoch, config.snapshot_first_epoch),
      saved_checkpoints=lambda: newest_checkpoint(directory))
  teacher_variables = targets.teacher.variables if targets.in_step else None
  try:
    if phase.stacked:  # one teacher in the step (not a stack of them) serves every instance
      step = jax.vmap(step, in_axes=(0, 0, 0 if targets.instances else None))
    state = training.fit(name, step, state, batches, teacher_variables, loop)
  except interrupts.StopRequested as stop:  # SIGINT/SIGTERM: the loop saved at the step it stopped at
    what = 'preempted' if stop.signum == signal.SIGTERM else 'interrupted'
    raise TrainingInterrupted(f'{name} {what} ({interrupts.NAMES[stop.signum]}) at step {stop.step}; checkpoint '
                              f'saved in {directory}: run the same command again to resume from it',
                              stop.exit_code) from None
  except KeyboardInterrupt as stop:  # Ctrl-C raised elsewhere, or a signal that came before training (exit 75)
    mngr.wait_until_finished()  # a save in flight completes (or Orbax discards its temporary files)
    exit_code = getattr(stop, 'exit_code', interrupts.EXIT_CODES[signal.SIGINT])
    what = 'preempted (SIGTERM)' if exit_code == interrupts.EXIT_CODES[signal.SIGTERM] else 'interrupted'
    raise TrainingInterrupted(f'{name} {what}; {newest_checkpoint(directory)}: run the same command again to '
                              'resume from it', exit_code) from None
  finally:
    mngr.close()
    if snapshot_mngr is not None:
      snapshot_mngr.close()
  if directory != phase.directory:
    _replace(phase.directory, directory)
  return state


RETRAINING = '.retraining'  # where config.overwrite trains a phase anew, beside its old checkpoints


def _restore_or_start(phase: Phase, config, state, settings):
  """(checkpoint manager, state, whether it was restored, the directory it trains in): the newest checkpoint in the
  phase's directory if it holds this phase under these settings. A mismatch is refused, or with
  ``config.overwrite`` the phase trains (or resumes training) in ``<directory>.retraining``, which replaces the old
  checkpoints only once it is complete (:func:`train_model`): an interrupted retrain leaves the old model whole."""
  directory, staging = phase.directory, phase.directory + RETRAINING
  abstract = jax.eval_shape(lambda: state)

  def check_settings(where):
    def check(saved_meta):
      saved = saved_meta.get('settings')
      if saved is not None:  # kd_jax before Dec 6 recorded every config.kd field, read by the objective or not
        read = {f'kd.{k}' for k in run_settings.kd_fields_read(phase.settings)}
        saved = {k: v for k, v in saved.items() if not k.startswith('kd.') or k in read}
      differences = run_settings.differences(saved, settings)
      if differences:
        raise run_settings.SettingsMismatchError(
            f'{where} holds {phase.name} trained with other settings than the config asks for '
            f'({"; ".join(differences)}). Use a fresh --workdir, or --config.overwrite=True to train it again here '
            '(the old checkpoints are replaced once the new ones are complete).')
    return check

  def remove(path: str, why: str):
    mngr.close()
    if sharding.is_primary() and paths.absolute(path).exists():
      epath.Path(path).rmtree()
    sharding.barrier(why)

  mngr = checkpoints.manager(directory)
  try:
    restored, _ = checkpoints.restore_latest(mngr, abstract, check_settings(directory))
    where = directory
    if sharding.is_primary() and paths.absolute(staging).exists():  # a retrain for settings no longer asked for
      epath.Path(staging).rmtree()
  except run_settings.SettingsMismatchError:
    if not config.get('overwrite', False):
      raise
    logging.warning('%s: config.overwrite=True: %s holds other settings; training in %s, which replaces it once '
                    'complete', phase.name, directory, staging)
    mngr.close()
    mngr, where = checkpoints.manager(staging), staging
    try:
      restored, _ = checkpoints.restore_latest(mngr, abstract, check_settings(staging))
    except run_settings.SettingsMismatchError:  # an earlier retrain, stopped, under yet other settings
      remove(staging, 'delete a retrain of other settings')
      mngr, restored = checkpoints.manager(staging), None
  if restored is None:
    return mngr, state, False, where
  logging.info('%s: resuming from the checkpoint at step %d in %s', phase.name, training.current_step(restored),
               mngr.directory)
  return mngr, restored, True, where


def _replace(directory: str, retrained: str):
  """The old checkpoints of a phase give way to its complete retrain (``config.overwrite``)."""
  if sharding.is_primary():
    if paths.absolute(directory).exists():
      epath.Path(directory).rmtree()
    epath.Path(retrained).rename(directory)
  sharding.barrier('replace the old checkpoints by the retrained ones')
  logging.info('config.overwrite=True: %s now holds the retrained phase', directory)


def newest_checkpoint(directory: str) -> str:
  """Where a run can resume from, as read from disk now: only complete (finalised) steps count."""
  steps = checkpoints.all_steps(directory)
  return (f'the newest complete checkpoint is step {steps[-1]} in {directory}' if steps
          else f'no checkpoint was saved yet in {directory}')


def snapshot_dir(directory: str) -> str:
  """Where a run's snapshots go: apart from its resume checkpoints, which keep only the newest few."""
  return os.path.join(directory, 'snapshots')


def snapshot_steps(num_steps: int, steps_per_epoch: int, first_epoch: float) -> Sequence[int]:
  """The steps at epochs 0, first_epoch, 2·first_epoch, 4·first_epoch, … and the last step."""
  epochs, epoch = [0.0], first_epoch
  while epoch * steps_per_epoch < num_steps:
    epochs.append(epoch)
    epoch *= 2
  return sorted({int(round(e * steps_per_epoch)) for e in epochs} | {num_steps})


class TrainingInterrupted(interrupts.Stopped):
  """Ctrl-C or SIGTERM during training, with where the run can resume from (and the exit code to end with)."""


# ----------------------------------------------------------------------------- saved models and teachers

instance = targets_lib.instance


def stack(trees):
  """Pytrees stacked on a new leading axis (host arrays)."""
  return jax.tree_util.tree_map(lambda *xs: np.stack(xs), *sharding.to_host(trees))


def teacher_is_shared(config, template: str, seeds: Sequence[int], field: str) -> bool:
  """Whether the saved teacher ``template`` (``config.<field>``) is one model for all ``seeds``: a path without
  '{seed}' that is not a vmapped checkpoint of every seed. Refused unless ``config.kd.shared_teacher`` says it is
  meant: seeds that share a teacher are not independent runs."""
  if not template or '{seed}' in template or len(seeds) < 2:
    if config.kd.get('shared_teacher', False):
      raise ValueError(f'config.kd.shared_teacher=True, but config.{field}={template!r} gives no teacher that '
                       f'{len(seeds)} seed(s) share: it needs a saved teacher path without {{seed}} and ≥ 2 seeds')
    return False
  meta = checkpoints.read_meta(template)
  if meta.get('stacked') and set(seeds) <= set(meta.get('seeds', [])):
    return False  # a vmapped checkpoint: one teacher instance per seed
  if not config.kd.get('shared_teacher', False):
    raise ValueError(f'config.{field}={template!r} has no {{seed}}: all {len(seeds)} seeds would distil from this one '
                     'teacher, and their spread would not come from independent runs. Put {seed} in the path (e.g. '
                     'DIR/<model>/seed_{seed}) for one teacher per seed, or set config.kd.shared_teacher=True to '
                     'share it on purpose (the report then says so)')
  return True


def checkpoint_path(template: str, seed: int) -> str:
  """A checkpoint directory for ``seed``: '{seed}' in ``template`` is replaced, e.g. 'DIR/cnn/seed_{seed}'."""
  return template.replace('{seed}', str(seed))


def restore_variables(model, directory: str, cfg, example, seed: Optional[int] = None, step: Optional[int] = None):
  """(variables, meta) saved by :func:`train_model` in ``directory``, checked against ``cfg.model``/``model_kwargs``.

  A checkpoint of a vmapped stack of seeds gives the instance of ``seed``; ``step`` picks a step (e.g. a snapshot)
  instead of the newest.
  """
  init = lambda key: training.init_variables(model, key, example)
  meta = checkpoints.read_meta(directory, step)
  if not meta.get('stacked'):
    abstract = jax.eval_shape(lambda: init(jax.random.PRNGKey(0)))
    return checkpoints.restore_model(directory, cfg.model, cfg.model_kwargs.to_dict(), abstract, step)
  seeds = meta.get('seeds', [])
  if seed not in seeds:
    raise ValueError(f'checkpoint {directory} holds the vmapped instances of seeds {seeds}, not seed {seed}')
  abstract = jax.eval_shape(jax.vmap(init), jax.random.split(jax.random.PRNGKey(0), len(seeds)))
  variables, meta = checkpoints.restore_model(directory, cfg.model, cfg.model_kwargs.to_dict(), abstract, step)
  return instance(variables, seeds.index(seed)), meta


def teacher_for_seed(phase: Phase, job: Job):
  """The teacher of ``phase.seeds[0]`` for KD: (variables, checkpoint directory, meta).

  Offline KD from a saved teacher when ``phase.settings.checkpoint`` is set ('{seed}' in it replaced by the seed):
  no training. Otherwise the teacher is trained (or resumed) on gold labels in ``phase.directory``, in the teacher
  stream. Either way its variables are read back from the checkpoint: students always distil from what was saved.
  A missing, unreadable or mismatched checkpoint is an error, never a random teacher.
  """
  cfg, seed, directory = phase.settings, phase.seeds[0], phase.directory
  if cfg.checkpoint:
    directory = checkpoint_path(cfg.checkpoint, seed)
    logging.info('Offline KD: using the saved teacher in %s (no teacher training)', directory)
  else:
    train_model(phase.replace(stream=TEACHER_STREAM), targets_lib.GOLD_LABELS, job)
  variables, meta = restore_variables(phase.model, directory, cfg, example_input(phase.train), seed)
  logging.info('Teacher restored from %s (step %d)', directory, meta['step'])
  return variables, directory, meta
