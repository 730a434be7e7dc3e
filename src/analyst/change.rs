//! Change over time: for each place seen in both periods, how much better it matches a query
//! after than before.
//!
//! A row is in the *before* period when its time field is earlier than `before`, in the *after*
//! period when it is at or later than `after` (rows between, or without a time, are left out).
//! Its place is either
//! - [`PlaceKey::Grid`]: the cell of a regular WGS84 grid holding the centre of its footprint:
//!   cell `(floor(lon / size), floor(lat / size))`, `size` in degrees (default 0.01, about 1.1 km
//!   north-south), written `"g<size>:<ix>:<iy>"`; or
//! - [`PlaceKey::Field`]: the value of a field, such as `scene` (same scene lineage).
//!
//! A place's score in a period is the best score of its rows in that period (inner product with
//! the query). Places seen in both periods are ranked by `after - before`, largest gain first
//! ([`ChangeOptions::loss`] ranks the largest loss first). One streamed pass over the rows passing
//! the filter; memory grows with the places, not the rows. Output as `GeoJSON` with [`change_geojson`].

use std::collections::HashMap;

use skysift_storage::schema::{FieldType, Value};

use crate::db::CollectionSnapshot;
use crate::error::{Error, Result};
use crate::index::exact::dot;
use crate::query::PreparedFilter;

use super::rows::visit;

/// Default grid cell, degrees.
pub const DEFAULT_CELL_DEG: f64 = 0.01;

/// [`DEFAULT_CELL_DEG`] (for command-line defaults).
#[must_use]
pub fn change_default_cell() -> f64 {
    DEFAULT_CELL_DEG
}

/// How rows are assigned to places.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaceKey {
    /// Grid cell of the footprint's centre; cell size in degrees, footprint field.
    Grid {
        /// Cell size, degrees.
        cell_deg: f64,
        /// Footprint field (a geo bbox).
        field: String,
    },
    /// Same value of this field (for example `scene`).
    Field(String),
}

/// What to compare.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeOptions {
    /// Rows earlier than this (microseconds since the epoch) are *before*.
    pub before: i64,
    /// Rows at or later than this are *after*.
    pub after: i64,
    /// Timestamp field; `None`: `datetime` when the schema has it, else its only timestamp field.
    pub time_field: Option<String>,
    /// Places.
    pub place: PlaceKey,
    /// Rank the largest loss first instead of the largest gain.
    pub loss: bool,
}

/// One place seen in both periods.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceChange {
    /// The place: grid cell name or field value.
    pub place: String,
    /// Bounding box of the place's footprints (grid: the cell), when known.
    pub bbox: Option<[f64; 4]>,
    /// Best score before.
    pub before: f32,
    /// Best score after.
    pub after: f32,
    /// `after - before`.
    pub delta: f32,
    /// Record with the best score before.
    pub before_id: u64,
    /// Record with the best score after.
    pub after_id: u64,
    /// Rows of the place in the before period.
    pub rows_before: u32,
    /// Rows of the place in the after period.
    pub rows_after: u32,
}

#[derive(Default)]
struct Period {
    best: Option<(f32, u64)>,
    rows: u32,
}

impl Period {
    fn add(&mut self, score: f32, id: u64) {
        self.rows += 1;
        if self.best.is_none_or(|(s, i)| score.total_cmp(&s).then(i.cmp(&id)).is_gt()) {
            self.best = Some((score, id));
        }
    }
}

fn time_field(col: &CollectionSnapshot, name: Option<&str>) -> Result<usize> {
    let schema = col.schema();
    let is_time = |i: usize| schema.fields.get(i).is_some_and(|f| f.ty == FieldType::Timestamp);
    if let Some(n) = name {
        return schema.field_index(n).filter(|&i| is_time(i)).ok_or_else(|| {
            Error::Invalid(format!(
                "{n:?} is not a timestamp field of {:?}; see `\\schema` or `skysift info`",
                col.name()
            ))
        });
    }
    if let Some(i) = schema.field_index("datetime").filter(|&i| is_time(i)) {
        return Ok(i);
    }
    let times: Vec<usize> = (0..schema.fields.len()).filter(|&i| is_time(i)).collect();
    match times.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::Invalid(format!("collection {:?} has no timestamp field to split periods by", col.name()))),
        _ => Err(Error::Invalid("several timestamp fields: pick one with --time-field".into())),
    }
}

