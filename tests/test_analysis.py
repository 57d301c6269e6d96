"""The analyses on finished smoke runs: a vmapped grid with snapshots, and SVA (one code path)."""
import json
import os
import shutil

import chex
import ml_collections
import numpy as np
import pytest

from conftest import load_config
from kd_jax import analysis
from kd_jax import analyze
from kd_jax import checkpoints
from kd_jax import main
from kd_jax import seed_grid
from kd_jax.mnist import task as mnist_task


def analyze_config(workdirs, **overrides):
  return load_config('analyze', **{'workdirs': workdirs, 'num_examples': 200, **overrides})


@pytest.fixture(scope='module')
def grid_run(tmp_path_factory, tiny_mnist_dir):
  workdir = str(tmp_path_factory.mktemp('grid'))
  config = load_config('grid_smoke', data_dir=tiny_mnist_dir, **{
      'data.num_test': 0, 'seed_parallelism': 'vmap', 'snapshots': True, 'snapshot_first_epoch': 0.25,
      'models.cnn.num_epochs': 1.0, 'models.mlp.num_epochs': 1.0})
  seed_grid.run(config, workdir)
  return workdir


@pytest.fixture(scope='module')
def grid_analysis(grid_run, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('analysis'))
  return out, analyze.run(analyze_config(grid_run), out)


def test_runs_are_found_and_paired_with_teachers_and_independents(grid_run):
  runs = analysis.find_runs(grid_run)
  assert [r.label for r in runs] == ['cnn/seed_0', 'cnn/seed_1', 'cnn_to_mlp/seed_0', 'cnn_to_mlp/seed_1',
                                     'mlp/seed_0', 'mlp/seed_1']
  student = runs[3]
  assert student.distilled and not runs[0].distilled
  assert analysis.teacher_of(student, runs).label == 'cnn/seed_1'
  assert analysis.independent_of(student, runs).label == 'mlp/seed_1'
  assert analysis.teacher_of(runs[0], runs) is None
  # Snapshots at epochs 0, 1/4, 1/2 and the end (1 epoch of 8 steps), kept apart from the resume checkpoints.
  assert analysis.snapshot_steps(student) == [0, 2, 4, 8]
  assert checkpoints.all_steps(student.directory) == [8]


