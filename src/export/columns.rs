//! The shape of exported rows: which schema fields become columns, where the footprint is, and
//! the footprint's polygon in the forms the writers need.
//!
//! Invariant: [`Columns::fields`] is the schema's fields in schema order without blobs
//! (thumbnails) and without the footprint, which every format writes as geometry instead.

use std::collections::HashMap;

use skysift_storage::schema::{FieldType, Schema, Value};

use crate::present::AnswerRow;

/// The field that holds a record's WGS84 footprint (what import and sidecars write).
pub const FOOTPRINT_FIELD: &str = "footprint";

/// One row to export: the same row the CLI prints for a result (rank and score set), or a stored
/// record of a whole-collection export (no rank, no score).
#[derive(Debug, Clone, Copy)]
pub struct ExportRow<'a> {
    /// Record id.
    pub id: u64,
    /// 1-based rank in a result list.
    pub rank: Option<usize>,
    /// Similarity (or probability) of a result.
    pub score: Option<f32>,
    /// Non-null fields by name, in schema order.
    pub fields: &'a [(String, Value)],
    /// The embedding, when the export carries vectors.
    pub vector: Option<&'a [f32]>,
}

impl<'a> From<&'a AnswerRow> for ExportRow<'a> {
    fn from(r: &'a AnswerRow) -> Self {
        ExportRow { id: r.id, rank: Some(r.rank), score: Some(r.score), fields: &r.fields, vector: None }
    }
}

impl ExportRow<'_> {
    /// The footprint, when the row has one.
    #[must_use]
    pub fn footprint(&self) -> Option<[f64; 4]> {
        self.fields.iter().find_map(|(n, v)| match v {
            Value::GeoBbox(b) if n == FOOTPRINT_FIELD => Some(*b),
            _ => None,
        })
    }
}

/// The columns of an export.
#[derive(Debug, Clone, PartialEq)]
pub struct Columns {
    /// Field columns `(name, type)`, schema order, no blobs, no footprint.
    pub fields: Vec<(String, FieldType)>,
    /// Whether rows carry rank and score (query results).
    pub scored: bool,
    /// Embedding dimension when rows carry vectors.
    pub vector_dim: Option<usize>,
    index: HashMap<String, usize>,
}

impl Columns {
    /// The columns for rows of a collection with `schema`.
    #[must_use]
    pub fn of(schema: &Schema, scored: bool, with_vectors: bool) -> Columns {
        let fields: Vec<(String, FieldType)> = schema
            .fields
            .iter()
            .filter(|f| f.ty != FieldType::Blob && !(f.name == FOOTPRINT_FIELD && f.ty == FieldType::GeoBbox))
            .map(|f| (f.name.clone(), f.ty))
            .collect();
        let index = fields.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
        Columns { fields, scored, vector_dim: with_vectors.then_some(schema.dim as usize), index }
    }

    /// The column number of field `name`, when it is a column.
    #[must_use]
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The row's values in column order (`None`: null).
    #[must_use]
    pub fn values<'r>(&self, row: &'r ExportRow<'_>) -> Vec<Option<&'r Value>> {
        let mut out = vec![None; self.fields.len()];
        for (n, v) in row.fields {
            if let Some(i) = self.position(n)
                && let Some(slot) = out.get_mut(i)
                && v.ty() == self.fields.get(i).map_or(FieldType::Blob, |f| f.1)
            {
                *slot = Some(v);
            }
        }
        out
    }
}

/// The exterior ring of a bbox `[min_lon, min_lat, max_lon, max_lat]`: counter-clockwise
/// (south-west, south-east, north-east, north-west), closed, longitude first.
#[must_use]
pub fn bbox_ring(b: [f64; 4]) -> [[f64; 2]; 5] {
    let [w, s, e, n] = b;
    [[w, s], [e, s], [e, n], [w, n], [w, s]]
}

/// A bbox as a WKT polygon (the same ring as [`bbox_ring`]).
#[must_use]
pub fn wkt_polygon(b: [f64; 4]) -> String {
    let pts: Vec<String> = bbox_ring(b).iter().map(|[x, y]| format!("{x} {y}")).collect();
    format!("POLYGON(({}))", pts.join(", "))
}

/// The `GeoJSON` geometry of a bbox: a polygon.
#[must_use]
pub fn geojson_polygon(b: [f64; 4]) -> serde_json::Value {
    serde_json::json!({ "type": "Polygon", "coordinates": [bbox_ring(b)] })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twice the signed area (shoelace): positive for counter-clockwise rings.
    fn signed_area2(ring: &[[f64; 2]]) -> f64 {
        ring.windows(2).map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1]).sum()
    }

    #[test]
    fn ring_is_counter_clockwise_and_closed() {
        let r = bbox_ring([10.0, 40.0, 11.0, 41.5]);
        assert!(signed_area2(&r) > 0.0);
        assert_eq!(r[0].map(f64::to_bits), r[4].map(f64::to_bits));
        assert_eq!(wkt_polygon([0.0, 1.0, 2.0, 3.0]), "POLYGON((0 1, 2 1, 2 3, 0 3, 0 1))");
    }
}
