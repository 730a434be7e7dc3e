//! Language detection for queries, dependency-free: script ranges decide Korean, Chinese (and Japanese) and
//! Russian; Latin-script text is scored by stop words, diacritics and a few letter patterns per language.
//!
//! Scope: the ten languages of RS-M-CLIP ([`SUPPORTED`]) on short queries ("Flughafen", "une forêt dense").
//! It is a heuristic: a query with no telling word or letter ("park") is reported as English with
//! `reliable == false`, and callers that know the language pass it instead of detecting it.
//!
//! Invariants: [`detect`] never panics, returns `None` only for text without letters, and returns a code of
//! [`SUPPORTED`] (or `ja` for text with kana).

/// The languages with detection rules and shipped templates (ISO 639-1).
pub const SUPPORTED: [&str; 10] = ["en", "de", "fr", "es", "pt", "it", "nl", "zh", "ko", "ru"];

/// The result of [`detect`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// ISO 639-1 code.
    pub lang: &'static str,
    /// In `0.0..=1.0`: how far the winner is ahead of the runner-up (1.0 for a script decision).
    pub confidence: f32,
    /// Whether the evidence was enough; `false` means "fell back to English for lack of evidence".
    pub reliable: bool,
}

/// Whether `code` looks like a language code (2-8 lower-case ASCII letters, optionally `-` + region).
#[must_use]
pub fn valid_code(code: &str) -> bool {
    let mut parts = code.splitn(2, '-');
    let main = parts.next().unwrap_or_default();
    let main_ok = (2..=8).contains(&main.len()) && main.bytes().all(|b| b.is_ascii_lowercase());
    let region_ok =
        parts.next().is_none_or(|r| (2..=8).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric()));
    main_ok && region_ok
}

const LATIN: [&str; 7] = ["en", "de", "fr", "es", "pt", "it", "nl"];

/// Frequent function words, one list per entry of [`LATIN`].
const STOP_WORDS: [&[&str]; 7] = [
    // en
    &[
        "the", "a", "an", "of", "and", "with", "in", "on", "at", "is", "are", "near", "some", "many", "there", "to",
        "by", "from", "over", "next", "two", "three", "several", "where", "which", "this", "that", "it", "its",
        "around", "for", "as", "be", "has", "have", "photo", "image", "view", "area", "white", "green", "river",
        "some",
    ],
    // de
    &[
        "der", "die", "das", "den", "dem", "des", "ein", "eine", "einer", "eines", "einem", "einen", "und", "mit",
        "von", "vom", "im", "am", "auf", "ist", "sind", "bei", "neben", "viele", "zwei", "drei", "mehrere", "um",
        "zum", "zur", "nicht", "über", "unter", "wo", "nähe", "stehen", "steht", "gibt", "es", "rund", "aus", "grüne",
    ],
    // fr
    &[
        "le",
        "la",
        "les",
        "un",
        "une",
        "des",
        "du",
        "de",
        "d",
        "l",
        "et",
        "avec",
        "est",
        "sont",
        "au",
        "aux",
        "dans",
        "sur",
        "près",
        "par",
        "pour",
        "deux",
        "trois",
        "plusieurs",
        "nombreux",
        "nombreuses",
        "où",
        "qui",
        "ce",
        "cette",
        "montrant",
        "vue",
        "entourent",
        "verts",
        "vertes",
    ],
    // es
    &[
        "el", "la", "los", "las", "un", "una", "unos", "unas", "de", "del", "y", "con", "en", "es", "son", "está",
        "están", "cerca", "al", "por", "para", "dos", "tres", "varios", "muchos", "muchas", "dónde", "donde", "que",
        "vista", "imagen", "rodean", "verdes",
    ],
    // pt
    &[
        "o", "a", "os", "as", "um", "uma", "uns", "umas", "de", "do", "da", "dos", "das", "e", "com", "em", "no", "na",
        "nos", "nas", "é", "são", "perto", "ao", "pelo", "pela", "para", "duas", "dois", "três", "vários", "muitos",
        "muitas", "onde", "que", "vista", "imagem", "verdes",
    ],
    // it
    &[
        "il",
        "lo",
        "la",
        "i",
        "gli",
        "le",
        "un",
        "uno",
        "una",
        "di",
        "del",
        "della",
        "dei",
        "delle",
        "degli",
        "e",
        "con",
        "in",
        "nel",
        "nella",
        "è",
        "sono",
        "vicino",
        "alla",
        "al",
        "per",
        "due",
        "tre",
        "molti",
        "molte",
        "dove",
        "che",
        "veduta",
        "immagine",
        "verdi",
        "circondano",
    ],
    // nl
    &[
        "de", "het", "een", "van", "en", "met", "in", "op", "bij", "is", "zijn", "naast", "veel", "twee", "drie",
        "enkele", "waar", "die", "dat", "door", "over", "rond", "rondom", "worden", "wordt", "groene", "gaat", "aan",
    ],
];