def test_an_ablation_is_analysed_factor_by_factor_with_restored_teachers(grid_run, tmp_path):
  """An ablation's second factor that changed only the students: its CNN and MLP are the first factor's, restored
  (its config's ``models.<name>.checkpoint``), and pair with its students all the same."""
  workdir, out = tmp_path / 'ablation', str(tmp_path / 'analysis')
  shutil.copytree(grid_run, workdir / 'base')
  shutil.copytree(grid_run, workdir / 'softer', ignore=shutil.ignore_patterns('cnn', 'mlp'))
  grid_json = json.loads((workdir / 'softer' / 'grid.json').read_text())
  for name in ('cnn', 'mlp'):
    grid_json['config']['models'][name]['checkpoint'] = str(workdir / 'base' / name)
  (workdir / 'softer' / 'grid.json').write_text(json.dumps(grid_json))
  runs = analysis.find_runs(str(workdir / 'softer'))
  assert [r.setup for r in runs] == ['cnn_to_mlp'] * 2 and analysis.teacher_of(runs[0], runs) is None
  gains = {f: {kind: {'cnn_to_mlp': {s: {'mean': g, 'std': 0.01, 'n': 2} for s in ('mnist_translate', 'mnist_scale')}}
               for kind, g in (('gain_over_independent', gain), ('gain_over_first_factor_independent', 2 * gain))}
           for f, gain in (('base', 0.05), ('softer', 0.07))}
  for entry, student_acc in zip(gains.values(), (0.5, 0.6)):  # each factor's setups as its grid report sums them
    entry['setups'] = {setup: {'summary': {s: {'accuracy': {'mean': acc, 'std': 0.02, 'n': 2},
                                                'ece': {'mean': acc / 10, 'std': 0.0, 'n': 2}}
                                            for s in ('mnist_translate', 'mnist_scale')}}
                       for setup, acc in (('cnn_to_mlp', student_acc), ('mlp', 0.4), ('cnn', 0.9))}
  (workdir / 'ablation.json').write_text(json.dumps({'student_epochs': gains}))
  summary = analyze.run(analyze_config(str(workdir)), out)
  assert sorted(os.listdir(out)) == ['base', 'factors.json', 'factors.md', 'factors.png', 'kd_jax_job.json', 'softer']
  assert json.load(open(os.path.join(out, 'softer', 'analysis.json')))['sets'].keys() == {'mnist_translate',
                                                                                          'mnist_scale'}
  base, softer = (summary['mnist_translate'][f]['cnn_to_mlp'] for f in ('base', 'softer'))
  assert softer['gain_over_independent'] == gains['softer']['gain_over_independent']['cnn_to_mlp']['mnist_translate']
  # The same models, whether trained in the factor's grid or restored: the same distances and shared errors.
  assert softer['to_teacher']['logits_independent_to_teacher']['n'] == 2
  assert softer['to_teacher'] == base['to_teacher'] and softer['errors'] == base['errors']
  assert softer['student'] == gains['softer']['setups']['cnn_to_mlp']['summary']['mnist_translate']
  assert softer['independent'] == gains['softer']['setups']['mlp']['summary']['mnist_translate']
  assert ('| softer | cnn_to_mlp | 60.0 ± 2.0 / 0.060 | 40.0 ± 2.0 / 0.040 | 90.0 ± 2.0 / 0.090 | 7.0 ± 1.0 | '
          '14.0 ± 1.0 |' in open(os.path.join(out, 'factors.md')).read())
  # A probe set the grids did not evaluate (the views a function-matching teacher labels): the analysed items'
  # accuracy of student, independent and teacher, the gain over the independent on those items, no gain plot.
  views_out = tmp_path / 'views'
  views = analyze.run(analyze_config(str(workdir), sets='views_crop'), str(views_out))
  row = views['views_crop']['softer']['cnn_to_mlp']
  errors = json.load(open(views_out / 'softer' / 'analysis.json'))['sets']['views_crop']['errors']
  accuracy = errors['accuracy']
  assert [row[role]['accuracy'] for role in ('student', 'independent', 'teacher')] == [
      accuracy['cnn_to_mlp'], accuracy['mlp'], accuracy['cnn']]
  assert row['gain_over_independent'] == errors['students']['cnn_to_mlp']['accuracy_gain_over_independent']
  assert row['gain_over_independent']['mean'] == pytest.approx(accuracy['cnn_to_mlp']['mean'] - accuracy['mlp']['mean'])
  assert row['gain_over_first_factor_independent'] is None
  assert 'Probe sets the grids did not evaluate' in (views_out / 'factors.md').read_text()
  assert not (views_out / 'factors.png').exists()
  single_job = ml_collections.ConfigDict({'teacher': {'checkpoint': '/t/seed_{seed}'}})
  assert analyze.restored_checkpoints(single_job) == {'teacher': '/t/seed_{seed}'}


def test_the_probe_has_a_fixed_draw_of_each_label_preserving_view(grid_run):
  config = analyze.saved_report(grid_run)[1]
  probe, again = (mnist_task.probe(config, grid_run) for _ in range(2))
  mnist = probe.sets['mnist']
  for name in ('views_translate', 'views_scale', 'views_crop'):
    view = probe.sets[name]
    np.testing.assert_array_equal(view.labels, mnist.labels)
    chex.assert_equal_shape([view.inputs, mnist.inputs])
    np.testing.assert_array_equal(view.inputs, again.sets[name].inputs)  # the same views in every analysis
    assert (np.abs(view.inputs - mnist.inputs).reshape(len(mnist.inputs), -1).max(-1) > 0.1).mean() > 0.5
  # Whole-pixel shifts keep each digit's ink (up to what leaves the frame); a shrink loses some.
  ink = lambda images: images.reshape(len(images), -1).sum(-1)
  assert np.median(ink(probe.sets['views_translate'].inputs) / ink(mnist.inputs)) == pytest.approx(1.0, abs=0.02)
  assert np.median(ink(probe.sets['views_scale'].inputs) / ink(mnist.inputs)) < 0.95


