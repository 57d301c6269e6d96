"""The SVA job end to end on the synthetic grammar (and on real Linzen data when KD_JAX_SVA_DIR is set)."""
import collections
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import load_config
from kd_jax import checkpoints
from kd_jax import losses
from kd_jax import main
from kd_jax import metrics
from kd_jax import sharding
from kd_jax import phases
from kd_jax.mnist import models
from kd_jax import training
from kd_jax.sva import configs as sva_configs
from kd_jax.sva import data as sva_data
from kd_jax.sva import experiment as sva_experiment
from kd_jax.sva import models as sva_models
from kd_jax.sva import report as sva_report

SVA_DIR = os.environ.get('KD_JAX_SVA_DIR', '')
SVA_CONFIGS = ['sva_lstm_to_transformer', 'sva_lstm_to_universal_transformer', 'sva_transformer_to_lstm',
               'sva_lstm_to_lstm']


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('sva'))
  return workdir, main.run(load_config('sva_smoke'), workdir)


def test_end_to_end_classification(finished_run):
  workdir, results = finished_run
  assert set(results['runs']) == {'teacher', 'independent', 'student'}
  for runs in results['runs'].values():
    assert [r['seed'] for r in runs] == [0, 1]
    for run in runs:
      for name in ('dev', 'attractors'):
        assert 0.0 <= run[name]['accuracy'] <= 1.0 and 0.0 <= run[name]['ece'] <= 1.0
        assert run[name]['count'] == 128
      # The attractor test set has every count 0..2 (max_intervening=2).
      assert set(run['attractors']['accuracy_by_attractors']) == {'0', '1', '2'}
  # The tiny LSTM teacher learned agreement beyond the majority class (~50%).
  assert min(r['dev']['accuracy'] for r in results['runs']['teacher']) > 0.65
  summary = results['summary']['student']['dev/accuracy']
  accs = [r['dev']['accuracy'] for r in results['runs']['student']]
  assert summary['n'] == 2 and summary['mean'] == pytest.approx(np.mean(accs))
  assert summary['std'] == pytest.approx(np.std(accs, ddof=1))
  report = open(os.path.join(workdir, 'results.md')).read()
  assert 'SYNTHETIC GRAMMAR DEMO' in report and '| lstm → transformer |' in report and '| macro | micro |' in report
  assert os.path.getsize(os.path.join(workdir, 'accuracy_by_attractors.png')) > 10_000
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f)['summary'] == results['summary']
  phase_names = {json.loads(line)['phase'] for line in open(os.path.join(workdir, 'metrics.jsonl'))}
  assert phase_names == {f'{role}/seed_{s}' for role in ('teacher', 'independent', 'student') for s in (0, 1)}


def test_vocabulary_is_saved_with_the_run_and_its_checkpoints(finished_run):
  workdir, results = finished_run
  vocab = sva_data.Vocab.load(os.path.join(workdir, 'vocab.json'))
  assert len(vocab) == results['vocab_size'] and vocab.words[:4] == list(sva_data.SPECIALS)
  assert sva_experiment.teacher_vocab(os.path.join(workdir, 'teacher', 'seed_0')) == vocab


def test_offline_kd_from_saved_teachers_one_per_seed(finished_run, tmp_path):
  first_workdir, first = finished_run
  config = load_config('sva_smoke', **{'train_independent_student': False,
                                       'teacher.checkpoint': os.path.join(first_workdir, 'teacher', 'seed_{seed}')})
  results = main.run(config, str(tmp_path))
  assert not os.path.exists(tmp_path / 'teacher')
  assert [r['checkpoint'] for r in results['runs']['teacher']] == [r['checkpoint'] for r in first['runs']['teacher']]
  for seed in (0, 1):
    assert results['runs']['teacher'][seed]['dev'] == first['runs']['teacher'][seed]['dev']
    # Same seed, teacher, vocabulary and data order as the first run's students.
    np.testing.assert_allclose(results['runs']['student'][seed]['dev']['accuracy'],
                               first['runs']['student'][seed]['dev']['accuracy'], atol=1 / 128)


