//! Analyst search benchmarks and evaluation (issue 17). Two parts:
//!
//! - `cost [ROWS]` (default 1,000,000 rows): generated clustered 512-d unit vectors (seeded; the
//!   layout of `../shared/bench`'s generator, made here so that nothing needs to be fetched) in a
//!   collection without graphs. Times, on one thread, training a classifier from 5 good and 5 bad
//!   examples and scoring every row (`Classifier::score_rows`, what `skysift classify` runs),
//!   against the engine's exact top-10 scan of the same rows in the same run (the baseline). Then
//!   streams every row as a JSON line (`stream_above` + fields, what `skysift query --all` runs)
//!   into a sink and reports resident memory (anonymous = heap, file = mapped segment pages)
//!   before, at its peak and after, against collecting the same rows into a vector.
//! - `eval`: reads `../shared/data/aid-rsicd` (which a user's clone lacks), encodes its 8,973
//!   images with the demo model (cached in `target/analyst-eval/`), and reports, for each of the
//!   30 AID classes, the average precision of the class from (a) the text query alone (the class
//!   name through the prompt ensemble), (b) the text moved by 5 good and 5 bad examples
//!   (Rocchio, default weights), (c) a classifier trained on those 10 examples (plus 50 random
//!   negatives), (d) the same classifier with the text as its prior. The 10 examples are what a
//!   person marks: the 5 best-ranked images of the class and the 5 best-ranked others in the text
//!   ranking; they are left out of every ranking that is scored, so all columns rank the same
//!   8,963 images.
//!
//! Run: `cargo bench --bench analyst -- cost 1000000` and `cargo bench --bench analyst -- eval`
//! (needs `scripts/setup_ort.sh` and `scripts/setup_models.sh`; `SKYSIFT_EVAL_EVERY=N` evaluates
//! every N-th image only, for a quick run; `SKYSIFT_EVAL_QUERY=phrase` queries the model's own
//! class phrases from `models/demo/templates/en.json` instead of the class names). Figures and how
//! to read them: `docs/ANALYST_EVAL.md`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use skysift::analyst::{Classifier, Rocchio, TrainOptions, stream_above};
use skysift::schema::{FieldType, Metric, Value};
use skysift::{CollectionSpec, Db, IndexParams, NewRecord, SearchScratch};

const DIM: usize = 512;

#[path = "../../tests/support/rng.rs"]
mod rng;
use rng::Rng;

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    for x in &mut *v {
        *x /= n;
    }
}

/// `(RssAnon, RssFile)` of this process, MiB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

fn cost(rows: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::builder(dir.path()).flush_rows(100_000).open().expect("open");
    let p = IndexParams { min_rows: usize::MAX, ..IndexParams::default() };
    db.create_collection(
        "b",
        CollectionSpec::new(DIM as u32, Metric::Cosine).index(p).field("cluster", FieldType::Integer),
    )
    .expect("create");
    let mut r = Rng(0x0017_BE4C);
    let centres: Vec<Vec<f32>> = (0..200)
        .map(|_| {
            let mut c: Vec<f32> = (0..DIM).map(|_| r.gauss()).collect();
            unit(&mut c);
            c
        })
        .collect();
    let t = Instant::now();
    let mut done = 0;
    while done < rows {
        let mut tx = db.begin_write("b").expect("writer");
        for id in done..(done + 10_000).min(rows) {
            let c = (r.uniform() * 200.0) as usize % 200;
            let mut v: Vec<f32> = centres[c].iter().map(|x| x + 0.06 * r.gauss()).collect();
            unit(&mut v);
            tx.insert(NewRecord::new(id as u64, v).with("cluster", Value::Integer(c as i64))).expect("insert");
        }
        tx.commit().expect("commit");
        done = (done + 10_000).min(rows);
    }
    db.flush("b").expect("flush");
    eprintln!("loaded {rows} rows in {:.0}s", t.elapsed().as_secs_f64());
    let col = db.snapshot().collection("b").expect("collection");
    let of = |c: i64| col.ids_where(format!("cluster = {c}").as_str()).expect("filter");
    let good: Vec<u64> = of(0).into_iter().take(5).collect();
    let bad: Vec<u64> = of(1).into_iter().take(5).collect();
    let t = Instant::now();
    let c = Classifier::train(&col, &good, &bad, None, &TrainOptions::default()).expect("train");
    let train = t.elapsed().as_secs_f64();
    let mut best = f64::INFINITY;
    let (mut above, mut scored) = (0, 0);
    for _ in 0..3 {
        let t = Instant::now();
        let s = c.score_rows(&col, None, 0.5, &mut |_, _, _| Ok(())).expect("score");
        best = best.min(t.elapsed().as_secs_f64());
        (above, scored) = (s.above, s.scored);
    }
    let mut scratch = SearchScratch::default();
    let mut scan = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let _ = col.search_exact(&centres[0], 10, &mut scratch).expect("scan");
        scan = scan.min(t.elapsed().as_secs_f64());
    }
    let truth = of(0).len();
    println!(
        "classify, {rows} rows, one thread: train {:.1} ms ({}), score every row {best:.3} s ({scored} scored, {above} at p >= 0.5; cluster has {truth}); exact top-10 scan of the same rows {scan:.3} s; ratio {:.2}",
        train * 1e3,
        c.describe(),
        best / scan
    );

    let (anon0, file0) = rss();
    let mut peak = anon0;
    let mut sink = std::io::sink();
    let t = Instant::now();
    let mut n = 0u64;
    let (_, emitted) = stream_above(&col, &centres[3], None, None, &mut |id, score, row| {
        let f: serde_json::Map<String, serde_json::Value> =
            row.fields(&col)?.iter().map(|(k, v)| (k.clone(), skysift::present::json_value(v))).collect();
        let _ = writeln!(sink, "{}", serde_json::json!({"id": id, "score": score, "fields": f}));
        n += 1;
        if n.is_multiple_of(50_000) {
            peak = peak.max(rss().0);
        }
        Ok(())
    })
    .expect("stream");
    let stream_s = t.elapsed().as_secs_f64();
    let (anon1, file1) = rss();
    peak = peak.max(anon1);
    let t = Instant::now();
    let mut collected = Vec::new();
    stream_above(&col, &centres[3], None, None, &mut |id, score, row| {
        collected.push((id, score, row.fields(&col)?));
        Ok(())
    })
    .expect("collect");
    let (anon2, _) = rss();
    println!(
        "--all, {rows} rows: streamed {emitted} JSON lines in {stream_s:.2} s; anonymous RSS {anon0:.0} MiB before, peak {peak:.0}, after {anon1:.0} (file-backed {file0:.0} -> {file1:.0} MiB: the mapped segments); baseline collecting the rows: anonymous RSS {anon2:.0} MiB ({:.1} s, {} rows)",
        t.elapsed().as_secs_f64(),
        collected.len()
    );
}

