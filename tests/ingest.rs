//! Importing archives (issue 6): generated `GeoTIFF`s (8/16-bit and float, 1, 4 and 13 bands, UTM north
//! and south, EPSG:4326, Lambert-93, a CRS without a conversion, striped and tiled, chunky and
//! planar), STAC items, CSV manifests and sidecars, a hostile set of bad inputs, resumption (after
//! Ctrl-C, after `kill -9`, after a change), bounded memory on a large multi-band scene, and a mosaic
//! whose heat map finds the queried class.
//!
//! Footprints are checked against values computed independently (Krüger's series for the inverse
//! transverse Mercator, Karney 2011, 6th order in n: `FOOTPRINT_TOLERANCE` is about a centimetre; for
//! Lambert-93, an IGN point from PROJ's test suite).
//! Most tests use [`FakeEncoder`] (fast, deterministic); the mosaic and the `kill -9` test use the demo
//! model (`scripts/setup_ort.sh` and `scripts/setup_models.sh` first). Every archive is built in a
//! temporary folder from generated data and the in-repo `samples/aid-mini` chips.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use image::RgbImage;
use skysift::encode::{Device, Encoder, Fingerprint, Provenance, TextQuery};
use skysift::ingest::bands::SampleKind;
use skysift::ingest::decode::Limits;
use skysift::ingest::geo::Crs;
use skysift::ingest::pipeline::TileEncoder;
use skysift::ingest::synth::{Chunks, SynthGeo, SynthTiff, write};
use skysift::ingest::tiff::TiffRaster;
use skysift::ingest::{ImportOptions, Reason, ReportWriter, Status, Summary, Tiling, import, record_id};
use skysift::schema::{FieldType, Value};
use skysift::{Db, NewRecord, StoredRecord};

/// Degrees; about 1 cm.
const FOOTPRINT_TOLERANCE: f64 = 1e-7;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chip(class: &str, name: &str) -> PathBuf {
    repo().join("samples/aid-mini").join(class).join(name)
}

/// A tiny deterministic encoder (also the imagery tests'): the 2x2 means of red and green as an
/// 8-dimensional vector, plus one (never zero).
pub struct FakeEncoder {
    /// The model fingerprint it reports (`fake-N`, `[N; 32]`).
    pub fingerprint: u8,
}

pub const FAKE: FakeEncoder = FakeEncoder { fingerprint: 7 };

impl TileEncoder for FakeEncoder {
    fn dim(&self) -> usize {
        8
    }
    fn input_len(&self) -> usize {
        8
    }
    fn batch_size(&self) -> usize {
        4
    }
    fn preprocess(&self, img: &RgbImage, out: &mut [f32]) -> skysift::Result<()> {
        let small = image::imageops::resize(img, 2, 2, image::imageops::FilterType::Triangle);
        for (i, p) in small.pixels().enumerate() {
            out[2 * i] = f32::from(p.0[0]) / 255.0;
            out[2 * i + 1] = f32::from(p.0[1]) / 255.0;
        }
        Ok(())
    }
    fn encode(&self, pixels: &[f32], rows: usize) -> skysift::Result<Vec<Vec<f32>>> {
        Ok(pixels.chunks(8).take(rows).map(|c| c.iter().map(|v| v + 1.0).collect()).collect())
    }
    fn provenance_params(&self) -> Vec<(String, String)> {
        Provenance {
            model_id: format!("fake-{}", self.fingerprint),
            fingerprint: Fingerprint([self.fingerprint; 32]),
            dim: 8,
            preprocessing: "2x2 mean".into(),
        }
        .to_params()
    }
    fn check_params(&self, params: &[(String, String)]) -> skysift::Result<()> {
        let mine = Provenance::from_params(&self.provenance_params())?;
        Ok(Provenance::from_params(params)?.check_compatible(&mine)?)
    }
}

fn demo() -> &'static Encoder {
    static ENC: OnceLock<Encoder> = OnceLock::new();
    ENC.get_or_init(|| {
        Encoder::builder(repo().join("models/demo")).device(Device::Cpu).batch_size(16).build().unwrap_or_else(|e| {
            panic!("these tests need the demo model: run scripts/setup_ort.sh and scripts/setup_models.sh. Cause: {e}")
        })
    })
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs an import and returns its summary and report lines.
fn run(db: &Db, enc: &dyn TileEncoder, archive: &Path, opts: &ImportOptions) -> (Summary, Vec<serde_json::Value>) {
    let buf = Buf::default();
    let mut w = ReportWriter::new(Box::new(buf.clone()));
    let s = import(db, enc, archive, opts, &mut w).unwrap();
    drop(w);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (s, text.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
}

fn opts(tile: u32, chip_max: u32) -> ImportOptions {
    ImportOptions {
        collection: "scenes".into(),
        tiling: Tiling { tile, overlap: 0, gsd: None, chip_max },
        workers: 2,
        ..ImportOptions::default()
    }
}

fn record(db: &Db, rel: &str, tile: u32) -> Option<StoredRecord> {
    db.snapshot().collection("scenes").unwrap().get(record_id(rel, tile)).unwrap()
}

fn field<'a>(r: &'a StoredRecord, name: &str) -> Option<&'a Value> {
    r.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn footprint(r: &StoredRecord) -> [f64; 4] {
    match field(r, "footprint") {
        Some(Value::GeoBbox(b)) => *b,
        other => panic!("no footprint: {other:?}"),
    }
}

fn assert_bbox(got: [f64; 4], want: [f64; 4], tol: f64) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "footprint {got:?}, expected {want:?} (tolerance {tol})");
    }
}

fn line_for<'a>(lines: &'a [serde_json::Value], path: &str) -> &'a serde_json::Value {
    lines.iter().find(|l| l["path"] == path).unwrap_or_else(|| panic!("no report line for {path}: {lines:#?}"))
}

fn pattern(x: u32, y: u32, b: usize) -> f64 {
    f64::from((x * 7 + y * 13) % 256) * 0.5 + (b as f64) * 40.0
}

#[test]
fn utm_inverse_matches_an_independent_reference() {
    // (zone, north, easting, northing) -> (lon, lat) from Krüger's series (see the module docs).
    let cases = [
        (33, true, 500_000.0, 4_500_000.0, 15.0, 40.650_856_516),
        (33, true, 501_280.0, 4_498_720.0, 15.015_137_483, 40.639_324_266),
        (33, true, 503_000.0, 4_498_000.0, 15.035_475_040, 40.632_833_467),
        (31, true, 448_252.0, 5_411_933.0, 2.294_502_751, 48.858_202_916),
        (33, false, 500_640.0, 4_998_000.0, 15.008_144_582, -45.171_480_233),
    ];
    for (zone, north, e, n, lon, lat) in cases {
        let (x, y) = Crs::from_epsg(if north { 32600 } else { 32700 } + zone).to_wgs84(e, n).unwrap();
        assert!(
            (x - lon).abs() < FOOTPRINT_TOLERANCE && (y - lat).abs() < FOOTPRINT_TOLERANCE,
            "{zone} {e} {n}: {x} {y}"
        );
    }
}

#[test]
fn tiff_windows_match_the_source_pixels() {
    let d = tempfile::tempdir().unwrap();
    let layouts = [
        ("striped", Chunks::Strips(5), false),
        ("tiled", Chunks::Tiles(32, 16), false),
        ("planar_tiled", Chunks::Tiles(16, 32), true),
        ("planar_striped", Chunks::Strips(7), true),
    ];
    for (name, chunks, planar) in layouts {
        let p = d.path().join(format!("{name}.tif"));
        let spec = SynthTiff { chunks, planar, ..SynthTiff::new(70, 45, 4, SampleKind::U8) };
        write(&p, &spec, |x, y, b| f64::from((x * 3 + y * 5 + b as u32 * 60) % 256)).unwrap();
        let len = std::fs::metadata(&p).unwrap().len();
        let mut r = TiffRaster::open(&p, len, &Limits::default()).unwrap();
        r.prepare([3, 1, 0]).unwrap();
        for win in [[0, 0, 70, 45], [13, 9, 20, 30], [50, 30, 20, 15], [0, 40, 70, 5]] {
            let img = r.read_rgb(win).unwrap();
            for (x, y, px) in img.enumerate_pixels() {
                let (sx, sy) = (win[0] + x, win[1] + y);
                let want = [3u32, 1, 0].map(|b| ((sx * 3 + sy * 5 + b * 60) % 256) as u8);
                assert_eq!(px.0, want, "{name} window {win:?} pixel ({sx},{sy})");
            }
        }
    }
}

