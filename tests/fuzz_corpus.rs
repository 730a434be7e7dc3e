//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`, seeds and every finding) through
//! the same entry points the fuzz targets call, so plain `cargo test` catches regressions.

use std::path::{Path, PathBuf};

#[test]
fn every_corpus_file_is_handled_without_a_panic() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let targets: Vec<(&str, fn(&[u8]))> =
        skysift_storage::fuzzing::TARGETS.iter().chain(skysift::fuzzing::TARGETS.iter()).copied().collect();
    let mut replayed = 0;
    for (name, run) in targets {
        let dir = root.join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else { panic!("no seed corpus at {}", dir.display()) };
        let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        assert!(!files.is_empty(), "empty corpus at {}", dir.display());
        for f in files {
            run(&std::fs::read(&f).unwrap());
            replayed += 1;
        }
    }
    println!("replayed {replayed} corpus files");
}

/// Writes the seed corpus from real files (run once: `cargo test --test tests fuzz_corpus::write_seed_corpus -- --ignored`).
#[test]
#[ignore = "regenerates fuzz/corpus seeds"]
fn write_seed_corpus() {
    use skysift::schema::Value;
    use skysift_storage::segment::graph::{EMPTY, GraphData};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let dir = tempfile::tempdir().unwrap();
    let db = skysift::Db::builder(dir.path()).flush_rows(usize::MAX).open().unwrap();
    let schema = skysift_storage::fuzzing::schema();
    let mut spec = skysift::CollectionSpec::new(4, skysift::schema::Metric::InnerProduct);
    spec.fields = schema.user_fields().iter().map(|f| (f.name.clone(), f.ty)).collect();
    db.create_collection("c", spec).unwrap();
    for batch in 0..2u64 {
        let mut tx = db.begin_write("c").unwrap();
        for i in batch * 5..batch * 5 + 5 {
            tx.insert(
                skysift::NewRecord::new(i, vec![i as f32, 1.0, -0.5, 0.25])
                    .with("k", Value::Keyword(format!("v{}", i % 3)))
                    .with("i", Value::Integer(i as i64))
                    .with("f", Value::Float(i as f64 / 3.0))
                    .with("t", Value::Timestamp(1_600_000_000_000_000 + i as i64))
                    .with("b", Value::Bool(i % 2 == 0))
                    .with("g", Value::GeoBbox([1.0, 2.0, 3.0, 4.0]))
                    .with("source", Value::Text(format!("a/{i}.tif"))),
            )
            .unwrap();
        }
        if batch == 1 {
            tx.delete(2).unwrap();
        }
        tx.commit().unwrap();
        if batch == 0 {
            db.flush("c").unwrap();
        }
    }
    let col_dir =
        std::fs::read_dir(dir.path()).unwrap().filter_map(Result::ok).map(|e| e.path()).find(|p| p.is_dir()).unwrap();
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let d = root.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    };
    for f in std::fs::read_dir(&col_dir).unwrap().filter_map(Result::ok).map(|e| e.path()) {
        let b = std::fs::read(&f).unwrap();
        match f.extension().and_then(|e| e.to_str()) {
            Some("seg") => write("segment", "seed-1", &b),
            Some("log") => write("wal", "seed-1", &b),
            _ => {}
        }
    }
    write("manifest", "seed-1", &std::fs::read(dir.path().join("MANIFEST")).unwrap());
    write("vecblob", "seed-1", &skysift_storage::vecblob::encode(2, &[1.0, 2.0, 3.0, 4.0]));
    let g = GraphData {
        rows: 4,
        slots0: 3,
        base0: 2,
        slots: 2,
        entry: 2,
        layer0: vec![1, 2, EMPTY, 0, 2, 3, 0, 1, EMPTY, 2, EMPTY, EMPTY],
        upper: vec![(vec![0, 2], vec![2, EMPTY, 0, EMPTY])],
        anchors: vec![3, 1],
    };
    let mut gb = vec![4u8];
    gb.extend(g.encode());
    write("graph", "seed-1", &gb);
    write("metadata", "seed-1", br#"{"id": 3, "class": "Port", "year": 2020, "cloud": 3.5, "acquired": "2021-06-01T10:00:00+02:00", "footprint": [1, 2, 3, 4], "window": [0, 0, 256, 256], "ok": true}"#);
    let npy = dir.path().join("a.npy");
    skysift::ingest::vectors::write_npy(&npy, 4, &[1.0; 8]).unwrap();
    write("metadata", "seed-2", &std::fs::read(&npy).unwrap());
    for (i, line) in [
        "harbour with ships",
        "WHERE k = 'v1'",
        "\\k 3",
        "\\like 2",
        "\\lang de",
        "\\not clouds",
        "a\u{1b}[2J WHERE x",
        "\\schema",
        "\\label a, b",
        "\\templates off",
    ]
    .iter()
    .enumerate()
    {
        write("repl_line", &format!("seed-{i}"), line.as_bytes());
    }
    write_target_seeds(&root);
}

