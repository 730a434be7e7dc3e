"""skysift: find satellite and aerial images by text, by image, and label them, in-process.

>>> import skysift, numpy as np, tempfile
>>> db = skysift.connect(tempfile.mkdtemp())
>>> col = db.create_collection("scenes", dim=3, schema={"class": "keyword"})
>>> col.add(np.eye(3, dtype=np.float32), metadata=[{"class": c} for c in ("Port", "Farm", "Forest")])
array([0, 1, 2], dtype=uint64)
>>> col.search(np.array([0.9, 0.1, 0.0], dtype=np.float32)).limit(1).to_list()[0]["class"]
'Port'

The main objects: :func:`connect` opens a :class:`Database`; :meth:`Database.collection`
gives a :class:`Collection`; :meth:`Collection.search` starts a :class:`Query`, chained with
``where``/``within``/``exclude``/``limit`` and ended with ``to_arrow``/``to_pandas``/
``to_geopandas``/``to_list``/``explain``. :class:`Encoder` encodes texts and images for your own
pipeline; :mod:`skysift.models` installs the demo model.
"""

from __future__ import annotations

from . import models
from ._native import (
    ClosedError,
    CorruptionError,
    Error,
    FilterError,
    LockedError,
    ModelError,
    ModelMismatchError,
    NotFoundError,
    SchemaError,
    __version__,
)
from ._api import Collection, Database, Encoder, ImportReport, connect
from ._query import Changes, Classified, Query

__all__ = [
    "connect",
    "Database",
    "Collection",
    "Query",
    "Classified",
    "Changes",
    "Encoder",
    "ImportReport",
    "models",
    "Error",
    "FilterError",
    "LockedError",
    "ModelMismatchError",
    "CorruptionError",
    "SchemaError",
    "NotFoundError",
    "ModelError",
    "ClosedError",
    "__version__",
]
