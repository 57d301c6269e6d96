"""Subject–verb agreement data (Linzen, Dupoux & Goldberg 2016): readers, vocabulary, encoding.

Three on-disk formats are read into plain examples (token lists + labels):

* the full corpus TSV ``agr_50_mostcommon_10K.tsv(.gz)`` (:func:`read_linzen_tsv`,
  split as the paper did by :func:`paper_split`),
* the "simple" release ``numpred.*`` (:func:`read_numpred`),
* full sentences ``.text/.gold/.eval`` (:func:`read_full_sentences`), for
  language models,

plus a synthetic agreement grammar (:func:`synthetic_grammar`) for tests and
the offline demo. :class:`Vocab` maps words to ids (specials pad=0, unk=1,
bos=2, eos=3) and :func:`encode_classification` / :func:`encode_lm` turn
examples into padded int arrays (:class:`SvaSplit`).

Classification input: ``[bos] prefix [eos]`` — the tokens before the verb with
an end token at the verb's position; label VBZ (singular) = 0, VBP (plural) = 1.
LM input ``[bos] sentence``, target ``sentence [eos]``.
"""
import collections
import dataclasses
import json
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from etils import epath
import numpy as np

from kd_jax import paths

PAD, UNK, BOS, EOS = '<pad>', '<unk>', '<bos>', '<eos>'
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
LABELS = ('VBZ', 'VBP')  # index = class: singular 0, plural 1
NUMPRED_TESTS = {f'test_{k}': (f'numpred.test.{k}', k) for k in range(1, 6)}  # name: (file, attractors)
UNKNOWN = -1  # attractor count / distance not given by the format
# Pad sequences of a batch to a multiple of this, so the step compiles for a few lengths only.
LENGTH_BUCKET = 8


# ----------------------------------------------------------------------------- examples

@dataclasses.dataclass
class AgreementExamples:
  """Verb-number classification examples: the prefix before the verb and the verb's number."""
  prefixes: List[List[str]]
  labels: np.ndarray  # int32 [N]: 0 = VBZ (singular), 1 = VBP (plural)
  attractors: np.ndarray  # int32 [N]: number of attractors, UNKNOWN if the format does not say
  distances: np.ndarray  # int32 [N]: verb index − subject index, UNKNOWN if not given

  def __len__(self):
    return len(self.labels)

  def subset(self, idx) -> 'AgreementExamples':
    return AgreementExamples([self.prefixes[i] for i in idx], self.labels[idx], self.attractors[idx],
                             self.distances[idx])

  @classmethod
  def concatenate(cls, parts: Sequence['AgreementExamples']) -> 'AgreementExamples':
    return cls([p for part in parts for p in part.prefixes], *(np.concatenate([getattr(p, f) for p in parts])
                                                               for f in ('labels', 'attractors', 'distances')))


@dataclasses.dataclass
class LmSentences:
  """Full sentences for language modelling, each with one agreement verb to score."""
  sentences: List[List[str]]
  verb_index: np.ndarray  # int32 [N], 0-based position of the verb in the sentence
  correct: List[str]  # the verb form that agrees
  wrong: List[str]  # the same verb with the other number
  attractors: np.ndarray  # int32 [N]
  distances: np.ndarray  # int32 [N] (UNKNOWN when the format does not say)

  def __len__(self):
    return len(self.sentences)

  def subset(self, idx) -> 'LmSentences':
    return LmSentences([self.sentences[i] for i in idx], self.verb_index[idx], [self.correct[i] for i in idx],
                       [self.wrong[i] for i in idx], self.attractors[idx], self.distances[idx])


def _read_lines(path: str) -> List[Tuple[int, str]]:
  """(1-based line number, line without its newline) of every non-blank line; a clear error for a missing,
  undecodable or empty file."""
  if not epath.Path(path).exists():
    raise FileNotFoundError(f'SVA data file {path} does not exist')
  raw = paths.read_bytes(path)
  try:
    text = raw.decode('utf-8')
  except UnicodeDecodeError as e:
    line_no = raw.count(b'\n', 0, e.start) + 1
    raise ValueError(f'{path}:{line_no}: not UTF-8 text (undecodable byte at offset {e.start}); '
                     'is this the right file?') from None
  except (OSError, EOFError) as e:
    raise ValueError(f'cannot read SVA data file {path}: {e}') from None
  lines = [(i, line.rstrip('\r')) for i, line in enumerate(text.split('\n'), 1) if line.strip()]
  if not lines:
    raise ValueError(f'SVA data file {path} is empty')
  if not text.endswith('\n'):  # every release file ends its last line; a copy cut short ends mid-line
    raise ValueError(f'{path}:{text.count(chr(10)) + 1}: the last line has no newline: the file looks cut short '
                     '(an interrupted copy or download?) and its last example may be a fragment: copy it again, '
                     'or if it is whole, end its last line with a newline')
  return lines


