"""What an SVA grid's report adds (kd_jax/sva/task.py gives it to the seed grid): perplexity, accuracy by number of
attractors and its plot, the majority-form baseline."""
import os
from typing import Any, Dict

import numpy as np

from kd_jax import metrics as metrics_lib
from kd_jax import reports


def _flatten(result: Dict[str, Any]) -> Dict[str, float]:
  """Scalar metrics of one run as 'test_set/metric' (nested dicts as 'test_set/metric/key')."""
  flat = {}
  for name, metrics in result.items():
    if not isinstance(metrics, dict):
      continue
    for key, value in metrics.items():
      if key.endswith('counts'):
        continue
      if isinstance(value, dict):
        flat.update({f'{name}/{key}/{k}': v for k, v in value.items()})
      elif isinstance(value, (int, float)) and key != 'count':
        flat[f'{name}/{key}'] = value
  return flat


def summarise(runs: Dict[str, list]) -> Dict[str, Dict[str, Dict[str, float]]]:
  """Per role and metric: mean, sample std (ddof 1; 0 for one run) and n."""
  summary = {}
  for role, role_runs in runs.items():
    flats = [_flatten(r) for r in role_runs]
    summary[role] = {key: reports.summary_stats([f[key] for f in flats]) for key in flats[0]}
  return summary


def _mean_std_cell(values) -> str:
  return reports.mean_std_cell(reports.summary_stats(values))


def attractor_counts(results):
  keys = {k.split('/')[-1] for stats in results['summary'].values() for k in stats if '/accuracy_by_attractors/' in k}
  return sorted(int(k) for k in keys)


def attractor_accuracy(results, role, counts):
  """([seeds, counts] accuracy at each attractor count, [counts] examples), pooling every test set's examples."""
  per_seed = []
  for run in results['runs'][role]:
    row, num = [], []
    for k in counts:
      hits = [(r['accuracy_by_attractors'][str(k)], int(r['attractor_counts'][str(k)])) for r in run.values()
              if isinstance(r, dict) and str(k) in r.get('accuracy_by_attractors', {})]
      num.append(sum(n for _, n in hits))
      row.append(sum(a * n for a, n in hits) / max(num[-1], 1))
    per_seed.append(row)
  return np.asarray(per_seed), np.asarray(num, np.float64)


def _majority_form_note(results) -> str:
  baselines = results.get('majority_form_baseline')
  if not baselines:
    return ''
  rows = [f'| {name} | {100 * b["accuracy"]:.2f} | ' + ' | '.join(
      f'{100 * b["accuracy_by_attractors"][k]:.1f}' if k in b['accuracy_by_attractors'] else '–'
      for k in map(str, range(5))) + ' |' for name, b in baselines.items()]
  return ('\n\nMajority-form baseline, no model: the verb form more frequent in the training sentences wins (a tie '
          'counts as wrong), on the verbs the models are scored on. Accuracy (%) overall and by attractors 0–4:\n\n'
          '| test set | accuracy | 0 | 1 | 2 | 3 | 4 |\n|---|---|---|---|---|---|---|\n' + '\n'.join(rows))


def _unscored_note(results) -> str:
  """LM reports: how many agreement verbs per test set fell outside the vocabulary and were not scored."""
  first_run = next(iter(results['runs'].values()))[0]
  unscored = {k: v['unscored_oov_verbs'] for k, v in first_run.items()
              if isinstance(v, dict) and 'unscored_oov_verbs' in v}
  if not any(unscored.values()):
    return ''
  return (f'Verb pairs with a form outside the vocabulary are not scored: {unscored} of '
          f'{results["num_test"]} test sentences.\n\n')


def grid_section(report, workdir: str) -> str:
  """What a seed grid's report (``grid.md``) adds for SVA: perplexity (language models) and the macro accuracy over
  subject–verb distances (where the data gives distances) per test set, accuracy by number of attractors (and
  ``accuracy_by_attractors.png``), the majority-form baseline and unscored verbs."""
  runs = {setup['title']: setup['instances'] for setup in report['setups'].values()}
  view = {'runs': runs, 'summary': summarise(runs), 'num_test': report['num_test'],
          'synthetic': report['data_source'].startswith('synthetic'),
          'majority_form_baseline': report.get('majority_form_baseline')}
  lines, names = [], list(report['num_test'])
  for title, key, scale, digits in (
      ('Perplexity (exp of the mean NLL per target word, end token included)', 'perplexity', 1.0, 1),
      ('Accuracy (%), macro mean over subject–verb distances 1–16', 'macro_distance_accuracy', 100.0, 2)):
    if not any(f'{t}/{key}' in stats for stats in view['summary'].values() for t in names):
      continue  # perplexity: language models only; distances: only some data sources give them
    lines += [f'{title}:', '', '| setup | ' + ' | '.join(report['test_sets'][t] for t in names) + ' |',
              '|---' * (len(names) + 1) + '|']
    lines += [f'| {setup} | ' + ' | '.join(reports.mean_std_cell(stats.get(f'{t}/{key}'), scale, digits)
                                          for t in names) + ' |' for setup, stats in view['summary'].items()]
    lines.append('')
  counts = attractor_counts(view)
  if counts:
    plot_attractors(view, os.path.join(workdir, 'accuracy_by_attractors.png'))
    lines += ['Accuracy (%) by number of attractors (all test sets pooled), its macro mean and the micro accuracy '
              'over them:', '', '| setup | ' + ' | '.join(str(k) for k in counts) + ' | macro | micro |',
              '|---' * (len(counts) + 3) + '|']
    for title in runs:
      per_seed, num = attractor_accuracy(view, title, counts)
      cells = [_mean_std_cell(per_seed[:, j]) for j in range(len(counts))]
      cells += [_mean_std_cell(per_seed.mean(1)), _mean_std_cell(per_seed @ num / num.sum())]
      lines.append(f'| {title} | ' + ' | '.join(cells) + ' |')
    lines += ['', '![accuracy by attractors](accuracy_by_attractors.png)']
  text = '\n'.join(lines) + _majority_form_note(view)
  return _unscored_note(view) + text + '\n\n' if text else ''


def plot_attractors(results, path: str):
  """Accuracy against the number of attractors, a line per setup (named by its title)."""
  plt = reports.pyplot()
  counts = attractor_counts(results)
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for role in results['runs']:
    per_seed, _ = attractor_accuracy(results, role, counts)
    ax.errorbar(counts, 100 * per_seed.mean(0), yerr=100 * metrics_lib.sample_std(per_seed, axis=0), marker='o',
                capsize=3, label=role)
  ax.set_xlabel('number of attractors')
  ax.set_ylabel('agreement accuracy (%)')
  ax.set_xticks(counts)
  ax.grid(alpha=0.3)
  ax.legend()
  ax.set_title('Subject–verb agreement' + (' (SYNTHETIC DEMO)' if results['synthetic'] else ''))
  fig.tight_layout()
  reports.save_figure(fig, path, dpi=120)
