//! [`Provenance`]: which encoder made a collection's vectors, stored in the collection's params and checked
//! before a query is ranked against them.
//!
//! Params written (all strings):
//!
//! | key | value |
//! | --- | --- |
//! | `encoder.model_id` | the manifest's `model_id` |
//! | `encoder.fingerprint` | [`super::Fingerprint`], 64 hex characters |
//! | `encoder.dim` | embedding dimension |
//! | `encoder.preprocessing` | [`super::ModelManifest::preprocessing`] |
//!
//! Invariant: two provenances are compatible exactly when fingerprint and dimension are equal; the model id
//! and the preprocessing text are for people (the fingerprint already covers the preprocessing).

use super::error::{EncodeError, EncodeResult};
use super::manifest::Fingerprint;

/// Param key of the model id.
pub const KEY_MODEL_ID: &str = "encoder.model_id";
/// Param key of the fingerprint.
pub const KEY_FINGERPRINT: &str = "encoder.fingerprint";
/// Param key of the dimension.
pub const KEY_DIM: &str = "encoder.dim";
/// Param key of the preprocessing summary.
pub const KEY_PREPROCESSING: &str = "encoder.preprocessing";

/// The identity of the encoder behind a set of vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// Model name from the manifest.
    pub model_id: String,
    /// Embedding-space fingerprint.
    pub fingerprint: Fingerprint,
    /// Embedding dimension.
    pub dim: usize,
    /// Preprocessing parameters, canonical one-line form.
    pub preprocessing: String,
}

impl Provenance {
    /// The params to store with a collection (`CollectionSpec::params`).
    #[must_use]
    pub fn to_params(&self) -> Vec<(String, String)> {
        vec![
            (KEY_MODEL_ID.to_string(), self.model_id.clone()),
            (KEY_FINGERPRINT.to_string(), self.fingerprint.to_hex()),
            (KEY_DIM.to_string(), self.dim.to_string()),
            (KEY_PREPROCESSING.to_string(), self.preprocessing.clone()),
        ]
    }

    /// Whether `params` hold a provenance at all (collections loaded from plain vector files have none).
    #[must_use]
    pub fn in_params(params: &[(String, String)]) -> bool {
        params.iter().any(|(k, _)| k == KEY_FINGERPRINT)
    }

    /// Reads a provenance from collection params; other keys are ignored.
    pub fn from_params(params: &[(String, String)]) -> EncodeResult<Provenance> {
        let get = |key: &str| -> EncodeResult<&str> {
            params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).ok_or_else(|| EncodeError::Provenance {
                key: key.to_string(),
                reason: "missing; the collection was not created with an encoder's provenance".to_string(),
            })
        };
        let fp = get(KEY_FINGERPRINT)?;
        let fingerprint = Fingerprint::from_hex(fp).ok_or_else(|| EncodeError::Provenance {
            key: KEY_FINGERPRINT.to_string(),
            reason: format!("{fp:?} is not 64 hex characters"),
        })?;
        let dim_text = get(KEY_DIM)?;
        let dim = dim_text.parse::<usize>().ok().filter(|d| *d > 0).ok_or_else(|| EncodeError::Provenance {
            key: KEY_DIM.to_string(),
            reason: format!("{dim_text:?} is not a positive integer"),
        })?;
        Ok(Provenance {
            model_id: get(KEY_MODEL_ID)?.to_string(),
            fingerprint,
            dim,
            preprocessing: get(KEY_PREPROCESSING).unwrap_or_default().to_string(),
        })
    }

    /// `Ok` when vectors of `query` may be compared with vectors of `self` (a collection's provenance);
    /// otherwise an error naming both models.
    pub fn check_compatible(&self, query: &Provenance) -> EncodeResult<()> {
        if self.fingerprint == query.fingerprint && self.dim == query.dim {
            return Ok(());
        }
        Err(EncodeError::ModelMismatch {
            expected_model: self.model_id.clone(),
            expected_fingerprint: self.fingerprint.short(),
            got_model: query.model_id.clone(),
            got_fingerprint: query.fingerprint.short(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, byte: u8) -> Provenance {
        Provenance { model_id: id.into(), fingerprint: Fingerprint([byte; 32]), dim: 4, preprocessing: "x".into() }
    }

    #[test]
    fn round_trip_and_mismatch() {
        let a = p("model-a", 1);
        let mut params = vec![("other".to_string(), "kept".to_string())];
        params.extend(a.to_params());
        assert_eq!(Provenance::from_params(&params).unwrap(), a);
        assert!(a.check_compatible(&p("renamed", 1)).is_ok());
        let err = a.check_compatible(&p("model-b", 2)).unwrap_err().to_string();
        assert!(err.contains("model-a") && err.contains("model-b"), "{err}");
        assert!(Provenance::from_params(&[]).is_err());
        let bad = vec![(KEY_FINGERPRINT.to_string(), "nothex".to_string())];
        assert!(Provenance::from_params(&bad).is_err());
    }
}