def test_the_last_snapshot_is_the_final_model_and_step_0_is_the_init(grid_run):
  runs = analysis.find_runs(grid_run)
  probe = mnist_task.probe(analyze.saved_report(grid_run)[1], grid_run)
  outputs = analysis.Outputs(probe, probe.sets['mnist_translate'].take(100))
  student = runs[2]
  chex.assert_trees_all_close(outputs(student, 8), outputs(student))
  assert not np.allclose(outputs(student, 0)['logits'], outputs(student)['logits'])
  assert outputs(student)['penultimate'].shape == (100, 16)  # the smoke MLP's last hidden layer
  # Instances of a vmapped stack differ: each seed's snapshot is its own.
  assert not np.allclose(outputs(runs[2], 4)['logits'], outputs(runs[3], 4)['logits'])
  # The paper code's mode (dropout on, batch statistics) gives other outputs of the same model.
  train_mode = analysis.Outputs(probe, probe.sets['mnist_translate'].take(100), train_mode=True)
  assert not np.allclose(train_mode(student)['logits'], outputs(student)['logits'])


def test_the_grid_analysis_report(grid_analysis):
  out, report = grid_analysis
  assert sorted(os.listdir(out)) == sorted(['analysis.json', 'analysis.md', 'kd_jax_job.json'] + [
      f'{name}_{s}.png' for s in ('mnist_translate', 'mnist_scale') for name in ('converged', 'paths')] + [
      f'paths_{s}_matrix.png' for s in ('mnist_translate', 'mnist_scale')])
  assert json.load(open(os.path.join(out, 'analysis.json')))['sets'].keys() == {'mnist_translate', 'mnist_scale'}
  result = report['sets']['mnist_translate']
  for rep in analysis.REPRESENTATIONS:
    for measure in ('second_order_cosine_distance', 'linear_cka_distance'):
      matrix = np.asarray(result['converged'][rep][measure])
      chex.assert_shape(matrix, (6, 6))
      np.testing.assert_allclose(matrix, matrix.T)
      np.testing.assert_allclose(np.diag(matrix), 0.0, atol=1e-9)
      assert (matrix[~np.eye(6, dtype=bool)] > 0).all()
  to_teacher = result['converged']['to_teacher']['cnn_to_mlp']
  assert to_teacher['teacher'] == 'cnn' and to_teacher['independent'] == 'mlp'
  assert to_teacher['logits_student_to_teacher']['n'] == 2
  labels = result['converged']['runs']
  matrix = result['converged']['logits']['second_order_cosine_distance']
  np.testing.assert_allclose(to_teacher['logits_student_to_teacher']['mean'], np.mean(
      [matrix[labels.index(f'cnn_to_mlp/seed_{s}')][labels.index(f'cnn/seed_{s}')] for s in (0, 1)]))
  # Error counts partition the probe set; Jaccard = both / (both + either only).
  pair = result['errors']['pairs']['cnn vs cnn_to_mlp']
  total = sum(pair[k]['mean'] for k in ('both_wrong', 'only_first_wrong', 'only_second_wrong', 'neither_wrong'))
  assert total == result['errors']['num_items'] == 200
  assert set(result['errors']['students']['cnn_to_mlp']) >= {'jaccard_with_teacher', 'jaccard_with_independent'}
  assert result['errors']['accuracy']['cnn']['mean'] == pytest.approx(
      1.0 - (pair['both_wrong']['mean'] + pair['only_first_wrong']['mean']) / 200)
  assert result['errors']['accuracy']['cnn_to_mlp']['mean'] == pytest.approx(
      1.0 - (pair['both_wrong']['mean'] + pair['only_second_wrong']['mean']) / 200)
  assert pair['second_minus_first_accuracy']['mean'] == pytest.approx(
      result['errors']['accuracy']['cnn_to_mlp']['mean'] - result['errors']['accuracy']['cnn']['mean'])
  # Paths: seed 0's snapshots of every setup (4 each), distances ÷ max.
  points = result['paths']['points']
  assert len(points) == 12 and {p['run'] for p in points} == {'cnn/seed_0', 'cnn_to_mlp/seed_0', 'mlp/seed_0'}
  distances = np.asarray(result['paths']['distances'])
  assert distances.max() == 1.0 and np.asarray(result['paths']['embedding']).shape == (12, 2)
  assert 'Time per analysis' in open(os.path.join(out, 'analysis.md')).read()


