"""Orbax checkpoints of train states, teacher restore for offline KD, and what to do with damaged steps.

Each checkpoint step holds three items: ``state`` (the whole TrainState, for
resuming), ``variables`` (params + batch_stats, all a teacher needs) and
``meta`` (JSON: model name and settings, so a mismatch is reported by name).

Every step's ``meta`` records a digest of each array item it saved
(``meta['digests']``); a restore recomputes it. A step that cannot be read
(truncated or deleted files) or whose arrays no longer match their digest
(bytes changed in place) is *damage*, not a settings mismatch: a resumed run
uses the newest intact step instead, with a warning that names the damage, and
only when no step is intact is it an error (:class:`CheckpointDamagedError`); a
saved model read for use (a teacher, an analysed run) whose newest step fails
its digest is an error. Messages are one paragraph; Orbax's full exception
(with its TensorStore specs) goes to the debug log.
"""
import hashlib
import itertools
import os
import re
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from absl import logging
from etils import epath
import jax
import numpy as np
import orbax.checkpoint as ocp

from kd_jax import paths
from kd_jax import sharding
from kd_jax import training

DAMAGED_SUFFIX = '.damaged'  # a damaged step directory is renamed <step>.damaged; Orbax then ignores it


class CheckpointDamagedError(RuntimeError):
  """No step of a checkpoint directory can be read."""


class CheckpointStructureError(ValueError):
  """A readable checkpoint whose arrays do not fit the configured model."""


_STRUCTURE_MISMATCH = ('tree structures do not match', 'Structure mismatch')  # Orbax's words, either direction


def manager(directory: paths.PathLike, max_to_keep: int = 2) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(paths.absolute(directory),
                               options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))


def digest(tree) -> str:
  """A short hash of every array in a pytree (dtype, shape and bytes)."""
  h = hashlib.blake2b(digest_size=12)
  for leaf in jax.tree_util.tree_leaves(sharding.to_host(tree)):
    array = np.ascontiguousarray(leaf)
    h.update(f'{array.dtype}{array.shape}'.encode())
    h.update(array.tobytes())
  return h.hexdigest()


def _save(mngr: ocp.CheckpointManager, step: int, items: Dict[str, Any], meta: Dict[str, Any]):
  """Saves the array ``items`` and ``meta`` (with each item's digest) as ``step``; waits until the files are
  complete."""
  meta = {**meta, 'step': step, 'digests': {name: digest(item) for name, item in items.items()}}
  mngr.save(step, args=ocp.args.Composite(meta=ocp.args.JsonSave(meta),
                                          **{name: ocp.args.StandardSave(item) for name, item in items.items()}))
  mngr.wait_until_finished()


def save(mngr: ocp.CheckpointManager, state, meta: Dict[str, Any]):
  """Saves ``state`` (one TrainState, a stack of them, or online KD's (teacher, student) pair of them) at its step,
  and the exported model's variables (the student's, of a pair); waits until the files are complete."""
  _save(mngr, training.current_step(state), {'state': state, 'variables': training.exported(state).variables}, meta)


def save_snapshot(mngr: ocp.CheckpointManager, step: int, variables, meta: Dict[str, Any]):
  """Saves ``variables`` (no optimizer state) as step ``step`` of a snapshot directory, unless it is there."""
  if step not in mngr.all_steps():
    _save(mngr, step, {'variables': variables}, meta)


class DigestMismatch(Exception):
  """A step's arrays were read but differ from what was saved (their digest in its meta)."""


def _restore_verified(mngr, step: int, meta: Dict[str, Any], name: str, target):
  """Item ``name`` of ``step``, restored into ``target`` and checked against its saved digest (steps saved before
  digests existed are not checked)."""
  item = mngr.restore(step, args=ocp.args.Composite(**{name: ocp.args.StandardRestore(target)}))[name]
  saved = meta.get('digests', {}).get(name)
  if saved is not None and digest(item) != saved:
    raise DigestMismatch(f'its {name} arrays do not match the digest saved with them (the files were changed '
                         'after saving)')
  return item


def all_steps(directory: paths.PathLike):
  """The saved steps of a checkpoint directory, oldest first ([] when it does not exist)."""
  directory = paths.absolute(directory)
  if not directory.is_dir():
    return []
  mngr = ocp.CheckpointManager(directory)
  try:
    return sorted(mngr.all_steps())
  finally:
    mngr.close()


def describe_error(error: Exception) -> str:
  """One readable line for an Orbax/TensorStore error: its message without the TensorStore spec."""
  logging.debug('checkpoint error in full: %r', error)
  message = re.sub(r'\s*\[tensorstore_spec=.*', '', str(error), flags=re.S).strip()
  message = ' '.join(message.split())
  return message if len(message) <= 300 else message[:297] + '...'


