//! Metadata beside the imagery: STAC Items, per-image JSON sidecars and CSV manifests, gathered per
//! image, with field types inferred over the whole archive.
//!
//! Sources, in the order they are applied (a later one overrides an earlier one field by field):
//! 1. CSV manifests: a header row; the image is named by the first column called `path`, `file`,
//!    `filename`, `image`, `source`, `href` or `location` (relative to the CSV's folder, else to the
//!    archive root); a `bbox` column (`min_lon,min_lat,max_lon,max_lat`, brackets optional) or four
//!    columns `min_lon,min_lat,max_lon,max_lat` (or `west,south,east,north`) give the footprint;
//! 2. STAC Items (`GeoJSON` Features with `properties`): every asset whose media type is an image or
//!    whose roles include `data` (thumbnails and overviews excluded) is imagery described by the item;
//!    `bbox` (else the bounding box of `geometry`) is the footprint; `properties` become fields;
//!    `eo:bands` (item or asset) name the bands; the item `id` becomes `item_id`;
//! 3. per-image sidecars: `x.json` or `x.jpg.json` beside `x.jpg`, a STAC Item without usable assets
//!    or any flat JSON object.
//!
//! Invariants:
//! - no href leaves the archive root: `..`, absolute paths and symbolic links that end outside it are
//!   reported ([`Reason::OutsideArchive`]) and not followed; remote URLs are reported
//!   ([`Reason::RemoteHref`]);
//! - field names are valid schema names (other characters become `_`), never one of the import's own
//!   fields (a clash is renamed `meta:<name>`);
//! - only scalars become fields: arrays of scalars are joined with `,`, nested objects are skipped and
//!   noted once per name.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use serde_json::Value as Json;
use skysift_storage::schema::{FieldType, Value};

use super::fields;
use super::report::{Problem, Reason};
use super::walk::{EntryKind, Inventory};
use crate::time::parse_timestamp;

/// Largest JSON metadata file read.
pub const MAX_JSON_BYTES: u64 = 16 << 20;
/// Strings longer than this make a field `text` (not indexed) rather than `keyword`.
pub const MAX_KEYWORD_LEN: usize = 256;
pub use super::fields::IMPORT_FIELDS;
/// STAC properties that are floats even when every value happens to be whole.
const FLOAT_PROPERTIES: [&str; 8] = [
    "eo:cloud_cover",
    "eo:snow_cover",
    "view:off_nadir",
    "view:incidence_angle",
    "view:azimuth",
    "view:sun_azimuth",
    "view:sun_elevation",
    "sun_elevation",
];
/// Column names that name the image in a CSV manifest.
const PATH_COLUMNS: [&str; 7] = ["path", "file", "filename", "image", "source", "href", "location"];
/// Names the schema reserves (never metadata fields).
const RESERVED: [&str; 5] = ["id", fields::SOURCE, fields::SCENE, fields::WINDOW, fields::THUMBNAIL];

/// What the metadata says about one image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageMeta {
    /// Scalar fields by (sanitised) name.
    pub values: BTreeMap<String, Json>,
    /// WGS84 bbox.
    pub footprint: Option<[f64; 4]>,
    /// `platform` (drives the default bands).
    pub platform: Option<String>,
    /// Ground sample distance, metres.
    pub gsd: Option<f64>,
    /// Band names (`common_name`, else `name`), in file order.
    pub band_names: Vec<String>,
}

/// All metadata of an archive.
#[derive(Debug, Clone, Default)]
pub struct MetaSet {
    /// Per image, by path relative to the root.
    pub by_image: HashMap<String, ImageMeta>,
    /// Fields and their types (overrides applied), sorted by name.
    pub fields: Vec<(String, FieldType)>,
    /// Notes for the summary (ignored properties, type conflicts).
    pub notes: Vec<String>,
    /// Metadata files or hrefs that could not be used.
    pub problems: Vec<(String, Problem)>,
    /// Metadata files that describe no image of the archive.
    pub unused: u64,
}

/// Makes `name` a valid schema field name.
#[must_use]
pub fn sanitize_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.') { c } else { '_' })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        s.insert(0, '_');
    }
    s.truncate(64);
    let own = IMPORT_FIELDS.iter().any(|(n, _)| *n == s && *n != "gsd") || RESERVED.contains(&s.as_str());
    if own {
        s = format!("meta:{s}");
        s.truncate(64);
    }
    s
}

