"""The asyncio client: :class:`AsyncClient`, :class:`AsyncJob` and :class:`AsyncModel` (the same
API as the blocking one, awaited)."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, AsyncIterator, Dict, List, Optional, TextIO, Union

import httpx

from ._data import features_payload, outputs_array, remote_config, to_upload
from ._sse import Event, EventParser, describe, is_final
from .client import RECONNECT_FOR
from .errors import JobFailed, raise_for_problem


class AsyncClient:
    """``async with AsyncClient(url, token=...) as kiln: job = await kiln.train(...)``."""

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 60.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)

    async def aclose(self) -> None:
        """Closes the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call; raises :class:`~kiln_client.KilnError` on an error answer."""
        response = await self._http.request(method, path, **kwargs)
        raise_for_problem(response)
        return response

    async def health(self) -> Dict[str, Any]:
        """``{status, version, backend}``."""
        return (await self.request("GET", "/v1/health")).json()

    async def upload(self, data: Any, config: Any = None) -> str:
        """Uploads data as a dataset; returns its id."""
        body, content_type, query = to_upload(config, data)
        answer = await self.request(
            "POST", "/v1/datasets", params=query, content=body, headers={"content-type": content_type}
        )
        return answer.json()["id"]

    async def train(
        self,
        config: Union[Dict[str, Any], str, None] = None,
        data: Any = None,
        tags: Optional[Dict[str, str]] = None,
    ) -> "AsyncJob":
        """Starts a training job (see :meth:`kiln_client.Client.train`)."""
        dataset = await self.upload(data, config) if data is not None else None
        body: Dict[str, Any] = {"config": remote_config(config, dataset is not None), "tags": tags or {}}
        if dataset:
            body["dataset"] = dataset
        answer = (await self.request("POST", "/v1/jobs", json=body)).json()
        return AsyncJob(self, answer["id"])

    def job(self, job_id: str) -> "AsyncJob":
        """A handle on an existing job."""
        return AsyncJob(self, job_id)

    async def jobs(self, status: Optional[str] = None, tag: Optional[str] = None) -> List[Dict[str, Any]]:
        """Training jobs, oldest first."""
        params = {k: v for k, v in {"status": status, "tag": tag}.items() if v is not None}
        return (await self.request("GET", "/v1/jobs", params=params)).json()

    async def preloaded_model(self, model_id: str) -> "AsyncModel":
        """A stored model by id (checked to exist)."""
        info = (await self.request("GET", f"/v1/models/{model_id}/info")).json()
        return AsyncModel(self, model_id, info)

    async def models(self) -> List[Dict[str, Any]]:
        """Summaries of the server's models."""
        return (await self.request("GET", "/v1/models")).json()

    async def events(self, job_id: str, last_event_id: int = 0) -> AsyncIterator[Event]:
        """A job's events after ``last_event_id``, live, until its final status."""
        last = last_event_id
        lost_since: Optional[float] = None
        while True:
            headers = {"accept": "text/event-stream"}
            if last:
                headers["last-event-id"] = str(last)
            try:
                async with self._http.stream(
                    "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=None
                ) as r:
                    if r.status_code >= 400:
                        await r.aread()
                        raise_for_problem(r)
                    parser = EventParser()
                    async for line in r.aiter_lines():
                        event = parser.feed(line.rstrip("\r"))
                        if event is None:
                            continue
                        last = event.id or last
                        lost_since = None
                        yield event
                        if is_final(event):
                            return
            except httpx.TransportError:
                pass
            lost_since = lost_since or time.monotonic()
            if time.monotonic() - lost_since > RECONNECT_FOR:
                raise ConnectionError(f"lost the event stream of {job_id} for {RECONNECT_FOR:.0f} s")
            await asyncio.sleep(0.5)


class AsyncJob:
    """A job on the server (awaitable methods)."""

    def __init__(self, client: AsyncClient, job_id: str) -> None:
        self._client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"AsyncJob({self.id!r})"

    async def info(self) -> Dict[str, Any]:
        """The job as the server shows it."""
        return (await self._client.request("GET", f"/v1/jobs/{self.id}")).json()

    async def status(self) -> str:
        """``queued | processing | completed | failed | cancelled``."""
        return (await self.info())["status"]

    async def result(self) -> Dict[str, Any]:
        """The TrainRunInfo of a completed job; raises :class:`JobFailed` otherwise."""
        info = await self.info()
        if info["status"] != "completed":
            raise JobFailed(self.id, info["status"], info.get("error") or "the job has not completed")
        return info["result"]

    async def trained_model(self) -> Dict[str, str]:
        """``{"modelId": ...}`` of the model a completed job trained."""
        return {"modelId": (await self.result())["modelId"]}

    async def wait_for_training(self) -> Dict[str, Any]:
        """Waits until the job ends; returns its result or raises :class:`JobFailed`."""
        async for event in self._client.events(self.id):
            if is_final(event):
                break
        return await self.result()

    async def attach(self, out: TextIO = sys.stdout) -> None:
        """Prints the job's live progress until it ends (cancelling the task detaches)."""
        async for event in self._client.events(self.id):
            line = describe(event)
            if line:
                print(f"[{self.id}] {line}", file=out, flush=True)

    async def cancel(self) -> None:
        """Cancels the job."""
        await self._client.request("POST", f"/v1/jobs/{self.id}/cancel")


class AsyncModel:
    """A model stored on the server."""

    def __init__(self, client: AsyncClient, model_id: str, info: Dict[str, Any]) -> None:
        self._client = client
        self.model_id = model_id
        self.info = info

    async def predict(self, features: Any) -> Any:
        """Predicts on the server; a numpy array ``[rows, outputs]``."""
        encoded, shape = features_payload(features)
        answer = await self._client.request(
            "POST", f"/v1/models/{self.model_id}/predict", json={"features": encoded, "shape": shape}
        )
        return outputs_array(answer.json())

    async def download(self, path: str) -> str:
        """Writes the model's ``.kiln`` bytes to ``path``."""
        data = (await self._client.request("GET", f"/v1/models/{self.model_id}")).content
        with open(path, "wb") as f:
            f.write(data)
        return path