/// Writes the seeds of the targets added for issue 8 (`segment_indexes`, `image_decode`,
/// `sidecar`, `model_manifest`, `stateful`) without touching the others:
/// `cargo test --test tests fuzz_corpus::write_issue_8_seeds -- --ignored`.
#[test]
#[ignore = "regenerates fuzz/corpus seeds"]
fn write_issue_8_seeds() {
    write_target_seeds(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus"));
}

#[expect(clippy::too_many_lines, reason = "one seed per fuzz target, written in target order")]
fn write_target_seeds(root: &Path) {
    use skysift::ingest::bands::SampleKind;
    use skysift::ingest::synth::{Chunks, SynthGeo, SynthTiff};
    use skysift_storage::segment::geo::GeoWriter;
    use skysift_storage::segment::ranges::{KIND_F64, KIND_I64, RangesWriter, key_f64, key_i64};

    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let d = root.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    };

    // segment_indexes: the first byte is the segment's rows / 16.
    let mut ranges = RangesWriter::new(KIND_I64);
    for row in 0..40u32 {
        ranges.push(row, key_i64(i64::from(row % 7) * 100 - 250));
    }
    write("segment_indexes", "seed-ranges-i64", &[[3u8].as_slice(), &ranges.finish().unwrap()].concat());
    let mut ranges = RangesWriter::new(KIND_F64);
    for row in 0..20u32 {
        ranges.push(row * 2, key_f64(f64::from(row) / 3.0));
    }
    write("segment_indexes", "seed-ranges-f64", &[[3u8].as_slice(), &ranges.finish().unwrap()].concat());
    let mut geo = GeoWriter::new();
    for row in 0..30u32 {
        let (x, y) = (f64::from(row % 6) * 10.0 - 30.0, f64::from(row / 6) * 8.0 - 20.0);
        geo.push(row, [x, y, x + 2.5, y + 1.5]);
    }
    write("segment_indexes", "seed-geo", &[[2u8].as_slice(), &geo.finish()].concat());

    // image_decode: PNG and JPEG from the `image` crate, TIFFs from the project's writer, one
    // real JPEG of the sample archive.
    let img = image::RgbImage::from_fn(12, 9, |x, y| image::Rgb([(x * 20) as u8, (y * 25) as u8, 90]));
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    write("image_decode", "seed-png", &png);
    let mut jpeg = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    write("image_decode", "seed-jpeg", &jpeg);
    let dir = tempfile::tempdir().unwrap();
    let tiffs = [
        (
            "seed-tiff-tiled-u16x4",
            SynthTiff { chunks: Chunks::Tiles(16, 16), ..SynthTiff::new(40, 24, 4, SampleKind::U16) },
        ),
        (
            "seed-tiff-striped-rgb",
            SynthTiff { chunks: Chunks::Strips(8), rgb: true, ..SynthTiff::new(24, 20, 3, SampleKind::U8) },
        ),
        (
            "seed-tiff-planar-f32-geo",
            SynthTiff {
                chunks: Chunks::Strips(5),
                planar: true,
                geo: Some(SynthGeo { epsg: 32633, origin: (500_000.0, 5_700_000.0), pixel: (20.0, 20.0) }),
                nodata: Some(-9999.0),
                ..SynthTiff::new(20, 20, 2, SampleKind::F32)
            },
        ),
        (
            "seed-tiff-tiled-scene",
            SynthTiff { chunks: Chunks::Tiles(32, 32), ..SynthTiff::new(144, 136, 1, SampleKind::U8) },
        ),
    ];
    for (name, spec) in tiffs {
        let path = dir.path().join(name);
        skysift::ingest::synth::write(&path, &spec, |x, y, b| f64::from(x * 7 + y * 3) + b as f64 * 40.0).unwrap();
        write("image_decode", name, &std::fs::read(&path).unwrap());
    }
    write(
        "image_decode",
        "seed-aid-desert",
        &std::fs::read(manifest_dir.join("samples/aid-mini/Desert/desert_214.jpg")).unwrap(),
    );

    // sidecar: a real STAC item of the sample archive, a flat sidecar, a CSV manifest, hrefs that
    // try to leave the archive.
    write(
        "sidecar",
        "seed-stac",
        &std::fs::read(manifest_dir.join("samples/aid-mini/Airport/airport_124.json")).unwrap(),
    );
    write("sidecar", "seed-flat", br#"{"class": "Port", "gsd": 0.5, "footprint": [4.9, 51.9, 5.0, 52.0], "eo:bands": [{"name": "B4", "common_name": "red"}], "tags": ["a", "b"], "nested": {"x": 1}}"#);
    write(
        "sidecar",
        "seed-csv",
        b"path,class,year,bbox\nx.jpg,Airport,2021,\"[4.9,51.9,5.0,52.0]\"\n../b/z.png,Port,2019,\"4,50,5,51\"\n",
    );
    write("sidecar", "seed-escapes", br#"{"type": "Feature", "id": "esc", "properties": {"class": "x"}, "bbox": [0, 0, 1, 1],
 "assets": {"up": {"href": "../../etc/passwd", "type": "image/tiff"}, "sib": {"href": "../b/z.png", "roles": ["data"]},
  "link": {"href": "./out/secret.jpg", "type": "image/jpeg"}, "abs": {"href": "file:///etc/hosts", "roles": ["data"]},
  "far": {"href": "https://example.com/x.tif", "type": "image/tiff"}, "self": {"href": "x.jpg", "type": "image/jpeg"}}}"#);

    // model_manifest: the demo model's manifest, and a small one with external data and a
    // shortest-edge resize.
    write("model_manifest", "seed-demo", &std::fs::read(manifest_dir.join("models/demo/manifest.json")).unwrap());
    write(
        "model_manifest",
        "seed-small",
        br#"{"format_version": 1, "model_id": "tiny", "embedding_dim": 8,
 "image": {"onnx": "image.onnx", "size": [16, 16], "resize": "shortest_edge", "resize_to": 20, "crop": "center",
  "interpolation": "bicubic", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "external_data": ["image.onnx.data"]},
 "text": {"onnx": "text.onnx", "tokenizer": "tokenizer.json", "max_tokens": 16},
 "languages": ["en"], "default_templates": "templates/"}"#,
    );

    write(
        "model_manifest",
        "seed-links",
        br#"{"format_version": 1, "model_id": "links", "embedding_dim": 4,
 "image": {"onnx": "escape.onnx", "size": [8, 8], "resize": "exact", "interpolation": "nearest",
  "mean": [0, 0, 0], "std": [1, 1, 1], "external_data": ["outdir/secret.onnx"]},
 "text": {"onnx": "dangling.onnx", "tokenizer": "./tokenizer.json", "max_tokens": 4}}"#,
    );

    // stateful: each seed is a script of the operations `skysift::fuzzing::stateful` decodes.
    for (name, script) in [
        (
            "seed-basic",
            vec![
                Create,
                Tx(true, vec![up(0, 0x41), up(1, 0x52), up(2, 0x63), up(3, 0x74), up(4, 0xC5), up(5, 0xD6)]),
                Check(5, 0x11),
                Flush,
                Tx(true, vec![ins(7, 0x40), del(1)]),
                Compact,
                AddField(1),
                Tx(true, vec![up(0, 0xFF), up(8, 0x7F), ins(1, 0x40)]),
                Reopen,
                Check(9, 0x22),
                Tx(false, vec![del(0), del(2)]),
                Check(3, 0x01),
            ],
        ),
        (
            "seed-insert-delete-abort",
            vec![
                Create,
                Tx(true, vec![ins(0, 0x40), ins(1, 0x41), ins(0, 0x42)]),
                Tx(false, vec![del(0), ins(2, 0x43)]),
                Tx(true, vec![del(0), del(0), ins(0, 0x44), del(9)]),
                Check(3, 0x0F),
                AddField(0x82),
                Check(4, 0x01),
            ],
        ),
        (
            "seed-eio-commit",
            vec![
                Create,
                Tx(true, vec![up(1, 0x41), up(2, 0x42)]),
                Arm(0x00),
                Tx(true, vec![up(3, 0x43)]),
                Tx(true, vec![up(4, 0x44)]),
                Check(6, 0x33),
            ],
        ),
        (
            "seed-enospc-flush",
            vec![
                Create,
                Tx(true, vec![up(1, 0x41), up(2, 0x42), up(3, 0x43), up(4, 0x44), up(5, 0x45)]),
                Arm(0x82),
                Flush,
                Tx(true, vec![up(6, 0x46)]),
                Check(4, 0x21),
                Reopen,
                Compact,
            ],
        ),
        (
            "seed-auto-flush-fault",
            vec![
                Create,
                AddField(1),
                Arm(0x04),
                Tx(true, vec![up(0, 0xC1), up(1, 0xC2), up(2, 0xC3), up(3, 0xC4), up(4, 0xC5), up(5, 0xC6)]),
                Tx(true, vec![up(6, 0xC7), up(7, 0xC8), up(8, 0xC9), up(9, 0xCA), up(10, 0xCB), up(11, 0xCC)]),
                Tx(true, vec![up(12, 0xCD)]),
                Check(12, 0x99),
            ],
        ),
        (
            "seed-add-field-fault",
            vec![
                Create,
                Tx(true, vec![up(0, 0x41), up(1, 0x42), up(2, 0x43)]),
                Arm(0x01),
                AddField(2),
                Tx(true, vec![up(3, 0xC4)]),
                Check(4, 0x05),
            ],
        ),
        (
            "seed-reopen-fault",
            vec![
                Create,
                Tx(true, vec![up(0, 0x41), up(1, 0x42)]),
                Flush,
                Tx(true, vec![del(0)]),
                Arm(0x80),
                Reopen,
                Compact,
                Check(2, 0x07),
            ],
        ),
    ] {
        write("stateful", name, &encode(&script));
    }
}

