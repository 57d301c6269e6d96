"""The defaults and building blocks of the ``configs/sva_*.py`` experiment configs: seed grids (kd_jax/seed_grid.py)
of the paper's models and recipe, CPU-sized epochs.

Variants (``--config=configs/sva_lstm_to_transformer.py:lm,paper``; several joined by ','):
``classify`` (the default: verb-number classification), ``lm`` (language
modelling on the full sentences; Transformers become causal), ``paper`` (the
paper's 40 epochs), ``smoke`` (seconds-long, on the synthetic grammar),
``paper_teacher`` (the authors' LSTM teacher: dropout 0.8 incl. recurrent,
L2 1e-5, run in training mode inside the student's step), ``transfer`` (a
teacher-labelled transfer set split off numpred.test.1, with its control
``labels_to_<student>``) and ``cross_fit`` (cross-fitted teacher targets: each
training input labelled by a teacher that did not train on it).
"""
import ml_collections

from kd_jax import config_lib
from kd_jax import losses

# The paper's sizes. Its LSTM's dropout (0.8 on each LSTM's inputs and recurrent state, 0.8 on its output, 0.2 on
# the embeddings, L2 1e-5) is the ':paper_teacher' variant's; by default dropout (one mask per sequence) acts on the
# embeddings and after each LSTM.
MODEL_KWARGS = {
    'lstm': dict(embed_dim=256, hidden_size=256, num_layers=2, dropout_rate=0.2),
    'transformer': dict(num_layers=6, num_heads=8, dim=128, embedding_dropout=0.2, residual_dropout=0.4,
                        attention_dropout=0.6),
    'universal_transformer': dict(num_layers=6, num_heads=8, dim=256, embedding_dropout=0.2, residual_dropout=0.4,
                                  attention_dropout=0.6),
}
SMOKE_MODEL_KWARGS = {'lstm': dict(embed_dim=32, hidden_size=32, num_layers=1, dropout_rate=0.1),
                      'transformer': dict(num_layers=2, num_heads=2, dim=32, embedding_dropout=0.1,
                                          residual_dropout=0.1, attention_dropout=0.1)}


def _base_model(model: str) -> str:
  """'universal_transformer_seq' -> 'universal_transformer': the entry of MODEL_KWARGS."""
  return model.replace('_seq', '')


def model_config(model: str, loss: str, **overrides) -> ml_collections.ConfigDict:
  return config_lib.phase_config(
      model, MODEL_KWARGS[_base_model(model)], loss,
      num_epochs=10.0,  # paper: 40 (the ':paper' variant); 10 fits 3 seeds into ~40 min on 2 CPU cores
      batch_size=64, learning_rate=1e-3, schedule='exponential', decay_steps=1_000, **overrides)


def _causal(model: str) -> str:
  """'transformer' -> 'transformer_seq': the model's language-modelling form (an LSTM is causal already)."""
  return model if model == 'lstm' or model.endswith('_seq') else model + '_seq'


def _lm(config):
  """Language modelling on the full sentences, KD 0.9 teacher / 0.1 gold (the paper's); every model becomes causal,
  in config.models and in config.setups."""
  config.objective = 'lm'
  config.data.source = 'full_sentences'
  config.kd.alpha = 0.9
  config.cache_teacher_logits = False  # [N, L, vocabulary] logits would not fit: the teacher runs in the step
  config.models = {_causal(name): {**cfg.to_dict(), 'model': _causal(name)} for name, cfg in config.models.items()}
  config.setups = tuple('_to_'.join(_causal(name) for name in setup.split('_to_')) for setup in config.setups)


def _paper(config):
  """The paper's 40 epochs for every model."""
  for model in config.models.values():
    model.num_epochs = 40.0


def _smoke(config):
  """Seconds-long: synthetic grammar (one sequence shape: tests spend their time training, not compiling), tiny
  models of 3 epochs at batch 32, 2 seeds, no mid-run checkpoints."""
  config.data.source = 'synthetic'
  config.data.synthetic = dict(num_train=512, num_test=128, max_intervening=2)
  config.data.length_bucket = 64
  config.num_seeds = 2
  config.eval.batch_size = 64
  config.log_every_steps = 16
  config.checkpoint_every_steps = 0
  for model in config.models.values():
    model.update(model_kwargs=dict(SMOKE_MODEL_KWARGS[_base_model(model.model).replace('universal_', '')]),
                 num_epochs=3.0, batch_size=32, learning_rate=3e-3)


