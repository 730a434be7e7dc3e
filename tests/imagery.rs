//! Imagery as analysts have it (issue 20): no-data collars (the `GDAL_NODATA` tag), alpha bands
//! (`ExtraSamples`), internal masks (a mask IFD), PNG alpha, and overview levels of a COG-like file.
//!
//! Every scene is written here by the `tiff` crate's encoder ([`skysift::ingest::synth_cog`]): a
//! rotated valid square (a diamond) inside a no-data collar, as a projected Landsat or Sentinel-2
//! scene looks. What is checked: tiles under `--min-valid` are never encoded and are counted, each
//! record's `valid_fraction` is its window's share of valid pixels, the scene's `scene_footprint`
//! leaves the empty collar out, the 2-98% stretch is computed over valid pixels only (the same
//! stretched pixels with and without a collar), and a `--gsd` import reads the overview level that
//! matches the target.

use std::path::Path;

use skysift::ingest::decode::Limits;
use skysift::ingest::overview::{self, MaskPlane};
use skysift::ingest::synth::SynthGeo;
use skysift::ingest::synth_cog::{CogSpec, write_cog};
use skysift::ingest::tiff::TiffRaster;
use skysift::ingest::{ImportOptions, ReportWriter, Summary, Tiling, import, record_id};
use skysift::schema::Value;
use skysift::{Db, StoredRecord};

use crate::ingest::FAKE;

const SIDE: u32 = 512;
const UTM: SynthGeo = SynthGeo { epsg: 32633, origin: (500_000.0, 4_500_000.0), pixel: (10.0, 10.0) };

/// The valid area: a square rotated by 45 degrees, touching the middle of each side.
fn diamond(x: u32, y: u32) -> bool {
    let c = f64::from(SIDE) / 2.0;
    (f64::from(x) + 0.5 - c).abs() + (f64::from(y) + 0.5 - c).abs() <= c
}

/// Data values, never 0 (the no-data value).
fn values(x: u32, y: u32, b: usize) -> f64 {
    1000.0 + f64::from((x * 7 + y * 13) % 251) * 9.0 + b as f64 * 300.0
}

fn opts(tile: u32, gsd: Option<f64>) -> ImportOptions {
    ImportOptions {
        collection: "scenes".into(),
        tiling: Tiling { tile, overlap: 0, gsd, chip_max: 64 },
        workers: 1,
        ..ImportOptions::default()
    }
}

fn run(db: &Db, archive: &Path, o: &ImportOptions) -> (Summary, Vec<serde_json::Value>) {
    let path = archive.with_extension("report.jsonl");
    let mut w = ReportWriter::new(Box::new(std::fs::File::create(&path).unwrap()));
    let s = import(db, &FAKE, archive, o, &mut w).unwrap();
    drop(w);
    let text = std::fs::read_to_string(&path).unwrap();
    (s, text.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
}

fn records(db: &Db, rel: &str) -> Vec<StoredRecord> {
    let col = db.snapshot().collection("scenes").unwrap();
    (0..).map_while(|i| col.get(record_id(rel, i)).unwrap()).collect()
}

fn field<'a>(r: &'a StoredRecord, name: &str) -> Option<&'a Value> {
    r.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn window(r: &StoredRecord) -> [u32; 4] {
    match field(r, "window") {
        Some(Value::Window(w)) => *w,
        other => panic!("no window: {other:?}"),
    }
}

fn float(r: &StoredRecord, name: &str) -> f64 {
    match field(r, name) {
        Some(Value::Float(f)) => *f,
        other => panic!("no {name}: {other:?}"),
    }
}

fn bbox(r: &StoredRecord, name: &str) -> [f64; 4] {
    match field(r, name) {
        Some(Value::GeoBbox(b)) => *b,
        other => panic!("no {name}: {other:?}"),
    }
}

/// The share of `valid` pixels in a window, counted directly.
fn share(win: [u32; 4], valid: impl Fn(u32, u32) -> bool) -> f64 {
    let [x, y, w, h] = win;
    let n = (y..y + h).flat_map(|yy| (x..x + w).map(move |xx| (xx, yy))).filter(|&(a, b)| valid(a, b)).count();
    n as f64 / f64::from(w * h)
}

