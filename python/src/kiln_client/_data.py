"""Turning the data a caller hands to ``train`` into a dataset upload."""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Dict, Mapping, Tuple

#: (body, content type, query) of an upload.
Upload = Tuple[bytes, str, Dict[str, str]]


def _csv_query(config: Any) -> Dict[str, str]:
    data = config.get("data", {}) if isinstance(config, Mapping) else {}
    query: Dict[str, str] = {}
    if "header" in data:
        query["header"] = "true" if data["header"] else "false"
    if data.get("label_column") is not None:
        query["label_column"] = str(data["label_column"])
    return query


def _safetensors(features: Any, labels: Any) -> bytes:
    import numpy as np

    features = np.asarray(features)
    labels = np.asarray(labels)
    if features.ndim < 2:
        raise TypeError(f"features must be [samples, ...], got shape {features.shape}")
    if labels.shape != (features.shape[0],):
        raise TypeError(f"labels must have shape ({features.shape[0]},), got {labels.shape}")
    if features.dtype == np.uint8:
        f_type = "U8"
    else:
        features = features.astype("<f4")
        f_type = "F32"
    if np.issubdtype(labels.dtype, np.integer):
        labels, l_type = labels.astype("<i4"), "I32"
    else:
        labels, l_type = labels.astype("<f4"), "F32"
    f_bytes = np.ascontiguousarray(features).tobytes()
    l_bytes = np.ascontiguousarray(labels).tobytes()
    header = json.dumps(
        {
            "features": {"dtype": f_type, "shape": list(features.shape), "data_offsets": [0, len(f_bytes)]},
            "labels": {
                "dtype": l_type,
                "shape": [int(labels.shape[0])],
                "data_offsets": [len(f_bytes), len(f_bytes) + len(l_bytes)],
            },
        }
    ).encode()
    return struct.pack("<Q", len(header)) + header + f_bytes + l_bytes


def to_upload(config: Any, data: Any) -> Upload:
    """``data``: a CSV file path, a pandas DataFrame, ``(features, labels)`` arrays or
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
        "data must be a CSV path, a pandas DataFrame, (features, labels) arrays or "
        '{"features": ..., "labels": ...}'
    )


def remote_config(config: Any, has_dataset: bool) -> Any:
    """The config sent with uploaded data: its source becomes the upload (``inline``)."""
    if not has_dataset or not isinstance(config, Mapping):
        return config
    data = {k: v for k, v in dict(config.get("data") or {}).items() if k not in ("label_column", "header")}
    data["source"] = "inline"
    return {**dict(config), "data": data}


def features_payload(features: Any) -> Tuple[str, list]:
    """Features as base64 of little-endian f32, and their shape ``[rows, ...]``."""
    import base64

    import numpy as np

    array = np.asarray(features, dtype="<f4")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode(), list(array.shape)


def outputs_array(answer: Mapping[str, Any]) -> Any:
    """The ``{outputs, shape}`` answer of predict as a numpy array."""
    import numpy as np

    return np.asarray(answer["outputs"], dtype=np.float32).reshape(answer["shape"])
