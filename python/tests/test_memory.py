"""A server's memory per request size: JSON bodies are limited before they are read, parsed
into typed values as they stream, and cost at most ~3× their size (peak RSS measured from
/proc, with the kernel's peak counter reset before each request)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import httpx
import pytest
from conftest import TOKEN, start_server, stop_server

MIB = 1 << 20
AUTH = {"authorization": f"Bearer {TOKEN}"}


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def growth_of(pid: int, request) -> tuple[int, object]:
    """(peak RSS above the RSS before, in bytes; the request's answer)."""
    time.sleep(0.3)
    reset_peak(pid)
    before = rss_kib(pid, "VmRSS")
    answer = request()
    return (rss_kib(pid, "VmHWM") - before) * 1024, answer


@pytest.fixture(scope="module")
def lean(server, tmp_path_factory):
    """A fresh server (so training elsewhere does not count) holding one small model."""
    from kiln_client import Client

    with Client(server.url, token=TOKEN) as shared:
        job = shared.train(
            {"training": {"num_passes": 1}, "model": {"hidden": [8]}},
        )
        job.wait_for_training()
        model_file = shared.preloaded_model(job.trained_model["guid"]).download(
            str(tmp_path_factory.mktemp("m") / "m.kiln")
        )
    fresh = start_server("--max-json-mb", "64")
    with httpx.Client(base_url=fresh.url, headers=AUTH, timeout=120) as http:
        answer = http.post(
            "/v1/models", content=Path(model_file).read_bytes(), headers={"content-type": "application/octet-stream"}
        )
        assert answer.status_code == 201, answer.text
        model = answer.json()["modelId"]
        # One small prediction first: the engine's one-time start-up is not a request's cost.
        for _ in range(2):
            warm = http.post(f"/v1/models/{model}/predict", json={"features": [0.0] * 64 * 4})
            assert warm.status_code == 200, warm.text
        warm = http.post(
            f"/v1/models/{model}/predict", content=features_body(4), headers={"content-type": "application/json"}
        )
        assert warm.status_code == 400, warm.text
        yield fresh, http, model
    stop_server(fresh)


def features_body(megabytes: int, extra: int = 1) -> bytes:
    """A predict body of about `megabytes` MiB of `0,` numbers that does not fit whole samples
    of 64 values (so it is parsed, then refused: no prediction memory is counted)."""
    count = megabytes * MIB // 2 // 64 * 64 + extra
    return b'{"features": [' + b"0," * (count - 1) + b"0]}"


REPORT = []


@pytest.mark.parametrize("megabytes", [8, 16, 32])
def test_a_predict_body_costs_at_most_three_times_its_size(lean, megabytes):
    server, http, model = lean
    body = features_body(megabytes)
    grew, answer = growth_of(
        server.process.pid,
        lambda: http.post(f"/v1/models/{model}/predict", content=body, headers={"content-type": "application/json"}),
    )
    assert answer.status_code == 400, answer.text
    REPORT.append((f"predict, {megabytes} MiB of numbers (parsed, then refused)", len(body), grew))
    assert grew <= 3 * len(body) + 32 * MIB, f"{grew / MIB:.0f} MiB for a {len(body) / MIB:.0f} MiB body"


def test_a_body_for_a_model_that_does_not_exist_is_not_parsed(lean):
    server, http, _ = lean
    body = features_body(32)
    grew, answer = growth_of(
        server.process.pid,
        lambda: http.post(
            "/v1/models/no-such-model/predict", content=body, headers={"content-type": "application/json"}
        ),
    )
    assert answer.status_code == 404
    REPORT.append(("predict for no model, 32 MiB", len(body), grew))
    assert grew <= 2 * len(body) + 16 * MIB, f"{grew / MIB:.0f} MiB"


def test_a_config_body_over_its_limit_is_refused_before_it_is_read(lean):
    server, http, _ = lean
    body = json.dumps({"config": {"name": "x" * (64 * MIB)}}).encode()
    started = time.monotonic()
    grew, answer = growth_of(
        server.process.pid,
        lambda: http.post("/v1/jobs", content=body, headers={"content-type": "application/json"}),
    )
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "KILN_MAX_CONFIG_BYTES" in answer.json()["detail"]
    REPORT.append(("job config, 64 MiB (413 before reading)", len(body), grew))
    assert grew <= 8 * MIB and time.monotonic() - started < 30


def test_a_declared_huge_body_is_answered_at_once(lean):
    server, _, model = lean
    host, port = server.url.removeprefix("http://").split(":")
    for path in ("/v1/jobs", f"/v1/models/{model}/predict", "/v1/datasets"):
        started = time.monotonic()
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n".encode()
            )
            answer = conn.recv(65536).decode(errors="replace")
        assert answer.startswith("HTTP/1.1 413"), answer
        assert "application/problem+json" in answer and "over this endpoint's limit" in answer
        assert time.monotonic() - started < 5, f"{path} took {time.monotonic() - started:.1f} s"


def raw_exchange(url: str, head: str) -> str:
    """Sends a request head over a new connection; the answer as text, up to where it closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head.encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer.decode(errors="replace")


def test_too_many_or_too_large_header_fields_are_431_problem_json(lean):
    server, _, _ = lean
    start = f"GET /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
    assert raw_exchange(server.url, start + "Connection: close\r\n\r\n").startswith("HTTP/1.1 200")
    many = "".join(f"X-Field-{i}: {i}\r\n" for i in range(300))
    large = f"X-Large: {'a' * (200 << 10)}\r\n"
    for extra, says in ((many, "302 header fields"), (large, "at most 65536")):
        answer = raw_exchange(server.url, start + extra + "\r\n")
        assert answer.startswith("HTTP/1.1 431"), answer[:300]
        assert "application/problem+json" in answer and says in answer, answer[:600]
        assert "connection: close" in answer.lower()
    # Unauthenticated, the same answer (nothing else is learnt from it).
    answer = raw_exchange(server.url, "GET /v1/jobs HTTP/1.1\r\nHost: x\r\n" + many + "\r\n")
    assert answer.startswith("HTTP/1.1 431") and "application/problem+json" in answer, answer[:300]


def test_zz_report(lean):
    """Prints the measured table (BENCHMARKS.md, "Server memory per request")."""
    path = os.environ.get("KILN_MEMORY_REPORT")
    lines = [
        f"| {what} | {size / MIB:.1f} MiB | {grew / MIB:.1f} MiB | {grew / size:.2f}× |" for what, size, grew in REPORT
    ]
    if path:
        Path(path).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    assert REPORT
