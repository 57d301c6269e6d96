import signal

from kd_jax import interrupts


def test_a_signal_the_process_ignores_stays_ignored_while_training():
  # A background job of a non-interactive shell starts with SIGINT ignored: Python leaves it so, and so does training
  # (it used to stop on a SIGINT inside a training loop only, and ignore it everywhere else).
  previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with interrupts.StopRequests('phase', lambda: '') as stop:
      assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
      assert signal.getsignal(signal.SIGTERM) == stop._handle  # pylint: disable=protected-access
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    signal.signal(signal.SIGINT, signal.default_int_handler)  # an interactive job: Ctrl-C stops training
    with interrupts.StopRequests('phase', lambda: '') as stop:
      assert signal.getsignal(signal.SIGINT) == stop._handle  # pylint: disable=protected-access
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)
