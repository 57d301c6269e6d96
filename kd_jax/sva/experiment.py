"""The subject–verb agreement job: teacher, independent student and distilled student over several seeds.

``run(config, workdir)`` is what ``python -m kd_jax.main`` calls for a config
with ``task='sva'``. For each seed it trains (or, with
``config.teacher.checkpoint``, restores) the teacher, trains the student model
on gold labels (the baseline) and distils the teacher into the same student
model (same init and data order as the baseline: only the loss differs), then
evaluates all three. Layout of the workdir::

  vocab.json                     the word vocabulary (also in every checkpoint's metadata)
  {teacher,independent,student}/seed_<k>/   Orbax checkpoints
  teacher_folds/seed_<k>/fold_<j>/  with config.cross_fit_folds: the fold teachers whose out-of-fold logits are
                                 the KD student's targets (:func:`cross_fitted_logits`)
  independent_transfer/seed_<k>/ with a transfer set (config.data.transfer_size): the student model on the
                                 gold labels of train + transfer set (the control for the KD student, which
                                 learns the transfer set from the teacher only)
  metrics.jsonl, tensorboard/    training metrics
  results.json, results.md       every run's metrics and the mean ± std table
  accuracy_by_attractors.png     accuracy against the number of attractors
"""
import json
import os
import time
from typing import Any, Dict

from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from kd_jax import analysis
from kd_jax import checkpoints
from kd_jax import config_lib
from kd_jax import metric_writer
from kd_jax import metrics as metrics_lib
from kd_jax import paths
from kd_jax import sharding
from kd_jax import targets as targets_lib
from kd_jax import phases
from kd_jax import training
from kd_jax.sva import data as sva_data
from kd_jax.sva import metrics as sva_metrics
from kd_jax.sva import models as sva_models
from kd_jax.sva import report

SOURCES = ('numpred', 'linzen_tsv', 'full_sentences', 'synthetic')
ROLES = ('teacher', 'independent', 'student', 'independent_transfer')
DATA_ENV = 'KD_JAX_SVA_DIR'


# ----------------------------------------------------------------------------- config and data

def check_data_and_eval(config):
  """The data, evaluation and logging fields the job and the seed grid share (nothing is read)."""
  if config.data.source not in SOURCES:
    raise ValueError(f'unknown config.data.source {config.data.source!r}; choose one of {SOURCES}')
  if config.objective == 'lm' and config.data.source in ('numpred', 'linzen_tsv'):
    raise ValueError(f'language modelling needs full sentences; {config.data.source!r} holds only prefixes '
                     '(use data.source=full_sentences or synthetic)')
  if config.objective == 'classify' and config.data.source == 'full_sentences':
    raise ValueError('full_sentences gives no verb-number labels; classify with numpred, linzen_tsv or synthetic')
  config_lib.check_job(config, jax.device_count())
  config_lib.check_number(config, 'data.dev_fraction', high=1.0, high_open=True)
  for field, minimum in (('split_seed', 0), ('vocab_min_count', 1), ('max_length', 0), ('length_bucket', 1),
                         ('transfer_size', 0), ('synthetic.num_train', 1), ('synthetic.num_test', 1),
                         ('synthetic.max_intervening', 0)):
    config_lib.check_int(config, f'data.{field}', minimum)


def check_model(config, field: str):
  """The model of ``config.<field>`` is built and initialised on one sentence (errors name the model_kwargs field);
  any vocabulary shows what the settings build, the real one is known once the data is read."""
  cfg = config_lib.get_field(config, field)
  config_lib.check_model_builds(field, lambda: sva_models.create_model(
      cfg.model, vocab_size=8, objective=config.objective, **cfg.model_kwargs), np.full((1, 4), 5, np.int32))


