"""The blocking client: :class:`Client`, :class:`Job` and :class:`Model`."""

from __future__ import annotations

import sys
import time
from typing import Any, Dict, Iterator, List, Optional, TextIO, Union

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
from ._sse import Event, describe, is_final, parse_lines
from ._trained import TrainedModel, no_job_yet, trained_model_of
from .errors import JobFailed, raise_for_problem

#: How long a dropped event stream is retried before giving up (seconds).
RECONNECT_FOR = 120.0


class Client:
    """A connection to a ``kiln serve`` server: ``Client("http://127.0.0.1:7878", token=...)``."""

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 60.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._last_job: Optional[Job] = None
        self._last_federation: Optional[Federation] = None

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call; raises :class:`~kiln_client.KilnError` on an error answer."""
        response = self._http.request(method, path, **kwargs)
        raise_for_problem(response)
        return response

    def health(self) -> Dict[str, Any]:
        """``{status, version, backend}``."""
        return self.request("GET", "/v1/health").json()

    def upload(self, data: Any, config: Any = None) -> str:
        """Uploads data as a dataset (see :meth:`train`); returns its id."""
        body, content_type, query = to_upload(config, data)
        answer = self.request(
            "POST", "/v1/datasets", params=query, content=body, headers={"content-type": content_type}
        )
        return answer.json()["id"]

    def train(
        self,
        config: Union[Dict[str, Any], str, None] = None,
        data: Any = None,
        tags: Optional[Dict[str, str]] = None,
        **training: Any,
    ) -> "Job":
        """Starts a training job and returns it at once. ``config``: a dict with the YAML schema,
        or YAML/JSON text. ``data``: a CSV path, a pandas DataFrame, ``(features, labels)`` numpy
        arrays or lists, or ``{"features", "labels"}``; without it the config's source is used
        (the server allows the embedded ``digits``). Keyword arguments are training parameters
        merged into ``config["training"]`` (``num_passes=10, batch_size=4,
        weight_optimization={...}``). The job is also this client's current job, which
        :meth:`status`, :meth:`wait_for_training` and :attr:`trained_model` follow."""
        config = with_training(config, training)
        dataset = self.upload(data, config) if data is not None else None
        body: Dict[str, Any] = {"config": remote_config(config, dataset is not None), "tags": tags or {}}
        if dataset:
            body["dataset"] = dataset
        answer = self.request("POST", "/v1/jobs", json=body).json()
        self._last_job = Job(self, answer["id"])
        return self._last_job

    def _current_job(self) -> "Job":
        if self._last_job is None:
            raise no_job_yet()
        return self._last_job

    def status(self) -> str:
        """The status of the job this client started last (see :meth:`Job.status`)."""
        return self._current_job().status()

    def wait_for_training(self) -> Dict[str, Any]:
        """Blocks until the job this client started last ends (see :meth:`Job.wait_for_training`)."""
        return self._current_job().wait_for_training()

    @property
    def trained_model(self) -> TrainedModel:
        """``{"modelId", "guid"}`` of the model the job this client started last trained."""
        return self._current_job().trained_model

    def job(self, job_id: str) -> "Job":
        """A handle on an existing job."""
        return Job(self, job_id)

    def jobs(
        self,
        status: Optional[str] = None,
        tag: Optional[str] = None,
        limit: Optional[int] = None,
        after: Optional[str] = None,
        order: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        """Training jobs, oldest first (``order="desc"``: newest first; ``tag`` as
        ``"key:value"``). With ``limit``, one page: a :class:`Page` whose ``next_cursor`` is the
        ``after`` of the next one; without, every job, page after page."""
        return self._pages("/v1/jobs", page_params(status, tag, limit, after, order))

    def datasets(
        self, limit: Optional[int] = None, after: Optional[str] = None, order: Optional[str] = None
    ) -> List[Dict[str, Any]]:
        """Uploaded datasets, paged like :meth:`jobs`."""
        return self._pages("/v1/datasets", page_params(limit=limit, after=after, order=order))

    def _pages(self, path: str, params: Dict[str, Any]) -> "Page":
        page = Page()
        while True:
            answer = self.request("GET", path, params=params)
            page.extend(answer.json())
            page.next_cursor = answer.headers.get("x-next-cursor")
            if "limit" in params or not page.next_cursor:
                return page
            params = {**params, "after": page.next_cursor}

    def preloaded_model(self, model_id: str) -> "Model":
        """A stored model by id (checked to exist)."""
        info = self.request("GET", f"/v1/models/{model_id}/info").json()
        return Model(self, model_id, info)

    def models(self) -> List[Dict[str, Any]]:
        """Summaries of the server's models."""
        return self.request("GET", "/v1/models").json()

    def events(self, job_id: str, last_event_id: int = 0) -> Iterator[Event]:
        """A job's events after ``last_event_id``, live, until its final status; a dropped
        stream is resumed with Last-Event-ID."""
        return self._follow(f"/v1/jobs/{job_id}/events", job_id, last_event_id)

    def create_federation(
        self,
        config: Union[Dict[str, Any], str, None] = None,
        rounds: int = 10,
        clients_per_round: int = 2,
        **settings: Any,
    ) -> "Federation":
        """Creates a federation: ``config`` is the training config every client trains its
        rounds with; ``settings`` are the API's other fields in snake_case (``min_clients``,
        ``round_timeout_secs``, ``aggregation={"method": "fedavg"}``, ``input_shape``,
        ``num_outputs``, ``init_model``, ``validation_dataset``, ``secure_aggregation``, ``tags``)."""
        body = federation_body(config, rounds, clients_per_round, settings)
        answer = self.request("POST", "/v1/federations", json=body).json()
        self._last_federation = Federation(self, answer["id"])
        return self._last_federation

    def federation(self, federation_id: str) -> "Federation":
        """A federation by id."""
        return Federation(self, federation_id)

    def _follow(self, path: str, what: str, last_event_id: int = 0) -> Iterator[Event]:
        """The events of ``path`` after ``last_event_id``, live, until the final status."""
        last = last_event_id
        lost_since: Optional[float] = None
        while True:
            headers = {"accept": "text/event-stream"}
            if last:
                headers["last-event-id"] = str(last)
            try:
                with self._http.stream("GET", path, headers=headers, timeout=None) as r:
                    if r.status_code >= 400:
                        r.read()
                        raise_for_problem(r)
                    for event in parse_lines(r.iter_lines()):
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
            time.sleep(0.5)