/// Compares the periods (see the module docs) for the unit query `query`.
pub fn change(
    col: &CollectionSnapshot,
    query: &[f32],
    filter: Option<&PreparedFilter>,
    opts: &ChangeOptions,
) -> Result<Vec<PlaceChange>> {
    if opts.after < opts.before {
        return Err(Error::Invalid("--after must not be earlier than --before (the periods would overlap)".into()));
    }
    let q = col.prepare_query(query)?;
    let tf = time_field(col, opts.time_field.as_deref())?;
    let (place_field, cell) = match &opts.place {
        PlaceKey::Grid { cell_deg, field } => {
            if !(cell_deg.is_finite() && *cell_deg > 0.0) {
                return Err(Error::Invalid(format!("grid cell size must be > 0 degrees, not {cell_deg}")));
            }
            let i = col
                .schema()
                .field_index(field)
                .filter(|&i| col.schema().fields.get(i).is_some_and(|f| f.ty == FieldType::GeoBbox))
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "{field:?} is not a footprint (geo) field of {:?}; use --place FIELD (for example scene) instead",
                        col.name()
                    ))
                })?;
            (i, Some(*cell_deg))
        }
        PlaceKey::Field(f) => (
            col.schema().field_index(f).ok_or_else(|| Error::Invalid(format!("no field {f:?} in {:?}", col.name())))?,
            None,
        ),
    };
    let mut places: HashMap<String, (Period, Period, Option<[f64; 4]>)> = HashMap::new();
    visit(col, filter, &mut |id, v, row| {
        let Some(Value::Timestamp(t)) = row.value(tf)? else { return Ok(()) };
        let after = if t < opts.before {
            false
        } else if t >= opts.after {
            true
        } else {
            return Ok(());
        };
        let Some(pv) = row.value(place_field)? else { return Ok(()) };
        let (key, bbox) = match (cell, pv) {
            (Some(size), Value::GeoBbox(b)) => {
                let (cx, cy) = (f64::midpoint(b[0], b[2]), f64::midpoint(b[1], b[3]));
                let (ix, iy) = ((cx / size).floor() as i64, (cy / size).floor() as i64);
                let cellbox = [ix as f64 * size, iy as f64 * size, (ix + 1) as f64 * size, (iy + 1) as f64 * size];
                (format!("g{size}:{ix}:{iy}"), Some(cellbox))
            }
            (None, Value::GeoBbox(b)) => (format!("{b:?}"), Some(b)),
            (_, other) => (crate::present::display_value(&other), None),
        };
        let score = dot(v, &q);
        let e = places.entry(key).or_insert_with(|| (Period::default(), Period::default(), None));
        if after { &mut e.1 } else { &mut e.0 }.add(score, id);
        if cell.is_none()
            && let Some(row_box) = footprint_of(col, row)?
        {
            e.2 = Some(e.2.map_or(row_box, |b| {
                [b[0].min(row_box[0]), b[1].min(row_box[1]), b[2].max(row_box[2]), b[3].max(row_box[3])]
            }));
        } else if e.2.is_none() {
            e.2 = bbox;
        }
        Ok(())
    })?;
    let mut out: Vec<PlaceChange> = places
        .into_iter()
        .filter_map(|(place, (b, a, bbox))| {
            let ((bs, bi), (as_, ai)) = (b.best?, a.best?);
            Some(PlaceChange {
                place,
                bbox,
                before: bs,
                after: as_,
                delta: as_ - bs,
                before_id: bi,
                after_id: ai,
                rows_before: b.rows,
                rows_after: a.rows,
            })
        })
        .collect();
    out.sort_by(|x, y| {
        let order = if opts.loss { x.delta.total_cmp(&y.delta) } else { y.delta.total_cmp(&x.delta) };
        order.then_with(|| x.place.cmp(&y.place))
    });
    Ok(out)
}

/// The `footprint` of a row, when the collection has one.
fn footprint_of(col: &CollectionSnapshot, row: super::rows::Row<'_>) -> Result<Option<[f64; 4]>> {
    let Some(i) = col.schema().field_index("footprint") else { return Ok(None) };
    Ok(match row.value(i)? {
        Some(Value::GeoBbox(b)) => Some(b),
        _ => None,
    })
}

/// The changes as a `GeoJSON` `FeatureCollection` (places without a box have a null geometry).
#[must_use]
pub fn change_geojson(query: &str, changes: &[PlaceChange]) -> serde_json::Value {
    let features: Vec<serde_json::Value> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let geometry = c.bbox.map_or(serde_json::Value::Null, |b| {
                serde_json::json!({"type": "Polygon", "coordinates": [[[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]], [b[0], b[1]]]]})
            });
            serde_json::json!({
                "type": "Feature",
                "geometry": geometry,
                "properties": {
                    "rank": i + 1, "place": c.place, "delta": c.delta, "score_before": c.before, "score_after": c.after,
                    "before_id": c.before_id, "after_id": c.after_id, "rows_before": c.rows_before, "rows_after": c.rows_after,
                },
            })
        })
        .collect();
    serde_json::json!({"type": "FeatureCollection", "properties": {"query": query}, "features": features})
}