def read_numpred(path: str, attractors: int = UNKNOWN) -> AgreementExamples:
  """Linzen's simple format: ``VBZ|VBP <TAB> prefix`` per line (``attractors``: the file's count, if known)."""
  prefixes, labels = [], []
  for line_no, line in _read_lines(path):
    columns = line.split('\t')
    if len(columns) != 2 or columns[0] not in LABELS:
      raise ValueError(f'{path}:{line_no}: expected "VBZ|VBP<TAB>prefix" (2 tab-separated columns), got '
                       f'{len(columns)} column(s): {line[:80]!r}')
    prefixes.append(columns[1].split())
    labels.append(LABELS.index(columns[0]))
  n = len(labels)
  return AgreementExamples(prefixes, np.asarray(labels, np.int32), np.full(n, attractors, np.int32),
                           np.full(n, UNKNOWN, np.int32))


TSV_COLUMNS = ('sentence', 'orig_sentence', 'pos_sentence', 'subj', 'verb', 'subj_pos', 'has_rel', 'has_nsubj',
               'verb_pos', 'subj_index', 'verb_index', 'n_intervening', 'last_intervening', 'n_diff_intervening',
               'distance', 'max_depth', 'all_nouns', 'nouns_up_to_verb')


def read_linzen_tsv(path: str) -> AgreementExamples:
  """The full corpus TSV (header + 18 columns; 1-based indices; verb_pos is the label).

  Attractors follow the paper: ``n_diff_intervening`` when every intervening
  noun differs in number from the subject (n_intervening == n_diff_intervening),
  else UNKNOWN (such examples count in micro accuracy, not per attractor).
  """
  prefixes, labels, attractors, distances = [], [], [], []
  lines = _read_lines(path)
  header = lines[0][1].split('\t')
  missing = [c for c in TSV_COLUMNS if c not in header]
  if missing:
    raise ValueError(f'{path}: not a Linzen agreement TSV, header lacks {missing}')
  for line_no, line in lines[1:]:
    values = line.split('\t')
    if len(values) != len(header):
      raise ValueError(f'{path}:{line_no}: expected {len(header)} tab-separated columns (as the header), '
                       f'got {len(values)}')
    row = dict(zip(header, values))
    try:
      if row['verb_pos'] not in LABELS:
          raise ValueError(f'verb_pos must be VBZ or VBP, got {row["verb_pos"]!r}')
      words, verb_index = row['sentence'].split(), int(row['verb_index'])
      if not 1 <= verb_index <= len(words):
        raise ValueError(f'verb_index {verb_index} outside the {len(words)}-word sentence')
      n_int, n_diff, distance = int(row['n_intervening']), int(row['n_diff_intervening']), int(row['distance'])
    except ValueError as e:
      raise ValueError(f'{path}:{line_no}: {e}') from None
    prefixes.append(words[:verb_index - 1])
    labels.append(LABELS.index(row['verb_pos']))
    attractors.append(n_diff if n_int == n_diff else UNKNOWN)
    distances.append(distance)
  return AgreementExamples(prefixes, np.asarray(labels, np.int32), np.asarray(attractors, np.int32),
                           np.asarray(distances, np.int32))


def paper_split(examples, seed: int = 42, fractions=(0.1, 0.01)) -> Dict[str, object]:
  """The paper's split of the full corpus: shuffle with ``seed``, then 10% train / 1% valid / the rest test.

  The shuffle is numpy's ``default_rng(seed)``: the paper's proportions, not the exact rows of its code's RNG.
  """
  order = np.random.default_rng(seed).permutation(len(examples))
  n_train, n_valid = int(len(order) * fractions[0]), int(len(order) * fractions[1])
  return {'train': examples.subset(order[:n_train]), 'valid': examples.subset(order[n_train:n_train + n_valid]),
          'test': examples.subset(order[n_train + n_valid:])}


def split_off(examples, n: int, seed: int):
  """(``n`` examples drawn by a seeded shuffle, the rest), each in file order."""
  order = np.random.default_rng(seed).permutation(len(examples))
  return examples.subset(np.sort(order[:n])), examples.subset(np.sort(order[n:]))