/// The geo archive: 13-band Sentinel-2-like UTM 33N tiled scene, 4-band EPSG:4326 striped scene,
/// 4-band planar UTM 33S scene, an EPSG:2154 scene, an EPSG:32040 (NAD27) scene, a float DEM with
/// no-data.
fn geo_archive(dir: &Path) {
    let s2 = SynthTiff {
        chunks: Chunks::Tiles(64, 64),
        geo: Some(SynthGeo { epsg: 32633, origin: (500_000.0, 4_500_000.0), pixel: (10.0, 10.0) }),
        ..SynthTiff::new(300, 200, 13, SampleKind::U16)
    };
    write(&dir.join("s2/T33_utm.tif"), &s2, |x, y, b| 800.0 + pattern(x, y, b) * 8.0).unwrap();
    let wgs = SynthTiff {
        chunks: Chunks::Strips(7),
        geo: Some(SynthGeo { epsg: 4326, origin: (10.0, 50.0), pixel: (0.001, 0.001) }),
        ..SynthTiff::new(200, 100, 4, SampleKind::U8)
    };
    write(&dir.join("naip/wgs84.tif"), &wgs, pattern).unwrap();
    let south = SynthTiff {
        chunks: Chunks::Strips(16),
        planar: true,
        geo: Some(SynthGeo { epsg: 32733, origin: (500_000.0, 5_000_000.0), pixel: (10.0, 10.0) }),
        ..SynthTiff::new(64, 200, 4, SampleKind::U16)
    };
    write(&dir.join("south.tif"), &south, |x, y, b| 100.0 + pattern(x, y, b) * 20.0).unwrap();
    // From Lambert-93's false origin (3 E 46.5 N) to an IGN point in PROJ's test suite (see the test).
    let lambert = SynthTiff {
        geo: Some(SynthGeo {
            epsg: 2154,
            origin: (700_000.0, 6_600_000.0),
            pixel: ((1_007_068.686 - 700_000.0) / 100.0, (6_600_000.0 - 6_340_907.237) / 100.0),
        }),
        ..SynthTiff::new(100, 100, 3, SampleKind::U8)
    };
    write(&dir.join("lambert93.tif"), &lambert, pattern).unwrap();
    // NAD27 / Texas South Central: NAD27 needs NADCON grids, which the projection library lacks.
    let nad27 = SynthTiff {
        geo: Some(SynthGeo { epsg: 32040, origin: (2_963_000.0, 255_000.0), pixel: (10.0, 10.0) }),
        ..SynthTiff::new(40, 40, 3, SampleKind::U8)
    };
    write(&dir.join("nad27.tif"), &nad27, pattern).unwrap();
    let dem = SynthTiff {
        chunks: Chunks::Tiles(32, 32),
        nodata: Some(-9999.0),
        geo: Some(SynthGeo { epsg: 32633, origin: (510_000.0, 4_510_000.0), pixel: (30.0, 30.0) }),
        ..SynthTiff::new(80, 60, 1, SampleKind::F32)
    };
    write(&dir.join("dem.tif"), &dem, |x, y, _| if x < 10 { -9999.0 } else { 120.5 + f64::from(x + y) * 3.25 })
        .unwrap();
}

#[test]
#[expect(clippy::many_single_char_names, reason = "short names for the records under test")]
fn geotiffs_become_tiles_with_wgs84_footprints() {
    let d = tempfile::tempdir().unwrap();
    let arch = d.path().join("archive");
    std::fs::create_dir_all(arch.join("s2")).unwrap();
    std::fs::create_dir_all(arch.join("naip")).unwrap();
    geo_archive(&arch);
    let db = Db::open(d.path().join("db")).unwrap();
    let (s, lines) = run(&db, &FAKE, &arch, &opts(128, 256));
    assert!(s.clean(), "{s:#?}\n{lines:#?}");
    assert_eq!(s.count(Status::Imported), 6);
    assert_eq!(s.tiles_written, 6 + 5);
    assert_eq!(db.snapshot().collection("scenes").unwrap().count(), 11);

    // Sentinel-2-like: 300x200 at 10 m in 128-pixel tiles, the last column and row shifted inward.
    let t0 = record(&db, "s2/T33_utm.tif", 0).unwrap();
    assert_bbox(footprint(&t0), [15.0, 40.639_324_266, 15.015_140_089, 40.650_856_516], FOOTPRINT_TOLERANCE);
    assert_eq!(field(&t0, "bands"), Some(&Value::Text("4,3,2".into())));
    assert_eq!(field(&t0, "crs"), Some(&Value::Keyword("EPSG:32633".into())));
    assert_eq!(field(&t0, "format"), Some(&Value::Keyword("geotiff".into())));
    assert_eq!(field(&t0, "tile_count"), Some(&Value::Integer(6)));
    assert_eq!(field(&t0, "gsd"), Some(&Value::Float(10.0)));
    let t5 = record(&db, "s2/T33_utm.tif", 5).unwrap();
    assert_eq!(field(&t5, "window"), Some(&Value::Window([172, 72, 128, 128])));
    let f5 = footprint(&t5);
    assert!(f5[0] > 15.02 && f5[2] < 15.04 && f5[1] > 40.632 && f5[3] < 40.645, "{f5:?}");
    let s2 = line_for(&lines, "s2/T33_utm.tif");
    assert_eq!(s2["crs"], "EPSG:32633");
    let notes = s2["notes"].to_string();
    assert!(notes.contains("Sentinel-2") && notes.contains("stretched p2..p98"), "{notes}");

    // EPSG:4326, one chip: the footprint is the grid itself.
    let w = record(&db, "naip/wgs84.tif", 0).unwrap();
    assert_bbox(footprint(&w), [10.0, 49.9, 10.2, 50.0], 1e-9);
    assert_eq!(field(&w, "bands"), Some(&Value::Text("1,2,3".into())));

    // UTM south, planar 16-bit.
    let so = record(&db, "south.tif", 0).unwrap();
    assert_bbox(footprint(&so), [15.0, -45.171_480_523, 15.008_144_582, -45.153_476_893], FOOTPRINT_TOLERANCE);

    // Lambert-93 through the projection library. The window's left edge is the central meridian
    // (3 E), its top-left corner the false origin (46.5 N; parallels are arcs round a point north on
    // that meridian, so the top edge heads south going east) and its bottom-right corner the IGN
    // point of PROJ test/cli/test_cs2cs_ignf.yaml, 1007068.686 E 6340907.237 N = 6 50'12.2276489" E
    // 44 06'00.0517019" N, which the bottom edge reaches last; the east bound, at the top-right
    // corner, has no published value.
    let l = record(&db, "lambert93.tif", 0).unwrap();
    assert_eq!(field(&l, "crs"), Some(&Value::Keyword("EPSG:2154".into())));
    let f = footprint(&l);
    let (metre, ign_lon, ign_lat) =
        (1.0 / 111_000.0, 6.0 + 50.0 / 60.0 + 12.227_648_9 / 3600.0, 44.1 + 0.051_701_9 / 3600.0);
    assert!((f[0] - 3.0).abs() < metre && (f[1] - ign_lat).abs() < metre && (f[3] - 46.5).abs() < metre, "{f:?}");
    assert!(f[2] > ign_lon, "{f:?}");
    assert!(!line_for(&lines, "lambert93.tif")["notes"].to_string().contains("crs_unsupported"));

    // A CRS the library cannot handle: kept and reported, no footprint.
    let n = record(&db, "nad27.tif", 0).unwrap();
    assert_eq!(field(&n, "crs"), Some(&Value::Keyword("EPSG:32040".into())));
    assert!(field(&n, "footprint").is_none());
    let notes = line_for(&lines, "nad27.tif")["notes"].to_string();
    assert!(notes.contains("crs_unsupported: EPSG:32040 is not converted to WGS84"), "{notes}");

    // Float DEM with no-data: stretched, imported.
    let dem = line_for(&lines, "dem.tif");
    assert_eq!(dem["status"], "imported");
    assert!(dem["notes"].to_string().contains("f32 stretched"), "{dem}");

    // Resampling to 20 m: 128-pixel tiles cover 256 source pixels.
    let db2 = Db::open(d.path().join("db2")).unwrap();
    let o =
        ImportOptions { tiling: Tiling { tile: 128, overlap: 0, gsd: Some(20.0), chip_max: 256 }, ..opts(128, 256) };
    let (s, _) = run(&db2, &FAKE, &arch, &o);
    assert!(s.clean());
    let r = db2.snapshot().collection("scenes").unwrap().get(record_id("s2/T33_utm.tif", 0)).unwrap().unwrap();
    assert_eq!(field(&r, "window"), Some(&Value::Window([0, 0, 256, 200])));
    assert_eq!(field(&r, "tile_count"), Some(&Value::Integer(2)));
    assert_eq!(field(&r, "gsd"), Some(&Value::Float(20.0)));

    // A --gsd far finer than the 10 m source: a tile would cover a thousandth of a pixel, so the
    // scene is tiled at its own resolution and the report says why.
    let db3 = Db::open(d.path().join("db3")).unwrap();
    let o =
        ImportOptions { tiling: Tiling { tile: 128, overlap: 0, gsd: Some(0.001), chip_max: 256 }, ..opts(128, 256) };
    let (_, lines) = run(&db3, &FAKE, &arch, &o);
    let t = line_for(&lines, "s2/T33_utm.tif");
    assert!(t["notes"].to_string().contains("gsd_not_applied"), "{t}");
    let r = db3.snapshot().collection("scenes").unwrap().get(record_id("s2/T33_utm.tif", 0)).unwrap().unwrap();
    assert_eq!(field(&r, "gsd"), Some(&Value::Float(10.0)));
}