def test_rerun_resumes_instead_of_retraining(finished_run):
  workdir, first = finished_run
  again = main.run(load_config('sva_smoke'), workdir)
  assert again['runs'] == first['runs']


def test_one_teacher_for_every_seed_is_refused_unless_meant(finished_run, tmp_path):
  first_workdir, first = finished_run
  overrides = {'train_independent_student': False, 'teacher.checkpoint': os.path.join(first_workdir, 'teacher',
                                                                                       'seed_0')}
  with pytest.raises(ValueError, match=r'config.teacher.checkpoint=.*has no \{seed\}: all 2 seeds would distil'):
    main.run(load_config('sva_smoke', **overrides), str(tmp_path / 'refused'))
  assert not os.path.exists(tmp_path / 'refused')
  results = main.run(load_config('sva_smoke', **overrides, **{'kd.shared_teacher': True}), str(tmp_path / 'shared'))
  assert results['shared_teacher'] and [r['seed'] for r in results['runs']['teacher']] == [0]
  assert [r['seed'] for r in results['runs']['student']] == [0, 1]
  assert results['runs']['student'][0]['dev'] == first['runs']['student'][0]['dev']
  assert '**One teacher for all seeds**' in (tmp_path / 'shared' / 'results.md').read_text()
  with pytest.raises(ValueError, match=r'config.kd.shared_teacher=True, but config.teacher.checkpoint=.*gives no '
                     'teacher that 2 seed'):
    main.run(load_config('sva_smoke', **{'kd.shared_teacher': True}), str(tmp_path / 'nothing_shared'))


def test_cached_teacher_logits_match_the_teacher_in_the_step(finished_run, tmp_path):
  first_workdir, first = finished_run
  config = load_config('sva_smoke', **{'num_seeds': 1, 'train_independent_student': False,
                                       'cache_teacher_logits': False,
                                       'teacher.checkpoint': os.path.join(first_workdir, 'teacher', 'seed_0')})
  run = main.run(config, str(tmp_path))['runs']['student'][0]
  # Up to float rounding (the teacher sees differently padded batches), the same student.
  np.testing.assert_allclose(run['dev']['accuracy'], first['runs']['student'][0]['dev']['accuracy'], atol=2 / 128)


def test_shuffled_confidence_control_keeps_the_targets_softness_and_says_it_is_a_control(finished_run, tmp_path):
  first_workdir, first = finished_run
  config = load_config('sva_smoke', **{'num_seeds': 1, 'train_independent_student': False,
                                       'kd.targets': 'shuffled_confidence',
                                       'teacher.checkpoint': os.path.join(first_workdir, 'teacher', 'seed_0')})
  control_student = main.run(config, str(tmp_path))['runs']['student'][0]
  # The student learned other targets than the teacher's own (same init, data order and teacher): unshuffled, the
  # control's targets are the teacher's up to rounding, and its ECE equalled the KD student's to 3e-8 (tried).
  assert abs(control_student['dev']['ece'] - first['runs']['student'][0]['dev']['ece']) > 1e-3

  def targets_record(workdir):
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
      records = [json.loads(line) for line in f]
    return next(r for r in records if r['phase'] == 'student/seed_0' and 'teacher_targets/p_gold' in r)

  teacher, control = targets_record(first_workdir), targets_record(str(tmp_path))
  np.testing.assert_allclose(control['teacher_targets/p_gold'], teacher['teacher_targets/p_gold'], atol=1e-6)
  assert control['teacher_targets/below_0.9'] == teacher['teacher_targets/below_0.9']
  assert "CONTROL RUN: the KD students learned config.kd.targets='shuffled_confidence'" in (
      tmp_path / 'results.md').read_text()
  assert 'CONTROL RUN' not in open(os.path.join(first_workdir, 'results.md')).read()