class Job:
    """A job on the server."""

    def __init__(self, client: Client, job_id: str) -> None:
        self._client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    def info(self) -> Dict[str, Any]:
        """The job as the server shows it (status, progress, result, error, times, tags)."""
        return self._client.request("GET", f"/v1/jobs/{self.id}").json()

    def status(self) -> str:
        """``queued | processing | completed | failed | cancelled``."""
        return self.info()["status"]

    def result(self) -> Dict[str, Any]:
        """The TrainRunInfo of a completed job; raises :class:`JobFailed` otherwise."""
        info = self.info()
        if info["status"] != "completed":
            raise JobFailed(self.id, info["status"], info.get("error") or "the job has not completed")
        return info["result"]

    @property
    def trained_model(self) -> TrainedModel:
        """``{"modelId": ..., "guid": ...}`` (the same id; ``guid`` is the hosted-training API's
        name) of the model a completed job trained; raises :class:`JobFailed` otherwise."""
        return trained_model_of(self.result())

    def wait_for_training(self) -> Dict[str, Any]:
        """Blocks until the job ends; returns its result or raises :class:`JobFailed`."""
        for event in self._client.events(self.id):
            if is_final(event):
                break
        return self.result()

    def attach(self, out: TextIO = sys.stdout) -> None:
        """Prints the job's live progress until it ends; Ctrl-C detaches (the job keeps going)."""
        try:
            for event in self._client.events(self.id):
                line = describe(event)
                if line:
                    print(f"[{self.id}] {line}", file=out, flush=True)
        except KeyboardInterrupt:
            print(f"[{self.id}] detached; the job goes on (job.attach() to follow it again)", file=out)

    def cancel(self) -> None:
        """Cancels the job (idempotent; a finished job raises KilnError 409)."""
        self._client.request("POST", f"/v1/jobs/{self.id}/cancel")


