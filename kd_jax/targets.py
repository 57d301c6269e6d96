"""What a training phase learns from, decided in one place for every task and runner.

A phase learns from gold labels alone, or from a teacher: run inside the train step (its logits, and features for
feature objectives, computed on each batch — needed for training-mode teachers, augmented inputs and feature
objectives) or run once over the training set beforehand (cached logits — a language model's or a cross-fitted
teacher's are given as they are). :func:`for_phase` makes that choice from the config; the trainer only asks the
:class:`Targets` it is given.
"""
import dataclasses
import functools
from typing import Any, Callable, Optional

from absl import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kd_jax import losses
from kd_jax import metrics
from kd_jax import training

TEACHER_MODES = ('eval', 'train')


@dataclasses.dataclass(frozen=True)
class Teacher:
  """A trained teacher: its model and variables (with ``instances``, a stack of that many on the leading axis, one
  per seed), and ``predictor(model) -> logits_on(variables, split) -> [N, C]``: a model's eval-mode logits on a
  training split, as the task computes them (e.g. batched by length)."""
  model: nn.Module
  variables: Any
  predictor: Callable[[nn.Module], Callable[[Any, Any], np.ndarray]]
  instances: int = 0  # 0: one teacher, not a stack

  def instance(self, k: int) -> 'Teacher':
    """Instance ``k`` of a stack; one teacher (``instances`` 0) serves every instance."""
    if not self.instances:
      return self
    return dataclasses.replace(self, variables=instance(self.variables, k), instances=0)


@dataclasses.dataclass(frozen=True)
class OnlineTeacher:
  """Online KD's teacher: trained beside the student, on gold labels, from the same batches, from its own
  initialisation (the teacher stream); the student learns from its current training-mode logits."""
  model: nn.Module
  settings: Any  # its training settings (a model config: optimiser, epochs, loss)


@dataclasses.dataclass(frozen=True)
class Targets:
  """What a phase learns from: ``teacher`` run in the step (in ``mode``), or cached ``logits`` ([N, C], or stacked
  [S, N, C] for vmapped instances), or an ``online`` teacher trained with it, or none of them (gold labels)."""
  teacher: Optional[Teacher] = None
  logits: Optional[np.ndarray] = None
  mode: str = 'eval'
  online: Optional[OnlineTeacher] = None
  logits_instances: int = 0  # cached logits: how many instances' are stacked (0: one teacher's, [N, C])

  def __post_init__(self):
    if sum(x is not None for x in (self.teacher, self.logits, self.online)) > 1:
      raise ValueError('a phase learns from one of: the teacher in its step, cached logits, an online teacher')

  @property
  def in_step(self) -> bool:
    return self.teacher is not None

  @property
  def cached(self) -> bool:
    return self.logits is not None

  @property
  def instances(self) -> int:
    """How many instances' targets this holds, stacked on the leading axis; 0: one teacher's, shared by all."""
    if self.teacher is not None:
      return self.teacher.instances
    return self.logits_instances

  def instance(self, k: int) -> 'Targets':
    """Instance ``k``'s targets, of vmapped ones (shared ones serve every instance)."""
    if not self.instances:
      return self
    return dataclasses.replace(self, teacher=None if self.teacher is None else self.teacher.instance(k),
                               logits=None if self.logits is None else self.logits[k], logits_instances=0)

  def with_logits(self, logits) -> 'Targets':
    return dataclasses.replace(self, logits=logits)


GOLD_LABELS = Targets()

ENSEMBLE_COMBINATIONS = ('logits', 'probabilities')


