"""The shared trainer: what every job (MNIST, its seed grid, SVA) does with a model, knowing no task.

* :func:`check_kd_config` validates the KD settings of a teacher → student job;
* :func:`train_model` trains one run or a vmapped stack of seeds, resuming from
  its checkpoints;
* :func:`teacher_for_seed` gives the teacher of one seed for KD: restored from
  ``teacher.checkpoint`` (offline KD; ``'{seed}'`` in the path is replaced by
  the seed) or trained first, and in both cases read back from its checkpoint;
* :class:`MetricWriter` logs training metrics to JSONL and TensorBoard.

Random streams: the initial state of seed ``s`` in a phase is
``init_state(fold_in(PRNGKey(s), stream))`` and its data order is a function of
(s, stream, epoch), with one stream for teachers and one for students, so a
student instance in the grid equals the single job's student of the same seed.
"""
import functools
import io
import json
import os
import signal
import time
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
from kd_jax import metrics
from kd_jax import paths
from kd_jax import sharding
from kd_jax import training

TEACHER_STREAM, STUDENT_STREAM = 0, 1
TEACHER_MODES = ('eval', 'train')


class MetricWriter:
  """Training metrics to ``metrics.jsonl`` and TensorBoard event files, in a local or bucket (gs://) workdir.

  Bucket objects cannot be appended to, so the records are kept in memory and the file is rewritten at most every
  ``flush_seconds``, at every checkpoint (:meth:`flush`) and at the end: a killed run keeps every record up to its
  last checkpoint, and a resumed run logs the steps after it again.
  """

  def __init__(self, workdir: paths.PathLike, flush_seconds: float = 10.0):
    self._primary = sharding.is_primary()  # other processes write nothing
    if not self._primary:
      return
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    from tensorboardX import record_writer  # pylint: disable=g-import-not-at-top
    for scheme in ('gs', 's3'):  # tensorboardX's own gs:// writer needs google-cloud-storage: use epath's instead
      record_writer.register_writer_factory(scheme, _EpathEventFiles())
    self._path = epath.Path(workdir) / 'metrics.jsonl'
    self._lines = self._path.read_text().splitlines(keepends=True) if self._path.exists() else []
    self._flush_seconds, self._flushed_at = flush_seconds, time.monotonic()
    self._tensorboard = SummaryWriter(os.fspath(epath.Path(workdir) / 'tensorboard'))

  def write(self, phase: str, step: int, scalars: Dict[str, float]):
    if not self._primary:
      return
    self._lines.append(json.dumps({'phase': phase, 'step': step, **scalars}) + '\n')
    for name, value in scalars.items():
      self._tensorboard.add_scalar(f'{phase}/{name}', value, step)
    if time.monotonic() - self._flushed_at >= self._flush_seconds:
      self.flush()

  def flush(self):
    if not self._primary:
      return
    self._path.write_text(''.join(self._lines))
    self._tensorboard.flush()
    self._flushed_at = time.monotonic()

  def truncate(self, phase: str, step: int):
    """Drops ``phase``'s records after ``step``: a resumed run logs those steps again."""
    if not self._primary:
      return
    kept = [line for line in self._lines if not _later_record(line, phase, step)]
    if len(kept) != len(self._lines):
      logging.info('%s: dropped %d metric records after step %d from %s', phase, len(self._lines) - len(kept), step,
                   self._path)
      self._lines = kept
      self.flush()

  def close(self):
    if not self._primary:
      return
    self.flush()
    self._tensorboard.close()


class _EpathEventFiles:
  """A tensorboardX writer factory for event files in a bucket, written through etils.epath."""

  def open(self, path):
    return _BucketEventFile(path)

  def directory_check(self, path):
    del path  # buckets have no directories to create


class _BucketEventFile:
  """An event file in a bucket. Objects cannot be appended to (and bucket file objects have no ``fileno`` for
  tensorboardX's fsync), so every flush rewrites the whole file, as tensorboardX's own GCS writer does: TensorBoard
  sees the events of a running job."""

  def __init__(self, path):
    self._path, self._buffer = epath.Path(path), io.BytesIO()

  def write(self, data: bytes):
    self._buffer.write(data)

  def flush(self):
    self._path.write_bytes(self._buffer.getvalue())

  def close(self):
    self.flush()