def test_cross_fitted_targets_come_from_the_fold_teacher_that_did_not_see_the_input(finished_run, tmp_path):
  first_workdir, first = finished_run
  config = load_config('sva_smoke', **{'num_seeds': 1, 'train_independent_student': False, 'cross_fit_folds': 2,
                                       'teacher.checkpoint': os.path.join(first_workdir, 'teacher', 'seed_0')})
  workdir = str(tmp_path / 'run')
  results = main.run(config, workdir)
  assert results['cross_fit']['folds'] == 2 and 'cross-fitted: 2 fold teachers' in open(
      os.path.join(workdir, 'results.md')).read()
  records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  last_step = lambda phase: max(r['step'] for r in records if r['phase'] == phase)
  # 3 epochs at batch 32 over half of the 512 training examples (8 batches an epoch) for each fold teacher.
  assert last_step('teacher_fold_0/seed_0') == last_step('teacher_fold_1/seed_0') == 24

  train_examples, tests, _, _ = sva_experiment.load_examples(config)
  vocab = sva_data.Vocab.load(os.path.join(workdir, 'vocab.json'))
  max_length = sva_experiment.padded_length(config, [train_examples, *tests.values()])
  encode = lambda ex: sva_experiment.encode(ex, vocab, config, max_length)
  train = encode(train_examples)
  model = sva_models.create_model(config.teacher.model, vocab_size=len(vocab), **config.teacher.model_kwargs)
  mesh = sharding.data_mesh()
  # Called again, every fold teacher is restored from its final checkpoint (nothing retrained).
  folds_phase = phases.Phase('teacher_folds/seed_0', config.teacher, model, train,
                             os.path.join(workdir, 'teacher_folds', 'seed_0'), [0], phases.TEACHER_STREAM)
  logits = sva_experiment.cross_fitted_logits(folds_phase, train_examples, encode, phases.Job(config, mesh))
  folds = np.array_split(np.random.default_rng(0).permutation(len(train)), 2)
  predict = sva_experiment.make_classifier_predict(model, mesh, 64)
  example = phases.example_input(train)
  whole_teacher, _ = phases.restore_variables(model, config.teacher.checkpoint, config.teacher, example)
  for j, held_out in enumerate(folds):
    fold_teacher, meta = phases.restore_variables(
        model, os.path.join(workdir, 'teacher_folds', 'seed_0', f'fold_{j}'), config.teacher, example)
    assert meta['settings']['training examples'] == len(train) - len(held_out)
    np.testing.assert_array_equal(logits[held_out], predict(fold_teacher, train)[held_out])
    assert not np.allclose(logits[held_out], predict(whole_teacher, train)[held_out], atol=1e-3)
  # What the student was taught (its step-0 diagnostic) is the cross-fitted logits.
  taught = [r for r in records if r['phase'] == 'student/seed_0' and r['step'] == 0][0]
  expected = metrics.teacher_targets(logits, train.labels, config.kd.temperature)
  assert taught['teacher_targets/p_gold'] == pytest.approx(expected['p_gold'], rel=1e-6)
  assert results['cross_fit']['target_accuracy'] == [pytest.approx(float(np.mean(logits.argmax(-1) == train.labels)))]


