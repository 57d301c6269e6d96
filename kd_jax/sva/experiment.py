"""The subject–verb agreement job: teacher, independent student and distilled student over several seeds.

``run(config, workdir)`` is what ``python -m kd_jax.main`` calls for a config
with ``task='sva'``. For each seed it trains (or, with
``config.teacher.checkpoint``, restores) the teacher, trains the student model
on gold labels (the baseline) and distils the teacher into the same student
model (same init and data order as the baseline: only the loss differs), then
evaluates all three. Layout of the workdir::

  vocab.json                     the word vocabulary (also in every checkpoint's metadata)
  {teacher,independent,student}/seed_<k>/   Orbax checkpoints
  metrics.jsonl, tensorboard/    training metrics
  results.json, results.md       every run's metrics and the mean ± std table
  accuracy_by_attractors.png     accuracy against the number of attractors
"""
import json
import os
import time
from typing import Any, Dict

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from kd_jax import checkpoints
from kd_jax import experiment as mnist_experiment
from kd_jax import losses
from kd_jax import metrics as metrics_lib
from kd_jax import training
from kd_jax.sva import data as sva_data
from kd_jax.sva import metrics as sva_metrics
from kd_jax.sva import models as sva_models

SOURCES = ('numpred', 'linzen_tsv', 'full_sentences', 'synthetic')
ROLES = ('teacher', 'independent', 'student')
STREAMS = {'teacher': 0, 'independent': 1, 'student': 1}  # the two students share init and data order
DATA_ENV = 'KD_JAX_SVA_DIR'
SYNTHETIC_WARNING = '**SYNTHETIC GRAMMAR DEMO — not the Linzen data; not comparable to the paper.**\n\n'


# ----------------------------------------------------------------------------- config and data

def check_config(config: ml_collections.ConfigDict):
  """Fails fast, before any data is read, on settings the job cannot use."""
  if config.data.source not in SOURCES:
    raise ValueError(f'unknown config.data.source {config.data.source!r}; choose one of {SOURCES}')
  if config.objective == 'lm' and config.data.source in ('numpred', 'linzen_tsv'):
    raise ValueError(f'language modelling needs full sentences; {config.data.source!r} holds only prefixes '
                     '(use data.source=full_sentences or synthetic)')
  if config.objective == 'classify' and config.data.source == 'full_sentences':
    raise ValueError('full_sentences gives no verb-number labels; classify with numpred, linzen_tsv or synthetic')
  for role in ('teacher', 'student'):
    sva_models.create_model(config[role].model, 2, config.objective, **config[role].model_kwargs)
    losses.get_loss(config[role].loss, **_kd_settings(config))
  if config.teacher.loss != 'cross_entropy':
    raise ValueError('the teacher trains on gold labels: config.teacher.loss must be cross_entropy')
  if config.num_seeds < 1:
    raise ValueError(f'config.num_seeds must be ≥ 1, got {config.num_seeds}')
  teacher_mode = config.kd.get('teacher_mode', 'eval')
  if teacher_mode not in ('eval', 'train'):
    raise ValueError(f"unknown config.kd.teacher_mode {teacher_mode!r}; choose 'eval' or 'train'")
  if config.cache_teacher_logits and teacher_mode == 'train':
    raise ValueError('cached teacher logits are eval-mode logits; set cache_teacher_logits=False '
                     "for kd.teacher_mode='train'")


def _kd_settings(config):
  return {k: config.kd[k] for k in ('temperature', 'alpha', 'scale')}


def data_directory(config) -> str:
  directory = config.data.dir or os.environ.get(DATA_ENV, '')
  if not directory:
    raise FileNotFoundError(f'no SVA data directory: set config.data.dir or ${DATA_ENV} (e.g. ../shared/data/sva), '
                            'or run the offline demo with --config.data.source=synthetic')
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'SVA data directory {directory} does not exist (config.data.dir / ${DATA_ENV})')
  return directory


def _find(directory: str, name: str) -> str:
  """``name`` in ``directory`` or one of its subdirectories (e.g. sva/linzen_simple/numpred.val)."""
  for root in [directory] + sorted(os.path.join(directory, d) for d in os.listdir(directory)):
    if os.path.exists(os.path.join(root, name)):
      return os.path.join(root, name)
  raise FileNotFoundError(f'{name} not found in {directory} or its subdirectories (config.data.dir / ${DATA_ENV})')


