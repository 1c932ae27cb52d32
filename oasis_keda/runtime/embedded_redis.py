"""An embedded Redis server for one machine: tests, benchmarks and ``oasis-keda up``.

Runs Debian's ``redis-server`` binary on a free loopback port with a private working
directory, and stops it on exit. Persistence is off (tests, benchmarks) unless asked for:
``persistent=True`` (``oasis-keda up``) turns on the append-only file with
``appendfsync everysec``, so a clean restart loses nothing and a SIGKILL at most the last
second of writes (which the controller's janitor heals). ``python -m oasis_keda.runtime.embedded_redis --
CMD ...`` runs CMD with ``OASIS_KEDA_REDIS_URL`` pointing at such a server, unless that
variable is already set, in which case CMD runs against the named server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0


class RedisServerMissingError(RuntimeError):
    pass


def find_redis_server() -> str:
    """Path of the ``redis-server`` binary, or a clear error."""
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RedisServerMissingError(
        "redis-server was not found on PATH: install it (`make install` does, with "
        "apt-get) or point OASIS_KEDA_REDIS_URL at a running Redis"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def persistence_args(persistent: bool) -> list[str]:
    """``redis-server`` arguments: the append-only file, fsynced every second, or none."""
    if persistent:
        return ["--appendonly", "yes", "--appendfsync", "everysec"]
    return ["--appendonly", "no"]


class EmbeddedRedis:
    """A private ``redis-server`` process. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        *,
        port: int = 0,
        extra_args: Sequence[str] = (),
        persistent: bool = False,
        data_dir: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self._extra_args = list(extra_args)
        self.persistent = persistent
        self._keep_dir = data_dir is not None
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
        self._dir = data_dir or Path(tempfile.mkdtemp(prefix="oasis-keda-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self._dir

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (again, on the same port, after :meth:`stop`)."""
        if self.running:
            return
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            *persistence_args(self.persistent),
            "--dir", str(self._dir),
            "--daemonize", "no",
            "--loglevel", "warning",
            *self._extra_args,
        ]  # fmt: skip
        with (self._dir / "redis.log").open("ab") as log:  # the child keeps its own copy
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited at start; see {self._dir}/redis.log")
            if self._ping():
                logger.info("embedded Redis listening on %s", self.url)
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT_S} s")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM: with persistence its append-only file is complete)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL the server (a crash: with persistence, the last second may be lost)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        self.stop()
        if not self._keep_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def redis_url_or_embedded(configured: str | None) -> Iterator[str]:
    """Yield ``configured`` if set, else the URL of an embedded server kept for the block."""
    if configured:
        yield configured
        return
    with EmbeddedRedis() as server:
        yield server.url


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        print(
            "usage: python -m oasis_keda.runtime.embedded_redis -- CMD [ARGS...]", file=sys.stderr
        )
        return 2
    with redis_url_or_embedded(os.environ.get("OASIS_KEDA_REDIS_URL")) as url:
        env = {**os.environ, "OASIS_KEDA_REDIS_URL": url}
        return subprocess.call(args, env=env)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main(sys.argv[1:]))
