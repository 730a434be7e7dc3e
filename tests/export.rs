//! Export (issue 18 item 1): `skysift export` to `GeoParquet` with vectors and a STAC Collection,
//! `skysift query --format geojson|geoparquet|csv|jsonl`, and third-party readers (`DuckDB`,
//! `GeoPandas`) on the files.

use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use skysift::schema::{FieldType, Metric, Value};
use skysift::{CollectionSpec, Db, NewRecord};

const DIM: usize = 16;
const ROWS: u64 = 300;
/// A fingerprint in the provenance params (64 hex characters); no encoder is loaded here.
const FINGERPRINT: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

fn skysift(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_skysift")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn vector_of(id: u64, dim: usize) -> Vec<f32> {
    crate::rng::Rng(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1).centred_vec(dim)
}

/// The footprint of record `id`: a small box somewhere on Earth (every 7th record has none).
fn footprint(id: u64) -> Option<[f64; 4]> {
    (!id.is_multiple_of(7)).then(|| {
        let lon = -170.0 + (id as f64 * 1.37) % 340.0;
        let lat = -80.0 + (id as f64 * 0.91) % 160.0;
        [lon, lat, lon + 0.25, lat + 0.125]
    })
}

/// A cosine collection with every field type an import writes, and an encoder provenance.
fn build(dir: &Path) -> PathBuf {
    build_with(dir, DIM, true)
}

/// [`build`] with `dim`-dimensional vectors, with or without the provenance params.
fn build_with(dir: &Path, dim: usize, provenance: bool) -> PathBuf {
    let path = dir.join("db");
    let db = Db::open(&path).unwrap();
    let mut spec = CollectionSpec::new(dim as u32, Metric::Cosine)
        .field("class", FieldType::Keyword)
        .field("note", FieldType::Text)
        .field("year", FieldType::Integer)
        .field("cloud", FieldType::Float)
        .field("clear", FieldType::Bool)
        .field("datetime", FieldType::Timestamp)
        .field("footprint", FieldType::GeoBbox)
        .field("scene_footprint", FieldType::GeoBbox);
    if provenance {
        spec.params.extend([
            ("encoder.model_id".to_owned(), "test-model".to_owned()),
            ("encoder.fingerprint".to_owned(), FINGERPRINT.to_owned()),
            ("encoder.dim".to_owned(), dim.to_string()),
            ("encoder.preprocessing".to_owned(), "resize 224".to_owned()),
        ]);
    }
    db.create_collection("scenes", spec).unwrap();
    let mut tx = db.begin_write("scenes").unwrap();
    for id in 1..=ROWS {
        let mut r = NewRecord::new(id * 10, vector_of(id, dim))
            .with("class", Value::Keyword(["Port", "Farmland", "Desert"][(id % 3) as usize].into()))
            .with("note", Value::Text(format!("scene \"{id}\", tile,\nline two")))
            .with("year", Value::Integer(2015 + (id % 6) as i64))
            .with("clear", Value::Bool(id % 2 == 0))
            .with("datetime", Value::Timestamp(1_600_000_000_000_000 + id as i64 * 86_400_000_000))
            .with("source", Value::Text(format!("archive/{id}.tif")))
            .with("scene", Value::Keyword(format!("scene-{}", id / 10)))
            .with("window", Value::Window([id as u32, 2, 256, 256]));
        if id % 5 != 0 {
            r = r.with("cloud", Value::Float(id as f64 / 8.0));
        }
        if let Some(b) = footprint(id) {
            r = r.with("footprint", Value::GeoBbox(b)).with("scene_footprint", Value::GeoBbox(b));
        }
        tx.insert(r).unwrap();
    }
    tx.commit().unwrap();
    // Half the rows in a sealed segment, half in memory: the export reads both.
    db.flush("scenes").unwrap();
    let mut tx = db.begin_write("scenes").unwrap();
    tx.delete(20).unwrap();
    tx.commit().unwrap();
    path
}

