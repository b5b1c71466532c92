"""A SQLite store on a network filesystem is refused, pointing at the PostgreSQL store."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweepkit.backends.store import StoreError, open_store
from sweepkit.backends.store.netfs import mount_of, parse_mountinfo_line, refuse_network_filesystem

# Real lines, of the kinds a cluster has (proc(5) format).
MOUNTINFO = """\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
35 22 0:41 / /home rw,relatime shared:20 - nfs4 filer:/export/home rw,vers=4.2,rsize=1048576
36 22 0:52 / /scratch rw,relatime shared:21 - lustre 10.0.0.1@o2ib:/scratch rw,flock
37 22 0:53 / /gpfs/projects rw,relatime - gpfs projects rw
38 22 0:54 / /mnt/smb\\040share rw,relatime - cifs //nas/share rw,vers=3.1.1
39 35 259:3 / /home/me/local rw,relatime - xfs /dev/nvme1n1 rw
"""


def test_a_mountinfo_line_gives_its_mount_point_type_and_source():
    mount = parse_mountinfo_line(MOUNTINFO.splitlines()[4])
    assert (mount.mount_point, mount.fs_type, mount.source) == (
        "/mnt/smb share",
        "cifs",
        "//nas/share",
    )


@pytest.mark.parametrize(
    ("folder", "fs_type"),
    [
        ("/home/me/sweeps", "nfs4"),
        ("/scratch/me/.sweepkit", "lustre"),
        ("/gpfs/projects/x", "gpfs"),
        ("/mnt/smb share/x", "cifs"),
        ("/home/me/local/sweeps", "xfs"),  # a local disk mounted inside an NFS home
        ("/tmp/sweeps", "ext4"),
    ],
)
def test_the_mount_holding_a_folder_is_the_longest_prefix(folder, fs_type):
    assert mount_of(Path(folder), MOUNTINFO).fs_type == fs_type


@pytest.mark.parametrize("folder", ["/home/me", "/scratch/me", "/gpfs/projects", "/mnt/smb share"])
def test_sqlite_on_a_network_filesystem_is_refused_pointing_at_postgres(folder):
    with pytest.raises(StoreError) as caught:
        refuse_network_filesystem(Path(folder) / "sweeps.db", MOUNTINFO)
    message = str(caught.value)
    assert "network filesystem" in message and "postgresql://" in message
    assert "\n" not in message


@pytest.mark.parametrize("folder", ["/home/me/local", "/tmp", "/"])
def test_sqlite_on_a_local_disk_is_accepted(folder):
    refuse_network_filesystem(Path(folder) / "sweeps.db", MOUNTINFO)


def test_opening_a_store_reads_this_machines_mount_table(tmp_path, monkeypatch):
    from sweepkit.backends.store import netfs

    fake = tmp_path / "mountinfo"
    fake.write_text(f"40 22 0:60 / {tmp_path} rw - nfs srv:/x rw\n")
    monkeypatch.setattr(netfs, "MOUNTINFO", str(fake))
    with pytest.raises(StoreError, match=r"network filesystem \(nfs at"):
        open_store(tmp_path / "s.db")
    assert not (tmp_path / "s.db").exists()  # refused before SQLite made the file
