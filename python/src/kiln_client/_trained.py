"""How a trained model is described to callers: ``{"modelId": ..., "guid": ...}``.

``guid`` is the hosted-training API's name for the model id (``trained_model["guid"]``); it is
kept beside ``modelId`` and always holds the same id."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, Mapping, Optional


class TrainedModel(dict):
    """``{"modelId": id, "guid": id}`` of a completed job's model."""

    def __init__(self, model_id: str) -> None:
        super().__init__(modelId=model_id, guid=model_id)

    @property
    def model_id(self) -> str:
        """The model id (what :meth:`~kiln_client.Client.preloaded_model` takes)."""
        return self["modelId"]


def trained_model_of(result: Mapping[str, Any]) -> TrainedModel:
    """The trained model a job's result (TrainRunInfo) describes."""
    return TrainedModel(result.get("modelId") or result["guid"])


class AsyncTrainedModel(TrainedModel):
    """A :class:`TrainedModel` that can also be awaited as ``await job.trained_model()``, the
    spelling earlier versions of :class:`~kiln_client.AsyncJob` documented."""

    def __call__(self) -> Awaitable["AsyncTrainedModel"]:
        async def itself() -> "AsyncTrainedModel":
            return self

        return itself()


class PendingTrainedModel:
    """``AsyncJob.trained_model`` before ``await job.wait_for_training()`` returned: reading a key
    says what to await first; ``await job.trained_model()`` asks the server."""

    def __init__(self, job_id: str, fetch: Callable[[], Awaitable[Dict[str, Any]]]) -> None:
        self._job_id = job_id
        self._fetch = fetch

    def __getitem__(self, key: str) -> Any:
        raise LookupError(
            f"the trained model of {self._job_id} is known once `await job.wait_for_training()` "
            f"has returned (or use `await job.trained_model()`)"
        )

    def get(self, key: str, default: Optional[Any] = None) -> Any:
        """Like ``dict.get``: ``default``, since nothing is known yet."""
        return default

    def __call__(self) -> Awaitable[AsyncTrainedModel]:
        async def fetched() -> AsyncTrainedModel:
            return AsyncTrainedModel(trained_model_of(await self._fetch())["modelId"])

        return fetched()

    def __repr__(self) -> str:
        return f"PendingTrainedModel({self._job_id!r})"


def no_job_yet() -> RuntimeError:
    """The error of a client-level ``status()`` / ``wait_for_training()`` / ``trained_model``
    before this client started a job."""
    return RuntimeError("this client has started no training job yet: call train(...) first")
