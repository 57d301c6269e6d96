"""A TFDS dataset of the Linzen agreement corpus, built from a local copy of the TSV (no download).

  builder = LinzenAgreement(data_dir=...)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=<dir with the TSV>))
  splits = load_splits(builder)  # {'train', 'validation', 'test'} as AgreementExamples

Splits are the paper's (seed-42 shuffle, 10% / 1% / 89%), made by
:func:`kd_jax.sva.data.paper_split`. Records are written as ArrayRecord, which
TFDS reads without TensorFlow.
"""
from typing import Dict

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from kd_jax.sva import data as sva_data

TSV_NAMES = ('agr_50_mostcommon_10K.tsv.gz', 'agr_50_mostcommon_10K.tsv')


class LinzenAgreement(tfds.core.GeneratorBasedBuilder):
  """Verb-number prediction examples from Linzen, Dupoux & Goldberg (2016)."""
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Paper split (seed 42: 10% train / 1% validation / 89% test).'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f'Put one of {TSV_NAMES} (the full Linzen corpus) into the manual_dir.'

  def __init__(self, **kwargs):
    kwargs.setdefault('file_format', 'array_record')
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description='Sentence prefixes before the verb and the verb number (VBZ singular / VBP plural).',
        features=tfds.features.FeaturesDict({
            'prefix': tfds.features.Text(),
            'label': tfds.features.ClassLabel(names=list(sva_data.LABELS)),
            'attractors': np.int32,  # −1: the intervening nouns do not all differ in number from the subject
            'distance': np.int32,
        }),
        supervised_keys=('prefix', 'label'),
        homepage='https://github.com/TalLinzen/rnn_agreement',
    )

  def _split_generators(self, dl_manager):
    manual_dir = epath.Path(dl_manager.manual_dir)
    found = [manual_dir / name for name in TSV_NAMES if (manual_dir / name).exists()]
    if not found:
      raise FileNotFoundError(f'none of {TSV_NAMES} in the manual_dir {manual_dir}')
    splits = sva_data.paper_split(sva_data.read_linzen_tsv(str(found[0])), seed=42)
    return {'train': self._generate_examples(splits['train']),
            'validation': self._generate_examples(splits['valid']),
            'test': self._generate_examples(splits['test'])}

  def _generate_examples(self, examples: sva_data.AgreementExamples):
    for i in range(len(examples)):
      yield i, {'prefix': ' '.join(examples.prefixes[i]), 'label': int(examples.labels[i]),
                'attractors': int(examples.attractors[i]), 'distance': int(examples.distances[i])}


def load_splits(builder: tfds.core.DatasetBuilder) -> Dict[str, sva_data.AgreementExamples]:
  """Every split of a prepared builder as AgreementExamples, in record-key order."""
  out = {}
  for name, source in builder.as_data_source().items():
    rows = [source[i] for i in range(len(source))]
    out[name] = sva_data.AgreementExamples(
        [r['prefix'].decode().split() for r in rows], np.asarray([r['label'] for r in rows], np.int32),
        np.asarray([r['attractors'] for r in rows], np.int32), np.asarray([r['distance'] for r in rows], np.int32))
  return out


def prepare(manual_dir: str, data_dir: str) -> Dict[str, sva_data.AgreementExamples]:
  """Builds the dataset from the TSV in ``manual_dir`` into ``data_dir`` (once) and loads its splits."""
  builder = LinzenAgreement(data_dir=data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return load_splits(builder)