@dataclasses.dataclass(frozen=True)
class Ensemble:
  """Several trained models of one architecture as one teacher: ``member`` applied to each of a stack of variables
  (leading axis), its outputs combined — ``'logits'``: their mean; ``'probabilities'``: logits whose softmax at
  ``temperature`` is the mean of the members' softmaxes at that temperature (T · log of the mean), so that the KD
  targets at T are the members' averaged targets. Has the ``apply`` of a Flax module (the trainer, the step and
  the predictions use nothing else); in training mode each member draws its own dropout.
  """
  member: nn.Module
  combine: str = 'logits'
  temperature: float = 1.0

  def __post_init__(self):
    if self.combine not in ENSEMBLE_COMBINATIONS:
      raise ValueError(f'unknown teacher ensemble combination {self.combine!r}; choose one of '
                       f'{ENSEMBLE_COMBINATIONS}')

  @property
  def training_compiler_options(self):
    return getattr(self.member, 'training_compiler_options', {})

  def apply(self, variables, inputs, train: bool = False, rngs=None, mutable=False):
    if mutable and 'intermediates' in mutable:
      raise ValueError('a teacher ensemble gives logits, not one set of features: use a logit objective')
    size = len(jax.tree_util.tree_leaves(variables)[0])
    keys = {name: jax.random.split(key, size) for name, key in (rngs or {}).items()}
    outputs = jax.vmap(lambda v, k: self.member.apply(v, inputs, train=train, rngs=k or None, mutable=mutable))(
        variables, keys)
    logits, updates = outputs if mutable else (outputs, None)
    if self.combine == 'logits':
      combined = logits.mean(axis=0)
    else:
      log_probs = jax.nn.log_softmax(logits.astype(jnp.float32) / self.temperature, axis=-1)
      combined = self.temperature * (jax.nn.logsumexp(log_probs, axis=0) - jnp.log(size))
    return (combined, updates) if mutable else combined


def ensemble_of(teacher: Teacher, combine: str, temperature: float) -> Teacher:
  """One teacher made of every instance of a stacked ``teacher`` (e.g. the seeds' CNNs), shared by all students."""
  if teacher.instances < 2:
    raise ValueError(f'a teacher ensemble needs at least 2 trained teachers, got {teacher.instances}')
  return Teacher(Ensemble(teacher.model, combine, temperature), teacher.variables, teacher.predictor)


def teacher_mode(config) -> str:
  return config.kd.get('teacher_mode', 'eval')


def uses_teacher(cfg) -> bool:
  """Whether the phase with settings ``cfg`` trains on a teacher's outputs (its loss reads them)."""
  return losses.loss_spec(cfg.loss).uses_teacher


def caches_teacher_logits(config, cfg) -> bool:
  """Whether the phase with settings ``cfg`` learns from teacher logits computed once on the training set
  (``config.cache_teacher_logits``), rather than from the teacher run inside its step."""
  return uses_teacher(cfg) and bool(config.get('cache_teacher_logits', False))


def for_phase(config, cfg, teacher: Optional[Teacher], train) -> Targets:
  """The targets of the phase with settings ``cfg`` on the split ``train``: gold labels when its loss reads no
  teacher; else the teacher's logits cached once (one array per instance of a stacked teacher) or the teacher in the
  step, as :func:`caches_teacher_logits` decides."""
  if not uses_teacher(cfg):
    return GOLD_LABELS
  if teacher is None:
    raise ValueError(f'config: the {cfg.loss!r} objective learns from a teacher, and this phase has none')
  if not caches_teacher_logits(config, cfg):
    return Targets(teacher=teacher, mode=teacher_mode(config))
  logits_on = teacher.predictor(teacher.model)
  if teacher.instances:
    return Targets(logits=np.stack([logits_on(instance(teacher.variables, k), train)
                                    for k in range(teacher.instances)]), logits_instances=teacher.instances)
  return Targets(logits=logits_on(teacher.variables, train))


def instance(tree, k: int):
  """Instance ``k`` of a stack of pytrees (leading axis)."""
  return jax.tree_util.tree_map(lambda x: x[k], tree)


# ----------------------------------------------------------------------------- controls and what is taught