def _later_record(line: str, phase: str, step: int) -> bool:
  try:
    record = json.loads(line)
  except ValueError:
    return True  # a line cut short by an interrupted write
  return record.get('phase') == phase and record.get('step', 0) > step


# ----------------------------------------------------------------------------- KD settings

def teacher_mode(config) -> str:
  return config.kd.get('teacher_mode', 'eval')


def check_kd_config(config, teacher_loss: str = 'cross_entropy', student_loss: str = 'distillation',
                    student_augment: str = ''):
  """Fails fast, before any data is read, on loss names, ``config.kd`` values and teacher settings."""
  if losses.loss_spec(teacher_loss).uses_teacher:
    raise ValueError(f'the teacher trains on gold labels: config.teacher.loss must be cross_entropy, '
                     f'got {teacher_loss!r}')
  for name in (teacher_loss, student_loss):
    losses.get_loss(name, config.kd)
  if teacher_mode(config) not in TEACHER_MODES:
    raise ValueError(f'unknown config.kd.teacher_mode {teacher_mode(config)!r}; choose one of {TEACHER_MODES}')
  cache = config.get('cache_teacher_logits', False)
  if not (isinstance(cache, bool) or cache == 'auto'):  # not `in CACHE_CHOICES`: 1 == True would pass it
    raise ValueError(f'config.cache_teacher_logits must be one of {", ".join(map(str, CACHE_CHOICES))}, '
                     f'got {cache!r}')
  if cache is True and teacher_mode(config) == 'train':
    raise ValueError('config.cache_teacher_logits needs a deterministic teacher: cached logits are eval-mode '
                     "logits, so set cache_teacher_logits=False for config.kd.teacher_mode='train'")
  if losses.loss_spec(student_loss).uses_features and cache is True:
    raise ValueError(f'the {student_loss!r} objective reads the teacher\'s features in the step: set '
                     'config.cache_teacher_logits=False')
  targets = config.kd.get('targets', 'teacher')
  if targets not in losses.TARGETS:
    raise ValueError(f'unknown config.kd.targets {targets!r}; choose one of {list(losses.TARGETS)}')
  student = ml_collections.ConfigDict({'loss': student_loss, 'augment': student_augment})
  if targets != 'teacher' and not caches_teacher_logits(config, student):
    raise ValueError(f'config.kd.targets={targets!r} is a control built from cached teacher logits: it needs '
                     'config.cache_teacher_logits=True (or auto, with an eval-mode teacher, a logit objective and '
                     'no augmentation)')


def uses_teacher(cfg) -> bool:
  """Whether the phase with settings ``cfg`` trains on teacher logits."""
  return losses.loss_spec(cfg.loss).uses_teacher


def check_loss_batch(cfg, field: str):
  """A phase's batch is large enough for its loss: objectives that normalise over the batch need ≥ 2 examples."""
  needed = losses.loss_spec(cfg.loss).min_batch
  if cfg.batch_size < needed:
    raise ValueError(f'config.{field}.batch_size={cfg.batch_size}: the {cfg.loss!r} objective normalises over the '
                     f'batch and needs at least {needed} examples in it')


CACHE_CHOICES = (False, True, 'auto')


def caches_teacher_logits(config, cfg) -> bool:
  """Whether the phase with settings ``cfg`` learns from teacher logits computed once on the training set, rather
  than from the teacher run inside its step: ``config.cache_teacher_logits``, where ``'auto'`` caches whenever
  that gives the same targets — an eval-mode (deterministic) teacher, an objective on logits alone, no augmentation
  in the step."""
  choice = config.get('cache_teacher_logits', False)
  if not uses_teacher(cfg):
    return False
  if choice == 'auto':
    return (teacher_mode(config) == 'eval' and not losses.loss_spec(cfg.loss).uses_features
            and not cfg.get('augment', ''))
  return bool(choice)


# ----------------------------------------------------------------------------- training

def example_input(split):
  """One training input (a batch of one): fixes a model's parameter shapes."""
  return split.batch(np.arange(1))['inputs']


