"""Several Prefect workers on one PostgreSQL store (issue #11 item 6; docs/deployment.md).

What an operator does on several hosts, on one machine: ``prefect server start``, a process
work pool ``ctdna``, the deployments of ``prefect.yaml`` (``prefect deploy --all``),
``--workers`` × ``prefect worker start --pool ctdna --limit 1``, then one manual flow run
per inbox shard (``prefect deployment run 'surveillance-run/manual' --param inbox=...``).
Prints the runs' states, start/end times and the wall time from the first submission to
the last run's end::

    source /tmp/pgenv.sh   # CTDNA_TEST_PG_URL: a PostgreSQL server you may create a db in
    .venv/bin/python scripts/make_cohort.py /tmp/op/c500 --patients 42 --draws 12 \
        --layout per-sample
    .venv/bin/python scripts/shard_inbox.py /tmp/op/c500 /tmp/op/s2 --shards 2 --into folders
    .venv/bin/python scripts/two_workers.py /tmp/op/s2/shard-1 /tmp/op/s2/shard-2 --workers 2

A new database is created for the store (``ctdna_w_<hex>``) and dropped at the end (only
that one). Every child runs in its own process group and is stopped by that group.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop ``proc`` and its children by its own process group (SIGINT, then SIGKILL)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of ``server_url``; dropped after."""
    import sqlalchemy as sa

    name = f"ctdna_w_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(server_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


class Cluster:
    """A Prefect server, the ``ctdna`` process pool with the deployments, and workers."""

    def __init__(self, workdir: Path, env: dict[str, str], stack: ExitStack) -> None:
        self.workdir, self.stack = workdir, stack
        port = free_port()
        self.api = f"http://127.0.0.1:{port}/api"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PREFECT_", "CTDNA_"))}
        self.env.update(env)
        self.env.update(PREFECT_HOME=str(workdir / "prefect-home"), PREFECT_API_URL=self.api,
                        PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
                        PREFECT_SERVER_EPHEMERAL_ENABLED="false", COLUMNS="200",
                        PREFECT_WORKER_QUERY_SECONDS="2", CTDNA_REPO=str(REPO))
        self.start("server", [str(BIN / "prefect"), "server", "start", "--host",
                              "127.0.0.1", "--port", str(port)])
        self._wait_healthy()

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = self.stack.enter_context((self.workdir / f"{name}.log").open("wb"))
        proc = subprocess.Popen(argv, env=self.env, cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.stack.callback(stop, proc)
        return proc

    def _wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.api}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"prefect server did not answer in {timeout:.0f} s; see "
                           f"{self.workdir / 'server.log'}")

    def prefect(self, *args: str, timeout: float = 240) -> str:
        done = subprocess.run([str(BIN / "prefect"), *args], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"prefect {' '.join(args)} exited {done.returncode}: "
                               f"{done.stdout[-1500:]}{done.stderr[-1500:]}")
        return done.stdout

    def deploy(self, inbox: Path) -> None:
        """The work pool and the three deployments of the shipped prefect.yaml."""
        self.prefect("work-pool", "create", "ctdna", "--type", "process")
        self.env["CTDNA_INBOX"] = str(inbox)
        self.prefect("--no-prompt", "deploy", "--all")

    def workers(self, count: int) -> None:
        for i in range(count):
            self.start(f"worker-{i + 1}", [str(BIN / "prefect"), "worker", "start", "--pool",
                                          "ctdna", "--limit", "1", "--name", f"w{i + 1}"])

    def submit(self, inbox: Path) -> str:
        out = self.prefect("deployment", "run", "surveillance-run/manual",
                           "--param", f"inbox={inbox}")
        found = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
        if not found:
            raise RuntimeError(f"no flow-run id in: {out}")
        return found.group(1)

    def flow_run(self, run_id: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.api}/flow_runs/{run_id}", timeout=10) as response:
            return dict(json.load(response))

    def wait(self, run_ids: list[str], timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            runs = [self.flow_run(run_id) for run_id in run_ids]
            if all(run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
                   for run in runs):
                return runs
            if time.monotonic() > deadline:
                raise RuntimeError("flow runs not finished: " + ", ".join(
                    f"{r['id']} {r['state']['type']}" for r in runs))
            time.sleep(2)


def run_shards(inboxes: list[Path], workers: int, workdir: Path, env: dict[str, str],
               timeout: float = 900) -> dict[str, Any]:
    """Deploy, start ``workers`` workers, one flow run per inbox; states and timings."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        cluster = Cluster(workdir, env, stack)
        cluster.deploy(inboxes[0])
        cluster.workers(workers)
        submitted = time.time()
        run_ids = [cluster.submit(inbox) for inbox in inboxes]
        runs = cluster.wait(run_ids, timeout)
        wall = max(_epoch(r["end_time"]) for r in runs if r["end_time"]) - submitted
    return {"workers": workers, "wall_seconds": round(wall, 1), "runs": [
        {"id": r["id"], "state": r["state"]["type"], "message": r["state"].get("message"),
         "start": r["start_time"],
         "end": r["end_time"], "seconds": r["total_run_time"]} for r in runs]}


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inboxes", type=Path, nargs="+")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ctdna-two-workers"))
    args = parser.parse_args()
    pg = os.environ.get("CTDNA_TEST_PG_URL")
    if not pg:
        sys.exit("set CTDNA_TEST_PG_URL (source /tmp/pgenv.sh)")
    with scratch_database(pg) as store_url:
        env = {"CTDNA_DB_URL": store_url,
               "CTDNA_OUTBOX": str(args.workdir / "outbox"),
               "CTDNA_REPORTS_DIR": str(args.workdir / "reports")}
        result = run_shards([p.resolve() for p in args.inboxes], args.workers,
                            args.workdir, env)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
