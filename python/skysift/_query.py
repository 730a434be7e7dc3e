"""Query: a chained search, ended by ``to_arrow``/``to_pandas``/``to_geopandas``/``to_list``/``explain``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _native
from ._api import _as_matrix, _image_arg
from .models import ensure_runtime

if TYPE_CHECKING:
    from ._api import Collection


def _ring(coords: Any) -> str:
    return "(" + ", ".join(f"{float(x)!r} {float(y)!r}" for x, y, *_ in coords) + ")"


def shape_filter(shape: Any, field: str = "footprint", predicate: str = "intersects") -> str:
    """A filter clause for ``shape``: a bbox ``(min_lon, min_lat, max_lon, max_lat)``, a GeoJSON
    geometry dict (Polygon, MultiPolygon, Point, or a Feature), or a shapely geometry."""
    if predicate not in ("intersects", "within"):
        raise ValueError(f"predicate must be 'intersects' or 'within', not {predicate!r}")
    if hasattr(shape, "__geo_interface__"):
        shape = shape.__geo_interface__
    if isinstance(shape, dict):
        if shape.get("type") == "Feature":
            shape = shape["geometry"]
        kind = shape.get("type")
        coords = shape.get("coordinates")
        if kind == "Polygon":
            return f"{predicate}({field}, polygon({_ring(coords[0])}))"
        if kind == "MultiPolygon":
            parts = [f"{predicate}({field}, polygon({_ring(p[0])}))" for p in coords]
            return "(" + " OR ".join(parts) + ")"
        if kind == "Point":
            x, y = coords[:2]
            return f"{predicate}({field}, bbox({float(x)!r}, {float(y)!r}, {float(x)!r}, {float(y)!r}))"
        raise ValueError(f"unsupported GeoJSON geometry {kind!r}: use a Polygon, MultiPolygon or Point")
    try:
        b = [float(v) for v in shape]
    except TypeError:
        raise ValueError(
            "within() takes a bbox (min_lon, min_lat, max_lon, max_lat), a GeoJSON dict or a shapely geometry"
        ) from None
    if len(b) != 4:
        raise ValueError(f"a bbox has 4 numbers (min_lon, min_lat, max_lon, max_lat), not {len(b)}")
    return f"{predicate}({field}, bbox({b[0]!r}, {b[1]!r}, {b[2]!r}, {b[3]!r}))"


_ARROW_TYPES = {
    "keyword": "string",
    "text": "string",
    "integer": "int64",
    "float": "float64",
    "bool": "bool_",
}


class Query:
    """A search being built. Every method returns the query, so calls chain::

        col.search("harbour with ships").where("year >= 2020").within(bbox).limit(20).to_pandas()
    """

    def __init__(self, col: Collection, query: Any = None, *, like: int | None = None, lang: str | None = None,
                 image: Any = None) -> None:
        self._col = col
        self._query = query
        self._like = like
        self._lang = lang
        self._image = image
        self._where: list[str] = []
        self._negatives: list[str] = []
        self._k = 10
        self._ef: int | None = None
        self._templates = "ensemble"
        self._select: list[str] | None = None
        self._thumbnails = False
        self._exact = False
        self._threads = 0
        given = sum(x is not None for x in (query, like, image))
        if given != 1:
            raise ValueError("search() takes one of: a query (text, vector, image path or array), like=ID, image=...")
        if isinstance(query, os.PathLike) or type(query).__module__.startswith("PIL"):
            self._image, self._query = query, None

    # -- chain ---------------------------------------------------------------------------------
    def where(self, expr: str) -> Query:
        """Only records passing ``expr`` (the filter language: ``class = 'Port' AND year >= 2020``)."""
        self._where.append(expr)
        return self

    def within(self, shape: Any, field: str = "footprint", predicate: str = "intersects") -> Query:
        """Only records whose ``field`` (default ``footprint``) intersects ``shape`` (or lies within
        it with ``predicate="within"``): a bbox, a GeoJSON geometry or a shapely geometry."""
        self._where.append(shape_filter(shape, field, predicate))
        return self

    def exclude(self, *texts: str) -> Query:
        """Steers a text query away from ``texts`` (negative prompts: "clouds", "haze")."""
        self._negatives.extend(texts)
        return self

    def limit(self, k: int) -> Query:
        """Results per query (default 10)."""
        self._k = int(k)
        return self

    def ef(self, n: int) -> Query:
        """Graph search breadth (higher: better recall, slower)."""
        self._ef = int(n)
        return self

    def templates(self, mode: str) -> Query:
        """Prompt templates for text: "ensemble" (default), "single" or "off"."""
        self._templates = mode
        return self

    def select(self, *fields: str) -> Query:
        """Only these metadata fields in the results (``select()`` for ids and scores only)."""
        self._select = list(fields)
        return self

    def with_thumbnails(self) -> Query:
        """Adds a ``thumbnail`` column (JPEG bytes, when the records have one)."""
        self._thumbnails = True
        return self

    def exact(self) -> Query:
        """Scans every row exactly instead of searching the graphs (vector queries)."""
        self._exact = True
        return self

    def threads(self, n: int) -> Query:
        """Threads for a batch of vector queries (default 0: every core; 1: this thread)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"threads must be an integer >= 0, not {n!r}")
        self._threads = n
        return self

    # -- running -------------------------------------------------------------------------------
    def _opts(self) -> dict[str, Any]:
        where = " AND ".join(f"({w})" for w in self._where) if self._where else None
        return {"k": self._k, "ef": self._ef, "where": where, "select": self._select,
                "thumbnails": self._thumbnails, "exact": self._exact, "threads": self._threads}

    def _vector(self) -> np.ndarray | None:
        """The query vector for image queries, None otherwise."""
        if self._image is None:
            return None
        ensure_runtime()
        arg = _image_arg(self._image)
        return self._col._c.encode_image(arg, None, "auto")

    def _run(self) -> dict[str, Any]:
        c = self._col._c
        opts = self._opts()
        if self._negatives and not isinstance(self._query, str):
            raise ValueError("exclude() applies to text queries")
        if self._like is not None:
            out = c.search_like(int(self._like), opts)
        elif self._image is not None:
            out = c.search_query_vector(self._vector(), opts)
        elif isinstance(self._query, str):
            ensure_runtime()
            out = c.search_text(self._query, opts, self._lang, self._negatives, self._templates, None, "auto")
        else:
            q = self._query
            batch = isinstance(q, np.ndarray) and q.ndim == 2
            out = c.search_vectors(_as_matrix(q, "query"), opts)
            out["batch"] = batch
        return out

    def to_list(self) -> list[dict[str, Any]]:
        """The results as dicts (``id``, ``score``, the fields; ``query_index`` for batches)."""
        out = self._run()
        ids, scores, qi = out["id"].tolist(), out["score"].tolist(), out["query_index"].tolist()
        fields = out["fields"]
        rows = []
        for i in range(len(ids)):
            row: dict[str, Any] = {}
            if out.get("batch"):
                row["query_index"] = qi[i]
            row["id"] = ids[i]
            row["score"] = scores[i]
            for name, ty, values in fields:
                row[name] = _python_value(ty, values[i])
            if "thumbnail" in out:
                row["thumbnail"] = out["thumbnail"][i]
            rows.append(row)
        return rows

    def to_arrow(self) -> Any:
        """The results as a ``pyarrow.Table`` (timestamps as UTC microseconds, footprints as
        4-float lists)."""
        import pyarrow as pa

        out = self._run()
        cols: dict[str, Any] = {}
        if out.get("batch"):
            cols["query_index"] = pa.array(out["query_index"], pa.uint32())
        cols["id"] = pa.array(out["id"], pa.uint64())
        cols["score"] = pa.array(out["score"], pa.float32())
        for name, ty, values in out["fields"]:
            cols[name] = _arrow_column(pa, ty, values)
        if "thumbnail" in out:
            cols["thumbnail"] = pa.array(out["thumbnail"], pa.binary())
        table = pa.table(cols)
        meta = {k: str(out[k]) for k in ("language",) if out.get(k) is not None}
        return table.replace_schema_metadata(meta) if meta else table

    def to_pandas(self) -> Any:
        """The results as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def to_geopandas(self) -> Any:
        """The results as a GeoDataFrame: each record's footprint as its geometry (EPSG:4326)."""
        import geopandas as gpd
        from shapely.geometry import box

        df = self.to_pandas()
        if "footprint" not in df.columns:
            raise _native.SchemaError("the results have no footprint field to draw: select('footprint', ...)")
        geom = [None if f is None else box(*f) for f in df.pop("footprint")]
        return gpd.GeoDataFrame(df, geometry=geom, crs="EPSG:4326")

    def explain(self) -> str:
        """The plan of the search, as ``--explain`` prints it."""
        c = self._col._c
        opts = self._opts()
        if self._like is not None:
            v = c.vector(int(self._like))
        elif self._image is not None:
            v = self._vector()
        elif isinstance(self._query, str):
            ensure_runtime()
            v = c.encode_text(self._query, self._lang, self._negatives, self._templates, None, "auto")
        else:
            m = _as_matrix(self._query, "query")
            v = np.ascontiguousarray(m[0])
        return c.explain(v, opts)

    def __iter__(self) -> Any:
        return iter(self.to_list())

    def __repr__(self) -> str:
        return f"skysift.Query({self._col.name!r}, k={self._k}, where={self._opts()['where']!r})"


def _python_value(ty: str, v: Any) -> Any:
    if v is None:
        return None
    if ty == "timestamp":
        import datetime as dt

        return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=v)
    return v


def _arrow_column(pa: Any, ty: str, values: list[Any]) -> Any:
    if ty in _ARROW_TYPES:
        return pa.array(values, getattr(pa, _ARROW_TYPES[ty])())
    if ty == "timestamp":
        return pa.array(values, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    if ty == "geo_bbox":
        return pa.array(values, pa.list_(pa.float64(), 4))
    if ty == "window":
        return pa.array(values, pa.list_(pa.uint32(), 4))
    return pa.array(values, pa.binary())