def check_config(config: ml_collections.ConfigDict):
  """Fails fast, before any data is read, on settings the job cannot use."""
  check_data_and_eval(config)
  if config.kd.get('targets', 'teacher') != 'teacher' and config.objective != 'classify':
    raise ValueError(f'config.kd.targets={config.kd.targets!r} is a control made from cached classification '
                     f'targets; it needs objective=classify, not {config.objective!r}')
  config_lib.check_choice(config, 'cache_teacher_logits', (False, True))
  if config.objective == 'lm' and config.cache_teacher_logits:
    raise ValueError("config.cache_teacher_logits=True caches a classifier's [N, 2] teacher logits; a language "
                     "model's [N, L, vocabulary] would not fit, its teacher runs in the step: set it False (the "
                     "':lm' variant does)")
  if config.data.transfer_size:
    if config.data.source != 'numpred' or config.objective != 'classify':
      raise ValueError('config.data.transfer_size splits numpred.test.1 into a transfer set and a held-out part: it '
                       f'needs data.source=numpred and objective=classify, not {config.data.source!r} / '
                       f'{config.objective!r}')
    if not targets_lib.uses_teacher(config.student) or config.kd.alpha != 1.0:
      raise ValueError('with config.data.transfer_size the KD student must learn the transfer set from the teacher '
                       'alone (its gold labels are for the control): set config.kd.alpha=1.0 and a distillation '
                       f'student loss (now alpha={config.kd.alpha}, config.student.loss={config.student.loss!r})')
  config_lib.check_int(config, 'cross_fit_folds', 0)
  if config.cross_fit_folds:
    if config.cross_fit_folds == 1:
      raise ValueError('config.cross_fit_folds=1 leaves a fold teacher nothing to train on: use 0 (off) or k ≥ 2')
    if (config.objective != 'classify' or not config.cache_teacher_logits or config.data.transfer_size
        or not targets_lib.uses_teacher(config.student)):
      raise ValueError('config.cross_fit_folds gives a distilled classification student cached, cross-fitted '
                       'teacher logits: it needs objective=classify, cache_teacher_logits=True, no '
                       'data.transfer_size and a distillation student loss')
  for role in ('teacher', 'student'):
    config_lib.check_phase(config, role, jax.device_count())
    check_model(config, role)
  phases.check_kd_config(config, config.teacher.loss, config.student.loss)
  phases.check_loss_batch(config.student, 'student')
  if config.num_seeds < 1:
    raise ValueError(f'config.num_seeds must be ≥ 1, got {config.num_seeds}')
  phases.teacher_is_shared(config, config.teacher.checkpoint, seeds_of(config), 'teacher.checkpoint')


def seeds_of(config):
  return list(range(config.seed, config.seed + config.num_seeds))


def data_directory(config) -> str:
  directory = config.data.dir or os.environ.get(DATA_ENV, '')
  if not directory:
    raise FileNotFoundError(f'no SVA data directory: set config.data.dir or ${DATA_ENV} (e.g. ../shared/data/sva), '
                            'or run the offline demo with --config.data.source=synthetic')
  if not epath.Path(directory).is_dir():
    raise FileNotFoundError(f'SVA data directory {directory} does not exist (config.data.dir / ${DATA_ENV})')
  return directory


def _find(directory: str, name: str) -> str:
  """``name`` in ``directory`` or one of its subdirectories (e.g. sva/linzen_simple/numpred.val)."""
  directory = epath.Path(directory)
  for root in [directory] + sorted(directory.iterdir()):
    if (root / name).exists():
      return str(root / name)
  raise FileNotFoundError(f'{name} not found in {directory} or its subdirectories (config.data.dir / ${DATA_ENV})')


