"""Orbax checkpoints of train states, and teacher restore for offline KD.

Each checkpoint step holds three items: ``state`` (the whole TrainState, for
resuming), ``variables`` (params + batch_stats, all a teacher needs) and
``meta`` (JSON: model name and settings, so a mismatch is reported by name).
"""
import os
from typing import Any, Dict, Optional, Tuple

import numpy as np
import orbax.checkpoint as ocp


def manager(directory: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(os.path.abspath(directory),
                               options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))


def save(mngr: ocp.CheckpointManager, state, meta: Dict[str, Any]):
  """Saves ``state`` (one TrainState or a stack of them) at its step and waits until the files are complete."""
  step = int(np.asarray(state.step).reshape(-1)[0])
  mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                          variables=ocp.args.StandardSave(state.variables),
                                          meta=ocp.args.JsonSave({**meta, 'step': step})))
  mngr.wait_until_finished()


def restore_latest(mngr: ocp.CheckpointManager, abstract_state) -> Tuple[Optional[Any], Optional[Dict[str, Any]]]:
  """The latest saved (TrainState, meta), for resuming; (None, None) when there is none."""
  step = mngr.latest_step()
  if step is None:
    return None, None
  restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                                        meta=ocp.args.JsonRestore()))
  return restored['state'], restored['meta']


def _open_saved(directory: str) -> Tuple[ocp.CheckpointManager, int, Dict[str, Any]]:
  """(manager, latest step, meta) of a saved run; clear errors for a missing, empty or foreign directory."""
  if not os.path.isdir(directory):
    raise FileNotFoundError(
        f'teacher checkpoint directory {directory} does not exist; point config.teacher.checkpoint at the '
        '<workdir>/teacher directory of a finished run, or leave it empty to train the teacher first')
  mngr = ocp.CheckpointManager(directory)
  step = mngr.latest_step()
  if step is None:
    raise FileNotFoundError(f'{directory} holds no Orbax checkpoint steps; expected <workdir>/teacher of a run '
                            'that finished training its teacher')
  try:
    meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'checkpoint {directory} (step {step}) is unreadable (no kd_jax metadata): {e}') from e
  return mngr, step, meta


def read_meta(directory: str) -> Dict[str, Any]:
  """The JSON metadata of the latest checkpoint in ``directory``."""
  mngr, _, meta = _open_saved(os.path.abspath(directory))
  mngr.close()
  return meta


def restore_model(directory: str, model_name: str, model_kwargs: Dict[str, Any], abstract_variables):
  """Restores model variables saved by :func:`save`, checking they fit the configured model.

  Raises FileNotFoundError for a missing/empty directory and ValueError for an
  unreadable checkpoint or one of a different model. Never falls back to an
  initialised model.
  """
  directory = os.path.abspath(directory)
  mngr, step, meta = _open_saved(directory)
  if meta.get('model') != model_name or _normalise(meta.get('model_kwargs', {})) != _normalise(model_kwargs):
    raise ValueError(f'checkpoint {directory} holds a {meta.get("model")!r} model with settings '
                     f'{meta.get("model_kwargs")}, but the config asks for {model_name!r} with {dict(model_kwargs)}; '
                     'make config.teacher.model/model_kwargs match the checkpoint')
  try:
    restored = mngr.restore(step, args=ocp.args.Composite(variables=ocp.args.StandardRestore(abstract_variables)))
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'checkpoint {directory} (step {step}) could not be restored as the configured '
                     f'{model_name!r} model: {e}') from e
  finally:
    mngr.close()
  return restored['variables'], meta


def _normalise(x):
  """JSON round trips turn tuples into lists; compare settings modulo that."""
  if isinstance(x, dict):
    return {k: _normalise(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_normalise(v) for v in x]
  return x