fn line_for<'a>(lines: &'a [serde_json::Value], path: &str) -> &'a serde_json::Value {
    lines.iter().find(|l| l["path"] == path).unwrap_or_else(|| panic!("no report line for {path}: {lines:#?}"))
}

/// The 16 windows of 128 pixels of a 512-pixel scene, row-major.
fn windows() -> Vec<[u32; 4]> {
    (0..4).flat_map(|r| (0..4).map(move |c| [c * 128, r * 128, 128, 128])).collect()
}

/// Checks that the records of `rel` are exactly the windows with at least half their pixels valid.
fn check_collar(db: &Db, lines: &[serde_json::Value], rel: &str) {
    let want: Vec<([u32; 4], f64)> =
        windows().into_iter().map(|w| (w, share(w, diamond))).filter(|(_, f)| *f >= 0.5).collect();
    assert!(want.len() > 4 && want.len() < 16, "the test scene keeps some tiles and drops others: {want:?}");
    let recs = records(db, rel);
    assert_eq!(recs.len(), want.len(), "{rel}: records {:?}", recs.iter().map(window).collect::<Vec<_>>());
    for (r, (w, f)) in recs.iter().zip(&want) {
        assert_eq!(window(r), *w, "{rel}");
        let got = float(r, "valid_fraction");
        assert!((got - f).abs() < 1e-9, "{rel} window {w:?}: valid_fraction {got}, counted {f}");
        assert!(got >= 0.5);
        assert_eq!(field(r, "tile_count"), Some(&Value::Integer(want.len() as i64)));
    }
    let l = line_for(lines, rel);
    assert_eq!(l["status"], "imported", "{l}");
    assert_eq!(l["nodata_tiles"], 16 - want.len() as u64, "{l}");
    assert_eq!(l["tiles"], want.len() as u64, "{l}");
}

fn write_scene(path: &Path, spec: &CogSpec) {
    write_cog(path, spec, values, diamond).unwrap();
}

