"""What every job's report shares: summaries over seeds, the written files, the plotting set-up."""
import json
import math
from typing import Any, Dict, Sequence

from etils import epath
import numpy as np

from kd_jax import metrics
from kd_jax import sharding


def summary_stats(values: Sequence[float]) -> Dict[str, float]:
  """Mean, sample standard deviation (ddof 1; 0 for one value) and n."""
  return {'mean': float(np.mean(values)), 'std': float(metrics.sample_std(values)), 'n': len(values)}


def mean_std_cell(stats, scale: float = 100.0, digits: int = 2) -> str:
  """'mean ± std' of :func:`summary_stats` output, times ``scale``; the mean alone for one value (no spread to
  show); '–' for none."""
  if stats is None:
    return '–'
  if stats.get('n', 2) == 1:
    return f'{scale * stats["mean"]:.{digits}f}'
  return f'{scale * stats["mean"]:.{digits}f} ± {scale * stats["std"]:.{digits}f}'


def wall_time(seconds) -> str:
  """The reports' wall-time phrase for ``seconds`` (a number, or text such as '10 epochs: 164 s, ...'): the time of
  the command that wrote the report, which for runs it found finished is only their restore and evaluation."""
  amount = f'{seconds:.0f} s' if isinstance(seconds, (int, float)) else seconds
  return f'Wall time of the command that wrote this report (runs it found finished count only their evaluation): {amount}'


def precision_note(config: Dict[str, Any]) -> str:
  """'' for float32 runs; what ran in bfloat16 otherwise (appended to a report's wall-time line)."""
  if config.get('compute_dtype', 'float32') == 'float32':
    return ''
  return f'; models computed in {config["compute_dtype"]} (parameters, optimizer state and losses in float32)'


def targets_warning(config: Dict[str, Any]) -> str:
  """'' when KD students learned their teachers' targets; a bold line naming the control otherwise."""
  targets = config.get('kd', {}).get('targets', 'teacher')
  if targets == 'teacher':
    return ''
  return (f'**CONTROL RUN: the KD students learned config.kd.targets={targets!r} targets made from their '
          "teachers' logits (see kd_jax.losses.TARGETS), not the teachers' own.**\n\n")


def check_finite(data, where: str, path: str = ''):
  """A FloatingPointError naming the first non-finite number in ``data`` (nested dicts and lists) by its path."""
  if isinstance(data, dict):
    for key, value in data.items():
      check_finite(value, where, f'{path}{key}.')
  elif isinstance(data, (list, tuple)):
    for k, value in enumerate(data):
      check_finite(value, where, f'{path}{k}.')
  elif isinstance(data, float) and not math.isfinite(data):
    raise FloatingPointError(f'{where} would hold {data} at {path[:-1]}: the evaluation gave a non-finite number, '
                             'and no report is written from one')


def write(workdir: str, stem: str, data: Dict[str, Any], markdown: str, json_indent: int = 2):
  """Writes ``stem.json`` and ``stem.md`` to ``workdir`` and prints the Markdown (process 0 only). A non-finite
  number anywhere in ``data`` is an error: no report or JSON holds NaN or inf."""
  check_finite(data, f'{stem}.json')
  if not sharding.is_primary():
    return
  epath.Path(workdir, f'{stem}.json').write_text(json.dumps(data, indent=json_indent, allow_nan=False))
  epath.Path(workdir, f'{stem}.md').write_text(markdown)
  print(markdown, flush=True)


def save_figure(fig, path, dpi: int = 120):
  """``fig`` as a PNG at ``path`` (local or gs://), then closed."""
  with epath.Path(path).open('wb') as f:
    fig.savefig(f, format='png', dpi=dpi)
  pyplot().close(fig)


def pyplot():
  """matplotlib.pyplot on the file-only Agg backend (jobs run headless)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt
