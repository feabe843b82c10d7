"""Python client of the Kiln job server (``kiln serve``).

>>> from kiln_client import Client
>>> kiln = Client("http://127.0.0.1:7878", token="...")
>>> job = kiln.train({"training": {"num_passes": 20}}, data="iris.csv")
>>> job.attach()                      # live progress; Ctrl-C detaches
>>> model = kiln.preloaded_model(job.trained_model["guid"])    # "guid" and "modelId": the same id
>>> model.predict([[5.1, 3.5, 1.4, 0.2]])
"""

from ._trained import TrainedModel
from .aio import AsyncClient, AsyncFederation, AsyncJob, AsyncModel
from .client import Client, Federation, Job, Model
from .errors import JobFailed, KilnError

__all__ = [
    "AsyncClient",
    "AsyncFederation",
    "AsyncJob",
    "AsyncModel",
    "Client",
    "Federation",
    "Job",
    "JobFailed",
    "KilnError",
    "Model",
    "TrainedModel",
]