#[test]
fn empty_tiles_are_never_encoded_whatever_says_no_data() {
    let d = tempfile::tempdir().unwrap();
    let arch = d.path().join("archive");
    std::fs::create_dir_all(&arch).unwrap();
    let base = CogSpec { tile: Some(64), geo: Some(UTM), ..CogSpec::new(SIDE, SIDE, 3) };
    write_scene(&arch.join("nodata.tif"), &CogSpec { nodata: Some(0.0), ..base });
    write_scene(&arch.join("alpha.tif"), &CogSpec { alpha: true, ..base });
    write_scene(&arch.join("mask.tif"), &CogSpec { mask: true, ..base });
    write_scene(&arch.join("striped.tif"), &CogSpec { tile: None, nodata: Some(0.0), ..base });
    // PNG with an alpha channel: transparent outside the diamond.
    let png = image::RgbaImage::from_fn(SIDE, SIDE, |x, y| {
        let v = (values(x, y, 0) / 16.0) as u8;
        image::Rgba([v, v / 2, 255 - v, if diamond(x, y) { 255 } else { 0 }])
    });
    png.save(arch.join("alpha.png")).unwrap();
    let db = Db::open(d.path().join("db")).unwrap();
    let (s, lines) = run(&db, &arch, &opts(128, None));
    assert!(s.clean(), "{s:#?}\n{lines:#?}");
    for rel in ["nodata.tif", "alpha.tif", "mask.tif", "striped.tif", "alpha.png"] {
        check_collar(&db, &lines, rel);
    }
    let kept = records(&db, "nodata.tif").len() as u64;
    assert_eq!(s.tiles_nodata, 5 * (16 - kept));
    assert_eq!(s.tiles_written, 5 * kept);
    assert!(line_for(&lines, "mask.tif")["notes"].to_string().contains("internal mask"));

    // No record is a tile of the collar alone, and the collar's corners match no footprint.
    let recs = records(&db, "nodata.tif");
    let corner = |r: &StoredRecord| {
        let [x, y, w, h] = window(r);
        [(x, y), (x + w - 1, y), (x, y + h - 1), (x + w - 1, y + h - 1)].iter().all(|&(a, b)| !diamond(a, b))
    };
    assert!(!recs.iter().any(corner), "no record is a tile of the collar alone");
    let boxes: Vec<[f64; 4]> = recs.iter().map(|r| bbox(r, "footprint")).collect();
    let west = boxes.iter().map(|b| b[0]).fold(f64::INFINITY, f64::min);
    let north = boxes.iter().map(|b| b[3]).fold(f64::NEG_INFINITY, f64::max);
    // The top-left corner of the scene: 20 x 20 pixels (200 m) of collar.
    let (lon, lat) = (15.0, 40.650_856_516);
    assert!((west - lon).abs() < 0.01 && (north - lat).abs() < 0.01, "{west} {north}");
    let col = db.snapshot().collection("scenes").unwrap();
    let collar = format!(
        "intersects(footprint, bbox({}, {}, {}, {}))",
        lon + 0.000_1,
        lat - 0.001_5,
        lon + 0.001_5,
        lat - 0.000_1
    );
    assert_eq!(col.count_where(collar.as_str()).unwrap(), 0, "{collar}");

    // The scene's footprint follows its valid pixels: a disk in the top-left quarter.
    let disk = |x: u32, y: u32| (f64::from(x) + 0.5 - 128.0).hypot(f64::from(y) + 0.5 - 128.0) <= 120.0;
    let d2 = tempfile::tempdir().unwrap();
    let spec = CogSpec { nodata: Some(0.0), ..base };
    write_cog(&d2.path().join("disk.tif"), &spec, values, disk).unwrap();
    let db2 = Db::open(d.path().join("db-disk")).unwrap();
    let (s, _) = run(&db2, d2.path(), &opts(128, None));
    assert!(s.clean());
    let recs = records(&db2, "disk.tif");
    assert_eq!(recs.len(), 4, "{:?}", recs.iter().map(window).collect::<Vec<_>>());
    let scene = bbox(&recs[0], "scene_footprint");
    // The disk spans pixels 8..=247 of the 512: 2.4 km of the 5.12 km scene, from 80 m in.
    let (w, e) = (lon + 80.0 / 84_460.0, lon + 2480.0 / 84_460.0);
    assert!((scene[0] - w).abs() < 3e-4 && (scene[2] - e).abs() < 3e-4, "{scene:?} vs {w}..{e}");
    assert!(recs.iter().all(|r| bbox(r, "scene_footprint") == scene));
    let col = db2.snapshot().collection("scenes").unwrap();
    let east = format!("intersects(scene_footprint, bbox({}, 40.6, 15.1, 40.7))", lon + 0.04);
    assert_eq!(col.count_where(east.as_str()).unwrap(), 0, "{east}");

    // A second run changes nothing: the ledger counts the tiles kept.
    let (s, _) = run(&db, &arch, &opts(128, None));
    assert_eq!((s.tiles_written, s.count(skysift::ingest::Status::Unchanged)), (0, 5), "{s:#?}");

    // --min-valid 0.9 keeps fewer tiles; 0 keeps every tile with any valid pixel.
    for (min_valid, rel) in [(0.9, "strict"), (0.0, "loose")] {
        let db = Db::open(d.path().join(rel)).unwrap();
        let (_, _) = run(&db, &arch, &ImportOptions { min_valid, ..opts(128, None) });
        let want =
            windows().into_iter().filter(|w| share(*w, diamond) >= min_valid && share(*w, diamond) > 0.0).count();
        assert_eq!(records(&db, "nodata.tif").len(), want, "--min-valid {min_valid}");
        assert!(records(&db, "nodata.tif").iter().all(|r| float(r, "valid_fraction") >= min_valid));
    }
}