def load_examples(config):
  """(train examples, {test set name: examples}, a description of the source, transfer examples or None) per
  ``config.data``. With ``transfer_size`` N, N inputs drawn from numpred.test.1 (seed ``split_seed``) are the
  transfer set and ``test_1`` is the rest of that file."""
  cfg = config.data
  if cfg.source == 'synthetic':
    train = sva_data.synthetic_grammar(cfg.synthetic.num_train, cfg.split_seed, cfg.synthetic.max_intervening)
    tests = {'dev': sva_data.synthetic_grammar(cfg.synthetic.num_test, cfg.split_seed + 1,
                                               cfg.synthetic.max_intervening)}
    # All intervening nouns are attractors here: accuracy per count is the agreement-with-attractors curve.
    tests['attractors'] = sva_data.synthetic_grammar(cfg.synthetic.num_test, cfg.split_seed + 2,
                                                     cfg.synthetic.max_intervening, attractor_prob=1.0)
    if config.objective == 'classify':
      train = sva_data.lm_to_classification(train)
      tests = {k: sva_data.lm_to_classification(v) for k, v in tests.items()}
    source = f'synthetic agreement grammar (seed {cfg.split_seed})'
  elif cfg.source == 'numpred':
    directory = data_directory(config)
    val_path = _find(directory, 'numpred.val')
    train, dev = sva_data.holdout_split(sva_data.read_numpred(val_path), cfg.dev_fraction, cfg.split_seed)
    tests = {'dev': dev}
    for name, (filename, attractors) in sva_data.NUMPRED_TESTS.items():
      tests[name] = sva_data.read_numpred(_find(directory, filename), attractors)
    source = (f'Linzen numpred: {val_path} split {1 - cfg.dev_fraction:.0%}/{cfg.dev_fraction:.0%} train/dev '
              f'(seed {cfg.split_seed}); tests numpred.test.1-5 in {epath.Path(val_path).parent}')
    if cfg.transfer_size:
      if cfg.transfer_size >= len(tests['test_1']):
        raise ValueError(f'config.data.transfer_size={cfg.transfer_size} leaves nothing of numpred.test.1 '
                         f'({len(tests["test_1"])} lines) to evaluate on')
      transfer, tests['test_1'] = sva_data.split_off(tests['test_1'], cfg.transfer_size, cfg.split_seed)
      source += (f'; transfer set: {len(transfer)} inputs of numpred.test.1 (seed {cfg.split_seed}), test_1 = the '
                 f'other {len(tests["test_1"])}')
  elif cfg.source == 'linzen_tsv':
    path = _find(data_directory(config), cfg.tsv_file)
    splits = sva_data.paper_split(sva_data.read_linzen_tsv(path), seed=42)
    train, tests = splits['train'], {'valid': splits['valid'], 'test': splits['test']}
    source = f'Linzen full corpus {path}, paper split (seed 42: 10% train / 1% valid / 89% test)'
  else:  # full_sentences
    stem = _find(data_directory(config), cfg.sentences_stem + '.text')[:-len('.text')]
    train, test = sva_data.holdout_split(sva_data.read_full_sentences(stem), cfg.dev_fraction, cfg.split_seed)
    tests = {'test': test}
    source = (f'Linzen full sentences {stem}.text/.gold/.eval split {1 - cfg.dev_fraction:.0%}/'
              f'{cfg.dev_fraction:.0%} train/test (seed {cfg.split_seed})')
  if cfg.num_train:
    if cfg.num_train > len(train):
      raise ValueError(f'config.data.num_train={cfg.num_train} asks for more examples than the {len(train)} of the '
                       f'training split of {source} (0 = all of them)')
    train = train.subset(np.arange(cfg.num_train))
  if cfg.num_test:  # at most num_test per test set (the sets differ in size: numpred.test.5 has 159 lines)
    if cfg.num_test > max(len(v) for v in tests.values()):
      raise ValueError(f'config.data.num_test={cfg.num_test} asks for more examples than any test set holds '
                       f'({ {k: len(v) for k, v in tests.items()} }; 0 = all of them)')
    tests = {k: v.subset(np.arange(min(cfg.num_test, len(v)))) for k, v in tests.items()}
  return train, tests, source, transfer if cfg.transfer_size else None


def tokens(examples):
  return examples.prefixes if isinstance(examples, sva_data.AgreementExamples) else examples.sentences


def padded_length(config, example_sets) -> int:
  """config.data.max_length, or the longest encoded sequence of all sets rounded up to the length bucket."""
  return config.data.max_length or sva_data.bucket_length(
      2 + max(len(t) for ex in example_sets for t in tokens(ex)), 1 << 16, config.data.length_bucket)


