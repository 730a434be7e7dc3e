//! Language detection of queries: accuracy of `skysift::encode::detect_language` on the fixed set
//! `tests/fixtures/lang/queries.tsv` (1000 short queries, 100 per supported language: class names
//! alone, in the single-prompt template, in the other templates, and hand-translated captions).
//! `cargo run --release --example lang_accuracy` prints the same figures next to `whatlang`'s.

use std::collections::BTreeMap;
use std::path::PathBuf;

use skysift::encode::{SUPPORTED_LANGUAGES, detect_language};

/// Least share of the whole set detected right (measured: 0.928).
const MIN_ACCURACY: f64 = 0.92;
/// Least share of each kind with a template or caption around the class (measured: 0.983 or more).
const MIN_ACCURACY_IN_A_SENTENCE: f64 = 0.97;
/// Least share of each script-decided language (zh, ko, ru; measured: 1.0).
const MIN_ACCURACY_BY_SCRIPT: f64 = 1.0;

fn queries() -> Vec<(String, String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lang/queries.tsv");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut p = l.splitn(3, '\t');
            let mut next = || p.next().unwrap().to_owned();
            (next(), next(), next())
        })
        .collect()
}

#[test]
fn detector_accuracy_on_the_ten_language_set() {
    let set = queries();
    assert!(set.len() >= 500, "{} queries", set.len());
    let mut by: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (lang, kind, text) in &set {
        let right = detect_language(text).is_some_and(|d| d.lang == lang);
        for key in [format!("lang {lang}"), format!("kind {kind}"), "all".to_owned()] {
            let e = by.entry(key).or_default();
            e.0 += usize::from(right);
            e.1 += 1;
        }
    }
    let acc = |key: &str| by.get(key).map_or(0.0, |(ok, n)| *ok as f64 / *n as f64);
    for lang in SUPPORTED_LANGUAGES {
        assert_eq!(by.get(&format!("lang {lang}")).map(|e| e.1), Some(100), "{lang}: 100 queries");
    }
    assert!(acc("all") >= MIN_ACCURACY, "accuracy {:.3}: {by:?}", acc("all"));
    for kind in ["template", "ensemble", "caption"] {
        let a = acc(&format!("kind {kind}"));
        assert!(a >= MIN_ACCURACY_IN_A_SENTENCE, "{kind}: {a:.3}");
    }
    for lang in ["zh", "ko", "ru"] {
        assert!(acc(&format!("lang {lang}")) >= MIN_ACCURACY_BY_SCRIPT, "{lang}: {by:?}");
    }
}
