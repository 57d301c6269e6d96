"""The grid report's gains and cells, from known numbers."""
import pytest

from kd_jax import grid_report


def _setup(title, translate_accuracies):
  return {'title': title, 'instances': [{'mnist_translate': {'accuracy': a}} for a in translate_accuracies]}


def test_the_gain_is_paired_by_seed_and_a_shared_independent_model_serves_every_seed_labelled():
  report = {'test_sets': {'mnist_translate': 'MNIST-Translated'}, 'seeds': [0, 1],
            'setups': {'mlp': _setup('MLP', [0.40, 0.30]), 'cnn_to_mlp': _setup('CNN→MLP', [0.52, 0.46])}}
  gain = grid_report.gains_over_independent(report, report)['cnn_to_mlp']['mnist_translate']
  assert (gain['mean'], gain['n']) == (pytest.approx(0.14), 2)  # (+0.12, +0.16), seed by seed
  assert '| CNN→MLP − MLP | +14.00 ± 2.83 |' in grid_report.grid_gain_table(report)
  assert 'the control.' in grid_report.grid_gain_table(report)  # no labels_to_<student> to explain
  report['setups']['mlp'] = _setup('MLP', [0.40])  # one shared model (kd.shared_teacher): every seed against it
  gain = grid_report.gains_over_independent(report, report)['cnn_to_mlp']['mnist_translate']
  assert (gain['mean'], gain['n']) == (pytest.approx(0.09), 2)  # (+0.12, +0.06): no seed left out
  assert '| CNN→MLP − MLP (one shared model, not paired) | +9.00 ± 4.24 |' in grid_report.grid_gain_table(report)


@pytest.mark.parametrize('mean,std,n,cell', [
    (0.12, 0.0, 1, '+12.00'), (-0.02, 0.0, 1, '−2.00'), (-0.00004, 0.0, 1, '+0.00'), (0.0, 0.0, 1, '+0.00'),
    (-0.015, 0.004, 4, '−1.50 ± 0.40'), (0.015, 0.004, 4, '+1.50 ± 0.40'),
])
def test_a_gain_cell_always_shows_its_sign(mean, std, n, cell):
  assert grid_report.signed_cell({'mean': mean, 'std': std, 'n': n}) == cell


def test_labels_to_the_student_is_the_control_where_the_grid_has_it():
  setups = {'mlp': _setup('MLP', [0.40, 0.30]), 'cnn_to_mlp': _setup('CNN→MLP', [0.52, 0.46]),
            'labels_to_mlp': _setup('MLP (as a student, gold labels)', [0.50, 0.42])}
  assert [grid_report.is_kd(s) for s in setups] == [False, True, False]
  assert grid_report.control_of('cnn_to_mlp', setups) == 'labels_to_mlp'
  assert grid_report.control_of('cnn_to_mlp', ['mlp', 'cnn_to_mlp']) == 'mlp'
  report = {'test_sets': {'mnist_translate': 'MNIST-Translated'}, 'seeds': [0, 1], 'setups': setups}
  gains = grid_report.gains_over_independent(report, report)
  assert list(gains) == ['cnn_to_mlp']  # labels_to_mlp is a control, not a KD setup with a gain
  assert gains['cnn_to_mlp']['mnist_translate']['mean'] == pytest.approx(0.03)  # (+0.02, +0.04) over labels_to_mlp
  assert '| CNN→MLP − MLP (as a student, gold labels) | +3.00 ± 1.41 |' in grid_report.grid_gain_table(report)
  assert 'the control (labels_to_<student>: the student model trained as the students are' in (
      grid_report.grid_gain_table(report))
