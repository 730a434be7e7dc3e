//! Real embeddings for the index comparison (issue 3): encodes the AID images of
//! `../shared/data/aid-rsicd` (8,973 scenes; reads `../shared`, which a user's clone lacks) and their
//! RSICD captions with the demo model, and writes a dataset in the layout of `../shared/bench`
//! (`base.fbin`, `query.fbin`, `query_sample.fbin`, `gt_unfiltered.ibin`: u32 rows, u32 cols, then
//! little-endian data) that `benches/ann/real.py` runs skysift and hnswlib on.
//!
//! Base: every image. Test queries: the first caption of every third image. Query sample (for the
//! graph's query-guided edges): the second caption of the other images, so no test caption is in
//! it. Ground truth: exact top-100 by inner product over the base.
//!
//! Run: `SKYSIFT_REAL_OUT=target/real cargo bench --bench real_ann` (about 2 minutes of encoding on
//! two CPU cores). Needs `scripts/setup_ort.sh` and `scripts/setup_models.sh`.

use std::io::Write;
use std::path::{Path, PathBuf};

use skysift::encode::{Device, Encoder};

const GT_K: usize = 100;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write_bin<T: Copy>(path: &Path, rows: usize, cols: usize, data: &[T], le: impl Fn(T) -> [u8; 4]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    f.write_all(&(rows as u32).to_le_bytes()).expect("write");
    f.write_all(&(cols as u32).to_le_bytes()).expect("write");
    for &x in data {
        f.write_all(&le(x)).expect("write");
    }
    f.flush().expect("flush");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let data = repo().join("../shared/data/aid-rsicd");
    let out = PathBuf::from(std::env::var("SKYSIFT_REAL_OUT").unwrap_or_else(|_| "target/real-ann".into()));
    std::fs::create_dir_all(&out).expect("output folder");
    let lines = std::fs::read_to_string(data.join("captions.jsonl"))
        .unwrap_or_else(|e| panic!("{}: {e} (this bench reads ../shared)", data.display()));
    let mut images = Vec::new();
    let mut captions: Vec<Vec<String>> = Vec::new();
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("captions.jsonl line");
        images.push(data.join("images").join(v["image"].as_str().expect("image")));
        captions.push(
            v["captions"].as_array().expect("captions").iter().filter_map(|c| c.as_str().map(str::to_owned)).collect(),
        );
    }
    let enc = Encoder::builder(repo().join("models/demo"))
        .device(Device::Cpu)
        .batch_size(64)
        .build()
        .unwrap_or_else(|e| panic!("run scripts/setup_ort.sh and scripts/setup_models.sh first: {e}"));
    let t = std::time::Instant::now();
    let mut base = Vec::with_capacity(images.len() * 512);
    for (i, chunk) in images.chunks(256).enumerate() {
        for v in enc.encode_image_files(chunk).expect("encode images") {
            base.extend(v);
        }
        eprint!("\rimages {}/{}", i * 256 + chunk.len(), images.len());
    }
    eprintln!("\rimages {} encoded in {:.0}s", images.len(), t.elapsed().as_secs_f64());
    let dim = base.len() / images.len();
    let pick = |keep: &dyn Fn(usize) -> bool, which: usize| -> Vec<&str> {
        captions
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .filter_map(|(_, c)| c.get(which).or_else(|| c.first()).map(String::as_str))
            .collect()
    };
    let test = pick(&|i| i % 3 == 0, 0);
    let sample = pick(&|i| i % 3 != 0, 1);
    let encode = |texts: &[&str]| -> Vec<f32> {
        let mut v = Vec::with_capacity(texts.len() * dim);
        for chunk in texts.chunks(512) {
            for e in enc.encode_texts_uncached(chunk).expect("encode captions") {
                v.extend(e);
            }
        }
        v
    };
    let t = std::time::Instant::now();
    let queries = encode(&test);
    let sample_v = encode(&sample);
    eprintln!("{} + {} captions encoded in {:.0}s", test.len(), sample.len(), t.elapsed().as_secs_f64());
    // Exact top-GT_K by inner product.
    let n = images.len();
    let mut gt = Vec::with_capacity(test.len() * GT_K);
    for q in queries.chunks(dim) {
        let mut scored: Vec<(f32, u32)> = base
            .chunks(dim)
            .enumerate()
            .map(|(i, b)| (q.iter().zip(b).map(|(x, y)| x * y).sum::<f32>(), i as u32))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        gt.extend(scored.iter().take(GT_K).map(|s| s.1));
    }
    write_bin(&out.join("base.fbin"), n, dim, &base, f32::to_le_bytes);
    write_bin(&out.join("query.fbin"), test.len(), dim, &queries, f32::to_le_bytes);
    write_bin(&out.join("query_sample.fbin"), sample.len(), dim, &sample_v, f32::to_le_bytes);
    write_bin(&out.join("gt_unfiltered.ibin"), test.len(), GT_K, &gt, u32::to_le_bytes);
    // The modality gap, for the note: mean cosine of a caption to its own image and to the base mean.
    let mean: Vec<f32> = (0..dim).map(|d| base.chunks(dim).map(|b| b[d]).sum::<f32>() / n as f32).collect();
    let own: f32 = queries
        .chunks(dim)
        .zip((0..n).filter(|i| i % 3 == 0))
        .map(|(q, i)| q.iter().zip(&base[i * dim..(i + 1) * dim]).map(|(x, y)| x * y).sum::<f32>())
        .sum::<f32>()
        / test.len() as f32;
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
    let to_mean: f32 =
        queries.chunks(dim).map(|q| q.iter().zip(&mean).map(|(x, y)| x * y).sum::<f32>() / norm).sum::<f32>()
            / test.len() as f32;
    println!(
        "wrote {}: base {n} x {dim}, queries {}, query sample {}; mean cos(caption, own image) {own:.3}, \
         cos(caption, base mean) {to_mean:.3}",
        out.display(),
        test.len(),
        sample.len()
    );
}
