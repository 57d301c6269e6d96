"""What determines a run: the settings a phase's checkpoints record, and a resume under other settings is refused
with (:func:`of_phase`, :func:`differences`)."""
import json
from typing import Any, Dict, Optional

import numpy as np

from kd_jax import checkpoints
from kd_jax import losses
from kd_jax import targets as targets_lib

# Settings added after checkpoints were first written, with their defaults: recorded only when not at the default,
# so those checkpoints still resume.
LATER_SETTINGS = {'l2': 0.0, 'l1': 0.0, 'compute_dtype': 'float32', 'matmul_precision': 'default',
                  'kd.targets': 'teacher', 'kd.shared_teacher': False, 'augment': '',
                  **{f'kd.{name}': value for name, value in {**losses.TEACHER_TERM_DEFAULTS,
                                                             **losses.OBJECTIVE_WEIGHTS}.items()}}


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


def of_phase(phase, targets: targets_lib.Targets, config, num_steps: int) -> Dict[str, Any]:
  """What determines a phase's result, as a flat JSON-able dict.

  The phase's training settings (less the teacher checkpoint path), the ``config.kd`` fields its objective reads
  (and the teacher mode and targets) when it learns from a teacher,
  the seeds and stream, and digests of the training data itself (so any data setting that changes what is trained
  on counts, and evaluation-only ones do not) and of the teacher (its variables, or its cached logits), or an
  online teacher's training settings. Logging, checkpointing and evaluation settings are not part of it.
  """
  cfg, train = phase.settings, phase.train
  settings = {k: v for k, v in flatten(cfg.to_dict()).items() if k != 'checkpoint'}
  if targets_lib.uses_teacher(cfg):
    settings.update({f'kd.{k}': config.kd[k] for k in kd_fields_read(cfg) if k in config.kd})
    if losses.loss_spec(cfg.loss).init_aux is not None:
      # Its own parameters have been kept beside the model's since Dec 2026 (before: inside them, which a resume
      # cannot read): checkpoints without this line are refused as another layout.
      settings['objective parameters'] = 'beside the model (TrainStateWithAux.aux_params)'
    teacher = targets.logits if targets.cached else targets.teacher.variables if targets.in_step else None
    settings['teacher (digest of its variables or cached logits)'] = (
        None if teacher is None else checkpoints.digest(teacher))
    if targets.in_step and isinstance(targets.teacher.model, targets_lib.Ensemble):  # same variables, other targets
      settings['teacher ensemble'] = targets.teacher.model.combine
  if targets.online is not None:
    settings.update({f'online teacher.{k}': v for k, v in flatten(targets.online.settings.to_dict()).items()
                     if k != 'checkpoint'})
  settings.update({'compute_dtype': config.compute_dtype,
                   'matmul_precision': config.get('matmul_precision', 'default'), 'seeds': list(phase.seeds),
                   'stream': phase.stream, 'vmapped': phase.stacked, 'num_steps': num_steps,
                   'training data (digest)': checkpoints.digest(train.batch(np.arange(len(train)))),
                   'training examples': len(train)})
  return json.loads(json.dumps({k: v for k, v in settings.items()
                                if not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])}))


def kd_fields_read(cfg):
  """The ``config.kd`` fields that make a phase's targets: those its objective reads, the teacher mode and the
  targets (a control or the teacher's own); none for a gold-label phase."""
  if not targets_lib.uses_teacher(cfg):
    return ()
  return (*losses.loss_spec(cfg.loss).kd_fields, 'teacher_mode', 'targets')


def differences(saved: Optional[Dict[str, Any]], now: Dict[str, Any]):
  """'key: saved → now' for each setting that differs; one line when nothing was recorded."""
  if saved is None:
    return ['the checkpoints record no settings (written by an older kd_jax), so they cannot be checked']
  return [f'{key}: {saved.get(key, "(unset)")!r} → {now.get(key, "(unset)")!r}'
          for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key)]
