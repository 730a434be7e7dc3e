//! The gallery's map panel: the results' footprints drawn over a world outline, as inline SVG, coloured
//! by score, with a legend; a scene's heat map can be laid at its footprint.
//!
//! Projection: equirectangular with its standard parallel at the middle latitude of the footprints
//! (`x = lon · k`, `y = −lat`, degrees, `k = cos φ0`), so shapes keep their proportions near the
//! results. The view is the footprints' extent with [`MARGIN`] on each side, at least [`MIN_SPAN_LAT`]
//! high (a page with a heat map closes in on it instead) and [`ASPECT`] wide, never more than the world.
//!
//! Invariants:
//! - every result with a footprint gets exactly one `polygon.fp`, inside an `<a href="#resN">` that
//!   links to the result's card (so a click scrolls there without script), carrying `data-card`,
//!   `data-rank` and `data-score`; the page's script shows the card's thumbnail on hover;
//! - a footprint is drawn at least [`MIN_SHAPE`] of the view's width on each side (a 2 km scene on a
//!   continental map stays visible and clickable); it then has the class `small`;
//! - the outline (Natural Earth 1:110m, public domain; `assets/README.md`) is compiled in and the heat
//!   map is a data URL: the panel loads nothing.

use std::fmt::Write as _;

use super::{base64, escape};
use crate::query::heatmap::ramp;

/// The world outline: `#` comment lines, then one SVG subpath per line in tenths of a degree,
/// `x = lon`, `y = −lat` (made by `scripts/world_outline.py`).
const WORLD: &str = include_str!("../../assets/world-110m.svgpath");

/// Width : height of the view (the world's own, 360° by 180°).
pub const ASPECT: f64 = 2.0;
/// Margin around the footprints, as a share of their span, on each side.
pub const MARGIN: f64 = 0.25;
/// The lowest view, degrees of latitude: coastlines at 1:110m say nothing closer than this.
pub const MIN_SPAN_LAT: f64 = 6.0;
/// The smallest side a footprint is drawn with, as a share of the view's width.
pub const MIN_SHAPE: f64 = 0.012;
/// The lowest `k`: the standard parallel is held within ±75°.
const MIN_K: f64 = 0.26;

/// One result on the map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapItem {
    /// Position of the result's card in the page (its element id is `res{card}`).
    pub card: usize,
    /// The result's rank.
    pub rank: usize,
    /// Record id.
    pub id: u64,
    /// Score (colours are scaled between the lowest and the highest on the map).
    pub score: f32,
    /// WGS84 footprint `[min_lon, min_lat, max_lon, max_lat]`.
    pub bbox: [f64; 4],
}

/// A picture laid on the map at a footprint: a scene's heat map.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlay {
    /// Where the picture goes, WGS84 `[min_lon, min_lat, max_lon, max_lat]`.
    pub bbox: [f64; 4],
    /// PNG bytes, drawn stretched to the footprint.
    pub png: Vec<u8>,
    /// What it shows (its tooltip), e.g. the scene and the query.
    pub label: String,
    /// The scores its darkest and brightest colours stand for (the legend says them).
    pub range: (f32, f32),
}

/// The visible part of the projected plane: `viewBox = x y w h`, and the projection's `k`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// `cos` of the standard parallel.
    pub k: f64,
    /// Left edge (projected units).
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