/// Converts a JSON scalar to a value of `ty`; `None` when it does not fit.
#[must_use]
pub fn to_value(v: &Json, ty: FieldType) -> Option<Value> {
    match ty {
        FieldType::Keyword | FieldType::Text => {
            let s = match v {
                Json::String(s) => s.clone(),
                Json::Number(n) => n.to_string(),
                Json::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some(if ty == FieldType::Keyword { Value::Keyword(s) } else { Value::Text(s) })
        }
        FieldType::Integer => match v {
            Json::Number(n) => {
                n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64))
            }
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .map(Value::Integer),
        FieldType::Float => match v {
            Json::Number(n) => n.as_f64(),
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|f: &f64| f.is_finite())
        .map(Value::Float),
        FieldType::Timestamp => v.as_str().and_then(parse_timestamp).map(Value::Timestamp),
        FieldType::Bool => match v {
            Json::Bool(b) => Some(*b),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
        .map(Value::Bool),
        FieldType::GeoBbox => bbox_of(v).map(Value::GeoBbox),
        FieldType::Window | FieldType::Blob => None,
    }
}

#[expect(clippy::many_single_char_names, reason = "bbox corners")]
fn bbox_of(v: &Json) -> Option<[f64; 4]> {
    let a = v.as_array()?;
    let n: Vec<f64> = a.iter().filter_map(Json::as_f64).collect();
    // A 3-D bbox is [minx, miny, minz, maxx, maxy, maxz].
    let b = match (a.len(), n.as_slice()) {
        (4, &[a, b, c, d]) => [a, b, c, d],
        (6, &[a, b, _, d, e, _]) => [a, b, d, e],
        _ => return None,
    };
    valid_bbox(b).then_some(b)
}

fn valid_bbox(b: [f64; 4]) -> bool {
    b.iter().all(|x| x.is_finite())
        && b[0] <= b[2]
        && b[1] <= b[3]
        && (-180.0..=180.0).contains(&b[0])
        && (-180.0..=180.0).contains(&b[2])
        && (-90.0..=90.0).contains(&b[1])
        && (-90.0..=90.0).contains(&b[3])
}

fn geometry_bbox(g: &Json) -> Option<[f64; 4]> {
    fn walk(v: &Json, b: &mut [f64; 4]) {
        if let Some(a) = v.as_array() {
            if let (Some(x), Some(y)) = (a.first().and_then(Json::as_f64), a.get(1).and_then(Json::as_f64)) {
                *b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
            } else {
                for c in a {
                    walk(c, b);
                }
            }
        }
    }
    let mut b = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    walk(g.get("coordinates")?, &mut b);
    valid_bbox(b).then_some(b)
}

fn band_names(v: Option<&Json>) -> Vec<String> {
    v.and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .map(|b| {
                    b.get("common_name")
                        .or_else(|| b.get("name"))
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Lexically normalises `p` (no file-system access): `.` dropped, `..` pops; `None` when `..` climbs
/// above the start.
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    Some(out)
}

/// Resolves an href written in a document in folder `doc_dir` (absolute) to a path relative to `root`
/// (canonical), refusing anything that leaves the root.
pub fn resolve_href(root: &Path, doc_dir: &Path, href: &str) -> Result<String, Problem> {
    let local = if let Some(rest) = href.strip_prefix("file://") {
        rest
    } else if href.contains("://") {
        return Err(Problem::new(
            Reason::RemoteHref,
            format!("{href:?} is not a local file; only local assets are imported"),
        ));
    } else {
        href
    };
    let joined = if Path::new(local).is_absolute() { PathBuf::from(local) } else { doc_dir.join(local) };
    let outside = || Problem::new(Reason::OutsideArchive, format!("{href:?} leaves the archive root"));
    let norm = normalize(&joined).ok_or_else(outside)?;
    let rel = norm.strip_prefix(root).map_err(|_| outside())?.to_path_buf();
    // The deepest existing ancestor, links resolved: a link out of the root followed by a name
    // that does not exist (yet) leaves the root too.
    if let Some(canon) = norm.ancestors().find_map(|a| fs::canonicalize(a).ok())
        && !canon.starts_with(root)
    {
        return Err(outside());
    }
    rel.to_str()
        .map(str::to_owned)
        .ok_or_else(|| Problem::new(Reason::NonUtf8Name, format!("{href:?} is not valid UTF-8")))
}

#[derive(Default)]
struct Observed {
    kinds: BTreeSet<&'static str>,
    all_time: bool,
    max_len: usize,
    seen: bool,
}

struct Collector<'a> {
    root: &'a Path,
    images: &'a HashSet<String>,
    by_stem: HashMap<String, Vec<String>>,
    set: MetaSet,
    nested: BTreeSet<String>,
}

impl Collector<'_> {
    fn add_scalar(&mut self, meta: &mut ImageMeta, key: &str, v: &Json) {
        match v {
            Json::Null => {}
            Json::Object(_) => {
                self.nested.insert(key.to_owned());
            }
            Json::Array(a) => {
                if !a.is_empty() && a.iter().all(|x| x.is_string() || x.is_number() || x.is_boolean()) {
                    let joined: Vec<String> =
                        a.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned)).collect();
                    meta.values.insert(sanitize_name(key), Json::String(joined.join(",")));
                } else if !a.is_empty() {
                    self.nested.insert(key.to_owned());
                }
            }
            _ => {
                if key == "gsd"
                    && let Some(g) = v.as_f64().filter(|g| *g > 0.0 && g.is_finite())
                {
                    meta.gsd = Some(g);
                    return;
                }
                if key == "platform"
                    && let Some(p) = v.as_str()
                {
                    meta.platform = Some(p.to_ascii_lowercase());
                }
                meta.values.insert(sanitize_name(key), v.clone());
            }
        }
    }

    fn properties(&mut self, meta: &mut ImageMeta, obj: &serde_json::Map<String, Json>) {
        for (k, v) in obj {
            if k == "eo:bands" {
                meta.band_names = band_names(Some(v));
                continue;
            }
            self.add_scalar(meta, k, v);
        }
    }

    fn merge(&mut self, image: &str, m: &ImageMeta) {
        let e = self.set.by_image.entry(image.to_owned()).or_default();
        e.values.extend(m.values.iter().map(|(k, v)| (k.clone(), v.clone())));
        if m.footprint.is_some() {
            e.footprint = m.footprint;
        }
        if m.platform.is_some() {
            e.platform.clone_from(&m.platform);
        }
        if m.gsd.is_some() {
            e.gsd = m.gsd;
        }
        if !m.band_names.is_empty() {
            e.band_names.clone_from(&m.band_names);
        }
    }

    fn sidecar_targets(&self, rel: &str) -> Vec<String> {
        let stem = rel.strip_suffix(".json").or_else(|| rel.strip_suffix(".JSON")).unwrap_or(rel);
        let mut out = self.by_stem.get(stem).cloned().unwrap_or_default();
        if self.images.contains(stem) && !out.iter().any(|s| s == stem) {
            out.push(stem.to_owned());
        }
        out
    }

    /// Returns the images described and whether the document was a sidecar match (vs. assets).
    #[expect(
        clippy::too_many_lines,
        reason = "one JSON sidecar: STAC item, plain object and their field conversions in reading order"
    )]
    fn json(&mut self, rel: &str, path: &Path, size: u64) {
        if size > MAX_JSON_BYTES {
            self.set.problems.push((
                rel.to_owned(),
                Problem::new(Reason::BadMetadata, format!("{size} bytes, over the {MAX_JSON_BYTES}-byte limit")),
            ));
            return;
        }
        let targets = self.sidecar_targets(rel);
        let parsed = fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Json>(&b).map_err(|e| e.to_string()));
        let doc = match parsed {
            Ok(Json::Object(o)) => o,
            Ok(_) => {
                if targets.is_empty() {
                    self.set.unused += 1;
                } else {
                    self.set.problems.push((rel.to_owned(), Problem::new(Reason::BadMetadata, "not a JSON object")));
                }
                return;
            }
            Err(e) => {
                self.set
                    .problems
                    .push((rel.to_owned(), Problem::new(Reason::BadMetadata, format!("cannot read JSON: {e}"))));
                return;
            }
        };
        let is_stac = doc.get("type").and_then(Json::as_str) == Some("Feature")
            && doc.get("properties").is_some_and(Json::is_object);
        let mut meta = ImageMeta::default();
        if is_stac {
            if let Some(Json::Object(p)) = doc.get("properties") {
                self.properties(&mut meta, p);
            }
            if let Some(id) = doc.get("id").and_then(Json::as_str) {
                meta.values.insert("item_id".into(), Json::String(id.to_owned()));
            }
            if let Some(c) = doc.get("collection").and_then(Json::as_str) {
                meta.values.insert("stac_collection".into(), Json::String(c.to_owned()));
            }
            meta.footprint = doc.get("bbox").and_then(bbox_of).or_else(|| doc.get("geometry").and_then(geometry_bbox));
        } else {
            for (k, v) in &doc {
                match k.as_str() {
                    "bbox" | "footprint" if bbox_of(v).is_some() => meta.footprint = bbox_of(v),
                    "properties" if v.is_object() => {
                        if let Json::Object(p) = v {
                            self.properties(&mut meta, p);
                        }
                    }
                    "eo:bands" => meta.band_names = band_names(Some(v)),
                    _ => self.add_scalar(&mut meta, k, v),
                }
            }
        }
        let doc_dir = self.root.join(Path::new(rel).parent().unwrap_or(Path::new("")));
        let mut described = Vec::new();
        if is_stac && let Some(Json::Object(assets)) = doc.get("assets") {
            for (name, a) in assets {
                let Some(href) = a.get("href").and_then(Json::as_str) else { continue };
                let roles: Vec<&str> = a
                    .get("roles")
                    .and_then(Json::as_array)
                    .map(|r| r.iter().filter_map(Json::as_str).collect())
                    .unwrap_or_default();
                if roles.iter().any(|r| matches!(*r, "thumbnail" | "overview" | "metadata")) {
                    continue;
                }
                let media = a.get("type").and_then(Json::as_str).unwrap_or_default();
                let ext_image = super::walk::IMAGE_EXTENSIONS
                    .iter()
                    .any(|e| href.to_ascii_lowercase().rsplit('.').next() == Some(*e));
                if !(media.starts_with("image/") || roles.contains(&"data") || ext_image) {
                    continue;
                }
                match resolve_href(self.root, &doc_dir, href) {
                    Ok(target) if self.images.contains(&target) => {
                        let mut m = meta.clone();
                        let names = band_names(a.get("eo:bands"));
                        if !names.is_empty() {
                            m.band_names = names;
                        }
                        described.push((target, m));
                    }
                    Ok(target) => self.set.problems.push((
                        format!("{rel}#{name}"),
                        Problem::new(
                            Reason::BadMetadata,
                            format!("asset {href:?} ({target}) is not imagery found in the archive"),
                        ),
                    )),
                    Err(p) => self.set.problems.push((format!("{rel}#{name}"), p)),
                }
            }
        }
        if described.is_empty() {
            described = targets.into_iter().map(|t| (t, meta.clone())).collect();
        }
        if described.is_empty() {
            self.set.unused += 1;
        }
        for (t, m) in described {
            self.merge(&t, &m);
        }
    }

    fn csv(&mut self, rel: &str, path: &Path) {
        let mut rdr = match csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_path(path) {
            Ok(r) => r,
            Err(e) => {
                self.set
                    .problems
                    .push((rel.to_owned(), Problem::new(Reason::BadMetadata, format!("cannot read CSV: {e}"))));
                return;
            }
        };
        let headers: Vec<String> = match rdr.headers() {
            Ok(h) => h.iter().map(str::to_owned).collect(),
            Err(e) => {
                self.set
                    .problems
                    .push((rel.to_owned(), Problem::new(Reason::BadMetadata, format!("cannot read CSV header: {e}"))));
                return;
            }
        };
        let lower: Vec<String> = headers.iter().map(|h| h.to_ascii_lowercase()).collect();
        let Some(path_col) = PATH_COLUMNS.iter().find_map(|p| lower.iter().position(|h| h == p)) else {
            self.set.problems.push((
                rel.to_owned(),
                Problem::new(
                    Reason::BadMetadata,
                    format!("no column naming the image (one of {})", PATH_COLUMNS.join(", ")),
                ),
            ));
            return;
        };
        let col = |names: [&str; 2]| names.iter().find_map(|n| lower.iter().position(|h| h == n));
        let corners =
            [col(["min_lon", "west"]), col(["min_lat", "south"]), col(["max_lon", "east"]), col(["max_lat", "north"])];
        let bbox_col = lower.iter().position(|h| h == "bbox");
        let doc_dir = self.root.join(Path::new(rel).parent().unwrap_or(Path::new("")));
        let (mut bad_rows, mut unmatched, mut matched) = (0usize, 0usize, 0usize);
        for (i, row) in rdr.records().enumerate() {
            let Ok(row) = row else {
                bad_rows += 1;
                continue;
            };
            let Some(href) = row.get(path_col).filter(|s| !s.is_empty()) else {
                bad_rows += 1;
                continue;
            };
            let target = match resolve_href(self.root, &doc_dir, href) {
                Ok(t) if self.images.contains(&t) => t,
                Ok(_) => match resolve_href(self.root, self.root, href) {
                    Ok(t) if self.images.contains(&t) => t,
                    _ => {
                        unmatched += 1;
                        continue;
                    }
                },
                Err(p) => {
                    self.set.problems.push((format!("{rel}:{}", i + 2), p));
                    continue;
                }
            };
            matched += 1;
            let mut meta = ImageMeta::default();
            let num = |c: Option<usize>| c.and_then(|c| row.get(c)).and_then(|s| s.parse::<f64>().ok());
            if let [Some(a), Some(b), Some(c), Some(d)] = corners.map(num) {
                meta.footprint = valid_bbox([a, b, c, d]).then_some([a, b, c, d]);
            }
            if let Some(s) = bbox_col.and_then(|c| row.get(c)) {
                let n: Vec<f64> = s.trim_matches(['[', ']']).split(',').filter_map(|x| x.trim().parse().ok()).collect();
                if let &[a, b, c, d] = n.as_slice() {
                    meta.footprint = valid_bbox([a, b, c, d]).then_some([a, b, c, d]);
                }
            }
            for (j, (h, l)) in headers.iter().zip(&lower).enumerate() {
                let skip = j == path_col || Some(j) == bbox_col || corners.contains(&Some(j)) || l.is_empty();
                let Some(s) = row.get(j).filter(|s| !s.is_empty() && !skip) else { continue };
                self.add_scalar(&mut meta, h, &sniff(s));
            }
            self.merge(&target, &meta);
        }
        if matched == 0 {
            self.set.unused += 1;
        }
        if bad_rows + unmatched > 0 {
            self.set
                .notes
                .push(format!("{rel}: {bad_rows} unreadable rows, {unmatched} rows naming no imagery of the archive"));
        }
    }
}

