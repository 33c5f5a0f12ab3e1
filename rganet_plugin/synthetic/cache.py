"""Writing a generated dataset once: an advisory file lock, a temporary folder renamed into place
(atomic), and the removal of what killed generations left behind.

Every generated dataset (:mod:`.occluded_duke`, :mod:`.cloth_changing`) goes through
:func:`generate_once`, so two processes that start at once generate it once and never see a
half-written dataset.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, Mapping, Optional

from .params import _LATER_KEYS

try:  # advisory lock (POSIX); without it the atomic rename alone keeps the cache consistent
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

logger = logging.getLogger(__name__)

__all__ = ["MANIFEST_NAME", "read_manifest", "generate_once"]

MANIFEST_NAME = "synthetic_manifest.json"


@contextlib.contextmanager
def _file_lock(path: str):
    if fcntl is None:
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_leftovers(out_dir: str, dataset_dir_name: str) -> None:
    """Remove the temporary folders of generations that were killed. Called under the lock, so
    no live generation owns one (they only exist while their generator holds the lock)."""
    prefix = f".{dataset_dir_name}.tmp-"
    for name in os.listdir(out_dir):
        if name.startswith(prefix) or name.startswith(f"{dataset_dir_name}.old-"):
            path = os.path.join(out_dir, name)
            logger.warning("Removing '%s', left by an interrupted generation", path)
            shutil.rmtree(path, ignore_errors=True)


def read_manifest(dataset_dir: str) -> Optional[Dict[str, Any]]:
    """The manifest of a generated dataset, or None when there is none (or it is unreadable)."""
    try:
        with open(os.path.join(dataset_dir, MANIFEST_NAME)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _comparable(params: Mapping[str, Any]) -> Dict[str, Any]:
    """``params`` without the keys added later at their default (0), so a dataset written before
    a key existed still counts as generated with the same parameters."""
    return {k: v for k, v in params.items() if not (k in _LATER_KEYS and v == 0)}


def generate_once(out_dir: str, dataset_dir_name: str, params: Mapping[str, Any], version: int,
                  write: Callable[[str], Dict[str, Any]], what: str, overwrite: bool = False) -> str:
    """Generate ``<out_dir>/<dataset_dir_name>`` with ``write(tmp_dir) -> manifest`` unless it is
    there with the same ``params`` and ``version``; return its path.

    One with other parameters (or not generated here) raises ``FileExistsError`` unless
    ``overwrite=True``. The folder appears atomically (written under a temporary name in
    ``out_dir``, then renamed) and concurrent calls for the same ``out_dir`` generate it once.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    dataset_dir = os.path.join(out_dir, dataset_dir_name)
    with _file_lock(os.path.join(out_dir, f".{dataset_dir_name}.lock")):
        if os.path.exists(dataset_dir):
            manifest = read_manifest(dataset_dir)
            same = (manifest is not None and manifest.get("version") == version
                    and _comparable(manifest.get("params") or {}) == _comparable(params))
            if same and not overwrite:
                return dataset_dir
            if not overwrite:
                raise FileExistsError(
                    f"'{dataset_dir}' exists and was not generated with these parameters "
                    f"{params}; pass overwrite=True to replace it or choose another out_dir")
        _remove_leftovers(out_dir, dataset_dir_name)
        t0 = time.time()
        logger.info("Generating %s %s into '%s'", what, params, dataset_dir)
        tmp = tempfile.mkdtemp(prefix=f".{dataset_dir_name}.tmp-", dir=out_dir)
        try:
            manifest = write(tmp)
            if os.path.exists(dataset_dir):  # overwrite=True
                old = dataset_dir + f".old-{os.getpid()}"
                os.rename(dataset_dir, old)
                shutil.rmtree(old, ignore_errors=True)
            try:
                os.rename(tmp, dataset_dir)
            except OSError:
                # Another process (without the lock, e.g. on a file system without flock) won.
                if read_manifest(dataset_dir) is None:
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        n = len(manifest["images"])
        logger.info("%s: %d images generated in %.1fs", what, n, time.time() - t0)
    return dataset_dir
