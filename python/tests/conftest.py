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


@pytest.fixture(scope="session")
def server():
    data_dir = Path(tempfile.mkdtemp(prefix="kiln-py-"))
    tokens = data_dir / "tokens"
    tokens.write_text(TOKEN + "\n")
    process = subprocess.Popen(
        [str(KILN), "serve", "--addr", "127.0.0.1:0", "--data-dir", str(data_dir / "data"), "--token-file", str(tokens)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
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
    yield Server(url, data_dir / "data", process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
