"""A PostgreSQL server of the tests' own: `initdb` + `pg_ctl` in a temporary folder, on a
free loopback port, as the `postgres` user when the tests run as root (PostgreSQL refuses
root). No test touches a server it did not start.

`PgServer.database()` makes a fresh, empty database and returns its URL, so tests never
share tables. `restart()` stops and starts the same cluster (nodes must reconnect).
A watchdog process stops the server if the test run is killed.
Binaries: PATH first, then Debian's /usr/lib/postgresql/<version>/bin. Missing binaries
skip the test with the reason, except under CI (`.ci/run` installs them), where it fails.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_names = itertools.count(1)


def binaries() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="agg-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
            )
        self.start()
        self._watchdog = self._watch(os.getpid())

    def _command(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bindir / tool), *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def _watch(self, owner: int) -> subprocess.Popen[bytes]:
        """A process that stops the server and removes its folder once `owner` is gone, so
        a test run that is killed (a timeout, kill -9) leaves no server behind."""
        stop = " ".join(shlex.quote(a) for a in self._command(
            "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"))  # fmt: skip
        script = (f"while kill -0 {owner} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1;"
                  f" rm -rf {shlex.quote(str(self.root))}")  # fmt: skip
        return subprocess.Popen(["sh", "-c", script], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(self._command(tool, *args), capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def database(self, prefix: str = "t") -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = f"{prefix}{next(_names)}_{os.getpid()}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        self._watchdog.kill()
        self._watchdog.wait()
        try:
            self.stop("immediate")
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = binaries()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries missing (.ci/run installs `postgresql`)")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not installed")
    server = PgServer(bindir)
    try:
        yield server
    finally:
        server.close()
