//! Encoders end to end: the demo model (`models/demo`) on the in-repo sample archive (`samples/aid-mini`).
//!
//! Prerequisites: `scripts/setup_ort.sh` (ONNX Runtime into `.cache/onnxruntime/`) and
//! `scripts/setup_models.sh` (builds `models/demo/text.onnx`). Without them these tests FAIL with a message
//! saying so; they never pass silently. `SKYSIFT_TEST_MODEL_DIR` points them at another model directory
//! (with its own `fixtures/`).
//!
//! Stated tolerances (from `models/demo/fixtures/preprocess.json`, written by
//! `scripts/model/reference_preprocess.py`):
//! - resize + normalisation from Pillow's decoded pixels: exact up to f32 rounding ([`RESIZE_MAX_ABS`]);
//! - the whole pipeline from the file (our JPEG decoder vs libjpeg-turbo): mean |diff| <= [`PIXELS_MEAN_ABS`],
//!   max |diff| <= [`PIXELS_MAX_ABS`] in normalised units (1 level of 255 is about 0.017);
//! - embeddings of the reference input tensors: cosine >= [`SAME_INPUT_COSINE`] (the same graph on the same
//!   numbers); from our own decode of the files: cosine >= [`EMBEDDING_COSINE`]. The fixtures suggest 0.999
//!   there, which our JPEG decoder (`image` -> zune-jpeg) does not reach against Pillow's libjpeg-turbo: it
//!   differs by 1-7 levels on 9-19% of the values, and the demo tower turns that into cosine 0.997 on
//!   `airport_87.jpg` (measured); PNG input is exact.
//!
//! Measured figures are printed (run with `--nocapture` to see them).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use skysift::encode::{
    Device, EncodeError, Encoder, ExecutionDevice, Label, ModelManifest, Preprocessor, Prompting, Provenance,
    TemplateSet, TextQuery, Towers, ZeroShot, detect_language, load_rgb,
};

/// Resize + normalisation from identical decoded pixels: only f32 rounding may differ.
const RESIZE_MAX_ABS: f32 = 1e-5;
/// Whole-pipeline tolerance, mean absolute difference per value (normalised units).
const PIXELS_MEAN_ABS: f64 = 0.02;
/// Whole-pipeline tolerance, largest absolute difference (normalised units).
const PIXELS_MAX_ABS: f32 = 0.15;
/// Cosine of our embedding of the reference tensor with the reference embedding (same ORT version).
const SAME_INPUT_COSINE: f32 = 0.9999;
/// Cosine of our embedding from our own decode with the reference embedding (measured: 0.9971 at worst,
/// on a JPEG; see the module docs).
const EMBEDDING_COSINE: f32 = 0.995;
/// Number of sample images: 10 per class, 30 classes.
const SAMPLE_IMAGES: usize = 300;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_dir() -> PathBuf {
    std::env::var_os("SKYSIFT_TEST_MODEL_DIR").map_or_else(|| repo().join("models/demo"), PathBuf::from)
}

fn setup_hint(e: &dyn std::fmt::Display) -> String {
    format!(
        "the encoder tests need the demo model and ONNX Runtime: run scripts/setup_ort.sh and \
         scripts/setup_models.sh (then retry). Cause: {e}"
    )
}