def _damaged_files(error: Exception, step_dir) -> str:
  files = re.findall(r'(?:local file|file) "([^"]+)"', str(error))
  files = [f for f in files if epath.Path(f).is_file()] or files
  return files[-1] if files else step_dir


def _newest_readable(mngr: ocp.CheckpointManager, restore_item: Callable[[int, Dict[str, Any]], Any],
                     check_meta: Optional[Callable[[Dict[str, Any]], None]] = None,
                     set_aside: bool = False, step: Optional[int] = None,
                     changed_is_fatal: bool = False) -> Optional[Tuple[int, Dict[str, Any], Any]]:
  """(step, meta, restore_item(step, meta)) of the newest step whose meta and item can be read; None without steps.

  ``check_meta`` may raise (a settings mismatch is the caller's error, not
  damage). With ``set_aside``, damaged steps are renamed ``<step>.damaged`` so
  that training can save that step again. With ``step``, only that step is read.
  ``changed_is_fatal``: a step whose arrays fail their digest is an error, not a reason to use an older step.
  """
  directory = mngr.directory
  damaged = []
  if step is not None and step not in mngr.all_steps():
    raise FileNotFoundError(f'{directory} has no step {step}; it has {sorted(mngr.all_steps())}')
  for step in [step] if step is not None else sorted(mngr.all_steps(), reverse=True):
    step_dir = directory / str(step)
    try:
      meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']
    except Exception as e:  # pylint: disable=broad-except
      damaged.append((step, f'its metadata is unreadable ({_damaged_files(e, step_dir)}: {describe_error(e)})'))
      continue
    if meta is None:
      damaged.append((step, f'no kd_jax metadata in {step_dir}'))
      continue
    if check_meta is not None:
      check_meta(meta)
    try:
      item = restore_item(step, meta)
    except DigestMismatch as e:
      if changed_is_fatal:
        raise CheckpointDamagedError(f'checkpoint {step_dir} is damaged: {e}; it cannot be trusted: restore the '
                                     'files from a copy, or train it again') from None
      damaged.append((step, f'{e}'))
      continue
    except Exception as e:  # pylint: disable=broad-except
      if any(text in str(e) for text in _STRUCTURE_MISMATCH):  # readable, but not this model's arrays: not damage
        raise CheckpointStructureError(
            f'checkpoint {step_dir} holds arrays of another structure than the configured model '
            f'({describe_error(e)[:200]}); it was likely written by an older kd_jax whose model differed (e.g. the '
            'CNN before its BatchNorm-cancelled convolution biases were dropped): train it again (a fresh '
            '--workdir, or --config.overwrite=True)') from None
      damaged.append((step, f'damaged file {_damaged_files(e, step_dir)} ({describe_error(e)})'))
      continue
    for bad_step, reason in damaged:
      logging.warning('Checkpoint %s, step %d: %s; using the newest readable step, %d.', directory, bad_step, reason,
                      step)
    if set_aside and damaged:
      _set_aside(mngr, [bad_step for bad_step, _ in damaged])
    return step, meta, item
  if damaged:
    reasons = '; '.join(f'step {bad_step}: {reason}' for bad_step, reason in damaged)
    raise CheckpointDamagedError(f'checkpoint {directory} is damaged: no step can be read ({reasons}). '
                                 'Restore the files, or start over in a fresh --workdir.')
  return None


def _free_aside_path(path):
  """Where a damaged step goes: <step>.damaged, or for a step damaged again after an earlier copy was set aside
  (and retrained), <step>.damaged.2, .3, … — every copy is kept."""
  for k in itertools.count(1):
    aside = path.with_name(path.name + DAMAGED_SUFFIX + (f'.{k}' if k > 1 else ''))
    if not aside.exists():
      return aside


def _set_aside(mngr, steps):
  if sharding.is_primary():
    for step in steps:
      path = mngr.directory / str(step)
      aside = _free_aside_path(path)
      path.rename(aside)
      logging.warning('Moved the damaged step aside to %s', aside)
  sharding.barrier('set aside damaged checkpoint steps')
  mngr.reload()


def restore_latest(mngr: ocp.CheckpointManager, abstract_state,
                   check_meta: Optional[Callable[[Dict[str, Any]], None]] = None
                   ) -> Tuple[Optional[Any], Optional[Dict[str, Any]]]:
  """The newest readable saved (TrainState, meta), for resuming; (None, None) when there is none.

  ``check_meta(meta)`` runs before the state is read (e.g. to refuse a run of
  other settings). Damaged newer steps are set aside, with a warning.
  """
  target = sharding.replicated_like(abstract_state)
  restore_state = lambda step, meta: _restore_verified(mngr, step, meta, 'state', target)
  newest = _newest_readable(mngr, restore_state, check_meta, set_aside=True)
  return (None, None) if newest is None else (newest[2], newest[1])


