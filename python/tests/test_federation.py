"""Federations from the Python client: create, invite, two real ``kiln federate join`` clients
(with the join token only), wait, the final model by ``trained_model["guid"]``."""

from __future__ import annotations

import asyncio
import random
import subprocess
from pathlib import Path

import pytest
from conftest import KILN, TOKEN

from kiln_client import AsyncClient, Client, KilnError

CONFIG = {
    "name": "py-federation",
    "model": {"hidden": [16]},
    "training": {
        "num_passes": 1,
        "batch_size": 16,
        "weight_optimization": {"optimization_method": "sgd", "learning_rate": 0.05},
    },
    "data": {"split": [0.9, 0.1, 0.0]},
}


def client_data(path: Path, classes: list, seed: int) -> Path:
    """A client's CSV: 4 features around its class, the class last (labels below 4)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(120):
        label = rng.choice(classes)
        rows.append(",".join(f"{label + rng.gauss(0, 0.3):.4f}" for _ in range(4)) + f",{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_federation_from_create_to_a_preloaded_model(server, tmp_path):
    kiln = Client(server.url, token=TOKEN)
    fed = kiln.create_federation(CONFIG, rounds=3, clients_per_round=2, input_shape=[4], num_outputs=4)
    assert fed.id.startswith("fed-") and fed.status() == "waiting"
    invite = fed.invite(max_uses=2)
    token_file = tmp_path / "join-token"
    token_file.write_text(invite["token"] + "\n")
    clients = [
        subprocess.Popen(
            [
                str(KILN),
                "federate",
                "join",
                server.url,
                "--federation",
                fed.id,
                "--data",
                str(client_data(tmp_path / f"client-{i}.csv", classes, i)),
                "--token-file",
                str(token_file),
                "--store",
                str(tmp_path / f"store-{i}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, classes in enumerate([[0, 1], [2, 3]])
    ]
    result = fed.wait()
    for process in clients:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert result["rounds"] == 3
    info = fed.info()
    assert [r["round"] for r in info["history"]] == [0, 1, 2]
    assert all(r["participants"] == 2 for r in info["history"])
    kinds = [e.event for e in fed.events()]
    assert kinds.count("roundClosed") == 3 and kinds[-1] == "status"
    # The seeds' names work for federations as for jobs.
    model = kiln.preloaded_model(fed.trained_model["guid"])
    assert fed.trained_model["guid"] == fed.trained_model["modelId"]
    probabilities = model.predict([[0.0, 0.0, 0.0, 0.0], [3.0, 3.0, 3.0, 3.0]])
    assert len(probabilities) == 2 and len(probabilities[0]) == 4


def test_federation_errors_name_the_field(server):
    kiln = Client(server.url, token=TOKEN)
    with pytest.raises(KilnError) as refused:
        kiln.create_federation(CONFIG, rounds=0, clients_per_round=2, input_shape=[4], num_outputs=4)
    assert "rounds: must be in 1..=" in str(refused.value)
    with pytest.raises(KilnError) as refused:
        kiln.create_federation(CONFIG, rounds=2, clients_per_round=2)
    assert "inputShape and numOutputs" in str(refused.value)


def join_client(server_url: str, fed_id: str, data: Path, token_file: Path, store: Path) -> subprocess.Popen:
    """A real ``kiln federate join`` client process."""
    return subprocess.Popen(
        [str(KILN), "federate", "join", server_url, "--federation", fed_id, "--data", str(data)]
        + ["--token-file", str(token_file), "--store", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_async_client_runs_a_secure_federation(server, tmp_path):
    async def scenario():
        async with AsyncClient(server.url, token=TOKEN) as kiln:
            fed = await kiln.create_federation(
                CONFIG,
                rounds=2,
                clients_per_round=2,
                input_shape=[4],
                num_outputs=4,
                aggregation={"clipNorm": 10},
                secure_aggregation=True,
                secure_phase_secs=10,
            )
            assert (await fed.info())["secureAggregation"] is True
            token_file = tmp_path / "join-token"
            token_file.write_text((await fed.invite(max_uses=2))["token"] + "\n")
            clients = [
                join_client(
                    server.url, fed.id, client_data(tmp_path / f"s-{i}.csv", c, i), token_file, tmp_path / f"s{i}"
                )
                for i, c in enumerate([[0, 1, 2, 3], [0, 1, 2, 3]])
            ]
            with pytest.raises(LookupError):
                fed.trained_model["guid"]
            result = await fed.wait()
            for process in clients:
                _, err = process.communicate(timeout=120)
                assert process.returncode == 0, err
                assert "sent a masked update" in err
            assert result["rounds"] == 2
            assert fed.trained_model["guid"] == result["modelId"]
            assert (await fed.trained_model())["guid"] == result["modelId"]
            kinds = [e.event async for e in fed.events()]
            assert kinds.count("roundClosed") == 2
            assert await fed.status() == "completed"
            model = await kiln.preloaded_model(fed.trained_model["guid"])
            probabilities = await model.predict([[0.0, 0.0, 0.0, 0.0], [3.0, 3.0, 3.0, 3.0]])
            assert len(probabilities) == 2

    asyncio.run(scenario())