/// A CSV cell as the JSON value it looks like.
fn sniff(s: &str) -> Json {
    if let Ok(i) = s.parse::<i64>() {
        return Json::from(i);
    }
    if let Ok(f) = s.parse::<f64>()
        && f.is_finite()
    {
        return Json::from(f);
    }
    match s {
        "true" | "TRUE" | "True" => Json::Bool(true),
        "false" | "FALSE" | "False" => Json::Bool(false),
        _ => Json::String(s.to_owned()),
    }
}

/// Reads every metadata file of the inventory: per-image metadata and inferred field types.
#[must_use]
pub fn collect(root: &Path, inv: &Inventory, overrides: &[(String, FieldType)]) -> MetaSet {
    let images: HashSet<String> = inv.images.iter().map(|e| e.rel.clone()).collect();
    let mut by_stem: HashMap<String, Vec<String>> = HashMap::new();
    for e in &inv.images {
        if let Some(dot) = e.rel.rfind('.').filter(|d| !e.rel[*d..].contains('/')) {
            by_stem.entry(e.rel[..dot].to_owned()).or_default().push(e.rel.clone());
        }
    }
    let mut c = Collector { root, images: &images, by_stem, set: MetaSet::default(), nested: BTreeSet::new() };
    // CSV first, then STAC items and sidecars (more specific sources override).
    for e in inv.metadata.iter().filter(|e| e.kind == EntryKind::Csv) {
        c.csv(&e.rel, &e.path);
    }
    for e in inv.metadata.iter().filter(|e| e.kind == EntryKind::Json) {
        c.json(&e.rel, &e.path, e.size);
    }
    for n in std::mem::take(&mut c.nested) {
        c.set.notes.push(format!("property {n:?} ignored: nested objects and arrays of objects are not fields"));
    }
    infer(&mut c.set, overrides);
    c.set
}

