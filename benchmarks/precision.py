"""The paper-width CNN's vmapped steps at each precision: float32 (`matmul_precision` highest / high / default) and
bfloat16 compute (`compute_dtype`; parameters, optimiser state, logits and losses stay float32).

  python benchmarks/precision.py                          # 4 seeds vmapped, batch 128 each, the paper-width CNN
  python benchmarks/precision.py --instances=1 --batch_size=16 --cnn=cpu --steps=2   # a CPU smoke run

Two steps, as the `:paper` grid runs them: the CNN training on gold labels (N instances vmapped) and CNN→MLP KD
with N training-mode CNN teachers in the step. For each precision: program steps/s (one step of all N instances),
examples/s over the instances, and the TFLOP/s they make of XLA's own FLOP count of the compiled step
(`cost_analysis`); with `--peak_tflops`, that as a share of the device's peak. On a GPU, 'default' float32 lets
XLA use TF32 tensor cores where it chooses, 'high' asks for them, 'highest' forbids them; on a CPU all three
compute float32.
"""
import contextlib

from absl import app
from absl import flags
import jax
import ml_collections
import numpy as np

from kd_jax import losses
from kd_jax import sharding
from kd_jax import phases
from kd_jax import training
from kd_jax.mnist import configs
from kd_jax.mnist import models
import timing  # benchmarks/timing.py

_CNN = flags.DEFINE_enum('cnn', 'paper', ['cpu', 'paper'], 'CNN width.')
_INSTANCES = flags.DEFINE_integer('instances', 4, 'Instances (seeds) vmapped in one step.')
_BATCH = flags.DEFINE_integer('batch_size', 128, 'Batch size per instance.')
_STEPS = flags.DEFINE_integer('steps', 20, 'Timed steps per measurement.')
_PRECISIONS = flags.DEFINE_list('precisions', ['float32:highest', 'float32:high', 'float32:default', 'bfloat16'],
                                'compute_dtype[:matmul_precision] settings to time.')
_PEAK = flags.DEFINE_list('peak_tflops', [], 'Optional setting=peak pairs, e.g. float32:highest=67,bfloat16=989.')


def _compiled(jitted, *args):
  """``jitted`` compiled for ``args``, and XLA's FLOP count of one call (0 when the backend gives none)."""
  compiled = jitted.lower(*args).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return compiled, float((cost or {}).get('flops', 0.0))


def _steps(precision: str):
  """The two vmapped steps at ``precision``: name → (jitted step, stacked state, batch, teacher variables)."""
  compute_dtype = precision.split(':')[0]
  n, mesh = _INSTANCES.value, sharding.data_mesh()
  cnn = models.create_model('cnn', **configs.MODEL_SETTINGS['cnn'][_CNN.value])
  mlp = models.create_model('mlp', **configs.MODEL_SETTINGS['mlp']['paper'])
  opt = ml_collections.ConfigDict(dict(optimizer='adam', learning_rate=1e-4, schedule='constant', clip_norm=1.0))
  tx = training.make_optimizer(opt, 1000)
  rng = np.random.default_rng(0)
  spec = jax.sharding.PartitionSpec(None, 'data')
  batch = sharding.shard_batch({'inputs': rng.uniform(size=(n, _BATCH.value, 28, 28, 1)).astype(np.float32),
                                'label': rng.integers(0, 10, (n, _BATCH.value)).astype(np.int32)}, mesh, spec)
  example = np.zeros((1, 28, 28, 1), np.float32)
  kd = losses.get_loss('distillation', dict(temperature=5.0, alpha=1.0, scale='paper'))
  teachers = jax.vmap(lambda k: training.init_variables(cnn, k, example))(jax.random.split(jax.random.PRNGKey(9), n))
  steps = {}
  for name, model, loss, teacher in (('CNN training', cnn, losses.get_loss('cross_entropy'), None),
                                     ('CNN→MLP KD, train-mode CNN teachers in the step', mlp, kd, cnn)):
    step = training.make_train_step(model, tx, loss, teacher, training.StepOptions(
        teacher_train_mode=teacher is not None, compute_dtype=compute_dtype))
    jitted = sharding.jit_data_parallel(jax.vmap(step), mesh, spec,
                                        training.compiler_options(*filter(None, (model, teacher))))
    state = phases.init_instances(model, tx, phases.instance_keys(range(n), phases.STUDENT_STREAM), True, example)
    steps[name] = (jitted, state, batch, teachers if teacher is not None else None)
  return steps


def main(_):
  peaks = dict(pair.split('=') for pair in _PEAK.value)
  n, batch = _INSTANCES.value, _BATCH.value
  print(f'{_CNN.value}-width CNN, {n} instance(s) vmapped × batch {batch}; {jax.devices()[0].device_kind} '
        f'({jax.default_backend()}), JAX {jax.__version__}; median of 3 × {_STEPS.value} steps\n', flush=True)
  print('| step | precision | program steps/s | examples/s | TFLOP/s (XLA count) | share of peak |\n'
        '|---|---|---|---|---|---|', flush=True)
  for precision in _PRECISIONS.value:
    matmul = precision.split(':')[1] if ':' in precision else 'default'
    context = (contextlib.nullcontext() if matmul == 'default' else jax.default_matmul_precision(matmul))
    with context:
      for name, (jitted, state, batch_, teachers) in _steps(precision).items():
        compiled, flops = _compiled(jitted, state, batch_, teachers)
        steps_per_s = timing.train_steps_per_sec(compiled, state, batch_, teachers, _STEPS.value, warmup=3)
        tflops = flops * steps_per_s / 1e12
        share = f'{100 * tflops / float(peaks[precision]):.0f}%' if precision in peaks else '—'
        print(f'| {name} | {precision} | {steps_per_s:,.1f} | {steps_per_s * n * batch:,.0f} | {tflops:.2f} | '
              f'{share} |', flush=True)


if __name__ == '__main__':
  app.run(main)