def test_language_model_end_to_end(tmp_path):
  config = load_config('sva_smoke', 'lm', **{'num_seeds': 1})
  results = main.run(config, str(tmp_path))
  assert results['models'] == {'teacher': 'lstm', 'independent': 'transformer_seq', 'student': 'transformer_seq'}
  for role, runs in results['runs'].items():
    test = runs[0]['attractors']
    # Better than a uniform guess over the vocabulary, and the verbs were all scored.
    assert 1.0 < test['perplexity'] < results['vocab_size'], role
    assert test['unscored_oov_verbs'] == 0 and test['count'] == 128
    # Per-example agreement with the teacher: which verb form each model prefers (not the teacher's own row).
    assert (role == 'teacher') == ('teacher_agreement' not in test), role
    if role != 'teacher':
      assert 0.5 < test['teacher_agreement'] <= 1.0, role
  report = open(tmp_path / 'results.md').read()
  assert 'Perplexity:' in report and "Agreement with the same seed's teacher" in report
  # The model-free majority-form baseline, on the same scored verbs.
  assert results['majority_form_baseline']['attractors']['count'] == 128 and 'Majority-form baseline' in report
  # The student's step-0 diagnostic: the teacher's next-word targets over the training sentences' target words.
  with open(tmp_path / 'metrics.jsonl') as f:
    taught = [r for r in map(json.loads, f) if r['phase'] == 'student/seed_0' and r['step'] == 0][0]
  model = sva_models.create_model('lstm', vocab_size=results['vocab_size'], objective='lm',
                                  **config.teacher.model_kwargs)
  train_examples, test_examples, _, _ = sva_experiment.load_examples(config)
  vocab = sva_data.Vocab.load(str(tmp_path / 'vocab.json'))
  train = sva_experiment.encode(train_examples, vocab, config, sva_experiment.padded_length(
      config, [train_examples, *test_examples.values()]))
  everything = train.batch(np.arange(len(train)))
  variables, _ = phases.restore_variables(model, str(tmp_path / 'teacher' / 'seed_0'), config.teacher,
                                          phases.example_input(train))
  logits = np.asarray(model.apply(variables, everything['inputs'], train=False))
  expected = metrics.teacher_targets(logits, everything['label'], config.kd.temperature, everything['weights'])
  for key in ('p_gold', 'below_0.9', 'entropy'):
    assert taught[f'teacher_targets/{key}'] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), key
  assert 0.0 < taught['teacher_targets/p_gold'] < 0.9  # next words are uncertain: soft targets


def test_every_sva_config_is_valid():
  for name in SVA_CONFIGS:
    for variant in ('classify', 'lm', 'paper', 'lm,paper'):
      config = load_config(name, variant)
      sva_experiment.check_config(config)
      assert config.task == 'sva'
  assert load_config('sva_lstm_to_transformer', 'lm').student.model == 'transformer_seq'
  for variant in ('classify', 'lm'):  # the authors' UT is the causal one, in both objectives
    assert load_config('sva_lstm_to_universal_transformer', variant).student.model == 'universal_transformer_seq'
  both = load_config('sva_lstm_to_transformer', 'paper,lm')  # variants compose, in a fixed order
  assert both.to_dict() == load_config('sva_lstm_to_transformer', 'lm,paper').to_dict()
  assert (both.objective, both.student.model, both.kd.alpha, both.teacher.num_epochs) == ('lm', 'transformer_seq',
                                                                                          0.9, 40.0)
  with pytest.raises(ValueError, match="unknown config variant 'big'"):
    sva_configs.pair_config('lstm', 'transformer', 'big')
  cross_fit = load_config('sva_lstm_to_transformer', 'cross_fit')
  sva_experiment.check_config(cross_fit)
  assert cross_fit.cross_fit_folds == 5 and load_config('sva_lstm_to_transformer').cross_fit_folds == 0
  with pytest.raises(ValueError, match='needs objective=classify'):
    sva_experiment.check_config(load_config('sva_lstm_to_transformer', 'lm,cross_fit'))


def test_every_objective_is_accepted_by_the_sva_job():
  # config.kd is one definition for every task (losses.kd_settings): each objective finds its weights there. Feature
  # objectives read the teacher's penultimate features in the step, which the SVA classifiers sow.
  for name, spec in losses.LOSSES.items():
    if spec.uses_teacher:
      config = load_config('sva_smoke')
      config.student.loss = name
      config.cache_teacher_logits = not spec.uses_features
      sva_experiment.check_config(config)
      assert losses.get_loss(name, config.kd) is not None
  assert set(load_config('sva_smoke').kd) == set(load_config('smoke').kd)


