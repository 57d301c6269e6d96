import os
import shutil

import chex
import jax
import jax.numpy as jnp
import ml_collections
import pytest

from kd_jax import checkpoints
from kd_jax import training
from kd_jax.mnist import models

IMAGE = jnp.zeros((1, 28, 28, 1))  # fixes the models' shapes
SMALL_CNN = dict(filters=(8, 8, 16), maxout_units=(8, 8, 4))
OPT = ml_collections.ConfigDict(dict(optimizer='adam', learning_rate=1e-3, schedule='constant', clip_norm=1.0))


def _saved_teacher(directory, step=3, extra_steps=()):
  model = models.create_model('cnn', **SMALL_CNN)
  tx = training.make_optimizer(OPT, 10)
  state = training.init_state(model, tx, jax.random.PRNGKey(0), IMAGE)
  # Make the BatchNorm statistics non-trivial so that restoring them is checked too.
  _, updates = model.apply(state.variables, jax.random.uniform(jax.random.PRNGKey(1), (4, 28, 28, 1)), train=True,
                           rngs={'dropout': jax.random.PRNGKey(2)}, mutable=['batch_stats'])
  state = state.replace(step=jnp.asarray(step, jnp.int32), batch_stats=updates['batch_stats'])
  mngr = checkpoints.manager(str(directory), max_to_keep=5)
  checkpoints.save(mngr, state, {'model': 'cnn', 'model_kwargs': SMALL_CNN})
  for later in extra_steps:  # later steps with other weights
    checkpoints.save(mngr, state.replace(step=jnp.asarray(later, jnp.int32),
                                         params=jax.tree_util.tree_map(lambda p: p + later, state.params)),
                     {'model': 'cnn', 'model_kwargs': SMALL_CNN})
  mngr.close()
  return model, state


def _abstract(model):
  return jax.eval_shape(lambda: training.init_variables(model, jax.random.PRNGKey(0), IMAGE))


def test_teacher_round_trip_gives_identical_logits(tmp_path):
  model, state = _saved_teacher(tmp_path / 'teacher')
  variables, meta = checkpoints.restore_model(str(tmp_path / 'teacher'), 'cnn', SMALL_CNN, _abstract(model))
  assert meta['step'] == 3 and meta['model'] == 'cnn'
  x = jax.random.uniform(jax.random.PRNGKey(3), (5, 28, 28, 1))
  chex.assert_trees_all_equal(model.apply(variables, x), model.apply(state.variables, x))


def test_full_state_round_trip(tmp_path):
  model, state = _saved_teacher(tmp_path / 'teacher')
  mngr = checkpoints.manager(str(tmp_path / 'teacher'))
  fresh = training.init_state(model, training.make_optimizer(OPT, 10), jax.random.PRNGKey(9), IMAGE)
  restored, meta = checkpoints.restore_latest(mngr, jax.eval_shape(lambda: fresh))
  chex.assert_trees_all_equal(restored, state)
  assert meta['step'] == 3
  assert checkpoints.restore_latest(checkpoints.manager(str(tmp_path / 'empty')), fresh) == (None, None)


def test_missing_or_empty_checkpoint_is_an_error(tmp_path):
  model = models.create_model('cnn', **SMALL_CNN)
  with pytest.raises(FileNotFoundError, match='does not exist; point the checkpoint setting at the saved model'):
    checkpoints.restore_model(str(tmp_path / 'missing'), 'cnn', SMALL_CNN, _abstract(model))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(FileNotFoundError, match='no Orbax checkpoint steps'):
    checkpoints.restore_model(str(tmp_path / 'empty'), 'cnn', SMALL_CNN, _abstract(model))


def test_unreadable_checkpoint_is_an_error(tmp_path):
  model = models.create_model('cnn', **SMALL_CNN)
  (tmp_path / 'junk' / '7').mkdir(parents=True)
  (tmp_path / 'junk' / '7' / 'state').write_text('not a checkpoint')
  with pytest.raises(checkpoints.CheckpointDamagedError,
                     match='is damaged: no step can be read.*metadata is unreadable'):
    checkpoints.restore_model(str(tmp_path / 'junk'), 'cnn', SMALL_CNN, _abstract(model))


def test_checkpoint_of_another_model_is_an_error(tmp_path):
  _saved_teacher(tmp_path / 'teacher')
  mlp = models.create_model('mlp')
  with pytest.raises(ValueError, match="holds a 'cnn' model.*asks for 'mlp'"):
    checkpoints.restore_model(str(tmp_path / 'teacher'), 'mlp', {}, _abstract(mlp))
  wider = dict(filters=(16, 8, 16), maxout_units=(16, 8, 4))
  with pytest.raises(ValueError, match='restore it as the model it is'):
    checkpoints.restore_model(str(tmp_path / 'teacher'), 'cnn', wider,
                              _abstract(models.create_model('cnn', **wider)))


def _damage(step_dir, item='state'):
  """Truncates every data file of one item of a saved step, as a full disk or a killed copy would."""
  files = [p for p in (step_dir / item).rglob('*') if p.is_file() and p.parent.name == 'd']
  assert files
  for path in files:
    with open(path, 'r+b') as f:
      f.truncate(10)