fn png16(path: &Path) {
    let img = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(64, 64, |x, y| {
        image::Luma([(x * 700 + y * 300) as u16])
    });
    img.save(path).unwrap();
}

#[test]
#[expect(clippy::many_single_char_names, reason = "short names for the records under test")]
fn stac_items_sidecars_and_csv_become_typed_fields() {
    let d = tempfile::tempdir().unwrap();
    let arch = d.path().join("archive");
    std::fs::create_dir_all(arch.join("items")).unwrap();
    std::fs::create_dir_all(arch.join("img")).unwrap();
    png16(&arch.join("img/a.png"));
    RgbImage::from_pixel(16, 16, image::Rgb([9, 9, 9])).save(arch.join("img/a_thumb.png")).unwrap();
    std::fs::copy(chip("Forest", "forest_175.jpg"), arch.join("img/b.jpg")).unwrap();
    RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8, y as u8, 50])).save(arch.join("img/c.png")).unwrap();
    let item = serde_json::json!({
        "type": "Feature", "stac_version": "1.0.0", "id": "S2B_scene_1",
        "bbox": [5.0, 45.0, 5.5, 45.5],
        "geometry": {"type": "Polygon", "coordinates": [[[5.0, 45.0], [5.5, 45.0], [5.5, 45.5], [5.0, 45.5], [5.0, 45.0]]]},
        "properties": {"datetime": "2021-07-04T10:30:00Z", "platform": "sentinel-2b", "constellation": "sentinel-2",
            "gsd": 10, "eo:cloud_cover": 12, "view:off_nadir": 3.5, "instruments": ["msi"], "s2:nested": {"a": 1}},
        "assets": {
            "visual": {"href": "../img/a.png", "type": "image/png", "roles": ["data"]},
            "thumb": {"href": "../img/a_thumb.png", "type": "image/png", "roles": ["thumbnail"]},
            "evil": {"href": "../../outside.png", "type": "image/png", "roles": ["data"]},
            "remote": {"href": "https://example.invalid/x.tif", "type": "image/tiff; application=geotiff"}
        }
    });
    std::fs::write(arch.join("items/scene1.json"), item.to_string()).unwrap();
    std::fs::write(
        arch.join("img/b.json"),
        r#"{"class": "Forest", "cloud": 3, "acquired": "2020-05-01", "bbox": [1, 2, 3, 4]}"#,
    )
    .unwrap();
    std::fs::write(
        arch.join("manifest.csv"),
        "path,class,quality,flag,min_lon,min_lat,max_lon,max_lat\nimg/c.png,Farmland,0.75,true,7,47,7.5,47.25\nimg/missing.png,x,1,false,0,0,1,1\n",
    )
    .unwrap();
    let db = Db::open(d.path().join("db")).unwrap();
    let o = ImportOptions { schema: vec![("cloud".into(), FieldType::Float)], ..opts(512, 1024) };
    let (s, lines) = run(&db, &FAKE, &arch, &o);
    let types: Vec<(String, String)> = s.fields.clone();
    for (n, t) in [
        ("datetime", "timestamp"),
        ("platform", "keyword"),
        ("constellation", "keyword"),
        ("eo:cloud_cover", "float"),
        ("view:off_nadir", "float"),
        ("instruments", "keyword"),
        ("item_id", "keyword"),
        ("class", "keyword"),
        ("cloud", "float"),
        ("acquired", "timestamp"),
        ("quality", "float"),
        ("flag", "bool"),
    ] {
        assert!(types.contains(&(n.to_string(), t.to_string())), "{n}:{t} not in {types:?}");
    }
    assert!(s.metadata_notes.iter().any(|n| n.contains("s2:nested")), "{:?}", s.metadata_notes);
    assert_eq!(s.count(Status::Imported), 4);
    assert_eq!(s.reason(Reason::OutsideArchive), 1, "{lines:#?}");
    assert_eq!(s.reason(Reason::RemoteHref), 1);
    let a = record(&db, "img/a.png", 0).unwrap();
    assert_eq!(field(&a, "platform"), Some(&Value::Keyword("sentinel-2b".into())));
    assert_eq!(field(&a, "eo:cloud_cover"), Some(&Value::Float(12.0)));
    assert_eq!(field(&a, "gsd"), Some(&Value::Float(10.0)));
    assert_eq!(field(&a, "item_id"), Some(&Value::Keyword("S2B_scene_1".into())));
    let when = skysift::time::parse_timestamp("2021-07-04T10:30:00Z").unwrap();
    assert_eq!(field(&a, "datetime"), Some(&Value::Timestamp(when)));
    assert_eq!(footprint(&a), [5.0, 45.0, 5.5, 45.5]);
    assert!(line_for(&lines, "img/a.png")["notes"].to_string().contains("u16 stretched"));
    let b = record(&db, "img/b.jpg", 0).unwrap();
    assert_eq!(field(&b, "class"), Some(&Value::Keyword("Forest".into())));
    assert_eq!(field(&b, "cloud"), Some(&Value::Float(3.0)));
    assert_eq!(footprint(&b), [1.0, 2.0, 3.0, 4.0]);
    let c = record(&db, "img/c.png", 0).unwrap();
    assert_eq!(field(&c, "class"), Some(&Value::Keyword("Farmland".into())));
    assert_eq!(field(&c, "flag"), Some(&Value::Bool(true)));
    assert_eq!(footprint(&c), [7.0, 47.0, 7.5, 47.25]);
    assert!(field(&record(&db, "img/a_thumb.png", 0).unwrap(), "platform").is_none());
    let evil = lines.iter().find(|l| l["reason"] == "outside_archive").unwrap();
    assert_eq!(evil["kind"], "metadata");
    assert!(evil["path"].as_str().unwrap().starts_with("items/scene1.json"));
}

fn tiny_tiff(w: u32, h: u32, strip_bytes: u32) -> Vec<u8> {
    // A little-endian TIFF whose only IFD declares w x h pixels in one strip of `strip_bytes`.
    let entries: [(u16, u16, u32); 8] = [
        (256, 4, w),
        (257, 4, h),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 8),
        (278, 4, h),
        (279, 4, strip_bytes),
    ];
    let mut v = b"II*\0".to_vec();
    v.extend_from_slice(&8u32.to_le_bytes());
    v.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, ty, val) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        if ty == 3 {
            v.extend_from_slice(&(val as u16).to_le_bytes());
            v.extend_from_slice(&[0, 0]);
        } else {
            v.extend_from_slice(&val.to_le_bytes());
        }
    }
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

fn png_bomb() -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut crc = 0xFFFF_FFFFu32;
    for &b in &ihdr {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { 0xEDB8_8320 ^ (crc >> 1) } else { crc >> 1 };
        }
    }
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&(!crc).to_be_bytes());
    png
}

/// A TIFF tag value written by [`raw_tiff`].
enum V {
    /// SHORTs.
    S(Vec<u16>),
    /// LONGs.
    L(Vec<u32>),
}

