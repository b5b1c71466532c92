"""No line sweepkit prints, no file it writes and no row it stores holds a store password or
a W&B key: every command, run as a user would, with both in its environment and flags."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.helpers.cli import sweepkit

SWEEP = "method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [1.0, 2.0, 3.0, 4.0]}\n"


@pytest.mark.slow
@pytest.mark.postgres
def test_no_command_prints_writes_or_stores_the_store_password_or_the_wandb_key(
    workdir, wandb_offline, postgres_server, postgres_url, monkeypatch
):
    import psycopg

    password, key = f"pw{uuid.uuid4().hex}", uuid.uuid4().hex + "0f00dbad"  # a 40-character key
    url = postgres_url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@")
    in_query = f"{postgres_url}?password={password}"  # libpq reads a password here too
    monkeypatch.setenv("WANDB_API_KEY", key)  # with WANDB_MODE=offline: the local backend
    monkeypatch.setenv("SWEEPKIT_STORE", url)
    monkeypatch.setenv("SWEEPKIT_STORE_PATIENCE", "0")  # a server that is away: said at once
    (workdir / "sweep.yaml").write_text(SWEEP)
    said: list[tuple[tuple[str, ...], str]] = []

    def run(*args: str) -> str:
        result = sweepkit(*args, cwd=workdir, timeout=300)
        said.append((args, result.stdout + result.stderr))
        return result.stdout

    run("validate", "sweep.yaml")
    sweep_id = run("create", "sweep.yaml", "--store", url).strip()
    run("create", "sweep.yaml", "--store", in_query)
    run("create", "sweep.yaml")  # the store from SWEEPKIT_STORE
    run("agent", sweep_id, "--count", "1", "-f", "tests.sweep_functions:prints")
    run("agent", sweep_id, "--count", "1", "--workers", "1", "-f", "tests.sweep_functions:prints")
    run(
        "agent", sweep_id, "--count", "1", "--store", in_query, "-f", "tests.sweep_functions:prints"
    )
    run_id = json.loads(run("status", sweep_id, "--json"))["runs"][0]["id"]
    for args in (
        ["status"], ["status", sweep_id], ["status", sweep_id, "--run", run_id],
        ["pause", sweep_id], ["resume", sweep_id], ["report", sweep_id, "--out", "report"],
        ["sync", sweep_id, "--dry-run"], ["slurm", sweep_id, "--array", "2", "--dry-run"],
        ["slurm", sweep_id, "--array", "2", "--dry-run", "--store", in_query],
        ["docker", sweep_id, "--workers", "1", "--dry-run"],
        ["run", "sweep.yaml", "--count", "1", "-f", "tests.sweep_functions:prints"],
        ["stop", sweep_id], ["cancel", sweep_id], ["status", "local-nosuch"],
        ["--debug", "status", "local-nosuch"],
        ["status", "--store", url.replace(f":{postgres_server.port}/", ":1/")],  # no server
    ):  # fmt: skip
        run(*args)
    assert len(said) == 24
    for args, text in said:
        assert password not in text and key not in text, (args, text)
    assert any("postgresql://postgres:***@" in text for _, text in said)  # named, hidden

    # The working folder (report, sbatch scripts) and wandb's (run folders, the runs' logs).
    written = [p for root in (workdir, wandb_offline) for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in written) and any(p.suffix == ".html" for p in written)
    for path in written:
        content = path.read_bytes()
        assert password.encode() not in content and key.encode() not in content, path

    with psycopg.connect(postgres_url) as db:
        tables = [t for (t,) in db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]  # fmt: skip
        assert {"sweeps", "runs"} <= set(tables)
        for table in tables:
            rows = db.execute(f"SELECT row_to_json(t)::text FROM {table} t").fetchall()
            assert not any(password in row or key in row for (row,) in rows), table
