"""Phases (the shared trainer): vmapped seeds, cached teacher logits, saved teachers, KD settings (with MNIST models)."""
import os
import re
import signal
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy.special import softmax

from conftest import load_config
from kd_jax import checkpoints
from kd_jax import run_settings
from kd_jax import sharding
from kd_jax import targets as targets_lib
from kd_jax import phases
from kd_jax import seed_grid
from kd_jax import training
from kd_jax.mnist import data as data_lib
from kd_jax.mnist import task as mnist_task
from kd_jax.mnist import models

IMAGE = jnp.zeros((1, 28, 28, 1))  # fixes the models' shapes


def _split(n=96, seed=0):
  rng = np.random.default_rng(seed)
  return data_lib.Split(rng.uniform(size=(n, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, n).astype(np.int32))


def _train(name, cfg, config, model, split, directory, seeds=(0,), stream=phases.TEACHER_STREAM, stacked=False,
           targets=targets_lib.GOLD_LABELS):
  phase = phases.Phase(name, cfg, model, split, str(directory), list(seeds), stream, stacked)
  return phases.train_model(phase, targets, phases.Job(config, sharding.data_mesh()))


def _sgd(config, model, role='student'):
  cfg = seed_grid.role_config(config, model, role)
  cfg.update(optimizer='sgd', learning_rate=0.05, num_epochs=2.0, batch_size=16)
  return cfg


@pytest.fixture(scope='module')
def stacked_teachers():
  config = load_config('grid_smoke')
  teacher = models.create_model('cnn', **config.models.cnn.model_kwargs)
  variables = jax.vmap(lambda k: training.init_variables(teacher, k, IMAGE))(jax.random.split(jax.random.PRNGKey(5), 2))
  return config, teacher, variables


def test_vmapped_instance_equals_the_single_run_of_its_seed(tmp_path, stacked_teachers):
  # SGD keeps rounding differences (vmapped vs plain kernels) at rounding size; Adam would amplify them
  # on weights with ~zero gradient (see test_training).
  config, teacher, teacher_variables = stacked_teachers
  student = models.create_model('mlp', **config.models.mlp.model_kwargs)
  split = _split()
  targets = targets_lib.Targets(teacher=targets_lib.Teacher(teacher, teacher_variables, None, instances=2))
  stacked = _train('vmapped', _sgd(config, 'mlp'), config, student, split, tmp_path / 'vmapped', seeds=[3, 4],
                   stream=phases.STUDENT_STREAM, stacked=True, targets=targets)
  single = _train('single', _sgd(config, 'mlp'), config, student, split, tmp_path / 'single', seeds=[4],
                  stream=phases.STUDENT_STREAM, targets=targets.instance(1))
  assert int(single.step) == 12 and list(np.asarray(stacked.step)) == [12, 12]
  chex.assert_trees_all_close(phases.instance(stacked.variables, 1), single.variables, rtol=1e-4, atol=1e-5)
  # The two instances really are different runs.
  assert not np.allclose(stacked.params['Dense_0']['kernel'][0], stacked.params['Dense_0']['kernel'][1])
  # A saved stack gives back the instance of the seed asked for.
  cfg = _sgd(config, 'mlp')
  restored, meta = phases.restore_variables(student, str(tmp_path / 'vmapped'), cfg, IMAGE, seed=4)
  assert meta['seeds'] == [3, 4] and meta['stacked']
  chex.assert_trees_all_equal(restored, jax.tree_util.tree_map(np.asarray, phases.instance(stacked.variables, 1)))
  with pytest.raises(ValueError, match=r'vmapped instances of seeds \[3, 4\], not seed 5'):
    phases.restore_variables(student, str(tmp_path / 'vmapped'), cfg, IMAGE, seed=5)


def test_cached_teacher_logits_give_the_same_student(tmp_path, stacked_teachers):
  config, teacher, teacher_variables = stacked_teachers
  student = models.create_model('mlp', **config.models.mlp.model_kwargs)
  split, cfg, config = _split(), _sgd(config, 'mlp'), ml_collections.ConfigDict(config.to_dict())
  teacher = targets_lib.Teacher(teacher, teacher_variables, mnist_task.teacher_predictor(sharding.data_mesh(), config),
                                instances=2)
  config.cache_teacher_logits = True
  cached = targets_lib.for_phase(config, cfg, teacher, split)
  chex.assert_shape(cached.logits, (2, len(split), 10))
  config.cache_teacher_logits = False
  in_step = targets_lib.for_phase(config, cfg, teacher, split)
  assert in_step.in_step and not in_step.cached
  common = dict(seeds=[0, 1], stream=phases.STUDENT_STREAM, stacked=True)
  in_step = _train('in_step', cfg, config, student, split, tmp_path / 'in_step', targets=in_step, **common)
  from_cache = _train('cached', cfg, config, student, split, tmp_path / 'cached', targets=cached, **common)
  chex.assert_trees_all_close(from_cache.variables, in_step.variables, rtol=1e-4, atol=1e-5)


def test_teacher_for_seed_trains_once_then_reads_saved_teachers_per_seed(tmp_path):
  config = load_config('grid_smoke')
  cfg = _sgd(config, 'mlp', 'teacher')
  model = models.create_model('mlp', **cfg.model_kwargs)
  split, job = _split(), phases.Job(config, sharding.data_mesh())
  phase = lambda seed, directory: phases.Phase('teacher', cfg, model, split, directory, [seed], phases.TEACHER_STREAM)
  trained = {seed: phases.teacher_for_seed(phase(seed, str(tmp_path / f'seed_{seed}')), job) for seed in (0, 1)}
  assert not np.allclose(trained[0][0]['params']['Dense_0']['kernel'], trained[1][0]['params']['Dense_0']['kernel'])
  cfg.checkpoint = str(tmp_path / 'seed_{seed}')
  for seed in (0, 1):
    variables, directory, meta = phases.teacher_for_seed(phase(seed, str(tmp_path / 'unused')), job)
    assert directory == str(tmp_path / f'seed_{seed}') and meta['seeds'] == [seed]
    chex.assert_trees_all_equal(variables, trained[seed][0])
  assert not (tmp_path / 'unused').exists()  # nothing was trained
  cfg.checkpoint = str(tmp_path / 'seed_{seed}')
  with pytest.raises(FileNotFoundError, match='seed_7 does not exist'):
    phases.teacher_for_seed(phase(7, ''), job)


@pytest.mark.parametrize('kd,student_loss,match', [
    ({}, 'hinge', "unknown loss 'hinge'"),
    ({'temperature': 0.0}, 'distillation', 'temperature must be a finite number > 0'),
    ({'teacher_mode': 'frozen'}, 'distillation', "unknown config.kd.teacher_mode 'frozen'"),
    ({'teacher_mode': 'train', 'cache': True}, 'distillation', 'cache_teacher_logits needs a deterministic teacher'),
    ({'targets': 'labels', 'cache': True}, 'distillation', "unknown config.kd.targets 'labels'"),
    ({'targets': 'shuffled_confidence'}, 'distillation',
     "targets='shuffled_confidence' is a control built from cached teacher logits"),
    ({'cache': 1, 'teacher_mode': 'train'}, 'distillation',  # 1 == True, but skipped its refusals
     'config.cache_teacher_logits must be one of False, True, got 1'),
    ({'cache': 'auto'}, 'distillation', "config.cache_teacher_logits must be one of False, True, got 'auto'"),
])
def test_bad_kd_settings(kd, student_loss, match):
  config = ml_collections.ConfigDict({'kd': dict(temperature=2.0, alpha=1.0, scale='hinton', teacher_mode='eval'),
                                      'cache_teacher_logits': kd.pop('cache', False)})
  config.kd.update(kd)
  with pytest.raises(ValueError, match=match):
    phases.check_kd_config(config, student_loss)


@pytest.mark.parametrize('loss', ['rkd', 'cka'])
def test_objectives_that_normalise_over_the_batch_refuse_a_batch_of_one(loss):
  # RKD's mean pairwise distance and CKA's centring are 0/0 on one example: it used to fail after the teacher trained.
  cfg = ml_collections.ConfigDict({'loss': loss, 'batch_size': 1})
  with pytest.raises(ValueError, match=rf"config.student.batch_size=1: the '{loss}' objective normalises over the "
                                       'batch and needs at least 2 examples'):
    phases.check_loss_batch(cfg, 'student')
  cfg.batch_size = 2
  phases.check_loss_batch(cfg, 'student')
  phases.check_loss_batch(ml_collections.ConfigDict({'loss': 'sp', 'batch_size': 1}), 'student')


def test_control_targets_shuffle_each_seeds_own_teacher_and_are_part_of_the_settings():
  config = ml_collections.ConfigDict({'kd': dict(temperature=1.0, alpha=1.0, scale='hinton', targets='teacher',
                                                 sp_weight=3000.0, shared_teacher=False),
                                      'compute_dtype': 'float32'})
  split = _split(n=40)
  teacher_logits = np.random.default_rng(3).normal(size=(2, 40, 10)).astype(np.float32)
  cfg = seed_grid.role_config(load_config('grid_smoke'), 'mlp', 'student')
  phase = lambda seeds: phases.Phase('s', cfg, None, split, '', seeds, 1, stacked=len(seeds) > 1)
  assert targets_lib.control_targets(phase([0, 1]), config, teacher_logits) is teacher_logits
  settings = lambda logits: run_settings.of_phase(phase([0, 1]), targets_lib.Targets(logits=logits), config, 5)
  teacher_settings = settings(teacher_logits)
  assert 'kd.targets' not in teacher_settings  # the default: checkpoints from before the field still resume
  # Only what the objective reads is part of the settings: another weight of another objective retrains nothing.
  config.kd.update(sp_weight=1e30, shared_teacher=True)
  assert settings(teacher_logits) == teacher_settings
  config.kd.temperature = 2.0
  assert settings(teacher_logits)['kd.temperature'] == 2.0 != teacher_settings['kd.temperature']
  config.kd.temperature = 1.0
  config.kd.targets = 'shuffled_confidence'
  control = targets_lib.control_targets(phase([0, 1]), config, teacher_logits)
  chex.assert_shape(control, (2, 40, 10))
  for k, seed in enumerate([0, 1]):
    chex.assert_trees_all_equal(control[k], targets_lib.control_targets(phase([seed]), config, teacher_logits[k]))
  gold = lambda logits: np.sort(softmax(logits.astype(np.float64), -1)[np.arange(40), split.labels])
  chex.assert_trees_all_close(gold(control[1]), gold(teacher_logits[1]), atol=1e-6)  # same confidences, moved
  assert not np.allclose(control[0], teacher_logits[0], atol=1e-3)
  control_settings = settings(control)
  assert control_settings['kd.targets'] == 'shuffled_confidence'
  assert control_settings['teacher (digest of its variables or cached logits)'] != teacher_settings[
      'teacher (digest of its variables or cached logits)']
  with pytest.raises(ValueError, match="s: config.kd.targets='shuffled_confidence' needs cached teacher logits"):
    targets_lib.control_targets(phase([0]), config, None)


def test_checkpoint_path_template():
  assert phases.checkpoint_path('/a/teacher/seed_{seed}', 3) == '/a/teacher/seed_3'
  assert phases.checkpoint_path('/a/teacher', 3) == '/a/teacher'


class _InterruptedSplit:
  """A training split whose batch for ``step`` is Ctrl-C (as if pressed while training)."""

  def __init__(self, split, interrupt_at):
    self.split, self.interrupt_at, self.calls = split, interrupt_at, 0

  def __len__(self):
    return len(self.split)

  def batch(self, idx):
    self.calls += 1
    if self.calls == self.interrupt_at + 3:  # the example input and the data digest come first; steps from 0
      raise KeyboardInterrupt
    return self.split.batch(idx)


def test_ctrl_c_says_where_to_resume_and_resuming_finishes_the_run(tmp_path):
  config = load_config('grid_smoke')
  config.checkpoint_every_steps = 4
  cfg = _sgd(config, 'mlp', 'teacher')
  model = models.create_model('mlp', **cfg.model_kwargs)
  split = _split()
  run = lambda data: _train('teacher', cfg, config, model, data, tmp_path / 'run')
  with pytest.raises(phases.TrainingInterrupted, match=r'teacher interrupted; the newest complete checkpoint is '
                                                        f'step 8 in {tmp_path}/run: run the same command again'):
    run(_InterruptedSplit(split, interrupt_at=10))
  resumed = run(split)
  unbroken = _train('teacher', cfg, config, model, split, tmp_path / 'unbroken')
  assert int(resumed.step) == 12
  chex.assert_trees_all_equal(resumed.variables, unbroken.variables)


class _SignalledSplit(_InterruptedSplit):
  """A training split that sends this process ``signals`` while the batch for step ``interrupt_at`` is read."""

  def __init__(self, split, interrupt_at, signals):
    super().__init__(split, interrupt_at)
    self.signals = signals

  def batch(self, idx):
    self.calls += 1
    if self.calls == self.interrupt_at + 3:
      for signum in self.signals:
        os.kill(os.getpid(), signum)
    return self.split.batch(idx)


@pytest.mark.parametrize('signum,what,exit_code', [(signal.SIGTERM, 'preempted (SIGTERM)', 75),
                                                   (signal.SIGINT, 'interrupted (Ctrl-C (SIGINT))', 130)])
def test_a_signal_saves_at_the_step_it_stops_at_and_resuming_finishes_the_run(tmp_path, signum, what, exit_code):
  config = load_config('grid_smoke')
  config.checkpoint_every_steps = 4
  cfg = _sgd(config, 'mlp', 'teacher')
  model = models.create_model('mlp', **cfg.model_kwargs)
  split = _split()
  run = lambda name, data: _train('teacher', cfg, config, model, data, tmp_path / name)
  # An interactive job's handlers (a background job of a shell starts with SIGINT ignored, and kd_jax leaves it so).
  outside = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
  signal.signal(signal.SIGINT, signal.default_int_handler)
  handlers = {s: signal.getsignal(s) for s in outside}
  try:
    with pytest.raises(phases.TrainingInterrupted, match=rf'teacher {re.escape(what)} at step 7; checkpoint saved '
                       f'in {tmp_path}/run: run the same command again') as stopped:
      run('run', _SignalledSplit(split, interrupt_at=6, signals=[signum]))  # the step in flight (7th) finishes
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # the run's handlers are gone again
  finally:
    for signum_, handler in outside.items():
      signal.signal(signum_, handler)
  assert stopped.value.exit_code == exit_code
  assert checkpoints.all_steps(str(tmp_path / 'run')) == [4, 7]  # saved where it stopped, not only at step 4
  chex.assert_trees_all_equal(run('run', split).variables, run('unbroken', split).variables)


def test_a_second_signal_ends_at_once_naming_the_newest_complete_checkpoint(tmp_path):
  script = tmp_path / 'twice.py'
  script.write_text(f"""import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as an interactive job has it, not SIG_IGN
sys.path.insert(0, {os.path.dirname(__file__)!r})
import test_phases as t
from conftest import load_config
from kd_jax import phases, sharding
from kd_jax.mnist import models
config = load_config('grid_smoke')
config.checkpoint_every_steps = 4
cfg = t._sgd(config, 'mlp', 'teacher')
split = t._SignalledSplit(t._split(), interrupt_at=6, signals=[signal.SIGINT, signal.SIGINT])
t._train('teacher', cfg, config, models.create_model('mlp', **cfg.model_kwargs), split, {str(tmp_path / 'run')!r})
""")
  result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
  assert result.returncode == 130
  assert result.stderr.strip().splitlines()[-1] == (
      f'kd_jax: teacher stopped at once; the newest complete checkpoint is step 4 in {tmp_path}/run')
  assert 'Traceback' not in result.stderr


def test_steps_on_the_device_stop_at_every_snapshot_and_checkpoint(tmp_path):
  config = load_config('grid_smoke')
  cfg = _sgd(config, 'mlp', 'teacher')  # 2 epochs of 6 steps
  model = models.create_model('mlp', **cfg.model_kwargs)
  split = _split()
  run = lambda name, **overrides: _train(
      'teacher', cfg, ml_collections.ConfigDict({**config.to_dict(), **overrides}), model, split, tmp_path / name)
  settings = dict(snapshots=True, snapshot_first_epoch=0.25, checkpoint_every_steps=5)
  on_host, on_device = run('host', steps_per_dispatch=0, **settings), run('device', steps_per_dispatch=7, **settings)
  chex.assert_trees_all_equal(on_device, on_host)
  for name in ('host', 'device'):
    assert checkpoints.all_steps(phases.snapshot_dir(str(tmp_path / name))) == [0, 2, 3, 6, 12]
    assert checkpoints.all_steps(str(tmp_path / name)) == [10, 12]  # max_to_keep=2 of the checkpoints 5, 10, 12
  snapshot = lambda name: phases.restore_variables(model, phases.snapshot_dir(str(tmp_path / name)), cfg, IMAGE,
                                                   seed=0, step=3)[0]
  chex.assert_trees_all_equal(snapshot('device'), snapshot('host'))


def test_snapshots_change_nothing_survive_resume_and_are_never_pruned(tmp_path):
  config = load_config('grid_smoke')
  cfg = _sgd(config, 'mlp', 'teacher')  # 2 epochs of 6 steps
  model = models.create_model('mlp', **cfg.model_kwargs)
  split = _split()
  run = lambda name, data, **overrides: _train(
      'teacher', cfg, ml_collections.ConfigDict({**config.to_dict(), **overrides}), model, data, tmp_path / name)
  plain = run('plain', split)
  snapshots = dict(snapshots=True, snapshot_first_epoch=0.25, checkpoint_every_steps=2)
  with pytest.raises(phases.TrainingInterrupted):
    run('snap', _InterruptedSplit(split, interrupt_at=5), **snapshots)
  resumed = run('snap', split, **snapshots)
  chex.assert_trees_all_equal(resumed.variables, plain.variables)  # snapshots are only read, never change a run
  assert phases.snapshot_steps(12, 6, 0.25) == [0, 2, 3, 6, 12]  # epochs 0, 1/4 (1.5 → 2), 1/2, 1, and the end
  snapshot_dir = phases.snapshot_dir(str(tmp_path / 'snap'))
  assert checkpoints.all_steps(snapshot_dir) == [0, 2, 3, 6, 12]  # max_to_keep=2 of the resume checkpoints: not here
  assert len(checkpoints.all_steps(str(tmp_path / 'snap'))) == 2
  final, meta = phases.restore_variables(model, snapshot_dir, cfg, IMAGE, seed=0, step=12)
  chex.assert_trees_all_equal(final, jax.tree_util.tree_map(np.asarray, plain.variables))
  assert meta['epoch'] == 2.0
  initial, _ = phases.restore_variables(model, snapshot_dir, cfg, IMAGE, seed=0, step=0)
  init_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(0), phases.TEACHER_STREAM))[0]
  expected = training.init_variables(model, init_key, IMAGE)  # what init_state does with the seed's key
  chex.assert_trees_all_equal(initial, jax.tree_util.tree_map(np.asarray, expected))


