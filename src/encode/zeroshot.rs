//! Zero-shot labelling (image -> text): each label becomes a text vector through the prompt ensemble;
//! an image's labels are ranked by cosine similarity to those vectors.
//!
//! Invariants: label vectors are L2-normalised, so with normalised image embeddings a score is a cosine in
//! `-1.0..=1.0`; results are sorted by score, descending, ties broken by label order; at most `top_n`.

use super::encoder::Encoder;
use super::ensemble::{Prompting, mean_normalized};
use super::error::{EncodeError, EncodeResult};
use super::lang;

/// A label: a key (stored as a keyword, e.g. `Airport`) and its phrases, optionally in several languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The label's key.
    pub key: String,
    /// `(language, phrase)` pairs; all of them contribute to the label's vector. Empty: the key itself,
    /// in its detected language.
    pub phrases: Vec<(String, String)>,
}

impl Label {
    /// A label without phrases (its key is the phrase).
    pub fn new(key: impl Into<String>) -> Self {
        Label { key: key.into(), phrases: Vec::new() }
    }

    /// Adds a phrase in a language.
    #[must_use]
    pub fn phrase(mut self, lang: impl Into<String>, text: impl Into<String>) -> Self {
        self.phrases.push((lang.into(), text.into()));
        self
    }
}

/// One label of an image, with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScore {
    /// The label's key.
    pub label: String,
    /// Cosine similarity of the image to the label's vector.
    pub score: f32,
}

/// A label set turned into vectors, ready to label image embeddings.
#[derive(Debug, Clone)]
pub struct ZeroShot {
    keys: Vec<String>,
    vectors: Vec<Vec<f32>>,
    dim: usize,
}

impl ZeroShot {
    /// Embeds `labels` with `encoder` (each phrase through the templates of its language).
    pub fn new(encoder: &Encoder, labels: &[Label], prompting: Prompting) -> EncodeResult<ZeroShot> {
        if labels.is_empty() {
            return Err(EncodeError::Invalid("zero-shot labelling needs at least one label".into()));
        }
        let mut keys = Vec::with_capacity(labels.len());
        let mut vectors = Vec::with_capacity(labels.len());
        for label in labels {
            let detected;
            let phrases: Vec<(&str, &str)> = if label.phrases.is_empty() {
                detected = lang::detect(&label.key).map_or("en", |d| d.lang);
                vec![(detected, label.key.as_str())]
            } else {
                label.phrases.iter().map(|(l, p)| (l.as_str(), p.as_str())).collect()
            };
            let mut per_phrase = Vec::with_capacity(phrases.len());
            for (lang, phrase) in phrases {
                let has_set = encoder.templates().get(lang).is_some();
                let lang = (has_set && prompting != Prompting::Off).then_some(lang);
                per_phrase.push(encoder.phrase_vector(phrase, lang, prompting)?.0);
            }
            keys.push(label.key.clone());
            vectors.push(mean_normalized(&per_phrase, encoder.dim()));
        }
        Ok(ZeroShot { keys, vectors, dim: encoder.dim() })
    }

    /// Labels from the `classes` of the template sets of `langs` (a class phrased in several languages
    /// gets all of them), in sorted key order.
    pub fn from_template_classes(encoder: &Encoder, langs: &[&str], prompting: Prompting) -> EncodeResult<ZeroShot> {
        let mut labels: std::collections::BTreeMap<String, Label> = std::collections::BTreeMap::new();
        {
            let lib = encoder.templates();
            for &l in langs {
                let set = lib.get(l).ok_or_else(|| lib.unknown(l))?;
                for (key, phrase) in &set.classes {
                    labels
                        .entry(key.clone())
                        .or_insert_with(|| Label::new(key.clone()))
                        .phrases
                        .push((l.into(), phrase.clone()));
                }
            }
        }
        let labels: Vec<Label> = labels.into_values().collect();
        Self::new(encoder, &labels, prompting)
    }

    /// The label keys, in vector order.
    #[must_use]
    pub fn labels(&self) -> &[String] {
        &self.keys
    }

    /// The label vectors (L2-normalised), in key order.
    #[must_use]
    pub fn vectors(&self) -> &[Vec<f32>] {
        &self.vectors
    }

    /// Cosine of `image` (an image embedding) with every label, in key order.
    pub fn scores(&self, image: &[f32]) -> EncodeResult<Vec<f32>> {
        if image.len() != self.dim {
            return Err(EncodeError::Invalid(format!(
                "image embedding has {} values, expected {}",
                image.len(),
                self.dim
            )));
        }
        Ok(self.vectors.iter().map(|v| v.iter().zip(image).map(|(a, b)| a * b).sum()).collect())
    }

    /// The best `top_n` labels of one image embedding.
    pub fn top(&self, image: &[f32], top_n: usize) -> EncodeResult<Vec<LabelScore>> {
        let scores = self.scores(image)?;
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| {
            let (sa, sb) = (scores.get(a).copied().unwrap_or(f32::MIN), scores.get(b).copied().unwrap_or(f32::MIN));
            sb.total_cmp(&sa).then(a.cmp(&b))
        });
        Ok(order
            .into_iter()
            .take(top_n)
            .filter_map(|i| Some(LabelScore { label: self.keys.get(i)?.clone(), score: *scores.get(i)? }))
            .collect())
    }

    /// The best `top_n` labels of each image embedding.
    pub fn classify<V: AsRef<[f32]>>(&self, images: &[V], top_n: usize) -> EncodeResult<Vec<Vec<LabelScore>>> {
        images.iter().map(|v| self.top(v.as_ref(), top_n)).collect()
    }
}