/// The shared encoder (CPU; `Auto` is exercised separately).
fn encoder() -> &'static Encoder {
    static ENC: OnceLock<Encoder> = OnceLock::new();
    ENC.get_or_init(|| {
        for f in ["manifest.json", "image.onnx", "text.onnx", "tokenizer.json"] {
            let p = model_dir().join(f);
            assert!(p.is_file(), "{}", setup_hint(&format!("{} is missing", p.display())));
        }
        Encoder::builder(model_dir())
            .device(Device::Cpu)
            .batch_size(32)
            .build()
            .unwrap_or_else(|e| panic!("{}", setup_hint(&e)))
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

// ------------------------------------------------------------------------------------------------ fixtures

/// A minimal `.npy` reader (v1/v2/v3, C order, `|u1` or `<f4`).
fn read_npy(path: &Path) -> (Vec<usize>, NpyData) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let (header_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_text = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> =
        shape_text.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect();
    let body = &bytes[start + header_len..];
    let data = if header.contains("'descr': '|u1'") {
        NpyData::U8(body.to_vec())
    } else if header.contains("'descr': '<f4'") {
        NpyData::F32(body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    } else {
        panic!("unsupported npy dtype in {header}")
    };
    (shape, data)
}

enum NpyData {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

struct Fixture {
    source: PathBuf,
    rgb: image::RgbImage,
    pixels: Vec<f32>,
    embedding: Option<Vec<f32>>,
}

fn fixtures() -> Vec<Fixture> {
    let dir = model_dir().join("fixtures");
    let doc_path = dir.join("preprocess.json");
    let text = std::fs::read_to_string(&doc_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/model/reference_preprocess.py (scripts/setup_models.sh keeps them)",
            doc_path.display()
        )
    });
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for f in doc["fixtures"].as_array().unwrap() {
        let src = f["source"].as_str().unwrap();
        // Generated fixture images live in the fixtures folder; the others in the repository.
        let source =
            if src.contains("/fixtures/") { dir.join(Path::new(src).file_name().unwrap()) } else { repo().join(src) };
        let (shape, rgb) = read_npy(&dir.join(f["rgb_npy"].as_str().unwrap()));
        let NpyData::U8(rgb) = rgb else { panic!("rgb fixture is not uint8") };
        let rgb = image::RgbImage::from_raw(shape[1] as u32, shape[0] as u32, rgb).unwrap();
        let (_, pixels) = read_npy(&dir.join(f["pixels_npy"].as_str().unwrap()));
        let NpyData::F32(pixels) = pixels else { panic!("pixels fixture is not float32") };
        let embedding = f
            .get("embedding")
            .and_then(|e| e.as_array())
            .map(|a| a.iter().map(|v| v.as_f64().unwrap() as f32).collect());
        out.push(Fixture { source, rgb, pixels, embedding });
    }
    assert!(!out.is_empty());
    out
}

fn max_and_mean_abs(a: &[f32], b: &[f32]) -> (f32, f64) {
    assert_eq!(a.len(), b.len());
    let mut max = 0.0f32;
    let mut sum = 0.0f64;
    for (x, y) in a.iter().zip(b) {
        let d = (x - y).abs();
        max = max.max(d);
        sum += f64::from(d);
    }
    (max, sum / a.len() as f64)
}

#[test]
fn resize_and_normalise_match_pillow_exactly() {
    let manifest = ModelManifest::load(model_dir()).unwrap_or_else(|e| panic!("{}", setup_hint(&e)));
    let pre = Preprocessor::new(&manifest.image);
    for f in fixtures() {
        let ours = pre.preprocess(&f.rgb).unwrap();
        let (max, mean) = max_and_mean_abs(&ours, &f.pixels);
        println!("resize {}: max |diff| {max:e}, mean {mean:e}", f.source.display());
        assert!(max <= RESIZE_MAX_ABS, "{}: max |diff| {max} > {RESIZE_MAX_ABS}", f.source.display());
    }
}

#[test]
fn whole_preprocessing_matches_reference_within_tolerance() {
    let manifest = ModelManifest::load(model_dir()).unwrap_or_else(|e| panic!("{}", setup_hint(&e)));
    let pre = Preprocessor::new(&manifest.image);
    for f in fixtures() {
        let decoded = load_rgb(&f.source).unwrap();
        assert_eq!(decoded.dimensions(), f.rgb.dimensions());
        let level_diffs: Vec<i32> =
            decoded.as_raw().iter().zip(f.rgb.as_raw()).map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs()).collect();
        let ours = pre.preprocess(&decoded).unwrap();
        let (max, mean) = max_and_mean_abs(&ours, &f.pixels);
        println!(
            "decode {}: {} of {} values differ from Pillow (max {} levels); pixels max |diff| {max:.4}, mean {mean:.5}",
            f.source.display(),
            level_diffs.iter().filter(|d| **d > 0).count(),
            level_diffs.len(),
            level_diffs.iter().max().unwrap()
        );
        assert!(mean <= PIXELS_MEAN_ABS, "{}: mean |diff| {mean} > {PIXELS_MEAN_ABS}", f.source.display());
        assert!(max <= PIXELS_MAX_ABS, "{}: max |diff| {max} > {PIXELS_MAX_ABS}", f.source.display());
    }
}

#[test]
fn image_embeddings_match_reference() {
    let enc = encoder();
    let fixtures = fixtures();
    let with_emb: Vec<&Fixture> = fixtures.iter().filter(|f| f.embedding.is_some()).collect();
    assert!(
        !with_emb.is_empty(),
        "fixtures/preprocess.json has no embeddings; rerun scripts/model/reference_preprocess.py"
    );
    let pixels: Vec<f32> = with_emb.iter().flat_map(|f| f.pixels.iter().copied()).collect();
    let same_input = enc.encode_pixels(&pixels, with_emb.len()).unwrap();
    let paths: Vec<&Path> = with_emb.iter().map(|f| f.source.as_path()).collect();
    let from_files = enc.encode_image_files(&paths).unwrap();
    let mut worst = (1.0f32, 1.0f32);
    for ((f, a), b) in with_emb.iter().zip(&same_input).zip(&from_files) {
        let reference = f.embedding.as_ref().unwrap();
        let (c_same, c_file) = (cosine(a, reference), cosine(b, reference));
        println!("embedding {}: cosine same input {c_same:.6}, from file {c_file:.6}", f.source.display());
        worst = (worst.0.min(c_same), worst.1.min(c_file));
        assert!((a.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
    }
    assert!(worst.0 >= SAME_INPUT_COSINE, "same input: worst cosine {}", worst.0);
    assert!(worst.1 >= EMBEDDING_COSINE, "from files: worst cosine {}", worst.1);
}

#[test]
fn text_ids_and_embeddings_match_reference() {
    let enc = encoder();
    let path = model_dir().join("fixtures/text.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entries = doc["texts"].as_array().unwrap();
    let texts: Vec<&str> = entries.iter().map(|e| e["text"].as_str().unwrap()).collect();
    let ours = enc.encode_texts_uncached(&texts).unwrap();
    for (e, v) in entries.iter().zip(&ours) {
        let ids: Vec<u32> = e["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect();
        let t = e["text"].as_str().unwrap();
        assert_eq!(enc.token_ids(t).unwrap(), ids, "token ids of {t:?}");
        let reference: Vec<f32> =
            e["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let c = cosine(v, &reference);
        println!("text {:?} [{}]: cosine {c:.7}", t, e["lang"]);
        assert!(c >= SAME_INPUT_COSINE, "{t:?}: cosine {c}");
    }
}

#[test]
fn text_embeddings_are_normalised_and_batching_does_not_change_them() {
    let enc = encoder();
    let texts = ["a river", "many planes are parked next to a long building in an airport .", "森林", "x"];
    let batched = enc.encode_texts_uncached(&texts).unwrap();
    for (t, v) in texts.iter().zip(&batched) {
        assert_eq!(v.len(), enc.dim());
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{t}: norm {norm}");
        let single = enc.encode_texts_uncached(&[t]).unwrap();
        let c = cosine(v, &single[0]);
        assert!(c > 0.99999, "{t}: batched vs single cosine {c}");
    }
}

#[test]
fn paraphrases_are_closer_than_unrelated_sentences() {
    let enc = encoder();
    let v = enc
        .encode_texts(&[
            "many planes are parked at the airport",
            "several aircraft stand near the terminal of an airport",
            "a dense forest with tall green trees",
        ])
        .unwrap();
    let (para, unrelated) = (dot(&v[0], &v[1]), dot(&v[0], &v[2]));
    println!("paraphrase cosine {para:.3}, unrelated {unrelated:.3}");
    assert!(para > unrelated + 0.1, "paraphrase {para} vs unrelated {unrelated}");
}

// ------------------------------------------------------------------------------------------- the sample

struct Sample {
    classes: Vec<String>,
    captions: Vec<Vec<String>>,
    images: Vec<Vec<f32>>,
}

fn sample() -> &'static Sample {
    static SAMPLE: OnceLock<Sample> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let root = repo().join("samples/aid-mini");
        let text = std::fs::read_to_string(root.join("captions.jsonl")).unwrap();
        let (mut paths, mut classes, mut captions) = (Vec::new(), Vec::new(), Vec::new());
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            paths.push(root.join(v["image"].as_str().unwrap()));
            classes.push(v["class"].as_str().unwrap().to_string());
            captions.push(v["captions"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect());
        }
        assert_eq!(paths.len(), SAMPLE_IMAGES);
        let images = encoder().encode_image_files(&paths).unwrap();
        Sample { classes, captions, images }
    })
}

#[test]
fn images_score_their_captions_above_mismatched_ones() {
    let s = sample();
    let enc = encoder();
    // One caption per image: the first distinct one.
    let caps: Vec<&str> = s.captions.iter().map(|c| c[0].as_str()).collect();
    let cap_vecs = enc.encode_texts(&caps).unwrap();
    let n = s.images.len();
    let (mut matched, mut mismatched, mut wins, mut pairs, mut r10) = (0.0f64, 0.0f64, 0usize, 0usize, 0usize);
    for i in 0..n {
        let own = dot(&s.images[i], &cap_vecs[i]);
        matched += f64::from(own);
        for j in (0..n).filter(|&j| s.classes[j] != s.classes[i]) {
            let other = dot(&s.images[i], &cap_vecs[j]);
            mismatched += f64::from(other);
            pairs += 1;
            wins += usize::from(own > other);
        }
        // text -> image rank of image i for caption i
        let rank = (0..n).filter(|&k| dot(&s.images[k], &cap_vecs[i]) > dot(&s.images[i], &cap_vecs[i])).count();
        r10 += usize::from(rank < 10);
    }
    let (matched, mismatched) = (matched / n as f64, mismatched / pairs as f64);
    let win_rate = wins as f64 / pairs as f64;
    let r10 = r10 as f64 / n as f64;
    println!(
        "aid-mini: mean cosine image-own caption {matched:.3}, image-other-class caption {mismatched:.3}; \
         own caption beats other-class captions in {:.1}% of pairs; text->image R@10 {r10:.3}",
        100.0 * win_rate
    );
    // Measured with the demo model: 0.343 vs 0.018, 97.9% of pairs, R@10 0.813 (first caption per image).
    assert!(matched > mismatched + 0.2, "matched {matched} vs mismatched {mismatched}");
    assert!(win_rate >= 0.95, "own caption wins only {win_rate}");
    assert!(r10 >= 0.70, "text->image R@10 {r10}");
}

fn zero_shot_accuracy(langs: &[&str], prompting: Prompting) -> f64 {
    let s = sample();
    let zs = ZeroShot::from_template_classes(encoder(), langs, prompting).unwrap();
    let predicted = zs.classify(&s.images, 1).unwrap();
    let correct = predicted.iter().zip(&s.classes).filter(|(p, c)| p[0].label == **c).count();
    correct as f64 / s.images.len() as f64
}

#[test]
fn ensemble_beats_or_equals_a_single_template_in_zero_shot() {
    let mut table = Vec::new();
    let (mut sum_single, mut sum_ens) = (0.0, 0.0);
    for lang in ["en", "de", "fr", "es", "pt", "it", "nl", "zh", "ko", "ru"] {
        let single = zero_shot_accuracy(&[lang], Prompting::Single);
        let ensemble = zero_shot_accuracy(&[lang], Prompting::Ensemble);
        sum_single += single;
        sum_ens += ensemble;
        table.push(format!("{lang}: single {single:.3} ensemble {ensemble:.3}"));
    }
    let off = zero_shot_accuracy(&["en"], Prompting::Off);
    println!("zero-shot top-1 on aid-mini (300 images, 30 classes):\n  {}", table.join("\n  "));
    println!("  mean: single {:.3} ensemble {:.3}; en bare class phrase {off:.3}", sum_single / 10.0, sum_ens / 10.0);
    let en_single = zero_shot_accuracy(&["en"], Prompting::Single);
    let en_ens = zero_shot_accuracy(&["en"], Prompting::Ensemble);
    // Measured with the demo model: en 0.850 single, 0.857 ensemble; mean of the ten languages 0.751 single,
    // 0.759 ensemble. Per language the ensemble is not always ahead: de, fr and pt lose 1-4 images of 300.
    assert!(en_ens >= en_single, "en: ensemble {en_ens} < single {en_single}");
    assert!(sum_ens >= sum_single, "mean over languages: ensemble {} < single {}", sum_ens / 10.0, sum_single / 10.0);
    assert!(en_ens >= 0.82, "en ensemble zero-shot {en_ens} is below the demo model's measured 0.857 - 0.035");
    assert!(sum_ens / 10.0 >= 0.72, "mean ensemble zero-shot {} is below the measured 0.759 - 0.04", sum_ens / 10.0);
}

/// The class most represented among the top 10 images of a query (ties: the better-ranked class).
fn top_class(query: &[f32]) -> String {
    let s = sample();
    let mut order: Vec<usize> = (0..s.images.len()).collect();
    order.sort_by(|&a, &b| dot(&s.images[b], query).total_cmp(&dot(&s.images[a], query)));
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (rank, &i) in order.iter().take(10).enumerate() {
        let e = counts.entry(s.classes[i].as_str()).or_insert((0, rank));
        e.0 += 1;
    }
    counts.into_iter().max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1))).unwrap().0.to_string()
}

