//! [`stac_collection`]: a STAC 1.1 Collection describing an exported file, and [`EmbeddingInfo`],
//! the collection's embedding space as `emb:` fields.
//!
//! `emb:` fields (skysift's names; the same object is stored in the `GeoParquet` file metadata
//! under [`EMB_METADATA_KEY`], where `skysift load --from` reads it back):
//!
//! | field | value |
//! | --- | --- |
//! | `emb:model_id` | the encoder's model id (absent for vectors of unknown origin) |
//! | `emb:fingerprint` | the encoder's fingerprint, 64 hex characters (absent likewise) |
//! | `emb:preprocessing` | the encoder's preprocessing summary (absent likewise) |
//! | `emb:dimensions` | embedding dimension |
//! | `emb:metric` | `cosine` (L2-normalised vectors) or `ip` |
//! | `emb:data_type` | `float32`: the exported vectors are the stored ones, bit for bit |
//! | `emb:quantization` | the collection's traversal codes: `int8` or `none` (search rescoring is exact) |
//! | `emb:column` | the column holding the embeddings (`vector`) |

use skysift_storage::schema::Metric;

use crate::db::CollectionSnapshot;
use crate::encode::{KEY_DIM, KEY_FINGERPRINT, KEY_MODEL_ID, KEY_PREPROCESSING};
use crate::error::{Error, Result};

/// File metadata key of the `emb:` object in exported `GeoParquet`.
pub const EMB_METADATA_KEY: &str = "skysift:emb";

/// A collection's embedding space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingInfo {
    /// Model id, when the vectors have an encoder's provenance.
    pub model_id: Option<String>,
    /// Encoder fingerprint (hex), likewise.
    pub fingerprint: Option<String>,
    /// Preprocessing summary, likewise.
    pub preprocessing: Option<String>,
    /// Dimension.
    pub dimensions: usize,
    /// Metric.
    pub metric: Metric,
    /// Traversal codes: `true` for int8.
    pub int8: bool,
    /// The embedding column.
    pub column: String,
}

impl EmbeddingInfo {
    /// The embedding space of `col`.
    pub fn of(col: &CollectionSnapshot) -> Result<EmbeddingInfo> {
        let get = |k: &str| col.params().iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        Ok(EmbeddingInfo {
            model_id: get(KEY_MODEL_ID),
            fingerprint: get(KEY_FINGERPRINT),
            preprocessing: get(KEY_PREPROCESSING),
            dimensions: col.schema().dim as usize,
            metric: col.schema().metric,
            int8: col.index_params()?.int8,
            column: super::VECTOR_COLUMN.to_owned(),
        })
    }

    /// The provenance params to store with a collection made from these embeddings (empty
    /// without a fingerprint: vectors of unknown origin).
    #[must_use]
    pub fn provenance_params(&self) -> Vec<(String, String)> {
        match (&self.model_id, &self.fingerprint) {
            (Some(m), Some(f)) => vec![
                (KEY_MODEL_ID.to_owned(), m.clone()),
                (KEY_FINGERPRINT.to_owned(), f.clone()),
                (KEY_DIM.to_owned(), self.dimensions.to_string()),
                (KEY_PREPROCESSING.to_owned(), self.preprocessing.clone().unwrap_or_default()),
            ],
            _ => Vec::new(),
        }
    }

    /// The `emb:` fields.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        if let Some(v) = &self.model_id {
            m.insert("emb:model_id".into(), v.clone().into());
        }
        if let Some(v) = &self.fingerprint {
            m.insert("emb:fingerprint".into(), v.clone().into());
        }
        if let Some(v) = &self.preprocessing {
            m.insert("emb:preprocessing".into(), v.clone().into());
        }
        m.insert("emb:dimensions".into(), self.dimensions.into());
        m.insert("emb:metric".into(), self.metric.name().into());
        m.insert("emb:data_type".into(), "float32".into());
        m.insert("emb:quantization".into(), if self.int8 { "int8" } else { "none" }.into());
        m.insert("emb:column".into(), self.column.clone().into());
        m
    }

    /// Reads `emb:` fields back (as [`EmbeddingInfo::to_json`] writes them).
    pub fn from_json(j: &serde_json::Value) -> Result<EmbeddingInfo> {
        let s = |k: &str| j.get(k).and_then(serde_json::Value::as_str).map(str::to_owned);
        let bad = |what: String| {
            Error::Invalid(format!(
                "the file's emb: metadata {what}; pass --model-id and --declare-model, or load without provenance"
            ))
        };
        let dimensions = j
            .get("emb:dimensions")
            .and_then(serde_json::Value::as_u64)
            .and_then(|d| usize::try_from(d).ok())
            .filter(|d| *d > 0)
            .ok_or_else(|| bad("has no positive emb:dimensions".into()))?;
        let metric = match s("emb:metric").as_deref() {
            None | Some("cosine") => Metric::Cosine,
            Some("ip" | "inner_product") => Metric::InnerProduct,
            Some(other) => return Err(bad(format!("names an unknown emb:metric {other:?}"))),
        };
        if let Some(f) = s("emb:fingerprint")
            && (f.len() != 64 || !f.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(bad(format!("has an emb:fingerprint {f:?} that is not 64 hex characters")));
        }
        Ok(EmbeddingInfo {
            model_id: s("emb:model_id"),
            fingerprint: s("emb:fingerprint"),
            preprocessing: s("emb:preprocessing"),
            dimensions,
            metric,
            int8: s("emb:quantization").as_deref() != Some("none"),
            column: s("emb:column").unwrap_or_else(|| super::VECTOR_COLUMN.to_owned()),
        })
    }
}

/// What [`stac_collection`] describes.
#[derive(Debug, Clone, PartialEq)]
pub struct StacExtent {
    /// The bbox of every footprint exported.
    pub bbox: Option<[f64; 4]>,
    /// First and last `datetime` exported, RFC 3339.
    pub interval: (Option<String>, Option<String>),
    /// Rows exported.
    pub rows: u64,
}

/// A STAC 1.1 Collection for the exported file `href` of collection `name`: extent, one `data`
/// asset, and the embedding space as `emb:` fields.
#[must_use]
pub fn stac_collection(
    name: &str,
    href: &str,
    media_type: &str,
    emb: &EmbeddingInfo,
    extent: &StacExtent,
) -> serde_json::Value {
    let bbox = extent.bbox.unwrap_or([-180.0, -90.0, 180.0, 90.0]);
    let mut c = serde_json::json!({
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": name,
        "description": format!("skysift collection {name:?}: {} records with {}-dimensional embeddings", extent.rows, emb.dimensions),
        "license": "other",
        "extent": {
            "spatial": { "bbox": [bbox] },
            "temporal": { "interval": [[extent.interval.0, extent.interval.1]] },
        },
        "links": [],
        "assets": { "data": {
            "href": href,
            "type": media_type,
            "roles": ["data"],
            "title": format!("{name} ({} rows)", extent.rows),
        }},
    });
    if let Some(o) = c.as_object_mut() {
        o.extend(emb.to_json());
    }
    c
}
