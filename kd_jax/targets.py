"""What a training phase learns from, decided in one place for every task and runner.

A phase learns from gold labels alone, or from a teacher: run inside the train step (its logits, and features for
feature objectives, computed on each batch — needed for training-mode teachers, augmented inputs and feature
objectives) or run once over the training set beforehand (cached logits — a language model's or a cross-fitted
teacher's are given as they are). :func:`for_phase` makes that choice from the config; the trainer only asks the
:class:`Targets` it is given.
"""
import dataclasses
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import numpy as np

from kd_jax import losses

TEACHER_MODES = ('eval', 'train')
CACHE_CHOICES = (False, True, 'auto')


@dataclasses.dataclass(frozen=True)
class Teacher:
  """A trained teacher: its model and variables (with ``instances``, a stack of that many on the leading axis, one
  per seed), and ``logits_on(variables, split) -> [N, C]``: its eval-mode logits on a training split, as the task
  computes them (e.g. batched by length)."""
  model: nn.Module
  variables: Any
  logits_on: Callable[[Any, Any], np.ndarray]
  instances: int = 0  # 0: one teacher, not a stack

  def instance(self, k: int) -> 'Teacher':
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

  def __post_init__(self):
    if sum(x is not None for x in (self.teacher, self.logits, self.online)) > 1:
      raise ValueError('a phase learns from one of: the teacher in its step, cached logits, an online teacher')

  @property
  def in_step(self) -> bool:
    return self.teacher is not None

  @property
  def cached(self) -> bool:
    return self.logits is not None

  def describe(self) -> str:
    if self.online is not None:
      return 'an online teacher trained beside it'
    if self.in_step:
      return f'the {self.mode}-mode teacher in the step'
    return 'cached teacher logits' if self.cached else 'gold labels'

  def instance(self, k: int) -> 'Targets':
    """Instance ``k``'s targets, of vmapped ones."""
    return dataclasses.replace(self, teacher=None if self.teacher is None else self.teacher.instance(k),
                               logits=None if self.logits is None else self.logits[k])

  def with_logits(self, logits) -> 'Targets':
    return dataclasses.replace(self, logits=logits)


GOLD_LABELS = Targets()


def teacher_mode(config) -> str:
  return config.kd.get('teacher_mode', 'eval')


def uses_teacher(cfg) -> bool:
  """Whether the phase with settings ``cfg`` trains on a teacher's outputs (its loss reads them)."""
  return losses.loss_spec(cfg.loss).uses_teacher


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
  if teacher.instances:
    return Targets(logits=np.stack([teacher.logits_on(instance(teacher.variables, k), train)
                                    for k in range(teacher.instances)]))
  return Targets(logits=teacher.logits_on(teacher.variables, train))


def instance(tree, k: int):
  """Instance ``k`` of a stack of pytrees (leading axis)."""
  return jax.tree_util.tree_map(lambda x: x[k], tree)
