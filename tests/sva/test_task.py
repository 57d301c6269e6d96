"""SVA on the seed grid (kd_jax/sva/task.py through kd_jax/seed_grid.py), on the synthetic grammar (and on real
Linzen data when KD_JAX_SVA_DIR is set)."""
import collections
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import load_config
from kd_jax import analysis
from kd_jax import checkpoints
from kd_jax import losses
from kd_jax import main
from kd_jax import metrics
from kd_jax import phases
from kd_jax import seed_grid
from kd_jax import sharding
from kd_jax import training
from kd_jax.mnist import models as mnist_models
from kd_jax.sva import configs as sva_configs
from kd_jax.sva import data as sva_data
from kd_jax.sva import models as sva_models
from kd_jax.sva import report as sva_report
from kd_jax.sva import task

SVA_DIR = os.environ.get('KD_JAX_SVA_DIR', '')

FACTORS = (('base', {}), ('warmer', {'kd': {'temperature': 2.0}}))


def sva_grid_config(**overrides):
  # Smaller than ':smoke' (256 sentences, 2 epochs): the grid runs twice below.
  return load_config('sva_smoke', **{'data.synthetic.num_train': 256, 'models.lstm.num_epochs': 2.0,
                                     'models.transformer.num_epochs': 2.0, **overrides})


@pytest.fixture(scope='module')
def ablation(tmp_path_factory):
  """Two factors, seeds one after another: the second changes the students only, so it restores the first's LSTMs."""
  workdir = tmp_path_factory.mktemp('sva_ablation')
  config = sva_grid_config(seed_parallelism='sequential')
  config.factors = FACTORS
  return workdir, seed_grid.run(config, str(workdir))


def test_the_sva_ablation_reports_every_factor_with_its_gains(ablation):
  workdir, report = ablation
  assert list(report['student_epochs']) == ['base', 'warmer'] and report['test_sets'] == {'dev': 'dev',
                                                                                         'attractors': 'attractors'}
  assert report['headline_sets'] == ['attractors', 'dev'] and report['task_title'] == 'SVA'
  for factor in ('base', 'warmer'):
    grid = json.loads((workdir / factor / 'grid.json').read_text())
    student = grid['setups']['lstm_to_transformer']['instances']
    assert len(student) == 2 and 0.0 <= student[0]['attractors']['teacher_agreement'] <= 1.0
    # The task's own metrics reach the grid's rows: accuracy per attractor count beside accuracy and ECE.
    by_count = student[0]['attractors']['accuracy_by_attractors']
    assert by_count and set(by_count) <= {'0', '1', '2'} and sum(student[0]['attractors']['attractor_counts'].values()) == 128
    independent = grid['setups']['transformer']['instances']
    gains = report['student_epochs'][factor]['gain_over_independent']['lstm_to_transformer']['attractors']
    np.testing.assert_allclose(gains['mean'], np.mean([s['attractors']['accuracy'] - i['attractors']['accuracy']
                                                       for s, i in zip(student, independent)]), atol=1e-12)
  warmer = json.loads((workdir / 'warmer' / 'grid.json').read_text())
  assert warmer['config']['models']['lstm']['checkpoint'].endswith('base/lstm/seed_{seed}')  # trained once
  assert 'attractors' in (workdir / 'ablation.md').read_text() and (workdir / 'ablation.png').exists()
  text = (workdir / 'base' / 'grid.md').read_text()
  assert 'SYNTHETIC GRAMMAR ONLY' in text and 'Perplexity' not in text  # (a classifier's report)
  # The task's section: accuracy by attractor count, and the macro accuracy over distances (its dev cell recomputed).
  base = json.loads((workdir / 'base' / 'grid.json').read_text())['setups']['lstm_to_transformer']['instances']
  dev = [instance['dev']['macro_distance_accuracy'] for instance in base]
  assert 'macro mean over subject–verb distances 1–16' in text and 'by number of attractors' in text
  assert f'| LSTM→Transformer | {100 * np.mean(dev):.2f} ± {100 * np.std(dev, ddof=1):.2f} |' in text