def holdout_split(examples, holdout_fraction: float, seed: int):
  """(train, held-out) after a seeded shuffle; e.g. numpred.val 90/10 into train/dev."""
  held_out, train = split_off(examples, int(round(len(examples) * holdout_fraction)), seed)
  return train, held_out


def read_full_sentences(stem: str) -> LmSentences:
  """``stem.text`` (tokens, ending in <eos>), ``stem.gold`` (index, correct, wrong, attractors), ``stem.eval``."""
  texts = [line.split() for _, line in _read_lines(stem + '.text')]
  gold = [line.split('\t') for _, line in _read_lines(stem + '.gold')]
  evals = []
  for line_no, line in _read_lines(stem + '.eval'):
    try:
      evals.append(int(line))
    except ValueError:
      raise ValueError(f'{stem}.eval:{line_no}: expected one integer (the verb index), got {line[:80]!r}') from None
  if not len(texts) == len(gold) == len(evals):
    raise ValueError(f'{stem}.text/.gold/.eval are not line-aligned: {len(texts)} / {len(gold)} / {len(evals)} lines')
  sentences, verb_index, correct, wrong, attractors = [], [], [], [], []
  for i, (words, fields, target) in enumerate(zip(texts, gold, evals), 1):
    if len(fields) != 4 or not fields[0].isdigit() or not fields[3].isdigit():
      raise ValueError(f'{stem}.gold:{i}: expected 4 tab-separated columns index<TAB>correct<TAB>wrong<TAB>attractors, '
                       f'got {len(fields)}: {fields}')
    if words and words[-1] == EOS:  # the model adds its own end token
      words = words[:-1]
    index, right, other = int(fields[0]), fields[1], fields[2]
    if index != target or not 0 <= index < len(words) or words[index].lower() != right.lower():
      raise ValueError(f'{stem}:{i}: target {index} (eval {target}) is not the correct form {right!r} '
                       f'in the sentence')
    if words[index] != right:  # a few .gold lines are capitalised where the text is lower-cased
      right, other = words[index], other.lower()
    sentences.append(words)
    verb_index.append(index)
    correct.append(right)
    wrong.append(other)
    attractors.append(int(fields[3]))
  n = len(sentences)
  return LmSentences(sentences, np.asarray(verb_index, np.int32), correct, wrong, np.asarray(attractors, np.int32),
                     np.full(n, UNKNOWN, np.int32))


# ----------------------------------------------------------------------------- synthetic grammar

# (singular, plural) pairs.
_NOUNS = [('dog', 'dogs'), ('cat', 'cats'), ('man', 'men'), ('child', 'children'), ('teacher', 'teachers'),
          ('house', 'houses'), ('car', 'cars'), ('tree', 'trees'), ('author', 'authors'), ('key', 'keys')]
_VERBS = [('is', 'are'), ('has', 'have'), ('runs', 'run'), ('sleeps', 'sleep'), ('likes', 'like'), ('was', 'were')]
_RC_VERBS = [('sees', 'see'), ('knows', 'know'), ('helps', 'help')]
_ADJECTIVES = ['old', 'small', 'red', 'happy', 'tall']
_PREPOSITIONS = ['near', 'behind', 'of', 'with', 'beside']
_ENDINGS = [['here', '.'], ['today', '.'], ['.'], ['again', '.'], ['very', 'often', '.']]


def synthetic_grammar(num_sentences: int, seed: int, max_intervening: int = 3,
                      attractor_prob: float = 0.5) -> LmSentences:
  """Sentences ``the [adj] SUBJ (PP | RC)* VERB ending`` with agreement between SUBJ and VERB.

  Each sentence has 0..``max_intervening`` intervening phrases, each adding one
  noun between subject and verb — a prepositional phrase ("near the cats") or
  an object relative clause ("that the cats see", whose verb agrees with its own
  noun). Each intervening noun differs in number from the subject with
  probability ``attractor_prob``; the attractor count is how many do.
  """
  rng = np.random.default_rng(seed)
  sentences, verb_index, correct, wrong, attractors, distances = [], [], [], [], [], []
  for _ in range(num_sentences):
    plural = int(rng.integers(2))
    words = ['the'] + ([str(rng.choice(_ADJECTIVES))] if rng.random() < 0.3 else [])
    subject_index = len(words)
    words.append(_NOUNS[rng.integers(len(_NOUNS))][plural])
    n_attractors = 0
    for _ in range(int(rng.integers(max_intervening + 1))):
      noun_plural = 1 - plural if rng.random() < attractor_prob else plural
      n_attractors += noun_plural != plural
      noun = _NOUNS[rng.integers(len(_NOUNS))][noun_plural]
      if rng.random() < 0.5:
        words += [str(rng.choice(_PREPOSITIONS)), 'the', noun]
      else:
        words += ['that', 'the', noun, _RC_VERBS[rng.integers(len(_RC_VERBS))][noun_plural]]
    verb = _VERBS[rng.integers(len(_VERBS))]
    verb_index.append(len(words))
    distances.append(len(words) - subject_index)
    words.append(verb[plural])
    words += _ENDINGS[rng.integers(len(_ENDINGS))]
    sentences.append(words)
    correct.append(verb[plural])
    wrong.append(verb[1 - plural])
    attractors.append(n_attractors)
  return LmSentences(sentences, np.asarray(verb_index, np.int32), correct, wrong,
                     np.asarray(attractors, np.int32), np.asarray(distances, np.int32))