def init_instances(model, tx, seeds: Sequence[int], stream: int, stacked: bool, example, projector_dims=None):
  """The initial state of seed ``s`` is init_state(fold_in(PRNGKey(s), stream)); stacked: one per seed, vmapped."""
  keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), stream) for s in seeds])
  if stacked:
    return jax.vmap(lambda key: training.init_state(model, tx, key, example, projector_dims))(keys)
  return training.init_state(model, tx, keys[0], example, projector_dims)


def train_model(name: str, cfg, config, model, train, mesh, directory: str, writer: Optional[MetricWriter], *,
                seeds: Sequence[int], stream: int, stacked: bool = False, teacher: Optional[nn.Module] = None,
                teacher_variables=None, teacher_logits=None, extra_meta: Optional[Dict[str, Any]] = None,
                settings_field: str = '', augment: Optional[Callable] = None):
  """Trains ``model`` with the settings ``cfg``, resuming from the checkpoints in ``directory`` if any.

  One run (``seeds=[s]``), or with ``stacked`` one vmapped instance per seed,
  each with its own init, dropout keys and data order, and each paired with its
  own teacher instance (``teacher_variables`` / ``teacher_logits`` stacked on
  the leading axis). Instance k equals the single run with seed ``seeds[k]``.
  ``train`` is any split with ``len`` and ``batch(indices)``; ``extra_meta`` is
  saved with each checkpoint's metadata (e.g. a vocabulary); ``settings_field``
  names ``cfg`` in errors (default ``config.<name>``). ``augment``: the task's augmentation inside the step
  (:func:`kd_jax.training.make_train_step`); the teacher must then be in the step, not cached.

  Checkpoints record the settings that determine the result (:func:`run_settings`);
  resuming under other settings is refused with the differences, unless
  ``config.overwrite`` (then the old checkpoints are deleted and training starts over).
  """
  sharding.check_batch_size(cfg.batch_size, mesh, f'the batch size of {name}')
  if augment is not None and teacher_logits is not None:
    raise ValueError(f'{name}: an augmented student needs the teacher in the step (its targets for each new view); '
                     'cached teacher logits are for the unaugmented inputs: set config.cache_teacher_logits=False')
  if losses.loss_spec(cfg.loss).uses_teacher:
    teacher_logits = control_targets(name, config, train, teacher_logits, seeds, stacked)
  orders = [input_pipeline.BatchOrder(len(train), cfg.batch_size, seed, stream, getattr(train, 'lengths', None))
            for seed in seeds]
  batches = input_pipeline.Batches(train, orders, stacked, teacher_logits)
  num_steps = max(1, int(round(cfg.num_epochs * batches.steps_per_epoch)))
  tx = training.make_optimizer(cfg, num_steps)
  loss_fn = losses.get_loss(cfg.loss, config.kd)
  example = example_input(train)
  state = init_instances(model, tx, seeds, stream, stacked, example,
                         training.projector_dims(loss_fn, model, teacher, example))
  settings = run_settings(cfg, config, train, seeds=seeds, stream=stream, stacked=stacked, num_steps=num_steps,
                          teacher_targets=teacher_logits if teacher_logits is not None else teacher_variables)
  meta = {'model': cfg.model, 'model_kwargs': cfg.model_kwargs.to_dict(), 'phase': name, 'num_steps': num_steps,
          'seeds': list(seeds), 'stacked': stacked, 'settings': settings, **(extra_meta or {})}

  def check_settings(saved_meta):
    differences = settings_diff(saved_meta.get('settings'), settings)
    if differences:
      raise SettingsMismatchError(
          f'{directory} holds {name} trained with other settings than the config asks for '
          f'({"; ".join(differences)}). Use a fresh --workdir, or --config.overwrite=True to delete these '
          'checkpoints and train again here.')

  mngr = checkpoints.manager(directory)
  try:
    restored, _ = checkpoints.restore_latest(mngr, jax.eval_shape(lambda: state), check_settings)
  except SettingsMismatchError:
    if not config.get('overwrite', False):
      raise
    logging.warning('%s: config.overwrite=True: deleting the checkpoints in %s (trained with other settings)',
                    name, directory)
    mngr.close()
    if sharding.is_primary():
      epath.Path(directory).rmtree()
    sharding.barrier('delete checkpoints of other settings')
    mngr, restored = checkpoints.manager(directory), None
  if restored is not None:
    logging.info('%s: resuming from the checkpoint at step %d in %s', name, training.current_step(restored),
                 mngr.directory)
    state = restored
  if writer is not None:  # a fresh start drops all the phase's old records (step 0's diagnostic too)
    writer.truncate(name, training.current_step(state) if restored is not None else -1)
  if restored is None and losses.loss_spec(cfg.loss).uses_teacher:
    report_teacher_targets(name, config, train, mesh, writer, teacher, teacher_variables, teacher_logits, stacked)

  def save(s):
    if writer is not None:
      writer.flush()  # the metric records up to this checkpoint survive a kill
    checkpoints.save(mngr, s, meta)

  snapshots = snapshot_steps(num_steps, batches.steps_per_epoch, config.snapshot_first_epoch)
  snapshot_mngr = checkpoints.manager(snapshot_dir(directory), max_to_keep=None) if config.snapshots else None

  def snapshot(s):
    done = training.current_step(s)
    checkpoints.save_snapshot(snapshot_mngr, done, s.variables,
                              {**meta, 'epoch': done / batches.steps_per_epoch})

  step = training.make_train_step(model, tx, loss_fn, teacher,
                                  teacher_train_mode=teacher_mode(config) == 'train',
                                  compute_dtype=config.compute_dtype, augment=augment)
  try:
    state = training.fit(name, jax.vmap(step) if stacked else step, state, batches, num_steps=num_steps, mesh=mesh,
                         teacher_variables=teacher_variables, steps_per_dispatch=config.steps_per_dispatch,
                         # A teacher in the step runs its forward there: its options count too (in training mode
                         # the CNN teacher's forward ran 3× slower under the MLP student's defaults).
                         compiler_options=training.compiler_options(*filter(None, (teacher, model))),
                         log_every=config.log_every_steps, writer=writer,
                         save_fn=save,
                         checkpoint_every=config.get('checkpoint_every_steps', 0),
                         divergence_factor=config.get('divergence_factor', 0.0),
                         settings_field=settings_field or f'config.{name}',
                         snapshot_fn=snapshot if config.snapshots else None, snapshot_steps=snapshots,
                         saved_checkpoints=lambda: newest_checkpoint(directory))
  except interrupts.StopRequested as stop:  # SIGINT/SIGTERM: the loop saved at the step it stopped at
    mngr.close()
    if snapshot_mngr is not None:
      snapshot_mngr.close()
    what = 'preempted' if stop.signum == signal.SIGTERM else 'interrupted'
    raise TrainingInterrupted(f'{name} {what} ({interrupts.NAMES[stop.signum]}) at step {stop.step}; checkpoint '
                              f'saved in {directory}: run the same command again to resume from it',
                              stop.exit_code) from None
  except KeyboardInterrupt:
    mngr.wait_until_finished()  # a save in flight completes (or Orbax discards its temporary files)
    mngr.close()
    if snapshot_mngr is not None:
      snapshot_mngr.close()
    raise TrainingInterrupted(f'{name} interrupted; {newest_checkpoint(directory)}: run the same command again to '
                              'resume from it') from None
  mngr.close()
  if snapshot_mngr is not None:
    snapshot_mngr.close()
  return state