def test_vmapped_sva_grid_equals_seeds_run_one_after_another(ablation, tmp_path):
  workdir, _ = ablation
  vmapped = seed_grid.run(sva_grid_config(seed_parallelism='vmap'), str(tmp_path))
  sequential = json.loads((workdir / 'base' / 'grid.json').read_text())
  assert vmapped['vmapped'] and not sequential['vmapped']
  for setup in ('lstm', 'transformer', 'lstm_to_transformer'):
    for k in range(2):
      for test_set in ('dev', 'attractors'):
        ours, theirs = (r['setups'][setup]['instances'][k][test_set] for r in (vmapped, sequential))
        # 128 sentences: one differently-rounded logit near 0 would move accuracy by 1/128.
        np.testing.assert_allclose(ours['accuracy'], theirs['accuracy'], atol=1 / 128 + 1e-9)
        np.testing.assert_allclose(ours['ece'], theirs['ece'], atol=0.02)


def test_the_grid_saves_its_vocabulary_for_the_checkpoints_and_the_analyses(ablation):
  workdir, _ = ablation
  vocab = sva_data.Vocab.load(workdir / 'base' / 'vocab.json')
  metas = [checkpoints.read_meta(str(workdir / 'base' / model)) for model in ('lstm/seed_0', 'lstm_to_transformer/seed_1')]
  assert all(meta['vocab'] == vocab.words and meta['objective'] == 'classify' for meta in metas)
  # The analyses rebuild a grid's models from that metadata, on the test sets encoded with vocab.json.
  config = json.loads((workdir / 'base' / 'grid.json').read_text())['config']
  assert config['task'] == 'sva'
  probe = task.probe(sva_grid_config(), str(workdir / 'base'))
  assert isinstance(probe, analysis.Probe) and len(probe.sets['pooled'].labels) == 256
  assert type(probe.create_model(metas[1])).__name__ == 'Transformer'


def test_saved_models_with_different_vocabularies_are_refused(ablation, monkeypatch):
  workdir, _ = ablation
  config = sva_grid_config()
  config.models.lstm.checkpoint = str(workdir / 'base' / 'lstm' / 'seed_{seed}')
  assert task.saved_vocab(config) == sva_data.Vocab.load(workdir / 'base' / 'vocab.json')
  config.models.transformer.checkpoint = str(workdir / 'base' / 'transformer' / 'seed_{seed}')
  assert task.saved_vocab(config) == sva_data.Vocab.load(workdir / 'base' / 'vocab.json')
  read = task.teacher_vocab
  monkeypatch.setattr(task, 'teacher_vocab', lambda directory: (
      sva_data.Vocab([*read(directory).words, 'unseen']) if 'transformer/seed_1' in directory else read(directory)))
  with pytest.raises(ValueError, match='different vocabularies'):
    task.saved_vocab(config)