impl View {
    /// The view of `boxes`, at least `min_span_lat` degrees high; `None` when there are none.
    #[must_use]
    pub fn fit(boxes: impl IntoIterator<Item = [f64; 4]>, min_span_lat: f64) -> Option<View> {
        let u = boxes.into_iter().reduce(|a, b| [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])])?;
        let k = f64::midpoint(u[1], u[3]).to_radians().cos().max(MIN_K);
        let (x0, x1, y0, y1) = (u[0] * k, u[2] * k, -u[3], -u[1]);
        let h = ((y1 - y0) * (1.0 + 2.0 * MARGIN))
            .max((x1 - x0) * (1.0 + 2.0 * MARGIN) / ASPECT)
            .max(min_span_lat)
            .max(1e-6);
        let (world_w, world_h) = (360.0 * k, 180.0);
        let (w, h) = ((h * ASPECT).min(world_w), h.min(world_h));
        // Centred on the footprints, shifted back inside the world where it sticks out.
        let x = ((x0 + x1 - w) / 2.0).clamp(-world_w / 2.0, world_w / 2.0 - w);
        let y = ((y0 + y1 - h) / 2.0).clamp(-world_h / 2.0, world_h / 2.0 - h);
        Some(View { k, x, y, w, h })
    }

    /// Projected `(x, y)` of a point.
    #[must_use]
    pub fn project(&self, lon: f64, lat: f64) -> (f64, f64) {
        (lon * self.k, -lat)
    }

    /// The projected rectangle `[x0, y0, x1, y1]` of a footprint (`y0` its north edge).
    #[must_use]
    pub fn corners(&self, b: [f64; 4]) -> [f64; 4] {
        let ((x0, y1), (x1, y0)) = (self.project(b[0], b[1]), self.project(b[2], b[3]));
        [x0, y0, x1, y1]
    }

    /// [`View::corners`], grown about its centre to at least
    /// [`MIN_SHAPE`] of the view's width on each side; and whether it was grown.
    #[must_use]
    pub fn rect(&self, b: [f64; 4]) -> ([f64; 4], bool) {
        let [x0, y0, x1, y1] = self.corners(b);
        let min = MIN_SHAPE * self.w;
        let grow =
            |a: f64, b: f64| if b - a < min { ((a + b - min) / 2.0, (a + b + min) / 2.0, true) } else { (a, b, false) };
        let ((x0, x1, gx), (y0, y1, gy)) = (grow(x0, x1), grow(y0, y1));
        ([x0, y0, x1, y1], gx || gy)
    }
}

/// The outline as one SVG path (the asset's subpaths, comments left out).
#[must_use]
pub fn outline_path() -> String {
    WORLD.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect()
}