def newest_checkpoint(directory: str) -> str:
  """Where a run can resume from, as read from disk now: only complete (finalised) steps count."""
  steps = checkpoints.all_steps(directory)
  return (f'the newest complete checkpoint is step {steps[-1]} in {directory}' if steps
          else f'no checkpoint was saved yet in {directory}')


def control_targets(name, config, train, teacher_logits, seeds, stacked):
  """``teacher_logits`` as ``config.kd.targets`` asks: the teacher's own, or a control made from them
  (:data:`kd_jax.losses.TARGETS`), one random permutation per seed."""
  targets = config.kd.get('targets', 'teacher')
  if targets == 'teacher':
    return teacher_logits
  labels = train.batch(np.arange(len(train)))['label']
  if teacher_logits is None or labels.ndim != 1:
    raise ValueError(f'{name}: config.kd.targets={targets!r} needs cached teacher logits of a classifier')
  control = functools.partial(losses.TARGETS[targets], labels=labels, temperature=config.kd.temperature)
  if stacked:
    return np.stack([control(logits, rng=np.random.default_rng(seed)) for logits, seed in zip(teacher_logits, seeds)])
  return control(teacher_logits, rng=np.random.default_rng(seeds[0]))


LM_TARGET_ROWS = 64  # sequences a batch when summarising a language model's targets (~0.3 GB of logits at 20k words)


