"""MNIST reports: the single job's table, sentences and plot (the seed grid's are kd_jax/grid_report.py's)."""
import json
import os
from typing import Any, Dict, List

import numpy as np

from kd_jax import reports
from kd_jax import run_settings
from kd_jax import sharding
from kd_jax.mnist import configs
from kd_jax.mnist.data import TEST_SETS

TEST_SET_TITLES = {'mnist': 'MNIST', 'mnist_scale': 'MNIST-Scaled', 'mnist_translate': 'MNIST-Translated'}
DEMO_WARNING = '**DEMO SAMPLE ONLY — not full MNIST; not comparable to the paper.**\n\n'


# ----------------------------------------------------------------------------- the single job

ROLES = ('teacher', 'independent', 'student')
OOD_SETS = ('mnist_scale', 'mnist_translate')


def role_title(role: str, results: Dict[str, Any]) -> str:
  """A row's name: the role, its model, and what it does beyond plain KD or plain labels (objective, views,
  settings in which the independent student differs from the distilled one)."""
  config = results['config']
  cfg = results['independent_settings'] if role == 'independent' else config[role]
  details = [cfg['model']]
  if role == 'student' and cfg['loss'] != 'distillation':
    details.append(cfg['loss'])
  if role == 'independent':
    details += [f'{k} {v}' for k, v in independent_differences(config).items()]
  if cfg.get('augment'):
    details.append(f'views: {cfg["augment"]}')
  name = {'teacher': 'teacher', 'independent': 'independent student',
          'student': 'student' if cfg['loss'] == 'cross_entropy' else 'distilled student'}[role]
  return f'{name} ({", ".join(details)})'


def independent_differences(config: Dict[str, Any]) -> Dict[str, Any]:
  """The settings in which the independent student's training differs from the distilled one's."""
  return {k: v for k, v in config.get('independent_overrides', {}).items() if config['student'].get(k) != v}


def results_table(results: Dict[str, Any]) -> str:
  header = '| model | ' + ' | '.join(f'{TEST_SET_TITLES[t]} acc | {TEST_SET_TITLES[t]} ECE' for t in TEST_SETS) + ' |'
  lines = [header, '|---' * (1 + 2 * len(TEST_SETS)) + '|']
  for role in (r for r in ROLES if r in results):
    cells = ' | '.join(f'{100 * results[role][t]["accuracy"]:.2f}% | {results[role][t]["ece"]:.4f}'
                       for t in TEST_SETS)
    lines.append(f'| {role_title(role, results)} | {cells} |')
  return '\n'.join(lines)


def agreement_table(results: Dict[str, Any]) -> str:
  """How often each student predicts the teacher's class, per test set."""
  students = [r for r in ROLES[1:] if r in results]
  lines = ['| model | ' + ' | '.join(TEST_SET_TITLES[t] for t in TEST_SETS) + ' |', '|---' * (1 + len(TEST_SETS)) + '|']
  for role in students:
    lines.append(f'| {role_title(role, results)} | '
                 + ' | '.join(f'{100 * results[role][t]["teacher_agreement"]:.2f}%' for t in TEST_SETS) + ' |')
  return '\n'.join(lines)


def _signed(value: float, digits: int = 1) -> str:
  return f'{value:+.{digits}f}'.replace('-', '−')


def _difference(a: float, b: float, scale: float, digits: int) -> str:
  """a − b as shown: from the rounded values printed beside it, so that the sentence's arithmetic holds."""
  return _signed(round(scale * a, digits) - round(scale * b, digits), digits)


def gain_sentences(results: Dict[str, Any]) -> List[str]:
  """One sentence per test set, out-of-distribution sets first: the distilled student against the independent one
  (accuracy, ECE, agreement with the teacher), with the teacher's own level."""
  config = results['config']
  teacher, student = config['teacher']['model'].upper(), config['student']['model'].upper()
  sentences = []
  for t in (*OOD_SETS, 'mnist'):
    tr, ind, st = (results[r][t] for r in ('teacher', 'independent', 'student'))
    where = ' (in distribution)' if t == 'mnist' else ''
    sentences.append(
        f'**{TEST_SET_TITLES[t]}**{where}: the {student} reaches {100 * st["accuracy"]:.1f} % with the {teacher} '
        f'teacher vs {100 * ind["accuracy"]:.1f} % on labels alone '
        f'({_difference(st["accuracy"], ind["accuracy"], 100, 1)} points); the teacher is at '
        f'{100 * tr["accuracy"]:.1f} %. ECE {st["ece"]:.3f} vs {ind["ece"]:.3f} '
        f'({_difference(st["ece"], ind["ece"], 1, 3)}; teacher {tr["ece"]:.3f}). It agrees with the teacher\'s '
        f'prediction on {100 * st["teacher_agreement"]:.1f} % of the digits vs {100 * ind["teacher_agreement"]:.1f} % '
        f'({_difference(st["teacher_agreement"], ind["teacher_agreement"], 100, 1)} points).')
  return sentences


