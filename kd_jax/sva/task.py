"""Subject–verb agreement as a task of the seed grid (:mod:`kd_jax.seed_grid`): the same shape as
``kd_jax/mnist/task.py``.

Both objectives: the verb-number classifier (``config.objective='classify'``), and language modelling (``'lm'``),
scored on which verb form the model prefers at the verb, with its perplexity. With ``config.data.transfer_size`` the
student role also trains on a transfer set split off numpred.test.1 (its control: ``labels_to_<student>``).
"""
import os
from typing import NamedTuple

from etils import epath
import jax
import jax.numpy as jnp
import numpy as np
import optax

from kd_jax import analysis
from kd_jax import checkpoints
from kd_jax import config_lib
from kd_jax import grid_report
from kd_jax import metrics as metrics_lib
from kd_jax import phases
from kd_jax import seed_grid
from kd_jax import sharding
from kd_jax import targets as targets_lib
from kd_jax import training
from kd_jax.sva import data as sva_data
from kd_jax.sva import metrics as sva_metrics
from kd_jax.sva import models
from kd_jax.sva import report

MODELS = models.MODELS
SOURCES = ('numpred', 'linzen_tsv', 'full_sentences', 'synthetic')
DATA_ENV = 'KD_JAX_SVA_DIR'
PAPER_GAIN = None  # the paper reports the SVA models' accuracies, not one gain to mark
# The two test sets a grid's sweeps and ablations headline, per data source: the most attractors with a sizeable
# test set (numpred.test.4: 4 attractors; test.5 has 159 lines), and the fewest (numpred.test.1: one).
# (Language modelling's full sentences have one test set.)
HEADLINE_SETS = {'numpred': ('test_4', 'test_1'), 'synthetic': ('attractors', 'dev'),
                 'linzen_tsv': ('test', 'valid'), 'full_sentences': ('test', 'test')}


def title(name: str) -> str:
  """'lstm' -> 'LSTM', 'universal_transformer_seq' -> 'Universal Transformer (causal)'."""
  cls, fixed = MODELS[name]
  return ('Universal ' if fixed.get('universal') else '') + cls.__name__ + (' (causal)' if fixed.get('causal') else '')


class LmOutputs(NamedTuple):
  """A language model's outputs on a test set: the [n, 2] logits of (wrong, correct) verb form at the verbs it can
  score (both forms in the vocabulary), and its summed NLL over the ``num_tokens`` target words (perplexity)."""
  pair_logits: np.ndarray
  total_nll: float
  num_tokens: int


def check_data_and_eval(config):
  if config.objective not in ('classify', 'lm'):
    raise ValueError(f"unknown config.objective {config.objective!r}; choose 'classify' or 'lm'")
  if config.objective == 'lm':
    if config.cache_teacher_logits:
      raise ValueError("config.cache_teacher_logits=True caches a classifier's [N, 2] teacher logits; a language "
                       "model's [N, L, vocabulary] would not fit, its teacher runs in the step: set it False (the "
                       "':lm' variant does)")
    if config.kd.get('targets', 'teacher') != 'teacher':
      raise ValueError(f'config.kd.targets={config.kd.targets!r} is a control made from cached classification '
                       "targets; it needs objective='classify', not 'lm'")
  _check_sources(config)
  if config.data.transfer_size:
    if config.data.source != 'numpred' or config.objective != 'classify':
      raise ValueError('config.data.transfer_size splits numpred.test.1 into a transfer set and a held-out part: it '
                       f'needs data.source=numpred and objective=classify, not {config.data.source!r} / '
                       f'{config.objective!r}')
    students = [setup.partition('_to_')[2] for setup in config.setups if grid_report.is_kd(setup)]
    roles = [seed_grid.role_config(config, s, 'student') for s in students]
    targets = config.kd.get('targets', 'teacher')
    if (config.kd.alpha != 1.0 or config.kd.gold_weight or targets != 'teacher' or config.cross_fit_folds
        or config.mode != 'offline' or not all(map(targets_lib.uses_teacher, roles))):
      raise ValueError('with config.data.transfer_size the students learn the transfer set from their (offline) '
                       "teacher's own targets alone — its gold labels are for the labels_to_<student> control: set "
                       "config.kd.alpha=1.0, kd.gold_weight=0, kd.targets='teacher', mode='offline', no "
                       'cross_fit_folds and a student loss that reads the teacher (now '
                       f'alpha={config.kd.alpha}, gold_weight={config.kd.gold_weight}, targets={targets!r}, '
                       f'mode={config.mode!r}, cross_fit_folds={config.cross_fit_folds}, student losses '
                       f'{sorted({cfg.loss for cfg in roles})})')
    missing = [f'labels_to_{s}' for s in dict.fromkeys(students) if f'labels_to_{s}' not in config.setups]
    if missing:
      raise ValueError(f'config.data.transfer_size: the students train on the transfer set too, so their control is '
                       f'{", ".join(missing)} (trained as they are, on the gold labels of both), not their model\'s '
                       f'own row: add it to config.setups (the \':transfer\' variant does)')


