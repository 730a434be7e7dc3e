//! Exact spatial tests between a stored footprint (a WGS84 bbox) and a query shape.
//!
//! Boxes and polygons are closed sets in plain lon/lat coordinates (no antimeridian wrapping):
//! touching counts as intersecting, and a box on the boundary of a query box is within it. The
//! segment index and the row-by-row evaluator call the same functions on the same `f64` values,
//! so they agree bit for bit.

use skysift_storage::segment::geo::{GeoBox, boxes_intersect};

use super::ast::{GeoOp, Shape};

/// A validated query shape with its bounding box.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoShape {
    /// Bounding box of the shape.
    pub bbox: GeoBox,
    /// The ring (without the closing repeat), for polygons.
    pub ring: Option<Vec<[f64; 2]>>,
}

fn in_range(lon: f64, lat: f64) -> bool {
    lon.is_finite() && lat.is_finite() && (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat)
}

impl GeoShape {
    /// Checks a shape: finite WGS84 coordinates, `min <= max` for boxes, at least three distinct
    /// points for polygons.
    pub fn new(shape: &Shape) -> Result<GeoShape, String> {
        match shape {
            Shape::Bbox(b) => {
                if !in_range(b[0], b[1]) || !in_range(b[2], b[3]) || b[0] > b[2] || b[1] > b[3] {
                    return Err(format!(
                        "bbox({}, {}, {}, {}) is not a WGS84 box: write bbox(min_lon, min_lat, max_lon, max_lat) \
                         with longitudes in -180..180 and latitudes in -90..90",
                        b[0], b[1], b[2], b[3]
                    ));
                }
                Ok(GeoShape { bbox: *b, ring: None })
            }
            Shape::Polygon(points) => {
                if let Some([lon, lat]) = points.iter().find(|[lon, lat]| !in_range(*lon, *lat)) {
                    return Err(format!("polygon point ({lon} {lat}) is outside WGS84 (lon -180..180, lat -90..90)"));
                }
                let mut ring = points.clone();
                if ring.len() > 1 && ring.first() == ring.last() {
                    ring.pop();
                }
                let mut distinct = ring.clone();
                distinct.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
                distinct.dedup();
                if distinct.len() < 3 {
                    return Err(
                        "a polygon needs at least three distinct points: polygon((lon lat, lon lat, lon lat))".into()
                    );
                }
                let bbox =
                    ring.iter().fold([f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY], |u, p| {
                        [u[0].min(p[0]), u[1].min(p[1]), u[2].max(p[0]), u[3].max(p[1])]
                    });
                Ok(GeoShape { bbox, ring: Some(ring) })
            }
        }
    }

    /// Whether a stored footprint `b` passes `op` against this shape.
    #[must_use]
    pub fn test(&self, op: GeoOp, b: &GeoBox) -> bool {
        match (&self.ring, op) {
            (None, GeoOp::Intersects) => boxes_intersect(b, &self.bbox),
            (None, GeoOp::Within) => {
                b[0] >= self.bbox[0] && b[1] >= self.bbox[1] && b[2] <= self.bbox[2] && b[3] <= self.bbox[3]
            }
            (Some(ring), GeoOp::Intersects) => boxes_intersect(b, &self.bbox) && polygon_intersects_box(ring, b),
            (Some(ring), GeoOp::Within) => {
                b[0] >= self.bbox[0]
                    && b[1] >= self.bbox[1]
                    && b[2] <= self.bbox[2]
                    && b[3] <= self.bbox[3]
                    && polygon_contains_box(ring, b)
            }
        }
    }
}

/// Sign of the turn `a -> b -> c`: positive counter-clockwise, 0 collinear.
fn orient(a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> f64 {
    (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
}

fn on_segment(a: [f64; 2], b: [f64; 2], p: [f64; 2]) -> bool {
    p[0] >= a[0].min(b[0]) && p[0] <= a[0].max(b[0]) && p[1] >= a[1].min(b[1]) && p[1] <= a[1].max(b[1])
}

/// Whether the closed segments `ab` and `cd` share a point.
fn segments_meet(a: [f64; 2], b: [f64; 2], c: [f64; 2], d: [f64; 2]) -> bool {
    let (d1, d2, d3, d4) = (orient(c, d, a), orient(c, d, b), orient(a, b, c), orient(a, b, d));
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0)) && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0)) {
        return true;
    }
    (d1 == 0.0 && on_segment(c, d, a))
        || (d2 == 0.0 && on_segment(c, d, b))
        || (d3 == 0.0 && on_segment(a, b, c))
        || (d4 == 0.0 && on_segment(a, b, d))
}

/// Even-odd point-in-polygon (used only where the boundaries do not meet, so a point on the
/// boundary never reaches it).
fn point_in_ring(ring: &[[f64; 2]], p: [f64; 2]) -> bool {
    let mut inside = false;
    let n = ring.len();
    for i in 0..n {
        let (Some(a), Some(b)) = (ring.get(i), ring.get((i + n - 1) % n)) else { continue };
        if (a[1] > p[1]) != (b[1] > p[1]) && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0] {
            inside = !inside;
        }
    }
    inside
}

