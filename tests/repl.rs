//! The REPL and the query commands, on a small database encoded from the in-repo sample
//! (samples/aid-mini) with the demo model: queries, languages, filters, errors, completion,
//! hostile input, the gallery, and the `skysift repl` process driven through stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use proptest::prelude::*;
use skysift::encode::Encoder;
use skysift::repl::Repl;
use skysift::schema::{FieldType, Metric, Value};
use skysift::session::Session;
use skysift::{CollectionSpec, Db, NewRecord};

/// Images per class taken from the sample.
const PER_CLASS: usize = 2;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A database holding `PER_CLASS` sample images of every class, built once per test run.
fn demo_db() -> &'static Path {
    static DB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let enc = Encoder::open(root().join("models/demo"))
            .expect("the demo model: run scripts/setup_ort.sh and scripts/setup_models.sh");
        let db = Db::open(&path).unwrap();
        let mut params = enc.provenance().to_params();
        params.push((skysift::session::MODEL_DIR_PARAM.into(), root().join("models/demo").display().to_string()));
        let mut spec = CollectionSpec::new(enc.dim() as u32, Metric::Cosine).field("class", FieldType::Keyword);
        spec.params = params;
        db.create_collection("aid", spec).unwrap();
        let sample = root().join("samples/aid-mini");
        let mut classes: Vec<PathBuf> = std::fs::read_dir(&sample)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        classes.sort();
        let mut files = Vec::new();
        for c in &classes {
            let mut imgs: Vec<PathBuf> = std::fs::read_dir(c)
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
                .collect();
            imgs.sort();
            files.extend(imgs.into_iter().take(PER_CLASS));
        }
        let vectors = enc.encode_image_files(&files).unwrap();
        let mut tx = db.begin_write("aid").unwrap();
        for (i, (f, v)) in files.iter().zip(vectors).enumerate() {
            let class = f.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
            let thumb = image::open(f).unwrap().thumbnail(48, 48);
            let mut jpeg = Vec::new();
            thumb.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
            tx.insert(
                NewRecord::new(i as u64, v)
                    .with("class", Value::Keyword(class))
                    .with("source", Value::Text(f.strip_prefix(&sample).unwrap().display().to_string()))
                    .with("thumbnail", Value::Blob(jpeg)),
            )
            .unwrap();
        }
        tx.commit().unwrap();
        (dir, path)
    })
    .1
}

fn repl() -> Repl {
    let db = Db::builder(demo_db()).read_only(true).open().unwrap();
    let s = Session::open(db, None, None).unwrap();
    Repl::new(s, std::env::temp_dir())
}

/// Classes of the top `n` results in a REPL output table.
fn top_classes(out: &str, n: usize) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("class=")).map(str::to_owned))
        .take(n)
        .collect()
}

#[test]
fn text_queries_in_two_languages_find_the_class() {
    let mut r = repl();
    let out = r.handle_line("airport with many planes parked");
    assert!(!out.error, "{}", out.output);
    assert!(top_classes(&out.output, 3).iter().any(|c| c == "Airport"), "{}", out.output);
    let out = r.handle_line("\\k 3");
    assert_eq!(out.output, "k = 3");
    let out = r.handle_line("ein Hafen mit vielen Booten");
    assert!(out.output.contains("language de"), "{}", out.output);
    assert_eq!(top_classes(&out.output, 10).len(), 3, "{}", out.output);
    assert!(top_classes(&out.output, 3).iter().any(|c| c == "Port"), "{}", out.output);
    let out = r.handle_line("\\lang zh");
    assert!(!out.error);
    let out = r.handle_line("有很多树的森林");
    assert!(top_classes(&out.output, 3).iter().any(|c| c == "Forest"), "{}", out.output);
}

