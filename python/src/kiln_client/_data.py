"""Turning what a caller hands to ``train`` and ``predict`` into request bodies, and answers back
into values. numpy and pandas are optional: plain (nested) lists work without them."""

from __future__ import annotations

import base64
import json
import os
import struct
from typing import Any, Dict, List, Mapping, Sequence, Tuple

#: (body, content type, query) of an upload.
Upload = Tuple[bytes, str, Dict[str, str]]


def _numpy() -> Any:
    """numpy when it is installed, else ``None``."""
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def flatten(value: Any) -> Tuple[List[float], List[int]]:
    """A nested list of numbers as its row-major values and its shape; every row must have the
    same length (a ragged list is a ``TypeError`` naming where)."""
    if not _is_sequence(value):
        return [float(value)], []
    if len(value) == 0:
        return [], [0]
    parts = [flatten(item) for item in value]
    inner = parts[0][1]
    for index, (_, shape) in enumerate(parts):
        if shape != inner:
            raise TypeError(f"ragged list: item {index} has shape {shape}, item 0 has {inner}")
    return [x for values, _ in parts for x in values], [len(value), *inner]


def _csv_query(config: Any) -> Dict[str, str]:
    data = config.get("data", {}) if isinstance(config, Mapping) else {}
    query: Dict[str, str] = {}
    if "header" in data:
        query["header"] = "true" if data["header"] else "false"
    if data.get("label_column") is not None:
        query["label_column"] = str(data["label_column"])
    return query


def _tensor_entry(values: Any, shape: List[int], integer_labels: bool = False) -> Tuple[str, bytes]:
    """(safetensors dtype, little-endian bytes) of one tensor given as a numpy array or a list."""
    np = _numpy()
    if np is not None and isinstance(values, np.ndarray):
        if values.dtype == np.uint8 and not integer_labels:
            return "U8", np.ascontiguousarray(values).tobytes()
        if integer_labels and np.issubdtype(values.dtype, np.integer):
            return "I32", np.ascontiguousarray(values.astype("<i4")).tobytes()
        return "F32", np.ascontiguousarray(values.astype("<f4")).tobytes()
    if integer_labels and all(isinstance(x, int) for x in _leaves(values)):
        return "I32", struct.pack(f"<{len(values)}i", *values)
    flat, _ = flatten(values)
    return "F32", struct.pack(f"<{len(flat)}f", *flat)


def _leaves(value: Any) -> List[Any]:
    if not _is_sequence(value):
        return [value]
    return [leaf for item in value for leaf in _leaves(item)]


def _shape(values: Any) -> List[int]:
    np = _numpy()
    if np is not None and isinstance(values, np.ndarray):
        return list(values.shape)
    return flatten(values)[1]


def _safetensors(features: Any, labels: Any) -> bytes:
    """``features`` ``[samples, ...]`` and ``labels`` ``[samples]`` (numpy arrays or lists) as
    a safetensors file."""
    np = _numpy()
    if np is not None:
        features, labels = np.asarray(features), np.asarray(labels)
    f_shape, l_shape = _shape(features), _shape(labels)
    if len(f_shape) < 2:
        raise TypeError(f"features must be [samples, ...], got shape {tuple(f_shape)}")
    if l_shape != [f_shape[0]]:
        raise TypeError(f"labels must have shape ({f_shape[0]},), got {tuple(l_shape)}")
    f_type, f_bytes = _tensor_entry(features, f_shape)
    l_type, l_bytes = _tensor_entry(labels, l_shape, integer_labels=True)
    header = json.dumps(
        {
            "features": {"dtype": f_type, "shape": f_shape, "data_offsets": [0, len(f_bytes)]},
            "labels": {
                "dtype": l_type,
                "shape": l_shape,
                "data_offsets": [len(f_bytes), len(f_bytes) + len(l_bytes)],
            },
        }
    ).encode()
    return struct.pack("<Q", len(header)) + header + f_bytes + l_bytes