fn infer(set: &mut MetaSet, overrides: &[(String, FieldType)]) {
    let mut kinds: BTreeMap<String, Observed> = BTreeMap::new();
    for m in set.by_image.values() {
        for (k, v) in &m.values {
            let e = kinds.entry(k.clone()).or_insert_with(|| Observed { all_time: true, ..Observed::default() });
            e.seen = true;
            match v {
                Json::Bool(_) => {
                    e.kinds.insert("bool");
                }
                Json::Number(n) if n.is_i64() || n.is_u64() => {
                    e.kinds.insert("int");
                }
                Json::Number(_) => {
                    e.kinds.insert("float");
                }
                Json::String(s) => {
                    e.kinds.insert("string");
                    e.max_len = e.max_len.max(s.len());
                    if parse_timestamp(s).is_none() {
                        e.all_time = false;
                    }
                }
                _ => {}
            }
        }
    }
    let mut fields = Vec::new();
    for (name, k) in kinds {
        let forced = overrides.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
        let list: Vec<&str> = k.kinds.iter().copied().collect();
        let ty = forced.unwrap_or_else(|| match list.as_slice() {
            ["bool"] => FieldType::Bool,
            ["int"] if !FLOAT_PROPERTIES.contains(&name.as_str()) => FieldType::Integer,
            ["int" | "float"] | ["float", "int"] => FieldType::Float,
            ["string"] if k.all_time => FieldType::Timestamp,
            ["string"] if k.max_len > MAX_KEYWORD_LEN => FieldType::Text,
            ["string"] => FieldType::Keyword,
            _ => {
                set.notes.push(format!("field {name:?} has mixed kinds ({}); stored as keyword", list.join(", ")));
                FieldType::Keyword
            }
        });
        fields.push((name, ty));
    }
    for (name, ty) in overrides {
        if !fields.iter().any(|(n, _)| n == name) && !IMPORT_FIELDS.iter().any(|(n, _)| n == name) {
            fields.push((name.clone(), *ty));
        }
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    set.fields = fields;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(d.path()).unwrap();
        fs::create_dir_all(root.join("a")).unwrap();
        assert_eq!(resolve_href(&root, &root.join("a"), "./x.tif").unwrap(), "a/x.tif");
        assert_eq!(resolve_href(&root, &root.join("a"), "../b/x.tif").unwrap(), "b/x.tif");
        assert_eq!(resolve_href(&root, &root.join("a"), "../../x.tif").unwrap_err().reason, Reason::OutsideArchive);
        assert_eq!(resolve_href(&root, &root, "/etc/passwd").unwrap_err().reason, Reason::OutsideArchive);
        assert_eq!(resolve_href(&root, &root, "https://h/x.tif").unwrap_err().reason, Reason::RemoteHref);
        std::os::unix::fs::symlink("/etc", root.join("esc")).unwrap();
        assert_eq!(resolve_href(&root, &root, "esc/hostname").unwrap_err().reason, Reason::OutsideArchive);
        assert_eq!(resolve_href(&root, &root, "esc/no-such-file").unwrap_err().reason, Reason::OutsideArchive);
    }

    #[test]
    fn names_and_values() {
        assert_eq!(sanitize_name("eo:cloud_cover"), "eo:cloud_cover");
        assert_eq!(sanitize_name("1 band"), "_1_band");
        assert_eq!(sanitize_name("footprint"), "meta:footprint");
        assert_eq!(sanitize_name("gsd"), "gsd");
        assert_eq!(to_value(&Json::from(3), FieldType::Float), Some(Value::Float(3.0)));
        assert_eq!(to_value(&Json::from("x"), FieldType::Integer), None);
        assert_eq!(to_value(&Json::from(2.0), FieldType::Integer), Some(Value::Integer(2)));
        assert!(matches!(to_value(&Json::from("2020-01-01"), FieldType::Timestamp), Some(Value::Timestamp(_))));
        assert_eq!(sniff("12"), Json::from(12));
        assert_eq!(sniff("1.5"), Json::from(1.5));
        assert_eq!(sniff("abc"), Json::from("abc"));
    }
}
