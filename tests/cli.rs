//! The command line: load, count, info, verify, compact, search, and its errors on bad input.

use std::path::Path;
use std::process::Command;

use skysift::ingest::vectors::{write_fbin, write_npy};

fn skysift(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_skysift")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn data(n: usize, dim: usize) -> Vec<f32> {
    (0..n * dim).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect()
}

fn meta(path: &Path, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{\"id\": {}, \"class\": \"c{}\", \"year\": {}, \"cloud\": {}.5, \"acquired\": \"2021-0{}-01\"}}",
                i + 100,
                i % 3,
                2015 + i % 5,
                i % 40,
                1 + i % 9
            )
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn load_count_info_search_verify_compact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("db");
    write_npy(&d.join("v.npy"), 16, &data(250, 16)).unwrap();
    meta(&d.join("m.jsonl"), 250);
    let db_s = db.to_str().unwrap();
    let (code, out, err) = skysift(&[
        "load",
        db_s,
        "scenes",
        "--vectors",
        d.join("v.npy").to_str().unwrap(),
        "--metadata",
        d.join("m.jsonl").to_str().unwrap(),
        "--batch-size",
        "100",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("inferred schema") && out.contains("acquired:timestamp") && out.contains("class:keyword"),
        "{out}"
    );
    assert_eq!(out.matches("committed batch").count(), 3, "{out}");
    assert!(out.contains("total 250 rows"), "{out}");
    let (code, out, _) = skysift(&["count", db_s, "scenes"]);
    assert_eq!((code, out.trim()), (0, "250"));
    let (code, out, _) = skysift(&["info", db_s, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["collections"][0]["count"], 250);
    assert_eq!(v["collections"][0]["dim"], 16);
    write_fbin(&d.join("q.fbin"), 16, &data(5, 16)).unwrap();
    let res = d.join("r.jsonl");
    let (code, out, err) = skysift(&[
        "search",
        db_s,
        "scenes",
        "--queries",
        d.join("q.fbin").to_str().unwrap(),
        "-k",
        "7",
        "--output",
        res.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["queries"], 5);
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&res).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[2]["query"], 2);
    assert_eq!(lines[2]["ids"].as_array().unwrap().len(), 7);
    // Row 0 of the queries equals row 0 of the data, whose id is 100.
    assert_eq!(lines[0]["ids"][0], 100);
    let (code, out, _) = skysift(&["verify", db_s]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("all intact"));
    let (code, out, err) = skysift(&["compact", db_s, "scenes"]);
    assert_eq!(code, 0, "{out}{err}");
    // Loading the same ids again is refused before anything is written.
    let (code, _, err) = skysift(&[
        "load",
        db_s,
        "scenes",
        "--vectors",
        d.join("v.npy").to_str().unwrap(),
        "--metadata",
        d.join("m.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists") && err.contains("--upsert"), "{err}");
    let (_, out, _) = skysift(&["count", db_s, "scenes"]);
    assert_eq!(out.trim(), "250");
    // Damage is named and exits 3.
    let seg = std::fs::read_dir(db.join("col-000001"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut b = std::fs::read(&seg).unwrap();
    let mid = b.len() / 3;
    b[mid] ^= 1;
    std::fs::write(&seg, &b).unwrap();
    let (code, out, _) = skysift(&["verify", db_s]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("DAMAGED") && out.contains("seg-"), "{out}");
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one table of bad inputs, each checked for its message and for nothing written"
)]
fn bad_inputs_are_refused_with_row_and_field_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("db");
    let db_s = db.to_str().unwrap();
    write_fbin(&d.join("ok.fbin"), 4, &data(10, 4)).unwrap();
    let cases: Vec<(&str, Box<dyn Fn(&Path)>, &str)> = vec![
        (
            "nan",
            Box::new(|p: &Path| {
                let mut v = data(10, 4);
                v[4 * 7 + 2] = f32::NAN;
                write_fbin(&p.join("nan.fbin"), 4, &v).unwrap();
            }),
            "row 7, component 2",
        ),
        (
            "truncated",
            Box::new(|p: &Path| {
                write_npy(&p.join("t.npy"), 4, &data(10, 4)).unwrap();
                let b = std::fs::read(p.join("t.npy")).unwrap();
                std::fs::write(p.join("t.npy"), &b[..b.len() - 5]).unwrap();
            }),
            "truncated",
        ),
        (
            "malformed",
            Box::new(|p: &Path| {
                let mut lines: Vec<String> = (0..10).map(|i| format!("{{\"k\": \"v{i}\"}}")).collect();
                lines[6] = "{\"k\": ".into();
                std::fs::write(p.join("bad.jsonl"), lines.join("\n")).unwrap();
            }),
            "line 7: malformed JSON",
        ),
        (
            "wrongtype",
            Box::new(|p: &Path| {
                let mut lines: Vec<String> = (0..10).map(|i| format!("{{\"k\": {i}}}")).collect();
                lines[3] = "{\"k\": \"text\"}".into();
                std::fs::write(p.join("wt.jsonl"), lines.join("\n")).unwrap();
            }),
            "mixed kinds",
        ),
        (
            "rows",
            Box::new(|p: &Path| {
                std::fs::write(p.join("few.jsonl"), "{\"k\": 1}\n").unwrap();
            }),
            "must match row for row",
        ),
    ];
    for (name, make, want) in &cases {
        make(d);
        let args: Vec<String> = match *name {
            "nan" => vec!["--vectors".into(), d.join("nan.fbin").display().to_string()],
            "truncated" => vec!["--vectors".into(), d.join("t.npy").display().to_string()],
            "malformed" => vec![
                "--vectors".into(),
                d.join("ok.fbin").display().to_string(),
                "--metadata".into(),
                d.join("bad.jsonl").display().to_string(),
            ],
            "wrongtype" => vec![
                "--vectors".into(),
                d.join("ok.fbin").display().to_string(),
                "--metadata".into(),
                d.join("wt.jsonl").display().to_string(),
            ],
            _ => vec![
                "--vectors".into(),
                d.join("ok.fbin").display().to_string(),
                "--metadata".into(),
                d.join("few.jsonl").display().to_string(),
            ],
        };
        let mut all = vec!["load", db_s, name];
        all.extend(args.iter().map(String::as_str));
        let (code, out, err) = skysift(&all);
        assert_eq!(code, 1, "{name}: {out}{err}");
        assert!(err.contains(want), "{name}: {err}");
        assert!(!out.contains("committed batch"), "{name}: {out}");
    }
    // Wrong dimension against an existing collection, and an unknown field.
    let (code, _, err) = skysift(&["load", db_s, "c4", "--vectors", d.join("ok.fbin").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    write_fbin(&d.join("d5.fbin"), 5, &data(3, 5)).unwrap();
    let (code, _, err) = skysift(&["load", db_s, "c4", "--vectors", d.join("d5.fbin").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("dimension 5") && err.contains("has 4"), "{err}");
    let uf: Vec<String> = (0..10).map(|i| format!("{{\"id\": {}, \"zz\": 1}}", i + 50)).collect();
    std::fs::write(d.join("uf.jsonl"), uf.join("\n")).unwrap();
    let (code, _, err) = skysift(&[
        "load",
        db_s,
        "c4",
        "--vectors",
        d.join("ok.fbin").to_str().unwrap(),
        "--metadata",
        d.join("uf.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown field \"zz\""), "{err}");
    let (_, out, _) = skysift(&["count", db_s, "c4"]);
    assert_eq!(out.trim(), "10");
    // Missing database and collection.
    let (code, _, err) = skysift(&["count", d.join("nope").to_str().unwrap(), "c"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a skysift database"), "{err}");
    let (code, _, err) = skysift(&["count", db_s, "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no collection named \"nope\"") && err.contains("c4"), "{err}");
}
