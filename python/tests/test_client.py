"""The Python client end to end against a real ``kiln serve``."""

from __future__ import annotations

import asyncio
import signal
import sys
import io
import subprocess

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
        check=True, capture_output=True, text=True,
    ).stdout
    native = np.array([[float(v) for v in line.split(",")[1:]] for line in out.strip().splitlines()[1:]])
    assert np.allclose(native, probs, atol=1e-5)
    path = model.download(str(tmp_path / "m.kiln"))
    listed = subprocess.run(
        [str(KILN), "models", "import", path, "--store", str(tmp_path / "store")], check=True, capture_output=True, text=True
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
