//! One hit per place: grouping by a field, maximal marginal relevance, and merging tiles whose
//! footprints touch.
//!
//! - [`group_by`]: rows of one field value form a group; groups are ranked by their best row,
//!   each keeps its best `per_group` rows. A row whose value is null is a group of its own.
//! - [`mmr`] (Carbonell and Goldstein, 1998): picks, one at a time, the candidate maximising
//!   `lambda * sim(q, d) - (1 - lambda) * max over picked p of sim(d, p)`; `lambda = 1` is the
//!   plain ranking, `0` only diversity.
//! - [`merge_tiles`]: hits whose WGS84 footprints intersect or touch (closed boxes, so a shared
//!   edge or corner joins) are joined, transitively, into one [`Place`] with the union's area
//!   and the best score. Areas are on the sphere (radius 6,371.0088 km): a lon/lat box has area
//!   `R^2 * d_lon * (sin lat2 - sin lat1)`; the union of boxes is summed over vertical strips of
//!   the compressed longitudes, each strip's latitude intervals merged. A box with `min_lon >
//!   max_lon` crosses the antimeridian and is split in two.

use std::collections::HashMap;

use skysift_storage::schema::Value;

/// Mean Earth radius in km (IUGG).
pub const EARTH_RADIUS_KM: f64 = 6_371.008_8;

/// Indices of the rows kept by grouping `values` (one per row, rows best first): at most
/// `groups` groups of at most `per_group` rows, listed group by group, groups in the order of
/// their best row. Also says whether `groups` groups were filled.
#[must_use]
pub fn group_by(values: &[Option<Value>], per_group: usize, groups: usize) -> (Vec<usize>, bool) {
    let mut order: Vec<Vec<usize>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, v) in values.iter().enumerate() {
        let key = match v {
            Some(v) => format!("{v:?}"),
            None => format!("\u{0}null:{i}"),
        };
        if let Some(&g) = index.get(&key) {
            if let Some(rows) = order.get_mut(g)
                && rows.len() < per_group
            {
                rows.push(i);
            }
        } else if order.len() < groups {
            index.insert(key, order.len());
            order.push(vec![i]);
        }
    }
    let full = order.len() >= groups;
    (order.into_iter().flatten().collect(), full)
}

/// Indices of `k` candidates picked by maximal marginal relevance; `scores[i]` is the
/// candidate's similarity to the query, `vectors[i]` its (unit) vector.
#[must_use]
pub fn mmr(scores: &[f32], vectors: &[Vec<f32>], lambda: f32, k: usize) -> Vec<usize> {
    let n = scores.len().min(vectors.len());
    let mut picked: Vec<usize> = Vec::with_capacity(k.min(n));
    // Highest similarity of each candidate to anything picked so far.
    let mut nearest = vec![f32::NEG_INFINITY; n];
    let mut taken = vec![false; n];
    while picked.len() < k.min(n) {
        let mut best: Option<(f32, usize)> = None;
        for i in 0..n {
            if taken.get(i).copied().unwrap_or(true) {
                continue;
            }
            let redundancy = if picked.is_empty() { 0.0 } else { nearest.get(i).copied().unwrap_or(0.0) };
            let value = lambda * scores.get(i).copied().unwrap_or(0.0) - (1.0 - lambda) * redundancy;
            if best.is_none_or(|(b, _)| value > b) {
                best = Some((value, i));
            }
        }
        let Some((_, p)) = best else { break };
        picked.push(p);
        if let Some(t) = taken.get_mut(p) {
            *t = true;
        }
        let Some(pv) = vectors.get(p) else { break };
        for (i, v) in vectors.iter().enumerate().take(n) {
            let s = crate::index::exact::dot(v, pv);
            if let Some(m) = nearest.get_mut(i) {
                *m = m.max(s);
            }
        }
    }
    picked
}

/// A place: hits whose footprints touch, joined.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    /// Indices of the member rows, best first.
    pub members: Vec<usize>,
    /// Bounding box of the members' footprints `[min_lon, min_lat, max_lon, max_lat]`; `None`
    /// for a row without a footprint (a place of its own).
    pub bbox: Option<[f64; 4]>,
    /// Area of the union of the footprints, km2 (0 without footprints).
    pub area_km2: f64,
}

fn split_antimeridian(b: [f64; 4]) -> Vec<[f64; 4]> {
    if b[0] > b[2] { vec![[b[0], b[1], 180.0, b[3]], [-180.0, b[1], b[2], b[3]]] } else { vec![b] }
}

fn touch(a: &[f64; 4], b: &[f64; 4]) -> bool {
    const EPS: f64 = 1e-9;
    split_antimeridian(*a).iter().any(|a| {
        split_antimeridian(*b)
            .iter()
            .any(|b| a[0] <= b[2] + EPS && b[0] <= a[2] + EPS && a[1] <= b[3] + EPS && b[1] <= a[3] + EPS)
    })
}

/// Area of one lon/lat box, km2.
#[must_use]
pub fn bbox_area_km2(b: &[f64; 4]) -> f64 {
    union_area_km2(&[*b])
}