fn read_parquet(path: &Path) -> (Vec<RecordBatch>, Vec<(String, String)>) {
    let f = std::fs::File::open(path).unwrap();
    let b = ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
    let kv: Vec<(String, String)> = b
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| kv.iter().map(|k| (k.key.clone(), k.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default();
    (b.build().unwrap().map(Result::unwrap).collect(), kv)
}

/// Twice the signed area of a ring (shoelace): positive when counter-clockwise.
fn signed_area2(ring: &[[f64; 2]]) -> f64 {
    ring.windows(2).map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1]).sum()
}

/// The ring of a WKB polygon (little-endian, one ring).
fn wkb_ring(w: &[u8]) -> Vec<[f64; 2]> {
    assert_eq!(w[0], 1, "little-endian");
    assert_eq!(u32::from_le_bytes(w[1..5].try_into().unwrap()), 3, "polygon");
    assert_eq!(u32::from_le_bytes(w[5..9].try_into().unwrap()), 1, "one ring");
    let n = u32::from_le_bytes(w[9..13].try_into().unwrap()) as usize;
    (0..n)
        .map(|i| {
            let at = 13 + i * 16;
            [
                f64::from_le_bytes(w[at..at + 8].try_into().unwrap()),
                f64::from_le_bytes(w[at + 8..at + 16].try_into().unwrap()),
            ]
        })
        .collect()
}

fn ring_bbox(ring: &[[f64; 2]]) -> [f64; 4] {
    let xs = ring.iter().map(|p| p[0]);
    let ys = ring.iter().map(|p| p[1]);
    [
        xs.clone().fold(f64::INFINITY, f64::min),
        ys.clone().fold(f64::INFINITY, f64::min),
        xs.fold(f64::NEG_INFINITY, f64::max),
        ys.fold(f64::NEG_INFINITY, f64::max),
    ]
}