def test_sva_runs_through_the_same_code_path_with_errors_by_attractors(tmp_path):
  workdir = str(tmp_path / 'sva')
  main.run(load_config('sva_smoke', **{'num_seeds': 1, 'snapshots': True, 'snapshot_first_epoch': 0.5,
                                       'models.lstm.num_epochs': 1.0, 'models.transformer.num_epochs': 1.0}), workdir)
  report = analyze.run(analyze_config(workdir, num_examples=300), str(tmp_path / 'out'))
  result = report['sets']['pooled']
  assert result['converged']['runs'] == ['lstm/seed_0', 'lstm_to_transformer/seed_0', 'transformer/seed_0']
  student = result['errors']['students']['lstm_to_transformer']
  assert student['teacher'] == 'lstm' and student['independent'] == 'transformer'
  assert set(student['jaccard_with_teacher_by_attractors']) == {'0', '1', '2'}
  assert len(result['paths']['points']) > 3


def test_bad_analysis_settings(tmp_path, grid_run):
  with pytest.raises(ValueError, match='config.workdirs is empty'):
    analyze.run(analyze_config(''), str(tmp_path))
  with pytest.raises(FileNotFoundError, match='holds neither grid.json nor results.json'):
    analyze.run(analyze_config(str(tmp_path)), str(tmp_path / 'out'))
  with pytest.raises(ValueError, match=r"unknown probe set\(s\) \['mnist_fog'\]"):
    analyze.run(analyze_config(grid_run, sets='mnist_fog'), str(tmp_path / 'out'))
  for garbage in ('{"config": ', '[1, 2]', '{"no config": 1}'):
    (tmp_path / 'results.json').write_text(garbage)
    with pytest.raises(ValueError, match=f'{tmp_path / "results.json"} is not a results file kd_jax wrote'):
      analyze.run(analyze_config(str(tmp_path)), str(tmp_path / 'out'))
  with pytest.raises(ValueError, match='is the workdir of an mnist grid, not of an analysis'):
    analyze.run(analyze_config(grid_run), grid_run)  # the analysis output would go into the grid's workdir


class _KnownOutputs:
  """Stands in for analysis.Outputs: each run is wrong exactly on the items given."""

  def __init__(self, wrong_items, groups):
    self.set = analysis.ProbeSet(np.zeros((10, 1)), np.zeros(10, np.int64), groups)
    self.wrong_items = wrong_items

  def __call__(self, run, step=None):
    logits = np.zeros((10, 2))
    logits[:, 0] = 1.0
    logits[self.wrong_items[run.setup], 1] = 2.0  # class 1 where wrong
    return {'logits': logits}


