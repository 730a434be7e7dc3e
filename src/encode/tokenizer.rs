//! Loading `tokenizer.json` fast: a Unigram vocabulary looked up by hashing instead of a trie.
//!
//! Why: the `tokenizers` crate builds a trie of every piece when it loads a Unigram model (one hash
//! map per node): 110 to 160 ms for the demo model's 128k pieces, the longest step of a one-question
//! process. A query is a few dozen characters, so the pieces that start at each position can as well
//! be found by looking up each of its prefixes (at most the longest piece's length) in one hash map
//! of the vocabulary, which is built in a few milliseconds.
//!
//! [`FastUnigram`] is the crate's `Unigram` model with that one change: it implements the crate's
//! `Model` trait and runs inside the crate's own `TokenizerImpl`, so normalisation, pre-tokenising,
//! truncation and the post-processor's special tokens are the crate's code. Its Viterbi search is
//! the crate's `encode_optimized`, step for step: the same candidates in the same order (shortest
//! prefix first), the same score for an unknown character (`min_score - 10`), the same tie rule
//! (a later candidate wins only with a strictly higher score), unknown runs fused, and ids found by
//! the same last-wins lookup of each piece. `tests/encode.rs` compares the ids of both
//! implementations on the model's templates in ten languages and on generated text.
//!
//! Only files this covers take the fast path: a Unigram model without byte fallback and no added
//! tokens. Any other file (or one the fast path cannot read) is loaded by the crate as before, so its
//! errors are the crate's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokenizers::models::unigram::UnigramTrainer;
use tokenizers::{
    DecoderWrapper, Model, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Token, Tokenizer,
    TokenizerBuilder, TokenizerImpl, TruncationParams,
};

use super::error::{EncodeError, EncodeResult};

/// The score of an unknown character below the lowest piece's (the crate's `K_UNK_PENALTY`).
const UNK_PENALTY: f64 = 10.0;

/// A Unigram model whose pieces are found by hash lookups (see the module notes).
pub(crate) struct FastUnigram {
    vocab: Vec<(String, f64)>,
    /// Piece -> id, the last id of a piece listed twice (as the crate's map keeps it).
    ids: HashMap<String, u32>,
    /// The longest piece, in bytes.
    longest: usize,
    min_score: f64,
    unk_id: Option<usize>,
}

impl FastUnigram {
    /// The model of `vocab`; `None` for what the crate would refuse (an empty vocabulary, an
    /// unknown id out of range), so that the crate's load says why.
    fn new(vocab: Vec<(String, f64)>, unk_id: Option<usize>) -> Option<Self> {
        if vocab.is_empty() || unk_id.is_some_and(|u| u >= vocab.len()) {
            return None;
        }
        let mut ids = HashMap::with_capacity(vocab.len());
        let mut longest = 0;
        let mut min_score = f64::INFINITY;
        for (id, (piece, score)) in vocab.iter().enumerate() {
            ids.insert(piece.clone(), u32::try_from(id).ok()?);
            longest = longest.max(piece.len());
            if *score < min_score {
                min_score = *score;
            }
        }
        Some(FastUnigram { vocab, ids, longest, min_score, unk_id })
    }

    /// The pieces of `sentence` on the best path (the crate's `encode_optimized`).
    fn pieces<'s>(&self, sentence: &'s str) -> tokenizers::Result<Vec<std::borrow::Cow<'s, str>>> {
        #[derive(Clone, Copy)]
        struct Best {
            id: usize,
            score: f64,
            starts_at: Option<usize>,
        }
        let size = sentence.len();
        let unk_score = self.min_score - UNK_PENALTY;
        let mut best = vec![Best { id: 0, score: 0.0, starts_at: None }; size + 1];
        let offer = |at: usize, from: usize, id: usize, score: f64, best: &mut Vec<Best>| {
            let node = &mut best[at];
            if node.starts_at.is_none() || score > node.score {
                *node = Best { id, score, starts_at: Some(from) };
            }
        };
        let mut start = 0;
        while start < size {
            let here = best[start].score;
            let rest = &sentence[start..];
            let mblen = rest.chars().next().map_or(1, char::len_utf8);
            let mut single = false;
            // Every prefix of the rest up to the longest piece, shortest first.
            for len in rest.char_indices().skip(1).map(|(i, _)| i).chain(std::iter::once(rest.len())) {
                if len > self.longest {
                    break;
                }
                if let Some(&id) = self.ids.get(&rest[..len]) {
                    let score = self.vocab[id as usize].1;
                    offer(start + len, start, id as usize, score + here, &mut best);
                    single |= len == mblen;
                }
            }
            if !single {
                let unk = self.unk_id.ok_or_else(|| "an unknown character and no unk_id".to_owned())?;
                offer(start + mblen, start, unk, unk_score + here, &mut best);
            }
            start += mblen;
        }
        let mut out = Vec::new();
        let mut unknown: Vec<&'s str> = Vec::new();
        let mut end = size;
        while end > 0 {
            let node = best[end];
            let from = node.starts_at.ok_or_else(|| format!("no path to byte {end}"))?;
            if Some(node.id) == self.unk_id {
                unknown.push(&sentence[from..end]);
            } else {
                if !unknown.is_empty() {
                    unknown.reverse();
                    out.push(std::borrow::Cow::Owned(unknown.concat()));
                    unknown.clear();
                }
                out.push(std::borrow::Cow::Borrowed(&sentence[from..end]));
            }
            end = from;
        }
        if !unknown.is_empty() {
            unknown.reverse();
            out.push(std::borrow::Cow::Owned(unknown.concat()));
        }
        out.reverse();
        Ok(out)
    }
}

