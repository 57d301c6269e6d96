"""MNIST reports: the single job's table, and the seed grid's table, summary and plots."""
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


# ----------------------------------------------------------------------------- the seed grid

def summarise(instances: List[Dict[str, Any]]) -> Dict[str, Dict[str, Dict[str, float]]]:
  """Mean, sample standard deviation and n over instances, per test set and metric."""
  return {test_set: {metric: reports.summary_stats([inst[test_set][metric] for inst in instances])
                     for metric in ('accuracy', 'ece', 'teacher_agreement')
                     if all(metric in inst[test_set] for inst in instances)}
          for test_set in TEST_SETS}


def format_row(instances) -> str:
  summary = summarise(instances)
  return ', '.join(f'{TEST_SET_TITLES[t]} {100 * summary[t]["accuracy"]["mean"]:.2f}%' for t in TEST_SETS)


def grid_table(report) -> str:
  lines = ['| setup | n | ' + ' | '.join(f'{TEST_SET_TITLES[t]} acc (%) | {TEST_SET_TITLES[t]} ECE' for t in TEST_SETS)
           + ' |', '|---|---' + '|---' * (2 * len(TEST_SETS)) + '|']
  for setup in report['setups'].values():
    s = setup['summary']
    cells = ' | '.join(f'{reports.mean_std_cell(s[t]["accuracy"])} | {reports.mean_std_cell(s[t]["ece"], 1.0, 4)}'
                       for t in TEST_SETS)
    lines.append(f'| {setup["title"]} | {s["mnist"]["accuracy"]["n"]} | {cells} |')
  return '\n'.join(lines)


def write_grid_report(report, workdir: str):
  if not sharding.is_primary():
    return
  plot_accuracy(report, os.path.join(workdir, 'accuracy.png'))
  plot_reliability(report, os.path.join(workdir, 'reliability.png'))
  warning = (DEMO_WARNING if report['demo_sample'] else '') + reports.targets_warning(report['config'])
  logits = 'cached once per teacher instance' if report['cache_teacher_logits'] else 'computed in the step'
  seconds = ', '.join(f'{s["title"]} {s["seconds"]:.0f} s' for s in report['setups'].values() if s['seconds'])
  text = (f'# kd_jax MNIST grid\n\n{warning}Data: {report["data_source"]}\n\n'
          f'{report["mode"]} KD; seeds {report["seeds"]} (n = {len(report["seeds"])} per setup, '
          f'{"vmapped" if report["vmapped"] else "run one after another"}); '
          f'teacher logits {logits if report["mode"] == "offline" else "from the co-trained teacher"}; '
          f'{report["num_train"]} train examples, {report["num_test"]} test examples per set. '
          f'Cells: mean ± sample std (ddof = 1) over instances. Checkpoint rule: {report["checkpoint_rule"]}. '
          f'ECE: {report["config"]["eval"]["ece_bins"]} equal-width (l, r] bins (Guo et al.).\n\n'
          + ''.join(shared_teacher_line(report, name) for name in report.get('shared_teachers', ()))
          + ''.join(ensemble_line(name, ensemble) for name, ensemble in report.get('teacher_ensembles', {}).items())
          + f'{grid_table(report)}\n\n{grid_agreement_table(report)}'
          f'![accuracy](accuracy.png)\n\n![reliability](reliability.png)\n\n'
          f'{reports.wall_time(report["total_seconds"])} on {report["num_devices"]} × {report["device"]} '
          f'({seconds}){reports.precision_note(report["config"])}.\n')
  reports.write(workdir, 'grid', report, text, json_indent=1)


def ensemble_line(name: str, ensemble) -> str:
  """The report's line saying that every seed's students of ``name`` distilled from one ensemble, and its level."""
  accuracy = ', '.join(f'{TEST_SET_TITLES[t]} {100 * ensemble["metrics"][t]["accuracy"]:.2f} %' for t in TEST_SETS)
  return (f'**Teacher ensemble**: every student of a {name.upper()} teacher distilled from the ensemble of all '
          f'{ensemble["members"]} seeds\' {name.upper()}s (averaged {ensemble["combine"]}), not from its own seed\'s; '
          f'the ensemble itself: {accuracy}.\n\n')


