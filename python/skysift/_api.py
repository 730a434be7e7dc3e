"""Database, Collection and Encoder: the Python face of the engine (``skysift._native``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _native
from .models import ensure_runtime

PathLike = str | os.PathLike[str]

_FIELD_TYPES = ("keyword", "text", "integer", "float", "bool", "timestamp", "geo_bbox", "window", "blob")


def connect(path: PathLike, read_only: bool = False) -> Database:
    """Opens the database in ``path`` (created when missing, unless ``read_only``).

    Only one writer may hold a database: a second one raises :class:`skysift.LockedError` at
    once. A ``read_only=True`` handle (in any process) follows the writer with
    :meth:`Database.refresh`.
    """
    return Database(path, read_only=read_only)


def _as_matrix(vectors: Any, what: str = "vectors") -> np.ndarray:
    """A 2-D C-contiguous float32 array, read in place when it already is one.

    NumPy arrays of another dtype or layout are refused (converting silently would copy large
    arrays behind the caller's back); lists are converted once.
    """
    if isinstance(vectors, np.ndarray):
        if vectors.dtype != np.float32:
            raise _native.SchemaError(
                f"{what} is a {vectors.dtype} array; skysift reads float32 in place: pass "
                f"{what}.astype(numpy.float32) (nothing was written)")
        if not vectors.flags.c_contiguous:
            raise _native.SchemaError(
                f"{what} is not C-contiguous (a slice or a transpose?): pass numpy.ascontiguousarray({what}) "
                "(nothing was written)")
        arr = vectors
    else:
        arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise _native.SchemaError(f"{what} must be 2-D (rows x dim), not {arr.ndim}-D")
    return arr


def _ids(ids: Any, n: int) -> np.ndarray | None:
    if ids is None:
        return None
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise _native.SchemaError("ids must be 1-D")
    if arr.size and arr.dtype.kind not in "ui":
        raise _native.SchemaError(f"ids must be integers, not {arr.dtype}")
    if arr.size and arr.dtype.kind == "i" and arr.min() < 0:
        raise _native.SchemaError("ids must be non-negative")
    return np.ascontiguousarray(arr, dtype=np.uint64)


def _columns(metadata: Any, n: int) -> list[tuple[str, list[Any]]]:
    """Metadata as ``[(field, values)]``: a ``pyarrow.Table``, a pandas or GeoPandas DataFrame
    (the geometry becomes ``footprint``, its bounds in EPSG:4326), a dict of columns, or a list
    of dicts."""
    if metadata is None:
        return []
    mod = type(metadata).__module__
    if mod.startswith("pyarrow"):
        cols = metadata.to_pydict()
    elif mod.startswith("geopandas"):
        gdf = metadata
        if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
            gdf = gdf.to_crs(4326)
        geom = gdf.geometry
        cols = {c: gdf[c].tolist() for c in gdf.columns if c != geom.name}
        cols["footprint"] = [None if g is None or g.is_empty else list(g.bounds) for g in geom]
    elif mod.startswith("pandas"):
        cols = {c: metadata[c].tolist() for c in metadata.columns}
    elif isinstance(metadata, Mapping):
        cols = {k: list(v) for k, v in metadata.items()}
    elif isinstance(metadata, Sequence):
        keys: dict[str, None] = {}
        for row in metadata:
            if not isinstance(row, Mapping):
                raise _native.SchemaError("metadata rows must be dicts")
            keys.update(dict.fromkeys(row))
        cols = {k: [row.get(k) for row in metadata] for k in keys}
    else:
        raise _native.SchemaError(
            f"metadata must be a pyarrow.Table, a (Geo)DataFrame, a dict of columns or a list of dicts, "
            f"not {type(metadata).__name__}")
    for k, v in cols.items():
        if len(v) != n:
            raise _native.SchemaError(f"field {k!r} has {len(v)} values for {n} vectors; nothing was written")
    return [(k, _pythonic(v)) for k, v in cols.items()]


def _pythonic(values: list[Any]) -> list[Any]:
    """pandas' NaT and numpy scalars as Python values."""
    out = []
    for v in values:
        if v is None:
            out.append(None)
        elif type(v).__name__ == "NaTType":
            out.append(None)
        elif isinstance(v, np.generic):
            out.append(v.item())
        elif isinstance(v, np.ndarray):
            out.append(v.tolist())
        else:
            out.append(v)
    return out


def _date(x: Any, what: str) -> str:
    """A date for the engine's parser: strings pass as given; dates and datetimes (naive: UTC)
    as ISO 8601."""
    import datetime as dt

    if isinstance(x, str):
        return x
    if isinstance(x, dt.datetime):
        return (x if x.tzinfo is not None else x.replace(tzinfo=dt.timezone.utc)).isoformat()
    if isinstance(x, dt.date):
        return x.isoformat()
    raise ValueError(f"{what} must be a date (\"YYYY-MM-DD\", RFC 3339, datetime.date or datetime), not {x!r}")


class Database:
    """An open skysift database. Use :func:`connect`; a context manager closes it."""

    def __init__(self, path: PathLike, read_only: bool = False) -> None:
        self._db = _native.Database(os.fspath(path), read_only)

    @property
    def path(self) -> str:
        """The database directory."""
        return self._db.path

    @property
    def read_only(self) -> bool:
        """True for a read-only handle."""
        return self._db.read_only

    def collections(self) -> list[str]:
        """Names of the collections."""
        return self._db.collections()

    def create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: str = "cosine",
        schema: Mapping[str, str] | None = None,
        exist_ok: bool = False,
        model: PathLike | None = None,
    ) -> Collection:
        """Creates a collection and returns it.

        With ``dim``, it holds vectors of that dimension that you bring (``metric``: "cosine" or
        "ip"). Without ``dim`` it is a collection of imagery for ``model`` (the demo model by
        default): the dimension and the model's provenance come from the model, so text and image
        queries and :meth:`Collection.import_archive` work on it. ``schema`` maps field names to
        types: keyword, text, integer, float, bool, timestamp, geo_bbox, window, blob.
        """
        fields = list((schema or {}).items())
        for f, t in fields:
            if t not in _FIELD_TYPES:
                raise _native.SchemaError(f"field {f!r}: unknown type {t!r}; use one of {', '.join(_FIELD_TYPES)}")
        if dim is None:
            ensure_runtime()
            c = self._db.create_imagery_collection(name, None if model is None else os.fspath(model), fields, exist_ok)
        else:
            if model is not None:
                raise _native.SchemaError("give dim (vectors you bring) or model (imagery), not both")
            if int(dim) <= 0:
                raise _native.SchemaError(f"dim must be positive, not {dim}")
            c = self._db.create_collection(name, int(dim), metric, fields, [], exist_ok)
        return Collection(self, c)

    def collection(self, name: str) -> Collection:
        """The collection ``name`` (:class:`skysift.NotFoundError` when there is none)."""
        return Collection(self, self._db.collection(name))

    def __getitem__(self, name: str) -> Collection:
        return self.collection(name)

    def drop_collection(self, name: str) -> None:
        """Drops a collection and its files."""
        self._db.drop_collection(name)

    def info(self) -> dict[str, Any]:
        """Per collection: count, dim, metric, fields, segments, memory rows, params."""
        return self._db.info()

    def verify(self) -> dict[str, Any]:
        """Reads every byte and checks every checksum: ``{"ok": bool, "files": [...]}``."""
        return self._db.verify()

    def refresh(self) -> None:
        """Picks up what the writer committed since (read-only handles)."""
        self._db.refresh()

    def attach(self, collection: str, shards: Iterable[PathLike], upsert: bool = False) -> dict[str, Any]:
        """Attaches shard databases (same schema and model) to ``collection`` in one commit."""
        return self._db.attach(collection, [os.fspath(s) for s in shards], upsert)

    def close(self) -> None:
        """Closes the handle; the writer's lock is released when no collection uses it."""
        self._db.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"skysift.Database({self.path!r})"