impl Model for FastUnigram {
    type Trainer = UnigramTrainer;

    fn tokenize(&self, sentence: &str) -> tokenizers::Result<Vec<Token>> {
        if sentence.is_empty() {
            return Ok(Vec::new());
        }
        let mut offset = 0;
        let mut out = Vec::new();
        for piece in self.pieces(sentence)? {
            let id = match self.ids.get(piece.as_ref()) {
                Some(&id) => id,
                None => self
                    .unk_id
                    .and_then(|u| u32::try_from(u).ok())
                    .ok_or_else(|| "an unknown piece and no unk_id".to_owned())?,
            };
            let len = piece.len();
            out.push(Token::new(id, piece.into_owned(), (offset, offset + len)));
            offset += len;
        }
        Ok(out)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.vocab.get(id as usize).map(|(p, _)| p.clone())
    }

    fn get_vocab(&self) -> std::collections::HashMap<String, u32> {
        self.ids.clone()
    }

    fn get_vocab_size(&self) -> usize {
        self.vocab.len()
    }

    fn save(&self, _folder: &Path, _prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        Err("skysift's Unigram tokenizer is read-only: save the original tokenizer.json instead".into())
    }

    fn get_trainer(&self) -> UnigramTrainer {
        UnigramTrainer::default()
    }
}

type FastImpl =
    TokenizerImpl<FastUnigram, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

/// A loaded `tokenizer.json`: the fast Unigram path, or the crate's tokenizer for anything else.
pub(crate) enum TextTokenizer {
    Fast(Box<FastImpl>),
    Crate(Box<Tokenizer>),
}

/// The parts of `tokenizer.json` the fast path reads (the crate's own field names).
#[derive(Deserialize)]
struct File<'a> {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    truncation: Option<TruncationParams>,
    #[serde(default)]
    added_tokens: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    normalizer: Option<NormalizerWrapper>,
    #[serde(default)]
    pre_tokenizer: Option<PreTokenizerWrapper>,
    #[serde(default)]
    post_processor: Option<PostProcessorWrapper>,
    #[serde(default)]
    decoder: Option<DecoderWrapper>,
    #[serde(borrow)]
    model: &'a serde_json::value::RawValue,
}

#[derive(Deserialize)]
struct UnigramPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    unk_id: Option<usize>,
    vocab: Vec<(String, f64)>,
    #[serde(default)]
    byte_fallback: bool,
}

/// The fast path for `text`, or `None` where it does not apply.
fn fast(text: &str) -> Option<FastImpl> {
    let file: File<'_> = serde_json::from_str(text).ok()?;
    if file.version.as_deref().is_some_and(|v| v != "1.0") || !file.added_tokens.is_empty() {
        return None;
    }
    let model: UnigramPart = serde_json::from_str(file.model.get()).ok()?;
    if model.kind != "Unigram" || model.byte_fallback {
        return None;
    }
    // As the crate's own deserializer builds its tokenizer, padding left off.
    TokenizerBuilder::new()
        .with_model(FastUnigram::new(model.vocab, model.unk_id)?)
        .with_normalizer(file.normalizer)
        .with_pre_tokenizer(file.pre_tokenizer)
        .with_post_processor(file.post_processor)
        .with_decoder(file.decoder)
        .with_truncation(file.truncation)
        .build()
        .ok()
}