def lm_to_classification(sentences: LmSentences) -> AgreementExamples:
  """Verb-number examples from sentences whose verb pair is known to the grammar (singular form first)."""
  singular = {s for s, _ in _VERBS}
  labels = []
  for form in sentences.correct:
    if form not in singular and form not in {p for _, p in _VERBS}:
      raise ValueError(f'verb {form!r} is not one of the synthetic grammar verbs; its number is unknown')
    labels.append(0 if form in singular else 1)
  prefixes = [s[:i] for s, i in zip(sentences.sentences, sentences.verb_index)]
  return AgreementExamples(prefixes, np.asarray(labels, np.int32), sentences.attractors, sentences.distances)


# ----------------------------------------------------------------------------- vocabulary

class Vocab:
  """Words ↔ ids; ids 0–3 are pad, unk, bos, eos."""

  def __init__(self, words: Sequence[str]):
    if tuple(words[:len(SPECIALS)]) != SPECIALS:
      raise ValueError(f'a vocabulary starts with the specials {SPECIALS}, got {list(words[:4])}')
    self.words = list(words)
    self.index = {w: i for i, w in enumerate(self.words)}
    if len(self.index) != len(self.words):
      raise ValueError('vocabulary words must be unique')

  @classmethod
  def build(cls, token_lists: Iterable[Sequence[str]], min_count: int = 1, max_size: int = 0) -> 'Vocab':
    """From training token lists: words seen ≥ ``min_count`` times, most frequent first (ties alphabetical)."""
    counts = collections.Counter(w for tokens in token_lists for w in tokens)
    words = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIALS),
                   key=lambda w: (-counts[w], w))
    if max_size:
      words = words[:max_size - len(SPECIALS)]
    return cls(list(SPECIALS) + words)

  def __len__(self):
    return len(self.words)

  def __eq__(self, other):
    return isinstance(other, Vocab) and self.words == other.words

  def encode(self, tokens: Sequence[str]) -> List[int]:
    return [self.index.get(w, UNK_ID) for w in tokens]

  def decode(self, ids: Iterable[int]) -> List[str]:
    return [self.words[i] for i in ids if i != PAD_ID]

  def save(self, path: paths.PathLike):
    epath.Path(path).write_text(json.dumps({'words': self.words}))

  @classmethod
  def load(cls, path: str) -> 'Vocab':
    if not epath.Path(path).exists():
      raise FileNotFoundError(f'vocabulary file {path} does not exist')
    return cls(json.loads(epath.Path(path).read_text())['words'])


# ----------------------------------------------------------------------------- encoded splits

