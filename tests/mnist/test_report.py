"""The single job's report: the three rows, the gain sentences and the plot, from known numbers."""
import json

import pytest

from kd_jax.mnist import configs
from kd_jax.mnist import experiment
from kd_jax.mnist import report


def _row(accuracy, ece, agreement=None):
  row = {'accuracy': accuracy, 'ece': ece}
  if agreement is not None:
    row['teacher_agreement'] = agreement
  return row


def _results(variants=''):
  """A finished cnn → mlp job's results as experiment.run writes them (numbers chosen, not trained)."""
  config = configs.pair_config('cnn', 'mlp', variants)
  results = {
      'teacher': {'mnist': _row(0.981, 0.018), 'mnist_scale': _row(0.891, 0.065), 'mnist_translate': _row(0.947, 0.05)},
      'independent': {'mnist': _row(0.987, 0.006, 0.979), 'mnist_scale': _row(0.775, 0.113, 0.80),
                      'mnist_translate': _row(0.403, 0.458, 0.41)},
      'student': {'mnist': _row(0.979, 0.009, 0.990), 'mnist_scale': _row(0.788, 0.024, 0.84),
                  'mnist_translate': _row(0.521, 0.256, 0.53)},
  }
  results.update(gain=experiment.gains(results), independent_settings=experiment.independent_config(config).to_dict(),
                 data_source='test numbers', demo_sample=False, num_train=60000, num_test=10000, num_devices=1,
                 teacher_logits='cached', timing={'teacher_seconds': 200.0, 'total_seconds': 300.0},
                 config=json.loads(config.to_json()))
  return results


def test_the_gain_is_the_distilled_student_minus_the_independent_one():
  gain = _results()['gain']['mnist_translate']
  assert gain['accuracy'] == pytest.approx(0.118) and gain['ece'] == pytest.approx(-0.202)
  assert gain['teacher_agreement'] == pytest.approx(0.12)


def test_the_report_puts_each_models_numbers_in_its_row_and_says_the_gain_in_words(tmp_path):
  results = _results()
  report.write_results(results, str(tmp_path))
  text = (tmp_path / 'results.md').read_text()
  assert ('| teacher (cnn) | 98.10% | 0.0180 | 89.10% | 0.0650 | 94.70% | 0.0500 |\n'
          '| independent student (mlp) | 98.70% | 0.0060 | 77.50% | 0.1130 | 40.30% | 0.4580 |\n'
          '| distilled student (mlp) | 97.90% | 0.0090 | 78.80% | 0.0240 | 52.10% | 0.2560 |') in text
  assert ('**MNIST-Translated**: the MLP reaches 52.1 % with the CNN teacher vs 40.3 % on labels alone (+11.8 '
          'points); the teacher is at 94.7 %. ECE 0.256 vs 0.458 (−0.202; teacher 0.050). It agrees with the '
          "teacher's prediction on 53.0 % of the digits vs 41.0 % (+12.0 points).") in text
  assert '**MNIST** (in distribution): the MLP reaches 97.9 % with the CNN teacher vs 98.7 % on labels alone (−0.8' in text
  assert text.index('**MNIST-Scaled**') < text.index('**MNIST-Translated**') < text.index('**MNIST** (in')
  assert ('1 seed (config.seed = 0): run the grid for mean ± std — `python -m kd_jax.grid '
          "--config=configs/mnist_grid.py:main_job \"--config.setups=('cnn','mlp','cnn_to_mlp')\" --workdir=<dir>`"
          ) in text
  assert '| distilled student (mlp) | 99.00% | 84.00% | 53.00% |' in text  # agreement with the teacher
  assert json.loads((tmp_path / 'results.json').read_text())['gain'] == results['gain']
  assert (tmp_path / 'accuracy.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_rows_name_what_differs_from_plain_kd_and_plain_labels():
  results = _results()
  results['config']['student'].update(loss='dkd', augment='crop,mixup')
  results['independent_settings'].update(augment='crop', optimizer='radam')
  results['config']['independent_overrides'] = {'optimizer': 'radam'}
  assert report.role_title('student', results) == 'distilled student (mlp, dkd, views: crop,mixup)'
  assert report.role_title('independent', results) == 'independent student (mlp, optimizer radam, views: crop)'


def test_without_a_control_the_report_says_there_is_no_gain_to_show(tmp_path):
  results = _results()
  for key in ('independent', 'gain', 'independent_settings'):
    del results[key]
  report.write_results(results, str(tmp_path))
  text = (tmp_path / 'results.md').read_text()
  assert 'there is no control to measure a gain against' in text and '| independent student' not in text


def test_a_job_off_the_default_recipe_says_what_the_grid_must_change_too(tmp_path):
  results = _results()
  results['config']['student']['num_epochs'] = 50.0
  results['config']['kd']['temperature'] = 4.0
  report.write_results(results, str(tmp_path))
  assert ("--workdir=<dir>` with this job's changes to the default recipe (kd.temperature, student.num_epochs) "
          'made there too.') in (tmp_path / 'results.md').read_text()


def test_the_independent_students_own_settings_are_named_where_they_differ(tmp_path):
  results = _results('paper')  # the authors' independent models: RAdam, exponential decay (lr and epochs as the student)
  assert report.role_title('independent', results) == (
      'independent student (mlp, optimizer radam, schedule exponential)')
  report.write_results(results, str(tmp_path))
  text = (tmp_path / 'results.md').read_text()
  assert ("The independent student is the student's model, initialisation and data order on gold labels alone, "
          'trained with optimizer radam, schedule exponential.') in text
  assert 'same recipe' not in text