def load_examples(config):
  """(train examples, {test set name: examples}, a description of the source) per ``config.data``."""
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
              f'(seed {cfg.split_seed}); tests numpred.test.1-5 in {os.path.dirname(val_path)}')
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
    train = train.subset(np.arange(min(cfg.num_train, len(train))))
  if cfg.num_test:
    tests = {k: v.subset(np.arange(min(cfg.num_test, len(v)))) for k, v in tests.items()}
  return train, tests, source


def _tokens(examples):
  return examples.prefixes if isinstance(examples, sva_data.AgreementExamples) else examples.sentences


def encode(examples, vocab, config, max_length: int) -> sva_data.SvaSplit:
  encoder = sva_data.encode_lm if config.objective == 'lm' else sva_data.encode_classification
  return encoder(examples, vocab, max_length, config.data.length_bucket)


# ----------------------------------------------------------------------------- evaluation

def make_lm_scorer(model, batch_size: int):
  """``score(variables, split)``: (Σ target NLL, number of targets, [N, 2] logits of (wrong, correct) verb form)."""

  @jax.jit
  def score_batch(variables, tokens, targets, weights, verb_index, wrong_ids, correct_ids):
    logits = model.apply(variables, tokens, train=False)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    at_verb = jnp.take_along_axis(logits, verb_index[:, None, None], axis=1)[:, 0]
    pair = jnp.stack([jnp.take_along_axis(at_verb, ids[:, None], axis=1)[:, 0] for ids in (wrong_ids, correct_ids)],
                     axis=-1)
    return (nll * weights).sum(), pair

  def score(variables, split: sva_data.SvaSplit):
    total_nll, pairs = 0.0, []
    for i in range(0, len(split), batch_size):
      part = slice(i, i + batch_size)
      nll, pair = score_batch(variables, split.tokens[part], split.labels[part], split.weights[part],
                              split.verb_index[part], split.wrong_ids[part], split.correct_ids[part])
      total_nll += float(nll)
      pairs.append(np.asarray(pair))
    return total_nll, int(split.weights.sum()), np.concatenate(pairs)

  return score


def evaluate(model, variables, test_sets: Dict[str, sva_data.SvaSplit], mesh, config) -> Dict[str, Any]:
  """Agreement metrics on every test set (and perplexity for language models)."""
  results = {}
  if config.objective == 'lm':
    score = make_lm_scorer(model, config.eval.batch_size)
    for name, split in test_sets.items():
      total_nll, num_tokens, pair_logits = score(variables, split)
      # Verbs outside the vocabulary cannot be scored; they are counted and left out.
      known = (split.correct_ids != sva_data.UNK_ID) & (split.wrong_ids != sva_data.UNK_ID)
      result = sva_metrics.agreement_metrics(pair_logits[known], np.ones(int(known.sum()), np.int32),
                                             split.attractors[known], split.distances[known], config.eval.ece_bins)
      results[name] = {**result, 'perplexity': sva_metrics.perplexity(total_nll, num_tokens),
                       'num_target_tokens': num_tokens, 'unscored_oov_verbs': int((~known).sum())}
    return results
  predict = make_classifier_predict(model, mesh, config.eval.batch_size)
  for name, split in test_sets.items():
    results[name] = sva_metrics.agreement_metrics(predict(variables, split), split.labels, split.attractors,
                                                  split.distances, config.eval.ece_bins)
  return results


def make_classifier_predict(model, mesh, batch_size: int):
  """``predict(variables, split) -> [N, 2]`` logits, in batches of similar length with their padding trimmed."""
  predict = training.make_predict_fn(model, mesh, batch_size)

  def predict_split(variables, split: sva_data.SvaSplit) -> np.ndarray:
    order = np.argsort(split.lengths, kind='stable')
    logits = np.empty((len(split), sva_models.NUM_CLASSES), np.float32)
    for i in range(0, len(split), batch_size):
      logits[order[i:i + batch_size]] = predict(variables, split.batch(order[i:i + batch_size])['inputs'])
    return logits

  return predict_split