/// `#rrggbb` of the heat-map ramp at `t` in 0..=1 (the colours of `skysift heatmap`).
#[must_use]
pub fn colour(t: f32) -> String {
    let [r, g, b] = ramp(t).map(|v| v.round().clamp(0.0, 255.0) as u8);
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Where `score` lies between `lo` and `hi` (the middle when they are equal).
fn unit(score: f32, lo: f32, hi: f32) -> f32 {
    if hi > lo { (score - lo) / (hi - lo) } else { 0.5 }
}

/// Graticule lines every `step` degrees across the view.
fn graticule(v: &View) -> String {
    let step = if v.h > 60.0 {
        30.0
    } else if v.h > 15.0 {
        10.0
    } else {
        2.0
    };
    let mut d = String::new();
    let mut lon = -180.0;
    while lon <= 180.0 {
        let _ = write!(d, "M{:.3} -90V90", lon * v.k);
        lon += step;
    }
    let mut lat = -90.0 + step;
    while lat < 90.0 {
        let _ = write!(d, "M{:.3} {lat}H{:.3}", -180.0 * v.k, 180.0 * v.k);
        lat += step;
    }
    d
}

/// The map panel for `items` (and `overlay`): a `<section id="map">` with the SVG, its legend and the
/// hover box. `None` when there is nothing to place.
#[must_use]
pub fn panel(items: &[MapItem], overlay: Option<&Overlay>) -> Option<String> {
    // A heat map is the point of its page: the view closes in on it, however small.
    let floor = if overlay.is_some() { 0.0 } else { MIN_SPAN_LAT };
    let view = View::fit(items.iter().map(|i| i.bbox).chain(overlay.map(|o| o.bbox)), floor)?;
    let (lo, hi) = items.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), i| (l.min(i.score), h.max(i.score)));
    let mut s = String::new();
    let _ = write!(
        s,
        "<section id=\"map\" class=\"map{}\"><svg class=\"main\" viewBox=\"{:.3} {:.3} {:.3} {:.3}\" role=\"img\" \
aria-label=\"map of {} footprints\"><rect class=\"sea\" x=\"{:.3}\" y=\"{:.3}\" width=\"{:.3}\" height=\"{:.3}\"/>\
<path class=\"grid\" d=\"{}\"/><path id=\"world\" class=\"land\" fill=\"#f4f1ea\" stroke=\"#9aa5ae\" stroke-width=\".6\" \
vector-effect=\"non-scaling-stroke\" transform=\"scale({:.5} 0.1)\" d=\"{}\"/>",
        if overlay.is_some() { " overlay" } else { "" },
        view.x,
        view.y,
        view.w,
        view.h,
        items.len(),
        view.x,
        view.y,
        view.w,
        view.h,
        graticule(&view),
        view.k / 10.0,
        outline_path(),
    );
    if let Some(o) = overlay {
        let [x0, y0, x1, y1] = view.corners(o.bbox);
        let _ = write!(
            s,
            "<image class=\"heat\" x=\"{x0:.4}\" y=\"{y0:.4}\" width=\"{:.4}\" height=\"{:.4}\" preserveAspectRatio=\"none\" \
href=\"data:image/png;base64,{}\"><title>{}</title></image>",
            x1 - x0,
            y1 - y0,
            base64(&o.png),
            escape(&o.label),
        );
    }
    // Lowest scores first, so that the best are drawn on top where footprints overlap.
    let mut order: Vec<&MapItem> = items.iter().collect();
    order.sort_by(|a, b| a.score.total_cmp(&b.score));
    for i in order {
        let ([x0, y0, x1, y1], small) = view.rect(i.bbox);
        let _ = write!(
            s,
            "<a href=\"#res{c}\"><polygon class=\"fp{small}\" data-card=\"{c}\" data-rank=\"{r}\" data-score=\"{sc:.4}\" \
fill=\"{fill}\" points=\"{x0:.4},{y0:.4} {x1:.4},{y0:.4} {x1:.4},{y1:.4} {x0:.4},{y1:.4}\"><title>#{r} &middot; id {id} \
&middot; {sc:.4}</title></polygon></a>",
            c = i.card,
            r = i.rank,
            id = i.id,
            sc = i.score,
            small = if small { " small" } else { "" },
            fill = colour(unit(i.score, lo, hi)),
        );
    }
    s.push_str("</svg>");
    if view.h < MIN_SPAN_LAT {
        // Closer than the outline can say anything: a world locator in the corner.
        let (lon, lat) = ((view.x + view.w / 2.0) / view.k, -(view.y + view.h / 2.0));
        let _ = write!(
            s,
            "<svg class=\"inset\" viewBox=\"-180 -90 360 180\" aria-label=\"where on Earth\"><rect class=\"sea\" \
x=\"-180\" y=\"-90\" width=\"360\" height=\"180\"/><use href=\"#world\" transform=\"scale({:.5} 1)\"/>\
<circle class=\"loc\" cx=\"{lon:.3}\" cy=\"{:.3}\" r=\"6\"/></svg>",
            1.0 / view.k,
            -lat,
        );
    }
    let stops: Vec<String> = (0..=4).map(|i| colour(i as f32 / 4.0)).collect();
    let ramp = format!("<i style=\"background:linear-gradient(90deg,{})\"></i>", stops.join(","));
    s.push_str("<div class=\"legend\">");
    if let Some(o) = overlay {
        let _ = write!(
            s,
            "<span>heat map at the scene's footprint, similarity {:.3}</span>{ramp}<span>{:.3}</span>\
<span>(hatched: no data); outlined: the {} best tiles, hover for the thumbnail, click for the tile</span>",
            o.range.0,
            o.range.1,
            items.len(),
        );
    } else {
        let _ = write!(
            s,
            "<span>score {lo:.3}</span>{ramp}<span>{hi:.3}</span>\
<span>{} footprints; hover for the thumbnail, click for the result</span>",
            items.len(),
        );
    }
    s.push_str(
        "</div><div id=\"maptip\" class=\"tip\" style=\"display:none\"><img alt=\"\"><span></span></div></section>",
    );
    Some(s)
}