/// The first phrases of the cross-language test: one plain object each, which must all agree.
const CORE_PHRASES: usize = 6;

#[test]
fn german_and_chinese_queries_find_the_same_top_class_as_english() {
    let enc = encoder();
    let phrases = [
        ("an airport", "ein Flughafen", "机场"),
        ("a beach", "ein Strand", "海滩"),
        ("a forest", "ein Wald", "森林"),
        ("a river", "ein Fluss", "河流"),
        ("a bridge", "eine Brücke", "桥梁"),
        ("a stadium", "ein Stadion", "体育场"),
        ("farmland", "das Ackerland", "农田"),
        ("a desert", "eine Wüste", "沙漠"),
        ("a port with ships", "ein Hafen mit Schiffen", "有船的港口"),
        ("a parking lot", "ein Parkplatz", "停车场"),
        ("a church", "eine Kirche", "教堂"),
        ("storage tanks", "die Öltanks", "储油罐"),
    ];
    let mut agree = (0, 0);
    let mut lines = Vec::new();
    let mut core_misses = Vec::new();
    for (i, (en, de, zh)) in phrases.into_iter().enumerate() {
        let q = |t: &str| enc.query(&TextQuery::new(t)).unwrap();
        let (qe, qd, qz) = (q(en), q(de), q(zh));
        assert_eq!(qe.language.as_deref(), Some("en"), "{en}");
        assert_eq!(qd.language.as_deref(), Some("de"), "{de}");
        assert_eq!(qz.language.as_deref(), Some("zh"), "{zh}");
        let (ce, cd, cz) = (top_class(&qe.vector), top_class(&qd.vector), top_class(&qz.vector));
        agree.0 += usize::from(cd == ce);
        agree.1 += usize::from(cz == ce);
        let mut line = format!("{en:?} -> {ce}; {de:?} -> {cd}; {zh:?} -> {cz}");
        if cd != ce {
            let bare = top_class(&enc.query(&TextQuery::new(de).prompting(Prompting::Off)).unwrap().vector);
            line += &[" (German without templates -> ", &bare, ")"].concat();
        }
        if i < CORE_PHRASES && (cd != ce || cz != ce) {
            core_misses.push(en);
        }
        lines.push(line);
    }
    println!("top class among the 10 best images:\n  {}", lines.join("\n  "));
    println!("agreement with English: German {}/{}, Chinese {}/{}", agree.0, phrases.len(), agree.1, phrases.len());
    // Measured with the demo model: German 10/12 ("das Ackerland" -> BareLand, "ein Parkplatz" -> Park),
    // Chinese 12/12. The single-object phrases (the first CORE_PHRASES) must all agree.
    assert!(core_misses.is_empty(), "simple phrases that disagree: {core_misses:?}");
    assert!(agree.0 >= 9, "German agrees on {}/{}", agree.0, phrases.len());
    assert!(agree.1 >= 11, "Chinese agrees on {}/{}", agree.1, phrases.len());
}