def grid_agreement_table(report) -> str:
  """Per KD setup: how often its students predict their teacher's class, mean ± std ('' if no setup has it)."""
  rows = [f'| {setup["title"]} | ' + ' | '.join(reports.mean_std_cell(setup['summary'][t]['teacher_agreement'])
                                                for t in TEST_SETS) + ' |'
          for setup in report['setups'].values() if 'teacher_agreement' in setup['summary']['mnist']]
  if not rows:
    return ''
  return ('Agreement with the teacher\'s predictions (%): the fraction of test inputs on which a student predicts the '
          'class its own teacher predicts.\n\n| setup | ' + ' | '.join(TEST_SET_TITLES[t] for t in TEST_SETS)
          + ' |\n|---' + '|---' * len(TEST_SETS) + '|\n' + '\n'.join(rows) + '\n\n')


def shared_teacher_line(report, name: str) -> str:
  """The report's warning that every seed's students of ``name`` distilled from one saved teacher — whether or not
  that teacher is a row of the grid."""
  checkpoint = report['config']['models'][name]['checkpoint']
  title = report['setups'][name]['title'] if name in report['setups'] else name.upper()
  row = 'its row is that one model, and ' if name in report['setups'] else ''
  return (f'**One teacher for all seeds**: {title} (config.kd.shared_teacher=True, {checkpoint}); {row}its students\' '
          'spread is over their own seeds only.\n\n')


def plot_accuracy(report, path: str):
  plt = reports.pyplot()
  setups = list(report['setups'].values())
  x = np.arange(len(TEST_SETS))
  width = 0.8 / len(setups)
  fig, ax = plt.subplots(figsize=(9, 4.5))
  for i, setup in enumerate(setups):
    s = setup['summary']
    ax.bar(x + (i - (len(setups) - 1) / 2) * width, [100 * s[t]['accuracy']['mean'] for t in TEST_SETS],
           width, yerr=[100 * s[t]['accuracy']['std'] for t in TEST_SETS], capsize=3, label=setup['title'])
  ax.set_xticks(x, [TEST_SET_TITLES[t] for t in TEST_SETS])
  ax.set_ylabel('accuracy (%)')
  ax.set_ylim(0, 100)
  ax.set_title(f'Accuracy, mean ± std over {len(report["seeds"])} seeds ({report["mode"]} KD)')
  ax.legend(ncol=len(setups), fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.08))
  fig.tight_layout()
  reports.save_figure(fig, path, dpi=120)


def plot_reliability(report, path: str):
  """Reliability diagrams of the CNN, the MLP and CNN→MLP (those present), bins pooled over instances."""
  plt = reports.pyplot()
  shown = [s for s in ('cnn', 'mlp', 'cnn_to_mlp') if s in report['setups']] or list(report['setups'])[:3]
  fig, axes = plt.subplots(len(TEST_SETS), len(shown), figsize=(3.2 * len(shown), 9), squeeze=False)
  for col, setup in enumerate(shown):
    for row, test_set in enumerate(TEST_SETS):
      bins = [inst[test_set]['reliability'] for inst in report['setups'][setup]['instances']]
      count = np.sum([b['count'] for b in bins], axis=0)
      safe = np.maximum(count, 1)
      accuracy = np.sum([np.array(b['accuracy']) * b['count'] for b in bins], axis=0) / safe
      confidence = np.sum([np.array(b['confidence']) * b['count'] for b in bins], axis=0) / safe
      edges = np.linspace(0, 1, len(count) + 1)
      ax = axes[row, col]
      filled = count > 0
      ax.bar(edges[:-1], np.where(filled, accuracy, 0), width=np.diff(edges), align='edge',
             edgecolor='black', linewidth=0.5, label='accuracy')
      ax.bar(edges[:-1], np.where(filled, np.abs(confidence - accuracy), 0), bottom=np.minimum(accuracy, confidence),
             width=np.diff(edges), align='edge', color='red', alpha=0.3, label='gap to mean confidence')
      ax.plot([0, 1], [0, 1], 'k--', linewidth=0.8)
      ece = report['setups'][setup]['summary'][test_set]['ece']['mean']
      ax.set_title(f'{report["setups"][setup]["title"]} · {TEST_SET_TITLES[test_set]}\nECE {ece:.3f}', fontsize=9)
      ax.set_xlim(0, 1)
      ax.set_ylim(0, 1)
      if row == len(TEST_SETS) - 1:
        ax.set_xlabel('confidence')
      if col == 0:
        ax.set_ylabel('accuracy')
  axes[0, 0].legend(fontsize=7, loc='upper left')
  fig.tight_layout()
  reports.save_figure(fig, path, dpi=110)


