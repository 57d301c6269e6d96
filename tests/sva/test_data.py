"""SVA readers on hand-written files, the synthetic grammar, the vocabulary and encoding; the real data when present."""
import gzip
import os

import chex
import jax
import numpy as np
import pytest

from kd_jax.sva import data as sva_data

SVA_DIR = os.environ.get('KD_JAX_SVA_DIR', '')


def _write(path, text, gz=False):
  with (gzip.open(path, 'wt') if gz else open(path, 'w')) as f:
    f.write(text)
  return str(path)


def test_read_numpred(tmp_path):
  path = _write(tmp_path / 'numpred.test.2', 'VBZ\tthe dog near the cats\nVBP\tthe NNS of the man\n\n')
  ex = sva_data.read_numpred(path, attractors=2)
  assert ex.prefixes == [['the', 'dog', 'near', 'the', 'cats'], ['the', 'NNS', 'of', 'the', 'man']]
  np.testing.assert_array_equal(ex.labels, [0, 1])
  np.testing.assert_array_equal(ex.attractors, [2, 2])
  np.testing.assert_array_equal(ex.distances, [-1, -1])


def test_read_numpred_rejects_bad_lines(tmp_path):
  path = _write(tmp_path / 'bad', 'VBZ\tthe dog\nVBD\tthe cats\n')
  with pytest.raises(ValueError, match=r'bad:2: expected "VBZ\|VBP<TAB>prefix"'):
    sva_data.read_numpred(path)
  with pytest.raises(FileNotFoundError, match='does not exist'):
    sva_data.read_numpred(str(tmp_path / 'missing'))
  # Extra columns are an error, not extra words of the prefix.
  path = _write(tmp_path / 'extra', 'VBZ\tthe dog\nVBP\tthe cats\t3\n')
  with pytest.raises(ValueError, match=r'extra:2: expected .*\(2 tab-separated columns\), got 3 column\(s\)'):
    sva_data.read_numpred(path)


@pytest.mark.parametrize('reader', ['numpred', 'tsv', 'full_sentences'])
def test_empty_and_binary_files_are_named(tmp_path, reader):
  read = {'numpred': sva_data.read_numpred, 'tsv': sva_data.read_linzen_tsv,
          'full_sentences': lambda path: sva_data.read_full_sentences(path[:-len('.text')])}[reader]
  empty = _write(tmp_path / 'empty.text', '\n  \n')
  with pytest.raises(ValueError, match=f'SVA data file {empty} is empty'):
    read(empty)
  binary = tmp_path / 'binary.text'
  binary.write_bytes(b'VBZ\tthe dog\n\x89PNG\r\n\x1a\n\xff\xfe')
  with pytest.raises(ValueError, match=f'{binary}:2: not UTF-8 text'):
    read(str(binary))
  cut = _write(tmp_path / 'cut.text', 'VBZ\tthe dog near the cats\nVBP\tthe NNS of th')  # a copy cut mid-line
  with pytest.raises(ValueError, match=f'{cut}:2: the last line has no newline: the file looks cut short'):
    read(cut)


def _tsv_row(sentence, verb_pos, subj_index, verb_index, n_intervening, n_diff, distance):
  fields = dict.fromkeys(sva_data.TSV_COLUMNS, 'x')
  fields.update(sentence=sentence, verb_pos=verb_pos, subj_index=subj_index, verb_index=verb_index,
                n_intervening=n_intervening, n_diff_intervening=n_diff, distance=distance)
  return '\t'.join(str(fields[c]) for c in sva_data.TSV_COLUMNS)


def test_read_linzen_tsv(tmp_path):
  rows = [_tsv_row('the keys to the cabinet are here', 'VBP', 2, 6, 1, 1, 4),
          _tsv_row('the man that the dogs and the cat see is old', 'VBZ', 2, 10, 2, 1, 8),
          _tsv_row('she runs', 'VBZ', 1, 2, 0, 0, 1)]
  path = _write(tmp_path / 'agr.tsv.gz', '\t'.join(sva_data.TSV_COLUMNS) + '\n' + '\n'.join(rows) + '\n', gz=True)
  ex = sva_data.read_linzen_tsv(path)
  # 1-based verb_index: the prefix is every word before the verb.
  assert ex.prefixes == [['the', 'keys', 'to', 'the', 'cabinet'], 'the man that the dogs and the cat see'.split(),
                         ['she']]
  np.testing.assert_array_equal(ex.labels, [1, 0, 0])
  # Attractor count only when every intervening noun differs in number (row 2 has a same-number noun).
  np.testing.assert_array_equal(ex.attractors, [1, -1, 0])
  np.testing.assert_array_equal(ex.distances, [4, 8, 1])