def test_error_overlap_on_known_error_sets():
  meta = {'model': 'mlp', 'model_kwargs': {}}
  runs = [analysis.Run('w', setup, 0, f'w/{setup}', meta, distilled=setup == 'student')
          for setup in ('independent', 'student', 'teacher')]
  outputs = _KnownOutputs({'teacher': [0, 1], 'student': [0, 1, 2, 3], 'independent': [2, 3, 4, 5, 6, 7]},
                          groups=np.array([0] * 5 + [1] * 5))
  result = analysis.errors(runs, outputs, 'attractors')
  pair = {k: v['mean'] for k, v in result['pairs']['student vs teacher'].items()}
  assert pair == {'both_wrong': 2.0, 'only_first_wrong': 2.0, 'only_second_wrong': 0.0, 'neither_wrong': 6.0,
                  'jaccard': 0.5, 'second_minus_first_accuracy': pytest.approx(0.2)}  # teacher 0.8, student 0.6
  assert result['pairs']['independent vs student']['jaccard']['mean'] == pytest.approx(2 / 8)
  student = result['students']['student']
  assert student['teacher'] == 'teacher' and student['independent'] == 'independent'
  assert student['accuracy_gain_over_independent']['mean'] == pytest.approx(0.6 - 0.4)  # paired by seed
  assert student['jaccard_with_teacher']['mean'] == 0.5
  assert student['jaccard_with_independent']['mean'] == pytest.approx(2 / 8)
  assert student['teacher_errors_shared_by_student']['mean'] == 1.0  # both of the teacher's errors
  assert student['teacher_errors_shared_by_independent']['mean'] == 0.0
  # Items 0-4 (group 0): the student errs on 0-3, the teacher on 0-1; items 5-9: no errors at all (Jaccard 1).
  assert {g: v['mean'] for g, v in student['jaccard_with_teacher_by_attractors'].items()} == {'0': 0.5, '1': 1.0}


def test_an_unfinished_run_is_refused_not_analysed_as_if_it_were_the_reported_model(tmp_path):
  # As after an interrupted run, or a retrain (overwrite) stopped midway: the newest checkpoint is short of the end.
  from test_phases import _InterruptedSplit, _sgd, _split, _train  # pylint: disable=g-import-not-at-top
  from kd_jax import phases  # pylint: disable=g-import-not-at-top
  from kd_jax.mnist import models  # pylint: disable=g-import-not-at-top
  config = load_config('grid_smoke', **{'checkpoint_every_steps': 4})
  cfg = _sgd(config, 'mlp', 'teacher')
  model = models.create_model('mlp', **cfg.model_kwargs)
  _train('mlp', cfg, config, model, _split(), tmp_path / 'mlp')
  assert [run.setup for run in analysis.find_runs(str(tmp_path))] == ['mlp']
  with pytest.raises(phases.TrainingInterrupted):
    _train('cnn', cfg, config, model, _InterruptedSplit(_split(), interrupt_at=10), tmp_path / 'cnn')
  with pytest.raises(ValueError, match=r'unfinished runs under .*: .*/cnn \(step 8 of 12\)\. The reports describe '
                                       'finished runs only'):
    analysis.find_runs(str(tmp_path))


def test_runs_of_seeds_the_report_does_not_describe_are_refused(tmp_path):
  # A grid re-run with more seeds, stopped after a new seed's first model finished: its report still has the old seeds.
  from test_phases import _sgd, _split, _train  # pylint: disable=g-import-not-at-top
  from kd_jax.mnist import models  # pylint: disable=g-import-not-at-top
  config = load_config('grid_smoke')
  cfg = _sgd(config, 'mlp', 'teacher')
  model = models.create_model('mlp', **cfg.model_kwargs)
  for seed in (0, 1):
    _train('mlp', cfg, config, model, _split(), tmp_path / 'mlp' / f'seed_{seed}', seeds=[seed])
  assert len(analysis.find_runs(str(tmp_path), reported=analysis.Reported(seeds=[0, 1]))) == 2
  with pytest.raises(ValueError, match=r'holds runs of seeds \[1\], which its report \(seeds \[0\]\) does not '
                                       'describe'):
    analysis.find_runs(str(tmp_path), reported=analysis.Reported(seeds=[0]))
  assert analyze.reported({'config': config.to_dict()}).seeds == [0, 1]
  assert analyze.reported({'config': load_config('smoke').to_dict()}).seeds == [0]


