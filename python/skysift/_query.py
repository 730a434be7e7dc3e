"""Query: a chained search, ended by ``to_arrow``/``to_pandas``/``to_geopandas``/``to_list``/``explain``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
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


def _table(out: dict[str, Any]) -> Any:
    """Result columns from the engine as a ``pyarrow.Table``."""
    import pyarrow as pa

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
    meta = {k: str(out[k]) for k in ("language", "next_cursor") if out.get(k) is not None}
    return table.replace_schema_metadata(meta) if meta else table


class _Results:
    """The ways out of a result: ``to_list``, ``to_arrow``, ``to_pandas``, ``to_geopandas``."""

    def _run(self) -> dict[str, Any]:
        raise NotImplementedError

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
        return _table(self._run())

    def _gallery_of(self) -> tuple[Any, str]:
        """The native collection the results come from, and the gallery's title."""
        raise NotImplementedError

    def gallery(self, dir: str | os.PathLike[str] = ".", title: str | None = None) -> str:
        """Writes the results as one self-contained HTML page into ``dir`` (created when missing):
        thumbnails, scores, key fields and a map of their footprints, the page the REPL's
        ``\\show`` and ``--gallery`` write. Returns the page's path."""
        native, default = self._gallery_of()
        out = self._run()
        ids = [int(i) for i in out["id"].tolist()]
        scores = [float(x) for x in out["score"].tolist()]
        return native.gallery(title or default, ids, scores, os.fspath(dir))

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


