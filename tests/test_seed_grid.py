import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from kd_jax import checkpoints
from kd_jax import phases
from kd_jax import seed_grid
from kd_jax import training
from kd_jax.mnist import data as data_lib
from kd_jax.mnist import models


def grid_smoke_config(data_dir='', **overrides):
  return load_config('grid_smoke', data_dir=data_dir, **overrides)


@pytest.fixture(scope='module')
def grid_report(tmp_path_factory, tiny_mnist_dir):
  workdir = str(tmp_path_factory.mktemp('grid'))
  # Seeds one after another: on CPU a vmapped CNN is slow (grouped convolutions); vmap is checked below.
  config = grid_smoke_config(tiny_mnist_dir, **{'data.num_test': 0,
                                                'seed_parallelism': 'sequential'})
  config.setups = ('cnn', 'mlp', 'cnn_to_mlp', 'mlp_to_mlp', 'cnn_to_cnn', 'mlp_to_cnn')
  return workdir, seed_grid.run(config, workdir)


def test_grid_report(grid_report):
  workdir, report = grid_report
  assert list(report['setups']) == ['cnn', 'mlp', 'cnn_to_mlp', 'mlp_to_mlp', 'cnn_to_cnn', 'mlp_to_cnn']
  assert not report['vmapped'] and report['seeds'] == [0, 1] and 'final checkpoint' in report['checkpoint_rule']
  for setup in report['setups'].values():
    assert len(setup['instances']) == 2
    accuracies = [inst['mnist_translate']['accuracy'] for inst in setup['instances']]
    summary = setup['summary']['mnist_translate']['accuracy']
    assert summary['n'] == 2
    np.testing.assert_allclose(summary['mean'], np.mean(accuracies))
    np.testing.assert_allclose(summary['std'], np.std(accuracies, ddof=1))
    bins = setup['instances'][0]['mnist']['reliability']
    assert sum(bins['count']) == 200
  assert report['setups']['cnn']['instances'][0] != report['setups']['cnn']['instances'][1]
  with open(os.path.join(workdir, 'grid.json')) as f:
    assert json.load(f)['setups']['cnn_to_mlp']['title'] == 'CNN→MLP'
  table = open(os.path.join(workdir, 'grid.md')).read()
  for title in ('CNN', 'MLP', 'CNN→MLP', 'MLP→MLP', 'CNN→CNN', 'MLP→CNN'):
    assert f'| {title} | 2 |' in table
  assert 'final checkpoint' in table and '±' in table
  # Each KD setup's gain over its student model's independent row, paired by seed.
  assert set(report['gain_over_independent']) == {'cnn_to_mlp', 'mlp_to_mlp', 'cnn_to_cnn', 'mlp_to_cnn'}
  paired = [d['mnist_translate']['accuracy'] - i['mnist_translate']['accuracy']
            for d, i in zip(report['setups']['cnn_to_mlp']['instances'], report['setups']['mlp']['instances'])]
  gain = report['gain_over_independent']['cnn_to_mlp']['mnist_translate']
  np.testing.assert_allclose([gain['mean'], gain['std']], [np.mean(paired), np.std(paired, ddof=1)])
  assert '| CNN→MLP − MLP | ' in table and '| MLP→CNN − CNN | ' in table
  for name in ('accuracy.png', 'reliability.png'):
    with open(os.path.join(workdir, name), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_a_rerun_with_fewer_seeds_or_setups_does_not_replace_a_finished_report(grid_report, tiny_mnist_dir):
  workdir, report = grid_report
  before = open(os.path.join(workdir, 'grid.json')).read()
  for overrides, left_out in (({'num_seeds': 1}, r'seeds \[1\]'), ({'setups': ('cnn', 'mlp')}, 'setups ')):
    config = grid_smoke_config(tiny_mnist_dir, **{'data.num_test': 0, 'seed_parallelism': 'sequential',
                                                  'setups': tuple(report['setups']), **overrides})
    with pytest.raises(ValueError, match=rf'grid.json reports {left_out}.* that this run .* leaves out: it would '
                                         'replace that report with a smaller one'):
      seed_grid.run(config, workdir)
  assert open(os.path.join(workdir, 'grid.json')).read() == before


def test_vmapped_grid_matches_seeds_run_one_after_another(grid_report, tiny_mnist_dir, tmp_path):
  _, sequential = grid_report
  config = grid_smoke_config(tiny_mnist_dir, **{'data.num_test': 0,
                                                'seed_parallelism': 'vmap'})
  config.setups = ('mlp',)
  vmapped = seed_grid.run(config, str(tmp_path))
  assert vmapped['vmapped']
  # A workdir is resumed with the seeds laid out as it was trained, never trained again beside itself.
  config.seed_parallelism = 'sequential'
  with pytest.raises(ValueError, match=r'mlp holds mlp trained with its seeds vmapped; this run would run them one '
                                       'after another.*--config.seed_parallelism=vmap'):
    seed_grid.run(config, str(tmp_path))
  assert not (tmp_path / 'mlp' / 'seed_0').exists()
  config.seed_parallelism, config.setups = 'vmap', tuple(sequential['setups'])
  with pytest.raises(ValueError, match=r'cnn holds cnn trained with its seeds one after another; this run would '
                                       'vmap them'):
    seed_grid.run(config, grid_report[0])
  for k in range(2):
    for test_set in data_lib.TEST_SETS:
      np.testing.assert_allclose(sequential['setups']['mlp']['instances'][k][test_set]['accuracy'],
                                 vmapped['setups']['mlp']['instances'][k][test_set]['accuracy'], atol=0.011)


def test_grid_distils_from_saved_teachers_one_per_seed(grid_report, tiny_mnist_dir, tmp_path):
  first_workdir, first = grid_report
  config = grid_smoke_config(tiny_mnist_dir, **{'data.num_test': 0, 'seed_parallelism': 'sequential',
                                                'models.cnn.checkpoint': os.path.join(first_workdir, 'cnn',
                                                                                      'seed_{seed}')})
  config.setups = ('cnn', 'cnn_to_mlp')
  report = seed_grid.run(config, str(tmp_path))
  assert not os.path.exists(tmp_path / 'cnn')  # no teacher was trained
  for setup in config.setups:  # the very same teachers, so the very same students
    assert report['setups'][setup]['instances'] == first['setups'][setup]['instances']


def test_one_teacher_for_every_seed_is_refused_unless_meant(grid_report, tiny_mnist_dir, tmp_path):
  first_workdir, first = grid_report
  one_teacher = os.path.join(first_workdir, 'cnn', 'seed_0')
  config = grid_smoke_config(tiny_mnist_dir, **{'data.num_test': 0, 'seed_parallelism': 'sequential',
                                                'models.cnn.checkpoint': one_teacher})  # students as grid_report's
  config.setups = ('cnn', 'cnn_to_mlp')
  with pytest.raises(ValueError, match=r'config.models.cnn.checkpoint=.*has no \{seed\}: all 2 seeds would distil '
                     'from this one teacher'):
    seed_grid.run(config, str(tmp_path / 'refused'))
  assert not os.path.exists(tmp_path / 'refused')
  config.kd.shared_teacher = True
  report = seed_grid.run(config, str(tmp_path / 'shared'))
  assert report['shared_teachers'] == ['cnn']
  assert report['setups']['cnn']['instances'] == first['setups']['cnn']['instances'][:1]  # one model, one row
  assert report['setups']['cnn']['summary']['mnist']['accuracy']['n'] == 1
  assert len(report['setups']['cnn_to_mlp']['instances']) == 2
  assert report['setups']['cnn_to_mlp']['instances'][0] == first['setups']['cnn_to_mlp']['instances'][0]
  table = (tmp_path / 'shared' / 'grid.md').read_text()
  assert '**One teacher for all seeds**: CNN (config.kd.shared_teacher=True' in table
  cnn_row = next(line for line in table.splitlines() if line.startswith('| CNN | 1 |'))
  assert '±' not in cnn_row  # no spread is shown for one model
  config.setups = ('cnn_to_mlp',)  # the shared teacher is no row of this grid: its students' report still says so
  seed_grid.run(config, str(tmp_path / 'students_only'))
  assert ('**One teacher for all seeds**: CNN (config.kd.shared_teacher=True'
          in (tmp_path / 'students_only' / 'grid.md').read_text())


def _paired_translate_gain(report, distilled: str, independent: str) -> float:
  """The mean over seeds of each seed's MNIST-Translated accuracy of ``distilled`` minus that of ``independent``."""
  setups = report['setups']
  return float(np.mean([d['mnist_translate']['accuracy'] - i['mnist_translate']['accuracy']
                        for d, i in zip(setups[distilled]['instances'], setups[independent]['instances'])]))


def test_students_at_several_budgets(tiny_mnist_dir, tmp_path):
  config = grid_smoke_config(tiny_mnist_dir, **{'data.num_test': 0, 'seed_parallelism': 'sequential',
                                                'student_epochs': (1, 2), 'setups': ('cnn', 'mlp', 'cnn_to_mlp')})
  sweep = seed_grid.run(config, str(tmp_path))
  grids = {e: json.load(open(tmp_path / f'student_epochs_{e}' / 'grid.json')) for e in ('1', '2')}
  assert list(sweep['student_epochs']) == ['1', '2']
  for epochs, report in grids.items():  # the student model, as a student and independent, at matched epochs
    assert report['config']['models']['mlp']['num_epochs'] == float(epochs)
    assert report['config']['models']['cnn']['num_epochs'] == config.models.cnn.num_epochs
  # The CNN (only ever a teacher) is trained once and reused: the same CNN rows, no second CNN directory.
  assert not os.path.exists(tmp_path / 'student_epochs_2' / 'cnn')
  assert grids['2']['config']['models']['cnn']['checkpoint'] == str(tmp_path / 'student_epochs_1' / 'cnn' /
                                                                      'seed_{seed}')
  assert grids['1']['setups']['cnn']['instances'] == grids['2']['setups']['cnn']['instances']
  assert grids['1']['setups']['mlp']['instances'] != grids['2']['setups']['mlp']['instances']
  # Gains are paired by seed: the mean of each seed's CNN→MLP − MLP.
  for epochs, report in grids.items():
    gain = sweep['student_epochs'][epochs]['gain_over_independent']['cnn_to_mlp']['mnist_translate']
    assert gain['mean'] == pytest.approx(_paired_translate_gain(report, 'cnn_to_mlp', 'mlp')) and gain['n'] == 2
  assert '**MNIST-Translated**' in open(tmp_path / 'student_epochs.md').read()
  assert os.path.getsize(tmp_path / 'student_epochs.png') > 10_000


def test_ablation_one_grid_per_factor_teachers_trained_once_per_setting(tiny_mnist_dir, tmp_path, monkeypatch):
  config = grid_smoke_config(tiny_mnist_dir, **{'data.num_test': 0, 'seed_parallelism': 'sequential',
                                                'setups': ('mlp', 'mlp_to_mlp'), 'models.mlp.num_epochs': 1.0})
  config.factors = (('base', {}), ('softer', {'kd': {'temperature': 2.0}}),
                    ('mlp_l1', {'models': {'mlp': {'l1': 1e-2}}}))
  ablation = seed_grid.run(config, str(tmp_path))
  assert list(ablation['student_epochs']) == ['base', 'softer', 'mlp_l1']  # the order given, not sorted
  grids = {f: json.load(open(tmp_path / f / 'grid.json')) for f in ('base', 'softer', 'mlp_l1')}
  assert grids['softer']['config']['kd']['temperature'] == 2.0 and grids['base']['config']['kd']['temperature'] == 5
  assert grids['mlp_l1']['config']['models']['mlp']['l1'] == 1e-2
  # 'softer' changes only the students: its teachers are base's, restored, not trained again.
  assert not os.path.exists(tmp_path / 'softer' / 'mlp')
  assert grids['softer']['config']['models']['mlp']['checkpoint'] == str(tmp_path / 'base' / 'mlp' / 'seed_{seed}')
  assert grids['softer']['setups']['mlp']['instances'] == grids['base']['setups']['mlp']['instances']
  assert grids['softer']['setups']['mlp_to_mlp']['instances'] != grids['base']['setups']['mlp_to_mlp']['instances']
  # 'mlp_l1' changes the teacher's settings: trained anew.
  assert os.path.exists(tmp_path / 'mlp_l1' / 'mlp' / 'seed_0')
  assert grids['mlp_l1']['setups']['mlp']['instances'] != grids['base']['setups']['mlp']['instances']
  for factor, report in grids.items():
    gain = ablation['student_epochs'][factor]['gain_over_independent']['mlp_to_mlp']['mnist_translate']
    assert gain['mean'] == pytest.approx(_paired_translate_gain(report, 'mlp_to_mlp', 'mlp'))
    # Also against the first factor's independent MLP (one baseline for all; mlp_l1's own MLP changed with it).
    students = [i['mnist_translate']['accuracy'] for i in report['setups']['mlp_to_mlp']['instances']]
    baseline = [i['mnist_translate']['accuracy'] for i in grids['base']['setups']['mlp']['instances']]
    first_gain = ablation['student_epochs'][factor]['gain_over_first_factor_independent']['mlp_to_mlp']
    assert first_gain['mnist_translate']['mean'] == pytest.approx(np.mean(np.subtract(students, baseline)))
  own = ablation['student_epochs']['mlp_l1']['gain_over_independent']['mlp_to_mlp']['mnist_translate']['mean']
  assert first_gain['mnist_translate']['mean'] != pytest.approx(own)  # mlp_l1's own MLP is another baseline
  table = open(tmp_path / 'ablation.md').read()
  assert '| softer | kd.temperature = 2.0 |' in table and '| base | (none) |' in table
  assert "MLP→MLP − base's MLP on MNIST-Translated (points)" in table and '![gains](ablation.png)' in table
  assert os.path.getsize(tmp_path / 'ablation.png') > 10_000
  assert 'In progress' not in table and ablation['factors_to_run'] == []

  # Run again (everything finished: each factor is re-evaluated): the report never lists fewer finished factors than
  # there are while the run passes them, so an analysis reading it meanwhile sees them all.
  seen, run_grid = [], seed_grid.run_grid
  def run_grid_noting_report(sub, directory):
    seen.append(list(json.load(open(tmp_path / 'ablation.json'))['student_epochs']))
    return run_grid(sub, directory)
  monkeypatch.setattr(seed_grid, 'run_grid', run_grid_noting_report)
  assert seed_grid.run(config, str(tmp_path))['student_epochs'].keys() == ablation['student_epochs'].keys()
  assert seen == [['base', 'softer', 'mlp_l1']] * 3


@pytest.mark.parametrize('factors, match', [
    ((('a', {'kd': {'temprature': 2.0}}),), r"factor 'a' changes config.kd.temprature, which the grid config"),
    ((('a', {}), ('b', {'models': {'mlp': {'learning_rate': -1.0}}})), r'config.models.mlp.learning_rate must be'),
    ((('a', {}), ('a', {})), 'names a factor twice'),
    # A factor's name is its directory: '..' wrote a grid into the workdir's parent (a finished job's), past its checks.
    ((('..', {}),), r"factor name '..' must be a plain directory name"),
    ((('/tmp/elsewhere', {}),), r"factor name '/tmp/elsewhere' must be a plain directory name"),
    ((('a/b', {}),), r"factor name 'a/b' must be a plain directory name"),
    # A restored teacher never trained with the change: the factor would report it without it.
    ((('a', {}), ('b', {'models': {'cnn': {'augment': 'translate'}}})),
     r"factor 'b' changes config.models.cnn.augment, but config.models.cnn.checkpoint restores saved cnn instances"),
])
def test_bad_ablation_factors_fail_before_any_training(tiny_mnist_dir, tmp_path, tmp_path_factory, factors, match):
  saved = tmp_path_factory.mktemp('saved')
  for seed in (0, 1):
    (saved / f'seed_{seed}').mkdir()
  config = grid_smoke_config(tiny_mnist_dir, **{'setups': ('cnn', 'mlp', 'cnn_to_mlp'),
                                                'models.cnn.checkpoint': str(saved / 'seed_{seed}')})
  config.factors = factors
  with pytest.raises(ValueError, match=match):
    seed_grid.run(config, str(tmp_path))
  assert not os.listdir(tmp_path)


def test_a_missing_saved_model_is_refused_before_any_training(tiny_mnist_dir, tmp_path):
  config = grid_smoke_config(tiny_mnist_dir, **{'setups': ('mlp', 'cnn_to_mlp'),  # the MLP would train first
                                                'models.cnn.checkpoint': str(tmp_path / 'nowhere' / 'seed_{seed}')})
  with pytest.raises(FileNotFoundError, match=r"config.models.cnn.checkpoint='.*nowhere/seed_\{seed\}': .*nowhere/"
                                              r'seed_0 does not exist'):
    seed_grid.run(config, str(tmp_path / 'grid'))
  assert not (tmp_path / 'grid').exists()


def _saved_online_students(directory):
  """The stacked student variables an online grid saved in ``directory``."""
  meta = checkpoints.read_meta(directory)
  model = models.create_model(meta['model'], **meta['model_kwargs'])
  abstract = jax.eval_shape(jax.vmap(lambda key: model.init(key, jnp.zeros((1, 28, 28, 1)))),
                            jax.random.split(jax.random.PRNGKey(0), len(meta['seeds'])))
  return checkpoints.restore_model(directory, meta['model'], meta['model_kwargs'], abstract)[0]


def report_steps(workdir):
  """The step of the newest checkpoint of the online pair in ``workdir``."""
  return checkpoints.all_steps(str(workdir / 'mlp_to_mlp_online'))[-1]


def test_online_grid(tiny_mnist_dir, tmp_path, monkeypatch):
  # MLP→MLP: XLA:CPU runs a vmapped CNN inside a scan at ~10 s a step (grouped convolutions); the online machinery
  # is the same for every pair of models.
  run = lambda steps_per_dispatch: seed_grid.run(grid_smoke_config(tiny_mnist_dir, **{
      'mode': 'online', 'data.num_test': 0, 'setups': ('mlp_to_mlp',), 'seed_parallelism': 'vmap',
      'steps_per_dispatch': steps_per_dispatch}), str(tmp_path / str(steps_per_dispatch)))
  report = run(0)
  assert report['mode'] == 'online' and len(report['setups']['mlp_to_mlp']['instances']) == 2
  assert os.listdir(tmp_path / '0' / 'mlp_to_mlp_online')
  assert not os.path.exists(tmp_path / '0' / 'mlp')  # no separately trained teacher
  # Teacher and student pairs, vmapped over seeds, 4 steps per device program (dividing the 8-step log interval:
  # one program to compile, ~10 s each here): the same students, to rounding (XLA may compile a step inside the scan
  # differently).
  assert len(run(4)['setups']['mlp_to_mlp']['instances']) == 2
  chex.assert_trees_all_close(*(_saved_online_students(str(tmp_path / k / 'mlp_to_mlp_online')) for k in ('4', '0')),
                              rtol=1e-5, atol=1e-6)
  # Online KD checkpoints like offline KD: stopped right after its first checkpoint, the same command resumes the
  # (teacher, student) pairs there and ends at the unbroken run's numbers; run again, it trains nothing.
  stopped = lambda: grid_smoke_config(tiny_mnist_dir, **{
      'mode': 'online', 'data.num_test': 0, 'setups': ('mlp_to_mlp',), 'seed_parallelism': 'vmap',
      'steps_per_dispatch': 0, 'checkpoint_every_steps': 8})
  real_save, real_fit = checkpoints.save, training.fit

  def save_then_stop(mngr, state, meta):
    real_save(mngr, state, meta)
    raise KeyboardInterrupt  # as Ctrl-C right after the save

  monkeypatch.setattr(checkpoints, 'save', save_then_stop)
  with pytest.raises(phases.TrainingInterrupted, match='mlp_to_mlp_online interrupted; the newest complete '
                                                        'checkpoint is step 8'):
    seed_grid.run(stopped(), str(tmp_path / 'stopped'))
  monkeypatch.setattr(checkpoints, 'save', real_save)
  starts = []
  monkeypatch.setattr(training, 'fit', lambda name, step, state, *args: starts.append(
      (name, training.current_step(state))) or real_fit(name, step, state, *args))
  resumed = seed_grid.run(stopped(), str(tmp_path / 'stopped'))
  assert starts == [('mlp_to_mlp_online', 8)]
  assert resumed['setups']['mlp_to_mlp']['instances'] == report['setups']['mlp_to_mlp']['instances']
  seed_grid.run(stopped(), str(tmp_path / 'stopped'))
  assert starts[1:] == [('mlp_to_mlp_online', report_steps(tmp_path / 'stopped'))]  # at its end: nothing trains


@pytest.mark.parametrize('overrides,match', [
    ({'mode': 'distant'}, "unknown grid mode 'distant'"),
    ({'num_seeds': 0}, 'num_seeds must be ≥ 1'),
    ({'kd.teacher_mode': 'train'}, 'cache_teacher_logits needs a deterministic teacher'),
    ({'seed_parallelism': 'threads'}, "unknown config.seed_parallelism 'threads'"),
    ({'student_epochs': (10, -1)}, 'student_epochs must hold positive numbers of epochs'),
    ({'student_epochs': (10,), 'mode': 'online'}, "student_epochs needs config.mode='offline'"),
    ({'kd.alpha': -1.0}, r'\[0, 1\]'),
    ({'models.cnn.batch_size': 0}, r'config.models.cnn.batch_size must be an integer ≥ 1'),
    # Used to fail after training, in the plot (ZeroDivisionError), or silently run another setup.
    ({'setups': ()}, r'config.setups must name each setup once, and at least one, got \(\)'),
    ({'setups': ('cnn', 'cnn')}, 'must name each setup once'),
    ({'setups': ('cnn', 'mlp'), 'student_epochs': (10,)}, 'has no <teacher>_to_<student> setup'),
    ({'setups': ('cnn', 'mlp'), 'factors': (('a', {}),)}, "config.factors: an ablation reports each KD setup's gain"),
    # Used to crash after the first factor, plotting no gains (ZeroDivisionError).
    ({'setups': ('cnn', 'cnn_to_mlp'), 'factors': (('a', {}),)}, 'whose control is a setup too'),
    ({'setups': ('_to_mlp',)}, r"grid setup '_to_mlp' is neither a model nor <teacher>_to_<student>"),
    ({'setups': ('cnn_to_',)}, r"grid setup 'cnn_to_' is neither a model nor <teacher>_to_<student>"),
    ({'teacher_ensemble': 'votes'}, r"config.teacher_ensemble must be '' \(each student's own teacher\) or one of "
                                    "logits, probabilities, got 'votes'"),
    ({'teacher_ensemble': 'logits', 'num_seeds': 1}, r'averages the teachers of all seeds: it needs config.num_seeds'),
    ({'teacher_ensemble': 'logits', 'mode': 'online'}, r"teacher_ensemble='logits' needs config.mode='offline'"),
    ({'teacher_ensemble': 'probabilities', 'student_loss': 'rkd', 'cache_teacher_logits': False},
     r"gives logits, not features: config.student_loss='rkd' reads the teacher's features"),
])
def test_bad_grid_config(tmp_path, overrides, match):
  with pytest.raises(ValueError, match=match):
    seed_grid.run(grid_smoke_config(**overrides), str(tmp_path))


def test_unknown_model_in_a_setup(tmp_path):
  config = grid_smoke_config()
  config.setups = ('cnn_to_vit',)
  with pytest.raises(ValueError, match="unknown model 'vit' in grid setup 'cnn_to_vit'"):
    seed_grid.run(config, str(tmp_path))


def test_teacher_agreement_pairs_each_student_with_its_own_teacher_or_the_one_for_all():
  def logits_predicting(classes):  # one test set, one row a prediction
    return {'mnist': np.eye(3)[np.asarray(classes)]}

  students = [logits_predicting([0, 1, 2, 2]), logits_predicting([1, 1, 1, 1])]
  argmax = lambda logits: logits.argmax(-1)
  own = seed_grid.teacher_agreement(students, [logits_predicting([0, 1, 2, 0]), logits_predicting([1, 0, 0, 0])],
                                    argmax)
  assert own == [{'mnist': 0.75}, {'mnist': 0.25}]  # instance k with teacher k
  # one teacher (shared, an ensemble)
  shared = seed_grid.teacher_agreement(students, [logits_predicting([0, 1, 1, 1])], argmax)
  assert shared == [{'mnist': 0.5}, {'mnist': 0.75}]


def test_a_report_row_names_its_objective_and_the_views_it_trained_on():
  config = load_config('grid_smoke', **{'student_loss': 'dist', 'cache_teacher_logits': False,
                                        'student_overrides': {'augment': 'crop,mixup'}, 'models.mlp.augment': 'crop'})
  assert [seed_grid.row_title(config, setup) for setup in config.setups] == [
      'CNN', 'MLP (views: crop)', 'CNN→MLP (dist, views: crop,mixup)']
  plain = load_config('grid_smoke')
  assert [seed_grid.row_title(plain, setup) for setup in plain.setups] == ['CNN', 'MLP', 'CNN→MLP']


def test_an_ablation_factor_that_changes_the_data_retrains_the_teachers(monkeypatch):
  config = grid_smoke_config(setups=('cnn', 'mlp', 'cnn_to_mlp'))
  config.factors = (('base', {}), ('softer', {'kd': {'temperature': 2.0}}), ('fewer', {'data': {'num_train': 256}}))
  restored = {}
  def fake_grid(sub, directory):
    restored[os.path.basename(directory)] = {name: sub.models[name].checkpoint for name in ('cnn', 'mlp')}
    return {}
  monkeypatch.setattr(seed_grid, 'run_grid', fake_grid)
  monkeypatch.setattr(seed_grid.report, 'student_epochs_summary', lambda grids: {'student_epochs': {g: {} for g in grids}})
  monkeypatch.setattr(seed_grid.report, 'gains_over_independent', lambda grid, first: {})
  monkeypatch.setattr(seed_grid.report, 'write_ablation_report', lambda ablation, workdir: None)
  seed_grid.run_factors(config, seed_grid.factor_configs(config), '/tmp/ablation')
  assert restored['base'] == {'cnn': '', 'mlp': ''}
  assert restored['softer'] == {name: f'/tmp/ablation/base/{name}/seed_{{seed}}' for name in ('cnn', 'mlp')}
  assert restored['fewer'] == {'cnn': '', 'mlp': ''}  # trained on other data: not base's models