# ----------------------------------------------------------------------------- the job

def _restore(model, directory: str, cfg, example_input):
  abstract = jax.eval_shape(lambda: training.init_variables(model, jax.random.PRNGKey(0), example_input))
  return checkpoints.restore_model(directory, cfg.model, cfg.model_kwargs.to_dict(), abstract)


def teacher_checkpoint(config, seed: int) -> str:
  """``config.teacher.checkpoint`` for ``seed``: '{seed}' in it is replaced, e.g. 'DIR/teacher/seed_{seed}'."""
  return config.teacher.checkpoint.replace('{seed}', str(seed))


def teacher_vocab(directory: str) -> sva_data.Vocab:
  """The vocabulary saved with a teacher checkpoint: offline KD must encode data exactly as the teacher saw it."""
  meta = checkpoints.read_meta(directory)
  if 'vocab' not in meta:
    raise ValueError(f'checkpoint {directory} has no vocabulary in its metadata; it is not an SVA teacher')
  return sva_data.Vocab(meta['vocab'])


def run(config: ml_collections.ConfigDict, workdir: str) -> Dict[str, Any]:
  """Runs the whole job and returns what it writes to ``results.json``."""
  check_config(config)
  os.makedirs(workdir, exist_ok=True)
  t_start = time.perf_counter()
  train_examples, test_examples, source = load_examples(config)
  logging.info('SVA data: %s; %d training examples, test sets %s', source, len(train_examples),
               {k: len(v) for k, v in test_examples.items()})
  if config.teacher.checkpoint:
    vocab = teacher_vocab(teacher_checkpoint(config, config.seed))
  else:
    vocab = sva_data.Vocab.build(_tokens(train_examples), config.data.vocab_min_count)
  vocab.save(os.path.join(workdir, 'vocab.json'))
  max_length = config.data.max_length or sva_data.bucket_length(
      2 + max(len(t) for ex in [train_examples, *test_examples.values()] for t in _tokens(ex)), 1 << 16,
      config.data.length_bucket)
  train = encode(train_examples, vocab, config, max_length)
  test_sets = {k: encode(v, vocab, config, max_length) for k, v in test_examples.items()}
  logging.info('Vocabulary: %d words (from the %s); sequences padded to ≤ %d tokens', len(vocab),
               'teacher checkpoint' if config.teacher.checkpoint else 'training split', max_length)

  mesh = training.data_mesh()
  model_of = {role: sva_models.create_model(config[cfg_role].model, len(vocab), config.objective,
                                            **config[cfg_role].model_kwargs)
              for role, cfg_role in (('teacher', 'teacher'), ('independent', 'student'), ('student', 'student'))}
  settings = {'teacher': config.teacher, 'student': config.student,
              'independent': ml_collections.ConfigDict({**config.student.to_dict(), 'loss': 'cross_entropy'})}
  roles = [r for r in ROLES if r != 'independent' or config.train_independent_student]
  example_input = train.tokens[:1]
  extra_meta = {'vocab': vocab.words, 'objective': config.objective}
  runs = {role: [] for role in roles}
  timing = {role: 0.0 for role in roles}
  writer = mnist_experiment.MetricWriter(workdir)
  try:
    for seed in range(config.seed, config.seed + config.num_seeds):
      variables = {}
      for role in roles:
        t0 = time.perf_counter()
        directory = os.path.join(workdir, role, f'seed_{seed}')
        model, cfg = model_of[role], settings[role]
        if role == 'teacher' and config.teacher.checkpoint:
          directory = teacher_checkpoint(config, seed)
          if teacher_vocab(directory) != vocab:
            raise ValueError(f'the teacher in {directory} was trained with another vocabulary than the teacher of '
                             f'seed {config.seed}; offline KD needs one vocabulary for all seeds')
          logging.info('Offline KD: using the saved teacher in %s (no teacher training)', directory)
        else:
          distil = role == 'student'
          cached = None
          if distil and config.cache_teacher_logits and config.objective == 'classify':
            cached = make_classifier_predict(model_of['teacher'], mesh, config.eval.batch_size)(
                variables['teacher'], train)
          in_step = distil and cached is None
          mnist_experiment.train_model(
              f'{role}/seed_{seed}', cfg, config, model, train, mesh, directory, writer, seeds=[seed],
              stream=STREAMS[role], teacher=model_of['teacher'] if in_step else None,
              teacher_variables=variables['teacher'] if in_step else None, teacher_logits=cached,
              extra_meta=extra_meta)
        # Evaluate (and distil from) what was saved, as an offline-KD user would.
        variables[role], _ = _restore(model, directory, cfg, example_input)
        timing[role] += time.perf_counter() - t0
        result = evaluate(model, variables[role], test_sets, mesh, config)
        runs[role].append({'seed': seed, 'checkpoint': os.path.abspath(directory), **result})
        logging.info('%s seed %d: %s', role, seed, _one_line(result))
  finally:
    writer.close()

  results = {'data_source': source, 'synthetic': config.data.source == 'synthetic', 'objective': config.objective,
             'models': {role: settings[role].model for role in roles}, 'vocab_size': len(vocab),
             'num_train': len(train), 'num_test': {k: len(v) for k, v in test_sets.items()},
             'runs': runs, 'summary': summarise(runs), 'num_devices': mesh.size,
             'timing': {**{f'{r}_seconds': t for r, t in timing.items()},
                        'total_seconds': time.perf_counter() - t_start},
             'config': json.loads(config.to_json())}
  write_report(results, workdir)
  return results