class Query(_Results):
    """A search being built. Every method returns the query, so calls chain::

        col.search("harbour with ships").where("year >= 2020").within(bbox).limit(20).to_pandas()

    Analyst options (issue 17) chain the same way: ``.good(ids)``, ``.bad(ids)``, ``.rocchio()``,
    ``.min_score()``, ``.offset()``, ``.group_by()``, ``.diverse()``, ``.merge_tiles()``.
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
        # Analyst options (issue 17), mapped as `skysift query` maps its flags.
        self._good: list[int] = []
        self._bad: list[int] = []
        self._rocchio = (1.0, 0.75, 0.15)
        self._min_score: float | None = None
        self._paged = False
        self._offset = 0
        self._group_by: str | None = None
        self._per_group = 1
        self._diverse: float | None = None
        self._merge_tiles = False
        self._cursor: str | None = None
        # Set by pages(): the analyst path, whose results carry the next page's cursor.
        self._by_page = False
        given = sum(x is not None for x in (query, like, image))
        if given > 1:
            raise ValueError("search() takes one of: a query (text, vector, image path or array), like=ID, image=...")
        self._examples_only = given == 0
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
        self._paged = True
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

    # -- analyst options -----------------------------------------------------------------------
    def good(self, *ids: int | Iterable[int]) -> Query:
        """Relevance feedback: the query moves towards these records (Rocchio; ``q' = alpha q +
        beta mean(good) - gamma mean(bad)``, normalised). Without a query (``col.search()``) it
        starts from the mean of the good records. A record marked bad before is moved."""
        for i in _id_list(ids, "good"):
            if i in self._bad:
                self._bad.remove(i)
            if i not in self._good:
                self._good.append(i)
        return self

    def bad(self, *ids: int | Iterable[int]) -> Query:
        """Relevance feedback: the query moves away from these records (see :meth:`good`)."""
        for i in _id_list(ids, "bad"):
            if i in self._good:
                self._good.remove(i)
            if i not in self._bad:
                self._bad.append(i)
        return self

    def rocchio(self, alpha: float = 1.0, beta: float = 0.75, gamma: float = 0.15) -> Query:
        """Rocchio weights of the query, the good mean and the bad mean (default SMART's
        ``1.0, 0.75, 0.15``, as ``--rocchio``); each a finite number >= 0."""
        w = tuple(float(x) for x in (alpha, beta, gamma))
        if not all(np.isfinite(x) and x >= 0 for x in w):
            raise ValueError(f"Rocchio weights must be finite numbers >= 0, not {(alpha, beta, gamma)!r}")
        self._rocchio = w  # type: ignore[assignment]
        return self

    def min_score(self, score: float) -> Query:
        """Every match scoring at least ``score`` (exact scan or growing graph search), not only
        ``limit``; with :meth:`limit` or :meth:`offset` given, pages of ``limit`` of them."""
        s = float(score)
        if not np.isfinite(s):
            raise ValueError(f"min_score must be a finite number, not {score!r}")
        self._min_score = s
        return self

    def offset(self, n: int) -> Query:
        """Skips the first ``n`` results (paging: ``offset(0)``, ``offset(k)``, ... with
        ``limit(k)`` join into the full ranking); with :meth:`group_by`, skips ``n`` groups."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"offset must be an integer >= 0, not {n!r}")
        self._offset = int(n)
        self._paged = True
        return self

    def group_by(self, field: str, per_group: int = 1) -> Query:
        """At most ``per_group`` results per value of ``field`` (e.g. ``scene``: one tile per
        scene); ``limit`` then counts groups."""
        if isinstance(per_group, bool) or not isinstance(per_group, (int, np.integer)) or per_group < 1:
            raise ValueError(f"per_group must be an integer >= 1, not {per_group!r}")
        self._group_by = str(field)
        self._per_group = int(per_group)
        return self

    def diverse(self, lam: float = 0.5) -> Query:
        """Diversifies the results by maximal marginal relevance: ``lam`` 1 is the plain ranking,
        0 only diversity."""
        lam = float(lam)
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"diverse takes a lambda from 0 to 1, not {lam}")
        self._diverse = lam
        return self

    def merge_tiles(self) -> Query:
        """Joins hits whose footprints touch into places: one row per place (its best tile's
        fields, the place's ``footprint``) with ``tiles``, ``area_km2`` and ``tile_ids``
        (comma-separated ids, best first)."""
        self._merge_tiles = True
        return self

    def _analyst(self) -> bool:
        return bool(self._good or self._bad or self._min_score is not None or self._offset or self._group_by
                    or self._diverse is not None or self._merge_tiles or self._cursor is not None or self._by_page)

    # -- running -------------------------------------------------------------------------------
    def _opts(self) -> dict[str, Any]:
        where = " AND ".join(f"({w})" for w in self._where) if self._where else None
        picked = [x for x in ("group_by", "diverse", "merge_tiles")
                  if getattr(self, "_" + x) not in (None, False)]
        if len(picked) > 1:
            raise ValueError(f"pick one of group_by(), diverse() and merge_tiles(), not {' and '.join(picked)}")
        return {"k": self._k, "ef": self._ef, "where": where, "select": self._select,
                "thumbnails": self._thumbnails, "exact": self._exact, "threads": self._threads,
                "good": self._good, "bad": self._bad, "rocchio": self._rocchio, "min_score": self._min_score,
                "all": not self._paged, "offset": self._offset, "group_by": self._group_by,
                "per_group": self._per_group, "diverse": self._diverse, "merge_tiles": self._merge_tiles,
                "cursor": self._cursor}

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
        if self._examples_only:
            if not self._good:
                raise ValueError(
                    "search() takes one of: a query (text, vector, image path or array), like=ID, image=..., "
                    "or no query and .good(ids)")
            out = c.search_examples(opts)
        elif self._like is not None:
            out = c.search_like(int(self._like), opts)
        elif self._image is not None:
            out = c.search_query_vector(self._vector(), opts)
        elif isinstance(self._query, str):
            ensure_runtime()
            out = c.search_text(self._query, opts, self._lang, self._negatives, self._templates, None, "auto")
        else:
            q = self._query
            batch = isinstance(q, np.ndarray) and q.ndim == 2
            m = _as_matrix(q, "query")
            # One query with a huge limit takes the same path: the engine serves it by the exact scan.
            if self._analyst() or (not batch and self._k > 1_000_000):
                if batch:
                    raise ValueError("good/bad/min_score/offset/group_by/diverse/merge_tiles apply to one query, "
                                     "not a batch: search one vector at a time")
                out = c.search_query_vector(np.ascontiguousarray(m[0]), opts)
            else:
                out = c.search_vectors(m, opts)
                out["batch"] = batch
        return out

    def after(self, cursor: str) -> Query:
        """Resumes the ranking after the page whose results carried ``cursor`` (the
        ``next_cursor`` in the schema metadata of a page from :meth:`pages`, or of ``to_arrow()``
        of a text query or one with analyst options), as ``skysift query --cursor``."""
        if not isinstance(cursor, str) or not cursor:
            raise ValueError(f"after() takes the next_cursor text of an earlier page, not {cursor!r}")
        self._cursor = cursor
        self._paged = True
        return self

    def pages(self) -> Iterator[Any]:
        """The ranking page by page (``limit`` results each, default 10) as ``pyarrow`` tables,
        each resuming after the one before by its cursor, until a page comes back short."""
        import copy

        q = copy.copy(self)
        q._paged = True
        q._by_page = True
        while True:
            out = q._run()
            yield _table(out)
            nxt = out.get("next_cursor")
            if not nxt:
                return
            q._cursor = nxt

    def stream(self, batch: int = 8192) -> Iterator[Any]:
        """Every match at or above ``min_score`` (which it needs), as ``pyarrow`` tables of at most
        ``batch`` rows, in storage order (not ranked), at constant memory whatever the number of
        matches: what ``skysift query --min-score S --all`` streams. ``where``, ``select`` and
        ``with_thumbnails`` apply; ranking options (``limit``, ``offset``, ``good``/``bad``,
        ``group_by``, ``diverse``, ``merge_tiles``) do not and are refused. Stopping early (``break``)
        stops the scan.
        """
        if self._min_score is None:
            raise ValueError("stream() yields every match at or above a score: set min_score(S) first")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive number of rows, not {batch!r}")
        if self._paged or self._good or self._bad or self._group_by or self._diverse is not None or self._merge_tiles:
            raise ValueError("stream() returns every match in storage order: drop limit/offset/good/bad/group_by/"
                             "diverse/merge_tiles (use to_arrow() for a ranked page)")
        if self._examples_only:
            raise ValueError("stream() needs a query (text, vector, image or like=ID)")
        v = self._query_vector()
        it = self._col._c.stream_above(v, self._opts(), batch)
        try:
            for out in it:
                yield _table(out)
        finally:
            it.close()

    def _query_vector(self, first_of_batch: bool = False) -> np.ndarray:
        """The one query vector (text encoded, image encoded, a record's vector for ``like``); of
        a batch, the first with ``first_of_batch`` (what ``explain`` shows), else refused."""
        c = self._col._c
        if self._like is not None:
            return c.vector(int(self._like))
        if self._image is not None:
            return self._vector()
        if isinstance(self._query, str):
            ensure_runtime()
            return c.encode_text(self._query, self._lang, self._negatives, self._templates, None, "auto")
        m = _as_matrix(self._query, "query")
        if m.shape[0] != 1 and not first_of_batch:
            raise ValueError("stream() takes one query vector, not a batch")
        return np.ascontiguousarray(m[0])

    def explain(self) -> str:
        """The plan of the search, as ``--explain`` prints it (the engine's search of the query;
        ``min_score``, ``offset``, ``group_by``, ``diverse`` and ``merge_tiles`` work on its
        results and are not in the plan)."""
        if self._examples_only or self._good or self._bad:
            raise ValueError("explain() shows the plan of a query as given: drop good()/bad() to explain it")
        return self._col._c.explain(self._query_vector(first_of_batch=True), self._opts())

    def __iter__(self) -> Any:
        return iter(self.to_list())

    def _gallery_of(self) -> tuple[Any, str]:
        what = self._query if isinstance(self._query, str) else f"like {self._like}" if self._like is not None else \
            "vector query"
        return self._col._c, f"{self._col.name}: {what}"

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