def to_upload(config: Any, data: Any) -> Upload:
    """``data``: a CSV file path, a pandas DataFrame, ``(features, labels)`` arrays or lists, or
    ``{"features": ..., "labels": ...}``."""
    if isinstance(data, (str, os.PathLike)):
        with open(data, "rb") as f:
            return f.read(), "text/csv", _csv_query(config)
    if hasattr(data, "to_csv") and hasattr(data, "columns"):
        query = _csv_query(config)
        query.setdefault("header", "true")
        return data.to_csv(index=False).encode(), "text/csv", query
    if isinstance(data, Mapping) and "features" in data and "labels" in data:
        return _safetensors(data["features"], data["labels"]), "application/octet-stream", {}
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return _safetensors(data[0], data[1]), "application/octet-stream", {}
    raise TypeError(
        "data must be a CSV path, a pandas DataFrame, (features, labels) arrays or lists, or "
        '{"features": ..., "labels": ...}'
    )


def with_training(config: Any, training: Mapping[str, Any]) -> Any:
    """``config`` with keyword training parameters (``num_passes=10, batch_size=4, ...``) merged
    into its ``training`` section; a keyword wins over the same key in ``config``."""
    if not training:
        return config
    if config is None:
        config = {}
    elif isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            raise TypeError(
                "keyword training parameters need the config as a dict (or JSON text), not YAML text"
            ) from None
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, YAML or JSON text, got {type(config).__name__}")
    merged = dict(config.get("training") or {})
    merged.update(training)
    return {**dict(config), "training": merged}


def remote_config(config: Any, has_dataset: bool) -> Any:
    """The config sent with uploaded data: its source becomes the upload (``inline``)."""
    if not has_dataset or not isinstance(config, Mapping):
        return config
    data = {k: v for k, v in dict(config.get("data") or {}).items() if k not in ("label_column", "header")}
    data["source"] = "inline"
    return {**dict(config), "data": data}


def features_payload(features: Any) -> Tuple[str, list]:
    """Features as base64 of little-endian f32, and their shape ``[rows, ...]`` (one row may be
    given alone)."""
    np = _numpy()
    if np is not None:
        array = np.asarray(features, dtype="<f4")
        if array.ndim == 1:
            array = array.reshape(1, -1)
        return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode(), list(array.shape)
    flat, shape = flatten(features)
    if len(shape) == 1:
        shape = [1, shape[0]]
    return base64.b64encode(struct.pack(f"<{len(flat)}f", *flat)).decode(), shape


def _nest(values: List[float], shape: List[int]) -> Any:
    if len(shape) <= 1:
        return list(values)
    step = len(values) // shape[0] if shape[0] else 0
    return [_nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def outputs_array(answer: Mapping[str, Any]) -> Any:
    """The ``{outputs, shape}`` answer of predict: a numpy array when numpy is installed, else
    nested lists ``[rows][outputs]``."""
    np = _numpy()
    if np is not None:
        return np.asarray(answer["outputs"], dtype=np.float32).reshape(answer["shape"])
    return _nest([float(x) for x in answer["outputs"]], list(answer["shape"]))


class Page(list):
    """One page of a list endpoint: a list, with ``next_cursor`` — pass it as ``after`` for the
    next page (``None`` on the last page)."""

    next_cursor: "str | None" = None


def page_params(
    status: Any = None, tag: Any = None, limit: Any = None, after: Any = None, order: Any = None
) -> Dict[str, Any]:
    """The query of a list request, without the values not given."""
    given = {"status": status, "tag": tag, "limit": limit, "after": after, "order": order}
    return {k: v for k, v in given.items() if v is not None}


def federation_body(config: Any, rounds: int, clients_per_round: int, settings: Dict[str, Any]) -> Dict[str, Any]:
    """The ``POST /v1/federations`` body: the API's fields, given in snake_case as keywords."""
    body: Dict[str, Any] = {"config": config, "rounds": rounds, "clientsPerRound": clients_per_round}
    for key, value in settings.items():
        head, *rest = key.split("_")
        body[head + "".join(part.title() for part in rest)] = value
    return body
