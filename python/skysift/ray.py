"""skysift on Ray: import an archive with many workers, search many shards as one.

Needs the optional dependency ``ray[data]==2.60.0`` (``pip install 'skysift[ray]'``).

:func:`import_archive` is a two-phase import. Ray Data spreads the archive's images over an actor
pool (``map_batches`` with a class that loads skysift's encoder once per actor, on CUDA when the
actor has a GPU); each task runs skysift's own decode -> tile -> encode code on its share of the
files and writes a sealed, indexed shard database under ``staging``; when every task is done the
driver attaches all shards to the collection in one manifest commit (``Database.attach``): nothing
is visible before, everything after. Resumable like ``skysift import``: files already in the
collection (same source path and size) are skipped; a task Ray retries rewrites its own shard (the
shard's name is derived from its files), so it never yields a second copy; a driver that dies
between staging and attach leaves the collection as it was, and a rerun finds the finished shards
and attaches them.

:class:`ShardedCollection` keeps one Ray actor per shard database (read-only handles), fans a
query out and merges the top k as one collection would; shards whose footprint box cannot meet a
``within`` shape are skipped.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _native, models
from ._api import PathLike, connect

__all__ = ["import_archive", "ShardedCollection", "plan"]


def _stac_files(doc: dict[str, Any], base: Path) -> list[Path]:
    items = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc]
    out = []
    for item in items or []:
        for asset in (item.get("assets") or {}).values():
            href = asset.get("href", "")
            if href.startswith("file://"):
                href = href[7:]
            if "://" in href:
                raise _native.Error(f"asset {href!r} is not a local file: stage remote assets to shared storage first")
            p = (base / href).resolve()
            if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff"):
                out.append(p)
    return out


def plan(sources: PathLike | Sequence[PathLike] | dict[str, Any]) -> tuple[Path, list[tuple[str, int]],
                                                                           list[tuple[str, str]]]:
    """``(root, [(image relative to root, bytes)], [(metadata field, type)])`` for ``sources``:
    a folder, a list of image paths (their common folder is the root), or a STAC
    ItemCollection / Item (a dict, or the path of its JSON file) with local assets."""
    only: set[str] | None = None
    if isinstance(sources, dict):
        files = _stac_files(sources, Path.cwd())
    elif isinstance(sources, (str, os.PathLike)) and Path(sources).is_file() and str(sources).endswith(".json"):
        p = Path(sources)
        files = _stac_files(json.loads(p.read_text()), p.parent)
    elif isinstance(sources, (str, os.PathLike)):
        files = None
        root = Path(sources).resolve()
    else:
        files = [Path(s).resolve() for s in sources]
    if files is not None:
        if not files:
            raise _native.Error("no image files in the sources")
        root = Path(os.path.commonpath([str(f.parent) for f in files]))
        only = {f.relative_to(root).as_posix() for f in files}
    if not root.is_dir():
        raise _native.Error(f"{root} is not a folder")
    images, fields = _native.archive_plan(str(root))
    if only is not None:
        images = [(r, s) for r, s in images if r in only]
    return root, images, fields


def _key(files: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(files).encode()).hexdigest()[:20]


class _ShardWriter:
    """One actor of the pool: loads the encoder once, writes one shard per task."""

    def __init__(self, root: str, staging: str, collection: str, model: str, fields: list, device: str,
                 options: dict[str, Any]) -> None:
        models.ensure_runtime()
        self.root, self.staging, self.collection = root, Path(staging), collection
        self.model, self.fields, self.device, self.options = model, [tuple(f) for f in fields], device, options
        # One intra-op thread per CPU Ray gave this actor: ONNX Runtime's default (a thread per
        # core of the machine) in every actor would oversubscribe the cores.
        import ray

        threads = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
        self.encoder = _native.Encoder(model, device, threads)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        shards, counts = [], []
        for key, files_json in zip(batch["key"], batch["files"]):
            files = json.loads(str(files_json))
            shard = self.staging / f"shard-{key}"
            done = shard / "DONE"
            if not done.exists():
                shutil.rmtree(shard, ignore_errors=True)  # what a killed attempt left
                db = connect(shard / "db")
                db._db.create_imagery_collection(self.collection, self.model, self.fields, False, True)
                col = db._db.collection(self.collection)
                o = self.options
                col.import_archive(self.root, self.model, self.device, o["tile"], o["overlap"], o["gsd"], 1,
                                   o["batch_size"], o["commit_every"], o["min_valid"], None, self.encoder, files)
                col.flush()
                db.close()
                _test_kill_once("SKYSIFT_RAY_TEST_KILL_WORKER")
                tmp = shard / "DONE.tmp"
                tmp.write_text(json.dumps(files))
                tmp.replace(done)
            shards.append(str(shard / "db"))
            counts.append(len(files))
        return {"shard": shards, "files": counts}


def _test_kill_once(var: str) -> None:
    """Tests set ``var`` to a marker path: the first process to get here creates the marker and
    dies by SIGKILL (a real crash, at the worst moment); later ones go on."""
    marker = os.environ.get(var)
    if marker:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def import_archive(
    db_path: PathLike,
    sources: PathLike | Sequence[PathLike] | dict[str, Any],
    collection: str = "images",
    model: PathLike | None = None,
    num_workers: int = 2,
    num_gpus_per_worker: float = 0,
    batch_size: int | None = None,
    staging: PathLike | None = None,
    files_per_task: int | None = None,
    tile: int = 512,
    overlap: int = 0,
    gsd: float | None = None,
    commit_every: int = 1024,
    min_valid: float = 0.5,
) -> dict[str, Any]:
    """Imports ``sources`` into ``collection`` of the database at ``db_path`` with ``num_workers``
    Ray actors (``ray.init()`` first, or one is started on this machine). Returns a summary:
    files found, skipped as already in, imported, shards attached, records added.

    ``staging`` (default: ``<db_path>.staging`` beside the database) must be storage every worker
    and the driver see (a shared file system on a cluster). Each actor takes one CPU, and
    ``num_gpus_per_worker`` GPUs (its encoder then runs on CUDA).
    """
    import ray

    if num_workers < 1:
        raise ValueError("num_workers must be at least 1")
    models.ensure_runtime()
    model_dir = Path(model).resolve() if model is not None else Path(models.default_model_dir() or "")
    if not (model_dir / "manifest.json").is_file():
        raise _native.ModelError(
            "no model: pass model=DIR or install the demo model (skysift.models.install_demo())")
    root, images, fields = plan(sources)
    db = connect(db_path)
    try:
        own = set(_native.import_field_names())
        if collection in db.collections():
            c = db.collection(collection)
            if c.count() == 0 and c.params.get("python.made_by") == "create_collection":
                # Made empty by create_collection: made again with the archive's fields, as the
                # first local import does.
                names = {n for n, _ in fields}
                extra = [(n, t) for n, t in c.schema.items() if n not in own and n not in names]
                db.drop_collection(collection)
                db._db.create_imagery_collection(collection, str(model_dir), list(fields) + extra, False, True)
        else:
            db._db.create_imagery_collection(collection, str(model_dir), list(fields), False, True)
        col = db.collection(collection)
        # Shards get the collection's fields, in its order: attach needs the same schema (metadata
        # fields the collection lacks are dropped, as an import into it drops them).
        fields = [(n, t) for n, t in col.schema.items() if n not in own]
        _, sources_in = col._c.column("source")
        _, sizes_in = col._c.column("file_size")
        present = set(zip(sources_in, sizes_in))
        todo = [r for r, size in images if (r, size) not in present]
        summary: dict[str, Any] = {"files": len(images), "already_in": len(images) - len(todo), "imported": 0,
                                   "shards": 0, "records_added": 0}
        if not todo:
            return summary
        stage = Path(staging) if staging is not None else Path(str(Path(db_path).resolve()) + ".staging")
        stage.mkdir(parents=True, exist_ok=True)
        per = files_per_task or max(1, math.ceil(len(todo) / (num_workers * 4)))
        chunks = [todo[i:i + per] for i in range(0, len(todo), per)]
        items = [{"key": _key(c), "files": json.dumps(c)} for c in chunks]
        if not ray.is_initialized():
            ray.init()
        device = "cuda" if num_gpus_per_worker else "cpu"
        options = {"tile": tile, "overlap": overlap, "gsd": gsd, "batch_size": batch_size,
                   "commit_every": commit_every, "min_valid": min_valid}
        before = col.count()
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        out = ds.map_batches(
            _ShardWriter,
            fn_constructor_kwargs={"root": str(root), "staging": str(stage), "collection": collection,
                                   "model": str(model_dir), "fields": [list(f) for f in fields],
                                   "device": device, "options": options},
            batch_size=1,
            concurrency=num_workers,
            num_cpus=1,
            num_gpus=num_gpus_per_worker,
            # Ray Data restarts a dead actor and retries its task without limit by default
            # (max_restarts=-1, max_task_retries=-1), which the kill -9 tests rely on.
        ).take_all()
        shards = sorted({r["shard"] for r in out})
        _test_kill_once("SKYSIFT_RAY_TEST_KILL_DRIVER")
        db.attach(collection, shards, upsert=True)
        for s in shards:
            shutil.rmtree(Path(s).parent, ignore_errors=True)
        summary.update(imported=len(todo), shards=len(shards), records_added=col.count() - before)
        return summary
    finally:
        db.close()


class _ShardReader:
    """One actor per shard database: a read-only handle and its footprint summary."""

    def __init__(self, path: str, collection: str) -> None:
        self.db = connect(path, read_only=True)
        self.col = self.db.collection(collection)
        self.bbox = None
        if "footprint" in self.col.schema:
            boxes = [b for b in self.col._c.column("footprint")[1] if b is not None]
            if boxes:
                a = np.array(boxes)
                self.bbox = (a[:, 0].min(), a[:, 1].min(), a[:, 2].max(), a[:, 3].max())

    def summary(self) -> dict[str, Any]:
        return {"count": self.col.count(), "bbox": self.bbox}

    def refresh(self) -> None:
        self.db.refresh()

    def search(self, vectors: np.ndarray, k: int, where: str | None, ef: int | None, exact: bool) -> Any:
        q = self.col.search(vectors).limit(k)
        if where:
            q = q.where(where)
        if ef:
            q = q.ef(ef)
        if exact:
            q = q.exact()
        return q.to_arrow()


def _boxes_meet(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


class ShardedCollection:
    """Search several shard databases as one collection, with one Ray actor per shard.

    ``paths``: shard database directories (same model and schema); ``collection``: the
    collection's name in each. Text queries are encoded once, here, with the shards' model.
    """

    def __init__(self, paths: Iterable[PathLike], collection: str = "images", model: PathLike | None = None) -> None:
        import ray

        if not ray.is_initialized():
            ray.init()
        self.paths = [str(Path(p).resolve()) for p in paths]
        if not self.paths:
            raise ValueError("no shards")
        reader = ray.remote(num_cpus=0)(_ShardReader)
        self.actors = [reader.remote(p, collection) for p in self.paths]
        self.summaries = ray.get([a.summary.remote() for a in self.actors])
        self._model = model
        self._encoder: Any = None

    def count(self) -> int:
        """Records over all shards."""
        return sum(s["count"] for s in self.summaries)

    def refresh(self) -> None:
        """Each shard follows its writer."""
        import ray

        ray.get([a.refresh.remote() for a in self.actors])
        self.summaries = ray.get([a.summary.remote() for a in self.actors])

    def _vector(self, query: Any, lang: str | None) -> np.ndarray:
        if isinstance(query, str):
            if self._encoder is None:
                from ._api import Encoder

                self._encoder = Encoder(self._model, device="cpu")
            return self._encoder.encode_text([query], lang=lang, templates="ensemble")
        v = np.asarray(query, dtype=np.float32)
        return np.ascontiguousarray(v.reshape(1, -1) if v.ndim == 1 else v)

    def search(self, query: Any, k: int = 10, where: str | None = None, within: Any = None, ef: int | None = None,
               exact: bool = False, lang: str | None = None) -> Any:
        """The top ``k`` over every shard (a ``pyarrow.Table`` like ``Query.to_arrow``; with a 2-D
        batch of vectors it carries ``query_index``). Shards whose footprint box cannot meet
        ``within`` (a bbox) are not asked."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import ray

        from ._query import shape_filter

        vectors = self._vector(query, lang)
        clauses = [c for c in (where, shape_filter(within) if within is not None else None) if c]
        expr = " AND ".join(f"({c})" for c in clauses) if clauses else None
        asked = []
        for actor, s in zip(self.actors, self.summaries):
            if within is not None and not isinstance(within, dict) and not hasattr(within, "__geo_interface__"):
                if s["bbox"] is None or not _boxes_meet(s["bbox"], [float(x) for x in within]):
                    continue
            asked.append(actor)
        self.last_asked = len(asked)
        parts = ray.get([a.search.remote(vectors, k, expr, ef, exact) for a in asked])
        parts = [p for p in parts if p.num_rows]
        if not parts:
            return pa.table({"id": pa.array([], pa.uint64()), "score": pa.array([], pa.float32())})
        t = pa.concat_tables(parts, promote_options="permissive")
        batch = "query_index" in t.column_names
        keys = [("query_index", "ascending")] if batch else []
        t = t.sort_by(keys + [("score", "descending"), ("id", "ascending")])
        if not batch:
            return t.slice(0, k)
        qi = t.column("query_index").to_numpy()
        rank = np.zeros(len(qi), dtype=np.int64)
        for i in range(1, len(qi)):
            rank[i] = rank[i - 1] + 1 if qi[i] == qi[i - 1] else 0
        return t.filter(pc.less(pa.array(rank), k))