def test_checkpoints_that_recorded_kd_fields_the_objective_does_not_read_still_resume(tmp_path, monkeypatch):
  config = load_config('grid_smoke')
  cfg, model, split = _sgd(config, 'mlp'), models.create_model('mlp', **config.models.mlp.model_kwargs), _split()
  targets = targets_lib.Targets(logits=np.random.default_rng(0).normal(size=(len(split), 10)).astype(np.float32))
  run = lambda: _train('student', cfg, config, model, split, tmp_path, stream=phases.STUDENT_STREAM, targets=targets)
  real_settings, real_fit = run_settings.of_phase, training.fit
  # As kd_jax recorded them before Dec 6: every non-default config.kd field, read by the objective or not.
  monkeypatch.setattr(run_settings, 'of_phase', lambda *args: {**real_settings(*args), 'kd.sp_weight': 1e30})
  finished = run()
  monkeypatch.setattr(run_settings, 'of_phase', real_settings)
  starts = []
  monkeypatch.setattr(training, 'fit', lambda name, step, state, *args: starts.append(
      training.current_step(state)) or real_fit(name, step, state, *args))
  chex.assert_trees_all_equal(run().variables, jax.tree_util.tree_map(np.asarray, finished.variables))
  assert starts == [12]  # restored at its end, not refused or retrained
  config.kd.temperature = 2.0  # a field it reads still counts
  with pytest.raises(run_settings.SettingsMismatchError, match=r'kd.temperature: 5.0 → 2.0'):
    run()