def test_language_models_on_the_grid(tmp_path):
  """The ':lm' grid: causal models, perplexity and the verb form each model prefers, the majority-form baseline,
  and the student's step-0 diagnostic of the next-word targets it is taught."""
  config = load_config('sva_smoke', 'lm', num_seeds=1, seed_parallelism='sequential')
  assert config.setups == ('lstm', 'transformer_seq', 'lstm_to_transformer_seq') and not config.cache_teacher_logits
  report = seed_grid.run(config, str(tmp_path))
  vocab = sva_data.Vocab.load(tmp_path / 'vocab.json')
  for setup, row in report['setups'].items():
    test = row['instances'][0]['attractors']
    # Better than a uniform guess over the vocabulary, and every verb was scored.
    assert 1.0 < test['perplexity'] < len(vocab), setup
    assert test['unscored_oov_verbs'] == 0 and test['count'] == 128 and test['num_target_tokens'] > 128
    assert ('teacher_agreement' in test) == ('_to_' in setup), setup
  meta = checkpoints.read_meta(str(tmp_path / 'transformer_seq' / 'seed_0'))
  assert meta['objective'] == 'lm' and meta['model'] == 'transformer_seq'
  # The perplexity is the model's: recomputed here from the restored LSTM's next-word logits.
  lstm = sva_models.create_model('lstm', vocab_size=len(vocab), objective='lm', **config.models.lstm.model_kwargs)
  data = task.load(config, str(tmp_path))
  split = data.test_sets['attractors']
  variables, _ = phases.restore_variables(lstm, str(tmp_path / 'lstm' / 'seed_0'), config.models.lstm,
                                          phases.example_input(data.train))
  log_probs = jax.nn.log_softmax(lstm.apply(variables, split.tokens, train=False))
  nll = -np.take_along_axis(np.asarray(log_probs), split.labels[..., None], -1)[..., 0]
  expected = np.exp((nll * split.weights).sum() / split.weights.sum())
  np.testing.assert_allclose(report['setups']['lstm']['instances'][0]['attractors']['perplexity'], expected, rtol=1e-4)
  text = (tmp_path / 'grid.md').read_text()
  assert 'Perplexity' in text and 'Majority-form baseline' in text and (tmp_path / 'accuracy_by_attractors.png').exists()
  assert report['majority_form_baseline']['attractors']['count'] == 128
  with open(tmp_path / 'metrics.jsonl') as f:
    taught = [r for r in map(json.loads, f) if r['phase'] == 'lstm_to_transformer_seq_seed_0' and r['step'] == 0][0]
  assert 0.0 < taught['teacher_targets/p_gold'] < 0.9  # next words are uncertain: soft targets


def test_cross_fitted_targets_come_from_the_fold_teacher_that_did_not_see_the_input(ablation, tmp_path):
  base, _ = ablation
  config = sva_grid_config(num_seeds=1, cross_fit_folds=2, setups=('lstm_to_transformer',), seed_parallelism='vmap')
  config.models.lstm.checkpoint = str(base / 'base' / 'lstm' / 'seed_{seed}')  # the whole split's teacher, saved
  report = seed_grid.run(config, str(tmp_path))
  assert report['cross_fit']['lstm_to_transformer']['folds'] == 2
  assert 'learns cross-fitted targets: per seed, 2 fold teachers' in (tmp_path / 'grid.md').read_text()
  records = [json.loads(line) for line in open(tmp_path / 'metrics.jsonl')]
  last_step = lambda phase: max(r['step'] for r in records if r['phase'] == phase)
  # 2 epochs at batch 32 over half of the 256 training examples (4 batches an epoch) for each fold teacher.
  assert last_step('lstm_fold_0_seed_0') == last_step('lstm_fold_1_seed_0') == 8

  data = task.load(config, str(tmp_path))
  train, mesh = data.train, sharding.data_mesh()
  job = phases.Job(config, mesh)
  # Called again, every fold teacher is restored from its final checkpoint (nothing retrained).
  logits = seed_grid.cross_fitted_targets('lstm', config, data, job, str(tmp_path)).logits[0]
  folds = np.array_split(np.random.default_rng(0).permutation(len(train)), 2)
  model = data.create_model('lstm', config.models.lstm.model_kwargs)
  predict = task.make_classifier_predict(model, mesh, 64)
  example = phases.example_input(train)
  whole_teacher, _ = phases.restore_variables(model, str(base / 'base' / 'lstm' / 'seed_0'), config.models.lstm,
                                              example)
  for j, held_out in enumerate(folds):
    fold_teacher, meta = phases.restore_variables(
        model, str(tmp_path / 'lstm_folds' / 'seed_0' / f'fold_{j}'), config.models.lstm, example)
    assert meta['settings']['training examples'] == len(train) - len(held_out)
    np.testing.assert_array_equal(logits[held_out], predict(fold_teacher, train)[held_out])
    assert not np.allclose(logits[held_out], predict(whole_teacher, train)[held_out], atol=1e-3)
  # What the student was taught (its step-0 diagnostic) is the cross-fitted logits.
  taught = [r for r in records if r['phase'] == 'lstm_to_transformer' and r['step'] == 0][0]
  expected = metrics.teacher_targets(logits, train.labels, config.kd.temperature)
  assert taught['teacher_targets/p_gold'] == pytest.approx(expected['p_gold'], rel=1e-6)
  assert report['cross_fit']['lstm_to_transformer']['target_accuracy'] == [
      pytest.approx(float(np.mean(logits.argmax(-1) == train.labels)))]
  # The fold teachers are models of this workdir that the report lists, so the analyses read it.
  assert {'lstm_folds/seed_0/fold_0', 'lstm_folds/seed_0/fold_1'} <= set(report['evaluated_checkpoints'])