/// Whether the closed polygon `ring` and the closed box `b` share a point: a polygon edge meets
/// the box (an edge touching a box edge, or a vertex inside the box), or one contains the other.
#[must_use]
pub fn polygon_intersects_box(ring: &[[f64; 2]], b: &GeoBox) -> bool {
    let corners = [[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]];
    let n = ring.len();
    for i in 0..n {
        let (Some(&p), Some(&q)) = (ring.get(i), ring.get((i + 1) % n)) else { continue };
        if p[0] >= b[0] && p[0] <= b[2] && p[1] >= b[1] && p[1] <= b[3] {
            return true;
        }
        for j in 0..4 {
            if segments_meet(p, q, corners[j], corners[(j + 1) % 4]) {
                return true;
            }
        }
    }
    point_in_ring(ring, corners[0])
}

/// Whether `p` lies on the boundary of `ring`.
fn on_ring(ring: &[[f64; 2]], p: [f64; 2]) -> bool {
    let n = ring.len();
    (0..n).any(|i| {
        let (Some(&a), Some(&b)) = (ring.get(i), ring.get((i + 1) % n)) else { return false };
        orient(a, b, p) == 0.0 && on_segment(a, b, p)
    })
}

/// Whether `p` lies in the closed polygon `ring`.
fn in_closed_ring(ring: &[[f64; 2]], p: [f64; 2]) -> bool {
    on_ring(ring, p) || point_in_ring(ring, p)
}

/// Parameters `t` in `[0, 1]` where segment `ab` meets segment `cd` (both ends of an overlap when
/// they are collinear).
fn meeting_params(a: [f64; 2], b: [f64; 2], c: [f64; 2], d: [f64; 2], out: &mut Vec<f64>) {
    let r = [b[0] - a[0], b[1] - a[1]];
    let s = [d[0] - c[0], d[1] - c[1]];
    let denom = r[0] * s[1] - r[1] * s[0];
    let len2 = r[0] * r[0] + r[1] * r[1];
    let param = |p: [f64; 2]| if len2 > 0.0 { ((p[0] - a[0]) * r[0] + (p[1] - a[1]) * r[1]) / len2 } else { 0.0 };
    if denom == 0.0 {
        for p in [c, d] {
            if orient(a, b, p) == 0.0 && on_segment(a, b, p) {
                out.push(param(p));
            }
        }
    } else {
        let t = ((c[0] - a[0]) * s[1] - (c[1] - a[1]) * s[0]) / denom;
        let u = ((c[0] - a[0]) * r[1] - (c[1] - a[1]) * r[0]) / denom;
        if (0.0..=1.0).contains(&t) && (0.0..=1.0).contains(&u) {
            out.push(t);
        }
    }
}

