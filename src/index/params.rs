//! Index parameters, stored in a collection's parameters under `index.*`.
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `index.m` | 16 | HNSW `M`: links per node on upper layers (2·M on layer 0) |
//! | `index.ef_construction` | 200 | HNSW `efConstruction` |
//! | `index.extra_edges` | 16 | query-guided edges per node on layer 0 (used with a query sample) |
//! | `index.min_rows` | 2048 | segments with fewer rows are scanned exactly, without a graph |
//! | `index.quantization` | `int8` | traversal codes: `int8` or `none` (f32 traversal) |
//! | `index.builder` | `native` | graph construction: `native` (see `graph_builder.rs`) or `hnsw_rs` (`hnsw_rs_adapter.rs`) |

use crate::error::{Error, Result};

/// Parameters of the per-segment index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexParams {
    /// HNSW `M`.
    pub m: usize,
    /// HNSW `efConstruction`.
    pub ef_construction: usize,
    /// Query-guided edges per node (0 disables them).
    pub extra_edges: usize,
    /// Smallest segment that gets a graph.
    pub min_rows: usize,
    /// Traverse on int8 codes (true) or on f32 vectors.
    pub int8: bool,
    /// Build with `hnsw_rs` instead of the native builder.
    pub hnsw_rs: bool,
}

impl Default for IndexParams {
    fn default() -> Self {
        IndexParams { m: 16, ef_construction: 200, extra_edges: 16, min_rows: 2048, int8: true, hnsw_rs: false }
    }
}

impl IndexParams {
    /// Reads `index.*` parameters, with defaults for missing keys.
    pub fn from_params(params: &[(String, String)]) -> Result<IndexParams> {
        let mut p = IndexParams::default();
        for (k, v) in params {
            let num =
                || v.parse::<usize>().map_err(|_| Error::Invalid(format!("parameter {k} = {v:?} is not a number")));
            match k.as_str() {
                "index.m" => p.m = num()?,
                "index.ef_construction" => p.ef_construction = num()?,
                "index.extra_edges" => p.extra_edges = num()?,
                "index.min_rows" => p.min_rows = num()?,
                "index.quantization" => {
                    p.int8 = match v.as_str() {
                        "int8" => true,
                        "none" => false,
                        _ => return Err(Error::Invalid(format!("index.quantization = {v:?}: use int8 or none"))),
                    }
                }
                "index.builder" => {
                    p.hnsw_rs = match v.as_str() {
                        "native" => false,
                        "hnsw_rs" => true,
                        _ => return Err(Error::Invalid(format!("index.builder = {v:?}: use native or hnsw_rs"))),
                    }
                }
                _ => {}
            }
        }
        p.validate()?;
        Ok(p)
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if !(2..=100).contains(&self.m) {
            return Err(Error::Invalid(format!("index.m = {} must be in 2..=100", self.m)));
        }
        if !(self.m..=4096).contains(&self.ef_construction) {
            return Err(Error::Invalid(format!(
                "index.ef_construction = {} must be in M..=4096",
                self.ef_construction
            )));
        }
        if self.extra_edges > 256 {
            return Err(Error::Invalid(format!("index.extra_edges = {} must be at most 256", self.extra_edges)));
        }
        Ok(())
    }

    /// As collection parameters.
    #[must_use]
    pub fn to_params(&self) -> Vec<(String, String)> {
        vec![
            ("index.m".into(), self.m.to_string()),
            ("index.ef_construction".into(), self.ef_construction.to_string()),
            ("index.extra_edges".into(), self.extra_edges.to_string()),
            ("index.min_rows".into(), self.min_rows.to_string()),
            ("index.quantization".into(), if self.int8 { "int8" } else { "none" }.into()),
            ("index.builder".into(), if self.hnsw_rs { "hnsw_rs" } else { "native" }.into()),
        ]
    }
}
