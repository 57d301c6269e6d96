"""Does an ensemble of CNN teachers pass on more of the CNN's inductive bias than one CNN teacher?

The main job's recipe (CNN 3 epochs; MLP 20 epochs with L1 = L2 = 1e-5 in every role; students from cached
logits), 4 seeds: independent CNN and MLP, then CNN→MLP three ways — each student from its own seed's CNN
(`one_teacher`), and every student from the ensemble of the 4 seeds' CNNs, their logits averaged
(`ensemble_logits`) or their softmaxes at the KD temperature averaged (`ensemble_probabilities`). The CNNs and the
independent MLPs are trained once (the later factors restore the first's). ablation.md/.json: each factor's
CNN→MLP gain over the independent MLP, paired by seed; each factor's grid.md: accuracy, ECE, agreement with the
teacher the students learned from (for the ensembles: the ensemble).

  python -m kd_jax.grid --config=configs/mnist_ensemble.py --workdir=/tmp/kd_ensemble \
      --config.data.dir=../shared/data/mnist

A smoke run: --config=configs/mnist_ensemble.py:smoke
"""
from kd_jax.mnist import configs


def ensembles(config):
  config.setups = ('cnn', 'mlp', 'cnn_to_mlp')
  config.factors = (
      ('one_teacher', {}),
      ('ensemble_logits', {'teacher_ensemble': 'logits'}),
      ('ensemble_probabilities', {'teacher_ensemble': 'probabilities'}),
  )


def get_config(variants: str = ''):
  return configs.grid_config(','.join(['main_job', variants]), experiment=ensembles)