def _paper_teacher(config):
  """The authors' LSTM teacher regime (as ':paper_teacher') for the grid's LSTM, in every role it has: it must be a
  teacher in some setup and a student in none."""
  teachers = {setup.partition('_to_')[0] for setup in config.setups if '_to_' in setup}
  students = {setup.partition('_to_')[2] for setup in config.setups}
  if 'lstm' not in teachers or 'lstm' in students:
    raise ValueError("the ':paper_teacher' variant is the authors' LSTM teacher regime: the grid's LSTM must teach "
                     f'and not be a student, but config.setups is {config.setups!r}')
  config.models.lstm.model_kwargs.update(dropout_rate=0.8, embedding_dropout=0.2, recurrent_dropout=0.8)
  config.models.lstm.l2 = 1e-5
  config.kd.teacher_mode = 'train'
  config.cache_teacher_logits = False


def _transfer(config):
  """A transfer set: 30,000 inputs of numpred.test.1 (the rest of it stays test_1) that the KD students learn from
  their teacher alone, beside the training split; the control labels_to_<student> trains each student model as the
  students are, on the gold labels of both."""
  config.data.transfer_size = 30_000
  students = [setup.partition('_to_')[2] for setup in config.setups if '_to_' in setup]
  config.setups = tuple(dict.fromkeys([*config.setups, *(f'labels_to_{student}' for student in students)]))


def _cross_fit(config):
  """Cross-fitted targets: the training split in 5 folds, 5 more teachers each trained on 4 of them; the KD
  student learns every input from the fold teacher that did not see it (cached eval-mode logits)."""
  config.cross_fit_folds = 5


# Applied in this order (paper_teacher after smoke: a smoke run keeps the regime's dropouts).
VARIANTS = {'classify': None, 'lm': _lm, 'paper': _paper, 'smoke': _smoke, 'paper_teacher': _paper_teacher,
            'transfer': _transfer, 'cross_fit': _cross_fit}


def _shared_fields(config: ml_collections.ConfigDict):
  """The fields of every SVA config beside its setups and models: task, objective, seeds, data, KD, evaluation,
  logging."""
  config.task = 'sva'
  config.objective = 'classify'  # 'classify' (verb number) | 'lm' (language modelling: the ':lm' variant)
  config.seed = 0
  config.num_seeds = 3  # seeds seed .. seed + num_seeds - 1
  config.data = dict(
      source='numpred',  # numpred | linzen_tsv | full_sentences | synthetic
      dir='',  # '' -> $KD_JAX_SVA_DIR (e.g. ../shared/data/sva); files are found in it or its subdirectories
      dev_fraction=0.1,  # numpred.val / full sentences: held out with split_seed
      split_seed=0,
      tsv_file='agr_50_mostcommon_10K.tsv.gz',  # source=linzen_tsv
      sentences_stem='subj_agr_filtered',  # source=full_sentences
      vocab_min_count=1,
      max_length=0,  # 0: the longest sequence, rounded up to a multiple of length_bucket
      length_bucket=8,  # batches are trimmed to a multiple of this: less padding, a few more compilations
      num_train=0,  # 0 = all
      num_test=0,  # 0 = all (per test set)
      transfer_size=0,  # numpred: N inputs of numpred.test.1 become a teacher-labelled transfer set (':transfer')
      synthetic=dict(num_train=4000, num_test=1000, max_intervening=4),
  )
  # Paper: T = 1, pure distillation for classification (0.9 teacher / 0.1 gold for LMs: the 'lm' variant).
  config.kd = losses.kd_settings(temperature=1.0)
  config.cache_teacher_logits = True  # classification: run each teacher once over the training set
  config.eval = dict(batch_size=512, ece_bins=15)
  config.log_every_steps = 200
  config.checkpoint_every_steps = 2000
  config_lib.job_fields(config)


def pair_config(teacher: str, student: str, variants: str = '') -> ml_collections.ConfigDict:
  """Teacher → student on the agreement task: the seed grid of the independent teacher, the independent student (the
  student's model on gold labels alone: the control) and the distilled student, 3 seeds, with the named
  ``variants``. Each model's settings serve it as a teacher and as an independent model."""
  config = ml_collections.ConfigDict()
  _shared_fields(config)
  config.setups = tuple(dict.fromkeys((teacher, student, f'{teacher}_to_{student}')))
  config.models = {name: model_config(name, 'cross_entropy') for name in dict.fromkeys((teacher, student))}
  config_lib.grid_fields(config)
  return config_lib.apply_variants(config, variants, VARIANTS)
