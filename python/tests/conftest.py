"""A real ``kiln serve`` on a free loopback port, with a token, for the client tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KILN = Path(os.environ.get("KILN_BIN", REPO / os.environ.get("CARGO_TARGET_DIR", "target") / "debug" / "kiln"))
TOKEN = "python-client-secret"


class Server:
    def __init__(self, url: str, data_dir: Path, process: subprocess.Popen) -> None:
        self.url = url
        self.data_dir = data_dir
        self.process = process


def start_server(*extra: str, data_dir: "Path | None" = None, log: "Path | None" = None) -> Server:
    """A new ``kiln serve`` on a free loopback port with the test token (``extra``: more
    arguments; ``data_dir``: where its ``data`` folder goes; ``log``: a file for its stderr);
    stop it with :func:`stop_server`."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="kiln-py-"))
    tokens = data_dir / "tokens"
    tokens.write_text(TOKEN + "\n")
    process = subprocess.Popen(
        [
            str(KILN),
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            str(data_dir / "data"),
            "--token-file",
            str(tokens),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=open(log, "w") if log else subprocess.DEVNULL,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": tempfile.gettempdir()},
    )
    deadline = time.monotonic() + 30
    url = None
    while time.monotonic() < deadline and url is None:
        line = process.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if match:
            url = match.group(1)
        elif process.poll() is not None:
            break
    if url is None:
        process.kill()
        pytest.fail("kiln serve did not start")
    return Server(url, data_dir / "data", process)


def stop_server(server: Server) -> None:
    """Stops a server the way an operator does (SIGTERM); it must exit cleanly."""
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0


@pytest.fixture(scope="session")
def server():
    started = start_server()
    yield started
    stop_server(started)
