"""The shared base of the ``configs/sva_*.py`` experiment configs (the paper's recipe, CPU-sized epochs).

Variants (``--config=configs/sva_lstm_to_transformer.py:lm,paper``; several joined by ','):
``classify`` (the default: verb-number classification), ``lm`` (language
modelling on the full sentences; Transformers become causal), ``paper`` (the
paper's 40 epochs), ``smoke`` (seconds-long, on the synthetic grammar) and
``paper_teacher`` (the authors' LSTM teacher: dropout 0.8 incl. recurrent,
L2 1e-5, run in training mode inside the student's step), ``transfer`` (a
teacher-labelled transfer set split off numpred.test.1) and ``cross_fit``
(cross-fitted teacher targets: each training input labelled by a teacher that
did not train on it).
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


def _lm_fields(config):
  """Language modelling on the full sentences, KD 0.9 teacher / 0.1 gold (the paper's)."""
  config.objective = 'lm'
  config.data.source = 'full_sentences'
  config.kd.alpha = 0.9
  config.cache_teacher_logits = False  # [N, L, vocabulary] logits would not fit: the teacher runs in the step


def _lm(config):
  """Language modelling: models become causal."""
  _lm_fields(config)
  for role in ('teacher', 'student'):
    config[role].model = _causal(config[role].model)


def _paper(config):
  for role in ('teacher', 'student'):
    config[role].num_epochs = 40.0


def _smoke_data(config):
  """Synthetic grammar, 2 seeds, one sequence shape, no mid-run checkpoints."""
  config.data.source = 'synthetic'
  config.data.synthetic = dict(num_train=512, num_test=128, max_intervening=2)
  config.data.length_bucket = 64  # one sequence shape: tests spend their time training, not compiling
  config.num_seeds = 2
  config.eval.batch_size = 64
  config.log_every_steps = 16
  config.checkpoint_every_steps = 0


def _smoke_model(cfg):
  """Tiny model, 3 epochs of batch 32."""
  cfg.model_kwargs = dict(SMOKE_MODEL_KWARGS[_base_model(cfg.model).replace('universal_', '')])
  cfg.num_epochs = 3.0
  cfg.batch_size = 32
  cfg.learning_rate = 3e-3


def _smoke(config):
  """Seconds-long: synthetic grammar, tiny models, 2 seeds, a few epochs."""
  _smoke_data(config)
  for role in ('teacher', 'student'):
    _smoke_model(config[role])


def _paper_teacher(config):
  """The authors' LSTM teacher regime: dropout 0.8 on each LSTM's inputs, its recurrent state and the output,
  0.2 on the embeddings, L2 1e-5, and the teacher run in training mode inside the student's step (soft targets
  that vary with dropout), never cached."""
  if config.teacher.model != 'lstm':
    raise ValueError(f"the ':paper_teacher' variant is the authors' LSTM teacher regime, but config.teacher.model is "
                     f'{config.teacher.model!r}')
  config.teacher.model_kwargs.update(dropout_rate=0.8, embedding_dropout=0.2, recurrent_dropout=0.8)
  config.teacher.l2 = 1e-5
  config.kd.teacher_mode = 'train'
  config.cache_teacher_logits = False


def _transfer(config):
  """A transfer set: 30,000 inputs of numpred.test.1 (the rest of it stays test_1; test_2-5 untouched) that the KD
  student learns from the teacher alone, next to its training split. The control 'independent_transfer' trains the
  same student on the gold labels of both."""
  config.data.transfer_size = 30_000


def _cross_fit(config):
  """Cross-fitted targets: the training split in 5 folds, 5 more teachers each trained on 4 of them; the KD
  student learns every input from the fold teacher that did not see it (cached eval-mode logits)."""
  config.cross_fit_folds = 5


# Applied in this order (paper_teacher after smoke: a smoke run keeps the regime's dropouts).
VARIANTS = {'classify': None, 'lm': _lm, 'paper': _paper, 'smoke': _smoke, 'paper_teacher': _paper_teacher,
            'transfer': _transfer, 'cross_fit': _cross_fit}


def _shared_fields(config: ml_collections.ConfigDict):
  """The fields the single job and the seed grid share: task, objective, seeds, data, KD, evaluation, logging."""
  config.task = 'sva'
  config.objective = 'classify'  # 'classify' (verb number) | 'lm' (language modelling: the ':lm' variant)
  config.seed = 0
  config.num_seeds = 3  # seeds seed .. seed + num_seeds - 1 (the single job: one after another)
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
  """Teacher → student on the agreement task, with the named ``variants`` (see the module doc)."""
  config = ml_collections.ConfigDict()
  _shared_fields(config)
  config.train_independent_student = True  # the student model on gold labels: the no-KD baseline
  config.teacher = model_config(teacher, 'cross_entropy')
  config.student = model_config(student, 'distillation')
  # k ≥ 2: the student's targets come from k fold teachers, each input's from one that did not train on it
  # (':cross_fit'); the 'teacher' row stays the teacher trained on the whole split.
  config.cross_fit_folds = 0
  return config_lib.apply_variants(config, variants, VARIANTS)


# ----------------------------------------------------------------------------- the seed grid

def _grid_paper(config):
  for model in config.models.values():
    model.num_epochs = 40.0


def _grid_smoke(config):
  """Seconds-long: synthetic grammar, tiny models, 2 seeds, a few epochs (as the single job's ':smoke')."""
  _smoke_data(config)
  for model in config.models.values():
    _smoke_model(model)


def _grid_lm(config):
  """Language modelling: every model becomes causal, in config.models and in config.setups."""
  _lm_fields(config)
  config.models = {_causal(name): {**cfg.to_dict(), 'model': _causal(name)} for name, cfg in config.models.items()}
  config.setups = tuple('_to_'.join(_causal(name) for name in setup.split('_to_')) for setup in config.setups)


def _grid_paper_teacher(config):
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


def _grid_transfer(config):
  """A transfer set: 30,000 inputs of numpred.test.1 (the rest of it stays test_1) that the KD students learn from
  their teacher alone, beside the training split; the control labels_to_<student> trains each student model as the
  students are, on the gold labels of both."""
  _transfer(config)
  students = [setup.partition('_to_')[2] for setup in config.setups if '_to_' in setup]
  config.setups = tuple(dict.fromkeys([*config.setups, *(f'labels_to_{student}' for student in students)]))


GRID_VARIANTS = {'classify': None, 'lm': _grid_lm, 'paper': _grid_paper, 'smoke': _grid_smoke,
                 'paper_teacher': _grid_paper_teacher, 'transfer': _grid_transfer, 'cross_fit': _cross_fit}


def grid_config(variants: str = '') -> ml_collections.ConfigDict:
  """The seed grid on the agreement task (kd_jax/seed_grid.py): independent LSTM and Transformer and
  LSTM→Transformer, 3 seeds; verb-number classification, or language modelling (':lm'). Transfer sets and
  cross-fitted targets are the single job's. Each model's settings serve it as a teacher and as an independent model."""
  config = ml_collections.ConfigDict()
  _shared_fields(config)
  config.setups = ('lstm', 'transformer', 'lstm_to_transformer')
  config.models = {name: model_config(name, 'cross_entropy') for name in ('lstm', 'transformer')}
  config_lib.grid_fields(config)
  return config_lib.apply_variants(config, variants, GRID_VARIANTS)