def probe(config, workdir: str) -> analysis.Probe:
  """What the analyses (python -m kd_jax.analyze) run this task's models on: the test sets, grouped by attractors.

  ``pooled`` is every test set together, shuffled once (seed 0), so that its first items cover every attractor
  count. The classification objective only: a language model's outputs are per token.
  """
  if config.objective != 'classify':
    raise ValueError(f"the analyses cover SVA's classification objective; {workdir} was trained with "
                     f"objective={config.objective!r}")
  train_examples, test_examples, _, transfer_examples = load_examples(config)
  vocab = sva_data.Vocab.load(epath.Path(workdir) / 'vocab.json')
  max_length = padded_length(config, [train_examples, *test_examples.values()] +
                             ([transfer_examples] if transfer_examples is not None else []))
  encoded = {name: encode(examples, vocab, config, max_length) for name, examples in test_examples.items()}
  sets = {name: analysis.ProbeSet(split.tokens, split.labels, split.attractors) for name, split in encoded.items()}
  order = np.random.default_rng(0).permutation(sum(len(s.labels) for s in sets.values()))
  sets['pooled'] = analysis.ProbeSet(*(np.concatenate([getattr(s, f) for s in sets.values()])[order]
                                       for f in ('inputs', 'labels', 'groups')))

  def create_model(meta):
    if sva_data.Vocab(meta['vocab']) != vocab:
      raise ValueError(f'a model under {workdir} was trained with another vocabulary than its vocab.json, with which '
                       'the analyses encode the test sets')
    return sva_models.create_model(meta['model'], vocab_size=len(meta['vocab']), objective=meta['objective'],
                                   **meta['model_kwargs'])

  return analysis.Probe(sets, create_model, default_sets=('pooled',), group_name='attractors')


def encode(examples, vocab, config, max_length: int) -> sva_data.SvaSplit:
  encoder = sva_data.encode_lm if config.objective == 'lm' else sva_data.encode_classification
  return encoder(examples, vocab, max_length, config.data.length_bucket)


# ----------------------------------------------------------------------------- evaluation

def make_lm_scorer(model, batch_size: int, compute_dtype: str = 'float32'):
  """``score(variables, split)``: (Σ target NLL, number of targets, [N, 2] logits of (wrong, correct) verb form)."""

  apply = training.apply_fn(model, compute_dtype)

  @jax.jit
  def score_batch(variables, batch):
    logits = apply(variables, batch['tokens'], train=False)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch['labels'])
    at_verb = jnp.take_along_axis(logits, batch['verb_index'][:, None, None], axis=1)[:, 0]
    pair = jnp.stack([jnp.take_along_axis(at_verb, batch[ids][:, None], axis=1)[:, 0]
                      for ids in ('wrong_ids', 'correct_ids')], axis=-1)
    return (nll * batch['weights']).sum(), pair

  def score(variables, split: sva_data.SvaSplit):
    total_nll, pairs = 0.0, []
    for i in range(0, len(split), batch_size):
      part = slice(i, i + batch_size)
      nll, pair = score_batch(variables, {field: getattr(split, field)[part] for field in (
          'tokens', 'labels', 'weights', 'verb_index', 'wrong_ids', 'correct_ids')})
      total_nll += float(nll)
      pairs.append(np.asarray(pair))
    return total_nll, int(split.weights.sum()), np.concatenate(pairs)

  return score


