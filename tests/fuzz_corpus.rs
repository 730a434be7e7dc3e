//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`, seeds and every finding) through
//! the same entry points the fuzz targets call, so plain `cargo test` catches regressions.

use std::path::PathBuf;

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
}
