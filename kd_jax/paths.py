"""Where jobs read and write: every file goes through etils.epath, so local paths and bucket URIs (gs://…) work alike.

Cloud TPU jobs keep their workdir, teacher checkpoints and data on GCS; ``gs://`` needs ``gcsfs`` (the ``gcs``
extra: ``pip install 'kd_jax[gcs]'``).
"""
import gzip
import os
from typing import Union

from etils import epath

PathLike = Union[str, os.PathLike]


def absolute(path: PathLike) -> epath.Path:
  """``path`` made absolute; a URI such as ``gs://bucket/x`` stays as it is (``os.path.abspath`` would turn it into
  the local directory ``…/gs:/bucket/x``)."""
  path = epath.Path(path)
  return path if path.is_absolute() else path.absolute()


def read_bytes(path: PathLike) -> bytes:
  """The bytes of a file, decompressed when its name ends in ``.gz``."""
  raw = epath.Path(path).read_bytes()
  return gzip.decompress(raw) if os.fspath(path).endswith('.gz') else raw