def _one_line(result) -> str:
  return ', '.join(f'{name} acc {r["accuracy"]:.4f}' + (f' ppl {r["perplexity"]:.1f}' if 'perplexity' in r else '')
                   for name, r in result.items())


# ----------------------------------------------------------------------------- report

def _flatten(result: Dict[str, Any]) -> Dict[str, float]:
  """Scalar metrics of one run as 'test_set/metric' (nested dicts as 'test_set/metric/key')."""
  flat = {}
  for name, metrics in result.items():
    if not isinstance(metrics, dict):
      continue
    for key, value in metrics.items():
      if key.endswith('counts'):
        continue
      if isinstance(value, dict):
        flat.update({f'{name}/{key}/{k}': v for k, v in value.items()})
      elif isinstance(value, (int, float)) and key != 'count':
        flat[f'{name}/{key}'] = value
  return flat


def summarise(runs: Dict[str, list]) -> Dict[str, Dict[str, Dict[str, float]]]:
  """Per role and metric: mean, sample std (ddof 1; 0 for one run) and n."""
  summary = {}
  for role, role_runs in runs.items():
    flats = [_flatten(r) for r in role_runs]
    summary[role] = {key: {'mean': float(np.mean([f[key] for f in flats])),
                           'std': float(metrics_lib.sample_std([f[key] for f in flats])),
                           'n': len(flats)}
                     for key in flats[0]}
  return summary


def _cell(stats, scale=100.0, digits=2) -> str:
  if stats is None:
    return '–'
  return f'{scale * stats["mean"]:.{digits}f} ± {scale * stats["std"]:.{digits}f}'


def _role_title(results, role) -> str:
  models = results['models']
  return {'teacher': f'{models["teacher"]} (teacher)', 'independent': f'{models["student"]} (no KD)',
          'student': f'{models["teacher"]} → {models["student"]}'}[role]