@pytest.mark.parametrize('overrides,match', [
    ({'objective': 'lm', 'data.source': 'full_sentences', 'cache_teacher_logits': True}, "caches a classifier's"),
    ({'objective': 'lm', 'data.source': 'full_sentences', 'cache_teacher_logits': False,
      'kd.targets': 'shuffled_confidence'}, "needs objective='classify'"),
    ({'objective': 'lm', 'data.source': 'numpred', 'cache_teacher_logits': False},
     "language modelling needs full sentences; 'numpred'"),
    ({'data.dev_fraction': 1.5}, r'config.data.dev_fraction must be a finite number in \(0, 1\)'),
    ({'data.length_bucket': 0}, r'config.data.length_bucket must be an integer ≥ 1'),
    ({'models.transformer.batch_size': 12}, r'config.models.transformer.batch_size must be a multiple of the 8 devices'),
    ({'models.lstm.model_kwargs.dropout_rate': -0.1}, r'config.models.lstm.model_kwargs.dropout_rate must be'),
    ({'models.transformer.model_kwargs.num_heads': 3},
     'config.models.transformer.model_kwargs.num_heads=3 must divide dim=32'),
    ({'models.lstm.l2': -1e-5}, r'config.models.lstm.l2 must be a finite number in \[0, 3.40282e\+38\], got -1e-05'),
    ({'data.transfer_size': 10}, 'needs data.source=numpred'),
    ({'data.transfer_size': -1}, 'config.data.transfer_size must be an integer ≥ 0'),
    ({'cross_fit_folds': -2}, 'config.cross_fit_folds must be an integer ≥ 0'),
    ({'task': 'vision'}, r"unknown config.task 'vision'; the seed grid runs \['mnist', 'sva'\]"),
    ({'models.transformer.augment': 'crop'}, 'the SVA task has no augmentations'),
    ({'setups': ('lstm', 'cnn_to_lstm')}, "unknown model 'cnn'"),
    ({'cross_fit_folds': 1}, 'leaves a fold teacher nothing to train on'),
    ({'cross_fit_folds': 2, 'cache_teacher_logits': False}, r'cross-fitted logits .*\(cache_teacher_logits=True'),
    ({'cross_fit_folds': 2, 'mode': 'online'}, "config.mode='offline'"),
    ({'cross_fit_folds': 2, 'setups': ('lstm', 'transformer')}, 'it needs a <teacher>_to_<student> setup'),
    ({'setups': ('lstm', 'labels_to_labels')}, "unknown model 'labels' in grid setup 'labels_to_labels'"),
])
def test_what_the_sva_grid_cannot_run_is_refused_before_it_starts(overrides, match):
  config = sva_grid_config()
  if 'augment' in next(iter(overrides)):
    config.models.transformer.augment = ''
  config.update_from_flattened_dict(overrides)
  with pytest.raises(ValueError, match=match):
    seed_grid.check(config)


def test_a_run_with_another_vocabulary_leaves_a_finished_grids_vocab_json_alone(ablation):
  workdir, _ = ablation
  before = (workdir / 'base' / 'vocab.json').read_text()
  with pytest.raises(ValueError, match='holds another vocabulary than this run builds'):
    task.load(sva_grid_config(**{'data.vocab_min_count': 60}), str(workdir / 'base'))
  assert (workdir / 'base' / 'vocab.json').read_text() == before
  # The analyses refuse a model whose vocabulary is not the one they encode with.
  probe = task.probe(sva_grid_config(), str(workdir / 'base'))
  meta = checkpoints.read_meta(str(workdir / 'base' / 'lstm' / 'seed_0'))
  with pytest.raises(ValueError, match='another vocabulary than its vocab.json'):
    probe.create_model({**meta, 'vocab': meta['vocab'][:-1]})