/// Area of the union of lon/lat boxes, km2 (see the module docs).
#[must_use]
pub fn union_area_km2(boxes: &[[f64; 4]]) -> f64 {
    let boxes: Vec<[f64; 4]> = boxes
        .iter()
        .filter(|b| b.iter().all(|v| v.is_finite()))
        .flat_map(|b| split_antimeridian(*b))
        .map(|b| [b[0], b[1].clamp(-90.0, 90.0), b[2], b[3].clamp(-90.0, 90.0)])
        .filter(|b| b[2] > b[0] && b[3] > b[1])
        .collect();
    let mut xs: Vec<f64> = boxes.iter().flat_map(|b| [b[0], b[2]]).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let mut total = 0.0;
    for w in xs.windows(2) {
        let (x0, x1) = (w[0], w[1]);
        let mut spans: Vec<(f64, f64)> =
            boxes.iter().filter(|b| b[0] <= x0 && b[2] >= x1).map(|b| (b[1], b[3])).collect();
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut sin_sum = 0.0;
        let mut current: Option<(f64, f64)> = None;
        for (lo, hi) in spans {
            current = match current {
                Some((a, b)) if lo <= b => Some((a, b.max(hi))),
                Some((a, b)) => {
                    sin_sum += b.to_radians().sin() - a.to_radians().sin();
                    Some((lo, hi))
                }
                None => Some((lo, hi)),
            };
        }
        if let Some((a, b)) = current {
            sin_sum += b.to_radians().sin() - a.to_radians().sin();
        }
        total += (x1 - x0).to_radians() * sin_sum;
    }
    total * EARTH_RADIUS_KM * EARTH_RADIUS_KM
}

/// The root of `i` in the union-find forest `parent`, halving paths on the way.
fn find(parent: &mut [usize], mut i: usize) -> usize {
    while let Some(&p) = parent.get(i) {
        if p == i {
            break;
        }
        let gp = parent.get(p).copied().unwrap_or(p);
        if let Some(slot) = parent.get_mut(i) {
            *slot = gp;
        }
        i = gp;
    }
    i
}

/// Joins rows (best first) whose footprints touch into places, ranked by their best row.
#[must_use]
pub fn merge_tiles(footprints: &[Option<[f64; 4]>]) -> Vec<Place> {
    let n = footprints.len();
    let mut parent: Vec<usize> = (0..n).collect();
    for i in 0..n {
        let Some(Some(a)) = footprints.get(i) else { continue };
        for j in i + 1..n {
            let Some(Some(b)) = footprints.get(j) else { continue };
            if touch(a, b) {
                let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                if ri != rj {
                    // The root is the smaller index: the best row of the place.
                    let (lo, hi) = (ri.min(rj), ri.max(rj));
                    if let Some(slot) = parent.get_mut(hi) {
                        *slot = lo;
                    }
                }
            }
        }
    }
    let mut places: Vec<Place> = Vec::new();
    let mut slot_of: HashMap<usize, usize> = HashMap::new();
    for i in 0..n {
        let root = find(&mut parent, i);
        let s = *slot_of.entry(root).or_insert_with(|| {
            places.push(Place { members: Vec::new(), bbox: None, area_km2: 0.0 });
            places.len() - 1
        });
        if let Some(p) = places.get_mut(s) {
            p.members.push(i);
        }
    }
    for p in &mut places {
        let boxes: Vec<[f64; 4]> = p.members.iter().filter_map(|&i| footprints.get(i).copied().flatten()).collect();
        p.bbox = boxes.iter().copied().reduce(|a, b| [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])]);
        p.area_km2 = union_area_km2(&boxes);
    }
    places
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_on_the_sphere() {
        // One degree square at the equator: R^2 * (pi/180) * sin(1 deg) = 12,363.7 km2.
        let a = bbox_area_km2(&[0.0, 0.0, 1.0, 1.0]);
        assert!((a - 12_363.7).abs() < 1.0, "{a}");
        // Two overlapping halves count their overlap once.
        let u = union_area_km2(&[[0.0, 0.0, 0.6, 1.0], [0.4, 0.0, 1.0, 1.0]]);
        assert!((u - a).abs() < 1e-6 * a, "{u}");
        let whole = 4.0 * std::f64::consts::PI * EARTH_RADIUS_KM * EARTH_RADIUS_KM;
        assert!((union_area_km2(&[[-180.0, -90.0, 180.0, 90.0]]) - whole).abs() < 1e-6 * whole);
        assert!((union_area_km2(&[[179.0, 0.0, -179.0, 1.0]]) - 2.0 * a).abs() < 1e-6 * a);
    }

    #[test]
    fn touching_tiles_merge_transitively() {
        let f = [
            Some([0.0, 0.0, 1.0, 1.0]),
            Some([5.0, 5.0, 6.0, 6.0]),
            Some([1.0, 0.0, 2.0, 1.0]),
            None,
            Some([2.0, 1.0, 3.0, 2.0]),
        ];
        let p = merge_tiles(&f);
        assert_eq!(p.iter().map(|p| p.members.clone()).collect::<Vec<_>>(), vec![vec![0, 2, 4], vec![1], vec![3]]);
        assert_eq!(p[0].bbox, Some([0.0, 0.0, 3.0, 2.0]));
        assert!(p[2].bbox.is_none() && p[2].area_km2 == 0.0);
    }

    #[test]
    fn groups_and_mmr() {
        let v = |s: &str| Some(Value::Keyword(s.into()));
        let (rows, full) = group_by(&[v("a"), v("a"), v("b"), None, v("a"), v("c")], 2, 3);
        assert_eq!(rows, vec![0, 1, 2, 3]);
        assert!(full);
        let vecs = vec![vec![1.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0]];
        assert_eq!(mmr(&[0.9, 0.89, 0.5], &vecs, 1.0, 2), vec![0, 1]);
        assert_eq!(mmr(&[0.9, 0.89, 0.5], &vecs, 0.5, 2), vec![0, 2]);
    }
}