class ImportReport:
    """What :meth:`Collection.import_archive` did: ``summary`` (dict) and ``entries`` (one dict
    per file with a status other than imported, plus schema lines)."""

    def __init__(self, summary: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        self.summary = summary
        self.entries = entries

    @property
    def clean(self) -> bool:
        """True when nothing was skipped, failed or interrupted."""
        by = self.summary.get("by_status", {})
        return not any(by.get(s, 0) for s in ("skipped", "failed", "interrupted")) and not self.summary.get(
            "interrupted")

    def to_pandas(self) -> Any:
        """The per-file entries as a DataFrame."""
        import pandas as pd

        return pd.DataFrame([e for e in self.entries if e.get("kind") == "entry"])

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]

    def __repr__(self) -> str:
        s = self.summary
        return (f"ImportReport(files={s.get('files')}, tiles_written={s.get('tiles_written')}, "
                f"tiles_reused={s.get('tiles_reused')}, by_status={s.get('by_status')})")


class Collection:
    """One collection: add, upsert, delete, search, import, label."""

    def __init__(self, db: Database, native: Any) -> None:
        self._dbh = db
        self._c = native

    @property
    def name(self) -> str:
        """The collection's name."""
        return self._c.name

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._c.schema()[0]

    @property
    def metric(self) -> str:
        """"cosine" or "ip"."""
        return self._c.schema()[1]

    @property
    def schema(self) -> dict[str, str]:
        """Field names and types (bookkeeping fields of imports included)."""
        return dict(self._c.schema()[2])

    @property
    def params(self) -> dict[str, str]:
        """Parameters recorded with the collection (model provenance, tiling)."""
        return dict(self._c.schema()[3])

    def add(self, vectors: Any, ids: Any = None, metadata: Any = None) -> np.ndarray:
        """Inserts records in one commit, durable when it returns; returns their ids.

        ``vectors``: a C-contiguous float32 array, rows x dim (read in place, not copied);
        ``ids``: unsigned ints (default: after the largest id in the collection); ``metadata``:
        a ``pyarrow.Table``, a pandas/GeoPandas DataFrame, a dict of columns or a list of dicts.
        An id already live raises :class:`skysift.SchemaError` and nothing is written.
        """
        return self._write(vectors, ids, metadata, upsert=False)

    def upsert(self, vectors: Any, ids: Any = None, metadata: Any = None) -> np.ndarray:
        """Like :meth:`add`, replacing records whose ids are live."""
        return self._write(vectors, ids, metadata, upsert=True)

    def _write(self, vectors: Any, ids: Any, metadata: Any, upsert: bool) -> np.ndarray:
        arr = _as_matrix(vectors)
        return self._c.add(arr, _ids(ids, len(arr)), _columns(metadata, len(arr)), upsert)

    def delete(self, ids: Iterable[int] | int | None = None, where: str | None = None) -> int:
        """Deletes records by id and/or filter in one commit; returns how many existed."""
        if ids is None and where is None:
            raise _native.SchemaError("delete() needs ids or where=...; use where=\"true\" ... to delete everything")
        if isinstance(ids, (int, np.integer)):
            ids = [int(ids)]
        return self._c.delete(None if ids is None else [int(i) for i in ids], where)

    def count(self, where: str | None = None) -> int:
        """Live records (passing ``where`` when given)."""
        return self._c.count(where)

    def __len__(self) -> int:
        return self.count()

    def ids(self, where: str | None = None) -> np.ndarray:
        """Ids of the live records (passing ``where``), ascending."""
        return self._c.ids(where)

    def get(self, id: int) -> dict[str, Any] | None:
        """The record's fields (``None`` when it is not live)."""
        return self._c.get(int(id))

    def vector(self, id: int) -> np.ndarray:
        """The record's stored vector."""
        return self._c.vector(int(id))

    def search(self, query: Any = None, *, like: int | None = None, lang: str | None = None,
               image: Any = None) -> Any:
        """Starts a query; chain ``.where()``, ``.within()``, ``.exclude()``, ``.limit()``...

        ``query``: a text (encoded with the collection's model, language detected or ``lang``), an
        image (a path, bytes, a PIL image or an HxWxC uint8 array), a vector, or a 2-D array of
        vectors (a batch: results carry ``query_index``); or ``like=ID`` for records like a stored
        one.
        """
        from ._query import Query

        return Query(self, query, like=like, lang=lang, image=image)

    def import_archive(
        self,
        path: PathLike,
        model: PathLike | None = None,
        device: str = "auto",
        tile: int = 512,
        overlap: int = 0,
        gsd: float | None = None,
        workers: int = 0,
        batch_size: int | None = None,
        commit_every: int = 1024,
        min_valid: float = 0.5,
        progress: bool | Any = True,
    ) -> ImportReport:
        """Imports a folder of imagery, as ``skysift import`` does (resumable: unchanged files are
        skipped, a rerun after a crash finishes the job).

        ``progress``: True shows a tqdm bar when tqdm is installed, else a plain line; a callable
        gets ``(files_done, files_total)``. Ctrl-C stops it after committing what was encoded and
        raises ``KeyboardInterrupt``.
        """
        ensure_runtime()
        cb = _progress(progress)
        try:
            summary, lines = self._c.import_archive(
                os.fspath(path), None if model is None else os.fspath(model), device, tile, overlap, gsd, workers,
                batch_size, commit_every, min_valid, cb)
        finally:
            if hasattr(cb, "close"):
                cb.close()
        return ImportReport(json.loads(summary), [json.loads(x) for x in lines])

    def label(self, labels: Sequence[str], top: int = 1, field: str | None = None,
              lang: str | None = None) -> list[tuple[int, list[tuple[str, float]]]]:
        """Zero-shot labels of every record: ``[(id, [(label, score)])]``, best first; with
        ``field``, each record's best label is stored in that keyword field."""
        ensure_runtime()
        return self._c.label(list(labels), top, field, lang, None, "auto")

    def classify(
        self,
        good: Iterable[int],
        bad: Iterable[int] = (),
        text: str | Any = None,
        min_score: float = 0.5,
        field: str | None = None,
        where: str | None = None,
        limit: int | None = None,
        negatives: int = 50,
        l2: float = 1.0,
        seed: int = 17,
        select: Sequence[str] | None = None,
    ) -> Any:
        """A few-shot classifier, as ``skysift classify`` runs it: L2-regularised logistic
        regression on the stored vectors of ``good`` and ``bad`` (random records of the collection
        make up the negatives to ``negatives``; ``text``, a text encoded by the collection's model
        or a vector of the collection's dimension, is the prior), then every record passing
        ``where`` is scored (streamed).

        Returns a :class:`skysift.Classified`: the records whose probability is at least
        ``min_score`` (0..1, default 0.5), best first (the best ``limit`` when given), with
        ``to_list``/``to_arrow``/``to_pandas``/``to_geopandas`` as a search's results. With
        ``field``, every scored record's probability is stored in that float field (added when
        missing), so that filters can use it: ``where="solar >= 0.9"``.
        """
        from ._query import Classified, _id_list

        prior = None
        if isinstance(text, str):
            ensure_runtime()
        elif text is not None:
            prior = [float(x) for x in np.asarray(text, dtype=np.float32).ravel()]
            text = None
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be an integer >= 1 or None, not {limit!r}")
        if isinstance(negatives, bool) or not isinstance(negatives, int) or negatives < 0:
            raise ValueError(f"negatives must be an integer >= 0, not {negatives!r}")
        out = self._c.classify(_id_list([good], "good"), _id_list([bad], "bad"), text, float(min_score), field,
                               where, limit, negatives, float(l2), int(seed),
                               None if select is None else list(select), False, None, "auto", prior=prior)
        return Classified(out, self)

    def change(
        self,
        query: str | Any,
        before: Any,
        after: Any,
        where: str | None = None,
        place: str = "grid",
        cell: float = 0.01,
        footprint_field: str = "footprint",
        time_field: str | None = None,
        loss: bool = False,
        limit: int | None = None,
        lang: str | None = None,
    ) -> Any:
        """Change over time, as ``skysift change`` ranks it: per place seen before ``before`` and
        at or after ``after`` (dates: ``"YYYY-MM-DD"``, RFC 3339, ``datetime.date`` or
        ``datetime.datetime``; naive times are UTC), the best score of each period for ``query``
        (a text through the collection's model, or a vector) and the difference, largest gain
        first (largest loss with ``loss=True``).

        ``place``: ``"grid"`` (cells of ``cell`` degrees holding the centre of ``footprint_field``)
        or a field name (``"scene"``: the same scene lineage). ``time_field``: default
        ``datetime``, else the only timestamp field. Returns a :class:`skysift.Changes` (``limit``
        places, all by default): ``to_list``, ``to_arrow``, ``to_pandas``, ``to_geojson``.
        """
        from ._query import Changes

        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be an integer >= 1 or None, not {limit!r}")
        b, a = _date(before, "before"), _date(after, "after")
        if isinstance(query, str):
            ensure_runtime()
            rows, gj, notes = self._c.change(b, a, query, None, where, place, float(cell), footprint_field,
                                             time_field, bool(loss), lang, None, "auto")
        else:
            v = np.ascontiguousarray(np.asarray(query, dtype=np.float32).ravel())
            rows, gj, notes = self._c.change(b, a, None, v, where, place, float(cell), footprint_field, time_field,
                                             bool(loss), lang, None, "auto")
        what = query if isinstance(query, str) else "of a vector"
        return Changes(rows, gj, notes, limit, self, f"{self.name}: change {what}")

    def heatmap(self, scene: str, text: str, out: PathLike | None = None, size: int = 512,
                legend: bool = True) -> np.ndarray:
        """Similarity of ``text`` over the tiles of ``scene`` (its source path as imported), as an
        HxWx3 uint8 image; written as a PNG to ``out`` when given."""
        ensure_runtime()
        return self._c.heatmap(scene, text, None if out is None else os.fspath(out), size, legend, None)

    def compact(self) -> None:
        """Merges segments and drops deleted rows."""
        self._c.compact()

    def flush(self) -> None:
        """Writes the in-memory rows to an indexed segment."""
        self._c.flush()

    def set_query_sample(self, vectors: Any) -> None:
        """Stores typical query vectors; the index calibrates its search on them."""
        self._c.set_query_sample(_as_matrix(vectors))

    def __repr__(self) -> str:
        return f"skysift.Collection({self.name!r})"


