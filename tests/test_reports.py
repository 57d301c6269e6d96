import json

import pytest

from kd_jax import reports


def test_a_report_with_a_non_finite_number_is_an_error_naming_where(tmp_path):
  data = {'teacher': {'mnist': {'accuracy': 0.9, 'ece': 0.01}}, 'runs': [{'ece': 0.1}]}
  reports.write(str(tmp_path), 'results', data, '# ok\n')
  assert json.load(open(tmp_path / 'results.json')) == data
  for value, path in ((float('nan'), 'student.mnist.ece'), (float('inf'), 'runs.1.ece')):
    bad = {**data, 'student': {'mnist': {'accuracy': 0.1, 'ece': 0.2}}, 'runs': [{'ece': 0.1}, {'ece': 0.3}]}
    if path.startswith('student'):
      bad['student']['mnist']['ece'] = value
    else:
      bad['runs'][1]['ece'] = value
    with pytest.raises(FloatingPointError, match=rf'results.json would hold {value} at {path}: '):
      reports.write(str(tmp_path / 'bad'), 'results', bad, '# bad\n')
    assert not (tmp_path / 'bad').exists()