def test_only_the_saved_models_of_the_grids_setups_set_its_vocabulary(ablation):
  workdir, _ = ablation
  config = sva_grid_config(setups=('transformer',))
  config.models.lstm.checkpoint = str(workdir / 'base' / 'lstm' / 'seed_{seed}')  # no setup uses the LSTM
  assert task.saved_vocab(config) is None


SVA_CONFIGS = ['sva_lstm_to_transformer', 'sva_lstm_to_universal_transformer', 'sva_transformer_to_lstm',
               'sva_lstm_to_lstm']


def test_every_data_source_has_its_headline_test_sets():
  assert set(task.HEADLINE_SETS) == set(task.SOURCES)  # a source without them failed after its data was read


def test_every_sva_config_is_valid():
  for name in SVA_CONFIGS:
    for variant in ('classify', 'lm', 'paper', 'lm,paper', 'cross_fit'):
      config = load_config(name, variant)
      seed_grid.check(config)
      assert config.task == 'sva' and config.num_seeds == 3
  assert load_config('sva_lstm_to_transformer', 'lm').setups == ('lstm', 'transformer_seq', 'lstm_to_transformer_seq')
  assert load_config('sva_lstm_to_lstm').setups == ('lstm', 'lstm_to_lstm')
  for variant in ('classify', 'lm'):  # the authors' UT is the causal one, in both objectives
    assert load_config('sva_lstm_to_universal_transformer', variant).setups[-1] == 'lstm_to_universal_transformer_seq'
  both = load_config('sva_lstm_to_transformer', 'paper,lm')  # variants compose, in a fixed order
  assert both.to_dict() == load_config('sva_lstm_to_transformer', 'lm,paper').to_dict()
  assert (both.objective, both.kd.alpha, both.models.transformer_seq.num_epochs) == ('lm', 0.9, 40.0)
  with pytest.raises(ValueError, match="unknown config variant 'big'"):
    sva_configs.pair_config('lstm', 'transformer', 'big')
  assert load_config('sva_lstm_to_transformer', 'cross_fit').cross_fit_folds == 5
  with pytest.raises(ValueError, match=r'cross-fitted logits .*\(cache_teacher_logits=True'):
    seed_grid.check(load_config('sva_lstm_to_transformer', 'lm,cross_fit'))
  transfer = load_config('sva_lstm_to_transformer', 'transfer')
  assert transfer.data.transfer_size == 30_000 and transfer.setups[-1] == 'labels_to_transformer'


def test_every_objective_is_accepted_on_sva_and_dkd_runs():
  # config.kd is one definition for every task (losses.kd_settings): each objective finds its weights there. Feature
  # objectives read the teacher's penultimate features in the step, which the SVA classifiers sow.
  for name, spec in losses.LOSSES.items():
    if spec.uses_teacher:
      seed_grid.check(load_config('sva_smoke', student_loss=name, cache_teacher_logits=not spec.uses_features))
  assert set(load_config('sva_smoke').kd) == set(load_config('smoke').kd)


def test_dkd_student_on_sva(tmp_path):
  config = load_config('sva_smoke', student_loss='dkd', num_seeds=1, setups=('lstm', 'lstm_to_transformer'),
                       **{'models.lstm.num_epochs': 1.0, 'models.transformer.num_epochs': 1.0})
  report = seed_grid.run(config, str(tmp_path))
  assert report['setups']['lstm_to_transformer']['title'] == 'LSTM→Transformer (dkd)'
  assert 0.0 <= report['setups']['lstm_to_transformer']['instances'][0]['dev']['teacher_agreement'] <= 1.0