#[test]
fn export_geoparquet_has_every_row_vector_field_and_footprint_and_a_stac_collection() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = build(dir.path());
    let out = dir.path().join("scenes.parquet");
    let (code, stdout, err) = skysift(&[
        "export",
        db_path.to_str().unwrap(),
        "scenes",
        "--format",
        "geoparquet",
        "--with-vectors",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains(&format!("exported {} records", ROWS - 1)), "{stdout}");

    let db = Db::builder(&db_path).read_only(true).open().unwrap();
    let col = db.snapshot().collection("scenes").unwrap();
    let (batches, kv) = read_parquet(&out);
    let mut seen = 0u64;
    for b in &batches {
        let ids = b.column_by_name("id").unwrap().as_primitive::<UInt64Type>();
        let vectors = b.column_by_name("vector").unwrap().as_fixed_size_list();
        assert_eq!(vectors.value_length(), DIM as i32);
        let geometry = b.column_by_name("geometry").unwrap().as_binary::<i32>();
        let class = b.column_by_name("class").unwrap().as_string::<i32>();
        let source = b.column_by_name("source").unwrap().as_string::<i32>();
        let cloud = b.column_by_name("cloud").unwrap().as_primitive::<arrow_array::types::Float64Type>();
        for i in 0..b.num_rows() {
            let id = ids.value(i);
            let stored = col.get(id).unwrap().unwrap_or_else(|| panic!("exported id {id} is not live"));
            let v = vectors.value(i);
            let v = v.as_primitive::<Float32Type>().values();
            let bits: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
            let want: Vec<u32> = stored.vector.iter().map(|x| x.to_bits()).collect();
            assert_eq!(bits, want, "vector of {id} bit for bit");
            let field = |n: &str| stored.fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            assert_eq!(Some(Value::Keyword(class.value(i).into())), field("class"));
            assert_eq!(Some(Value::Text(source.value(i).into())), field("source"));
            assert_eq!(cloud.is_valid(i).then(|| Value::Float(cloud.value(i))), field("cloud"), "null stays null");
            match field("footprint") {
                Some(Value::GeoBbox(bb)) => {
                    let ring = wkb_ring(geometry.value(i));
                    assert_eq!(ring.len(), 5);
                    assert_eq!(ring[0], ring[4], "closed");
                    assert!(signed_area2(&ring) > 0.0, "counter-clockwise");
                    assert_eq!(ring_bbox(&ring), bb, "lon/lat order");
                }
                _ => assert!(geometry.is_null(i), "no footprint, null geometry ({id})"),
            }
            seen += 1;
        }
    }
    assert_eq!(seen, ROWS - 1, "every live record once, the deleted one left out");

    let geo: serde_json::Value = serde_json::from_str(&kv.iter().find(|(k, _)| k == "geo").unwrap().1).unwrap();
    assert_eq!(geo["version"], "1.1.0");
    assert_eq!(geo["primary_column"], "geometry");
    assert_eq!(geo["columns"]["geometry"]["encoding"], "WKB");
    assert!(geo["columns"]["geometry"].get("crs").is_none(), "CRS omitted: OGC:CRS84");
    assert_eq!(geo["columns"]["geometry"]["covering"]["bbox"]["xmin"], serde_json::json!(["bbox", "xmin"]));

    let stac: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("scenes.stac.json")).unwrap()).unwrap();
    assert_eq!(stac["type"], "Collection");
    assert_eq!(stac["emb:model_id"], "test-model");
    assert_eq!(stac["emb:fingerprint"], FINGERPRINT);
    assert_eq!(stac["emb:dimensions"], DIM);
    assert_eq!(stac["emb:quantization"], "int8");
    assert_eq!(stac["emb:column"], "vector");
    assert_eq!(stac["assets"]["data"]["href"], "scenes.parquet");
    let bbox = stac["extent"]["spatial"]["bbox"][0].as_array().unwrap();
    assert!(bbox[0].as_f64().unwrap() >= -180.0 && bbox[2].as_f64().unwrap() <= 180.0);
    assert!(stac["extent"]["temporal"]["interval"][0][0].as_str().unwrap().starts_with("2020-09-"));

    // --where: only the passing rows.
    let sub = dir.path().join("ports.parquet");
    let (code, stdout, err) = skysift(&[
        "export",
        db_path.to_str().unwrap(),
        "scenes",
        "--where",
        "class = 'Port'",
        "-o",
        sub.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{err}");
    let (batches, _) = read_parquet(&sub);
    let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(n as u64, col.count_where("class = 'Port'").unwrap());
    assert!(batches[0].column_by_name("vector").is_none(), "no vectors without --with-vectors");
}

#[test]
fn query_geojson_follows_rfc_7946() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = build(dir.path());
    let out = dir.path().join("hits.geojson");
    let (code, stdout, err) = skysift(&[
        "query",
        db_path.to_str().unwrap(),
        "--like",
        "30",
        "-k",
        "20",
        "--format",
        "geojson",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{err}");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(j["type"], "FeatureCollection");
    assert!(j.get("crs").is_none(), "RFC 7946: no crs member");
    let features = j["features"].as_array().unwrap();
    assert_eq!(features.len(), 20);
    let mut with_geometry = 0;
    for (i, f) in features.iter().enumerate() {
        assert_eq!(f["type"], "Feature");
        let id = f["id"].as_u64().unwrap();
        assert_eq!(f["properties"]["id"], id);
        assert_eq!(f["properties"]["rank"], i + 1);
        assert!(f["properties"]["score"].is_number());
        assert_eq!(f["properties"]["source"], format!("archive/{}.tif", id / 10));
        assert!(f["properties"].get("footprint").is_none(), "the footprint is the geometry");
        match footprint(id / 10) {
            Some(bb) => {
                assert_eq!(f["geometry"]["type"], "Polygon");
                let ring: Vec<[f64; 2]> = serde_json::from_value(f["geometry"]["coordinates"][0].clone()).unwrap();
                assert_eq!(ring.first(), ring.last(), "closed ring");
                assert!(signed_area2(&ring) > 0.0, "exterior ring counter-clockwise");
                let got = ring_bbox(&ring);
                // serde_json parses floats to within an ulp; the Parquet test checks the bits.
                assert!(got.iter().zip(bb).all(|(a, b)| (a - b).abs() < 1e-9), "[lon, lat] order: {got:?} {bb:?}");
                assert!(ring.iter().all(|p| (-180.0..=180.0).contains(&p[0]) && (-90.0..=90.0).contains(&p[1])));
                with_geometry += 1;
            }
            None => assert!(f["geometry"].is_null()),
        }
    }
    assert!(with_geometry > 10, "{with_geometry}");
    assert_eq!(features[0]["id"], 30, "the record itself ranks first");
}

#[test]
fn query_csv_jsonl_and_geoparquet_hold_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = build(dir.path());
    let db_s = db_path.to_str().unwrap();
    let (code, table, err) = skysift(&["query", db_s, "--like", "50", "-k", "7", "--json"]);
    assert_eq!(code, 0, "{err}");
    let want: Vec<u64> = serde_json::from_str::<serde_json::Value>(&table).unwrap()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(want.len(), 7);

    let (code, jsonl, err) = skysift(&["query", db_s, "--like", "50", "-k", "7", "--format", "jsonl"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.iter().map(|r| r["id"].as_u64().unwrap()).collect::<Vec<_>>(), want);
    assert!(rows[0]["fields"]["class"].is_string() && rows[0]["geometry"]["type"] == "Polygon");

    let (code, csv, err) = skysift(&["query", db_s, "--like", "50", "-k", "7", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let header = csv.lines().next().unwrap();
    assert!(header.starts_with("id,rank,score,class,note,") && header.ends_with("footprint_wkt"), "{header}");
    assert!(csv.contains("\"scene \"\"5\"\", tile,\nline two\""), "quoted cell with quotes, comma and newline");
    assert!(csv.contains("POLYGON(("), "{csv}");

    let out = dir.path().join("hits.parquet");
    let (code, _, err) = skysift(&["query", db_s, "--like", "50", "-k", "7", "--format", "geoparquet"]);
    assert_eq!(code, 1);
    assert!(err.contains("--output"), "{err}");
    let (code, _, err) =
        skysift(&["query", db_s, "--like", "50", "-k", "7", "--format", "geoparquet", "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (batches, _) = read_parquet(&out);
    let ids: Vec<u64> = batches
        .iter()
        .flat_map(|b| b.column_by_name("id").unwrap().as_primitive::<UInt64Type>().values().to_vec())
        .collect();
    assert_eq!(ids, want);
    let score = batches[0].column_by_name("score").unwrap().as_primitive::<Float32Type>();
    assert!(score.values().windows(2).all(|w| w[0] >= w[1]), "best first");

    let (code, _, err) = skysift(&["query", db_s, "--like", "50", "--format", "shapefile"]);
    assert_eq!(code, 1);
    assert!(err.contains("geojson, geoparquet, csv or jsonl"), "{err}");
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `DuckDB` and `GeoPandas` read the exported `GeoParquet` (with `.venv/bin/python` from
/// `scripts/test.sh`, which installs `python/requirements-test.txt`; says `not run` without it).
#[test]
fn duckdb_and_geopandas_read_the_exported_geoparquet() {
    let python = repo().join(".venv/bin/python");
    if !python.exists() {
        eprintln!("not run: {} is missing (scripts/test.sh installs it with duckdb and geopandas)", python.display());
        return;
    }
    let probe = Command::new(&python).args(["-c", "import duckdb, geopandas, shapely"]).output().unwrap();
    if !probe.status.success() {
        eprintln!(
            "not run: {} lacks duckdb or geopandas ({}); install python/requirements-test.txt",
            python.display(),
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db_path = build(dir.path());
    let out = dir.path().join("scenes.parquet");
    let (code, stdout, err) =
        skysift(&["export", db_path.to_str().unwrap(), "scenes", "--with-vectors", "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{err}");
    let script = r#"
import json, sys
import duckdb, geopandas, shapely
path = sys.argv[1]
con = duckdb.connect()
n, ids, dim, ports = con.execute(
    "SELECT count(*), sum(id), max(len(vector)), count(*) FILTER (WHERE class = 'Port') FROM read_parquet(?)", [path]
).fetchone()
first = con.execute("SELECT CAST(datetime AS VARCHAR) FROM read_parquet(?) ORDER BY id LIMIT 1", [path]).fetchone()[0]
df = geopandas.read_parquet(path)
assert df.crs is not None and (df.crs.to_string() == "OGC:CRS84" or df.crs.to_epsg() == 4326), df.crs
rings_ccw = all(g.exterior.is_ccw for g in df.geometry.dropna())
print(json.dumps({
    "duckdb_rows": n, "duckdb_id_sum": int(ids), "duckdb_dim": dim, "duckdb_ports": ports,
    "duckdb_first_datetime": str(first),
    "geopandas_rows": len(df), "geopandas_geometries": int(df.geometry.notna().sum()),
    "geopandas_bounds": [float(x) for x in df.total_bounds], "rings_ccw": rings_ccw,
    "geopandas_valid": bool(df.geometry.dropna().is_valid.all()),
}))
"#;
    let r = Command::new(&python).args(["-c", script, out.to_str().unwrap()]).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let live: Vec<u64> = (1..=ROWS).filter(|i| *i != 2).collect();
    assert_eq!(j["duckdb_rows"], live.len());
    assert_eq!(j["duckdb_id_sum"], live.iter().map(|i| i * 10).sum::<u64>());
    assert_eq!(j["duckdb_dim"], DIM);
    assert_eq!(j["duckdb_ports"], live.iter().filter(|i| *i % 3 == 0).count());
    assert!(j["duckdb_first_datetime"].as_str().unwrap().starts_with("2020-09-14"), "{j}");
    assert_eq!(j["geopandas_rows"], live.len());
    assert_eq!(j["geopandas_geometries"], live.iter().filter(|i| footprint(**i).is_some()).count());
    assert_eq!(j["rings_ccw"], true);
    assert_eq!(j["geopandas_valid"], true);
    let b: Vec<f64> = serde_json::from_value(j["geopandas_bounds"].clone()).unwrap();
    let want = live.iter().filter_map(|i| footprint(*i)).fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |a, f| {
        [a[0].min(f[0]), a[1].min(f[1]), a[2].max(f[2]), a[3].max(f[3])]
    });
    assert_eq!(b, want);
}

/// Records of a collection by id: vector bits and fields sorted by name.
fn records(db: &Path, collection: &str) -> std::collections::BTreeMap<u64, (Vec<u32>, Vec<(String, Value)>)> {
    let db = Db::builder(db).read_only(true).open().unwrap();
    let col = db.snapshot().collection(collection).unwrap();
    col.ids()
        .unwrap()
        .into_iter()
        .map(|id| {
            let r = col.get(id).unwrap().unwrap();
            let mut f = r.fields;
            f.sort_by(|a, b| a.0.cmp(&b.0));
            (id, (r.vector.iter().map(|x| x.to_bits()).collect(), f))
        })
        .collect()
}

#[test]
fn export_then_load_from_gives_the_same_ids_vectors_fields_and_footprints() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = build(dir.path());
    let out = dir.path().join("scenes.parquet");
    let (code, stdout, err) =
        skysift(&["export", db_path.to_str().unwrap(), "scenes", "--with-vectors", "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{err}");
    let copy = dir.path().join("copy");
    let load = |extra: &[&str]| {
        let mut args = vec!["load", copy.to_str().unwrap(), "scenes", "--from", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        skysift(&args)
    };
    // Batches of 64 rows gathered into segments of at least 100 (the bulk path writes a segment
    // per --flush-rows, without the WAL).
    let (code, stdout, err) = load(&["--batch-size", "64", "--flush-rows", "100"]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("from model \"test-model\""), "{stdout}");
    let segments = |p: &Path| Db::builder(p).read_only(true).open().unwrap().snapshot().collection("scenes").unwrap();
    assert_eq!(segments(&copy).segments().len(), 3, "299 rows in segments of 128, 128 and 43");
    // Loading the same file again: every id exists, refused with nothing written; --upsert
    // replaces them (the old rows become tombstones).
    let (code, _, err) = load(&[]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists") && err.contains("--upsert"), "{err}");
    assert_eq!(segments(&copy).segments().len(), 3);
    let (code, stdout, err) = load(&["--upsert"]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert_eq!(segments(&copy).count(), ROWS - 1);
    assert_eq!(segments(&copy).segments().len(), 4);
    let (a, b) = (records(&db_path, "scenes"), records(&copy, "scenes"));
    assert_eq!(a.len() as u64, ROWS - 1);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "same ids");
    for (id, (va, fa)) in &a {
        let (vb, fb) = &b[id];
        assert_eq!(va, vb, "vector of {id} bit for bit");
        assert_eq!(fa, fb, "fields (footprint, window, timestamps, keyword and text) of {id}");
    }
    let db = Db::builder(&copy).read_only(true).open().unwrap();
    let col = db.snapshot().collection("scenes").unwrap();
    let ty = |n: &str| col.schema().fields.iter().find(|f| f.name == n).map(|f| f.ty);
    assert_eq!(ty("note"), Some(FieldType::Text));
    assert_eq!(ty("class"), Some(FieldType::Keyword));
    assert_eq!(ty("footprint"), Some(FieldType::GeoBbox));
    assert!(col.params().iter().any(|(k, v)| k == "encoder.fingerprint" && v == FINGERPRINT), "provenance kept");

    // A model id that the file's emb: metadata contradicts is refused, as is declaring another model.
    let (code, _, err) = skysift(&[
        "load",
        dir.path().join("other").to_str().unwrap(),
        "scenes",
        "--from",
        out.to_str().unwrap(),
        "--model-id",
        "someone-else",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("test-model") && err.contains("someone-else"), "{err}");
    // Text queries against these vectors are refused: no encoder has the file's fingerprint.
    let (code, _, err) =
        skysift(&["query", copy.to_str().unwrap(), "harbour", "--model", repo().join("models/demo").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("test-model"), "{err}");
}

/// Vectors without provenance, declared as the demo model's: text queries then run (needs
/// `models/demo` with `text.onnx`, as the encode tests do).
#[test]
fn load_from_with_a_declared_model_serves_text_queries_and_refuses_without() {
    let model = repo().join("models/demo");
    let dir = tempfile::tempdir().unwrap();
    let db_path = build_with(dir.path(), 512, false);
    let out = dir.path().join("plain.parquet");
    let (code, stdout, err) =
        skysift(&["export", db_path.to_str().unwrap(), "scenes", "--with-vectors", "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{err}");
    let undeclared = dir.path().join("undeclared");
    let (code, stdout, err) = skysift(&["load", undeclared.to_str().unwrap(), "c", "--from", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("unknown origin"), "{stdout}");
    let (code, _, err) = skysift(&["query", undeclared.to_str().unwrap(), "harbour"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown origin"), "{err}");

    let (code, _, err) = skysift(&[
        "load",
        dir.path().join("wrong").to_str().unwrap(),
        "c",
        "--from",
        out.to_str().unwrap(),
        "--model-id",
        "not-the-demo",
        "--declare-model",
        "--model",
        model.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("skysift-demo-aid-use-m3"), "{err}");

    let declared = dir.path().join("declared");
    let (code, stdout, err) = skysift(&[
        "load",
        declared.to_str().unwrap(),
        "c",
        "--from",
        out.to_str().unwrap(),
        "--model-id",
        "skysift-demo-aid-use-m3",
        "--declare-model",
        "--model",
        model.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{err}");
    let (code, stdout, err) =
        skysift(&["query", declared.to_str().unwrap(), "a harbour", "-k", "3", "--json", "--device", "cpu"]);
    assert_eq!(code, 0, "{stdout}{err}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(j["results"].as_array().unwrap().len(), 3);
}