#[test]
fn commands_errors_and_completion() {
    let mut r = repl();
    for (line, want) in [
        ("\\k abc", "error: \\k takes a number"),
        ("\\k 0", "error"),
        ("\\nope", "error: unknown command \\nope"),
        ("\\lang xx", "error: unknown language"),
        ("\\like 999999", "error: no record with id 999999"),
        ("\\label", "error"),
        ("WHERE", "filter cleared"),
    ] {
        let out = r.handle_line(line);
        assert!(out.output.starts_with(want), "{line}: {}", out.output);
    }
    assert!(r.handle_line("\\schema").output.contains("class"));
    assert!(r.handle_line("\\stats").output.contains("records"));
    let like = r.handle_line("\\like 0");
    assert!(!like.error && like.output.contains("rank"), "{}", like.output);
    assert!(r.handle_line("\\q").quit);
    assert_eq!(r.complete("\\sch"), vec!["\\schema".to_owned()]);
    assert!(r.complete("cla").contains(&"class".to_owned()));
    assert!(r.complete("\\use a").contains(&"aid".to_owned()));
}

#[test]
fn control_bytes_are_escaped_and_the_gallery_is_written() {
    let mut r = repl();
    let out = r.handle_line("harbour\u{1b}[2J with boats");
    assert!(!out.output.contains('\u{1b}'));
    let out = r.handle_line("\\label Port, Forest, Desert");
    assert!(!out.error, "{}", out.output);
    let out = r.handle_line("\\show");
    let path = out.output.strip_prefix("gallery: ").unwrap_or_else(|| panic!("{}", out.output));
    let html = std::fs::read_to_string(path).unwrap();
    assert!(html.contains("<img") && html.contains("data:image/jpeg;base64,"));
    assert!(!html.contains('\u{1b}') && html.contains("AID"));
    std::fs::remove_file(path).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_line_is_handled_without_panicking(line in "\\PC{0,40}|\\\\[a-z]{1,8} [^\\n]{0,20}|WHERE [^\\n]{0,30}") {
        let mut r = repl();
        let out = r.handle_line(&line);
        prop_assert!(!out.output.contains('\x1b'), "escape byte in output");
    }
}