/// Letters (or letter groups) telling of a language, with weights per entry of [`LATIN`].
const PATTERNS: [(&str, [f32; 7]); 40] = [
    //          en   de   fr   es   pt   it   nl
    ("ß", [0.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("ä", [0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("ö", [0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("ü", [0.0, 2.5, 0.0, 0.3, 0.0, 0.0, 0.0]),
    ("ñ", [0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0]),
    ("¿", [0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0]),
    ("¡", [0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0]),
    ("ã", [0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0]),
    ("õ", [0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0]),
    ("ç", [0.0, 0.0, 2.0, 0.0, 2.0, 0.0, 0.0]),
    ("œ", [0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0]),
    ("ê", [0.0, 0.0, 2.0, 0.0, 2.0, 0.0, 0.0]),
    ("â", [0.0, 0.0, 2.0, 0.0, 2.0, 0.0, 0.0]),
    ("è", [0.0, 0.0, 2.0, 0.0, 0.0, 2.0, 0.0]),
    ("à", [0.0, 0.0, 1.5, 0.0, 0.5, 1.5, 0.0]),
    ("ì", [0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0]),
    ("ò", [0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0]),
    ("ù", [0.0, 0.0, 1.5, 0.0, 0.0, 1.5, 0.0]),
    ("é", [0.0, 0.0, 2.0, 1.0, 1.0, 0.3, 0.0]),
    ("á", [0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0]),
    ("í", [0.0, 0.0, 0.0, 2.0, 2.0, 0.3, 0.0]),
    ("ó", [0.0, 0.0, 0.0, 2.0, 2.0, 0.3, 0.0]),
    ("ú", [0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0]),
    ("ô", [0.0, 0.0, 2.0, 0.0, 2.0, 0.0, 0.0]),
    ("î", [0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]),
    ("û", [0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]),
    ("ij", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]),
    ("aa", [0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 2.0]),
    ("oo", [0.6, 0.3, 0.0, 0.0, 0.0, 0.0, 1.5]),
    ("uu", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]),
    ("sch", [0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
    ("th", [1.5, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("wh", [2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("ght", [2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("eau", [0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]),
    ("ção", [0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0]),
    ("ción", [0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0]),
    ("zion", [0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0]),
    ("gli", [0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0]),
    ("nh", [0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0]),
];

/// Word endings telling of a language (checked on words of 5+ letters).
const SUFFIXES: [(&str, [f32; 7]); 26] = [
    //            en   de   fr   es   pt   it   nl
    ("ing", [2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("ings", [2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("ness", [2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("ly", [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("ed", [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("ung", [0.0, 2.5, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("heit", [0.0, 2.5, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("keit", [0.0, 2.5, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("lich", [0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("hafen", [0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("platz", [0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("bahn", [0.0, 2.5, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("heid", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]),
    ("lijk", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]),
    ("tuin", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]),
    ("aux", [0.0, 0.0, 2.5, 0.0, 0.0, 0.0, 0.0]),
    ("eux", [0.0, 0.0, 2.5, 0.0, 0.0, 0.0, 0.0]),
    ("ique", [0.3, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0]),
    ("dad", [0.0, 0.0, 0.0, 2.5, 0.0, 0.0, 0.0]),
    ("dade", [0.0, 0.0, 0.0, 0.0, 2.5, 0.0, 0.0]),
    ("ões", [0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0]),
    ("ità", [0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0]),
    ("zioni", [0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0]),
    ("zione", [0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0]),
    ("ello", [0.0, 0.0, 0.0, 0.0, 0.0, 1.5, 0.0]),
    ("etto", [0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0]),
];

/// Score a Latin-script text needs for a reliable decision.
const RELIABLE_SCORE: f32 = 1.9;

fn is_hangul(c: char) -> bool {
    matches!(c, '\u{AC00}'..='\u{D7AF}' | '\u{1100}'..='\u{11FF}' | '\u{3130}'..='\u{318F}' | '\u{A960}'..='\u{A97F}' | '\u{D7B0}'..='\u{D7FF}')
}

fn is_han(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{2FA1F}')
}

fn is_kana(c: char) -> bool {
    matches!(c, '\u{3040}'..='\u{30FF}' | '\u{31F0}'..='\u{31FF}' | '\u{FF66}'..='\u{FF9F}')
}

fn is_cyrillic(c: char) -> bool {
    matches!(c, '\u{0400}'..='\u{04FF}' | '\u{0500}'..='\u{052F}')
}

/// Detects the language of `text`; `None` when it has no letters.
#[must_use]
pub fn detect(text: &str) -> Option<Detection> {
    let (mut hangul, mut han, mut kana, mut cyrillic, mut latin) = (0usize, 0usize, 0usize, 0usize, 0usize);
    for c in text.chars() {
        if is_hangul(c) {
            hangul += 1;
        } else if is_han(c) {
            han += 1;
        } else if is_kana(c) {
            kana += 1;
        } else if is_cyrillic(c) {
            cyrillic += 1;
        } else if c.is_alphabetic() {
            latin += 1;
        }
    }
    let total = hangul + han + kana + cyrillic + latin;
    if total == 0 {
        return None;
    }
    let script = |lang| Some(Detection { lang, confidence: 1.0, reliable: true });
    // Script decisions: a few CJK or Cyrillic letters outweigh Latin acronyms ("GPS", "km") around them.
    if hangul > 0 && hangul * 2 >= han {
        return script("ko");
    }
    if kana > 0 {
        return script("ja");
    }
    if han > 0 && han * 3 >= latin {
        return script("zh");
    }
    if cyrillic > 0 && cyrillic * 2 >= latin {
        return script("ru");
    }
    Some(detect_latin(text))
}

fn detect_latin(text: &str) -> Detection {
    let lower = text.to_lowercase();
    let mut score = [0.0f32; 7];
    let add = |score: &mut [f32; 7], w: &[f32; 7], times: f32| {
        for (s, w) in score.iter_mut().zip(w) {
            *s += w * times;
        }
    };
    for word in lower.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()) {
        for (i, list) in STOP_WORDS.iter().enumerate() {
            if list.contains(&word)
                && let Some(s) = score.get_mut(i)
            {
                *s += 1.0;
            }
        }
        if word.chars().count() >= 5 {
            for (suffix, w) in &SUFFIXES {
                if word.ends_with(suffix) {
                    add(&mut score, w, 1.0);
                }
            }
        }
    }
    for (pat, w) in &PATTERNS {
        let n = lower.matches(pat).count();
        if n > 0 {
            // Repeats add evidence, with diminishing returns.
            add(&mut score, w, (n as f32).sqrt());
        }
    }
    let mut order: Vec<usize> = (0..LATIN.len()).collect();
    order.sort_by(|&a, &b| score.get(b).unwrap_or(&0.0).total_cmp(score.get(a).unwrap_or(&0.0)));
    let best = order.first().map_or(0, |&i| i);
    let (top, second) =
        (score.get(best).copied().unwrap_or(0.0), order.get(1).and_then(|&i| score.get(i)).copied().unwrap_or(0.0));
    if top <= 0.0 {
        return Detection { lang: "en", confidence: 0.0, reliable: false };
    }
    let confidence = ((top - second) / top).clamp(0.0, 1.0);
    Detection {
        lang: LATIN.get(best).copied().unwrap_or("en"),
        confidence,
        reliable: top >= RELIABLE_SCORE && top > second,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(t: &str) -> &'static str {
        detect(t).unwrap().lang
    }

    #[test]
    fn scripts() {
        assert_eq!(lang("一张港口的卫星图像"), "zh");
        assert_eq!(lang("강의 항공 사진"), "ko");
        assert_eq!(lang("спутниковый снимок стадиона"), "ru");
        assert_eq!(lang("港のある航空写真です"), "ja");
        assert_eq!(lang("GPS 机场"), "zh");
        assert!(detect("123 !? ...").is_none());
    }

    #[test]
    fn latin_phrases() {
        let cases = [
            ("many planes are parked next to a long building", "en"),
            ("a satellite image of a river", "en"),
            ("ein Satellitenbild von einem Flughafen", "de"),
            ("Flughafen", "de"),
            ("Große Öltanks", "de"),
            ("une photo aérienne montrant une zone industrielle", "fr"),
            ("une forêt", "fr"),
            ("una playa con muchos barcos", "es"),
            ("estación de tren", "es"),
            ("uma praia perto da cidade", "pt"),
            ("estação ferroviária", "pt"),
            ("una spiaggia vicino al porto", "it"),
            ("gli edifici della città", "it"),
            ("een luchtfoto van een haven", "nl"),
            ("speeltuin", "nl"),
        ];
        for (text, want) in cases {
            assert_eq!(lang(text), want, "{text}");
        }
    }

    #[test]
    fn no_evidence_is_english_unreliable() {
        let d = detect("xyzzy").unwrap();
        assert_eq!(d.lang, "en");
        assert!(!d.reliable);
    }

    #[test]
    fn codes() {
        assert!(valid_code("en"));
        assert!(valid_code("pt-br"));
        assert!(!valid_code("EN"));
        assert!(!valid_code("e"));
        assert!(!valid_code("../x"));
    }
}
