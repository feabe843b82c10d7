"""The seeds' hosted-training flow, verbatim, from a fresh ``pip install ./python`` without numpy:
``train(**training)`` → ``status()`` → ``wait_for_training()`` → ``trained_model["guid"]`` →
``preloaded_model(id)`` → ``predict`` on plain lists, on the sync and the async client."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest
from conftest import REPO, TOKEN

SYNC_SEED = """
from kiln_client import Client

qcml = Client(URL, token=TOKEN)
rows = [[(i % 2) * 2.0 - 1.0 + 0.1 * ((i * 7) % 5 - 2), 0.2 * ((i * 3) % 5 - 2)] for i in range(120)]
labels = [i % 2 for i in range(120)]
qcml.train(data=(rows, labels), batch_size=16, num_passes=30, weight_optimization={"learning_rate": 0.01})
assert qcml.status() in ("queued", "processing", "completed"), qcml.status()
qcml.wait_for_training()
assert qcml.status() == "completed"
model_id = qcml.trained_model["guid"]
assert model_id == qcml.trained_model["modelId"]
model = qcml.preloaded_model(model_id)
probs = model.predict([[1.0, 0.0], [-1.0, 0.0]])
assert isinstance(probs, list) and len(probs) == 2 and len(probs[0]) == 2, probs
assert all(abs(sum(p) - 1) < 1e-4 for p in probs), probs
assert probs[0][1] > 0.5 > probs[1][1], probs
one = model.predict([1.0, 0.0])
assert len(one) == 1 and len(one[0]) == 2, one

# The seed's other spelling: no data, the embedded digits, parameters as keywords.
job = qcml.train(batch_size=64, num_passes=2, weight_optimization={"optimization_method": "adam"})
qcml.wait_for_training()
assert job.trained_model["guid"] == qcml.trained_model["guid"]
assert job.info()["result"]["guid"] == job.info()["result"]["modelId"]
print("sync seed flow ok", model_id)
"""

ASYNC_SEED = """
import asyncio
from kiln_client import AsyncClient

async def main():
    async with AsyncClient(URL, token=TOKEN) as qcml:
        job = await qcml.train(batch_size=64, num_passes=2, weight_optimization={"learning_rate": 0.003})
        try:
            job.trained_model["guid"]
            raise SystemExit("trained_model answered before wait_for_training")
        except LookupError as e:
            assert "wait_for_training" in str(e), e
        assert await qcml.status() in ("queued", "processing", "completed")
        await qcml.wait_for_training()
        model_id = qcml.trained_model["guid"]
        assert model_id == job.trained_model["modelId"]
        assert (await job.trained_model())["guid"] == model_id  # the older spelling still works
        model = await qcml.preloaded_model(model_id)
        probs = await model.predict([[0.0] * 64])
        assert isinstance(probs, list) and len(probs[0]) == 10, probs
        print("async seed flow ok", model_id)

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory) -> Path:
    """A new virtual environment with only ``pip install ./python`` (so httpx, no numpy)."""
    root = tmp_path_factory.mktemp("seed-venv")
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO / "python")],
        check=True,
    )
    missing = subprocess.run([str(python), "-c", "import numpy"], capture_output=True)
    assert missing.returncode != 0, "the fresh environment must not have numpy"
    return python


@pytest.mark.parametrize("seed", [SYNC_SEED, ASYNC_SEED], ids=["sync", "async"])
def test_seed_flow_runs_as_written_without_numpy(server, fresh_python, seed):
    script = f"URL = {server.url!r}\nTOKEN = {TOKEN!r}\n" + textwrap.dedent(seed)
    done = subprocess.run([str(fresh_python), "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "seed flow ok" in done.stdout


def test_client_level_calls_before_any_job_say_what_to_do(server):
    from kiln_client import Client

    with Client(server.url, token=TOKEN) as qcml:
        with pytest.raises(RuntimeError, match="call train"):
            qcml.status()
        with pytest.raises(RuntimeError, match="call train"):
            _ = qcml.trained_model  # a property: reading it raises


def test_keyword_parameters_are_validated_by_field_path(server):
    from kiln_client import Client, KilnError

    with Client(server.url, token=TOKEN) as qcml:
        with pytest.raises(KilnError) as bad:
            qcml.train(batch_size=0)
        assert "training.batch_size" in bad.value.detail
        with pytest.raises(TypeError, match="dict"):
            qcml.train("training:\n  num_passes: 2\n", batch_size=4)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