def results_table(results) -> str:
  """Markdown tables: accuracy, ECE (and perplexity) per test set, then accuracy per number of attractors."""
  summary, test_names = results['summary'], list(results['num_test'])
  metrics = [('Accuracy (%)', 'accuracy', 100.0, 2), ('ECE', 'ece', 1.0, 4)]
  if results['objective'] == 'lm':
    metrics.append(('Perplexity', 'perplexity', 1.0, 1))
  metrics.append(('Accuracy (%), macro mean over subject–verb distances 1–16', 'macro_distance_accuracy', 100.0, 2))
  lines = []
  for title, key, scale, digits in metrics:
    if not any(k.endswith('/' + key) for stats in summary.values() for k in stats):
      continue  # e.g. distances: only some formats give them
    lines += [f'{title}:', '', '| model | ' + ' | '.join(test_names) + ' |', '|---' * (len(test_names) + 1) + '|']
    for role, stats in summary.items():
      lines.append(f'| {_role_title(results, role)} | ' +
                   ' | '.join(_cell(stats.get(f'{t}/{key}'), scale, digits) for t in test_names) + ' |')
    lines.append('')
  counts = attractor_counts(results)
  if counts:
    lines += ['Accuracy (%) by number of attractors (all test sets pooled), its macro mean and the micro accuracy over them:', '',
              '| model | ' + ' | '.join(str(k) for k in counts) + ' | macro | micro |',
              '|---' * (len(counts) + 3) + '|']
    for role in summary:
      per_seed, num = attractor_accuracy(results, role, counts)
      cells = [_mean_std(per_seed[:, j]) for j in range(len(counts))]
      cells += [_mean_std(per_seed.mean(1)), _mean_std(per_seed @ num / num.sum())]
      lines.append(f'| {_role_title(results, role)} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines).rstrip()


def _mean_std(values) -> str:
  return f'{100 * np.mean(values):.2f} ± {100 * metrics_lib.sample_std(values):.2f}'


def attractor_counts(results):
  keys = {k.split('/')[-1] for stats in results['summary'].values() for k in stats if '/accuracy_by_attractors/' in k}
  return sorted(int(k) for k in keys)


def attractor_accuracy(results, role, counts):
  """([seeds, counts] accuracy at each attractor count, [counts] examples), pooling every test set's examples."""
  per_seed = []
  for run in results['runs'][role]:
    row, num = [], []
    for k in counts:
      hits = [(r['accuracy_by_attractors'][str(k)], int(r['attractor_counts'][str(k)])) for r in run.values()
              if isinstance(r, dict) and str(k) in r.get('accuracy_by_attractors', {})]
      num.append(sum(n for _, n in hits))
      row.append(sum(a * n for a, n in hits) / max(num[-1], 1))
    per_seed.append(row)
  return np.asarray(per_seed), np.asarray(num, np.float64)


def write_report(results, workdir: str):
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=2)
  warning = SYNTHETIC_WARNING if results['synthetic'] else ''
  seeds = max(len(r) for r in results['runs'].values())
  text = (f'# kd_jax SVA results ({results["objective"]})\n\n{warning}Data: {results["data_source"]}\n\n'
          f'Train examples: {results["num_train"]}; test examples: {results["num_test"]}; vocabulary '
          f'{results["vocab_size"]} words. Mean ± sample std over {seeds} seed(s); final checkpoints; '
          f'ECE with {results["config"]["eval"]["ece_bins"]} equal-width bins'
          + ('; perplexity = exp(mean NLL per target word, end token included)' if results['objective'] == 'lm'
             else '') + '.\n\n' + _unscored_note(results) + results_table(results) +
          f'\n\nWall time: {results["timing"]["total_seconds"]:.0f} s on {results["num_devices"]} device(s).\n')
  with open(os.path.join(workdir, 'results.md'), 'w') as f:
    f.write(text)
  if attractor_counts(results):
    plot_attractors(results, os.path.join(workdir, 'accuracy_by_attractors.png'))
  print(text, flush=True)


def _unscored_note(results) -> str:
  """LM reports: how many agreement verbs per test set fell outside the vocabulary and were not scored."""
  first_run = next(iter(results['runs'].values()))[0]
  unscored = {k: v['unscored_oov_verbs'] for k, v in first_run.items()
              if isinstance(v, dict) and 'unscored_oov_verbs' in v}
  if not any(unscored.values()):
    return ''
  return (f'Verb pairs with a form outside the vocabulary are not scored: {unscored} of '
          f'{results["num_test"]} test sentences.\n\n')


def plot_attractors(results, path: str):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  counts = attractor_counts(results)
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for role in results['runs']:
    per_seed, _ = attractor_accuracy(results, role, counts)
    ax.errorbar(counts, 100 * per_seed.mean(0), yerr=100 * metrics_lib.sample_std(per_seed, axis=0), marker='o', capsize=3,
                label=_role_title(results, role))
  ax.set_xlabel('number of attractors')
  ax.set_ylabel('agreement accuracy (%)')
  ax.set_xticks(counts)
  ax.grid(alpha=0.3)
  ax.legend()
  ax.set_title('Subject–verb agreement' + (' (SYNTHETIC DEMO)' if results['synthetic'] else ''))
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