def recipe_changes(config: Dict[str, Any]) -> List[str]:
  """The settings of this job's models and distillation that differ from its pair's default config (the recipe of
  ``configs/mnist_grid.py:main_job``)."""
  default = json.loads(configs.pair_config(config['teacher']['model'], config['student']['model']).to_json())
  fields = ('teacher', 'student', 'kd', 'independent_overrides', 'cache_teacher_logits')
  now, then = (run_settings.flatten({f: c.get(f) for f in fields}) for c in (config, default))
  return sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k) and k != 'teacher.checkpoint')


def grid_command(config: Dict[str, Any]) -> str:
  """The seed grid of this job's pair at the main jobs' recipe (configs/mnist_grid.py:main_job), for mean ± std."""
  teacher, student = config['teacher']['model'], config['student']['model']
  setups = ','.join(f"'{s}'" for s in dict.fromkeys((teacher, student, f'{teacher}_to_{student}')))
  data_dir = f' --config.data.dir={config["data"]["dir"]}' if config['data'].get('dir') else ''
  return (f'python -m kd_jax.grid --config=configs/mnist_grid.py:main_job "--config.setups=({setups})" '
          f'--workdir=<dir>{data_dir}')


def write_results(results, workdir: str):
  config = results['config']
  warning = (DEMO_WARNING if results['demo_sample'] else '') + reports.targets_warning(config)
  if results['demo_sample'] and config['data'].get('demo_teacher_epochs'):
    warning += (f'Demo schedule: the teacher trained {config["teacher"]["num_epochs"]:g} epochs '
                '(config.data.demo_teacher_epochs).\n\n')
  if 'gain' in results:
    changed = recipe_changes(config)
    verdict = ('\n\n'.join(gain_sentences(results)) + '\n\n'
               f'1 seed (config.seed = {config["seed"]}): run the grid for mean ± std — `{grid_command(config)}`'
               + (f' with this job\'s changes to the default recipe ({", ".join(changed)}) made there too.'
                  if changed else '.'))
    differences = ', '.join(f'{k} {v}' for k, v in independent_differences(config).items())
    control = (' The independent student is the student\'s model, initialisation and data order on gold labels '
               + (f'alone, trained with {differences}.' if differences else 'alone, with the same recipe.'))
  else:
    control = ''
    verdict = ('No independent student was trained (config.train_independent_student=False, or the student learns '
               'from labels alone): there is no control to measure a gain against.')
  text = (f'# kd_jax results\n\n{warning}Data: {results["data_source"]}\n\n'
          f'Train examples: {results["num_train"]}; test examples per set: {results["num_test"]}; '
          f'teacher logits {results["teacher_logits"]}; final checkpoints (not best); ECE with '
          f'{config["eval"]["ece_bins"]} equal-width (l, r] bins (Guo et al.).{control}\n\n'
          f'{results_table(results)}\n\n{verdict}\n\n'
          f'Agreement with the teacher\'s predictions:\n\n{agreement_table(results)}\n\n'
          '![accuracy per test set](accuracy.png)\n\n'
          f'{reports.wall_time(results["timing"]["total_seconds"])} on {results["num_devices"]} device(s) ('
          + ', '.join(f'{k[:-len("_seconds")]} {v:.0f} s' for k, v in results['timing'].items()
                      if k != 'total_seconds') + f'){reports.precision_note(config)}.\n')
  if sharding.is_primary():
    plot_roles(results, os.path.join(workdir, 'accuracy.png'))
  reports.write(workdir, 'results', results, text)


def plot_roles(results, path: str):
  """Accuracy per test set of the teacher, the independent and the distilled student: the job at a glance."""
  plt = reports.pyplot()
  roles = [r for r in ROLES if r in results]
  x = np.arange(len(TEST_SETS))
  width = 0.8 / len(roles)
  fig, ax = plt.subplots(figsize=(8, 4.5))
  for i, role in enumerate(roles):
    heights = [100 * results[role][t]['accuracy'] for t in TEST_SETS]
    bars = ax.bar(x + (i - (len(roles) - 1) / 2) * width, heights, width, label=role_title(role, results))
    ax.bar_label(bars, fmt='%.1f', fontsize=8)
  ax.set_xticks(x, [TEST_SET_TITLES[t] for t in TEST_SETS])
  ax.set_ylabel('accuracy (%)')
  ax.set_ylim(0, 105)
  seed = results['config']['seed']
  ax.set_title(f'{results["config"]["teacher"]["model"].upper()} → {results["config"]["student"]["model"].upper()}'
               f', seed {seed} (1 seed){" — DEMO SAMPLE" if results["demo_sample"] else ""}')
  ax.legend(fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.08), ncol=len(roles))
  fig.tight_layout()
  reports.save_figure(fig, path, dpi=120)