def test_a_second_analysis_into_the_same_directory_leaves_nothing_of_the_first(tmp_path):
  from kd_jax import workdirs  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'analysis'
  with workdirs.claim(str(out), 'analysis'):
    (out / 'paths_views_crop.png').write_bytes(b'a figure of a set not analysed now')
    (out / 'old_factor').mkdir()
    (out / 'old_factor' / 'analysis.json').write_text('{}')
    analyze.clear_previous(str(out))
    assert sorted(os.listdir(out)) == sorted([workdirs.RECORD, workdirs.LOCK])


def test_a_grid_report_records_the_models_it_evaluated_and_the_analysis_refuses_others(grid_run, tmp_path):
  workdir = tmp_path / 'grid'
  shutil.copytree(grid_run, workdir)
  report = json.loads((workdir / 'grid.json').read_text())
  recorded = report['evaluated_checkpoints']
  assert sorted(recorded) == ['cnn', 'cnn_to_mlp', 'mlp']  # vmapped seeds: one directory a setup
  assert recorded['cnn'] == checkpoints.model_record(checkpoints.read_meta(workdir / 'cnn'))
  assert len(analysis.find_runs(str(workdir), reported=analyze.reported(report))) == 3 * 2  # 3 setups × 2 seeds
  # A directory the report did not evaluate (left by an earlier run of other setups) is refused by name...
  shutil.copytree(workdir / 'mlp', workdir / 'mlp_to_cnn')
  with pytest.raises(ValueError, match=r'holds models its report does not describe: .*/mlp_to_cnn \(step \d+; the '
                                       r'report has no model there\)'):
    analyze.run(analyze_config(str(workdir)), str(tmp_path / 'out'))
  shutil.rmtree(workdir / 'mlp_to_cnn')
  # ... and so is one whose newest model is not the one the report evaluated.
  recorded['mlp']['variables'] = 'another model'
  (workdir / 'grid.json').write_text(json.dumps(report))
  with pytest.raises(ValueError, match=r'.*/mlp \(step \d+; the report evaluated step \d+, another model\)'):
    analyze.run(analyze_config(str(workdir)), str(tmp_path / 'out'))


def test_a_report_records_only_the_directories_it_names(tmp_path):
  from test_phases import _sgd, _split, _train  # pylint: disable=g-import-not-at-top
  from kd_jax.mnist import models  # pylint: disable=g-import-not-at-top
  config = load_config('grid_smoke')
  cfg = _sgd(config, 'mlp', 'teacher')
  model = models.create_model('mlp', **cfg.model_kwargs)
  for name in ('mlp', 'mlp.retraining'):
    _train('mlp', cfg, config, model, _split(), tmp_path / name)
  recorded = checkpoints.models_under(str(tmp_path), ['mlp', 'cnn'])  # 'cnn': restored from elsewhere, not here
  assert list(recorded) == ['mlp'] and recorded['mlp']['step'] == checkpoints.all_steps(tmp_path / 'mlp')[-1]


def test_a_students_control_is_the_grids_and_never_its_teacher():
  def runs(*setups):
    return [analysis.Run('w', setup, 0, f'w/{setup}', {'model': setup.rpartition('_')[2], 'model_kwargs': {}},
                         distilled='_to_' in setup and not setup.startswith('labels_')) for setup in setups]
  grid = runs('cnn', 'labels_to_mlp', 'mlp', 'cnn_to_mlp')
  assert analysis.independent_of(grid[3], grid).setup == 'labels_to_mlp'  # the grid's control, where it has one
  grid = runs('cnn', 'mlp', 'cnn_to_mlp')
  assert analysis.independent_of(grid[2], grid).setup == 'mlp'
  grid = runs('mlp', 'mlp_to_mlp')  # self-distillation: the student model's own row is the teacher
  assert analysis.teacher_of(grid[1], grid).setup == 'mlp' and analysis.independent_of(grid[1], grid) is None