def test_paper_teacher_regime(tmp_path):
  config = load_config('sva_lstm_to_transformer', 'paper_teacher')
  sva_experiment.check_config(config)
  assert dict(config.teacher.model_kwargs) == dict(sva_configs.MODEL_KWARGS['lstm'], dropout_rate=0.8,
                                                   embedding_dropout=0.2, recurrent_dropout=0.8)
  assert (config.teacher.l2, config.kd.teacher_mode, config.cache_teacher_logits) == (1e-5, 'train', False)
  with pytest.raises(ValueError, match="':paper_teacher' variant is the authors' LSTM teacher regime"):
    load_config('sva_transformer_to_lstm', 'paper_teacher')
  # A smoke run in that regime: the student learns from the train-mode teacher inside its step, and the targets it
  # sees are measured in training mode (not the eval-mode targets of the same teacher).
  config = load_config('sva_smoke', 'paper_teacher', **{'num_seeds': 1, 'train_independent_student': False})
  main.run(config, str(tmp_path))
  records = [json.loads(line) for line in open(tmp_path / 'metrics.jsonl')]
  targets = [r for r in records if r['phase'] == 'student/seed_0' and r['step'] == 0][0]
  eval_config = load_config('sva_smoke', 'paper_teacher', **{'num_seeds': 1, 'train_independent_student': False,
                                                              'kd.teacher_mode': 'eval',
                                                              'teacher.checkpoint': str(tmp_path / 'teacher' / 'seed_0')})
  eval_config.cache_teacher_logits = True
  main.run(eval_config, str(tmp_path / 'eval'))
  eval_targets = [json.loads(line) for line in open(tmp_path / 'eval' / 'metrics.jsonl')
                  if '"step": 0' in line and 'teacher_targets' in line][0]
  assert targets['teacher_targets/p_gold'] != eval_targets['teacher_targets/p_gold']
  assert targets['teacher_targets/entropy'] != eval_targets['teacher_targets/entropy']


@pytest.mark.parametrize('overrides, error, match', [
    ({'data.source': 'wiki'}, ValueError, "unknown config.data.source 'wiki'"),
    ({'teacher.model': 'gru'}, ValueError, "unknown SVA model 'gru'"),
    ({'teacher.loss': 'distillation'}, ValueError, 'teacher.loss must be cross_entropy'),
    ({'kd.teacher_mode': 'train'}, ValueError, 'set cache_teacher_logits=False'),
    ({'data.source': 'full_sentences'}, ValueError, 'full_sentences gives no verb-number labels'),
    ({'data.source': 'numpred', 'data.dir': '/nonexistent/sva'}, FileNotFoundError, 'does not exist'),
    ({'teacher.checkpoint': '/nonexistent/teacher'}, FileNotFoundError, 'does not exist'),
    ({'data.dev_fraction': 1.5}, ValueError, r'config.data.dev_fraction must be a finite number in \(0, 1\)'),
    ({'data.length_bucket': 0}, ValueError, r'config.data.length_bucket must be an integer ≥ 1'),
    ({'student.batch_size': 12}, ValueError, r'config.student.batch_size must be a multiple of the 8 devices'),
    ({'teacher.model_kwargs.dropout_rate': -0.1}, ValueError, r'config.teacher.model_kwargs.dropout_rate must be'),
    ({'teacher.l2': -1e-5}, ValueError, r'config.teacher.l2 must be a finite number in \[0, 3.40282e\+38\], got -1e-05'),
    ({'objective': 'lm', 'kd.targets': 'shuffled_confidence'}, ValueError,
     "targets='shuffled_confidence' is a control made from cached classification targets; it needs objective=classify"),
    ({'objective': 'lm'}, ValueError, r"config.cache_teacher_logits=True caches a classifier's \[N, 2\] teacher logits"),
])
def test_bad_settings_fail_with_a_clear_error(tmp_path, overrides, error, match):
  with pytest.raises(error, match=match):
    main.run(load_config('sva_smoke', **overrides), str(tmp_path))