def test_read_linzen_tsv_errors(tmp_path):
  with pytest.raises(ValueError, match='header lacks'):
    sva_data.read_linzen_tsv(_write(tmp_path / 'a.tsv', 'sentence\tverb_pos\nthe dog runs\tVBZ\n'))
  header = '\t'.join(sva_data.TSV_COLUMNS) + '\n'
  with pytest.raises(ValueError, match='b.tsv:2: verb_index 9 outside'):
    sva_data.read_linzen_tsv(_write(tmp_path / 'b.tsv', header + _tsv_row('the dog runs', 'VBZ', 2, 9, 0, 0, 1) +
                                    '\n'))


def test_paper_split_sizes_and_determinism():
  ex = sva_data.AgreementExamples([[str(i)] for i in range(1000)], np.arange(1000, dtype=np.int32) % 2,
                                  np.zeros(1000, np.int32), np.zeros(1000, np.int32))
  splits = sva_data.paper_split(ex)
  assert {k: len(v) for k, v in splits.items()} == {'train': 100, 'valid': 10, 'test': 890}
  words = [w for part in splits.values() for p in part.prefixes for w in p]
  assert sorted(words) == sorted(str(i) for i in range(1000))  # a partition
  assert sva_data.paper_split(ex)['train'].prefixes == splits['train'].prefixes
  assert sva_data.paper_split(ex, seed=1)['train'].prefixes != splits['train'].prefixes
  train, dev = sva_data.holdout_split(ex, 0.1, seed=0)
  assert (len(train), len(dev)) == (900, 100)
  assert not {w[0] for w in train.prefixes} & {w[0] for w in dev.prefixes}


def _write_full_sentences(tmp_path, gold_lines, eval_lines):
  stem = str(tmp_path / 'agr')
  _write(stem + '.text', 'the dogs near the car are big . <eos>\nthe cat runs . <eos>\n')
  _write(stem + '.gold', gold_lines)
  _write(stem + '.eval', eval_lines)
  return stem


def test_tsv_rows_need_every_column(tmp_path):
  header = '\t'.join(sva_data.TSV_COLUMNS)
  row = _tsv_row('the dog is here', 'VBZ', 1, 3, 0, 0, 2)
  path = _write(tmp_path / 'short.tsv', f'{header}\n{row}\n{row.rsplit(chr(9), 1)[0]}\n')
  with pytest.raises(ValueError, match=r'short.tsv:3: expected 18 tab-separated columns \(as the header\), got 17'):
    sva_data.read_linzen_tsv(path)
  path = _write(tmp_path / 'nonint.tsv', f'{header}\n' + row.replace('\t3\t', '\tthree\t', 1) + '\n')
  with pytest.raises(ValueError, match='nonint.tsv:2: invalid literal'):
    sva_data.read_linzen_tsv(path)


def test_read_full_sentences(tmp_path):
  # Line 2's forms are capitalised, as a few lines of the real .gold are; the text's case wins.
  stem = _write_full_sentences(tmp_path, '5\tare\tis\t1\n2\tRuns\tRun\t0\n', '5\n2\n')
  s = sva_data.read_full_sentences(stem)
  assert s.sentences[0] == 'the dogs near the car are big .'.split()  # the file's <eos> is dropped
  np.testing.assert_array_equal(s.verb_index, [5, 2])
  assert (s.correct, s.wrong) == (['are', 'runs'], ['is', 'run'])
  np.testing.assert_array_equal(s.attractors, [1, 0])


def test_read_full_sentences_errors(tmp_path):
  with pytest.raises(ValueError, match='not line-aligned'):
    sva_data.read_full_sentences(_write_full_sentences(tmp_path, '5\tare\tis\t1\n', '5\n2\n'))
  with pytest.raises(ValueError, match="is not the correct form 'is'"):
    sva_data.read_full_sentences(_write_full_sentences(tmp_path, '5\tis\tare\t1\n2\truns\trun\t0\n', '5\n2\n'))


