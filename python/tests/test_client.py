"""The Python client end to end against a real ``kiln serve``."""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import KILN, TOKEN

from kiln_client import AsyncClient, Client, JobFailed, KilnError

FAST = {"training": {"num_passes": 3, "batch_size": 16}}


def two_class(n: int = 200):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    features = (labels[:, None] * 2.0 - 1.0) + rng.normal(0, 0.3, size=(n, 4))
    return features.astype(np.float32), labels.astype(np.int64)


@pytest.fixture()
def kiln(server):
    with Client(server.url, token=TOKEN) as client:
        yield client


def test_health_and_tokens(server):
    assert Client(server.url).health()["status"] == "ok"  # health needs no token
    with pytest.raises(KilnError) as refused:
        Client(server.url).jobs()
    assert refused.value.status == 401 and refused.value.type == "urn:kiln:problem:unauthorized"
    with pytest.raises(KilnError) as wrong:
        Client(server.url, token="wrong").models()
    assert wrong.value.status == 401


def test_numpy_training_predict_matches_kiln_predict(kiln, server, tmp_path):
    features, labels = two_class()
    job = kiln.train(FAST, data=(features, labels), tags={"from": "pytest"})
    assert job.id.startswith("trainingjob-")
    assert job.status() in ("queued", "processing", "completed")
    result = job.wait_for_training()
    assert job.status() == "completed"
    assert result["finalMetrics"]["test_accuracy"] > 0.9
    model_id = job.trained_model["modelId"]
    assert job.trained_model["guid"] == model_id
    assert model_id == result["modelId"]
    assert [j["id"] for j in kiln.jobs(tag="from:pytest")] == [job.id]

    model = kiln.preloaded_model(model_id)
    probs = model.predict(features[:10])
    assert probs.shape == (10, 2)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert model.predict(features[0]).shape == (1, 2)
    csv = tmp_path / "x.csv"
    np.savetxt(csv, features[:10], delimiter=",", fmt="%.9g")
    out = subprocess.run(
        [str(KILN), "predict", "--model", model_id, "--input", str(csv), "--store", str(server.data_dir / "models")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    native = np.array([[float(v) for v in line.split(",")[1:]] for line in out.strip().splitlines()[1:]])
    assert np.allclose(native, probs, atol=1e-5)
    path = model.download(str(tmp_path / "m.kiln"))
    listed = subprocess.run(
        [str(KILN), "models", "import", path, "--store", str(tmp_path / "store")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert model_id in listed


def test_csv_path_and_dataframe(kiln, tmp_path):
    features, labels = two_class()
    frame = pd.DataFrame(features, columns=["a", "b", "c", "d"])
    frame.insert(0, "target", labels)
    job = kiln.train({**FAST, "data": {"label_column": "target"}}, data=frame)
    assert job.wait_for_training()["finalMetrics"]["test_accuracy"] > 0.9
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    job = kiln.train({**FAST, "data": {"label_column": "target"}}, data=str(path))
    assert job.wait_for_training()["epochsRun"] == 3


def test_attach_prints_progress_until_the_end(kiln):
    job = kiln.train(FAST)  # the embedded digits
    out = io.StringIO()
    job.attach(out=out)
    text = out.getvalue()
    assert "epoch 1/3" in text and "val_accuracy" in text and "status: completed" in text
    assert job.status() == "completed"


def test_bad_config_cancel_and_failures(kiln):
    with pytest.raises(KilnError) as bad:
        kiln.train({"data": {"source": "csv", "path": "/etc/passwd"}})
    assert bad.value.status == 400 and "data.path" in bad.value.detail
    with pytest.raises(KilnError) as batch:
        kiln.train({"training": {"batch_size": 0}})
    assert "training.batch_size" in batch.value.detail
    job = kiln.train({"training": {"num_passes": 500}})
    for event in kiln.events(job.id):
        if event.event == "progress":
            break
    job.cancel()
    with pytest.raises(JobFailed) as cancelled:
        job.wait_for_training()
    assert cancelled.value.status == "cancelled"
    assert job.status() == "cancelled"
    with pytest.raises(JobFailed):
        job.result()


def test_async_client(server):
    async def scenario():
        async with AsyncClient(server.url, token=TOKEN) as kiln:
            features, labels = two_class()
            job = await kiln.train(FAST, data={"features": features, "labels": labels.astype(np.float32)})
            result = await job.wait_for_training()
            assert await job.status() == "completed"
            model = await kiln.preloaded_model((await job.trained_model())["modelId"])
            probs = await model.predict(features[:5])
            assert probs.shape == (5, 2)
            assert result["modelId"] in [m["modelId"] for m in await kiln.models()]
            # Two jobs awaited together.
            jobs = [await kiln.train(FAST), await kiln.train(FAST)]
            results = await asyncio.gather(*(j.wait_for_training() for j in jobs))
            assert all(r["epochsRun"] == 3 for r in results)

    asyncio.run(scenario())


def test_ctrl_c_detaches_attach_without_cancelling(kiln, server):
    job = kiln.train({"training": {"num_passes": 400}})
    script = (
        "import sys\n"
        "from kiln_client import Client\n"
        f"Client({server.url!r}, token={TOKEN!r}).job({job.id!r}).attach()\n"
        "print('attach returned', flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    while True:  # the history, then live progress
        line = child.stdout.readline()
        assert line, "attach ended before any progress"
        if "epoch" in line:
            break
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0
    assert "detached; the job goes on" in out and "attach returned" in out
    assert job.status() == "processing"
    job.cancel()
    with pytest.raises(JobFailed):
        job.wait_for_training()


def test_job_and_dataset_lists_are_paged(kiln, tmp_path):
    jobs = [kiln.train(FAST, tags={"paged": "yes"}) for _ in range(3)]
    everything = kiln.jobs()
    assert [j.id for j in jobs] == [j["id"] for j in everything][-3:]
    first = kiln.jobs(limit=2)
    assert len(first) == 2 and first.next_cursor
    seen, cursor = list(first), first.next_cursor
    while cursor:
        page = kiln.jobs(limit=2, after=cursor)
        seen += page
        cursor = page.next_cursor
    assert [j["id"] for j in seen] == [j["id"] for j in everything]
    assert kiln.jobs(limit=1, order="desc")[0]["id"] == everything[-1]["id"]
    tagged = kiln.jobs(tag="paged:yes", limit=2)
    assert [j["id"] for j in tagged] == [j.id for j in jobs[:2]]
    rest = kiln.jobs(tag="paged:yes", limit=2, after=tagged.next_cursor)
    assert [j["id"] for j in rest] == [jobs[2].id] and rest.next_cursor is None
    with pytest.raises(KilnError) as bad:
        kiln.jobs(limit=2, after="not-a-cursor")
    assert bad.value.status == 400 and "after" in bad.value.detail
    with pytest.raises(KilnError) as big:
        kiln.jobs(limit=100000)
    assert big.value.status == 400 and "limit" in big.value.detail
    with pytest.raises(KilnError) as unknown:
        kiln.jobs(status="finished")
    assert unknown.value.status == 400 and "status: `finished` is not a job status" in unknown.value.detail
    assert "completed" in unknown.value.detail
    for job in jobs:
        job.cancel()

    csv = tmp_path / "d.csv"
    csv.write_text("a,b,label\n1,2,0\n3,4,1\n")
    ids = [kiln.upload(str(csv)) for _ in range(3)]
    page = kiln.datasets(limit=2, order="desc")
    assert [d["id"] for d in page] == ids[::-1][:2] and page.next_cursor
    assert [d["id"] for d in kiln.datasets()][-3:] == ids


def test_an_uploaded_csv_trains_with_data_source_csv(kiln, tmp_path):
    features, labels = two_class()
    frame = pd.DataFrame(features, columns=["a", "b", "c", "d"])
    frame["label"] = labels
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    dataset = kiln.upload(str(path))
    # The config says what the data is: a CSV (the upload), as a local config would.
    answer = kiln.request(
        "POST", "/v1/jobs", json={"config": {"data": {"source": "csv"}, **FAST}, "dataset": dataset}
    ).json()
    assert kiln.job(answer["id"]).wait_for_training()["finalMetrics"]["test_accuracy"] > 0.9
    safetensors = kiln.upload((features, labels))
    with pytest.raises(KilnError) as contradicts:
        kiln.request("POST", "/v1/jobs", json={"config": {"data": {"source": "csv"}}, "dataset": safetensors})
    assert contradicts.value.status == 400 and "csv contradicts dataset" in contradicts.value.detail


def test_a_csv_upload_with_an_unterminated_quote_is_refused(kiln, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('a,b,label\n1,2,0\n"3,4,1\n5,6,1\n7,8,0\n')
    with pytest.raises(KilnError) as bad:
        kiln.upload(str(path))
    assert bad.value.status == 400 and "line 3" in bad.value.detail and "never closed" in bad.value.detail


def test_a_json_config_with_a_repeated_key_or_a_nul_byte_is_refused(kiln):
    with pytest.raises(KilnError) as dup:
        kiln.request(
            "POST",
            "/v1/jobs",
            content=b'{"config": {"training": {"num_passes": 1, "num_passes": 9}}}',
            headers={"content-type": "application/json"},
        )
    assert dup.value.status in (400, 422) and "duplicate key `num_passes`" in dup.value.detail
    with pytest.raises(KilnError) as nul:
        kiln.train("seed: 7\x00\ntraining: {num_passes: 1}\n")
    assert nul.value.status == 400 and "NUL byte at byte offset 7" in nul.value.detail


def test_deleting_a_job_while_it_is_cancelled_leaves_nothing_behind(kiln, server):
    import time
    from concurrent.futures import ThreadPoolExecutor

    for round in range(12):
        job = kiln.train({"training": {"num_passes": 500}, "checkpoint": {"every_epochs": 1}})
        if round % 2:  # half the rounds race the claim, half a running job
            for event in kiln.events(job.id):
                if event.event == "progress":
                    break

        def call(method):
            try:
                return kiln.request(method[0], method[1]).status_code
            except KilnError as e:
                return e.status

        calls = [("POST", f"/v1/jobs/{job.id}/cancel")] * 3 + [("DELETE", f"/v1/jobs/{job.id}")] * 3
        calls.append(("GET", f"/v1/jobs/{job.id}"))
        with ThreadPoolExecutor(len(calls)) as pool:
            list(pool.map(call, calls))
        deadline = time.monotonic() + 60
        while call(("DELETE", f"/v1/jobs/{job.id}")) not in (204, 404):
            assert time.monotonic() < deadline, "the job never became deletable"
            time.sleep(0.1)
        job_dir = server.data_dir / "jobs" / job.id
        # The worker stops at its next step; whatever it wrote by then goes too.
        deadline = time.monotonic() + 30
        while job_dir.exists():
            assert time.monotonic() < deadline, f"{job_dir} still there: {list(job_dir.rglob('*'))}"
            time.sleep(0.1)
        time.sleep(1.0)
        assert not job_dir.exists(), list(job_dir.rglob("*"))
        with pytest.raises(KilnError) as gone:
            job.info()
        assert gone.value.status == 404