class Federation:
    """A federation on the server: many clients train one model, their data stays with them."""

    def __init__(self, client: Client, federation_id: str) -> None:
        self._client = client
        self.id = federation_id

    def __repr__(self) -> str:
        return f"Federation({self.id!r})"

    def info(self) -> Dict[str, Any]:
        """Status, open round, participants, every closed round's metrics (``history``)."""
        return self._client.request("GET", f"/v1/federations/{self.id}").json()

    def status(self) -> str:
        """``waiting | running | completed | failed | cancelled``."""
        return self.info()["status"]

    def round(self) -> int:
        """The open round (from 0; ``rounds`` once completed)."""
        return self.info()["round"]

    def result(self) -> Dict[str, Any]:
        """The result of a completed federation; raises :class:`JobFailed` otherwise."""
        info = self.info()
        if info["status"] != "completed":
            raise JobFailed(self.id, info["status"], info.get("error") or "the federation has not completed")
        return info["result"]

    @property
    def trained_model(self) -> TrainedModel:
        """``{"modelId": ..., "guid": ...}`` of the final model; raises :class:`JobFailed` before."""
        return trained_model_of(self.result())

    def events(self, last_event_id: int = 0) -> Iterator[Event]:
        """The federation's events (``roundStarted``, ``clientJoined``, ``updateReceived``,
        ``clientDropped``, ``roundClosed``, ``warning``, ``status``), live, until it ends."""
        return self._client._follow(f"/v1/federations/{self.id}/events", self.id, last_event_id)

    def wait(self) -> Dict[str, Any]:
        """Blocks until the federation ends; returns its result or raises :class:`JobFailed`."""
        for event in self.events():
            if is_final(event):
                break
        return self.result()

    def invite(self, expires_in_secs: Optional[int] = None, max_uses: Optional[int] = None) -> Dict[str, Any]:
        """A join token for clients (``{"id", "token", ...}``; the token is shown once)."""
        body = {"expiresInSecs": expires_in_secs, "maxUses": max_uses}
        return self._client.request("POST", f"/v1/federations/{self.id}/invites", json=body).json()

    def cancel(self) -> None:
        """Cancels the federation."""
        self._client.request("POST", f"/v1/federations/{self.id}/cancel")


class Model:
    """A model stored on the server."""

    def __init__(self, client: Client, model_id: str, info: Dict[str, Any]) -> None:
        self._client = client
        self.model_id = model_id
        self.info = info

    def __repr__(self) -> str:
        return f"Model({self.model_id!r})"

    def predict(self, features: Any) -> Any:
        """Predicts on the server: ``features`` ``[rows, ...]`` (or one row), a numpy array or
        plain lists → ``[rows, outputs]`` class probabilities or values (a numpy array when
        numpy is installed, else lists)."""
        encoded, shape = features_payload(features)
        answer = self._client.request(
            "POST", f"/v1/models/{self.model_id}/predict", json={"features": encoded, "shape": shape}
        ).json()
        return outputs_array(answer)

    def download(self, path: str) -> str:
        """Writes the model's ``.kiln`` bytes to ``path`` (loads in the CLI and the npm package)."""
        data = self._client.request("GET", f"/v1/models/{self.model_id}").content
        with open(path, "wb") as f:
            f.write(data)
        return path