def test_synthetic_grammar_agrees_and_counts_attractors():
  s = sva_data.synthetic_grammar(300, seed=3, max_intervening=4)
  number = {w: n for pair in sva_data._NOUNS + sva_data._VERBS + sva_data._RC_VERBS for n, w in enumerate(pair)}
  nouns = {w for pair in sva_data._NOUNS for w in pair}
  for words, verb, correct, wrong, attractors, distance in zip(s.sentences, s.verb_index, s.correct, s.wrong,
                                                               s.attractors, s.distances):
    noun_positions = [i for i, w in enumerate(words[:verb]) if w in nouns]
    subject = words[noun_positions[0]]
    assert words[verb] == correct and number[correct] == number[subject] and number[wrong] != number[subject]
    assert attractors == sum(number[words[i]] != number[subject] for i in noun_positions[1:])
    assert distance == verb - noun_positions[0]
  assert set(s.attractors) == set(range(5))
  assert sva_data.synthetic_grammar(300, seed=3, max_intervening=4).sentences == s.sentences
  all_attractors = sva_data.synthetic_grammar(200, seed=4, max_intervening=3, attractor_prob=1.0)
  # With attractor_prob=1 every intervening noun is an attractor.
  assert all(a == sum(w in nouns for w in ws[:v]) - 1
             for a, ws, v in zip(all_attractors.attractors, all_attractors.sentences, all_attractors.verb_index))
  ex = sva_data.lm_to_classification(s)
  assert ex.prefixes[0] == s.sentences[0][:s.verb_index[0]]
  np.testing.assert_array_equal(ex.labels, [number[c] for c in s.correct])


def test_vocab_build_encode_save(tmp_path):
  vocab = sva_data.Vocab.build([['b', 'a', 'b'], ['c', 'b', 'a']])
  assert vocab.words == ['<pad>', '<unk>', '<bos>', '<eos>', 'b', 'a', 'c']  # by frequency, then alphabetical
  assert vocab.encode(['a', 'zzz']) == [5, sva_data.UNK_ID]
  assert vocab.decode([4, 5, 0, 0]) == ['b', 'a']
  vocab.save(str(tmp_path / 'vocab.json'))
  assert sva_data.Vocab.load(str(tmp_path / 'vocab.json')) == vocab
  assert sva_data.Vocab.build([['b', 'a', 'b']], min_count=2).words[4:] == ['b']
  with pytest.raises(ValueError, match='starts with the specials'):
    sva_data.Vocab(['a', 'b'])


def test_encode_classification_and_lm():
  vocab = sva_data.Vocab.build([['the', 'dogs', 'are', 'big']])
  ex = sva_data.AgreementExamples([['the', 'dogs'], ['the', 'cat']], np.array([1, 0], np.int32),
                                  np.array([0, 0], np.int32), np.array([1, 1], np.int32))
  split = sva_data.encode_classification(ex, vocab)
  chex.assert_shape(split.tokens, (2, 8))
  np.testing.assert_array_equal(split.tokens[0, :5], [sva_data.BOS_ID] + vocab.encode(['the', 'dogs']) +
                                [sva_data.EOS_ID, sva_data.PAD_ID])
  assert split.tokens[1, 2] == sva_data.UNK_ID
  np.testing.assert_array_equal(split.lengths, [4, 4])
  with pytest.raises(ValueError, match='config.data.max_length is 3'):
    sva_data.encode_classification(ex, vocab, max_length=3)

  sentences = sva_data.LmSentences([['the', 'dogs', 'are', 'big']], np.array([2], np.int32), ['are'], ['is'],
                                   np.array([0], np.int32), np.array([1], np.int32))
  lm = sva_data.encode_lm(sentences, vocab)
  ids = vocab.encode(['the', 'dogs', 'are', 'big'])
  np.testing.assert_array_equal(lm.tokens[0, :6], [sva_data.BOS_ID] + ids + [0])
  np.testing.assert_array_equal(lm.labels[0, :6], ids + [sva_data.EOS_ID, 0])
  np.testing.assert_array_equal(lm.weights[0, :6], [1, 1, 1, 1, 1, 0])
  # The logits at input position verb_index predict the verb.
  assert lm.labels[0, lm.verb_index[0]] == lm.correct_ids[0] == vocab.index['are']
  assert lm.wrong_ids[0] == sva_data.UNK_ID  # 'is' never occurred in training