/// A little-endian TIFF by hand, for what the encoders will not write: `data` from byte 8, then one
/// IFD of `tags` (sorted here), then the values that do not fit in their entries.
fn raw_tiff(data: &[u8], mut tags: Vec<(u16, V)>) -> Vec<u8> {
    tags.sort_by_key(|t| t.0);
    let ifd = 8 + data.len() as u32;
    let mut v = b"II*\0".to_vec();
    v.extend_from_slice(&ifd.to_le_bytes());
    v.extend_from_slice(data);
    v.extend_from_slice(&(tags.len() as u16).to_le_bytes());
    let extra_at = ifd + 2 + 12 * tags.len() as u32 + 4;
    let mut extra = Vec::new();
    for (tag, val) in tags {
        let (ty, count, bytes): (u16, usize, Vec<u8>) = match val {
            V::S(x) => (3, x.len(), x.iter().flat_map(|n| n.to_le_bytes()).collect()),
            V::L(x) => (4, x.len(), x.iter().flat_map(|n| n.to_le_bytes()).collect()),
        };
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(&(count as u32).to_le_bytes());
        if bytes.len() <= 4 {
            let mut inline = bytes.clone();
            inline.resize(4, 0);
            v.extend_from_slice(&inline);
        } else {
            v.extend_from_slice(&(extra_at + extra.len() as u32).to_le_bytes());
            extra.extend_from_slice(&bytes);
        }
    }
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&extra);
    v
}

/// A one-strip `w x h` TIFF of `bits` per sample x `spp` with `data` as its strip, plus `more` tags.
#[expect(clippy::too_many_arguments, reason = "the tags of one strip, in the order the IFD writes them")]
fn strip_tiff(
    w: u32,
    h: u32,
    spp: u16,
    bits: u16,
    photometric: u16,
    compression: u16,
    data: &[u8],
    more: Vec<(u16, V)>,
) -> Vec<u8> {
    let mut tags = vec![
        (256, V::L(vec![w])),
        (257, V::L(vec![h])),
        (258, V::S(vec![bits; usize::from(spp)])),
        (259, V::S(vec![compression])),
        (262, V::S(vec![photometric])),
        (273, V::L(vec![8])),
        (277, V::S(vec![spp])),
        (278, V::L(vec![h])),
        (279, V::L(vec![data.len() as u32])),
    ];
    for (t, v) in more {
        tags.retain(|(k, _)| *k != t);
        tags.push((t, v));
    }
    raw_tiff(data, tags)
}

fn rgb_pattern(w: u32, h: u32) -> Vec<u8> {
    (0..w * h).flat_map(|i| [(i % 251) as u8, (i * 7 % 253) as u8, (i * 13 % 255) as u8]).collect()
}