# ----------------------------------------------------------------------------- students at several budgets

# The paper's single-run notebook numbers on MNIST-Translated: CNN→MLP ≈ 50–53 % vs MLP ≈ 36–39 %
# (docs/paper_recipe.md): a gain of about 14 points, after 400 student epochs.
PAPER_TRANSLATE_GAIN = 14.0


def gains_over_independent(grid: Dict[str, Any], reference: Dict[str, Any]) -> Dict[str, Any]:
  """Each KD setup of ``grid``: its accuracy minus that of the independent student (the setup named by the student
  alone) of the grid ``reference`` (``grid`` itself, or e.g. an ablation's first factor), paired by seed."""
  gains = {}
  for name, setup in grid['setups'].items():
    student = name.partition('_to_')[2]
    if student and student in reference['setups']:
      independent = reference['setups'][student]['instances']
      gains[name] = {t: reports.summary_stats([d[t]['accuracy'] - i[t]['accuracy']
                                               for d, i in zip(setup['instances'], independent)]) for t in TEST_SETS}
  return gains


def student_epochs_summary(grids: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
  """Per number of student epochs (keys of ``grids``, each a grid report): every setup's summary and each KD
  setup's gain over its independent student (the setup named by the student alone), paired by seed."""
  rows = {}
  for epochs, grid in grids.items():
    setups = grid['setups']
    rows[epochs] = {'setups': {name: {'title': s['title'], 'summary': s['summary']} for name, s in setups.items()},
                    'gain_over_independent': gains_over_independent(grid, grid), 'seconds': grid['total_seconds']}
  last = next(reversed(grids.values()))
  return {'student_epochs': rows, 'seeds': last['seeds'], 'data_source': last['data_source'],
          'demo_sample': last['demo_sample'], 'device': last['device'], 'num_devices': last['num_devices'],
          'paper_translate_gain': PAPER_TRANSLATE_GAIN, 'config': last['config']}


def write_student_epochs_report(sweep: Dict[str, Any], workdir: str):
  if not sharding.is_primary():
    return
  plot_student_epochs(sweep, os.path.join(workdir, 'student_epochs.png'))
  rows = sweep['student_epochs']
  first = next(iter(rows.values()))
  titles = {name: s['title'] for name, s in first['setups'].items()}
  gain_names = list(first['gain_over_independent'])
  tables = []
  for test_set in ('mnist_scale', 'mnist_translate'):
    header = ['student epochs'] + [f'{title} acc (%) / ECE' for title in titles.values()]
    header += [f'{titles[n]} − {titles[n.partition("_to_")[2]]} (points)' for n in gain_names]
    lines = [f'**{TEST_SET_TITLES[test_set]}**\n', '| ' + ' | '.join(header) + ' |', '|---' * len(header) + '|']
    for epochs, row in rows.items():
      cells = [f'{reports.mean_std_cell(row["setups"][n]["summary"][test_set]["accuracy"], digits=1)} / '
               f'{row["setups"][n]["summary"][test_set]["ece"]["mean"]:.3f}' for n in titles]
      cells += [reports.mean_std_cell(row['gain_over_independent'][n][test_set], digits=1) for n in gain_names]
      lines.append(f'| {epochs} | ' + ' | '.join(cells) + ' |')
    tables.append('\n'.join(lines))
  seconds = ', '.join(f'{e} epochs: {row["seconds"]:.0f} s' for e, row in rows.items())
  text = (f'# kd_jax MNIST: students at several budgets\n\n{DEMO_WARNING if sweep["demo_sample"] else ""}'
          f'{reports.targets_warning(sweep["config"])}'
          f'Data: {sweep["data_source"]}\n\nSeeds {sweep["seeds"]} (n = {len(sweep["seeds"])}); cells: mean ± sample '
          'std over seeds (accuracy) / mean ECE (15 equal-width (l, r] bins); gains are paired by seed. Students and '
          'their independent counterparts train the same epochs; teacher-only models were trained once. The paper: '
          f'CNN→MLP − MLP on MNIST-Translated ≈ {PAPER_TRANSLATE_GAIN:g} points after 400 epochs.\n\n'
          + '\n\n'.join(tables) + f'\n\n![student epochs](student_epochs.png)\n\n{reports.wall_time(seconds)} on '
          f'{sweep["num_devices"]} × {sweep["device"]}{reports.precision_note(sweep["config"])}.\n')
  reports.write(workdir, 'student_epochs', sweep, text, json_indent=1)


def plot_ablation(ablation: Dict[str, Any], path: str):
  """Per factor, each KD setup's paired gain (mean ± std over seeds) on Translated and Scaled: over the factor's own
  independent student and over the first factor's; the paper's Translated gain marked."""
  plt = reports.pyplot()
  rows = ablation['student_epochs']
  factors = list(rows)
  first = next(iter(rows.values()))
  fig, axes = plt.subplots(1, 2, figsize=(14, 0.45 * len(factors) * len(first['gain_over_independent']) + 1.8),
                           sharey=True)
  y = np.arange(len(factors))
  for ax, test_set in zip(axes, ('mnist_translate', 'mnist_scale')):
    title = lambda name: first['setups'][name]['title']
    bars = [(name, gains, f'{title(name)} − {whose} {title(name.partition("_to_")[2])}')
            for name in first['gain_over_independent']
            for gains, whose in (('gain_over_independent', "the factor's"),
                                 ('gain_over_first_factor_independent', f"{factors[0]}'s"))]
    height = 0.8 / len(bars)
    for i, (name, gains, label) in enumerate(bars):
      stats = [rows[f][gains][name][test_set] for f in factors]
      ax.barh(y + i * height, [100 * s['mean'] for s in stats], height, xerr=[100 * s['std'] for s in stats],
              capsize=2, label=label)
    if test_set == 'mnist_translate':
      ax.axvline(PAPER_TRANSLATE_GAIN, color='black', linestyle='--', linewidth=1, label='paper: CNN→MLP − MLP ≈ 14')
    ax.axvline(0, color='grey', linewidth=0.5)
    ax.set_title(f'{TEST_SET_TITLES[test_set]}: gain (accuracy points, mean ± std over seeds)')
  axes[0].set_yticks(y + 0.4 - 0.4 / len(bars), factors)
  axes[0].invert_yaxis()
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  reports.save_figure(fig, path, dpi=110)


def write_ablation_report(ablation: Dict[str, Any], workdir: str):
  """One row per factor of :func:`kd_jax.mnist.grid.run_factors`: what it changes, each setup's MNIST-Translated
  accuracy, and each KD setup's gain over its independent student on Translated and Scaled, paired by seed."""
  if not sharding.is_primary():
    return
  plot_ablation(ablation, os.path.join(workdir, 'ablation.png'))
  rows = ablation['student_epochs']
  first = next(iter(rows.values()))
  titles = {name: s['title'] for name, s in first['setups'].items()}
  gain_names = list(first['gain_over_independent'])
  first_factor = next(iter(rows))
  header = ['factor', 'changes'] + [f'{title} Translated acc (%)' for title in titles.values()]
  for test_set in ('mnist_translate', 'mnist_scale'):
    header += [f'{titles[n]} − {titles[n.partition("_to_")[2]]} on {TEST_SET_TITLES[test_set]} (points)'
               for n in gain_names]
  # Against one baseline for every factor: the first factor's independent student (e.g. the no-KD MLP, when a
  # factor's own independent row is a control that changed with it).
  header += [f'{titles[n]} − {first_factor}\'s {titles[n.partition("_to_")[2]]} on {TEST_SET_TITLES[t]} (points)'
             for t in ('mnist_translate', 'mnist_scale') for n in gain_names]
  lines = ['| ' + ' | '.join(header) + ' |', '|---' * len(header) + '|']
  for factor, row in rows.items():
    changes = '; '.join(f'{k} = {v}' for k, v in _flat(ablation['factors'][factor]).items()) or '(none)'
    cells = [reports.mean_std_cell(row['setups'][n]['summary']['mnist_translate']['accuracy'], digits=1)
             for n in titles]
    cells += [reports.mean_std_cell(row[gains][n][t], digits=1) for gains in ('gain_over_independent',
                                                                           'gain_over_first_factor_independent')
              for t in ('mnist_translate', 'mnist_scale') for n in gain_names]
    lines.append(f'| {factor} | {changes} | ' + ' | '.join(cells) + ' |')
  seconds = ', '.join(f'{f}: {row["seconds"]:.0f} s' for f, row in rows.items())
  remaining = ablation.get('factors_to_run', [])
  progress = (f'**In progress: {len(rows)} of {len(rows) + len(remaining)} factors finished; still to run: '
              f'{", ".join(remaining)}.**\n\n' if remaining else '')
  text = (f'# kd_jax MNIST: ablation\n\n{progress}{DEMO_WARNING if ablation["demo_sample"] else ""}'
          f'Data: {ablation["data_source"]}\n\nSeeds {ablation["seeds"]} (n = {len(ablation["seeds"])}); cells: '
          'mean ± sample std over seeds; gains paired by seed. Each factor changes the settings listed from the '
          'first row\'s; a teacher is trained once per distinct teacher setting and restored by every later factor '
          f'with the same. The paper: CNN→MLP − MLP on MNIST-Translated ≈ {PAPER_TRANSLATE_GAIN:g} points after 400 '
          'epochs.\n\n' + '\n'.join(lines) + '\n\n![gains](ablation.png)'
          f'\n\n{reports.wall_time(seconds)} on {ablation["num_devices"]} × '
          f'{ablation["device"]}{reports.precision_note(ablation["config"])}.\n')
  reports.write(workdir, 'ablation', ablation, text, json_indent=1)


def _flat(tree: Dict[str, Any], prefix: str = '') -> Dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    flat.update(_flat(value, f'{prefix}{key}.') if isinstance(value, dict) else {f'{prefix}{key}': value})
  return flat


def plot_student_epochs(sweep: Dict[str, Any], path: str):
  """Scaled and Translated accuracy and ECE against student epochs; the KD setups' gains with the paper's marked."""
  plt = reports.pyplot()
  rows = sweep['student_epochs']
  epochs = [float(e) for e in rows]
  first = next(iter(rows.values()))
  fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
  color = {name: f'C{i}' for i, name in enumerate(first['setups'])}  # a KD setup's gain in its own colour
  for col, (test_set, metric) in enumerate((('mnist_scale', 'accuracy'), ('mnist_translate', 'accuracy'),
                                            ('mnist_translate', 'ece'))):
    ax, scale = axes[col], 100.0 if metric == 'accuracy' else 1.0
    for name, setup in first['setups'].items():
      stats = [row['setups'][name]['summary'][test_set][metric] for row in rows.values()]
      ax.errorbar(epochs, [scale * s['mean'] for s in stats], yerr=[scale * s['std'] for s in stats], capsize=3,
                  marker='o', color=color[name], label=setup['title'])
    ax.set_title(f'{TEST_SET_TITLES[test_set]} {metric}')
    ax.set_ylabel('accuracy (%)' if metric == 'accuracy' else 'ECE')
  ax = axes[3]
  for name in first['gain_over_independent']:
    student = name.partition('_to_')[2]
    stats = [row['gain_over_independent'][name]['mnist_translate'] for row in rows.values()]
    ax.errorbar(epochs, [100 * s['mean'] for s in stats], yerr=[100 * s['std'] for s in stats], capsize=3,
                marker='o', color=color[name],
                label=f'{first["setups"][name]["title"]} − {first["setups"][student]["title"]}')
  ax.axhline(PAPER_TRANSLATE_GAIN, color='black', linestyle='--', linewidth=1, label='paper: CNN→MLP − MLP ≈ 14')
  ax.axhline(0, color='grey', linewidth=0.5)
  ax.set_title('MNIST-Translated: gain over independent')
  ax.set_ylabel('accuracy points')
  for ax in axes:
    ax.set_xscale('log')
    ax.set_xticks(epochs, [f'{e:g}' for e in epochs])
    ax.minorticks_off()
    ax.set_xlabel('student epochs')
    ax.legend(fontsize=7)
  fig.suptitle(f'Mean ± std over {len(sweep["seeds"])} seeds')
  fig.tight_layout()
  reports.save_figure(fig, path, dpi=110)
