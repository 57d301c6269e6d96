"""Ctrl-C and SIGTERM (how a spot or preemptible VM, SLURM and most schedulers stop a job).

While training (:class:`StopRequests`, around :func:`kd_jax.training.fit`'s loop), the first SIGINT or SIGTERM asks
the loop to stop after the step in flight: it saves a checkpoint at that step and raises :class:`StopRequested`,
which the trainer turns into one line saying where to resume. A second signal ends the process at once, without a
traceback, naming the newest checkpoint that is complete on disk. Outside training, SIGTERM is turned into the
same one-line exit as Ctrl-C (:func:`handle_sigterm`), instead of a silent death.

Exit codes: 130 after Ctrl-C, 75 (EX_TEMPFAIL: run again) after SIGTERM, so that a launcher can tell a stopped run
that can resume from a failed one. A signal the process was started ignoring (SIGINT in a background job of a
non-interactive shell) stays ignored, in training too.

With several processes (a TPU pod slice, a SLURM job) every process must save together, at the same step: SIGTERM
is then left to JAX's preemption service (installed by ``jax.distributed.initialize``), which needs only one
process to be signalled and agrees on a step at which all stop (``multihost_utils.reached_preemption_sync_point``,
asked at every dispatch). Ctrl-C, which reaches one process, then stops that process at once without saving.
"""
import itertools
import os
import signal
import sys
import threading
from typing import Callable, Optional

from absl import logging
import jax
from jax.experimental import multihost_utils

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 75}
NAMES = {signal.SIGINT: 'Ctrl-C (SIGINT)', signal.SIGTERM: 'SIGTERM'}


class Stopped(KeyboardInterrupt):
  """The job was stopped by a signal; ``exit_code`` is the process's exit status."""

  def __init__(self, message: str, exit_code: int = 130):
    super().__init__(message)
    self.exit_code = exit_code


class StopRequested(Stopped):
  """Raised by the training loop after it stopped (and saved, if it can) on a signal; the trainer names where to
  resume, and a loop that keeps no checkpoints (online KD) ends the job with this message."""

  def __init__(self, signum: int, step: int, saved: bool):
    super().__init__(f'stopped by {NAMES[signum]} at step {step}' +
                     ('' if saved else '; this training keeps no checkpoints, so a new run starts over'),
                     EXIT_CODES[signum])
    self.signum, self.step, self.saved = signum, step, saved


# The dispatches of this process, counted across every training loop: JAX's preemption sync point is a count that
# every process advances alike (they run the same loops, dispatch by dispatch).
_dispatches = itertools.count()


class StopRequests:
  """A context manager: inside it, SIGINT/SIGTERM set :attr:`requested`, which :meth:`poll` reports at the loop's
  next dispatch boundary; a second signal prints ``'kd_jax: ' + at_once()`` and exits the process immediately.
  Outside the main thread (signals cannot be handled there) it handles none. With several processes, SIGINT and
  SIGTERM keep their handlers (the default, and JAX's preemption service) and :meth:`poll` asks JAX instead."""

  def __init__(self, phase: str, at_once: Callable[[], str]):
    self.phase, self.at_once = phase, at_once
    self.requested: Optional[int] = None
    self._previous = {}
    self._several_processes = jax.process_count() > 1

  def __enter__(self):
    if _received_outside_training is not None:  # its exception was swallowed: the job must still stop, now
      raise Stopped(f'{self.phase}: stopped by {NAMES[_received_outside_training]}, received before training '
                    'started; nothing of this phase was trained since its last checkpoint: run the same command '
                    'again to resume', EXIT_CODES[_received_outside_training])
    if threading.current_thread() is threading.main_thread() and not self._several_processes:
      # A signal the process was started ignoring stays ignored, as Python leaves it (SIGINT of a background job of
      # a non-interactive shell): a Ctrl-C meant for the terminal's foreground job never reaches it.
      self._previous = {s: signal.signal(s, self._handle) for s in EXIT_CODES
                        if signal.getsignal(s) is not signal.SIG_IGN}
    return self

  def poll(self) -> Optional[int]:
    """Called once per dispatch, by every process: the signal to stop on now, or None."""
    if self._several_processes and multihost_utils.reached_preemption_sync_point(next(_dispatches)):
      logging.warning('%s: a process of this job got SIGTERM — every process saves a checkpoint at this step',
                      self.phase)
      self.requested = signal.SIGTERM
    return self.requested

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    return False

  def _handle(self, signum, frame):
    del frame
    if self.requested is None:
      self.requested = signum
      logging.warning('%s: %s — stopping after the step in flight and saving a checkpoint (send it again to stop '
                      'at once)', self.phase, NAMES[signum])
      return
    print(f'kd_jax: {self.at_once()}', file=sys.stderr, flush=True)
    os._exit(EXIT_CODES[signum])  # pylint: disable=protected-access  # no unwinding through a save in flight


_received_outside_training: Optional[int] = None  # a SIGTERM that arrived outside training (perhaps swallowed)


def handle_sigterm():
  """Outside training, SIGTERM raises :class:`Stopped` (one line and exit code 75) like Ctrl-C does. It is also
  remembered: raised inside a callback (a garbage-collection one, a finaliser) the exception is swallowed, and the
  next training loop stops at its start instead (:meth:`StopRequests.__enter__`)."""
  def raise_stopped(signum, frame):
    del frame
    global _received_outside_training
    _received_outside_training = signum
    raise Stopped(f'stopped by {NAMES[signum]} outside training (nothing was in flight to save): run the same '
                  'command again to resume', EXIT_CODES[signum])
  if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
    signal.signal(signal.SIGTERM, raise_stopped)