class _Plain:
    """A progress line on stderr for terminals without tqdm."""

    def __init__(self) -> None:
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        if done != self.last:
            self.last = done
            print(f"\rimport: {done}/{total} files", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.last >= 0:
            print(file=sys.stderr)


class _Tqdm:
    def __init__(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(unit="file", desc="import")

    def __call__(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _progress(progress: bool | Any) -> Any:
    if callable(progress):
        return progress
    if not progress:
        return None
    try:
        return _Tqdm()
    except ImportError:
        return _Plain()


class Encoder:
    """A model for your own pipeline: ``Encoder(model_dir=None, device="auto", threads=None)`` (the
    default model when ``None``; ``threads``: intra-op threads, ONNX Runtime's choice when
    ``None``); :meth:`encode_text` and :meth:`encode_images` return n x dim float32 arrays,
    L2-normalised."""

    def __init__(self, model_dir: PathLike | None = None, device: str = "auto", threads: int | None = None) -> None:
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be an integer >= 1 or None, not {threads!r}")
        ensure_runtime()
        self._e = _native.Encoder(None if model_dir is None else os.fspath(model_dir), device, threads)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self._e.dim

    @property
    def model_dir(self) -> str:
        """The model directory."""
        return self._e.model_dir

    @property
    def device(self) -> str:
        """Where it runs: "cpu" or "cuda"."""
        return self._e.device

    def encode_text(self, texts: Sequence[str] | str, lang: str | None = None, templates: str = "off") -> np.ndarray:
        """Embeddings of ``texts``; ``templates="ensemble"`` wraps each in the prompt templates of
        ``lang`` (detected when ``None``), as queries are."""
        if isinstance(texts, str):
            texts = [texts]
        return self._e.encode_text(list(texts), lang, templates)

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        """Embeddings of images: paths, bytes, PIL images or HxWx3 uint8 arrays."""
        return self._e.encode_images([_image_arg(i) for i in images])

    def __repr__(self) -> str:
        return repr(self._e)


def _image_arg(image: Any) -> Any:
    """A path, bytes or an HxWx3 uint8 array (PIL images and other arrays converted)."""
    if isinstance(image, (str, bytes, os.PathLike)):
        return os.fspath(image) if isinstance(image, os.PathLike) else image
    if type(image).__module__.startswith("PIL"):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[:, :, :3]
        if image.dtype != np.uint8:
            raise _native.SchemaError(f"an image array must be uint8 (0..255), not {image.dtype}")
        return np.ascontiguousarray(image)
    raise _native.SchemaError(f"not an image: {type(image).__name__}")


_ = Path  # re-exported names stay importable