def _id_list(ids: Any, what: str) -> list[int]:
    """Record ids from ints and iterables of ints (``good(1, 2)``, ``good([1, 2])``, arrays)."""
    out: list[int] = []
    for x in ids:
        if isinstance(x, (int, np.integer)):
            items = [x]
        elif isinstance(x, np.ndarray):
            items = x.ravel().tolist()
        else:
            items = list(x)
        for i in items:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0:
                raise ValueError(f"{what}: record ids are integers >= 0, not {i!r}")
            out.append(int(i))
    return out


class Classified(_Results):
    """What :meth:`Collection.classify` scored: the records at or above ``min_score``, best
    first (scores are probabilities), with ``classifier`` (a line describing it), ``scored``
    (records scored), ``above`` (records at or above ``min_score``) and ``stored`` (records
    whose score was written to ``field``, or None)."""

    def __init__(self, out: dict[str, Any], col: Any = None) -> None:
        self._out = out
        self._col = col
        self.classifier: str = out["classifier"]
        self.scored: int = out["scored"]
        self.above: int = out["above"]
        self.stored: int | None = out["stored"]

    def _run(self) -> dict[str, Any]:
        return self._out

    def __len__(self) -> int:
        return len(self._out["id"])

    def __iter__(self) -> Any:
        return iter(self.to_list())

    def _gallery_of(self) -> tuple[Any, str]:
        if self._col is None:
            raise ValueError("this result does not know its collection")
        return self._col._c, f"{self._col.name}: classifier ({self.classifier})"

    def __repr__(self) -> str:
        return f"skysift.Classified(scored={self.scored}, above={self.above}, stored={self.stored})"


