//! Evaluating a [`Filter`]: per segment to a roaring bitmap of passing rows, from the segment's
//! indexes; and row by row, for the in-memory rows and as the reference the index path is
//! tested against.
//!
//! | predicate | segment index used | fallback (segments written without the index) |
//! | --- | --- | --- |
//! | keyword `=`/`IN` | keyword value -> bitmap | — |
//! | integer/float/timestamp/bool ranges and `IN` | range index: 2 binary searches + bucket bitmaps | value scan |
//! | geo `intersects`/`within` | packed R-tree: nodes near the area, then exact tests | value scan |
//! | `IS [NOT] NULL`, negations | validity bits | — |
//! | `id` | id index (`IN`), id column scan (ranges) | — |
//! | text `=`/`IN` | none: value scan | — |
//!
//! Invariant: for every filter and segment, [`eval_segment`] equals [`eval_segment_rowwise`]
//! (property-tested in `tests/filter.rs`). Neither removes tombstones; callers do.

use std::ops::{Bound, RangeBounds};

use roaring::{MultiOps, RoaringBitmap};
use skysift_storage::schema::{FieldType, Value};
use skysift_storage::segment::Segment;
use skysift_storage::segment::ranges::key_of;

use super::check::{Filter, KeyRange, Leaf, Pred, Target, Test};
use crate::error::{Error, Result};

/// Largest `IN` list looked up id by id in the id index (larger lists scan the id column).
const ID_LOOKUPS: usize = 4096;

fn corrupted(seg: &Segment, region: &str, reason: &str) -> Error {
    Error::Storage(skysift_storage::Error::corrupted(seg.path(), region, 0, reason))
}

/// Whether `k` lies in one of `ranges` (sorted by start and disjoint when more than a few).
pub(crate) fn keys_contain(ranges: &[KeyRange], k: u64) -> bool {
    if ranges.len() <= 8 {
        return ranges.iter().any(|r| r.contains(&k));
    }
    let i = ranges.partition_point(|r| match r.0 {
        Bound::Included(s) => s <= k,
        Bound::Excluded(s) => s < k,
        Bound::Unbounded => true,
    });
    i.checked_sub(1).and_then(|i| ranges.get(i)).is_some_and(|r| r.contains(&k))
}

fn all_rows(seg: &Segment) -> RoaringBitmap {
    let mut b = RoaringBitmap::new();
    b.insert_range(0..seg.rows() as u32);
    b
}

fn scan(seg: &Segment, field: usize, mut f: impl FnMut(Option<&Value>) -> bool) -> Result<RoaringBitmap> {
    let mut out = Vec::new();
    for row in 0..seg.rows() {
        if f(seg.value(row, field)?.as_ref()) {
            out.push(row as u32);
        }
    }
    RoaringBitmap::from_sorted_iter(out).map_err(|_| Error::Invalid("rows out of order".into()))
}

/// Rows where the target has a value.
fn present(seg: &Segment, target: Target) -> Result<RoaringBitmap> {
    match target {
        Target::Id => Ok(all_rows(seg)),
        Target::Field { index, .. } => match seg.present_rows(index) {
            Some(b) => Ok(b?),
            None => scan(seg, index, |v| v.is_some()),
        },
    }
}

