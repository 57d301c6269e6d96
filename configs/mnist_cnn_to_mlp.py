"""The main job: CNN teacher → MLP student on MNIST, with the independent MLP as its control, evaluated on MNIST,
MNIST-Scaled and MNIST-Translated. It is the seed grid (kd_jax/seed_grid.py) of three setups — cnn, mlp,
cnn_to_mlp — with one seed; --config.num_seeds=4 gives mean ± std and the gain paired by seed.

Default: sized for a 2-core CPU (~5 minutes on full MNIST): the CPU-width CNN 3 epochs; the MLP 20 epochs with the
authors' kernel regularisers (L1 = L2 = 1e-5, what carries the effect), the student from the teacher's cached
eval-mode logits (docs/results.md):
  python -m kd_jax.main --config=configs/mnist_cnn_to_mlp.py --workdir=/tmp/kd_mnist \
      --config.data.dir=../shared/data/mnist

The authors' recipe (docs/paper_recipe.md; for accelerators):
  python -m kd_jax.main --config=configs/mnist_cnn_to_mlp.py:paper --workdir=/tmp/kd_mnist_paper
full-width CNN and the MLP, batch 128, no gradient clipping (theirs passed clipnorm=1.0, which TF 2.1 never
applied in their loops: docs/paper_recipe.md); teacher RAdam 1e-4 decaying ×0.96 every 10k steps, student Adam
1e-4 cosine, the independent MLP like their independent models (RAdam, as the teacher), 400 epochs each; kernel regularisers in every role (MLP L1 = L2 = 1e-5, CNN L2 2e-9); Keras' BatchNorm
(momentum 0.99, eps 1e-3) and Glorot init; T = 5, pure KD scaled by 1/T², the teacher run in training mode (dropout,
batch statistics) inside every student step. What still differs from the authors' code:
  - the student's cosine decays to 0 over the run (187,200 steps); theirs, with restarts, had a first period of
    200,000 steps, so their rate ended at ~1 % of its start;
  - MNIST-Scaled/-Translated are regenerated with the MNIST-C recipe (translate shifts from
    config.data.translate_seed) where they read the TFDS arrays (the same on a machine with TFDS data);
  - the teacher's BatchNorm running averages stay fixed while it teaches (Keras updated them; a training-mode
    teacher never reads them, so the targets are the same);
  - the KD term is the KL divergence, theirs the cross-entropy to the soft targets (a constant apart: equal
    gradients);
  - seeds are set (they set none), and nothing is selected on the test set (final checkpoints).

Offline KD from a saved teacher (restored, not trained; '{seed}' is each seed; a vmapped grid saves all seeds in
one checkpoint, <workdir>/cnn, given without '{seed}'):
  python -m kd_jax.main --config=configs/mnist_cnn_to_mlp.py --workdir=/tmp/kd_student \
      --config.models.cnn.checkpoint=/tmp/kd_mnist/cnn/seed_{seed}
"""
from kd_jax.mnist import configs


def get_config(variants: str = ''):
  return configs.pair_config('cnn', 'mlp', variants)
