//! Prompt ensembles (CLIP, Radford et al. 2021, §3.1.4): a phrase is wrapped in every template of its
//! language, each prompt is embedded, and the normalised mean is the phrase's vector. Negative prompts
//! subtract: `q = normalize(normalize(mean(pos)) - w * mean(normalize(neg_i)))`.
//!
//! Invariants: every returned vector is L2-normalised; the prompts used are returned with it, so a caller
//! (REPL `EXPLAIN`) can show them; `Prompting::Off` embeds the text exactly as given, one call to the text
//! tower (through the cache) per distinct prompt.

use super::encoder::Encoder;
use super::error::{EncodeError, EncodeResult};
use super::lang::{self, Detection};
use super::ort_session::l2_normalize;

/// Default weight of negative prompts.
pub const DEFAULT_NEGATIVE_WEIGHT: f32 = 0.5;

/// How a phrase is turned into prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prompting {
    /// The bare text (`--templates off`).
    Off,
    /// The first template of the language only.
    Single,
    /// Every template of the language, averaged (default).
    #[default]
    Ensemble,
}

/// The language whose templates are used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Language {
    /// Detect it from the text (default); without templates for the detected language, the bare text is
    /// encoded and a note says so.
    #[default]
    Auto,
    /// This language (an error when it has no template set).
    Code(String),
}

/// A text query: the text, how to prompt it, and optional negative prompts.
#[derive(Debug, Clone, PartialEq)]
pub struct TextQuery {
    /// What to look for.
    pub text: String,
    /// Language of the templates. Default: [`Language::Auto`].
    pub language: Language,
    /// Templates. Default: [`Prompting::Ensemble`].
    pub prompting: Prompting,
    /// Phrases to steer away from (same language and prompting as the query).
    pub negatives: Vec<String>,
    /// Weight of the negatives' mean. Default: [`DEFAULT_NEGATIVE_WEIGHT`].
    pub negative_weight: f32,
}

impl TextQuery {
    /// A query for `text` with the defaults.
    pub fn new(text: impl Into<String>) -> Self {
        TextQuery {
            text: text.into(),
            language: Language::Auto,
            prompting: Prompting::Ensemble,
            negatives: Vec::new(),
            negative_weight: DEFAULT_NEGATIVE_WEIGHT,
        }
    }

    /// Use the templates of `code` instead of detecting the language.
    #[must_use]
    pub fn language(mut self, code: impl Into<String>) -> Self {
        self.language = Language::Code(code.into());
        self
    }

    /// Set the prompting.
    #[must_use]
    pub fn prompting(mut self, prompting: Prompting) -> Self {
        self.prompting = prompting;
        self
    }

    /// Add a negative prompt.
    #[must_use]
    pub fn negative(mut self, text: impl Into<String>) -> Self {
        self.negatives.push(text.into());
        self
    }

    /// Set the negatives' weight (finite, `0.0..=2.0`).
    #[must_use]
    pub fn negative_weight(mut self, w: f32) -> Self {
        self.negative_weight = w;
        self
    }
}

/// A query vector and how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryVector {
    /// L2-normalised query vector.
    pub vector: Vec<f32>,
    /// The language whose templates were used (`None` with `Prompting::Off` or without a template set).
    pub language: Option<String>,
    /// The detector's verdict when the language was detected.
    pub detection: Option<Detection>,
    /// The positive prompts embedded.
    pub prompts: Vec<String>,
    /// The negative prompts embedded.
    pub negative_prompts: Vec<String>,
    /// Something the user should know (no templates for the detected language, ...).
    pub note: Option<String>,
}

impl Encoder {
    /// The vector of one phrase in a language: the normalised mean of its prompts' embeddings. With
    /// `lang == None` or `Prompting::Off`, the phrase itself. Returns the vector and the prompts used.
    pub fn phrase_vector(
        &self,
        phrase: &str,
        lang: Option<&str>,
        prompting: Prompting,
    ) -> EncodeResult<(Vec<f32>, Vec<String>)> {
        let prompts = match (lang, prompting) {
            (None, _) | (_, Prompting::Off) => vec![phrase.trim().to_string()],
            (Some(code), p) => {
                let lib = self.templates();
                let set = lib.get(code).ok_or_else(|| lib.unknown(code))?;
                set.prompts(phrase, p == Prompting::Single)
            }
        };
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let vectors = self.encode_texts_shared(&refs)?;
        Ok((mean_normalized(&vectors, self.dim()), prompts))
    }

    /// The query vector of a [`TextQuery`].
    pub fn query(&self, q: &TextQuery) -> EncodeResult<QueryVector> {
        if q.text.trim().is_empty() {
            return Err(EncodeError::Invalid("empty text query".into()));
        }
        if !(q.negative_weight.is_finite() && (0.0..=2.0).contains(&q.negative_weight)) {
            return Err(EncodeError::Invalid(format!("negative weight {} is not in 0..=2", q.negative_weight)));
        }
        let mut note = None;
        let mut detection = None;
        let language = match (&q.language, q.prompting) {
            (_, Prompting::Off) => None,
            (Language::Code(code), _) => {
                if self.templates().get(code).is_none() {
                    return Err(self.templates().unknown(code));
                }
                Some(code.clone())
            }
            (Language::Auto, _) => {
                let d = lang::detect(&q.text);
                detection = d;
                let code = d.map_or("en", |d| d.lang);
                if self.templates().get(code).is_some() {
                    Some(code.to_string())
                } else {
                    note = Some(format!("no prompt templates for detected language {code:?}; encoding the bare text"));
                    None
                }
            }
        };
        let (mut vector, prompts) = self.phrase_vector(&q.text, language.as_deref(), q.prompting)?;
        let mut negative_prompts = Vec::new();
        if !q.negatives.is_empty() && q.negative_weight > 0.0 {
            let mut sum = vec![0.0f32; vector.len()];
            for neg in &q.negatives {
                let (v, p) = self.phrase_vector(neg, language.as_deref(), q.prompting)?;
                for (s, x) in sum.iter_mut().zip(&v) {
                    *s += x;
                }
                negative_prompts.extend(p);
            }
            let scale = q.negative_weight / q.negatives.len() as f32;
            for (x, s) in vector.iter_mut().zip(&sum) {
                *x -= scale * s;
            }
            l2_normalize(&mut vector);
        }
        Ok(QueryVector { vector, language, detection, prompts, negative_prompts, note })
    }

    /// Convenience: the query vector of `text` with the defaults (detected language, ensemble).
    pub fn query_text(&self, text: &str) -> EncodeResult<Vec<f32>> {
        Ok(self.query(&TextQuery::new(text))?.vector)
    }
}

/// Mean of unit vectors, renormalised.
pub(crate) fn mean_normalized<V: AsRef<[f32]>>(vectors: &[V], dim: usize) -> Vec<f32> {
    let mut sum = vec![0.0f64; dim];
    for v in vectors {
        for (s, x) in sum.iter_mut().zip(v.as_ref()) {
            *s += f64::from(*x);
        }
    }
    let mut out: Vec<f32> = sum.into_iter().map(|s| s as f32).collect();
    l2_normalize(&mut out);
    out
}