_CHANGE_COLUMNS = ("place", "bbox", "delta", "score_before", "score_after", "before_id", "after_id", "rows_before",
                   "rows_after")


class Changes:
    """What :meth:`Collection.change` found: per place seen in both periods, best first, a dict
    with ``rank``, ``place``, ``bbox``, ``delta`` (after - before), ``score_before``,
    ``score_after``, ``before_id``, ``after_id``, ``rows_before``, ``rows_after``; ``notes``;
    ``places_in_both`` (all of them, before ``limit``)."""

    def __init__(self, rows: list[tuple[Any, ...]], geojson: str, notes: list[str], limit: int | None,
                 col: Any = None, title: str = "change") -> None:
        self._col = col
        self._title = title
        self.places_in_both = len(rows)
        shown = rows if limit is None else rows[:limit]
        self._places = [{"rank": i + 1, **dict(zip(_CHANGE_COLUMNS, r))} for i, r in enumerate(shown)]
        for p in self._places:
            if p["bbox"] is not None:
                p["bbox"] = list(p["bbox"])
        self._geojson = geojson
        self._limit = limit
        self.notes = notes

    def gallery(self, dir: str | os.PathLike[str] = ".", title: str | None = None) -> str:
        """Writes the places as one HTML page into ``dir``: each place's after record, ranked, its
        score the change (after - before), with thumbnails and the map. Returns the page's path."""
        if self._col is None:
            raise ValueError("this result does not know its collection")
        ids = [int(p["after_id"]) for p in self._places]
        deltas = [float(p["delta"]) for p in self._places]
        return self._col._c.gallery(title or self._title, ids, deltas, os.fspath(dir))

    def to_list(self) -> list[dict[str, Any]]:
        """The places as dicts, best first."""
        return [dict(p) for p in self._places]

    def to_arrow(self) -> Any:
        """The places as a ``pyarrow.Table`` (``bbox`` a 4-float list)."""
        import pyarrow as pa

        cols = {k: [p[k] for p in self._places] for k in ("rank", *_CHANGE_COLUMNS)}
        types = {"rank": pa.uint32(), "place": pa.string(), "bbox": pa.list_(pa.float64(), 4),
                 "delta": pa.float32(), "score_before": pa.float32(), "score_after": pa.float32(),
                 "before_id": pa.uint64(), "after_id": pa.uint64(), "rows_before": pa.uint32(),
                 "rows_after": pa.uint32()}
        return pa.table({k: pa.array(v, types[k]) for k, v in cols.items()})

    def to_pandas(self) -> Any:
        """The places as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def to_geojson(self) -> dict[str, Any]:
        """The places as a GeoJSON ``FeatureCollection`` (each cell or place box a Polygon), as
        ``skysift change --format geojson`` writes it."""
        import json

        gj = json.loads(self._geojson)
        if self._limit is not None:
            gj["features"] = gj["features"][: self._limit]
        return gj

    def __len__(self) -> int:
        return len(self._places)

    def __iter__(self) -> Any:
        return iter(self.to_list())

    def __getitem__(self, i: int) -> dict[str, Any]:
        return dict(self._places[i])

    def __repr__(self) -> str:
        return f"skysift.Changes(places_in_both={self.places_in_both}, shown={len(self)})"