/// A JPEG of `good` whose frame header claims `w x h` pixels.
fn jpeg_claiming(good: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut j = good.to_vec();
    let sof = j.windows(2).position(|m| m[0] == 0xFF && matches!(m[1], 0xC0 | 0xC2)).unwrap();
    j[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    j
}

/// One kind of hostile input: its name, the path its report line has (a metadata line starts
/// with it), and the outcome expected: `imported`, `imported, note REASON`, a reason, or
/// `ignored` (no report line).
struct Kind {
    name: &'static str,
    path: String,
    expect: &'static str,
}

/// Every bad (and valid-but-unusual) input of issues 6 and 19, next to one good file; returns the
/// kinds and what each should give. `changing.jpg` changes and `shrinking.tif` is cut short after
/// hashing only when the test's hook does it (the CLI imports both).
#[expect(clippy::too_many_lines, reason = "one fixture per kind, in the order of the table")]
fn hostile_archive(arch: &Path) -> Vec<Kind> {
    use std::os::unix::ffi::OsStrExt;
    let mut kinds = Vec::new();
    let mut k = |name: &'static str, path: &str, expect: &'static str| {
        kinds.push(Kind { name, path: path.to_owned(), expect });
    };
    std::fs::create_dir_all(arch.join("sub")).unwrap();
    std::fs::create_dir_all(arch.join("items")).unwrap();
    let good = std::fs::read(chip("Beach", "beach_142.jpg")).unwrap();
    std::fs::write(arch.join("good.jpg"), &good).unwrap();
    k("good JPEG", "good.jpg", "imported");
    std::fs::write(arch.join("changing.jpg"), &good).unwrap();
    k("file appended to after hashing", "changing.jpg", "changed_during_import");
    std::fs::write(arch.join("empty.jpg"), b"").unwrap();
    k("zero-byte file", "empty.jpg", "zero_byte");
    std::fs::write(arch.join("truncated.jpg"), &good[..good.len() / 2]).unwrap();
    k("JPEG cut in half", "truncated.jpg", "truncated");
    let mut corrupt = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    corrupt.extend((0..500u32).map(|i| (i * 31 % 251) as u8));
    std::fs::write(arch.join("corrupt.png"), corrupt).unwrap();
    k("PNG signature then noise", "corrupt.png", "corrupt");
    std::fs::write(arch.join("bomb.png"), png_bomb()).unwrap();
    k("PNG header claiming 100k x 100k", "bomb.png", "too_large");
    std::fs::write(arch.join("bomb.tif"), tiny_tiff(100_000, 100_000, 1000)).unwrap();
    k("TIFF header claiming 100k x 100k", "bomb.tif", "too_large");
    std::fs::write(arch.join("bomb.jpg"), jpeg_claiming(&good, 65_000, 65_000)).unwrap();
    k("JPEG frame claiming 65000 x 65000", "bomb.jpg", "too_large");
    std::fs::write(arch.join("gif.png"), b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").unwrap();
    k("GIF named .png", "gif.png", "unsupported_format");
    let t = arch.join("truncated.tif");
    write(&t, &SynthTiff::new(64, 64, 3, SampleKind::U8), pattern).unwrap();
    let bytes = std::fs::read(&t).unwrap();
    std::fs::write(&t, &bytes[..bytes.len() * 2 / 3]).unwrap();
    k("TIFF cut to two thirds", "truncated.tif", "truncated");
    let t = arch.join("shrinking.tif");
    write(&t, &SynthTiff { chunks: Chunks::Strips(4), ..SynthTiff::new(64, 64, 3, SampleKind::U8) }, pattern).unwrap();
    k("TIFF truncated while being read", "shrinking.tif", "truncated");

    // Valid but unusual: all imported.
    let palette = SynthTiff { photometric: Some(3), ..SynthTiff::new(16, 16, 1, SampleKind::U8) };
    let map: Vec<u16> = (0..768u32).map(|i| ((i * 97) % 65_536) as u16).collect();
    write(&arch.join("palette_nomap.tif"), &palette, pattern).unwrap();
    k("palette TIFF without a ColorMap", "palette_nomap.tif", "corrupt");
    let idx: Vec<u8> = (0..32 * 32u32).map(|i| (i % 256) as u8).collect();
    std::fs::write(arch.join("palette.tif"), strip_tiff(32, 32, 1, 8, 3, 1, &idx, vec![(320, V::S(map))])).unwrap();
    k("8-bit palette TIFF", "palette.tif", "imported");
    let map4: Vec<u16> = (0..48u16).map(|i| i * 1300).collect();
    let idx4: Vec<u8> = (0..16 * 32u32).map(|i| (i % 256) as u8).collect();
    std::fs::write(arch.join("palette4.tif"), strip_tiff(32, 32, 1, 4, 3, 1, &idx4, vec![(320, V::S(map4))])).unwrap();
    k("4-bit palette TIFF", "palette4.tif", "imported");
    let bilevel: Vec<u8> = (0..4 * 32u32).map(|i| if (i / 4) % 2 == 0 { 0xF0 } else { 0x0F }).collect();
    std::fs::write(arch.join("bilevel.tif"), strip_tiff(32, 32, 1, 1, 0, 1, &bilevel, vec![])).unwrap();
    k("1-bit WhiteIsZero TIFF", "bilevel.tif", "imported");
    let grey: Vec<u8> = (0..32 * 32u32).map(|i| (i % 256) as u8).collect();
    std::fs::write(arch.join("white_is_zero.tif"), strip_tiff(32, 32, 1, 8, 0, 1, &grey, vec![])).unwrap();
    k("8-bit WhiteIsZero TIFF", "white_is_zero.tif", "imported");
    let rgb = rgb_pattern(48, 40);
    let z = zstd::encode_all(&rgb[..], 3).unwrap();
    std::fs::write(arch.join("zstd.tif"), strip_tiff(48, 40, 3, 8, 2, 50_000, &z, vec![])).unwrap();
    k("ZSTD-compressed TIFF", "zstd.tif", "imported");
    let mut webp = Vec::new();
    image_webp::WebPEncoder::new(&mut webp).encode(&rgb, 48, 40, image_webp::ColorType::Rgb8).unwrap();
    std::fs::write(arch.join("webp.tif"), strip_tiff(48, 40, 3, 8, 2, 50_001, &webp, vec![])).unwrap();
    k("WebP-compressed TIFF", "webp.tif", "imported");
    let mut small = Vec::new();
    image_webp::WebPEncoder::new(&mut small).encode(&rgb_pattern(16, 16), 16, 16, image_webp::ColorType::Rgb8).unwrap();
    std::fs::write(arch.join("webp_wrong_size.tif"), strip_tiff(48, 40, 3, 8, 2, 50_001, &small, vec![])).unwrap();
    k("WebP strip of 16 x 16 in a 48 x 40 TIFF", "webp_wrong_size.tif", "corrupt");
    // 256 MiB of zeros in a few KiB, for a strip of 48 x 40 x 3 bytes: only the strip is decoded.
    let zbomb = zstd::encode_all(std::io::Read::take(std::io::repeat(0), 256 << 20), 19).unwrap();
    std::fs::write(arch.join("zstd_bomb.tif"), strip_tiff(48, 40, 3, 8, 2, 50_000, &zbomb, vec![])).unwrap();
    k("ZSTD strip inflating to 256 MiB", "zstd_bomb.tif", "imported");
    let f = std::fs::File::create(arch.join("bigtiff.tif")).unwrap();
    let mut big = tiff::encoder::TiffEncoder::new_big(std::io::BufWriter::new(f)).unwrap();
    big.write_image::<tiff::encoder::colortype::RGB8>(48, 40, &rgb).unwrap();
    drop(big);
    k("BigTIFF", "bigtiff.tif", "imported");
    let cmyk: Vec<u8> = (0..40 * 32u32).flat_map(|i| [(i % 200) as u8, 40, (i % 97) as u8, 10]).collect();
    let mut cj = Vec::new();
    jpeg_encoder::Encoder::new(&mut cj, 90).encode(&cmyk, 40, 32, jpeg_encoder::ColorType::Cmyk).unwrap();
    std::fs::write(arch.join("cmyk.jpg"), cj).unwrap();
    k("CMYK JPEG", "cmyk.jpg", "imported");
    png16(&arch.join("png16.png"));
    k("16-bit grey PNG", "png16.png", "imported, note u16");
    let mut png = Vec::new();
    RgbImage::from_fn(20, 20, |x, y| image::Rgb([x as u8 * 9, y as u8 * 9, 7]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(arch.join("png_named.jpg"), &png).unwrap();
    k("PNG named .jpg", "png_named.jpg", "imported");
    std::fs::write(arch.join("jpeg_named.tif"), &good).unwrap();
    k("JPEG named .tif", "jpeg_named.tif", "imported");
    std::fs::create_dir_all(arch.join("dir.tif")).unwrap();
    std::fs::write(arch.join("dir.tif/inside.jpg"), &good).unwrap();
    k("directory named dir.tif (walked; its file)", "dir.tif/inside.jpg", "imported");
    std::fs::write(arch.join("caf\u{e9}.jpg"), &good).unwrap();
    std::fs::write(arch.join("cafe\u{301}.jpg"), &good).unwrap();
    k("path in NFC with an NFD twin", "caf\u{e9}.jpg", "imported, note look_alike_path");
    k("path in NFD with an NFC twin", "cafe\u{301}.jpg", "imported, note look_alike_path");

    // GeoTIFF keys that lie: imported without a footprint, the reason noted.
    let geo = |epsg, origin, pixel| SynthTiff {
        geo: Some(SynthGeo { epsg, origin, pixel }),
        ..SynthTiff::new(24, 24, 3, SampleKind::U8)
    };
    write(&arch.join("geo_zero_pixel.tif"), &geo(32633, (500_000.0, 4_500_000.0), (0.0, 0.0)), pattern).unwrap();
    k("GeoTIFF with zero pixel size", "geo_zero_pixel.tif", "imported, note bad_georeference");
    write(&arch.join("geo_nan_tie.tif"), &geo(32633, (f64::NAN, f64::NAN), (10.0, 10.0)), pattern).unwrap();
    k("GeoTIFF with NaN tie points", "geo_nan_tie.tif", "imported, note bad_georeference");
    write(&arch.join("geo_user_crs.tif"), &geo(32767, (500_000.0, 4_500_000.0), (10.0, 10.0)), pattern).unwrap();
    k("GeoTIFF with a user-defined CRS", "geo_user_crs.tif", "imported, note crs_unsupported");
    write(&arch.join("geo_off_globe.tif"), &geo(4326, (1e6, 1e6), (1e5, 1e5)), pattern).unwrap();
    k("GeoTIFF placed off the globe", "geo_off_globe.tif", "imported");

    // Broken TIFF structure: refused with the reason.
    let strips13: Vec<u8> = vec![7; 13 * 16 * 16];
    let planar13 = strip_tiff(
        16,
        16,
        13,
        8,
        1,
        1,
        &strips13,
        vec![(273, V::L((0..12u32).map(|b| 8 + b * 256).collect())), (279, V::L(vec![256; 13])), (284, V::S(vec![2]))],
    );
    std::fs::write(arch.join("planar13_mismatch.tif"), planar13).unwrap();
    k("planar 13-band, 12 strip offsets for 13 strips", "planar13_mismatch.tif", "corrupt");
    let cmyk_tiff: Vec<u8> = vec![9; 4 * 16 * 16];
    std::fs::write(arch.join("cmyk.tif"), strip_tiff(16, 16, 4, 8, 5, 1, &cmyk_tiff, vec![])).unwrap();
    k("CMYK TIFF", "cmyk.tif", "unsupported_band_layout");
    std::fs::write(arch.join("jpeg2000.tif"), strip_tiff(16, 16, 3, 8, 2, 34_712, &[1; 64], vec![])).unwrap();
    k("TIFF compressed with JPEG 2000", "jpeg2000.tif", "unsupported_format");
    std::fs::write(arch.join("zero_width.tif"), strip_tiff(0, 16, 1, 8, 1, 1, &[0; 16], vec![])).unwrap();
    k("TIFF zero pixels wide", "zero_width.tif", "corrupt");
    std::fs::write(
        arch.join("mixed_bits.tif"),
        strip_tiff(16, 16, 3, 8, 2, 1, &[0; 1024], vec![(258, V::S(vec![8, 16, 8]))]),
    )
    .unwrap();
    k("TIFF with 8/16/8-bit samples", "mixed_bits.tif", "unsupported_band_layout");
    std::fs::write(arch.join("complex.tif"), strip_tiff(16, 16, 1, 32, 1, 1, &[0; 1024], vec![(339, V::S(vec![5]))]))
        .unwrap();
    k("TIFF of complex integers", "complex.tif", "unsupported_band_layout");
    let mut far = strip_tiff(16, 16, 1, 8, 1, 1, &[0; 256], vec![]);
    far[4..8].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    std::fs::write(arch.join("ifd_past_end.tif"), far).unwrap();
    k("TIFF whose IFD lies past the end", "ifd_past_end.tif", "truncated");
    let mut looped = strip_tiff(16, 16, 1, 8, 1, 1, &[5; 256], vec![]);
    let ifd = u32::from_le_bytes(looped[4..8].try_into().unwrap());
    let next = ifd as usize + 2 + 12 * 9;
    looped[next..next + 4].copy_from_slice(&ifd.to_le_bytes());
    std::fs::write(arch.join("ifd_loop.tif"), looped).unwrap();
    k("TIFF whose next IFD is itself", "ifd_loop.tif", "corrupt");
    std::fs::write(
        arch.join("strip_past_end.tif"),
        strip_tiff(16, 16, 1, 8, 1, 1, &[1; 256], vec![(279, V::L(vec![1 << 30]))]),
    )
    .unwrap();
    k("TIFF strip byte count past the end", "strip_past_end.tif", "truncated");

    // Walk.
    std::fs::write(arch.join(std::ffi::OsStr::from_bytes(b"bad\xff.jpg")), &good).unwrap();
    k("non-UTF-8 file name", "bad\\xFF.jpg", "non_utf8_name");
    std::os::unix::fs::symlink(arch, arch.join("sub/loop")).unwrap();
    k("directory link to an ancestor", "sub/loop", "symlink_loop");
    std::os::unix::fs::symlink(arch.join("nowhere.tif"), arch.join("broken.tif")).unwrap();
    k("broken symbolic link", "broken.tif", "broken_link");
    std::os::unix::fs::symlink("/etc/hostname", arch.join("outside.tif")).unwrap();
    k("link out of the archive", "outside.tif", "outside_archive");
    let fifo = Command::new("mkfifo").arg(arch.join("fifo.tif")).status().unwrap();
    assert!(fifo.success());
    k("FIFO named fifo.tif", "fifo.tif", "not_regular_file");
    std::fs::write(arch.join("README.txt"), "not imagery").unwrap();
    k("text file", "README.txt", "ignored");
    std::fs::write(arch.join(".hidden.tif"), &good).unwrap();
    k("hidden file", ".hidden.tif", "ignored");

    // Metadata.
    let root = std::fs::canonicalize(arch).unwrap();
    png16(&arch.join("stac_target.png"));
    let item = serde_json::json!({
        "type": "Feature", "stac_version": "1.0.0", "id": "hostile-item",
        "bbox": [5.0, 45.0, 5.5, 45.5],
        "properties": {"datetime": "2021-07-04T10:30:00Z", "platform": "hostile-sat"},
        "assets": {
            "absolute_inside": {"href": root.join("stac_target.png").to_str().unwrap(), "type": "image/png", "roles": ["data"]},
            "absolute_outside": {"href": "/etc/hostname.tif", "type": "image/tiff", "roles": ["data"]},
            "url": {"href": "https://example.invalid/x.tif", "type": "image/tiff", "roles": ["data"]},
            "dotdot": {"href": "../../outside.png", "type": "image/png", "roles": ["data"]}
        }
    });
    std::fs::write(arch.join("items/item.json"), item.to_string()).unwrap();
    k("STAC asset href absolute, inside the archive", "stac_target.png", "imported, note u16");
    k("STAC asset href absolute, outside the archive", "items/item.json#absolute_outside", "outside_archive");
    k("STAC asset href a URL", "items/item.json#url", "remote_href");
    k("STAC asset href ../ out of the archive", "items/item.json#dotdot", "outside_archive");
    std::fs::write(arch.join("bad.json"), b"{\"class\": ").unwrap();
    k("sidecar JSON cut short", "bad.json", "bad_metadata");
    std::fs::write(arch.join("bom_target.jpg"), &good).unwrap();
    std::fs::write(arch.join("manifest.csv"), "\u{feff}path,class\r\nbom_target.jpg,Harbour\r\n").unwrap();
    k("CSV with a BOM and CRLF (its image)", "bom_target.jpg", "imported");
    kinds
}

/// What the report says of `kind`: `imported` (with the reasons of its notes), a reason, or
/// `ignored`.
fn outcome(lines: &[serde_json::Value], kind: &Kind) -> (String, String) {
    let line = lines.iter().find(|l| l["path"] == kind.path.as_str());
    let Some(l) = line else { return ("ignored".into(), String::new()) };
    if l["status"] == "imported" {
        let notes: Vec<String> = l["notes"]
            .as_array()
            .map(|n| n.iter().filter_map(|x| x.as_str()).map(str::to_owned).collect())
            .unwrap_or_default();
        let wanted = kind.expect.strip_prefix("imported, note ").unwrap_or("\0");
        let got = if notes.iter().any(|n| n.starts_with(wanted) || n.starts_with(&format!("{wanted} "))) {
            format!("imported, note {wanted}")
        } else {
            "imported".into()
        };
        return (got, notes.join("; "));
    }
    (l["reason"].as_str().unwrap_or("?").to_owned(), l["detail"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn palette_bilevel_zstd_and_webp_tiffs_read_as_their_pixels() {
    let d = tempfile::tempdir().unwrap();
    let read = |name: &str, bytes: Vec<u8>, bands: [usize; 3]| {
        let p = d.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        let mut r = TiffRaster::open(&p, bytes.len() as u64, &Limits::default()).unwrap();
        r.prepare(bands).unwrap();
        r.read_rgb([0, 0, r.width, r.height]).unwrap()
    };
    let map: Vec<u16> = (0..768u32).map(|i| ((i * 97) % 65_536) as u16).collect();
    let idx: Vec<u8> = (0..32 * 32u32).map(|i| (i * 5 % 256) as u8).collect();
    let img = read("palette.tif", strip_tiff(32, 32, 1, 8, 3, 1, &idx, vec![(320, V::S(map.clone()))]), [0, 1, 2]);
    for (x, y, px) in img.enumerate_pixels() {
        let i = usize::from(idx[(y * 32 + x) as usize]);
        assert_eq!(px.0, [0, 256, 512].map(|c| (map[c + i] >> 8) as u8), "palette pixel ({x},{y})");
    }
    // WhiteIsZero: a 0 bit is white.
    let rows: Vec<u8> = (0..2 * 16u32).map(|i| if i % 2 == 0 { 0b1100_0000 } else { 0 }).collect();
    let img = read("bilevel.tif", strip_tiff(10, 16, 1, 1, 0, 1, &rows, vec![]), [0, 0, 0]);
    for (x, y, px) in img.enumerate_pixels() {
        assert_eq!(px.0, [if x < 2 { 0 } else { 255 }; 3], "bilevel pixel ({x},{y})");
    }
    let rgb = rgb_pattern(48, 40);
    let z = zstd::encode_all(&rgb[..], 3).unwrap();
    assert_eq!(read("zstd.tif", strip_tiff(48, 40, 3, 8, 2, 50_000, &z, vec![]), [0, 1, 2]).as_raw(), &rgb);
    let mut webp = Vec::new();
    image_webp::WebPEncoder::new(&mut webp).encode(&rgb, 48, 40, image_webp::ColorType::Rgb8).unwrap();
    assert_eq!(read("webp.tif", strip_tiff(48, 40, 3, 8, 2, 50_001, &webp, vec![]), [0, 1, 2]).as_raw(), &rgb);
}

/// Kinds of hostile input the archive must hold at least (issue 19).
const MIN_HOSTILE_KINDS: usize = 40;

#[test]
fn hostile_inputs_are_skipped_with_reasons_and_nothing_is_lost() {
    let d = tempfile::tempdir().unwrap();
    let arch = d.path().join("archive");
    let kinds = hostile_archive(&arch);
    let db = Db::open(d.path().join("db")).unwrap();
    let mut o = opts(512, 1024);
    o.after_hash = Some(Arc::new(|p: &Path| {
        if p.ends_with("changing.jpg") {
            std::fs::OpenOptions::new().append(true).open(p).unwrap().write_all(b"more").unwrap();
        }
        if p.ends_with("shrinking.tif") {
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.set_len(f.metadata().unwrap().len() / 3).unwrap();
        }
    }));
    let (s, lines) = run(&db, &FAKE, &arch, &o);
    let mut wrong = Vec::new();
    for kind in &kinds {
        let (got, detail) = outcome(&lines, kind);
        println!("hostile input: {} -> {got} ({detail})", kind.name);
        if got != kind.expect {
            wrong.push(format!("{}: expected {}, got {got} ({detail})", kind.name, kind.expect));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(kinds.len() + 1 >= MIN_HOSTILE_KINDS, "{} kinds", kinds.len() + 1);
    assert_eq!(s.reason(Reason::DecoderPanic), 0, "{:#?}", s.by_reason);
    let imported = kinds.iter().filter(|k| k.expect.starts_with("imported")).count() as u64;
    assert_eq!(s.count(Status::Imported), imported, "{lines:#?}");
    assert!(!s.clean());
    assert!(line_for(&lines, "bomb.tif")["detail"].as_str().unwrap().contains("100000x100000"));
    assert!(record(&db, "good.jpg", 0).is_some());
    assert!(record(&db, "changing.jpg", 0).is_none(), "a file that changed mid-import leaves no records");
    assert!(record(&db, "shrinking.tif", 0).is_none(), "a file cut short mid-import leaves no records");
    for k in kinds.iter().filter(|k| k.expect.starts_with("imported")) {
        assert!(record(&db, &k.path, 0).is_some(), "{}: no record for {}", k.name, k.path);
    }
    assert_eq!(db.snapshot().collection("scenes").unwrap().count(), imported);
    // The valid-but-unusual files keep their metadata and colours.
    let h = record(&db, "bom_target.jpg", 0).unwrap();
    assert_eq!(field(&h, "class"), Some(&Value::Keyword("Harbour".into())), "the CSV's BOM hid its path column");
    let st = record(&db, "stac_target.png", 0).unwrap();
    assert_eq!(field(&st, "item_id"), Some(&Value::Keyword("hostile-item".into())));
    assert!(field(&record(&db, "geo_zero_pixel.tif", 0).unwrap(), "footprint").is_none());
    let summary = lines.last().unwrap();
    assert_eq!(summary["kind"], "summary");
    assert_eq!(summary["by_status"]["imported"], imported);

    // --bands naming a band the file lacks.
    let o = ImportOptions { collection: "bands".into(), bands: Some([3, 2, 1]), ..opts(512, 1024) };
    let (s, _) = run(&db, &FAKE, &arch, &o);
    assert!(s.reason(Reason::BandsOutOfRange) >= 1);
    println!("hostile input: --bands naming a band the file lacks -> bands_out_of_range");
}

/// The peak resident memory allowed to `skysift import` of the hostile archive, MB: the demo model
/// and ONNX Runtime take a few hundred; decoding the 100k x 100k claims (30 GB as RGB) or one
/// claimed 65000 x 65000 JPEG (12 GB) would take far more.
const HOSTILE_IMPORT_RSS_BOUND_MB: f64 = 1024.0;

fn scene(path: &Path, w: u32, h: u32, seed: u32) {
    let spec = SynthTiff { rgb: true, chunks: Chunks::Tiles(64, 64), ..SynthTiff::new(w, h, 3, SampleKind::U8) };
    write(path, &spec, |x, y, b| f64::from((x / 16 * 37 + y / 16 * 91 + b as u32 * 50 + seed) % 256)).unwrap();
}

/// An archive of a 256 x 256 scene and a chip under `d`, imported once with 64 px tiles (17
/// records); its folder, database and options.
fn imported_scene_and_chip(d: &Path) -> (PathBuf, Db, ImportOptions) {
    let arch = d.join("archive");
    std::fs::create_dir_all(&arch).unwrap();
    scene(&arch.join("scene.tif"), 256, 256, 0);
    std::fs::copy(chip("Port", "port_129.jpg"), arch.join("chip.jpg")).unwrap();
    let db = Db::open(d.join("db")).unwrap();
    let o = opts(64, 160);
    let (s, _) = run(&db, &FAKE, &arch, &o);
    assert_eq!((s.count(Status::Imported), s.tiles_written), (2, 17));
    (arch, db, o)
}

#[test]
fn reimport_is_idempotent_and_a_changed_file_replaces_its_records() {
    let d = tempfile::tempdir().unwrap();
    let (arch, db, o) = imported_scene_and_chip(d.path());
    let before = record(&db, "scene.tif", 3).unwrap();

    let (s, lines) = run(&db, &FAKE, &arch, &o);
    assert_eq!((s.count(Status::Unchanged), s.tiles_written, s.tiles_reused), (2, 0, 17), "{lines:#?}");
    assert!(s.clean());
    assert_eq!(record(&db, "scene.tif", 3).unwrap(), before);

    // The scene shrinks to 2 x 3 tiles with new content: replaced in place, 10 stale records removed.
    scene(&arch.join("scene.tif"), 128, 192, 7);
    let (s, _) = run(&db, &FAKE, &arch, &o);
    assert_eq!((s.count(Status::Imported), s.count(Status::Unchanged), s.tiles_written), (1, 1, 6));
    assert_eq!(s.records_deleted, 10);
    assert_eq!(db.snapshot().collection("scenes").unwrap().count(), 7);
    assert_ne!(field(&record(&db, "scene.tif", 3).unwrap(), "file_hash"), field(&before, "file_hash"));
    assert!(record(&db, "scene.tif", 6).is_none());

    // Another tiling is another recipe: everything is re-imported.
    let (s, _) = run(&db, &FAKE, &arch, &opts(32, 160));
    assert_eq!((s.count(Status::Imported), s.tiles_written), (2, 4 * 6 + 1));
}

/// An archive imported before the ledger hashed with BLAKE3 (its records carry SHA-256 hashes) is
/// recognised as unchanged, not encoded again; a file changed since is re-imported.
#[test]
fn a_ledger_of_sha256_hashes_from_before_blake3_is_honoured() {
    use sha2::{Digest, Sha256};
    let d = tempfile::tempdir().unwrap();
    let (arch, db, o) = imported_scene_and_chip(d.path());
    let hash = |r: &StoredRecord| match field(r, "file_hash") {
        Some(Value::Text(h)) => h.clone(),
        other => panic!("file_hash {other:?}"),
    };
    assert!(hash(&record(&db, "scene.tif", 0).unwrap()).starts_with("blake3:"));
    // Rewrite every record's hash as an import before BLAKE3 wrote it: the file's SHA-256.
    let col = db.snapshot().collection("scenes").unwrap();
    let mut tx = db.begin_write("scenes").unwrap();
    for id in col.ids().unwrap() {
        let r = col.get(id).unwrap().unwrap();
        let rel = match field(&r, "source") {
            Some(Value::Text(s)) => s.clone(),
            other => panic!("source {other:?}"),
        };
        let sha = format!("{:x}", Sha256::digest(std::fs::read(arch.join(&rel)).unwrap()));
        let mut fields: Vec<(String, Value)> = r.fields.into_iter().filter(|(n, _)| n != "file_hash").collect();
        fields.push(("file_hash".into(), Value::Text(sha)));
        tx.upsert(NewRecord { id, vector: r.vector, fields }).unwrap();
    }
    tx.commit().unwrap();
    let legacy = hash(&record(&db, "scene.tif", 0).unwrap());
    assert_eq!(legacy.len(), 64);

    let (s, lines) = run(&db, &FAKE, &arch, &o);
    assert_eq!((s.count(Status::Unchanged), s.tiles_written, s.tiles_reused), (2, 0, 17), "{lines:#?}");
    assert_eq!(hash(&record(&db, "scene.tif", 0).unwrap()), legacy, "the recorded hash is kept");

    scene(&arch.join("scene.tif"), 256, 256, 9);
    let (s, _) = run(&db, &FAKE, &arch, &o);
    assert_eq!((s.count(Status::Imported), s.count(Status::Unchanged), s.tiles_written), (1, 1, 16));
    assert!(hash(&record(&db, "scene.tif", 0).unwrap()).starts_with("blake3:"));
}

#[test]
fn an_interrupted_scene_resumes_where_it_stopped() {
    let d = tempfile::tempdir().unwrap();
    let arch = d.path().join("archive");
    std::fs::create_dir_all(&arch).unwrap();
    scene(&arch.join("big.tif"), 512, 512, 3);
    let db = Db::open(d.path().join("db")).unwrap();
    let o = ImportOptions { workers: 1, commit_rows: 4, ..opts(64, 100) };
    let (stop, progress) = (Arc::clone(&o.stop), Arc::clone(&o.progress));
    let watcher = std::thread::spawn(move || {
        let t = Instant::now();
        while progress.tiles_written.load(Ordering::Relaxed) < 8 && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let (s, lines) = run(&db, &FAKE, &arch, &o);
    watcher.join().unwrap();
    assert!(s.interrupted && !s.clean());
    let first = db.snapshot().collection("scenes").unwrap().count();
    assert!((8..64).contains(&first), "{first} tiles after the stop");
    assert_eq!(line_for(&lines, "big.tif")["status"], "interrupted");

    let o = ImportOptions { stop: Arc::default(), progress: Arc::default(), ..o };
    let (s, lines) = run(&db, &FAKE, &arch, &o);
    assert!(s.clean(), "{lines:#?}");
    let l = line_for(&lines, "big.tif");
    assert_eq!((l["reused"].as_u64().unwrap(), l["written"].as_u64().unwrap()), (first, 64 - first));
    assert_eq!(db.snapshot().collection("scenes").unwrap().count(), 64);
}

#[test]
fn another_model_or_a_loaded_collection_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let arch = d.path().join("archive");
    std::fs::create_dir_all(&arch).unwrap();
    std::fs::copy(chip("Port", "port_129.jpg"), arch.join("chip.jpg")).unwrap();
    let db = Db::open(d.path().join("db")).unwrap();
    run(&db, &FAKE, &arch, &opts(512, 1024));
    let other = FakeEncoder { fingerprint: 9 };
    let e = import(&db, &other, &arch, &opts(512, 1024), &mut ReportWriter::none()).unwrap_err().to_string();
    assert!(e.contains("fake-7") && e.contains("fake-9"), "{e}");
    db.create_collection("loaded", skysift::CollectionSpec::new(8, skysift::schema::Metric::Cosine)).unwrap();
    let o = ImportOptions { collection: "loaded".into(), ..opts(512, 1024) };
    let e = import(&db, &FAKE, &arch, &o, &mut ReportWriter::none()).unwrap_err().to_string();
    assert!(e.contains("provenance"), "{e}");
}

#[test]
fn a_large_multiband_scene_is_read_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let arch = d.path().join("archive");
    std::fs::create_dir_all(&arch).unwrap();
    let (w, h, bands) = (2048u32, 1536u32, 13usize);
    let spec = SynthTiff {
        chunks: Chunks::Tiles(256, 256),
        geo: Some(SynthGeo { epsg: 32632, origin: (300_000.0, 5_000_000.0), pixel: (10.0, 10.0) }),
        ..SynthTiff::new(w, h, bands, SampleKind::U16)
    };
    write(&arch.join("S2_L1C.tif"), &spec, |x, y, b| 500.0 + pattern(x, y, b) * 10.0).unwrap();
    let db = Db::open(d.path().join("db")).unwrap();
    let (s, _) = run(&db, &FAKE, &arch, &opts(256, 512));
    assert!(s.clean());
    assert_eq!(s.tiles_written, 8 * 6);
    // Two rows of 256-pixel chunks as RGB, one raw 13-band chunk, one window.
    let bound = 2 * 256 * u64::from(w) * 3 + 256 * 256 * bands as u64 * 2 + 256 * 256 * 3;
    let raw = u64::from(w) * u64::from(h) * bands as u64 * 2;
    assert!(s.peak_reader_bytes <= bound, "peak {} > bound {bound}", s.peak_reader_bytes);
    assert!(s.peak_reader_bytes * 10 < raw, "peak {} vs raw scene {raw}", s.peak_reader_bytes);
}

/// 4 x 4 chips of 150 px from `samples/aid-mini`, two of them ports.
const MOSAIC: [(&str, &str); 16] = [
    ("Forest", "forest_175.jpg"),
    ("Desert", "desert_114.jpg"),
    ("Farmland", "farmland_158.jpg"),
    ("Meadow", "meadow_125.jpg"),
    ("Mountain", "mountain_141.jpg"),
    ("Port", "port_129.jpg"),
    ("BareLand", "bareland_113.jpg"),
    ("Forest", "forest_18.jpg"),
    ("Farmland", "farmland_167.jpg"),
    ("Desert", "desert_13.jpg"),
    ("Meadow", "meadow_140.jpg"),
    ("Mountain", "mountain_182.jpg"),
    ("BareLand", "bareland_120.jpg"),
    ("Forest", "forest_180.jpg"),
    ("Port", "port_16.jpg"),
    ("Desert", "desert_152.jpg"),
];

#[test]
fn mosaic_heatmap_hottest_tiles_hold_the_queried_class() {
    let d = tempfile::tempdir().unwrap();
    let arch = d.path().join("archive");
    std::fs::create_dir_all(&arch).unwrap();
    let mut mosaic = RgbImage::new(600, 600);
    let mut ports = Vec::new();
    for (i, (class, name)) in MOSAIC.iter().enumerate() {
        let img = image::open(chip(class, name)).unwrap().to_rgb8();
        let img = image::imageops::resize(&img, 150, 150, image::imageops::FilterType::Triangle);
        image::imageops::replace(&mut mosaic, &img, (i % 4) as i64 * 150, (i / 4) as i64 * 150);
        if *class == "Port" {
            ports.push(i as u32);
        }
    }
    mosaic.save(arch.join("mosaic.png")).unwrap();
    let db = Db::open(d.path().join("db")).unwrap();
    let o = ImportOptions { workers: 1, ..opts(150, 200) };
    let (s, _) = run(&db, demo(), &arch, &o);
    assert_eq!(s.tiles_written, 16);
    let col = db.snapshot().collection("scenes").unwrap();
    let tiles = skysift::query::heatmap::scene_tiles(&col, "mosaic.png").unwrap();
    assert_eq!(tiles.len(), 16);
    let q = demo().query(&TextQuery::new("a port with many boats")).unwrap();
    let scores = skysift::query::heatmap::scores(&tiles, &q.vector);
    let mut order: Vec<u32> = (0..16).collect();
    order.sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]));
    let mut top: Vec<u32> = order[..ports.len()].to_vec();
    top.sort_unstable();
    assert_eq!(top, ports, "scores {scores:?}");
    let img = skysift::query::heatmap::render(&tiles, &scores, 300);
    assert_eq!(img.dimensions(), (300, 300));
    img.save(d.path().join("heat.png")).unwrap();
}

fn skysift(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_skysift")).current_dir(repo()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_import_survives_kill_9_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    let arch = d.path().join("archive");
    std::fs::create_dir_all(&arch).unwrap();
    let root = repo().join("samples/aid-mini");
    let mut n = 0;
    for class in ["Airport", "Beach", "Forest", "Port", "River", "Stadium", "Desert", "Farmland"] {
        for e in std::fs::read_dir(root.join(class)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "jpg") {
                for copy in 0..2 {
                    std::fs::copy(&p, arch.join(format!("{copy}_{}", p.file_name().unwrap().to_str().unwrap())))
                        .unwrap();
                    n += 1;
                }
            }
        }
    }
    let (db, report) = (d.path().join("db"), d.path().join("report.jsonl"));
    let (db_s, arch_s, rep_s) = (db.to_str().unwrap(), arch.to_str().unwrap(), report.to_str().unwrap());
    let args = [
        "import",
        db_s,
        arch_s,
        "--device",
        "cpu",
        "--batch-size",
        "2",
        "--commit-every",
        "2",
        "--workers",
        "1",
        "--threads",
        "1",
        "--no-progress",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_skysift"))
        .current_dir(repo())
        .args(args)
        .args(["--report", rep_s])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let seen = loop {
        let lines = std::fs::read_to_string(&report)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"kind\":\"file\""))
            .count();
        if lines >= 10 || t.elapsed() > Duration::from_secs(120) {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(status.code().is_none(), "the import ended before the kill ({status}); make the archive larger");
    let count =
        |db: &Path| Db::builder(db).read_only(true).open().unwrap().snapshot().collection("images").unwrap().count();
    let after_kill = count(&db);
    assert!(
        after_kill >= seen as u64 && after_kill < n,
        "{after_kill} records after the kill, {seen} reported, {n} files"
    );

    let (code, out, err) = skysift(&[&args[..], &["--json"]].concat());
    assert_eq!(code, 0, "{out}{err}");
    let s: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(s["by_status"]["unchanged"].as_u64().unwrap(), after_kill, "{s}");
    assert_eq!(s["by_status"]["imported"].as_u64().unwrap(), n - after_kill, "{s}");
    assert_eq!(count(&db), n);

    // Heat map of one chip from the command line.
    let png = d.path().join("heat.png");
    let (code, out, err) =
        skysift(&["heatmap", db_s, "0_port_129.jpg", "harbour", "--out", png.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(png.exists() && out.contains("\"tiles\":1"), "{out}");

    // The hostile archive through the command line, in its own process: exit status 4, problems on
    // stderr, peak memory bounded (changing.jpg and shrinking.tif are not changed here: imported).
    let bad = d.path().join("bad");
    let kinds = hostile_archive(&bad);
    let (code, out, err) = skysift(&[
        "import",
        d.path().join("db2").to_str().unwrap(),
        bad.to_str().unwrap(),
        "--device",
        "cpu",
        "--no-progress",
        "--json",
    ]);
    assert_eq!(code, 4, "{out}{err}");
    let s: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let imported = kinds.iter().filter(|k| k.expect.starts_with("imported")).count() as u64 + 2;
    assert_eq!(s["by_status"]["imported"].as_u64(), Some(imported), "{s}");
    assert!(err.contains("zero_byte") && err.contains("too_large"), "{out}{err}");
    let peak = s["peak_rss_mb"].as_f64().unwrap();
    println!("hostile import peak RSS: {peak:.0} MB (bound {HOSTILE_IMPORT_RSS_BOUND_MB} MB)");
    assert!(peak < HOSTILE_IMPORT_RSS_BOUND_MB, "peak RSS {peak} MB");
}