def evaluate(model, variables, test_sets: Dict[str, sva_data.SvaSplit], mesh, config, name: str = 'model'):
  """(agreement metrics on every test set (and perplexity for language models), the predicted classes per test set:
  the verb number, or for language models whether the correct form beats the wrong one, over the scored verbs).
  Non-finite outputs are an error naming the model (``name``) and the set."""
  results, predictions = {}, {}
  if config.objective == 'lm':
    score = make_lm_scorer(model, config.eval.batch_size, config.compute_dtype)
    for set_name, split in test_sets.items():
      total_nll, num_tokens, pair_logits = score(variables, split)
      metrics_lib.check_finite(pair_logits, f'{name} on {set_name}')
      # Verbs outside the vocabulary cannot be scored; they are counted and left out.
      known = (split.correct_ids != sva_data.UNK_ID) & (split.wrong_ids != sva_data.UNK_ID)
      result = sva_metrics.agreement_metrics(pair_logits[known], np.ones(int(known.sum()), np.int32),
                                             split.attractors[known], split.distances[known], config.eval.ece_bins)
      results[set_name] = {**result, 'perplexity': sva_metrics.perplexity(total_nll, num_tokens),
                           'num_target_tokens': num_tokens, 'unscored_oov_verbs': int((~known).sum())}
      predictions[set_name] = pair_logits[known].argmax(-1)
    return results, predictions
  predict = make_classifier_predict(model, mesh, config.eval.batch_size, config.compute_dtype)
  for set_name, split in test_sets.items():
    logits = metrics_lib.check_finite(predict(variables, split), f'{name} on {set_name}')
    predictions[set_name] = logits.argmax(-1)
    results[set_name] = sva_metrics.agreement_metrics(logits, split.labels, split.attractors, split.distances,
                                                      config.eval.ece_bins)
  return results, predictions


def majority_form_baselines(train_examples, test_examples, test_sets):
  """Per test set, :func:`kd_jax.sva.metrics.majority_form_baseline` over the verbs the models are scored on (both
  forms in the vocabulary)."""
  baselines = {}
  for name, examples in test_examples.items():
    split = test_sets[name]
    known = np.flatnonzero((split.correct_ids != sva_data.UNK_ID) & (split.wrong_ids != sva_data.UNK_ID))
    baselines[name] = sva_metrics.majority_form_baseline(
        train_examples.sentences, [examples.correct[i] for i in known], [examples.wrong[i] for i in known],
        examples.attractors[known])
  return baselines


def make_classifier_predict(model, mesh, batch_size: int, compute_dtype: str = 'float32'):
  """``predict(variables, split) -> [N, 2]`` logits, in batches of similar length with their padding trimmed."""
  predict = training.make_predict_fn(model, mesh, batch_size, compute_dtype)

  def predict_split(variables, split: sva_data.SvaSplit) -> np.ndarray:
    order = np.argsort(split.lengths, kind='stable')
    logits = np.empty((len(split), sva_models.NUM_CLASSES), np.float32)
    for i in range(0, len(split), batch_size):
      logits[order[i:i + batch_size]] = predict(variables, split.batch(order[i:i + batch_size])['inputs'])
    return logits

  return predict_split


# ----------------------------------------------------------------------------- the job

def cross_fitted_logits(folds_phase: phases.Phase, train_examples, encode_examples, job: phases.Job) -> np.ndarray:
  """[N, 2] eval-mode logits of ``folds_phase.train`` (``encode_examples(train_examples)``), row i from the one fold
  teacher that did not train on input i.

  ``folds_phase`` is the teacher's phase for one seed with ``directory`` ``<workdir>/teacher_folds/seed_<seed>``.
  The split is cut into ``config.cross_fit_folds`` folds (drawn with the seed); fold teacher j trains with the
  teacher's settings, seed and initialisation on the other folds, in ``<directory>/fold_<j>`` (resumed like any run),
  and labels fold j from what it saved.
  """
  config, train, (seed,) = job.config, folds_phase.train, folds_phase.seeds
  settings = ml_collections.ConfigDict({**folds_phase.settings.to_dict(), 'checkpoint': ''})  # always trained here
  predict = make_classifier_predict(folds_phase.model, job.mesh, config.eval.batch_size, config.compute_dtype)
  folds = np.array_split(np.random.default_rng(seed).permutation(len(train)), config.cross_fit_folds)
  logits = np.empty((len(train), sva_models.NUM_CLASSES), np.float32)
  for j, held_out in enumerate(folds):
    others = np.setdiff1d(np.arange(len(train)), held_out)
    variables, _, _ = phases.teacher_for_seed(folds_phase.replace(
        name=f'teacher_fold_{j}/seed_{seed}', settings=settings, train=encode_examples(train_examples.subset(others)),
        directory=os.path.join(folds_phase.directory, f'fold_{j}')), job)
    logits[held_out] = predict(variables, train)[held_out]
  return logits


