//! Encoder benchmarks on the CPU, each next to its baseline in the same run:
//!
//! - `encode_images`: images/s through the demo image tower at batch 1, 8 and 32 (decoded images in
//!   memory; preprocessing included), next to preprocessing alone (the Rust share of the work);
//! - `encode_texts`: texts/s through the text tower at batch 1, 8 and 32 (distinct captions, cache off);
//! - `text_cache`: latency of a cache hit vs. a real encode of the same text.
//!
//! Needs `scripts/setup_ort.sh` and `scripts/setup_models.sh` (it panics with that message otherwise).
//! Run: `cargo bench --bench encode` (criterion; figures in `target/criterion`). `SKYSIFT_BENCH_THREADS`
//! sets the ONNX Runtime thread count (default: ONNX Runtime's choice).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use skysift::encode::{Device, Encoder, load_rgb};

const BATCHES: [usize; 3] = [1, 8, 32];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn encoder() -> Encoder {
    let mut b = Encoder::builder(repo().join("models/demo")).device(Device::Cpu).batch_size(32);
    if let Some(t) = std::env::var("SKYSIFT_BENCH_THREADS").ok().and_then(|t| t.parse().ok()) {
        b = b.threads(t);
    }
    b.build().unwrap_or_else(|e| panic!("run scripts/setup_ort.sh and scripts/setup_models.sh first: {e}"))
}

/// The first 32 sample images (decoded) and 32 distinct captions.
fn sample() -> (Vec<image::RgbImage>, Vec<String>) {
    let root = repo().join("samples/aid-mini");
    let text = std::fs::read_to_string(root.join("captions.jsonl")).expect("samples/aid-mini/captions.jsonl");
    let (mut images, mut captions) = (Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()).step_by(9).take(32) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        let rel = v["image"].as_str().expect("image");
        images.push(load_rgb(root.join(Path::new(rel))).expect("decode"));
        captions.push(v["captions"][0].as_str().expect("caption").to_string());
    }
    assert_eq!(images.len(), 32, "aid-mini has fewer than 32 usable images");
    (images, captions)
}

fn images(c: &mut Criterion) {
    let enc = encoder();
    let (imgs, _) = sample();
    let pre = enc.preprocessor().expect("image tower").clone();
    let mut g = c.benchmark_group("encode_images");
    g.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(2));
    for n in BATCHES {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("tower", n), &n, |b, &n| {
            b.iter(|| black_box(enc.encode_images(&imgs[..n]).expect("encode")));
        });
        g.bench_with_input(BenchmarkId::new("preprocess_only", n), &n, |b, &n| {
            b.iter(|| {
                for img in &imgs[..n] {
                    black_box(pre.preprocess(img).expect("preprocess"));
                }
            });
        });
    }
    g.finish();
}

fn texts(c: &mut Criterion) {
    let enc = encoder();
    let (_, caps) = sample();
    let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
    let mut g = c.benchmark_group("encode_texts");
    g.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(2));
    for n in BATCHES {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("tower", n), &n, |b, &n| {
            b.iter(|| black_box(enc.encode_texts_uncached(&refs[..n]).expect("encode")));
        });
    }
    g.finish();
}

fn cache(c: &mut Criterion) {
    let enc = encoder();
    let text = "many planes are parked next to a long building in an airport";
    enc.encode_text(text).expect("warm the cache");
    let mut g = c.benchmark_group("text_cache");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    g.bench_function("hit", |b| b.iter(|| black_box(enc.encode_text(black_box(text)).expect("hit"))));
    g.bench_function("encode_baseline", |b| {
        b.iter(|| black_box(enc.encode_texts_uncached(&[black_box(text)]).expect("encode")));
    });
    g.finish();
}

criterion_group!(benches, images, texts, cache);
criterion_main!(benches);