#[test]
fn zero_shot_labels_in_several_languages_and_top_n() {
    let enc = encoder();
    let s = sample();
    let labels = [
        Label::new("Beach").phrase("en", "a beach").phrase("de", "ein Strand"),
        Label::new("Forest").phrase("en", "a forest").phrase("zh", "森林"),
        Label::new("Airport").phrase("fr", "un aéroport"),
    ];
    let zs = ZeroShot::new(enc, &labels, Prompting::Ensemble).unwrap();
    let picks: Vec<usize> =
        ["Beach", "Forest", "Airport"].iter().map(|c| s.classes.iter().position(|x| x == c).unwrap()).collect();
    for (&i, label) in picks.iter().zip(["Beach", "Forest", "Airport"]) {
        let top = zs.top(&s.images[i], 3).unwrap();
        assert_eq!(top.len(), 3);
        assert!(top.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(top[0].label, label, "{top:?}");
    }
    assert!(ZeroShot::new(enc, &[], Prompting::Ensemble).is_err());
}

// --------------------------------------------------------------------------- queries, cache, templates

#[test]
fn cache_hits_return_identical_vectors() {
    let enc = encoder();
    let text = "a cache test: white storage tanks near a port";
    let before = enc.cache().stats();
    let first = enc.encode_texts(&[text]).unwrap().remove(0);
    let second = enc.encode_texts(&[text, text]).unwrap();
    let after = enc.cache().stats();
    assert!(after.hits >= before.hits + 2, "{before:?} -> {after:?}");
    for v in &second {
        assert!(first.iter().zip(v).all(|(a, b)| a.to_bits() == b.to_bits()), "a hit must be bit-identical");
    }
    let fresh = enc.encode_texts_uncached(&[text]).unwrap().remove(0);
    assert!(cosine(&first, &fresh) > 0.99999);
    // A cache shared with an encoder of another model never returns this model's vectors.
    assert!(enc.cache().get(skysift::encode::Fingerprint([0; 32]), text).is_none());
}

#[test]
fn templates_off_encodes_the_bare_text_and_negatives_push_away() {
    let enc = encoder();
    let bare = enc.query(&TextQuery::new("a river").prompting(Prompting::Off)).unwrap();
    assert_eq!(bare.prompts, vec!["a river"]);
    assert_eq!(bare.vector, enc.encode_text("a river").unwrap());
    let ens = enc.query(&TextQuery::new("a river")).unwrap();
    assert_eq!(ens.prompts.len(), enc.templates().get("en").unwrap().templates.len());
    assert!(ens.prompts.iter().all(|p| p.contains("a river")));
    let bridge = enc.query_text("a bridge").unwrap();
    let neg = enc.query(&TextQuery::new("a river").negative("a bridge").negative_weight(0.8)).unwrap();
    assert!(dot(&neg.vector, &bridge) < dot(&ens.vector, &bridge) - 0.05);
    let norm: f32 = neg.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    assert!(enc.query(&TextQuery::new("x").negative_weight(f32::NAN)).is_err());
    assert!(enc.query(&TextQuery::new("  ")).is_err());
}

#[test]
fn user_template_sets_are_used_and_unknown_languages_refused() {
    let enc = encoder();
    let set = TemplateSet::new("xx", ["overhead imagery: {}", "{}, seen from orbit"]).unwrap();
    enc.set_templates(set).unwrap();
    let q = enc.query(&TextQuery::new("a harbour").language("xx")).unwrap();
    assert_eq!(q.prompts, vec!["overhead imagery: a harbour", "a harbour, seen from orbit"]);
    let err = enc.query(&TextQuery::new("a harbour").language("tlh")).unwrap_err();
    assert!(matches!(err, EncodeError::UnknownLanguage { .. }), "{err}");
    // Japanese is detected but has no template set: the bare text is encoded, with a note.
    let ja = enc.query(&TextQuery::new("港の航空写真")).unwrap();
    assert!(ja.language.is_none() && ja.note.is_some());
    // A directory of sets replaces by language.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("yy.json"), r#"{"templates": ["yy {}"]}"#).unwrap();
    assert_eq!(enc.load_templates_dir(dir.path()).unwrap(), vec!["yy"]);
    assert_eq!(enc.query(&TextQuery::new("z").language("yy")).unwrap().prompts, vec!["yy z"]);
}

#[test]
fn language_detection_on_the_check_sentences() {
    let text = std::fs::read_to_string(repo().join("scripts/model/text_check_sentences.json")).unwrap();
    let doc: HashMap<String, Vec<String>> = serde_json::from_str(&text).unwrap();
    let (mut right, mut total) = (0, 0);
    for (lang, sentences) in &doc {
        for s in sentences {
            total += 1;
            let got = detect_language(s).unwrap().lang;
            if got == lang {
                right += 1;
            } else {
                println!("detected {got} for [{lang}] {s:?}");
            }
        }
    }
    println!("language detection: {right}/{total}");
    assert_eq!(right, total);
}

// ----------------------------------------------------------------------------- provenance and manifests

/// A copy of the demo model (same bytes) with one preprocessing constant changed.
///
/// Copied, not hard-linked: a link (and its removal with `dir`) moves the source's change time,
/// which the caches read as a write, so a test running beside this one would find the demo model
/// "not settled" and write no optimised-model slot.
fn altered_model(dir: &Path) {
    for f in ["image.onnx", "text.onnx", "tokenizer.json"] {
        std::fs::copy(model_dir().join(f), dir.join(f)).unwrap();
    }
    let manifest = std::fs::read_to_string(model_dir().join("manifest.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    v["model_id"] = "demo-with-other-mean".into();
    v["image"]["mean"][0] = 0.5.into();
    v.as_object_mut().unwrap().remove("default_templates");
    std::fs::write(dir.join("manifest.json"), serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn provenance_mismatch_is_refused() {
    let enc = encoder();
    let p = enc.provenance();
    assert_eq!(p.dim, enc.dim());
    assert_eq!(Provenance::from_params(&p.to_params()).unwrap(), *p);

    // Stored with a collection and read back through the database.
    let db_dir = tempfile::tempdir().unwrap();
    let db = skysift::Db::open(db_dir.path()).unwrap();
    let mut spec = skysift::CollectionSpec::new(enc.dim() as u32, skysift::schema::Metric::Cosine);
    spec.params.extend(p.to_params());
    db.create_collection("scenes", spec).unwrap();
    let params = db.snapshot().collection("scenes").unwrap().params().to_vec();
    enc.check_params(&params).unwrap();

    // Same files, one preprocessing constant changed: another embedding space.
    let other_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    altered_model(other_dir.path());
    let other = Encoder::builder(other_dir.path()).device(Device::Cpu).towers(Towers::Text).build().unwrap();
    assert_ne!(other.fingerprint(), enc.fingerprint());
    let err = other.check_params(&params).unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    assert!(matches!(err, EncodeError::ModelMismatch { .. }));
    assert!(msg.contains(&p.model_id) && msg.contains("demo-with-other-mean"), "{msg}");
    // Through the crate's error type too.
    let wrapped: skysift::Error = err.into();
    assert!(wrapped.to_string().contains("demo-with-other-mean"));
    // The text tower alone still has the full fingerprint (it covers the image tower too).
    let text_only = Encoder::builder(model_dir()).device(Device::Cpu).towers(Towers::Text).build().unwrap();
    assert_eq!(text_only.fingerprint(), enc.fingerprint());
    assert!(matches!(text_only.encode_pixels(&[], 0), Err(EncodeError::TowerNotLoaded { tower: "image" })));
}

#[test]
fn manifest_path_escapes_are_refused() {
    let manifest = std::fs::read_to_string(model_dir().join("manifest.json")).unwrap();
    let base: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let cases: [(&str, &str, serde_json::Value); 5] = [
        ("text", "onnx", "../text.onnx".into()),
        ("text", "tokenizer", "/etc/passwd".into()),
        ("image", "onnx", "sub/../../image.onnx".into()),
        ("image", "external_data", serde_json::json!(["../../weights.bin"])),
        ("", "default_templates", "../templates".into()),
    ];
    for (section, key, value) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut v = base.clone();
        if section.is_empty() {
            v[key] = value.clone();
        } else {
            v[section][key] = value.clone();
        }
        std::fs::write(dir.path().join("manifest.json"), v.to_string()).unwrap();
        let err = Encoder::builder(dir.path()).build().unwrap_err();
        assert!(matches!(err, EncodeError::PathEscape { .. }), "{section}.{key}={value}: {err}");
    }
    #[cfg(unix)]
    {
        // A symlink inside the model directory that leads outside it.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manifest.json"), &manifest).unwrap();
        std::os::unix::fs::symlink(model_dir().join("text.onnx"), dir.path().join("text.onnx")).unwrap();
        let err = ModelManifest::load(dir.path()).unwrap_err();
        assert!(matches!(err, EncodeError::PathEscape { .. }), "{err}");
        println!("{err}");
    }
}

#[test]
fn missing_runtime_and_model_files_fail_with_instructions() {
    let err = Encoder::builder(model_dir()).ort_library("/nonexistent/libonnxruntime.so").build().unwrap_err();
    assert!(matches!(err, EncodeError::RuntimeNotFound { .. }), "{err}");
    assert!(err.to_string().contains("scripts/setup_ort.sh"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(model_dir().join("manifest.json"), dir.path().join("manifest.json")).unwrap();
    let err = Encoder::builder(dir.path()).build().unwrap_err();
    assert!(matches!(err, EncodeError::ModelFileMissing { .. }), "{err}");
    assert!(err.to_string().contains("scripts/setup_models.sh"), "{err}");
}

#[test]
fn auto_device_reports_where_it_runs() {
    let _ = encoder(); // the runtime is loaded
    let auto = Encoder::builder(model_dir()).device(Device::Auto).towers(Towers::Text).announce_fallback(false).build();
    let auto = auto.unwrap();
    match auto.device() {
        ExecutionDevice::Cpu => {
            assert!(auto.notes().iter().any(|n| n.contains("CPU")), "{:?}", auto.notes());
            println!("device auto -> cpu: {:?}", auto.notes());
            let cuda = Encoder::builder(model_dir()).device(Device::Cuda).towers(Towers::Text).build().unwrap_err();
            assert!(matches!(cuda, EncodeError::CudaUnavailable { .. }), "{cuda}");
            assert!(cuda.to_string().contains("setup_ort.sh --gpu"));
        }
        ExecutionDevice::Cuda => println!("device auto -> cuda"),
    }
}

#[test]
fn decoded_images_of_other_kinds_are_accepted() {
    let enc = encoder();
    let rgb = load_rgb(repo().join("samples/aid-mini/Beach/").join(first_jpg("Beach"))).unwrap();
    let gray = image::DynamicImage::ImageRgb8(rgb.clone()).grayscale();
    let rgba = image::DynamicImage::ImageRgba8(image::DynamicImage::ImageRgb8(rgb.clone()).to_rgba8());
    let out = enc.encode_images(&[gray, rgba.clone(), image::DynamicImage::ImageRgb8(rgb.clone())]).unwrap();
    assert_eq!(out.len(), 3);
    assert!(cosine(&out[1], &out[2]) > 0.99999, "alpha is dropped");
    let direct = enc.encode_images(&[rgb]).unwrap();
    assert!(cosine(&direct[0], &out[2]) > 0.99999);
}

fn first_jpg(class: &str) -> String {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("samples/aid-mini").join(class))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| Path::new(n).extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
        .collect();
    names.sort();
    names.remove(0)
}

// --------------------------------------------------------------------------- optimised models kept across processes

/// Waits until `path` is old enough for a cache entry (see `digest_cache::SETTLED`: 2 s).
fn settle(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    let newest = meta.mtime().max(meta.ctime());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    if now - newest < 3 {
        std::thread::sleep(std::time::Duration::from_secs((3 - (now - newest)).unsigned_abs()));
    }
}

/// Each slot's `entry.json` under `cache`, with its text.
fn slots(cache: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        let entry = e.path().join("entry.json");
        if let Ok(text) = std::fs::read_to_string(&entry) {
            out.insert(entry, text);
        }
    }
    out
}

#[test]
fn optimised_models_kept_across_processes_give_the_same_vectors_bit_for_bit() {
    for f in ["image.onnx", "text.onnx"] {
        settle(&model_dir().join(f));
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("ort");
    let build = |cache: Option<PathBuf>| {
        Encoder::builder(model_dir())
            .device(Device::Cpu)
            .optimized_model_cache(cache)
            .build()
            .unwrap_or_else(|e| panic!("{}", setup_hint(&e)))
    };
    let texts = ["a harbour with many boats", "ein Wald mit vielen Bäumen", "机场", "x"];
    let images: Vec<PathBuf> = ["Port", "Forest", "Airport"]
        .iter()
        .filter_map(|class| {
            let dir = repo().join("samples/aid-mini").join(class);
            let mut jpgs: Vec<PathBuf> = std::fs::read_dir(dir)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
                .collect();
            jpgs.sort();
            jpgs.into_iter().next()
        })
        .collect();
    assert_eq!(images.len(), 3, "sample images are found");
    let vectors = |enc: &Encoder| {
        let mut v = enc.encode_texts_uncached(&texts).unwrap();
        v.extend(enc.encode_image_files(&images).unwrap());
        v.into_iter().map(|row| row.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()).collect::<Vec<_>>()
    };
    let plain = vectors(&build(None));
    assert!(slots(&cache).is_empty(), "no cache asked for, none written");

    // The first encoder writes one slot per tower; a second one uses them without writing again.
    let writer = vectors(&build(Some(cache.clone())));
    let written = slots(&cache);
    assert_eq!(written.len(), 2, "one slot per tower: {written:?}");
    let reader = vectors(&build(Some(cache.clone())));
    assert_eq!(slots(&cache), written, "current slots are used as they are");
    assert!(plain == writer && plain == reader, "the same vectors, bit for bit, with and without the cache");

    // A slot whose weights were written since is not used: it is written again, and the vectors hold.
    for entry in written.keys() {
        let slot = entry.parent().unwrap();
        for f in std::fs::read_dir(slot).unwrap().flatten().filter(|f| f.path().is_dir()) {
            let data = f.path().join("model.onnx.data");
            let len = std::fs::metadata(&data).unwrap().len();
            std::fs::write(&data, vec![0u8; usize::try_from(len).unwrap()]).unwrap();
        }
    }
    let rewritten = vectors(&build(Some(cache.clone())));
    assert_eq!(rewritten, plain, "a damaged slot is not read");
    let now = slots(&cache);
    assert_eq!(now.len(), 2);
    assert!(now.iter().all(|(k, v)| written.get(k) != Some(v)), "both slots were written again");
}