def control_targets(phase, config, teacher_logits):
  """``teacher_logits`` as ``config.kd.targets`` asks: the teacher's own, or a control made from them
  (:data:`kd_jax.losses.TARGETS`), one random permutation per seed."""
  control = config.kd.get('targets', 'teacher')
  if control == 'teacher':
    return teacher_logits
  labels = phase.train.batch(np.arange(len(phase.train)))['label']
  if teacher_logits is None or labels.ndim != 1:
    raise ValueError(f'{phase.name}: config.kd.targets={control!r} needs cached teacher logits of a classifier')
  make = functools.partial(losses.TARGETS[control], labels=labels, temperature=config.kd.temperature)
  if phase.stacked:
    return np.stack([make(logits, rng=np.random.default_rng(seed))
                     for logits, seed in zip(teacher_logits, phase.seeds)])
  return make(teacher_logits, rng=np.random.default_rng(phase.seeds[0]))


LM_TARGET_ROWS = 64  # sequences a batch when summarising a language model's targets (~0.3 GB of logits at 20k words)


def target_probabilities(logits: jax.Array, labels: jax.Array, temperature: float) -> jax.Array:
  """[..., 2]: p(gold) and entropy (nats) of softmax(logits / T) — :func:`kd_jax.metrics.target_probabilities`
  inside the jitted forward, so that no [..., vocabulary] logits go to the host."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32) / temperature, axis=-1)
  p_gold = jnp.exp(jnp.take_along_axis(log_probs, labels[..., None].astype(jnp.int32), axis=-1)[..., 0])
  return jnp.stack([p_gold, -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)], axis=-1)


def report_teacher_targets(phase, targets: Targets, job):
  """Logs (and writes as the phase's step-0 metrics) what the student will be taught: the teacher's targets at
  the KD temperature on the training inputs (:func:`kd_jax.metrics.teacher_targets`) — in eval mode, or with
  ``kd.teacher_mode='train'`` in training mode (one dropout draw per example, batch statistics of each eval batch),
  as the step computes them.

  Targets computed in the step are summarised per example on the device (:func:`target_probabilities`); language
  models per target position (weights 1), :data:`LM_TARGET_ROWS` sequences a batch.
  """
  config, mesh = job.config, job.mesh
  everything = phase.train.batch(np.arange(len(phase.train)))
  labels, weights = everything['label'], everything.get('weights')
  temperature = config.kd.temperature
  if targets.cached:  # classification
    teacher_logits = np.asarray(targets.logits)
    stats = metrics.teacher_targets(teacher_logits, np.broadcast_to(labels, teacher_logits.shape[:-1]), temperature)
  else:
    batch_size = config.eval.batch_size if labels.ndim == 1 else -(-LM_TARGET_ROWS // mesh.size) * mesh.size
    predict = training.make_predict_fn(targets.teacher.model, mesh, batch_size, config.compute_dtype,
                                       train_mode=targets.mode == 'train',
                                       summarise=functools.partial(target_probabilities, temperature=temperature))
    variables = targets.teacher.variables
    instances = [instance(variables, k) for k in range(targets.instances)] if targets.instances else [variables]
    per_example = np.concatenate([predict(v, everything['inputs'], labels) for v in instances])
    stats = metrics.summarise_targets(per_example[..., 0], per_example[..., 1],
                                      None if weights is None else np.concatenate([weights] * len(instances)))
  label_like = ' — the targets are (nearly) the labels: KD can teach little beyond them' if (
      stats['below_0.9'] < 0.01) else ''
  kind = f'{targets.mode}-mode teacher targets'
  if config.kd.get('targets', 'teacher') != 'teacher':
    kind = f'{config.kd.targets} control targets (from the {kind})'
  logging.info('%s: %s at T = %g on the training inputs: mean p(gold) %.4f, %.1f%% below '
               '0.9, entropy %.3f nats%s', phase.name, kind, temperature, stats['p_gold'],
               100 * stats['below_0.9'], stats['entropy'], label_like)
  if job.writer is not None:
    job.writer.write(phase.name, 0, {f'teacher_targets/{k}': v for k, v in stats.items()})