@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')  # the swallowed exception itself
def test_a_sigterm_swallowed_by_a_callback_still_stops_the_job_at_the_next_phase(tmp_path, monkeypatch):
  # Outside training SIGTERM raises; raised inside a garbage-collection callback, Python swallows the exception
  # ("Exception ignored in …") and the job used to run on for minutes — under SLURM or a spot VM, to be killed unsaved.
  import gc  # pylint: disable=g-import-not-at-top
  from kd_jax import interrupts  # pylint: disable=g-import-not-at-top
  config = load_config('grid_smoke')
  cfg = _sgd(config, 'mlp', 'teacher')
  model, split = models.create_model('mlp', **cfg.model_kwargs), _split()
  previous = signal.getsignal(signal.SIGTERM)
  monkeypatch.setattr(interrupts, '_received_outside_training', None)
  interrupts.handle_sigterm()
  callback = lambda phase, info: os.kill(os.getpid(), signal.SIGTERM) if phase == 'start' else None
  gc.callbacks.append(callback)
  try:
    gc.collect()  # the signal arrives while the callback runs; its exception is swallowed there
  finally:
    gc.callbacks.remove(callback)
    signal.signal(signal.SIGTERM, previous)
  with pytest.raises(phases.TrainingInterrupted, match=r'teacher preempted \(SIGTERM\); no checkpoint was saved '
                                                        'yet') as stopped:
    _train('teacher', cfg, config, model, split, tmp_path / 'run')
  assert stopped.value.exit_code == 75 and checkpoints.all_steps(str(tmp_path / 'run')) == []
