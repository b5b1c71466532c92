"""Is a folder on a network filesystem? Read from the kernel's own mount table.

SQLite's WAL keeps its index in shared memory that every process of the
store maps: processes on two machines sharing the file over NFS each see
their own, and the store is silently corrupted (https://sqlite.org/wal.html,
"WAL does not work over a network filesystem"). Locks over NFS and CIFS are
no better. So a SQLite store on one is refused, pointing at the PostgreSQL
store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sweepkit.backends.store.base import StoreError

MOUNTINFO = "/proc/self/mountinfo"
# Filesystem types (mountinfo's field after " - ") that reach a file over the network.
NETWORK_TYPES = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "ceph", "glusterfs",
        "beegfs", "panfs", "pvfs2", "orangefs", "afs", "ncpfs", "9p", "ocfs2", "gfs2",
        "davfs", "fuse.glusterfs", "fuse.sshfs", "fuse.cephfs", "fuse.beegfs",
        "fuse.juicefs", "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone", "fuse.davfs",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo: where it is mounted, its type, what it mounts."""

    mount_point: str
    fs_type: str
    source: str


def parse_mountinfo_line(line: str) -> Mount:
    r"""Parse one mountinfo line (proc(5)); octal escapes in paths (``\040``) are decoded.

    >>> parse_mountinfo_line(
    ...     "36 35 0:41 / /mnt/shared rw,relatime shared:1 - nfs4 srv:/export rw,vers=4.2")
    Mount(mount_point='/mnt/shared', fs_type='nfs4', source='srv:/export')
    """
    before, _, after = line.partition(" - ")
    mount_point = before.split()[4]
    fs_type, source, *_ = [*after.split(), "", ""]
    return Mount(_unescape(mount_point), fs_type, _unescape(source))


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mount_of(path: Path, mountinfo: str | None = None) -> Mount | None:
    """The mount that holds `path` (the nearest existing folder above it, if it is not there
    yet): the longest mount point that is a prefix of its real path."""
    if mountinfo is None:
        try:
            mountinfo = Path(MOUNTINFO).read_text()
        except OSError:
            return None  # not Linux: nothing to read
    target = Path(os.path.realpath(path))
    best: Mount | None = None
    for line in mountinfo.splitlines():
        if " - " not in line:
            continue
        mount = parse_mountinfo_line(line)
        holds = target == Path(mount.mount_point) or Path(mount.mount_point) in target.parents
        # >=: of two mounts at one point, the later is the one seen.
        if holds and (best is None or len(mount.mount_point) >= len(best.mount_point)):
            best = mount
    return best


def is_network(fs_type: str) -> bool:
    """Whether a mountinfo filesystem type reaches its files over the network."""
    return fs_type in NETWORK_TYPES or fs_type.split(".")[0] in NETWORK_TYPES


def refuse_network_filesystem(store_file: Path, mountinfo: str | None = None) -> None:
    """Raise StoreError if the SQLite store's folder is on a network filesystem.

    Raises:
        StoreError: one line naming the filesystem and pointing at the PostgreSQL store.
    """
    mount = mount_of(store_file.parent, mountinfo)
    if mount is not None and is_network(mount.fs_type):
        raise StoreError(
            f"the sweep store {store_file} is on a network filesystem ({mount.fs_type} at "
            f"{mount.mount_point}), where SQLite's locks and WAL are unsafe: keep the file on a "
            "local disk for agents on one machine, or use a PostgreSQL store shared by every "
            "machine (--store postgresql://USER@HOST:PORT/DB)"
        )
