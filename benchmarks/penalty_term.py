"""The L1 + L2 penalty term of each trained model of a finished job: l1·Σ|W| + l2·ΣW² over its kernels (the
parameters of rank ≥ 2, what the penalties act on), with the l1 and l2 it trained under.

This is what Keras adds to a model's loss as ``sum(model.losses)``, so it compares with the authors' notebooks,
where ``loss − classification_loss`` of an evaluated model is that term (docs/results.md, "The authors' code against
`:paper`"): a check that a student settles where theirs did between the KD pull and the penalty.

  python benchmarks/penalty_term.py /tmp/kd_paper_mlps
"""
import argparse
import os
import sys

import jax
import ml_collections
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from kd_jax import analysis  # pylint: disable=g-import-not-at-top
from kd_jax import phases
from kd_jax.mnist import models


def penalty_term(params, l1: float, l2: float) -> float:
  kernels = [np.asarray(p, np.float64) for p in jax.tree_util.tree_leaves(params) if np.ndim(p) >= 2]
  return l1 * sum(np.abs(k).sum() for k in kernels) + l2 * sum((k * k).sum() for k in kernels)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdir', help='a finished MNIST job or grid')
  args = parser.parse_args(argv)
  example = np.zeros((1, 28, 28, 1), np.float32)
  print('| model | seed | l1 | l2 | penalty term |\n|---|---|---|---|---|')
  for run in analysis.find_runs(args.workdir):
    settings = run.meta.get('settings') or {}
    l1, l2 = settings.get('l1', 0.0), settings.get('l2', 0.0)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in run.meta.get('model_kwargs', {}).items()}
    model = models.create_model(run.model, **kwargs)
    cfg = ml_collections.ConfigDict({'model': run.model, 'model_kwargs': kwargs})
    variables, _ = phases.restore_variables(model, run.directory, cfg, example, run.seed)
    print(f'| {run.setup} | {run.seed} | {l1:g} | {l2:g} | {penalty_term(variables["params"], l1, l2):.5f} |')


if __name__ == '__main__':
  main()
