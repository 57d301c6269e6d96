"""Subject–verb agreement as a task of the seed grid (:mod:`kd_jax.seed_grid`): the same shape as
``kd_jax/mnist/task.py``.

Both objectives: the verb-number classifier (``config.objective='classify'``), and language modelling (``'lm'``),
scored on which verb form the model prefers at the verb, with its perplexity. With ``config.data.transfer_size`` the
student role also trains on a transfer set split off numpred.test.1 (its control: ``labels_to_<student>``).
"""
from typing import NamedTuple

from etils import epath
import numpy as np

from kd_jax import config_lib
from kd_jax import metrics as metrics_lib
from kd_jax import phases
from kd_jax import seed_grid
from kd_jax import sharding
from kd_jax.sva import data as sva_data
from kd_jax.sva import experiment
from kd_jax.sva import metrics as sva_metrics
from kd_jax.sva import models
from kd_jax.sva import report

MODELS = models.MODELS
check_model = experiment.check_model
probe = experiment.probe  # what kd_jax.analyze runs the models of a grid or a single job on
PAPER_GAIN = None  # the paper reports the SVA models' accuracies, not one gain to mark
# The two test sets a grid's sweeps and ablations headline, per data source: the most attractors with a sizeable
# test set (numpred.test.4: 4 attractors; test.5 has 159 lines), and the fewest (numpred.test.1: one).
HEADLINE_SETS = {'numpred': ('test_4', 'test_1'), 'synthetic': ('attractors', 'dev'),
                 'linzen_tsv': ('test', 'valid')}


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
  experiment.check_data_and_eval(config)
  if config.data.transfer_size:
    if config.data.source != 'numpred' or config.objective != 'classify':
      raise ValueError('config.data.transfer_size splits numpred.test.1 into a transfer set and a held-out part: it '
                       f'needs data.source=numpred and objective=classify, not {config.data.source!r} / '
                       f'{config.objective!r}')
    if config.kd.alpha != 1.0 or config.cross_fit_folds:
      raise ValueError('with config.data.transfer_size the students learn the transfer set from their teacher alone '
                       '(its gold labels are for the labels_to_<student> control): set config.kd.alpha=1.0 and no '
                       f'cross_fit_folds (now alpha={config.kd.alpha}, cross_fit_folds={config.cross_fit_folds})')


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
  train_examples, test_examples, source, transfer_examples = experiment.load_examples(config)
  lm = config.objective == 'lm'
  vocab = saved_vocab(config) or sva_data.Vocab.build(experiment.tokens(train_examples), config.data.vocab_min_count)
  path = epath.Path(workdir) / 'vocab.json'
  if path.exists() and sva_data.Vocab.load(path) != vocab and not config.overwrite:
    # Refused here, before vocab.json changes under the finished models (the analyses encode with it).
    raise ValueError(f'{path} holds another vocabulary than this run builds (its data or saved teachers differ): '
                     'use another --workdir, or --config.overwrite=True to retrain there')
  if sharding.is_primary():
    vocab.save(path)
  extra_sets = [] if transfer_examples is None else [transfer_examples]
  max_length = experiment.padded_length(config, [train_examples, *test_examples.values(), *extra_sets])
  train = experiment.encode(train_examples, vocab, config, max_length)
  # With a transfer set, the student role trains on the training split and the transfer set (the KD students learn
  # the transfer set from the teacher, labels_to_<student> from its gold labels); the teacher role on the split.
  student_train = None if transfer_examples is None else experiment.encode(
      sva_data.AgreementExamples.concatenate([train_examples, transfer_examples]), vocab, config, max_length)
  config_lib.check_batch_sizes(config, len(train), source)
  test_sets = {name: experiment.encode(examples, vocab, config, max_length) for name, examples in test_examples.items()}
  headline = HEADLINE_SETS[config.data.source]
  extra_report = {'vocab_size': len(vocab), 'objective': config.objective}
  if lm:  # what choosing the more frequent verb form gets, on the verbs the models are scored on
    extra_report['majority_form_baseline'] = experiment.majority_form_baselines(train_examples, test_examples,
                                                                                test_sets)
  return seed_grid.TaskData(
      title='SVA (language modelling)' if lm else 'SVA', source=source, warning=('**SYNTHETIC GRAMMAR ONLY — not the Linzen data.**\n\n'
                                          if config.data.source == 'synthetic' else ''),
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
      found[directory] = experiment.teacher_vocab(directory)
  vocabs = list(found.values())
  if any(v != vocabs[0] for v in vocabs):
    different = next(d for d, v in found.items() if v != vocabs[0])
    raise ValueError(f'the saved models in {next(iter(found))} and {different} were trained with different '
                     'vocabularies; the grid encodes the data once, for all of them')
  return vocabs[0] if vocabs else None


def teacher_predictor(mesh, config):
  return lambda model: experiment.make_classifier_predict(model, mesh, config.eval.batch_size, config.compute_dtype)


def scored_verbs(split) -> np.ndarray:
  """A language model's test set: which verbs it can be scored on (both forms in the vocabulary; the others are
  counted in the report and left out)."""
  return (split.correct_ids != sva_data.UNK_ID) & (split.wrong_ids != sva_data.UNK_ID)


def predictions(name: str, model, instances, data: seed_grid.TaskData, mesh, config):
  """Per instance and test set: a classifier's [N, 2] logits, or a language model's :class:`LmOutputs`; non-finite
  logits are an error naming the instance and set."""
  names = [f'{name} instance {k}' if len(instances) > 1 else name for k in range(len(instances))]
  if config.objective == 'lm':
    score = experiment.make_lm_scorer(model, config.eval.batch_size, config.compute_dtype)

    def predict(variables, split):
      total_nll, num_tokens, pair_logits = score(variables, split)
      return LmOutputs(pair_logits[scored_verbs(split)], total_nll, num_tokens)
  else:
    predict = experiment.make_classifier_predict(model, mesh, config.eval.batch_size, config.compute_dtype)
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