@dataclasses.dataclass
class SvaSplit:
  """Encoded examples. Classification: ``labels`` [N]; LM: ``labels`` [N, L] targets with ``weights``."""
  tokens: np.ndarray  # int32 [N, L], PAD_ID-padded on the right
  labels: np.ndarray
  attractors: np.ndarray
  distances: np.ndarray
  weights: Optional[np.ndarray] = None  # LM: float32 [N, L], 1 at real target positions
  verb_index: Optional[np.ndarray] = None  # LM: input position whose logits predict the verb
  correct_ids: Optional[np.ndarray] = None  # LM: ids of the agreeing / non-agreeing verb forms
  wrong_ids: Optional[np.ndarray] = None
  length_bucket: int = LENGTH_BUCKET  # batches are trimmed to a multiple of this (fewer shapes: fewer compilations)

  def __len__(self):
    return len(self.tokens)

  @property
  def lengths(self) -> np.ndarray:
    """Real tokens per sequence (training batches group similar lengths, see kd_jax.input_pipeline.BatchOrder)."""
    return (self.tokens != PAD_ID).sum(-1)

  def take(self, n: int) -> 'SvaSplit':
    return self.subset(slice(n))

  def subset(self, idx) -> 'SvaSplit':
    """The examples at ``idx`` (e.g. cross-fitting's folds)."""
    return dataclasses.replace(self, **{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)
                                        if isinstance(getattr(self, f.name), np.ndarray)})

  def batch(self, idx) -> Dict[str, np.ndarray]:
    """Training batch at ``idx``, its padding trimmed to the longest sequence (rounded up to length_bucket)."""
    return _trimmed(self.resident()[0], idx, self.trimmed_length(idx))

  def trimmed_length(self, idx) -> int:
    """The length the batch at ``idx`` is trimmed to."""
    return bucket_length(int((self.tokens[idx] != PAD_ID).sum(-1).max()), self.tokens.shape[1], self.length_bucket)

  @property
  def batch_variants(self) -> Tuple[int, ...]:
    """Every length a batch can be trimmed to (:mod:`kd_jax.input_pipeline`: one device-loop branch each)."""
    full = self.tokens.shape[1]
    return tuple(sorted({bucket_length(n, full, self.length_bucket) for n in range(1, full + 1)}))

  def variant_of(self, idx) -> int:
    return self.batch_variants.index(self.trimmed_length(idx))

  def resident(self):
    """The training arrays for the device, and the decode that trims gathered rows to a variant's length."""
    arrays = {'tokens': self.tokens, 'labels': self.labels}
    if self.weights is not None:
      arrays['weights'] = self.weights
    return arrays, lambda rows, length: _trimmed(rows, slice(None), length)


def _trimmed(arrays, idx, length: int) -> Dict[str, Any]:
  """The rows ``idx`` of a split's arrays as a training batch of sequences ``length`` long (numpy or jax)."""
  batch = {'inputs': arrays['tokens'][idx][:, :length], 'label': arrays['labels'][idx]}
  if 'weights' in arrays:  # language modelling: per-position targets
    batch['label'], batch['weights'] = batch['label'][:, :length], arrays['weights'][idx][:, :length]
  return batch


def bucket_length(length: int, max_length: int, bucket: int = LENGTH_BUCKET) -> int:
  return min(max_length, -(-max(length, 1) // bucket) * bucket)


def _pad(id_lists: Sequence[Sequence[int]], length: int) -> np.ndarray:
  out = np.full((len(id_lists), length), PAD_ID, np.int32)
  for i, ids in enumerate(id_lists):
    out[i, :len(ids)] = ids
  return out


def encode_classification(examples: AgreementExamples, vocab: Vocab, max_length: int = 0,
                          length_bucket: int = LENGTH_BUCKET) -> SvaSplit:
  """``[bos] prefix [eos]`` padded to ``max_length`` (0: the longest, rounded up to ``length_bucket``)."""
  ids = [[BOS_ID] + vocab.encode(p) + [EOS_ID] for p in examples.prefixes]
  length = _check_length(ids, max_length, length_bucket)
  return SvaSplit(_pad(ids, length), examples.labels, examples.attractors, examples.distances,
                  length_bucket=length_bucket)


def encode_lm(sentences: LmSentences, vocab: Vocab, max_length: int = 0,
              length_bucket: int = LENGTH_BUCKET) -> SvaSplit:
  """Inputs ``[bos] sentence``, targets ``sentence [eos]``; the verb is predicted at input position verb_index."""
  words = [vocab.encode(s) for s in sentences.sentences]
  inputs, targets = [[BOS_ID] + w for w in words], [w + [EOS_ID] for w in words]
  length = _check_length(inputs, max_length, length_bucket)
  weights = (_pad(targets, length) != PAD_ID).astype(np.float32)
  return SvaSplit(_pad(inputs, length), _pad(targets, length), sentences.attractors, sentences.distances,
                  weights=weights, verb_index=sentences.verb_index,
                  correct_ids=np.asarray(vocab.encode(sentences.correct), np.int32),
                  wrong_ids=np.asarray(vocab.encode(sentences.wrong), np.int32), length_bucket=length_bucket)


def _check_length(id_lists, max_length: int, length_bucket: int) -> int:
  longest = max(len(ids) for ids in id_lists)
  if not max_length:
    return bucket_length(longest, longest + length_bucket, length_bucket)
  if longest > max_length:
    raise ValueError(f'a sequence has {longest} tokens (with bos/eos) but config.data.max_length is {max_length}')
  return max_length