def test_paper_teacher_regime():
  config = load_config('sva_lstm_to_transformer', 'paper_teacher')
  seed_grid.check(config)
  assert dict(config.models.lstm.model_kwargs) == dict(sva_configs.MODEL_KWARGS['lstm'], dropout_rate=0.8,
                                                       embedding_dropout=0.2, recurrent_dropout=0.8)
  assert (config.models.lstm.l2, config.kd.teacher_mode, config.cache_teacher_logits) == (1e-5, 'train', False)
  assert config.models.transformer.l2 == 0.0  # the student model keeps its own settings
  with pytest.raises(ValueError, match="':paper_teacher' variant is the authors' LSTM teacher regime"):
    load_config('sva_transformer_to_lstm', 'paper_teacher')


def test_paper_teacher_runs_with_its_train_mode_teacher_in_the_step(tmp_path):
  config = load_config('sva_smoke', 'paper_teacher', num_seeds=1, setups=('lstm', 'lstm_to_transformer'),
                       **{'models.lstm.num_epochs': 1.0, 'models.transformer.num_epochs': 1.0})
  report = seed_grid.run(config, str(tmp_path))
  assert not report['cache_teacher_logits'] and report['config']['kd']['teacher_mode'] == 'train'
  with open(tmp_path / 'metrics.jsonl') as f:  # what the student is taught: the train-mode teacher's targets
    assert any(r['phase'] == 'lstm_to_transformer_seed_0' and 'teacher_targets/p_gold' in r for r in map(json.loads, f))


def test_missing_data_directory_says_how_to_fix_it(tmp_path, monkeypatch):
  monkeypatch.delenv(task.DATA_ENV, raising=False)
  with pytest.raises(FileNotFoundError, match='set config.data.dir or \\$KD_JAX_SVA_DIR'):
    main.run(load_config('sva_smoke', **{'data.source': 'numpred'}), str(tmp_path))


def test_a_non_sva_checkpoint_is_refused_as_teacher(tmp_path):
  meta_free = tmp_path / 'mnist_like'
  mngr = checkpoints.manager(str(meta_free))
  state = training.init_state(mnist_models.MLP(hidden_sizes=(4,)), optax.sgd(0.1), jax.random.PRNGKey(0),
                              jnp.zeros((1, 28, 28, 1)))
  checkpoints.save(mngr, state, {'model': 'mlp', 'model_kwargs': {}})
  mngr.close()
  with pytest.raises(ValueError, match='no vocabulary in its metadata; it is not an SVA teacher'):
    main.run(load_config('sva_smoke', **{'models.lstm.checkpoint': str(meta_free), 'num_seeds': 1}),
             str(tmp_path / 'run'))


def test_a_config_without_setups_is_refused():
  config = load_config('sva_smoke')
  del config.setups
  with pytest.raises(ValueError, match='config.setups is missing: every kd_jax experiment is a seed grid'):
    main.run(config, '/tmp/unused')