def test_a_damaged_newest_step_falls_back_to_the_previous_one(tmp_path, caplog):
  model, state = _saved_teacher(tmp_path / 'run', extra_steps=(6,))
  _damage(tmp_path / 'run' / '6')
  fresh = training.init_state(model, training.make_optimizer(OPT, 10), jax.random.PRNGKey(9), IMAGE)
  restored, meta = checkpoints.restore_latest(checkpoints.manager(str(tmp_path / 'run')), jax.eval_shape(lambda: fresh))
  assert meta['step'] == 3
  chex.assert_trees_all_equal(restored, state)
  # kd_jax's own warning: short, naming the step and file (asyncio may also log Orbax's unretrieved read errors,
  # in full, whenever their tasks are collected — not ours to shorten).
  ours = '\n'.join(r.getMessage() for r in caplog.records
                   if r.pathname.endswith(os.path.join('kd_jax', 'checkpoints.py')))
  assert 'step 6: damaged file' in ours and str(tmp_path / 'run' / '6' / 'state') in ours
  assert 'tensorstore_spec' not in ours
  # The damaged step is set aside, so that training can write step 6 again.
  assert (tmp_path / 'run' / '6.damaged').is_dir() and not (tmp_path / 'run' / '6').exists()
  # Written again and damaged again (used to fail: '6.damaged' already exists): both copies are kept.
  mngr = checkpoints.manager(str(tmp_path / 'run'), max_to_keep=5)
  checkpoints.save(mngr, state.replace(step=jnp.asarray(6, jnp.int32)), {'model': 'cnn', 'model_kwargs': SMALL_CNN})
  mngr.close()
  _damage(tmp_path / 'run' / '6')
  restored, meta = checkpoints.restore_latest(checkpoints.manager(str(tmp_path / 'run')), jax.eval_shape(lambda: fresh))
  assert meta['step'] == 3 and (tmp_path / 'run' / '6.damaged.2').is_dir() and (tmp_path / 'run' / '6.damaged').is_dir()


def test_a_deleted_manifest_or_metadata_falls_back_too(tmp_path):
  model, state = _saved_teacher(tmp_path / 'run', extra_steps=(6, 9))
  (tmp_path / 'run' / '9' / 'state' / 'manifest.ocdbt').unlink()
  (tmp_path / 'run' / '6' / 'meta' / 'metadata').unlink()
  fresh = training.init_state(model, training.make_optimizer(OPT, 10), jax.random.PRNGKey(9), IMAGE)
  restored, meta = checkpoints.restore_latest(checkpoints.manager(str(tmp_path / 'run')), jax.eval_shape(lambda: fresh))
  assert meta['step'] == 3
  chex.assert_trees_all_equal(restored, state)
  assert sorted(p.name for p in (tmp_path / 'run').iterdir()) == ['3', '6.damaged', '9.damaged']


def test_a_damaged_teacher_step_falls_back_and_total_damage_is_named(tmp_path):
  model, state = _saved_teacher(tmp_path / 'teacher', extra_steps=(6,))
  _damage(tmp_path / 'teacher' / '6', 'variables')
  variables, meta = checkpoints.restore_model(str(tmp_path / 'teacher'), 'cnn', SMALL_CNN, _abstract(model))
  assert meta['step'] == 3
  chex.assert_trees_all_equal(variables, state.variables)
  assert (tmp_path / 'teacher' / '6').is_dir()  # a teacher given to read is never modified
  _damage(tmp_path / 'teacher' / '3', 'variables')
  with pytest.raises(checkpoints.CheckpointDamagedError, match='is damaged: no step can be read') as error:
    checkpoints.restore_model(str(tmp_path / 'teacher'), 'cnn', SMALL_CNN, _abstract(model))
  assert 'tensorstore_spec' not in str(error.value) and '\n' not in str(error.value)


def _replace_arrays(step_dir, item, other_step_dir):
  """Puts another step's files of ``item`` in place of this step's: a readable item of the same structure and size
  whose values are not the ones this step saved (as bit rot or a bad copy that every read accepts would be)."""
  shutil.rmtree(step_dir / item)
  shutil.copytree(other_step_dir / item, step_dir / item)


def test_arrays_changed_after_saving_are_damage_caught_by_the_digest(tmp_path, caplog):
  model, state = _saved_teacher(tmp_path / 'run', extra_steps=(6,))
  _replace_arrays(tmp_path / 'run' / '6', 'state', tmp_path / 'run' / '3')
  fresh = training.init_state(model, training.make_optimizer(OPT, 10), jax.random.PRNGKey(9), IMAGE)
  restored, meta = checkpoints.restore_latest(checkpoints.manager(str(tmp_path / 'run')), jax.eval_shape(lambda: fresh))
  assert meta['step'] == 3  # resuming falls back to the intact step, sets the changed one aside and says why
  chex.assert_trees_all_equal(restored, state)
  assert (tmp_path / 'run' / '6.damaged').is_dir()
  assert any('step 6: its state arrays do not match the digest' in r.getMessage() for r in caplog.records)
  # A teacher whose newest step fails its digest is an error, not an older teacher.
  _saved_teacher(tmp_path / 'teacher', extra_steps=(6,))
  _replace_arrays(tmp_path / 'teacher' / '6', 'variables', tmp_path / 'teacher' / '3')
  with pytest.raises(checkpoints.CheckpointDamagedError, match=r'teacher/6 is damaged: its variables arrays do not '
                     'match the digest saved with them') as error:
    checkpoints.restore_model(str(tmp_path / 'teacher'), 'cnn', SMALL_CNN, _abstract(model))
  assert '\n' not in str(error.value)


def test_a_checkpoint_of_another_parameter_structure_is_not_called_damage(tmp_path):
  _saved_teacher(tmp_path / 'teacher')  # SMALL_CNN: group size 1 in the first two layers, so no bias there
  abstract = _abstract(models.create_model('cnn', **SMALL_CNN))
  abstract['params']['Conv_0'] = {**abstract['params']['Conv_0'],
                                  'bias': jax.ShapeDtypeStruct((8,), jnp.float32)}  # as an older CNN had
  with pytest.raises(checkpoints.CheckpointStructureError, match='another structure than the configured model'):
    checkpoints.restore_model(str(tmp_path / 'teacher'), 'cnn', SMALL_CNN, abstract)