/// The panel's style rules.
pub const CSS: &str = ".map{position:relative;background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;padding:8px;margin-top:14px}\
.map svg.main{display:block;width:100%;height:auto;max-height:70vh}\
.map .sea{fill:#dde7ef}\
.map .grid{fill:none;stroke:#c5d3de;stroke-width:.5;vector-effect:non-scaling-stroke}\
.map .fp{stroke:#fff;stroke-width:1.5;vector-effect:non-scaling-stroke;fill-opacity:.85;cursor:pointer}\
.map .fp:hover{stroke:#1d2329;stroke-width:2.5}\
.map.overlay .fp{fill-opacity:0;stroke-width:3}\
.map .inset{position:absolute;top:14px;right:14px;width:22%;min-width:90px;height:auto;border:1px solid #9aa5ae;background:#dde7ef}\
.map .loc{fill:#e8590c;stroke:#fff;stroke-width:1.5;vector-effect:non-scaling-stroke}\
.legend{display:flex;flex-wrap:wrap;align-items:center;gap:4px 8px;font-size:12px;color:#5b6670;margin-top:6px}\
.legend i{display:inline-block;width:120px;height:10px;border-radius:2px}\
.tip{position:fixed;z-index:10;pointer-events:none;background:#fff;border-radius:6px;box-shadow:0 2px 8px #0004;padding:4px;font-size:12px;text-align:center}\
.tip img{display:block;width:128px;height:128px;object-fit:cover;border-radius:4px;margin-bottom:2px}\
.card:target{outline:3px solid #e8590c}";

/// The panel's script: hovering a footprint shows its card's thumbnail next to the pointer.
pub const SCRIPT: &str = "(function(){var t=document.getElementById('maptip');if(!t)return;\
var ti=t.querySelector('img'),tc=t.querySelector('span');\
function move(e){var x=e.clientX+14,y=e.clientY+14,w=t.offsetWidth,h=t.offsetHeight;\
if(x+w>innerWidth)x=Math.max(0,e.clientX-w-14);if(y+h>innerHeight)y=Math.max(0,e.clientY-h-14);\
t.style.left=x+'px';t.style.top=y+'px';}\
document.querySelectorAll('#map .fp').forEach(function(p){\
p.addEventListener('pointerenter',function(e){var c=document.getElementById('res'+p.dataset.card),\
im=c&&c.querySelector('img');if(im){ti.src=im.src;ti.style.display='';}else{ti.removeAttribute('src');ti.style.display='none';}\
tc.textContent='#'+p.dataset.rank+' \\u00b7 '+p.dataset.score;t.style.display='block';move(e);});\
p.addEventListener('pointermove',move);\
p.addEventListener('pointerleave',function(){t.style.display='none';});});})();";

#[cfg(test)]
mod tests {
    use super::*;

    fn item(card: usize, score: f32, bbox: [f64; 4]) -> MapItem {
        MapItem { card, rank: card + 1, id: 100 + card as u64, score, bbox }
    }

    #[test]
    fn outline_is_embedded_and_well_formed() {
        let d = outline_path();
        assert!(d.len() > 20_000, "the outline is {} bytes", d.len());
        assert_eq!(d.matches('M').count(), d.matches('z').count());
        assert!(d.matches('M').count() > 200);
        // Every subpath starts inside the world (tenths of a degree).
        for sub in d.split('M').filter(|s| !s.is_empty()) {
            let start: Vec<i32> = sub.split('l').next().unwrap().split(' ').map(|n| n.parse().unwrap()).collect();
            assert!(start[0].abs() <= 1800 && start[1].abs() <= 900, "{start:?}");
        }
    }

    #[test]
    fn projection_of_a_footprint() {
        let v = View::fit([[10.0, 40.0, 12.0, 42.0]], MIN_SPAN_LAT).unwrap();
        assert!((v.k - 41f64.to_radians().cos()).abs() < 1e-12);
        assert_eq!(v.project(10.0, 40.0), (10.0 * v.k, -40.0));
        // 2° tall plus margins is under the floor: the view is MIN_SPAN_LAT high, ASPECT wide, centred.
        assert!((v.h - MIN_SPAN_LAT).abs() < 1e-9 && (v.w - MIN_SPAN_LAT * ASPECT).abs() < 1e-9);
        assert!(((v.x + v.w / 2.0) - 11.0 * v.k).abs() < 1e-9 && ((v.y + v.h / 2.0) + 41.0).abs() < 1e-9);
        let ([x0, y0, x1, y1], small) = v.rect([10.0, 40.0, 12.0, 42.0]);
        assert!(!small);
        assert!((x0 - 10.0 * v.k).abs() < 1e-12 && (x1 - 12.0 * v.k).abs() < 1e-12);
        assert!((y0 + 42.0).abs() < 1e-12 && (y1 + 40.0).abs() < 1e-12, "north is up");
        // A 2 km footprint is grown about its centre.
        let ([x0, y0, x1, y1], small) = v.rect([11.0, 41.0, 11.02, 41.02]);
        assert!(small);
        assert!((x1 - x0 - MIN_SHAPE * v.w).abs() < 1e-9 && (y1 - y0 - MIN_SHAPE * v.w).abs() < 1e-9);
        assert!((f64::midpoint(x0, x1) - 11.01 * v.k).abs() < 1e-9);
    }

