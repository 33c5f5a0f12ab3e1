"""One writer per ``OUTPUT_DIR``: a lock held for a run's whole life.

Two runs started into the same folder would overwrite each other's checkpoints and interleave
``log.txt``, both exiting 0 with different results. :class:`OutputDirLock` takes an exclusive,
non-blocking ``flock`` on ``OUTPUT_DIR/.rganet-run.lock`` and writes the holder's pid, host and
command into it. The operating system drops the lock when its process dies, so the lock of a
killed run is taken over by the next one without any clean-up; a live holder makes the second run
stop at once with :class:`OutputDirBusy`, naming the holder.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, no protection
    fcntl = None

logger = logging.getLogger(__name__)

LOCK_NAME = ".rganet-run.lock"


class OutputDirBusy(RuntimeError):
    """Another live run holds the output folder."""


class OutputDirLock:
    def __init__(self, output_dir: str):
        self.output_dir = output_dir or "."
        self.path = os.path.join(self.output_dir, LOCK_NAME)
        self._fh = None

    def acquire(self) -> "OutputDirLock":
        if fcntl is None:
            logger.warning("no file locks on this platform: nothing stops a second run from "
                           "writing into %s", self.output_dir)
            return self
        os.makedirs(self.output_dir, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            try:
                info = json.loads(holder)
                who = (f"pid {info.get('pid')} on {info.get('host')}, started "
                       f"{info.get('started')}: {info.get('command')}")
            except ValueError:
                who = "another process"
            raise OutputDirBusy(
                f"OUTPUT_DIR {self.output_dir} is in use by another run ({who}). Wait for it to "
                f"finish, stop it, or give this run another OUTPUT_DIR.") from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                             "command": " ".join(sys.argv)}))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