def test_missing_data_directory_says_how_to_fix_it(tmp_path, monkeypatch):
  monkeypatch.delenv(sva_experiment.DATA_ENV, raising=False)
  with pytest.raises(FileNotFoundError, match='set config.data.dir or \\$KD_JAX_SVA_DIR'):
    main.run(load_config('sva_smoke', **{'data.source': 'numpred'}), str(tmp_path))


def test_a_non_sva_checkpoint_is_refused_as_teacher(tmp_path):
  meta_free = tmp_path / 'mnist_like'
  mngr = checkpoints.manager(str(meta_free))
  state = training.init_state(models.MLP(hidden_sizes=(4,)), optax.sgd(0.1), jax.random.PRNGKey(0),
                             jnp.zeros((1, 28, 28, 1)))
  checkpoints.save(mngr, state, {'model': 'mlp', 'model_kwargs': {}})
  mngr.close()
  with pytest.raises(ValueError, match='no vocabulary in its metadata; it is not an SVA teacher'):
    main.run(load_config('sva_smoke', **{'teacher.checkpoint': str(meta_free), 'num_seeds': 1}), str(tmp_path / 'run'))


def test_unknown_task():
  config = load_config('sva_smoke')
  config.task = 'vision'
  with pytest.raises(ValueError, match="unknown config.task 'vision'; choose one of \\['mnist', 'sva'\\]"):
    main.run(config, '/tmp/unused')
  config.task = 'mnist'  # a single-job config of a task that runs on the seed grid only
  with pytest.raises(ValueError, match="config.task='mnist' without config.setups: mnist runs on the seed grid only"):
    main.run(config, '/tmp/unused')


@pytest.mark.skipif(not SVA_DIR, reason='KD_JAX_SVA_DIR not set (real Linzen data)')
def test_real_numpred_short_run(tmp_path):
  config = load_config('sva_smoke', **{'data.source': 'numpred', 'data.dir': SVA_DIR, 'data.num_train': 640,
                                       'data.num_test': 256, 'num_seeds': 1, 'train_independent_student': False})
  results = main.run(config, str(tmp_path))
  assert results['num_train'] == 640 and 'numpred.val' in results['data_source']
  run = results['runs']['student'][0]
  assert set(run) >= {'dev', 'test_1', 'test_5'}
  assert run['test_3']['accuracy_by_attractors'].keys() == {'3'}


def _tiny_numpred(directory, seed=0):
  """numpred.val and numpred.test.1-5 in Linzen's simple format, from the synthetic grammar (tests need no data)."""
  directory.mkdir()
  sizes = {'numpred.val': 320, 'numpred.test.1': 160, **{f'numpred.test.{k}': 16 for k in range(2, 6)}}
  for i, (name, size) in enumerate(sizes.items()):
    examples = sva_data.lm_to_classification(sva_data.synthetic_grammar(size, seed + i, 2))
    (directory / name).write_text(''.join(f'{sva_data.LABELS[label]}\t{" ".join(prefix)}\n'
                                          for prefix, label in zip(examples.prefixes, examples.labels)))
  return str(directory)


