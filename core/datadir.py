"""The data directory is private to the user the server runs as.

It holds every conversation (the SQLite file), the signing secret, the
uploaded files and the embedded vector store, so no other user of the host may
read it:

- the process umask becomes ``0o077`` (or stays stricter), so every file and
  directory written from then on, by this code or by a library (SQLite's
  ``-wal`` and ``-shm``, chromadb), is ``0600`` or ``0700``, and a data
  directory created later is ``0700``;
- a data directory that already exists with group or other bits is tightened
  to ``0700``, with a warning; one that cannot be (not owned by this user, such
  as a volume's mount point) is left as it is, with a warning.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog

log = structlog.get_logger("livetutor.datadir")

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700


def restrict_umask() -> None:
    """Make every file this process creates from now on private to its user."""
    previous = os.umask(PRIVATE_UMASK)
    if previous | PRIVATE_UMASK != PRIVATE_UMASK:
        os.umask(previous | PRIVATE_UMASK)


def make_private(data_dir: Path) -> None:
    """Restrict the umask; tighten ``data_dir`` to 0700 if it exists with wider rights."""
    restrict_umask()
    try:
        mode = stat.S_IMODE(data_dir.stat().st_mode)
    except FileNotFoundError:
        return
    if not mode & ~DIR_MODE:
        return
    try:
        data_dir.chmod(DIR_MODE)
    except OSError as exc:
        log.warning(
            "data_dir.not_private", path=str(data_dir), mode=f"{mode:o}", error=exc.strerror
        )
        return
    log.warning("data_dir.tightened", path=str(data_dir), mode_was=f"{mode:o}", mode="700")