    #[test]
    fn views_stay_inside_the_world() {
        let v = View::fit([[-118.6, 34.0, -118.5, 34.1], [151.5, -34.4, 151.6, -34.3]], MIN_SPAN_LAT).unwrap();
        assert!(v.w <= 360.0 * v.k + 1e-9 && v.h <= 180.0);
        assert!(v.x >= -180.0 * v.k - 1e-9 && v.x + v.w <= 180.0 * v.k + 1e-9);
        assert!(v.y >= -90.0 && v.y + v.h <= 90.0);
        let near_pole = View::fit([[0.0, 88.0, 1.0, 89.0]], MIN_SPAN_LAT).unwrap();
        assert!(near_pole.y >= -90.0 && near_pole.k >= MIN_K);
        assert_eq!(View::fit(std::iter::empty(), MIN_SPAN_LAT), None);
    }

    #[test]
    fn one_shape_per_footprint_coloured_by_score() {
        let items = [item(0, 0.9, [4.96, 51.94, 4.98, 51.96]), item(1, 0.1, [5.0, 52.0, 5.02, 52.02])];
        let p = panel(&items, None).unwrap();
        assert_eq!(p.matches("<polygon class=\"fp").count(), 2);
        assert!(p.contains("href=\"#res0\"") && p.contains("href=\"#res1\""));
        assert!(p.contains(&format!("fill=\"{}\"", colour(1.0))) && p.contains(&format!("fill=\"{}\"", colour(0.0))));
        // The best is drawn last (on top).
        assert!(p.find("data-card=\"1\"").unwrap() < p.find("data-card=\"0\"").unwrap());
        assert!(p.contains("class=\"land\"") && p.contains(&outline_path()));
        assert!(p.contains("score 0.100") && p.contains("0.900"));
        assert!(!p.contains("http"), "the panel loads nothing");
        assert_eq!(panel(&[], None), None);
    }

    #[test]
    fn heat_map_at_its_footprint_and_escaped() {
        let o = Overlay {
            bbox: [10.0, 40.0, 12.0, 42.0],
            png: b"\x89PNG".to_vec(),
            label: "<scene> & \"q\"".into(),
            range: (0.125, 0.25),
        };
        let p = panel(&[], Some(&o)).unwrap();
        let v = View::fit([o.bbox], 0.0).unwrap();
        assert!((v.h - 2.0 * (1.0 + 2.0 * MARGIN)).abs() < 1e-9, "the view closes in on the heat map");
        assert!(p.contains(&format!(
            "<image class=\"heat\" x=\"{:.4}\" y=\"-42.0000\" width=\"{:.4}\" height=\"2.0000\"",
            10.0 * v.k,
            2.0 * v.k
        )));
        assert!(p.contains("href=\"data:image/png;base64,iVBORw==\""));
        assert!(p.contains("<title>&lt;scene&gt; &amp; &quot;q&quot;</title>"));
        assert!(!p.contains("<scene>"));
        assert!(p.contains("similarity 0.125") && p.contains("0.250"), "the legend gives the heat map's range");
        // Closer than MIN_SPAN_LAT: a locator, its dot at the heat map's centre.
        assert!(p.contains("class=\"inset\"") && p.contains("<use href=\"#world\""));
        assert!(p.contains("cx=\"11.000\" cy=\"-41.000\""));
    }
}