def test_transfer_set_is_split_off_test_1_and_learned_from_the_teacher_only(tmp_path):
  data_dir = _tiny_numpred(tmp_path / 'numpred')
  config = load_config('sva_smoke', **{'data.source': 'numpred', 'data.dir': data_dir, 'data.transfer_size': 96,
                                       'num_seeds': 1})
  train, tests, _, transfer = sva_experiment.load_examples(config)
  whole = sva_data.read_numpred(os.path.join(data_dir, 'numpred.test.1'), 1)
  assert len(transfer) == 96 and len(tests['test_1']) == 64 and len(tests['test_2']) == 16
  lines = lambda ex: collections.Counter(' '.join(p) + f'|{label}' for p, label in zip(ex.prefixes, ex.labels))
  # A partition of numpred.test.1's lines: the transfer set is never evaluated on.
  assert lines(transfer) + lines(tests['test_1']) == lines(whole)
  results = main.run(config, str(tmp_path / 'run'))
  assert set(results['runs']) == {'teacher', 'independent', 'student', 'independent_transfer'}
  assert results['num_transfer'] == 96 and results['num_test']['test_1'] == 64
  steps = {json.loads(line)['phase']: json.loads(line)['step'] for line in open(tmp_path / 'run' / 'metrics.jsonl')}
  # 3 epochs at batch 32: the teacher and the gold baseline see train (288 = 320 - 10% dev), the KD student and
  # the control train + transfer set (384).
  assert steps['teacher/seed_0'] == steps['independent/seed_0'] == 27
  assert steps['student/seed_0'] == steps['independent_transfer/seed_0'] == 36
  teacher = results['runs']['teacher'][0]
  for role in ('independent', 'student', 'independent_transfer'):
    run = results['runs'][role][0]
    for name in tests:
      agreement = run[name]['teacher_agreement']
      assert 0.0 <= agreement <= 1.0
      # Where the two predict alike they are alike right or wrong: accuracies differ by ≤ the disagreement.
      assert abs(run[name]['accuracy'] - teacher[name]['accuracy']) <= 1.0 - agreement + 1e-9
    assert 'teacher_agreement' not in teacher['test_1']
  report = open(tmp_path / 'run' / 'results.md').read()
  assert 'transfer set of 96 inputs' in report and '(no KD, gold labels of train + transfer set)' in report
  assert "Agreement with the same seed's teacher" in report


@pytest.mark.parametrize('overrides, match', [
    ({'data.transfer_size': 10}, 'needs data.source=numpred'),
    ({'data.source': 'numpred', 'data.transfer_size': 10, 'kd.alpha': 0.5}, 'set config.kd.alpha=1.0'),
    ({'data.source': 'numpred', 'data.transfer_size': 160}, 'leaves nothing of numpred.test.1'),
    ({'data.transfer_size': -1}, 'config.data.transfer_size must be an integer ≥ 0'),
    ({'cross_fit_folds': 1}, 'leaves a fold teacher nothing to train on'),
    ({'cross_fit_folds': -2}, 'config.cross_fit_folds must be an integer ≥ 0'),
    ({'cross_fit_folds': 2, 'data.source': 'numpred', 'data.transfer_size': 10}, 'needs objective=classify, '
     'cache_teacher_logits=True, no data.transfer_size'),
    ({'cross_fit_folds': 2, 'student.loss': 'cross_entropy'}, 'a distillation student loss'),
])
def test_bad_transfer_settings_fail_early(tmp_path, overrides, match):
  config = load_config('sva_smoke', **{'data.dir': _tiny_numpred(tmp_path / 'numpred'), **overrides})
  with pytest.raises(ValueError, match=match):
    main.run(config, str(tmp_path / 'run'))


def test_lm_report_says_how_many_verbs_were_not_scored():
  results = {'runs': {'teacher': [{'seed': 0, 'test': {'unscored_oov_verbs': 18}}]}, 'num_test': {'test': 128}}
  assert "not scored: {'test': 18} of {'test': 128}" in sva_report._unscored_note(results)
  results['runs']['teacher'][0]['test']['unscored_oov_verbs'] = 0
  assert sva_report._unscored_note(results) == ''


def test_a_student_of_another_objective_says_so_in_its_row():
  results = {'models': {'teacher': 'lstm', 'student': 'transformer'}, 'config': {'student': {'loss': 'dkd'}}}
  assert sva_report._role_title(results, 'student') == 'lstm → transformer (dkd)'
  results['config']['student']['loss'] = 'distillation'
  assert sva_report._role_title(results, 'student') == 'lstm → transformer'