/// Average precision of `positives` in `ranked` (ids best first).
fn average_precision(ranked: &[usize], positive: &dyn Fn(usize) -> bool) -> f64 {
    let total = ranked.iter().filter(|&&i| positive(i)).count();
    let mut hits = 0;
    let mut sum = 0.0;
    for (rank, &i) in ranked.iter().enumerate() {
        if positive(i) {
            hits += 1;
            sum += f64::from(hits) / (rank + 1) as f64;
        }
    }
    if total == 0 { 0.0 } else { sum / total as f64 }
}

fn rank(vectors: &[Vec<f32>], score: &dyn Fn(&[f32]) -> f32, skip: &[usize]) -> Vec<usize> {
    let mut s: Vec<(f32, usize)> =
        vectors.iter().enumerate().filter(|(i, _)| !skip.contains(i)).map(|(i, v)| (score(v), i)).collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    s.into_iter().map(|(_, i)| i).collect()
}

fn words(class: &str) -> String {
    let mut out = String::new();
    for (i, c) in class.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// With `SKYSIFT_EVAL_QUERY=phrase`, the model's own English phrase for each class
/// (`models/demo/templates/en.json`, "a sparse residential area", what its zero-shot figures
/// use), queried instead of the class name split into words ("sparse residential", the default).
fn class_phrases(repo: &std::path::Path) -> Option<serde_json::Value> {
    (std::env::var("SKYSIFT_EVAL_QUERY").as_deref() == Ok("phrase")).then(|| {
        let t = std::fs::read_to_string(repo.join("models/demo/templates/en.json")).expect("templates/en.json");
        serde_json::from_str::<serde_json::Value>(&t).expect("templates JSON")["classes"].clone()
    })
}

/// The demo model's vectors of `images`, cached in `target/analyst-eval/` (little-endian f32).
fn encode_cached(enc: &skysift::encode::Encoder, images: &[PathBuf], repo: &std::path::Path) -> Vec<Vec<f32>> {
    let cache = repo.join("target/analyst-eval");
    std::fs::create_dir_all(&cache).expect("cache folder");
    let cached = cache.join(format!("aid-{}.f32", images.len()));
    if let Ok(bytes) = std::fs::read(&cached) {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect::<Vec<f32>>()
            .chunks_exact(enc.dim())
            .map(<[f32]>::to_vec)
            .collect()
    } else {
        let t = Instant::now();
        let mut out = Vec::with_capacity(images.len());
        for (i, chunk) in images.chunks(256).enumerate() {
            out.extend(enc.encode_image_files(chunk).expect("encode images"));
            eprint!("\rimages {}/{}", i * 256 + chunk.len(), images.len());
        }
        eprintln!("\rimages {} encoded in {:.0}s", images.len(), t.elapsed().as_secs_f64());
        let bytes: Vec<u8> = out.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(&cached, bytes).expect("write cache");
        out
    }
}

fn eval() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = repo.join("../shared/data/aid-rsicd");
    let lines = std::fs::read_to_string(data.join("captions.jsonl"))
        .unwrap_or_else(|e| panic!("{}: {e} (the eval reads ../shared)", data.display()));
    let mut images = Vec::new();
    let mut classes = Vec::new();
    // SKYSIFT_EVAL_EVERY=N keeps every N-th image (a quicker run on a busy machine; say so).
    let every: usize = std::env::var("SKYSIFT_EVAL_EVERY").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    for line in lines.lines().step_by(every) {
        let v: serde_json::Value = serde_json::from_str(line).expect("captions.jsonl line");
        images.push(data.join("images").join(v["image"].as_str().expect("image")));
        classes.push(v["class"].as_str().expect("class").to_owned());
    }
    let enc = skysift::encode::Encoder::builder(repo.join("models/demo"))
        .device(skysift::encode::Device::Cpu)
        .batch_size(64)
        .build()
        .unwrap_or_else(|e| panic!("run scripts/setup_ort.sh and scripts/setup_models.sh first: {e}"));
    let vectors = encode_cached(&enc, &images, &repo);
    assert_eq!(vectors.len(), images.len());
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open(dir.path()).expect("open");
    db.create_collection("aid", CollectionSpec::new(enc.dim() as u32, Metric::Cosine)).expect("create");
    let mut tx = db.begin_write("aid").expect("writer");
    for (i, v) in vectors.iter().enumerate() {
        tx.insert(NewRecord::new(i as u64, v.clone())).expect("insert");
    }
    tx.commit().expect("commit");
    let col = db.snapshot().collection("aid").expect("collection");
    let mut names: Vec<String> = classes.clone();
    names.sort();
    names.dedup();
    let phrases = class_phrases(&repo);
    println!(
        "| class | images | (a) text | (b) text + 5 good / 5 bad (Rocchio) | (c) classifier, 10 examples | (d) classifier + text prior |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut sums = [0.0f64; 4];
    for name in &names {
        let positive = |i: usize| classes.get(i) == Some(name);
        let text = phrases.as_ref().and_then(|p| p[name.as_str()].as_str()).map_or_else(|| words(name), str::to_owned);
        let q = enc.query_text(&text).expect("text query");
        let start = rank(&vectors, &|v| skysift::index::exact::dot(v, &q), &[]);
        let good: Vec<usize> = start.iter().copied().filter(|&i| positive(i)).take(5).collect();
        let bad: Vec<usize> = start.iter().copied().filter(|&i| !positive(i)).take(5).collect();
        let skip: Vec<usize> = good.iter().chain(&bad).copied().collect();
        let gv: Vec<Vec<f32>> = good.iter().map(|&i| vectors[i].clone()).collect();
        let bv: Vec<Vec<f32>> = bad.iter().map(|&i| vectors[i].clone()).collect();
        let moved = Rocchio::default().apply(Some(&q), &gv, &bv).expect("rocchio");
        let gi: Vec<u64> = good.iter().map(|&i| i as u64).collect();
        let bi: Vec<u64> = bad.iter().map(|&i| i as u64).collect();
        let c = Classifier::train(&col, &gi, &bi, None, &TrainOptions::default()).expect("classifier");
        let ct = Classifier::train(&col, &gi, &bi, Some((&text, &q)), &TrainOptions::default()).expect("classifier");
        let ap = [
            average_precision(&rank(&vectors, &|v| skysift::index::exact::dot(v, &q), &skip), &positive),
            average_precision(&rank(&vectors, &|v| skysift::index::exact::dot(v, &moved), &skip), &positive),
            average_precision(&rank(&vectors, &|v| c.logit(v), &skip), &positive),
            average_precision(&rank(&vectors, &|v| ct.logit(v), &skip), &positive),
        ];
        for (s, a) in sums.iter_mut().zip(ap) {
            *s += a;
        }
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            classes.iter().filter(|c| *c == name).count(),
            ap[0],
            ap[1],
            ap[2],
            ap[3]
        );
    }
    let n = names.len() as f64;
    println!(
        "| **mean (mAP)** | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
        classes.len(),
        sums[0] / n,
        sums[1] / n,
        sums[2] / n,
        sums[3] / n
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    match args.first().map(String::as_str) {
        Some("eval") => eval(),
        Some("cost") => cost(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1_000_000)),
        _ => cost(200_000),
    }
}
