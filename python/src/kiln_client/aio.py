"""The asyncio client: :class:`AsyncClient`, :class:`AsyncJob`, :class:`AsyncFederation` and
:class:`AsyncModel` (the same API as the blocking one, awaited)."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, AsyncIterator, Dict, List, Optional, TextIO, Union

import httpx

from ._data import (
    Page,
    features_payload,
    federation_body,
    outputs_array,
    page_params,
    remote_config,
    to_upload,
    with_training,
)
from ._sse import Event, EventParser, describe, is_final
from ._trained import AsyncTrainedModel, PendingTrainedModel, no_job_yet, trained_model_of
from .client import RECONNECT_FOR
from .errors import JobFailed, raise_for_problem


class AsyncClient:
    """``async with AsyncClient(url, token=...) as kiln: job = await kiln.train(...)``."""

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 60.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)
        self._last_job: Optional[AsyncJob] = None

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
        **training: Any,
    ) -> "AsyncJob":
        """Starts a training job (see :meth:`kiln_client.Client.train`; keyword arguments are
        training parameters). It becomes this client's current job."""
        config = with_training(config, training)
        dataset = await self.upload(data, config) if data is not None else None
        body: Dict[str, Any] = {"config": remote_config(config, dataset is not None), "tags": tags or {}}
        if dataset:
            body["dataset"] = dataset
        answer = (await self.request("POST", "/v1/jobs", json=body)).json()
        self._last_job = AsyncJob(self, answer["id"])
        return self._last_job

    def _current_job(self) -> "AsyncJob":
        if self._last_job is None:
            raise no_job_yet()
        return self._last_job

    async def status(self) -> str:
        """The status of the job this client started last."""
        return await self._current_job().status()

    async def wait_for_training(self) -> Dict[str, Any]:
        """Waits until the job this client started last ends."""
        return await self._current_job().wait_for_training()

    @property
    def trained_model(self) -> Union[AsyncTrainedModel, PendingTrainedModel]:
        """``{"modelId", "guid"}`` of the model of the job this client started last, once
        ``await client.wait_for_training()`` returned (see :attr:`AsyncJob.trained_model`)."""
        return self._current_job().trained_model

    def job(self, job_id: str) -> "AsyncJob":
        """A handle on an existing job."""
        return AsyncJob(self, job_id)

    async def jobs(
        self,
        status: Optional[str] = None,
        tag: Optional[str] = None,
        limit: Optional[int] = None,
        after: Optional[str] = None,
        order: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        """Training jobs (see :meth:`kiln_client.Client.jobs`)."""
        return await self._pages("/v1/jobs", page_params(status, tag, limit, after, order))

    async def datasets(
        self, limit: Optional[int] = None, after: Optional[str] = None, order: Optional[str] = None
    ) -> List[Dict[str, Any]]:
        """Uploaded datasets, paged like :meth:`jobs`."""
        return await self._pages("/v1/datasets", page_params(limit=limit, after=after, order=order))

    async def _pages(self, path: str, params: Dict[str, Any]) -> Page:
        page = Page()
        while True:
            answer = await self.request("GET", path, params=params)
            page.extend(answer.json())
            page.next_cursor = answer.headers.get("x-next-cursor")
            if "limit" in params or not page.next_cursor:
                return page
            params = {**params, "after": page.next_cursor}

    async def preloaded_model(self, model_id: str) -> "AsyncModel":
        """A stored model by id (checked to exist)."""
        info = (await self.request("GET", f"/v1/models/{model_id}/info")).json()
        return AsyncModel(self, model_id, info)

    async def models(self) -> List[Dict[str, Any]]:
        """Summaries of the server's models."""
        return (await self.request("GET", "/v1/models")).json()

    async def events(self, job_id: str, last_event_id: int = 0) -> AsyncIterator[Event]:
        """A job's events after ``last_event_id``, live, until its final status."""
        async for event in self._follow(f"/v1/jobs/{job_id}/events", job_id, last_event_id):
            yield event

    async def create_federation(
        self,
        config: Union[Dict[str, Any], str, None] = None,
        rounds: int = 10,
        clients_per_round: int = 2,
        **settings: Any,
    ) -> "AsyncFederation":
        """Creates a federation (see :meth:`kiln_client.Client.create_federation`)."""
        body = federation_body(config, rounds, clients_per_round, settings)
        answer = (await self.request("POST", "/v1/federations", json=body)).json()
        return AsyncFederation(self, answer["id"])

    def federation(self, federation_id: str) -> "AsyncFederation":
        """A federation by id."""
        return AsyncFederation(self, federation_id)

    async def _follow(self, path: str, what: str, last_event_id: int = 0) -> AsyncIterator[Event]:
        """The events of ``path`` after ``last_event_id``, live, until the final status; a
        dropped stream is resumed with Last-Event-ID."""
        last = last_event_id
        lost_since: Optional[float] = None
        while True:
            headers = {"accept": "text/event-stream"}
            if last:
                headers["last-event-id"] = str(last)
            try:
                async with self._http.stream("GET", path, headers=headers, timeout=None) as r:
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
                raise ConnectionError(f"lost the event stream of {what} for {RECONNECT_FOR:.0f} s")
            await asyncio.sleep(0.5)


class AsyncJob:
    """A job on the server (awaitable methods)."""

    def __init__(self, client: AsyncClient, job_id: str) -> None:
        self._client = client
        self.id = job_id
        self._result: Optional[Dict[str, Any]] = None

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
        self._result = info["result"]
        return info["result"]

    @property
    def trained_model(self) -> Union[AsyncTrainedModel, PendingTrainedModel]:
        """``{"modelId": ..., "guid": ...}`` (the same id; ``guid`` is the hosted-training API's
        name) once ``await job.wait_for_training()`` (or ``result()``) returned. Before that,
        reading a key raises ``LookupError``; ``await job.trained_model()`` (the older spelling)
        asks the server and works at any time."""
        if self._result is not None:
            return AsyncTrainedModel(trained_model_of(self._result)["modelId"])
        return PendingTrainedModel(self.id, self.result)

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


class AsyncFederation:
    """A federation on the server (awaitable methods; see :class:`kiln_client.Federation`)."""

    def __init__(self, client: AsyncClient, federation_id: str) -> None:
        self._client = client
        self.id = federation_id
        self._result: Optional[Dict[str, Any]] = None

    def __repr__(self) -> str:
        return f"AsyncFederation({self.id!r})"

    async def info(self) -> Dict[str, Any]:
        """Status, open round, participants, every closed round's metrics (``history``)."""
        return (await self._client.request("GET", f"/v1/federations/{self.id}")).json()

    async def status(self) -> str:
        """``waiting | running | completed | failed | cancelled``."""
        return (await self.info())["status"]

    async def round(self) -> int:
        """The open round (from 0; ``rounds`` once completed)."""
        return (await self.info())["round"]

    async def result(self) -> Dict[str, Any]:
        """The result of a completed federation; raises :class:`JobFailed` otherwise."""
        info = await self.info()
        if info["status"] != "completed":
            raise JobFailed(self.id, info["status"], info.get("error") or "the federation has not completed")
        self._result = info["result"]
        return info["result"]

    @property
    def trained_model(self) -> Union[AsyncTrainedModel, PendingTrainedModel]:
        """``{"modelId": ..., "guid": ...}`` of the final model once ``await fed.wait()`` (or
        ``result()``) returned; ``await fed.trained_model()`` asks the server at any time."""
        if self._result is not None:
            return AsyncTrainedModel(trained_model_of(self._result)["modelId"])
        return PendingTrainedModel(self.id, self.result)

    def events(self, last_event_id: int = 0) -> AsyncIterator[Event]:
        """The federation's events, live, until it ends."""
        return self._client._follow(f"/v1/federations/{self.id}/events", self.id, last_event_id)

    async def wait(self) -> Dict[str, Any]:
        """Waits until the federation ends; returns its result or raises :class:`JobFailed`."""
        async for event in self.events():
            if is_final(event):
                break
        return await self.result()

    async def invite(self, expires_in_secs: Optional[int] = None, max_uses: Optional[int] = None) -> Dict[str, Any]:
        """A join token for clients (``{"id", "token", ...}``; the token is shown once)."""
        body = {"expiresInSecs": expires_in_secs, "maxUses": max_uses}
        return (await self._client.request("POST", f"/v1/federations/{self.id}/invites", json=body)).json()

    async def cancel(self) -> None:
        """Cancels the federation."""
        await self._client.request("POST", f"/v1/federations/{self.id}/cancel")


class AsyncModel:
    """A model stored on the server."""

    def __init__(self, client: AsyncClient, model_id: str, info: Dict[str, Any]) -> None:
        self._client = client
        self.model_id = model_id
        self.info = info

    async def predict(self, features: Any) -> Any:
        """Predicts on the server (see :meth:`kiln_client.Model.predict`)."""
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
