"""The benchmarks' one way of timing a jitted call."""
import time

import jax
import numpy as np


def median_rate(call, steps: int, repeats: int, warmup: int = 1) -> float:
  """Calls of ``call()`` per second: the median of ``repeats`` timings of ``steps`` calls each, after ``warmup``
  calls (the first compiles), each timing blocking on the last call's result."""
  for _ in range(warmup):
    jax.block_until_ready(call())
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      out = call()
    jax.block_until_ready(out)
    rates.append(steps / (time.perf_counter() - start))
  return float(np.median(rates))


def train_steps_per_sec(step_fn, state, batch, teacher_variables, steps: int, warmup: int) -> float:
  """Median steps/s of a train step ``(state, batch, teacher_variables) -> (state, metrics)`` over 3 timings of
  ``steps`` steps, the state carried from step to step."""
  def step():
    nonlocal state
    state, metrics = step_fn(state, batch, teacher_variables)
    return metrics
  return median_rate(step, steps, 3, warmup=warmup)