def test_batches_trim_padding_to_the_bucket():
  ex = sva_data.AgreementExamples([['w'] * 3, ['w'] * 20], np.array([0, 1], np.int32), np.zeros(2, np.int32),
                                  np.zeros(2, np.int32))
  split = sva_data.encode_classification(ex, sva_data.Vocab.build([['w']]), max_length=40)
  assert split.batch(np.array([0]))['inputs'].shape == (1, 8)  # 5 tokens → one bucket of 8
  assert split.batch(np.array([0, 1]))['inputs'].shape == (2, 24)  # 22 tokens → 24
  assert split.batch_variants == (8, 16, 24, 32, 40)  # every length a batch can take
  assert split.variant_of(np.array([0])) == 0 and split.variant_of(np.array([1, 0])) == 2


@pytest.mark.parametrize('objective', ['classify', 'lm'])
def test_batches_gathered_on_the_device_equal_host_batches(objective):
  sentences = sva_data.synthetic_grammar(40, seed=1, max_intervening=3)
  vocab = sva_data.Vocab.build(sentences.sentences)
  split = (sva_data.encode_lm(sentences, vocab, length_bucket=4) if objective == 'lm' else
           sva_data.encode_classification(sva_data.lm_to_classification(sentences), vocab, length_bucket=4))
  arrays, decode = split.resident()
  for idx in (np.array([3, 1, 7]), np.arange(40)):
    length = split.batch_variants[split.variant_of(idx)]
    gathered = jax.jit(lambda a, i: decode({k: v[i] for k, v in a.items()}, length))(arrays, idx)
    chex.assert_trees_all_equal(jax.device_get(gathered), split.batch(idx))


def test_tfds_builder_from_local_tsv(tmp_path):
  from kd_jax.sva import tfds_linzen  # pylint: disable=g-import-not-at-top
  rows = [_tsv_row(' '.join(['w%d' % i] * (i % 7 + 2)), 'VBZ' if i % 3 else 'VBP', 1, i % 7 + 2, 1, 1, 3)
          for i in range(200)]
  manual = tmp_path / 'manual'
  manual.mkdir()
  _write(manual / 'agr_50_mostcommon_10K.tsv', '\t'.join(sva_data.TSV_COLUMNS) + '\n' + '\n'.join(rows) + '\n')
  splits = tfds_linzen.prepare(str(manual), str(tmp_path / 'tfds'))
  expected = sva_data.paper_split(sva_data.read_linzen_tsv(str(manual / 'agr_50_mostcommon_10K.tsv')))
  assert {k: len(v) for k, v in splits.items()} == {'train': 20, 'validation': 2, 'test': 178}
  # Same examples as the paper split (TFDS stores them in its own order).
  key = lambda ex: sorted(zip(map(' '.join, ex.prefixes), ex.labels.tolist(), ex.attractors.tolist()))
  assert key(splits['train']) == key(expected['train'])
  assert key(splits['test']) == key(expected['test'])
  with pytest.raises(Exception, match='none of'):
    tfds_linzen.prepare(str(tmp_path), str(tmp_path / 'tfds2'))


@pytest.mark.skipif(not SVA_DIR, reason='KD_JAX_SVA_DIR not set (real Linzen data)')
def test_real_linzen_files():
  simple = os.path.join(SVA_DIR, 'linzen_simple')
  val = sva_data.read_numpred(os.path.join(simple, 'numpred.val'))
  assert len(val) == 15772 and int((val.labels == 0).sum()) == 10763
  sizes = [len(sva_data.read_numpred(os.path.join(simple, f))) for f, _ in sva_data.NUMPRED_TESTS.values()]
  assert sizes == [52599, 9380, 2051, 561, 159]
  full = sva_data.read_full_sentences(os.path.join(SVA_DIR, 'linzen_full_sentences', 'subj_agr_filtered'))
  assert len(full) == 7489
  np.testing.assert_array_equal(np.bincount(full.attractors), [1972, 1957, 1943, 1287, 330])