/// Rows where the leaf's test holds (before negation).
fn test_rows(seg: &Segment, leaf: &Leaf) -> Result<RoaringBitmap> {
    match (&leaf.test, leaf.target) {
        (Test::IsNull, t) => Ok(all_rows(seg) - present(seg, t)?),
        (Test::Keys(ranges), Target::Id) => {
            let points: Option<Vec<u64>> = ranges
                .iter()
                .map(|r| match r {
                    (Bound::Included(a), Bound::Included(b)) if a == b => Some(*a),
                    _ => None,
                })
                .collect();
            match points {
                Some(p) if p.len() <= ID_LOOKUPS => {
                    let mut rows = RoaringBitmap::new();
                    for id in &p {
                        rows.extend(seg.row_of(*id)?);
                    }
                    Ok(rows)
                }
                _ => {
                    let rows = seg
                        .ids()
                        .iter()
                        .enumerate()
                        .filter(|(_, id)| keys_contain(ranges, **id))
                        .map(|(r, _)| r as u32);
                    RoaringBitmap::from_sorted_iter(rows).map_err(|_| Error::Invalid("rows out of order".into()))
                }
            }
        }
        (Test::Keys(ranges), Target::Field { index, .. }) => match seg.ranges(index) {
            Some(view) => {
                let view = view?;
                let parts = ranges
                    .iter()
                    .map(|(lo, hi)| view.rows_between(*lo, *hi))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| corrupted(seg, "range index", e))?;
                Ok(parts.union())
            }
            None => scan(seg, index, |v| v.and_then(key_of).is_some_and(|k| keys_contain(ranges, k))),
        },
        (Test::Strings(set), Target::Field { index, ty: FieldType::Keyword }) => {
            let parts = set.iter().map(|s| seg.keyword_rows(index, s)).collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(parts.union())
        }
        (Test::Strings(set), Target::Field { index, .. }) => scan(seg, index, |v| match v {
            Some(Value::Text(s) | Value::Keyword(s)) => set.binary_search(s).is_ok(),
            _ => false,
        }),
        (Test::Geo(op, shape), Target::Field { index, .. }) => match seg.geo(index) {
            Some(view) => {
                let view = view?;
                let mut rows = Vec::new();
                view.search(&shape.bbox, |row, b| {
                    if shape.test(*op, b) {
                        rows.push(row);
                    }
                })
                .map_err(|e| corrupted(seg, "geo index", e))?;
                rows.sort_unstable();
                rows.dedup();
                RoaringBitmap::from_sorted_iter(rows).map_err(|_| Error::Invalid("rows out of order".into()))
            }
            None => scan(seg, index, |v| matches!(v, Some(Value::GeoBbox(b)) if shape.test(*op, b))),
        },
        (Test::Strings(_) | Test::Geo(..), Target::Id) => Ok(RoaringBitmap::new()),
    }
}

fn leaf_rows(seg: &Segment, leaf: &Leaf) -> Result<RoaringBitmap> {
    let rows = test_rows(seg, leaf)?;
    if leaf.negated { Ok(present(seg, leaf.target)? - rows) } else { Ok(rows) }
}

fn eval_pred(seg: &Segment, pred: &Pred) -> Result<RoaringBitmap> {
    match pred {
        Pred::All => Ok(all_rows(seg)),
        Pred::Leaf(l) => leaf_rows(seg, l),
        Pred::Or(parts) => Ok(parts.iter().map(|p| eval_pred(seg, p)).collect::<Result<Vec<_>>>()?.union()),
        Pred::And(parts) => {
            let mut sets = Vec::with_capacity(parts.len());
            for p in parts {
                let s = eval_pred(seg, p)?;
                if s.is_empty() {
                    return Ok(s);
                }
                sets.push(s);
            }
            sets.sort_by_key(RoaringBitmap::len);
            let mut it = sets.into_iter();
            let mut acc = it.next().unwrap_or_default();
            for s in it {
                acc &= s;
                if acc.is_empty() {
                    break;
                }
            }
            Ok(acc)
        }
    }
}

/// Rows of `seg` that pass `filter`, from the segment's indexes (tombstones not removed).
pub fn eval_segment(filter: &Filter, seg: &Segment) -> Result<RoaringBitmap> {
    eval_pred(seg, &filter.pred)
}

fn value_matches(leaf: &Leaf, id: u64, value: Option<&Value>) -> bool {
    let (has, hit) = match leaf.target {
        Target::Id => (true, matches!(&leaf.test, Test::Keys(r) if keys_contain(r, id))),
        Target::Field { .. } => {
            let hit = match (&leaf.test, value) {
                (Test::IsNull, v) => v.is_none(),
                (Test::Keys(r), Some(v)) => key_of(v).is_some_and(|k| keys_contain(r, k)),
                (Test::Strings(set), Some(Value::Keyword(s) | Value::Text(s))) => set.binary_search(s).is_ok(),
                (Test::Geo(op, shape), Some(Value::GeoBbox(b))) => shape.test(*op, b),
                _ => false,
            };
            (value.is_some(), hit)
        }
    };
    if leaf.negated { has && !hit } else { hit }
}

fn pred_matches(pred: &Pred, id: u64, value: &dyn Fn(usize) -> Option<Value>) -> bool {
    match pred {
        Pred::All => true,
        Pred::And(parts) => parts.iter().all(|p| pred_matches(p, id, value)),
        Pred::Or(parts) => parts.iter().any(|p| pred_matches(p, id, value)),
        Pred::Leaf(l) => {
            let v = match l.target {
                Target::Field { index, .. } => value(index),
                Target::Id => None,
            };
            value_matches(l, id, v.as_ref())
        }
    }
}