def target_probabilities(logits: jax.Array, labels: jax.Array, temperature: float) -> jax.Array:
  """[..., 2]: p(gold) and entropy (nats) of softmax(logits / T) — :func:`kd_jax.metrics.target_probabilities`
  inside the jitted forward, so that no [..., vocabulary] logits go to the host."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32) / temperature, axis=-1)
  p_gold = jnp.exp(jnp.take_along_axis(log_probs, labels[..., None].astype(jnp.int32), axis=-1)[..., 0])
  return jnp.stack([p_gold, -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)], axis=-1)


def report_teacher_targets(name, config, train, mesh, writer, teacher, teacher_variables, teacher_logits, stacked):
  """Logs (and writes as the phase's step-0 metrics) what the student will be taught: the teacher's targets at
  the KD temperature on the training inputs (:func:`kd_jax.metrics.teacher_targets`) — in eval mode, or with
  ``kd.teacher_mode='train'`` in training mode (one dropout draw per example, batch statistics of each eval batch),
  as the step computes them.

  Targets computed in the step are summarised per example on the device (:func:`target_probabilities`); language
  models per target position (weights 1), :data:`LM_TARGET_ROWS` sequences a batch.
  """
  everything = train.batch(np.arange(len(train)))
  labels, weights = everything['label'], everything.get('weights')
  temperature = config.kd.temperature
  if teacher_logits is not None:  # cached: classification
    teacher_logits = np.asarray(teacher_logits)
    stats = metrics.teacher_targets(teacher_logits, np.broadcast_to(labels, teacher_logits.shape[:-1]), temperature)
  else:
    batch_size = config.eval.batch_size if labels.ndim == 1 else -(-LM_TARGET_ROWS // mesh.size) * mesh.size
    predict = training.make_predict_fn(teacher, mesh, batch_size, config.compute_dtype,
                                       train_mode=teacher_mode(config) == 'train',
                                       summarise=functools.partial(target_probabilities, temperature=temperature))
    instances = [instance(teacher_variables, k) for k in range(len(jax.tree_util.tree_leaves(teacher_variables)[0]))
                 ] if stacked else [teacher_variables]
    per_example = np.concatenate([predict(v, everything['inputs'], labels) for v in instances])
    stats = metrics.summarise_targets(per_example[..., 0], per_example[..., 1],
                                      None if weights is None else np.concatenate([weights] * len(instances)))
  label_like = ' — the targets are (nearly) the labels: KD can teach little beyond them' if (
      stats['below_0.9'] < 0.01) else ''
  kind = f'{teacher_mode(config)}-mode teacher targets'
  if config.kd.get('targets', 'teacher') != 'teacher':
    kind = f'{config.kd.targets} control targets (from the {kind})'
  logging.info('%s: %s at T = %g on the training inputs: mean p(gold) %.4f, %.1f%% below '
               '0.9, entropy %.3f nats%s', name, kind, temperature, stats['p_gold'],
               100 * stats['below_0.9'], stats['entropy'], label_like)
  if writer is not None:
    writer.write(name, 0, {f'teacher_targets/{k}': v for k, v in stats.items()})


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


# ----------------------------------------------------------------------------- what determines a run

# Settings added after checkpoints were first written, with their defaults: recorded only when not at the default,
# so those checkpoints still resume.
LATER_SETTINGS = {'l2': 0.0, 'l1': 0.0, 'compute_dtype': 'float32', 'matmul_precision': 'default',
                  'kd.targets': 'teacher', 'kd.shared_teacher': False, 'kd.dkd_target_weight': 1.0,
                  'kd.dkd_nontarget_weight': 8.0, 'kd.dist_inter_weight': 1.0, 'kd.dist_intra_weight': 1.0,
                  'augment': '', 'kd.rkd_distance_weight': 25.0, 'kd.rkd_angle_weight': 50.0, 'kd.sp_weight': 3000.0,
                  'kd.cka_weight': 1.0, 'kd.fitnets_weight': 100.0}


class SettingsMismatchError(ValueError):
  """A workdir's checkpoints were trained with other settings than the config asks for."""


def flatten(tree, prefix: str = '') -> Dict[str, Any]:
  """A nested dict as one level of dotted keys ('kd.temperature'), tuples as lists (as JSON has them)."""
  if isinstance(tree, dict):
    flat = {}
    for key, value in tree.items():
      flat.update(flatten(value, f'{prefix}{key}.'))
    return flat
  return {prefix[:-1]: list(tree) if isinstance(tree, tuple) else tree}


def run_settings(cfg, config, train, *, seeds, stream: int, stacked: bool, num_steps: int,
                 teacher_targets=None) -> Dict[str, Any]:
  """What determines a phase's result, as a flat JSON-able dict.

  The phase's training settings (``cfg``, less the teacher checkpoint path),
  ``config.kd`` when the loss reads teacher logits, the seeds and stream, and
  digests of the training data itself (so any data setting that changes what
  is trained on counts, and evaluation-only ones do not) and of the teacher
  (its variables, or its cached logits). Logging, checkpointing and evaluation
  settings are not part of it.
  """
  settings = {k: v for k, v in flatten(cfg.to_dict()).items() if k != 'checkpoint'}
  if losses.loss_spec(cfg.loss).uses_teacher:
    settings.update({f'kd.{k}': v for k, v in flatten(config.kd.to_dict()).items()})
    settings['teacher (digest of its variables or cached logits)'] = (
        None if teacher_targets is None else checkpoints.digest(teacher_targets))
  settings.update({'compute_dtype': config.compute_dtype,
                   'matmul_precision': config.get('matmul_precision', 'default'), 'seeds': list(seeds), 'stream': stream,
                   'vmapped': stacked, 'num_steps': num_steps,
                   'training data (digest)': checkpoints.digest(train.batch(np.arange(len(train)))),
                   'training examples': len(train)})
  return json.loads(json.dumps({k: v for k, v in settings.items()
                                if not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])}))