#[test]
fn the_repl_process_reads_stdin_and_quits() {
    let gallery = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_skysift"))
        .args(["repl", demo_db().to_str().unwrap(), "--gallery-dir", gallery.path().to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all("dense residential area with houses\n\\k 2\n\\bogus\n\\show\n\\q\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("rank") && stdout.contains("gallery:"), "{stdout}");
    assert!(stderr.contains("unknown command"), "{stderr}");
}

#[test]
fn query_command_table_json_file_and_refusals() {
    let db = demo_db().to_str().unwrap().to_owned();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_skysift")).args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["query", &db, "a stadium with a running track", "-k", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("class=Stadium") || out.contains("class=Playground"), "{out}");
    let (code, out, _) = run(&["query", &db, "beach", "--json", "--not", "water", "--templates", "off"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 10);
    assert_eq!(v["prompts"].as_array().unwrap().len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let qf = dir.path().join("q.txt");
    std::fs::write(&qf, "river\n\nforest\ndesert\n").unwrap();
    let (code, out, _) = run(&["query", &db, "--file", qf.to_str().unwrap()]);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["query"], "forest");
    let img = root().join("samples/aid-mini/Beach");
    let first = std::fs::read_dir(&img)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "jpg"))
        .unwrap();
    let (code, out, err) = run(&["query", &db, "--image", first.to_str().unwrap(), "-k", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("class=Beach"), "{out}");
    // A collection loaded from bare vectors has no model: text queries are refused, clearly.
    let vdb = dir.path().join("vdb");
    let vecs = dir.path().join("v.fbin");
    skysift::ingest::vectors::write_fbin(&vecs, 4, &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]).unwrap();
    assert_eq!(run(&["load", vdb.to_str().unwrap(), "v", "--vectors", vecs.to_str().unwrap()]).0, 0);
    let (code, _, err) = run(&["query", vdb.to_str().unwrap(), "ports"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown origin"), "{err}");
}

/// A private, writable copy of the shared demo database.
fn demo_copy(dir: &Path) -> PathBuf {
    let to = dir.join("db");
    crate::common::copy_tree(demo_db(), &to);
    to
}

fn skysift_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_skysift")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The class folders of the in-repo sample, sorted.
fn sample_classes() -> Vec<String> {
    let mut classes: Vec<String> = std::fs::read_dir(root().join("samples/aid-mini"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    classes
}

#[test]
fn label_with_field_stores_labels_that_filters_use() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_copy(dir.path());
    let db = db.to_str().unwrap();
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, sample_classes().join("\n")).unwrap();
    let run = skysift_cli;
    let before = run(&["count", db, "aid"]).1;
    let (code, out, err) = run(&["label", db, "aid", "--labels", labels.to_str().unwrap(), "--field", "guess"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("stored 60 labels in field \"guess\""), "{out}");
    assert_eq!(run(&["count", db, "aid"]).1, before, "labelling keeps every record, once");
    let (_, out, _) = run(&["count", db, "aid", "--where", "guess IS NULL", "--json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["count"], 0);
    // The stored labels agree with the true classes for most records (zero-shot accuracy of
    // the demo model is about 0.85), and the field filters queries.
    let (code, out, err) = run(&["query", db, "scene", "--json", "-k", "60"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 60);
    let right = results.iter().filter(|r| r["fields"]["class"] == r["fields"]["guess"]).count();
    assert!(right >= 42, "{right} of 60 labels match the class");
    let (code, out, err) = run(&["query", db, "airport", "--where", "guess = 'Airport'", "--json", "-k", "60"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let hits = v["results"].as_array().unwrap();
    assert!(!hits.is_empty() && hits.iter().all(|r| r["fields"]["guess"] == "Airport"), "{out}");
    // Relabelling into the same field replaces the values; a field of another type is refused.
    let (code, _, err) = run(&["label", db, "aid", "--labels", labels.to_str().unwrap(), "--field", "guess"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(run(&["count", db, "aid"]).1, before);
    let (code, _, err) = run(&["label", db, "aid", "--labels", labels.to_str().unwrap(), "--field", "source"]);
    assert_eq!(code, 1);
    assert!(err.contains("labels need a keyword field"), "{err}");
}

#[test]
fn import_command_adds_a_folder_to_the_collection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let sample = root().join("samples/aid-mini");
    let model = root().join("models/demo");
    let (code, _, err) = skysift_cli(&[
        "import",
        path.to_str().unwrap(),
        sample.join("Airport").to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert_eq!(code, 0, "{err}");
    let s = Session::open(Db::builder(&path).read_only(true).open().unwrap(), None, None).unwrap();
    let mut r = Repl::new(s, dir.path().to_path_buf());
    let before = r.session().snapshot().unwrap().count();
    assert!(r.handle_line("\\import").error);
    assert!(r.handle_line("\\import /no/such/folder").output.contains("is not a folder"));
    let folder = sample.join("Beach");
    let images = std::fs::read_dir(&folder)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "jpg"))
        .count();
    let out = r.handle_line(&format!("\\import {}", folder.display()));
    assert!(!out.error, "{}", out.output);
    assert!(out.output.starts_with(&format!("imported {images} files")), "{}", out.output);
    assert_eq!(r.session().snapshot().unwrap().count(), before + images as u64, "the REPL follows the new rows");
    // Importing the same folder again writes nothing new.
    let again = r.handle_line(&format!("\\import {}", folder.display()));
    assert!(again.output.contains(&format!("0 new tiles, {images} unchanged")), "{}", again.output);
    assert_eq!(r.session().snapshot().unwrap().count(), before + images as u64);
    let out = r.handle_line("a sandy beach by the sea");
    assert!(top_classes(&out.output, 3).iter().any(|c| c == "Beach"), "{}", out.output);
}