/// Whether the record `id` with `values` (one per schema field) passes `filter`.
#[must_use]
pub fn matches_record(filter: &Filter, id: u64, values: &[Option<Value>]) -> bool {
    pred_matches(&filter.pred, id, &|f| values.get(f).cloned().flatten())
}

/// Rows of `seg` that pass `filter`, testing every row's values one by one (the reference for
/// [`eval_segment`]).
pub fn eval_segment_rowwise(filter: &Filter, seg: &Segment) -> Result<RoaringBitmap> {
    let mut out = RoaringBitmap::new();
    for row in 0..seg.rows() {
        let values = (0..seg.field_count()).map(|f| seg.value(row, f)).collect::<std::result::Result<Vec<_>, _>>()?;
        if matches_record(filter, seg.id(row), &values) {
            out.insert(row as u32);
        }
    }
    Ok(out)
}

fn estimate_leaf(seg: &Segment, leaf: &Leaf) -> Result<f64> {
    let rows = seg.rows() as f64;
    let present = match leaf.target {
        Target::Id => rows,
        Target::Field { index, .. } => match seg.present_rows(index) {
            Some(b) => b?.len() as f64,
            None => rows,
        },
    };
    let hit = match (&leaf.test, leaf.target) {
        (Test::IsNull, _) => rows - present,
        (Test::Keys(ranges), Target::Field { index, .. }) => match seg.ranges(index) {
            Some(v) => {
                let v = v?;
                ranges.iter().map(|(lo, hi)| v.positions(*lo, *hi).len()).sum::<usize>() as f64
            }
            None => present / 3.0,
        },
        (Test::Keys(ranges), Target::Id) => {
            let points = ranges.iter().all(|r| matches!(r, (Bound::Included(a), Bound::Included(b)) if a == b));
            if points { (ranges.len() as f64).min(rows) } else { rows / 3.0 }
        }
        (Test::Strings(set), Target::Field { index, ty: FieldType::Keyword }) => {
            let mut n = 0;
            for s in set {
                n += seg.keyword_rows(index, s)?.len();
            }
            n as f64
        }
        (Test::Strings(set), _) => (set.len() as f64 * present / 10.0).min(present),
        (Test::Geo(_, shape), Target::Field { index, .. }) => match seg.geo(index) {
            Some(v) => {
                let mut n = 0usize;
                v?.search(&shape.bbox, |_, _| n += 1).map_err(|e| corrupted(seg, "geo index", e))?;
                n as f64
            }
            None => present / 3.0,
        },
        (Test::Geo(..), Target::Id) => 0.0,
    };
    Ok(if leaf.negated { (present - hit).max(0.0) } else { hit })
}

fn estimate_pred(seg: &Segment, pred: &Pred) -> Result<f64> {
    let rows = (seg.rows() as f64).max(1.0);
    Ok(match pred {
        Pred::All => seg.rows() as f64,
        Pred::Leaf(l) => estimate_leaf(seg, l)?,
        Pred::And(parts) => {
            let mut f = 1.0;
            for p in parts {
                f *= estimate_pred(seg, p)? / rows;
            }
            f * rows
        }
        Pred::Or(parts) => {
            let mut miss = 1.0;
            for p in parts {
                miss *= 1.0 - estimate_pred(seg, p)? / rows;
            }
            (1.0 - miss) * rows
        }
    })
}

/// Estimated rows of `seg` passing `filter`, from index statistics only: exact for a single
/// keyword or range predicate, the candidates of the spatial index for a geo predicate, and
/// combined under independence for `AND`/`OR`. Shown next to the actual count by `EXPLAIN`.
pub fn estimate(filter: &Filter, seg: &Segment) -> Result<f64> {
    estimate_pred(seg, &filter.pred)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sets() {
        let pts: Vec<KeyRange> = (0..20u64).map(|k| (Bound::Included(k * 3), Bound::Included(k * 3))).collect();
        for k in 0..70 {
            assert_eq!(keys_contain(&pts, k), k % 3 == 0 && k < 60, "{k}");
        }
        let r = [(Bound::Excluded(5), Bound::Unbounded)];
        assert!(!keys_contain(&r, 5) && keys_contain(&r, 6));
    }
}