def teacher_vocab(directory: str) -> sva_data.Vocab:
  """The vocabulary saved with a teacher checkpoint: offline KD must encode data exactly as the teacher saw it."""
  meta = checkpoints.read_meta(directory)
  if 'vocab' not in meta:
    raise ValueError(f'checkpoint {directory} has no vocabulary in its metadata; it is not an SVA teacher')
  return sva_data.Vocab(meta['vocab'])


def run(config: ml_collections.ConfigDict, workdir: str) -> Dict[str, Any]:
  """Runs the whole job and returns what it writes to ``results.json``."""
  check_config(config)
  paths.absolute(workdir).mkdir(parents=True, exist_ok=True)
  t_start = time.perf_counter()
  train_examples, test_examples, source, transfer_examples = load_examples(config)
  logging.info('SVA data: %s; %d training examples, test sets %s', source, len(train_examples),
               {k: len(v) for k, v in test_examples.items()})
  config_lib.check_batch_sizes(config, len(train_examples), source)
  extra_sets = [transfer_examples] if transfer_examples is not None else []
  if config.teacher.checkpoint:
    vocab = teacher_vocab(phases.checkpoint_path(config.teacher.checkpoint, config.seed))
  else:
    vocab = sva_data.Vocab.build(tokens(train_examples), config.data.vocab_min_count)
  if sharding.is_primary():
    vocab.save(epath.Path(workdir) / 'vocab.json')
  max_length = padded_length(config, [train_examples, *test_examples.values(), *extra_sets])
  train = encode(train_examples, vocab, config, max_length)
  # The KD student and the 'independent_transfer' control train on train + transfer set; the others on train.
  train_of = {'teacher': train, 'independent': train}
  if transfer_examples is not None:
    train_of['student'] = train_of['independent_transfer'] = encode(
        sva_data.AgreementExamples.concatenate([train_examples, transfer_examples]), vocab, config, max_length)
  else:
    train_of['student'] = train
  test_sets = {k: encode(v, vocab, config, max_length) for k, v in test_examples.items()}
  logging.info('Vocabulary: %d words (from the %s); sequences padded to ≤ %d tokens', len(vocab),
               'teacher checkpoint' if config.teacher.checkpoint else 'training split', max_length)

  mesh = sharding.data_mesh()
  gold_student = ml_collections.ConfigDict({**config.student.to_dict(), 'loss': 'cross_entropy'})
  settings = {'teacher': config.teacher, 'student': config.student, 'independent': gold_student,
              'independent_transfer': gold_student}
  model_of = {role: sva_models.create_model(cfg.model, vocab_size=len(vocab), objective=config.objective,
                                            **cfg.model_kwargs) for role, cfg in settings.items()}
  roles = [r for r in ROLES if r in train_of and (r != 'independent' or config.train_independent_student)]
  example = phases.example_input(train)
  extra_meta = {'vocab': vocab.words, 'objective': config.objective}
  runs = {role: [] for role in roles}
  shared_teacher = phases.teacher_is_shared(config, config.teacher.checkpoint, seeds_of(config), 'teacher.checkpoint')
  cross_fit_accuracy = []  # per seed: how often the cross-fitted targets' argmax is the gold label
  teacher_predictions = {}  # per test set, this seed's teacher's: each student's per-example agreement with it
  timing = {role: 0.0 for role in roles}
  writer = metric_writer.MetricWriter(workdir)
  job = phases.Job(config, mesh, writer)
  predictor = lambda model: make_classifier_predict(model, mesh, config.eval.batch_size, config.compute_dtype)
  try:
    for seed in seeds_of(config):
      variables = {}
      for role in roles:
        t0 = time.perf_counter()
        cfg = settings[role]
        phase = phases.Phase(f'{role}/seed_{seed}', cfg, model_of[role], train_of[role],
                             os.path.join(workdir, role, f'seed_{seed}'), [seed], phases.STUDENT_STREAM,
                             field='config.student', extra_meta=extra_meta)
        if role == 'teacher':
          variables[role], directory, meta = phases.teacher_for_seed(
              phase.replace(field='config.teacher'), job)
          if sva_data.Vocab(meta.get('vocab', [])) != vocab:
            raise ValueError(f'the teacher in {directory} was trained with another vocabulary than the teacher of '
                             f'seed {config.seed}; offline KD needs one vocabulary for all seeds')
        else:
          teacher = targets_lib.Teacher(model_of['teacher'], variables['teacher'], predictor)
          if targets_lib.uses_teacher(cfg) and config.cross_fit_folds:
            folds_phase = phases.Phase(f'teacher_folds/seed_{seed}', config.teacher, model_of['teacher'], train,
                                       os.path.join(workdir, 'teacher_folds', f'seed_{seed}'), [seed],
                                       phases.TEACHER_STREAM, field='config.teacher', extra_meta=extra_meta)
            cached = cross_fitted_logits(folds_phase, train_examples,
                                         lambda ex: encode(ex, vocab, config, max_length), job)
            cross_fit_accuracy.append(float(np.mean(cached.argmax(-1) == train.labels)))
            timing['teacher_folds'] = timing.get('teacher_folds', 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            targets = targets_lib.Targets(logits=cached)
          else:
            targets = targets_lib.for_phase(config, cfg, teacher, phase.train)
          phases.train_model(phase, targets, job)
          directory = phase.directory
          # Evaluate what was saved, as an offline-KD user would.
          variables[role], _ = phases.restore_variables(phase.model, directory, cfg, example, seed)
        model = phase.model
        timing[role] += time.perf_counter() - t0
        result, predictions = evaluate(model, variables[role], test_sets, mesh, config, f'{role} seed {seed}')
        if role == 'teacher':
          teacher_predictions = predictions
        else:
          for name, predicted in predictions.items():
            result[name]['teacher_agreement'] = float(np.mean(predicted == teacher_predictions[name]))
        if not (role == 'teacher' and shared_teacher and runs[role]):  # one teacher is one run, not one per seed
          runs[role].append({'seed': seed, 'checkpoint': str(paths.absolute(directory)), **result})
        logging.info('%s seed %d: %s', role, seed, _one_line(result))
  finally:
    writer.close()

  results = {'data_source': source, 'synthetic': config.data.source == 'synthetic', 'objective': config.objective,
             'models': {role: settings[role].model for role in roles}, 'vocab_size': len(vocab),
             'num_train': len(train), 'num_test': {k: len(v) for k, v in test_sets.items()},
             'num_transfer': len(transfer_examples) if transfer_examples is not None else 0,
             'cross_fit': ({'folds': config.cross_fit_folds, 'target_accuracy': cross_fit_accuracy}
                           if config.cross_fit_folds else None),
             'runs': runs, 'summary': report.summarise(runs), 'num_devices': mesh.size,
             'shared_teacher': shared_teacher,
             'majority_form_baseline': (majority_form_baselines(train_examples, test_examples, test_sets)
                                        if config.objective == 'lm' else None),
             'timing': {**{f'{r}_seconds': t for r, t in timing.items()},
                        'total_seconds': time.perf_counter() - t_start},
             'config': json.loads(config.to_json()), 'evaluated_checkpoints': checkpoints.models_under(
                 workdir, roles + (['teacher_folds'] if config.cross_fit_folds else []))}
  report.write_report(results, workdir)
  return results


def _one_line(result) -> str:
  return ', '.join(f'{name} acc {r["accuracy"]:.4f}' + (f' ppl {r["perplexity"]:.1f}' if 'perplexity' in r else '')
                   for name, r in result.items())
