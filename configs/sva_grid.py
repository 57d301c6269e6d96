"""The seed grid on subject–verb agreement: independent LSTM and Transformer, and LSTM→Transformer, 3 seeds, with
the grid's report, ablation factors and student-epoch sweeps (the same runner as configs/mnist_grid.py).

  python -m kd_jax.grid --config=configs/sva_grid.py --workdir=/tmp/sva_grid --config.data.dir=../shared/data/sva

The paper's 40 epochs: ':paper'; seconds-long on the synthetic grammar: ':smoke'. More setups, e.g.
"--config.setups=('lstm','transformer','lstm_to_transformer','transformer_to_transformer')".
"""
from kd_jax.sva import configs


def get_config(variants: str = ''):
  return configs.grid_config(variants)