def check_augment(config, cfg, field: str):
  del config  # no setting makes views of a sentence
  if cfg.get('augment'):
    raise ValueError(f'config.{field}.augment={cfg.augment!r}: the SVA task has no augmentations')


def make_augment(setting: str):
  del setting  # check_augment refused any
  return None


def load(config, workdir: str) -> seed_grid.TaskData:
  """The agreement data per ``config.data``, encoded with one vocabulary: the saved teachers' (all of them must
  share it), else built from the training split; saved to ``<workdir>/vocab.json`` for the analyses."""
  train_examples, test_examples, source, transfer_examples = load_examples(config)
  lm = config.objective == 'lm'
  vocab = saved_vocab(config) or sva_data.Vocab.build(tokens(train_examples), config.data.vocab_min_count)
  path = epath.Path(workdir) / 'vocab.json'
  if path.exists() and sva_data.Vocab.load(path) != vocab and not config.overwrite:
    # Refused here, before vocab.json changes under the finished models (the analyses encode with it).
    raise ValueError(f'{path} holds another vocabulary than this run builds (its data or saved teachers differ): '
                     'use another --workdir, or --config.overwrite=True to retrain there')
  if sharding.is_primary():
    vocab.save(path)
  extra_sets = [] if transfer_examples is None else [transfer_examples]
  max_length = padded_length(config, [train_examples, *test_examples.values(), *extra_sets])
  train = encode(train_examples, vocab, config, max_length)
  # With a transfer set, the student role trains on the training split and the transfer set (the KD students learn
  # the transfer set from the teacher, labels_to_<student> from its gold labels); the teacher role on the split.
  student_train = None if transfer_examples is None else encode(
      sva_data.AgreementExamples.concatenate([train_examples, transfer_examples]), vocab, config, max_length)
  config_lib.check_batch_sizes(config, len(train), source)
  test_sets = {name: encode(examples, vocab, config, max_length) for name, examples in test_examples.items()}
  headline = HEADLINE_SETS[config.data.source]
  extra_report = {'vocab_size': len(vocab), 'objective': config.objective}
  if lm:  # what choosing the more frequent verb form gets, on the verbs the models are scored on
    extra_report['majority_form_baseline'] = majority_form_baselines(train_examples, test_examples, test_sets)
  return seed_grid.TaskData(
      title='SVA (language modelling)' if lm else 'SVA', source=source,
      warning='**SYNTHETIC GRAMMAR ONLY — not the Linzen data.**\n\n' if config.data.source == 'synthetic' else '',
      train=train, test_sets=test_sets, test_titles={name: name for name in test_sets}, headline_sets=headline,
      create_model=lambda name, model_kwargs: models.create_model(name, vocab_size=len(vocab),
                                                                  objective=config.objective, **model_kwargs),
      extra_meta={'vocab': vocab.words, 'objective': config.objective}, paper_gain=PAPER_GAIN,
      extra_report=extra_report, predicted_classes=predicted_classes, report_section=report.grid_section,
      student_train=student_train)


def saved_vocab(config):
  """The vocabulary of the saved models the grid restores (``config.models.<name>.checkpoint`` of the models its
  setups use), None if it restores none; saved models with different vocabularies are refused (one encoding serves
  every model)."""
  seeds = [config.seed + k for k in range(config.num_seeds)]
  used = {name for setup in config.setups for name in seed_grid.trained_models(config, setup)}
  found = {}
  for name in sorted(used):
    checkpoint = config.models[name].checkpoint
    for directory in dict.fromkeys(phases.checkpoint_path(checkpoint, seed) for seed in seeds if checkpoint):
      found[directory] = teacher_vocab(directory)
  vocabs = list(found.values())
  if any(v != vocabs[0] for v in vocabs):
    different = next(d for d, v in found.items() if v != vocabs[0])
    raise ValueError(f'the saved models in {next(iter(found))} and {different} were trained with different '
                     'vocabularies; the grid encodes the data once, for all of them')
  return vocabs[0] if vocabs else None


def teacher_predictor(mesh, config):
  return lambda model: make_classifier_predict(model, mesh, config.eval.batch_size, config.compute_dtype)


def scored_verbs(split) -> np.ndarray:
  """A language model's test set: which verbs it can be scored on (both forms in the vocabulary; the others are
  counted in the report and left out)."""
  return (split.correct_ids != sva_data.UNK_ID) & (split.wrong_ids != sva_data.UNK_ID)