@pytest.mark.skipif(not SVA_DIR, reason='KD_JAX_SVA_DIR not set (real Linzen data)')
def test_real_numpred_short_run(tmp_path):
  config = load_config('sva_smoke', **{'data.source': 'numpred', 'data.dir': SVA_DIR, 'data.num_train': 640,
                                       'data.num_test': 256, 'num_seeds': 1, 'setups': ('lstm', 'lstm_to_transformer')})
  report = main.run(config, str(tmp_path))
  assert report['num_train'] == 640 and 'numpred.val' in report['data_source']
  student = report['setups']['lstm_to_transformer']['instances'][0]
  assert set(student) >= {'dev', 'test_1', 'test_5'}
  assert student['test_3']['accuracy_by_attractors'].keys() == {'3'}


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
  config = load_config('sva_smoke', 'transfer', **{'data.source': 'numpred', 'data.dir': data_dir,
                                                   'data.transfer_size': 96, 'num_seeds': 1})
  assert config.setups == ('lstm', 'transformer', 'lstm_to_transformer', 'labels_to_transformer')
  train, tests, _, transfer = task.load_examples(config)
  whole = sva_data.read_numpred(os.path.join(data_dir, 'numpred.test.1'), 1)
  assert len(transfer) == 96 and len(tests['test_1']) == 64 and len(tests['test_2']) == 16
  lines = lambda ex: collections.Counter(' '.join(p) + f'|{label}' for p, label in zip(ex.prefixes, ex.labels))
  # A partition of numpred.test.1's lines: the transfer set is never evaluated on.
  assert lines(transfer) + lines(tests['test_1']) == lines(whole)
  report = main.run(config, str(tmp_path / 'run'))
  assert report['num_student_train'] == 288 + 96 and report['num_test']['test_1'] == 64
  steps = {json.loads(line)['phase']: json.loads(line)['step'] for line in open(tmp_path / 'run' / 'metrics.jsonl')}
  # 3 epochs at batch 32: the teacher and the independent rows see train (288 = 320 - 10% dev), the KD student and
  # its control (labels_to_transformer) train + transfer set (384).
  assert steps['lstm_seed_0'] == steps['transformer_seed_0'] == 27
  assert steps['lstm_to_transformer_seed_0'] == steps['labels_to_transformer_seed_0'] == 36
  # The control of the KD student is the student model trained as a student on the gold labels of both.
  setups = report['setups']
  assert setups['labels_to_transformer']['title'] == 'Transformer (as a student, gold labels)'
  gain = report['gain_over_independent']['lstm_to_transformer']['test_1']['mean']
  assert gain == pytest.approx(setups['lstm_to_transformer']['instances'][0]['test_1']['accuracy']
                               - setups['labels_to_transformer']['instances'][0]['test_1']['accuracy'])
  assert set(report['control_agreement']) == {'lstm_to_transformer'}
  assert 'labels_to_transformer' not in report['gain_over_independent']
  text = (tmp_path / 'run' / 'grid.md').read_text()
  assert '(384 for the student role' in text and 'Transformer (as a student, gold labels) (the control)' in text


@pytest.mark.parametrize('overrides, match', [
    ({'data.source': 'numpred', 'data.transfer_size': 10, 'kd.alpha': 0.5}, 'set config.kd.alpha=1.0'),
    ({'data.source': 'numpred', 'data.transfer_size': 160}, 'leaves nothing of numpred.test.1'),
    ({'data.source': 'numpred', 'data.transfer_size': 10, 'cross_fit_folds': 2}, 'no cross_fit_folds'),
    ({'data.source': 'numpred', 'data.transfer_size': 10, 'kd.gold_weight': 0.5}, 'kd.gold_weight=0'),
    ({'data.source': 'numpred', 'data.transfer_size': 10, 'mode': 'online'}, "mode='offline'"),
    ({'data.source': 'numpred', 'data.transfer_size': 10, 'kd.targets': 'shuffled_confidence'}, "kd.targets='teacher'"),
    ({'data.source': 'numpred', 'data.transfer_size': 10, 'student_overrides': {'loss': 'cross_entropy'}},
     "student losses \\['cross_entropy'\\]"),
    ({'data.source': 'numpred', 'data.transfer_size': 10, 'setups': ('lstm', 'transformer', 'lstm_to_transformer')},
     'their control is labels_to_transformer'),
])
def test_bad_transfer_settings_fail_early(tmp_path, overrides, match):
  config = load_config('sva_smoke', 'transfer', **{'data.dir': _tiny_numpred(tmp_path / 'numpred'), **overrides})
  with pytest.raises(ValueError, match=match):
    main.run(config, str(tmp_path / 'run'))


def test_lm_report_says_how_many_verbs_were_not_scored():
  view = {'runs': {'LSTM': [{'test': {'unscored_oov_verbs': 18}}]}, 'num_test': {'test': 128}}
  assert "not scored: {'test': 18} of {'test': 128}" in sva_report._unscored_note(view)
  view['runs']['LSTM'][0]['test']['unscored_oov_verbs'] = 0
  assert sva_report._unscored_note(view) == ''