/// Whether the closed box `b` lies inside the closed polygon `ring` (a simple polygon): every
/// point of the box's boundary is in the polygon (each box edge is cut where polygon edges meet
/// it, and every piece's midpoint is tested), and no polygon edge passes through the box's open
/// interior. Together these leave no part of the box outside.
#[must_use]
pub fn polygon_contains_box(ring: &[[f64; 2]], b: &GeoBox) -> bool {
    let corners = [[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]];
    let n = ring.len();
    let edges = || (0..n).filter_map(|i| Some((*ring.get(i)?, *ring.get((i + 1) % n)?)));
    let mut cuts = Vec::new();
    for j in 0..4 {
        let (a, c) = (corners[j], corners[(j + 1) % 4]);
        cuts.clear();
        cuts.extend([0.0, 1.0]);
        for (p, q) in edges() {
            meeting_params(a, c, p, q, &mut cuts);
        }
        cuts.sort_by(f64::total_cmp);
        let at = |t: f64| [a[0] + (c[0] - a[0]) * t, a[1] + (c[1] - a[1]) * t];
        if !in_closed_ring(ring, a) || !cuts.windows(2).all(|w| in_closed_ring(ring, at(f64::midpoint(w[0], w[1])))) {
            return false;
        }
    }
    // No polygon edge through the open interior (Liang-Barsky clip to the closed box; a clipped
    // piece off the boundary has its midpoint strictly inside).
    edges().all(|(p, q)| {
        let d = [q[0] - p[0], q[1] - p[1]];
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (den, num) in [(-d[0], p[0] - b[0]), (d[0], b[2] - p[0]), (-d[1], p[1] - b[1]), (d[1], b[3] - p[1])] {
            if den == 0.0 {
                if num < 0.0 {
                    return true;
                }
            } else {
                let t = num / den;
                if den < 0.0 {
                    t0 = t0.max(t);
                } else {
                    t1 = t1.min(t);
                }
            }
        }
        if t0 >= t1 {
            return true;
        }
        let m = f64::midpoint(t0, t1);
        let x = [p[0] + d[0] * m, p[1] + d[1] * m];
        !(x[0] > b[0] && x[0] < b[2] && x[1] > b[1] && x[1] < b[3])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygon_box_cases() {
        let tri = vec![[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        assert!(polygon_intersects_box(&tri, &[1.0, 1.0, 2.0, 2.0]), "box inside the polygon");
        assert!(polygon_intersects_box(&tri, &[-5.0, -5.0, 20.0, 20.0]), "polygon inside the box");
        assert!(polygon_intersects_box(&tri, &[5.0, 5.0, 6.0, 6.0]), "corner on the hypotenuse");
        assert!(!polygon_intersects_box(&tri, &[6.0, 6.0, 7.0, 7.0]), "beyond the hypotenuse");
        assert!(polygon_intersects_box(&tri, &[-1.0, 4.0, 1.0, 5.0]), "edge crossing");
        assert!(polygon_intersects_box(&tri, &[3.0, 3.0, 3.0, 3.0]), "a point inside");
        assert!(!polygon_intersects_box(&tri, &[11.0, 0.0, 12.0, 1.0]));
        let s = GeoShape::new(&Shape::Bbox([0.0, 0.0, 10.0, 10.0])).unwrap();
        assert!(s.test(GeoOp::Within, &[0.0, 0.0, 10.0, 10.0]));
        assert!(!s.test(GeoOp::Within, &[0.0, 0.0, 10.5, 10.0]));
        assert!(s.test(GeoOp::Intersects, &[10.0, 10.0, 11.0, 11.0]));
        assert!(GeoShape::new(&Shape::Polygon(vec![[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])).is_err());
        assert!(GeoShape::new(&Shape::Bbox([0.0, 0.0, 200.0, 1.0])).is_err());
    }

    #[test]
    fn polygon_contains_box_cases() {
        let tri = vec![[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        assert!(polygon_contains_box(&tri, &[1.0, 1.0, 2.0, 2.0]), "inside");
        assert!(polygon_contains_box(&tri, &[0.0, 0.0, 5.0, 5.0]), "corners on the boundary");
        assert!(!polygon_contains_box(&tri, &[4.0, 4.0, 6.0, 6.0]), "across the hypotenuse");
        assert!(!polygon_contains_box(&tri, &[-1.0, 1.0, 1.0, 2.0]), "across an edge");
        assert!(polygon_contains_box(&tri, &[3.0, 3.0, 3.0, 3.0]) && polygon_contains_box(&tri, &[5.0, 5.0, 5.0, 5.0]));
        assert!(!polygon_contains_box(&tri, &[6.0, 6.0, 6.0, 6.0]), "a point outside");
        let square = vec![[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]];
        assert!(polygon_contains_box(&square, &[0.0, 0.0, 4.0, 4.0]), "the polygon itself");
        // A U around the box, open at the top: every corner on the boundary, the box outside.
        let u =
            vec![[-1.0, -1.0], [2.0, -1.0], [2.0, 2.0], [1.0, 2.0], [1.0, 0.0], [0.0, 0.0], [0.0, 2.0], [-1.0, 2.0]];
        assert!(!polygon_contains_box(&u, &[0.0, 0.0, 1.0, 1.0]));
        assert!(polygon_contains_box(&u, &[-1.0, -1.0, 0.0, 2.0]), "the left arm");
        // A notch reaching into the box from above: all corners inside, an edge through it.
        let notch = vec![[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [6.0, 10.0], [5.0, 3.0], [4.0, 10.0], [0.0, 10.0]];
        assert!(!polygon_contains_box(&notch, &[1.0, 1.0, 9.0, 8.0]));
        assert!(polygon_contains_box(&notch, &[1.0, 1.0, 9.0, 2.5]));
        // A vertical segment crossing the notch's mouth leaves the polygon between two touches.
        assert!(!polygon_contains_box(&notch, &[3.0, 9.0, 7.0, 9.0]));
        let s = GeoShape::new(&Shape::Polygon(notch)).unwrap();
        assert!(s.test(GeoOp::Within, &[1.0, 1.0, 9.0, 2.5]) && !s.test(GeoOp::Within, &[1.0, 1.0, 11.0, 2.5]));
    }

    proptest::proptest! {
        /// A box found within a polygon has every point of a fine grid over it in the polygon.
        #[test]
        fn contained_boxes_have_every_sample_inside(
            pts in proptest::collection::vec((0i32..8, 0i32..8), 3..7),
            b in (0i32..8, 0i32..8, 0i32..4, 0i32..4),
        ) {
            let ring: Vec<[f64; 2]> = pts.iter().map(|&(x, y)| [f64::from(x), f64::from(y)]).collect();
            let bx = [f64::from(b.0), f64::from(b.1), f64::from(b.0 + b.2), f64::from(b.1 + b.3)];
            if polygon_contains_box(&ring, &bx) {
                for i in 0..=16 {
                    for j in 0..=16 {
                        let p = [bx[0] + (bx[2] - bx[0]) * f64::from(i) / 16.0, bx[1] + (bx[3] - bx[1]) * f64::from(j) / 16.0];
                        proptest::prop_assert!(in_closed_ring(&ring, p), "{ring:?} {bx:?} {p:?}");
                    }
                }
            }
        }
    }
}