def predictions(name: str, model, instances, data: seed_grid.TaskData, mesh, config):
  """Per instance and test set: a classifier's [N, 2] logits, or a language model's :class:`LmOutputs`; non-finite
  logits are an error naming the instance and set."""
  names = [f'{name} instance {k}' if len(instances) > 1 else name for k in range(len(instances))]
  if config.objective == 'lm':
    score = make_lm_scorer(model, config.eval.batch_size, config.compute_dtype)

    def predict(variables, split):
      total_nll, num_tokens, pair_logits = score(variables, split)
      return LmOutputs(pair_logits[scored_verbs(split)], total_nll, num_tokens)
  else:
    predict = make_classifier_predict(model, mesh, config.eval.batch_size, config.compute_dtype)
  outputs = [{set_name: predict(variables, split) for set_name, split in data.test_sets.items()}
             for variables in instances]
  for instance_name, instance in zip(names, outputs):
    for set_name, output in instance.items():
      metrics_lib.check_finite(logits_of(output), f'{instance_name} on {set_name}')
  return outputs


def logits_of(output) -> np.ndarray:
  """The [N, 2] verb-number (or verb-form) logits of a test set's outputs."""
  return output.pair_logits if isinstance(output, LmOutputs) else output


def predicted_classes(output) -> np.ndarray:
  return logits_of(output).argmax(-1)


def metrics_of(outputs, data: seed_grid.TaskData, config, reliability: bool = False):
  """Per instance and test set: accuracy, ECE and accuracy by attractor count and distance
  (:func:`kd_jax.sva.metrics.agreement_metrics`; a language model's on the verb form it prefers, over the verbs it
  can score, with its perplexity); with ``reliability`` the ECE's bins too."""
  rows = []
  for instance in outputs:
    row = {}
    for set_name, output in instance.items():
      split, logits = data.test_sets[set_name], logits_of(output)
      if isinstance(output, LmOutputs):  # the correct form is class 1 of the pair
        known = scored_verbs(split)
        labels, attractors, distances = np.ones(len(logits), np.int32), split.attractors[known], split.distances[known]
      else:
        labels, attractors, distances = split.labels, split.attractors, split.distances
      row[set_name] = sva_metrics.agreement_metrics(logits, labels, attractors, distances, config.eval.ece_bins)
      if isinstance(output, LmOutputs):
        row[set_name].update(perplexity=sva_metrics.perplexity(output.total_nll, output.num_tokens),
                             num_target_tokens=output.num_tokens, unscored_oov_verbs=int((~known).sum()))
      if reliability:
        row[set_name]['reliability'] = metrics_lib.reliability_metrics(logits, labels,
                                                                       config.eval.ece_bins)['reliability']
    rows.append(row)
  return rows


# ----------------------------------------------------------------------------- data, models, predictions

def _check_sources(config):
  """The data, evaluation and logging fields (nothing is read)."""
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
  config_lib.check_model_builds(field, lambda: models.create_model(
      cfg.model, vocab_size=8, objective=config.objective, **cfg.model_kwargs), np.full((1, 4), 5, np.int32))


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
    return models.create_model(meta['model'], vocab_size=len(meta['vocab']), objective=meta['objective'],
                               **meta['model_kwargs'])

  return analysis.Probe(sets, create_model, default_sets=('pooled',), group_name='attractors')


def encode(examples, vocab, config, max_length: int) -> sva_data.SvaSplit:
  encoder = sva_data.encode_lm if config.objective == 'lm' else sva_data.encode_classification
  return encoder(examples, vocab, max_length, config.data.length_bucket)


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


def make_classifier_predict(model, mesh, batch_size: int, compute_dtype: str = 'float32'):
  """``predict(variables, split) -> [N, 2]`` logits, in batches of similar length with their padding trimmed."""
  predict = training.make_predict_fn(model, mesh, batch_size, compute_dtype)

  def predict_split(variables, split: sva_data.SvaSplit) -> np.ndarray:
    order = np.argsort(split.lengths, kind='stable')
    logits = np.empty((len(split), models.NUM_CLASSES), np.float32)
    for i in range(0, len(split), batch_size):
      logits[order[i:i + batch_size]] = predict(variables, split.batch(order[i:i + batch_size])['inputs'])
    return logits

  return predict_split


def majority_form_baselines(train_examples, test_examples, test_sets):
  """Per test set, :func:`kd_jax.sva.metrics.majority_form_baseline` over the verbs the models are scored on (both
  forms in the vocabulary)."""
  baselines = {}
  for name, examples in test_examples.items():
    split = test_sets[name]
    known = np.flatnonzero(scored_verbs(split))
    baselines[name] = sva_metrics.majority_form_baseline(
        train_examples.sentences, [examples.correct[i] for i in known], [examples.wrong[i] for i in known],
        examples.attractors[known])
  return baselines


def teacher_vocab(directory: str) -> sva_data.Vocab:
  """The vocabulary saved with a teacher checkpoint: offline KD must encode data exactly as the teacher saw it."""
  meta = checkpoints.read_meta(directory)
  if 'vocab' not in meta:
    raise ValueError(f'checkpoint {directory} has no vocabulary in its metadata; it is not an SVA teacher')
  return sva_data.Vocab(meta['vocab'])