def _open_saved(directory) -> ocp.CheckpointManager:
  """The manager of a saved run; clear errors for a missing or empty directory."""
  if not directory.is_dir():
    raise FileNotFoundError(
        f'teacher checkpoint directory {directory} does not exist; point the checkpoint setting at the saved model '
        "of a finished run (a grid's <workdir>/<model>/seed_{seed}, or <workdir>/<model> when its seeds were "
        "vmapped), or leave it empty to train the model first")
  mngr = ocp.CheckpointManager(directory)
  if mngr.latest_step() is None:
    raise FileNotFoundError(f'{directory} holds no Orbax checkpoint steps; expected the directory of a saved '
                            "model: a grid's <workdir>/<model>/seed_<s> (or <workdir>/<model> when its seeds were "
                            "vmapped)")
  return mngr


def read_meta(directory: paths.PathLike, step: Optional[int] = None) -> Dict[str, Any]:
  """The JSON metadata of the newest readable checkpoint step in ``directory`` (or of ``step``)."""
  directory = paths.absolute(directory)
  mngr = _open_saved(directory)
  try:
    step, meta, _ = _newest_readable(mngr, lambda step, meta: None, step=step)  # _open_saved: there are steps
  finally:
    mngr.close()
  return {**meta, 'step': step}


def checkpoint_dirs(root: paths.PathLike):
  """Directories under ``root`` that hold numbered checkpoint steps (snapshot directories excluded)."""
  root = paths.absolute(root)
  if not root.is_dir():  # a restored teacher's role: its checkpoints are elsewhere
    return
  for path, dirs, _ in root.walk():
    if epath.Path(path).name != 'snapshots' and any(d.isdigit() for d in dirs):
      yield epath.Path(path)


def model_record(meta: Dict[str, Any]) -> Dict[str, Any]:
  """What identifies the model of a step (its :func:`read_meta`): the step and the digest of its exported variables
  (None for steps saved before digests existed)."""
  return {'step': meta['step'], 'variables': meta.get('digests', {}).get('variables')}


def models_under(workdir: paths.PathLike, names: Sequence[str]) -> Dict[str, Dict[str, Any]]:
  """The checkpoint directories a report evaluated — those under ``workdir/<name>`` for each of ``names`` (a job's
  roles, a grid's setups) — relative to ``workdir`` → :func:`model_record` of the newest step: the analyses check
  that they read those models (:func:`kd_jax.analysis.find_runs`). An unreadable directory is left out (the
  analyses then refuse it)."""
  root = paths.absolute(workdir)
  models = {}
  for name in names:
    for directory in sorted(checkpoint_dirs(root / name)):
      try:
        models[os.path.relpath(str(directory), str(root))] = model_record(read_meta(directory))
      except (FileNotFoundError, CheckpointDamagedError):
        logging.warning('%s: unreadable, not recorded as evaluated by the report', directory)
  return models


def restore_model(directory: paths.PathLike, model_name: str, model_kwargs: Dict[str, Any], abstract_variables,
                  step: Optional[int] = None):
  """Restores model variables saved by :func:`save`, checking they fit the configured model.

  Raises FileNotFoundError for a missing/empty directory, ValueError for a
  checkpoint of a different model and CheckpointDamagedError when no step can
  be read. Never falls back to an initialised model. ``step``: that step, not the newest.
  """
  directory = paths.absolute(directory)

  def check(meta):
    if meta.get('model') != model_name or _normalise(meta.get('model_kwargs', {})) != _normalise(model_kwargs):
      raise ValueError(f'checkpoint {directory} holds a {meta.get("model")!r} model with settings '
                       f'{meta.get("model_kwargs")}, but the config asks for {model_name!r} with '
                       f'{dict(model_kwargs)}: restore it as the model it is '
                       '(config.models.<that model>.checkpoint)')

  mngr = _open_saved(directory)
  target = sharding.replicated_like(abstract_variables)
  restore_variables = lambda step, meta: _restore_verified(mngr, step, meta, 'variables', target)
  try:  # _open_saved: there are steps
    _, meta, variables = _newest_readable(mngr, restore_variables, check, step=step, changed_is_fatal=True)
  finally:
    mngr.close()
  return variables, meta


def _normalise(x):
  """JSON round trips turn tuples into lists; compare settings modulo that."""
  if isinstance(x, dict):
    return {k: _normalise(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_normalise(v) for v in x]
  return x