def settings_diff(saved: Optional[Dict[str, Any]], now: Dict[str, Any]):
  """'key: saved → now' for each setting that differs; one line when nothing was recorded."""
  if saved is None:
    return ['the checkpoints record no settings (written by an older kd_jax), so they cannot be checked']
  return [f'{key}: {saved.get(key, "(unset)")!r} → {now.get(key, "(unset)")!r}'
          for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key)]


# ----------------------------------------------------------------------------- saved models and teachers

def instance(tree, k: int):
  """Instance ``k`` of a stack of pytrees (leading axis)."""
  return jax.tree_util.tree_map(lambda x: x[k], tree)


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
                     'DIR/teacher/seed_{seed}) for one teacher per seed, or set config.kd.shared_teacher=True to '
                     'share it on purpose (the report then says so)')
  return True


def checkpoint_path(template: str, seed: int) -> str:
  """A checkpoint directory for ``seed``: '{seed}' in ``template`` is replaced, e.g. 'DIR/teacher/seed_{seed}'."""
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


def teacher_for_seed(cfg: ml_collections.ConfigDict, config, model, train, mesh, directory: str, writer, *,
                     seed: int, name: str = 'teacher', extra_meta: Optional[Dict[str, Any]] = None,
                     settings_field: str = 'config.teacher', augment: Optional[Callable] = None):
  """The teacher of ``seed`` for KD: (variables, checkpoint directory, meta).

  Offline KD from a saved teacher when ``cfg.checkpoint`` is set ('{seed}' in
  it replaced by ``seed``): no training. Otherwise the teacher is trained (or
  resumed) in ``directory``. Either way its variables are read back from the
  checkpoint: students always distil from what was saved. A missing,
  unreadable or mismatched checkpoint is an error, never a random teacher.
  """
  if cfg.checkpoint:
    directory = checkpoint_path(cfg.checkpoint, seed)
    logging.info('Offline KD: using the saved teacher in %s (no teacher training)', directory)
  else:
    train_model(name, cfg, config, model, train, mesh, directory, writer, seeds=[seed], stream=TEACHER_STREAM,
                extra_meta=extra_meta, settings_field=settings_field, augment=augment)
  variables, meta = restore_variables(model, directory, cfg, example_input(train), seed)
  logging.info('Teacher restored from %s (step %d)', directory, meta['step'])
  return variables, directory, meta