impl TextTokenizer {
    /// Loads `path` (padding off; truncation as the file says).
    pub(crate) fn load(path: &Path) -> EncodeResult<Self> {
        let err = |reason: String| EncodeError::Tokenizer { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::from_json(&text).map_err(err)
    }

    /// Parses a `tokenizer.json`'s text.
    pub(crate) fn from_json(text: &str) -> Result<Self, String> {
        match fast(text) {
            Some(t) => Ok(TextTokenizer::Fast(Box::new(t))),
            None => Self::crate_from_json(text),
        }
    }

    /// The crate's tokenizer of the same text, whatever the file (padding off).
    fn crate_from_json(text: &str) -> Result<Self, String> {
        let mut t: Tokenizer = text.parse().map_err(|e: tokenizers::Error| e.to_string())?;
        t.with_padding(None);
        Ok(TextTokenizer::Crate(Box::new(t)))
    }

    /// Whether the fast path was taken.
    #[cfg(test)]
    fn is_fast(&self) -> bool {
        matches!(self, TextTokenizer::Fast(_))
    }

    /// The ids of `text`, special tokens added.
    pub(crate) fn ids(&self, text: &str) -> Result<Vec<u32>, String> {
        let enc = match self {
            TextTokenizer::Fast(t) => t.encode(text, true),
            TextTokenizer::Crate(t) => t.encode(text, true),
        };
        enc.map(|e| e.get_ids().to_vec()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small generator of text: pieces of the vocabulary, words of the templates and characters
    /// of many scripts (accents, CJK, Hangul, Cyrillic, emoji, controls, odd spaces), glued at random.
    fn texts(vocab: &[(String, f64)], words: &[String], n: usize) -> Vec<String> {
        let odd = [
            "é", "ß", "ñ", "ü", "中", "国", "港", "口", "한", "국", "森", "林", "д", "ж", "ё", "🛰", "🌊", "\u{0301}",
            "\t", "\n", "\u{00a0}", "\u{3000}", "\u{200b}", "  ", "   ", "İ", "ﬁ", "①", "Ａ", "\u{7f}", "😀👍", "x",
            "?", "!!",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |m: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % m as u64).unwrap_or(0)
        };
        (0..n)
            .map(|_| {
                let mut s = String::new();
                for _ in 0..=next(24) {
                    match next(4) {
                        0 => s.push_str(vocab[next(vocab.len())].0.trim_start_matches('\u{2581}')),
                        1 => s.push_str(&words[next(words.len())]),
                        2 => s.push_str(odd[next(odd.len())]),
                        _ => s.push(' '),
                    }
                }
                s
            })
            .collect()
    }

    #[test]
    fn the_fast_unigram_gives_the_crates_ids() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/demo");
        let text = std::fs::read_to_string(dir.join("tokenizer.json"))
            .expect("the demo model's tokenizer (scripts/setup_models.sh installs it)");
        let fast = TextTokenizer::from_json(&text).unwrap();
        assert!(fast.is_fast(), "the demo tokenizer takes the fast path");
        let slow = TextTokenizer::crate_from_json(&text).unwrap();
        let TextTokenizer::Fast(f) = &fast else { unreachable!() };
        let vocab = f.get_model().vocab.clone();

        // Every template of every language, filled with every class name of that language.
        let mut inputs = vec![String::new(), " ".into(), "\u{2581}".into(), "a".into()];
        let mut words = Vec::new();
        for e in std::fs::read_dir(dir.join("templates")).unwrap() {
            let set: serde_json::Value = serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
            let templates: Vec<String> = serde_json::from_value(set["templates"].clone()).unwrap();
            let classes: Vec<String> = set["classes"]
                .as_object()
                .map(|o| o.values().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            assert!(!templates.is_empty() && !classes.is_empty(), "templates and classes are read");
            for t in &templates {
                for c in &classes {
                    inputs.push(t.replace("{}", c));
                }
                words.extend(t.split(' ').map(str::to_owned));
            }
            words.extend(classes);
        }
        let filled = inputs.len();
        inputs.extend(texts(&vocab, &words, 20_000));
        let mut differ = Vec::new();
        for s in &inputs {
            let (a, b) = (fast.ids(s).unwrap(), slow.ids(s).unwrap());
            if a != b {
                differ.push((s.clone(), a, b));
            }
        }
        assert!(
            differ.is_empty(),
            "{} of {} texts ({filled} from templates) differ, first: {:?}",
            differ.len(),
            inputs.len(),
            differ.first()
        );
    }

    #[test]
    fn other_files_take_the_crates_path_and_its_errors() {
        let bpe = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
            "pre_tokenizer":null,"post_processor":null,"decoder":null,
            "model":{"type":"WordLevel","vocab":{"a":0,"[UNK]":1},"unk_token":"[UNK]"}}"#;
        let t = TextTokenizer::from_json(bpe).unwrap();
        assert!(!t.is_fast());
        assert_eq!(t.ids("a").unwrap(), vec![0]);
        let bad = r#"{"version":"1.0","model":{"type":"Unigram","unk_id":5,"vocab":[["<unk>",0.0]]}}"#;
        let e = TextTokenizer::from_json(bad).err().expect("an unk_id out of range is refused");
        assert!(e.to_lowercase().contains("unk"), "{e}");
        let fallback = r#"{"version":"1.0","model":{"type":"Unigram","unk_id":0,"byte_fallback":true,"vocab":[["<unk>",0.0],["a",-1.0]]}}"#;
        assert!(!TextTokenizer::from_json(fallback).unwrap().is_fast());
    }
}
