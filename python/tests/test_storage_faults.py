"""The server's data directory fails under it and comes back: read-only for a moment (a bind
mount remounted read-only), then full (a small tmpfs filled up). Each request answers 503 or
507 problem+json while the fault lasts, no job stays ``processing`` for ever, and the server
recovers by itself once writes work again — no restart.

Mounting needs CAP_SYS_ADMIN (root in CI and here); without it the tests are skipped, saying so."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from conftest import TOKEN, start_server, stop_server

AUTH = {"authorization": f"Bearer {TOKEN}"}
CSV = "a,b,label\n" + "".join(f"{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(60))
QUICK = {"training": {"num_passes": 2, "batch_size": 16}, "model": {"hidden": [8]}, "data": {"label_column": "label"}}
LONG = {"training": {"num_passes": 400, "batch_size": 8}, "model": {"hidden": [32]}, "data": {"label_column": "label"}}


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True)


@contextlib.contextmanager
def mounted(*how: str):
    """A fresh directory with a file system of its own mounted on it (``how``: mount's args
    before the target), unmounted afterwards."""
    target = Path(tempfile.mkdtemp(prefix="kiln-fault-"))
    done = run("mount", *how, str(target))
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip()}): needs CAP_SYS_ADMIN")
    try:
        yield target
    finally:
        for _ in range(20):
            if run("umount", str(target)).returncode == 0:
                break
            time.sleep(0.5)


def problem(answer: httpx.Response, *statuses: int) -> dict:
    assert answer.status_code in statuses, f"{answer.status_code}: {answer.text}"
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.headers
    body = answer.json()
    assert "/tmp/" not in body.get("detail", ""), body  # never a server-side path
    return body


def wait_until_final(http: httpx.Client, job: str, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = http.get(f"/v1/jobs/{job}")
        if answer.status_code == 200 and answer.json()["status"] in ("completed", "failed", "cancelled"):
            return answer.json()
        time.sleep(0.5)
    raise AssertionError(f"job {job} did not end within {seconds} s: {http.get(f'/v1/jobs/{job}').text}")


def submit(http: httpx.Client, config: dict, dataset: str) -> httpx.Response:
    return http.post("/v1/jobs", json={"config": config, "dataset": dataset})


def recovered(http: httpx.Client, dataset: str, seconds: float = 60) -> str:
    """Submits a quick job until the server takes one (it must within `seconds`); returns its id."""
    deadline = time.monotonic() + seconds
    while True:
        answer = submit(http, QUICK, dataset)
        if answer.status_code == 202:
            return answer.json()["id"]
        problem(answer, 503, 507)
        assert time.monotonic() < deadline, f"no recovery within {seconds} s: {answer.text}"
        time.sleep(1)


def uploaded(http: httpx.Client, seconds: float = 30) -> str:
    """Uploads the CSV until the server takes it (a 503 or 507 in the meantime); its id."""
    deadline = time.monotonic() + seconds
    while True:
        answer = http.post("/v1/datasets", content=CSV, headers={"content-type": "text/csv"})
        if answer.status_code == 201:
            return answer.json()["id"]
        problem(answer, 503, 507)
        assert time.monotonic() < deadline, f"no recovery within {seconds} s: {answer.text}"
        time.sleep(1)


def test_a_read_only_moment_is_503_and_the_server_recovers_without_a_restart(tmp_path):
    server = start_server(data_dir=tmp_path, log=tmp_path / "serve.log")
    data = str(server.data_dir)
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
            up = http.post("/v1/datasets", content=CSV, headers={"content-type": "text/csv"})
            assert up.status_code == 201, up.text
            dataset = up.json()["id"]
            before = recovered(http, dataset, seconds=5)
            assert wait_until_final(http, before, 120)["status"] == "completed"
            running = submit(http, LONG, dataset).json()["id"]
            time.sleep(2)

            # The data directory turns read-only under the running server (what an operator's
            # `mount -o remount,ro,bind` does): every file opened from now on is read-only.
            # (`--bind -o ro` binds and remounts at once; a file opened for writing in between
            # makes the remount busy: then undo the bind and try again)
            for _ in range(50):
                bound = run("mount", "--bind", "-o", "ro", data, data)
                if bound.returncode == 0:
                    break
                if "busy" not in bound.stderr:
                    pytest.skip(f"cannot mount here ({bound.stderr.strip()}): needs CAP_SYS_ADMIN")
                run("umount", "-l", data)
                time.sleep(0.1)
            else:
                raise AssertionError(f"cannot make {data} read-only: {bound.stderr}")
            try:
                for _ in range(2):
                    body = problem(http.post("/v1/datasets", content=CSV, headers={"content-type": "text/csv"}), 503)
                    assert "read-only" in body["detail"], body
                # A job is queued while the registry can still be written (its files are already
                # open), or refused with a 503 when it cannot; a queued one must end either way.
                during = []
                for _ in range(3):
                    answer = submit(http, QUICK, dataset)
                    if answer.status_code == 202:
                        during.append(answer.json()["id"])
                    else:
                        assert "read-only" in problem(answer, 503)["detail"]
                # Reads still work while writes cannot.
                assert http.get(f"/v1/jobs/{before}").json()["status"] == "completed"
                time.sleep(3)
            finally:
                assert run("umount", "-l", data).returncode == 0

            # Writes work again: the server takes jobs and trains them, with no restart.
            after = recovered(http, dataset)
            assert wait_until_final(http, after, 120)["status"] == "completed"
            # The jobs that ran through the fault end, saying why if they failed: none stays
            # `processing`.
            for job in [running, *during]:
                ended = wait_until_final(http, job, 300)
                assert ended["status"] in ("completed", "failed"), ended
                if ended["status"] == "failed":
                    assert "read-only" in ended["error"].lower(), ended
            assert uploaded(http)
            assert server.process.poll() is None
    finally:
        stop_server(server)
    log = (tmp_path / "serve.log").read_text()
    # A line when an outage begins and one when it ends, not one per retry.
    assert log.count("cannot be written") <= 2, log[-3000:]
    assert len(log.splitlines()) < 100, log[-3000:]


def test_a_full_disk_is_507_and_space_returning_is_enough(tmp_path):
    with mounted("-t", "tmpfs", "-o", "size=48m", "tmpfs") as root:
        server = start_server(data_dir=root, log=tmp_path / "serve.log")
        filler = root / "filler"
        try:
            with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
                up = http.post("/v1/datasets", content=CSV, headers={"content-type": "text/csv"})
                assert up.status_code == 201, up.text
                dataset = up.json()["id"]
                running = submit(http, LONG, dataset).json()["id"]
                time.sleep(2)
                # Fill the file system to the last block.
                with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * (1 << 20))
                with open(filler, "ab", buffering=0) as f, contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * 512)
                body = problem(
                    http.post(
                        "/v1/datasets", content=CSV + CSV.split("\n", 1)[1] * 40, headers={"content-type": "text/csv"}
                    ),
                    507,
                    503,
                )
                assert body["status"] in (503, 507)
                assert "space" in body["detail"] or "full" in body["detail"], body
                ended = wait_until_final(http, running, 300)
                # A run that cannot write its checkpoints fails, saying so (not `processing` for ever).
                assert ended["status"] in ("completed", "failed"), ended
                if ended["status"] == "failed":
                    assert "space" in ended["error"].lower(), ended
                filler.unlink()
                after = recovered(http, dataset)
                assert wait_until_final(http, after, 120)["status"] == "completed"
                assert uploaded(http)
        finally:
            with contextlib.suppress(FileNotFoundError):
                filler.unlink()
            stop_server(server)
