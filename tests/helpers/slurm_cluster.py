"""A one-node Slurm cluster for the tests: munged, slurmctld and slurmd on this machine, as root.

Everything is private to one folder: its own munge socket, slurm.conf and
gres.conf (found through $SLURM_CONF), its own ports, state and logs, so a
cluster someone else runs here is not touched. Two fake GPUs are character
devices made with `mknod` (gres.conf refuses regular files): `--gres=gpu:1`
then gives each task one of them in CUDA_VISIBLE_DEVICES. Debian's
`slurm-wlm` and `munge` packages; without them, or without root,
`why_not` says why and the tests skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers.processes import untagged_env

DAEMONS = ("munged", "slurmctld", "slurmd")


def why_not() -> str | None:
    """Why a cluster cannot be started here, or None if it can."""
    missing = [
        d for d in DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()
    ]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "a one-node Slurm cluster is started as root (slurmd runs jobs as their users)"
    return None


def _free_ports(n: int) -> list[int]:
    probes = [socket.socket() for _ in range(n)]
    for probe in probes:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in probes]
    for probe in probes:
        probe.close()
    return ports


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    """Start, use (`env` for sbatch/squeue/scancel), stop."""

    def __init__(self, gpus: int = 2) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sweepkit-slurm-"))
        self.gpus = gpus
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.sock"
        self.host = socket.gethostname()

    @property
    def env(self) -> dict[str, str]:
        """The environment Slurm's commands need to find this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self) -> SlurmCluster:
        self.root.chmod(0o755)  # munged runs as `munge`: it must reach its folder
        munge = self.root / "munge"
        munge.mkdir()
        key = munge / "munge.key"
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        shutil.chown(munge, "munge", "munge")
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
        subprocess.run(
            ["runuser", "-u", "munge", "--", _sbin("munged"), f"--socket={self.munge_socket}",
             f"--key-file={key}", f"--pid-file={munge / 'munged.pid'}",
             f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}"],
            check=True, env=untagged_env(),
        )  # fmt: skip
        for folder in ("ctld", "spool", "log"):
            (self.root / folder).mkdir()
        for i in range(self.gpus):  # fake GPUs: /dev/null's and /dev/zero's device numbers
            os.mknod(self.root / f"fakegpu{i}", 0o666 | 0o020000, os.makedev(1, 3 + 2 * (i % 2)))
        (self.root / "gres.conf").write_text(
            f"NodeName={self.host} Name=gpu File={self.root}/fakegpu[0-{self.gpus - 1}]\n"
        )
        ctld_port, d_port = _free_ports(2)
        self.conf.write_text(
            f"""ClusterName=sweepkit
SlurmctldHost={self.host}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={self.root}/ctld
SlurmdSpoolDir={self.root}/spool
SlurmctldPidFile={self.root}/slurmctld.pid
SlurmdPidFile={self.root}/slurmd.pid
SlurmctldLogFile={self.root}/log/slurmctld.log
SlurmdLogFile={self.root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=30
GresTypes=gpu
NodeName={self.host} CPUs={os.cpu_count()} RealMemory=2000 Gres=gpu:{self.gpus} State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
"""
        )
        daemons = {**untagged_env(), "SLURM_CONF": str(self.conf)}  # not any test's processes
        subprocess.run([_sbin("slurmctld"), "-f", str(self.conf)], check=True, env=daemons)
        subprocess.run([_sbin("slurmd"), "-f", str(self.conf)], check=True, env=daemons)
        deadline = time.monotonic() + 60  # a hang guard: it takes about 3 s
        while self.node_state() != "idle":
            if time.monotonic() > deadline:
                raise RuntimeError(f"slurmd never became idle: {self.logs()}")
            time.sleep(0.25)
        return self

    def node_state(self) -> str:
        result = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                                env=self.env)  # fmt: skip
        return result.stdout.strip()

    def squeue(self, job: str) -> list[tuple[str, str]]:
        """(job id of each task, its state) of a job still known to slurmctld."""
        result = subprocess.run(
            ["squeue", "-h", "-r", "-j", job, "-o", "%i %T"], capture_output=True, text=True,
            env=self.env,
        )  # fmt: skip
        return [tuple(line.split()) for line in result.stdout.splitlines()]  # type: ignore[misc]

    def logs(self) -> str:
        return "\n".join(
            p.read_text()[-2000:] for p in (self.root / "log").glob("*.log") if p.exists()
        )

    def stop(self) -> None:
        """Cancel every job and wait for its tasks to end, stop slurmd, slurmctld and munged
        (by their pid files), then delete the folder."""
        subprocess.run(["scancel", "--full", "--user=root"], env=self.env, capture_output=True)
        deadline = time.monotonic() + 60  # KillWait is 30 s: then SIGKILL
        while (
            time.monotonic() < deadline
            and subprocess.run(
                ["squeue", "-h"], capture_output=True, text=True, env=self.env
            ).stdout.strip()
        ):
            time.sleep(0.5)
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            path = self.root / pid_file
            if not path.exists():
                continue
            pid = int(path.read_text())
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, 9)
        shutil.rmtree(self.root, ignore_errors=True)