#[test]
fn the_stretch_ignores_no_data() {
    // The same 200x200 pixels alone, and inside a 300x300 collar of no-data (three ways).
    let d = tempfile::tempdir().unwrap();
    let inner = |x: u32, y: u32| (50..250).contains(&x) && (50..250).contains(&y);
    let alone = d.path().join("alone.tif");
    let spec = CogSpec { tile: None, ..CogSpec::new(200, 200, 3) };
    write_cog(&alone, &spec, values, |_, _| true).unwrap();
    let limits = Limits::default();
    let open = |p: &Path| {
        let mut t = TiffRaster::open(p, std::fs::metadata(p).unwrap().len(), &limits).unwrap();
        let ifds = overview::scan(p);
        if let Some(m) = overview::mask_for(&ifds, t.width, t.height) {
            t.attach_mask(MaskPlane::open(p, std::fs::metadata(p).unwrap().len(), &m, &limits).unwrap()).unwrap();
        }
        t
    };
    let mut a = open(&alone);
    let sa = a.prepare([0, 1, 2]).unwrap();
    assert!(!sa.is_identity());
    let ia = a.read_rgb([0, 0, 200, 200]).unwrap();
    for (name, extra) in [
        ("nodata", CogSpec { nodata: Some(0.0), ..CogSpec::new(300, 300, 3) }),
        ("alpha", CogSpec { alpha: true, ..CogSpec::new(300, 300, 3) }),
        ("mask", CogSpec { mask: true, ..CogSpec::new(300, 300, 3) }),
    ] {
        let p = d.path().join(format!("{name}.tif"));
        let spec = CogSpec { tile: None, ..extra };
        // Outside the inner square the samples are 0: no-data, or masked out (then zeros that would
        // move the percentiles if they were counted).
        write_cog(&p, &spec, |x, y, b| values(x.saturating_sub(50), y.saturating_sub(50), b), inner).unwrap();
        let mut b = open(&p);
        let sb = b.prepare([0, 1, 2]).unwrap();
        assert_eq!((sa.lo, sa.hi), (sb.lo, sb.hi), "{name}: the stretch of the valid pixels");
        let (ib, mask) = b.read_rgb_valid([50, 50, 200, 200]).unwrap();
        assert_eq!(ia, ib, "{name}: the stretched valid pixels");
        assert!(mask.unwrap().iter().all(|&m| !skysift::ingest::nodata::is_invalid(m)), "{name}");
        let (_, mask) = b.read_rgb_valid([0, 0, 300, 300]).unwrap();
        let frac = skysift::ingest::nodata::valid_fraction(&mask.unwrap());
        assert!((frac - 4.0 / 9.0).abs() < 1e-9, "{name}: {frac}");
    }
}

#[test]
fn a_gsd_import_reads_the_matching_overview_level() {
    let d = tempfile::tempdir().unwrap();
    let arch = d.path().join("archive");
    std::fs::create_dir_all(&arch).unwrap();
    // 1024 px at 10 m with overviews of 512 (20 m) and 256 (40 m) px, a no-data collar and masks.
    let spec = CogSpec {
        tile: Some(128),
        overviews: 2,
        nodata: Some(0.0),
        mask: true,
        geo: Some(UTM),
        ..CogSpec::new(1024, 1024, 3)
    };
    let big = |x: u32, y: u32| (f64::from(x) - 512.0).hypot(f64::from(y) - 512.0) <= 460.0;
    write_cog(&arch.join("cog.tif"), &spec, values, big).unwrap();
    let ifds = overview::scan(&arch.join("cog.tif"));
    assert_eq!(ifds.len(), 6, "{ifds:?}");
    assert_eq!(overview::levels(&ifds).iter().map(|l| l.width).collect::<Vec<_>>(), vec![1024, 512, 256]);
    for (gsd, level, tiles_across) in
        [(None, 0u64, 8u32), (Some(20.0), 1, 4), (Some(30.0), 1, 3), (Some(40.0), 2, 2), (Some(80.0), 2, 1)]
    {
        let db = Db::open(d.path().join(format!("db{}", gsd.unwrap_or(0.0)))).unwrap();
        let (s, lines) = run(&db, &arch, &opts(128, gsd));
        assert!(s.clean(), "{s:#?}");
        let l = line_for(&lines, "cog.tif");
        assert_eq!(l["level"], level, "--gsd {gsd:?}: {l}");
        if level > 0 {
            assert!(l["notes"].to_string().contains(&format!("overview level {level} of 2")), "{l}");
        }
        // Windows are in full-resolution pixels whatever level was read, and cover the scene.
        let recs = records(&db, "cog.tif");
        assert!(!recs.is_empty());
        let right = recs.iter().map(|r| window(r)[0] + window(r)[2]).max().unwrap();
        assert!(right <= 1024 && right >= 1024 - 1024 / tiles_across, "--gsd {gsd:?}: {right}");
        if let Some(g) = gsd {
            assert_eq!(field(&recs[0], "gsd"), Some(&Value::Float(g)));
        }
        assert!(recs.iter().all(|r| float(r, "valid_fraction") >= 0.5), "--gsd {gsd:?}");
        let planned = u64::from(tiles_across * tiles_across);
        assert_eq!(recs.len() as u64 + s.tiles_nodata, planned, "--gsd {gsd:?}");
    }
}
