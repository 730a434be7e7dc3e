//! Accuracy of query language detection on `tests/fixtures/lang/queries.tsv`: skysift's own
//! detector (`skysift::encode::detect_language`) against `whatlang` restricted to the same ten
//! languages, per language and per kind of query.
//!
//! ```text
//! cargo run --release --example lang_accuracy
//! ```

use std::collections::BTreeMap;

use skysift::encode::{SUPPORTED_LANGUAGES, detect_language};
use whatlang::{Detector, Lang};

const KINDS: [&str; 4] = ["class", "template", "ensemble", "caption"];

fn code(l: Lang) -> &'static str {
    match l {
        Lang::Eng => "en",
        Lang::Deu => "de",
        Lang::Fra => "fr",
        Lang::Spa => "es",
        Lang::Por => "pt",
        Lang::Ita => "it",
        Lang::Nld => "nl",
        Lang::Cmn => "zh",
        Lang::Kor => "ko",
        Lang::Rus => "ru",
        _ => "?",
    }
}

type Tally = BTreeMap<(String, String), (usize, usize)>;

fn count(t: &mut Tally, lang: &str, kind: &str, right: bool) {
    for key in [(lang.to_owned(), String::new()), (String::new(), kind.to_owned()), (String::new(), String::new())] {
        let e = t.entry(key).or_default();
        e.0 += usize::from(right);
        e.1 += 1;
    }
}

fn pct(t: &Tally, lang: &str, kind: &str) -> f64 {
    t.get(&(lang.to_owned(), kind.to_owned())).map_or(0.0, |(ok, n)| 100.0 * *ok as f64 / *n as f64)
}

fn main() -> std::io::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lang/queries.tsv");
    let text = std::fs::read_to_string(path)?;
    let whatlang = Detector::with_allowlist(vec![
        Lang::Eng,
        Lang::Deu,
        Lang::Fra,
        Lang::Spa,
        Lang::Por,
        Lang::Ita,
        Lang::Nld,
        Lang::Cmn,
        Lang::Kor,
        Lang::Rus,
    ]);
    let (mut ours, mut theirs, mut n) = (Tally::new(), Tally::new(), 0);
    // The two combined: one decides where it is sure, the other where it is not.
    let (mut ours_then, mut theirs_then, mut sure_only) = (Tally::new(), Tally::new(), Tally::new());
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut p = line.splitn(3, '\t');
        let (Some(lang), Some(kind), Some(q)) = (p.next(), p.next(), p.next()) else { continue };
        let mine = detect_language(q);
        let other = whatlang.detect(q);
        count(&mut ours, lang, kind, mine.as_ref().is_some_and(|d| d.lang == lang));
        count(&mut theirs, lang, kind, other.as_ref().is_some_and(|i| code(i.lang()) == lang));
        let first_mine = match (&mine, &other) {
            (Some(d), Some(i)) if !d.reliable => code(i.lang()) == lang,
            (d, _) => d.as_ref().is_some_and(|d| d.lang == lang),
        };
        let first_other = match (&other, &mine) {
            (Some(i), Some(d)) if !i.is_reliable() => d.lang == lang,
            (Some(i), _) => code(i.lang()) == lang,
            (None, d) => d.as_ref().is_some_and(|d| d.lang == lang),
        };
        // Hand-written, and whatlang only where it is reliable and the hand-written is not.
        let sure = match (&mine, &other) {
            (Some(d), Some(i)) if !d.reliable && i.is_reliable() => code(i.lang()) == lang,
            (d, _) => d.as_ref().is_some_and(|d| d.lang == lang),
        };
        count(&mut sure_only, lang, kind, sure);
        count(&mut ours_then, lang, kind, first_mine);
        count(&mut theirs_then, lang, kind, first_other);
        n += 1;
    }
    println!("{n} queries, % detected right");
    print!("| detector | all |");
    for l in SUPPORTED_LANGUAGES {
        print!(" {l} |");
    }
    for k in KINDS {
        print!(" {k} |");
    }
    println!();
    for (name, t) in [
        ("skysift (hand-written)", &ours),
        ("whatlang", &theirs),
        ("hand-written, whatlang where it is unreliable", &ours_then),
        ("whatlang, hand-written where it is unreliable", &theirs_then),
        ("hand-written, whatlang where only whatlang is reliable", &sure_only),
    ] {
        print!("| {name} | {:.1} |", pct(t, "", ""));
        for l in SUPPORTED_LANGUAGES {
            print!(" {:.0} |", pct(t, l, ""));
        }
        for k in KINDS {
            print!(" {:.1} |", pct(t, "", k));
        }
        println!();
    }
    Ok(())
}