/// One operation of a `stateful` seed script (see `skysift::fuzzing::stateful` for the bytes).
enum Step {
    Create,
    /// A transaction of (kind/id, value) operations; committed when true, dropped otherwise.
    Tx(bool, Vec<(u8, u8)>),
    Flush,
    Compact,
    AddField(u8),
    Reopen,
    Arm(u8),
    Check(u8, u8),
}
use Step::{AddField, Arm, Check, Compact, Create, Flush, Reopen, Tx};

fn up(id: u8, v: u8) -> (u8, u8) {
    (id, v)
}

fn ins(id: u8, v: u8) -> (u8, u8) {
    (16 + id, v)
}

fn del(id: u8) -> (u8, u8) {
    (32 + id, 0)
}

fn encode(script: &[Step]) -> Vec<u8> {
    let mut out = Vec::new();
    for step in script {
        match step {
            Create => out.push(0),
            Tx(commit, ops) => {
                assert!((1..=6).contains(&ops.len()));
                out.extend([if *commit { 1 } else { 2 }, ops.len() as u8 - 1]);
                for (k, v) in ops {
                    out.extend([*k, *v]);
                }
            }
            Flush => out.push(3),
            Compact => out.push(4),
            AddField(ty) => out.extend([5, *ty]),
            Reopen => out.push(6),
            Arm(b) => out.extend([7, *b]),
            Check(k, q) => out.extend([8, *k - 1, *q]),
        }
    }
    out
}
