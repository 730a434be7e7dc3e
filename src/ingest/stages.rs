//! The stages of one file's import that need no database, each a function of its inputs (the
//! import composes them in `import.rs`, with the ledger decision, the level read, the file's fields
//! and the tiles):
//!
//! 1. [`read_and_hash`]: stat, signature, the content's BLAKE3 hash (JPEG and PNG keep the very
//!    bytes hashed, to decode them);
//! 2. [`open_raster`]: the decoder for the format, and the georeference read from the file;
//! 3. [`choose_bands`]: the bands drawn as R, G, B (`--bands`, or by sensor and photometric);
//! 4. [`LevelScale`]: windows of the level read (an overview, or level 0) in scene pixels;
//! 5. [`changed_since`]: whether the file changed while it was read.
//!
//! Each refuses a file with a [`Problem`] whose reason names what is wrong; none panics on any input.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::bands::default_bands;
use super::decode::{Format, Limits, Raster, sniff};
use super::geo::GeoRef;
use super::report::{Problem, Reason};

/// A file read once: what it was when hashed.
pub struct ReadFile {
    /// Its metadata before reading (size and modification time are checked again at the end).
    pub stat: fs::Metadata,
    /// Size in bytes.
    pub size: u64,
    /// Format, by signature.
    pub format: Format,
    /// The content hash as the ledger records it: [`HASH_PREFIX`] and BLAKE3's 64 lower-case hex
    /// digits (a file the ledger knows by its SHA-256, from an import before BLAKE3, keeps that
    /// hash: see [`legacy_sha256`]).
    pub hash: String,
    /// The whole content, for formats decoded in memory (JPEG, PNG).
    pub bytes: Option<Vec<u8>>,
}

/// The prefix of the ledger's content hashes (BLAKE3). A hash without it is the SHA-256 of
/// imports made before (64 hex digits), still honoured: see [`legacy_sha256`].
pub const HASH_PREFIX: &str = "blake3:";

/// Bytes read and hashed at a time: BLAKE3 hashes each piece on every core.
const HASH_PIECE: usize = 16 << 20;

/// Whether `hash` is a ledger hash of an import before BLAKE3 (SHA-256: 64 hex digits, no prefix).
#[must_use]
pub fn is_legacy_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The SHA-256 of a file's content, lower-case hex: what imports before BLAKE3 recorded, computed
/// only for a file whose ledger entry carries such a hash (so that an archive imported then is
/// not encoded again).
///
/// # Errors
/// A [`Problem`] when the file cannot be read.
pub fn legacy_sha256(path: &Path) -> Result<String, Problem> {
    let mut f = File::open(path).map_err(|e| Problem::new(Reason::Unreadable, format!("cannot open: {e}")))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Problem::new(Reason::Unreadable, format!("cannot read: {e}")))?;
    Ok(format!("{:x}", h.finalize()))
}

/// Feeds `bytes` to `h`, on every core when the piece is large enough to gain from it.
fn hash_piece(h: &mut blake3::Hasher, bytes: &[u8]) {
    if bytes.len() >= 1 << 20 {
        h.update_rayon(bytes);
    } else {
        h.update(bytes);
    }
}

/// Signatures of formats that are recognised but not read, with what to do about them.
const KNOWN_UNREAD: [(&[u8], &str); 4] =
    [(b"GIF8", "GIF"), (b"BM", "BMP"), (b"RIFF", "WebP"), (b"\0\0\0\x0cjP", "JPEG 2000")];

/// Stage 1: stats `path`, sniffs its format and hashes its content. A TIFF is streamed through the
/// hash (it is read window by window later); a JPEG or PNG over `limits.max_memory_file_bytes` is
/// refused, others are kept in memory.
///
/// # Errors
/// A [`Problem`]: not a regular file, empty, unreadable, a format that is not read, too large, or
/// a size that changed while reading.
pub fn read_and_hash(path: &Path, limits: &Limits) -> Result<ReadFile, Problem> {
    read(path, limits, true)
}

/// Stage 1 without the hash of a TIFF, for a file the ledger does not know (nothing to compare
/// the hash with before its records are written): `hash` is empty, for [`hash_file`] to fill
/// while the raster is decoded. A JPEG or PNG is read and hashed as by [`read_and_hash`].
///
/// # Errors
/// As [`read_and_hash`].
pub fn read_unhashed(path: &Path, limits: &Limits) -> Result<ReadFile, Problem> {
    read(path, limits, false)
}

/// The ledger hash of a whole file ([`HASH_PREFIX`] and BLAKE3's hex digits), read in pieces
/// of `HASH_PIECE` bytes; `size` is the size it had when stat'ed.
///
/// # Errors
/// A [`Problem`] when the file cannot be read or its size is not `size` any more.
pub fn hash_file(path: &Path, size: u64) -> Result<String, Problem> {
    let mut f = File::open(path).map_err(|e| Problem::new(Reason::Unreadable, format!("cannot open: {e}")))?;
    let mut hasher = blake3::Hasher::new();
    check_size(hash_stream(&mut f, &mut hasher, size, 0), size)?;
    Ok(format!("{HASH_PREFIX}{}", hasher.finalize().to_hex()))
}

/// Feeds the rest of `f` to `h`; returns the bytes read, counting `before` read already.
fn hash_stream(f: &mut File, h: &mut blake3::Hasher, size: u64, before: u64) -> std::io::Result<u64> {
    let mut buf = Vec::with_capacity(HASH_PIECE.min(usize::try_from(size).unwrap_or(HASH_PIECE)));
    let mut n = before;
    loop {
        buf.clear();
        match f.take(HASH_PIECE as u64).read_to_end(&mut buf)? {
            0 => return Ok(n),
            k => {
                hash_piece(h, &buf);
                n += k as u64;
            }
        }
    }
}

fn check_size(read: std::io::Result<u64>, size: u64) -> Result<(), Problem> {
    match read {
        Ok(n) if n == size => Ok(()),
        Ok(n) => Err(Problem::new(Reason::ChangedDuringImport, format!("read {n} bytes, the file had {size}"))),
        Err(e) => Err(Problem::new(Reason::Unreadable, format!("cannot read: {e}"))),
    }
}

fn read(path: &Path, limits: &Limits, hash_tiff: bool) -> Result<ReadFile, Problem> {
    let stat = fs::metadata(path).map_err(|e| Problem::new(Reason::Unreadable, format!("cannot stat: {e}")))?;
    if !stat.is_file() {
        return Err(Problem::new(Reason::NotRegularFile, "not a regular file"));
    }
    let size = stat.len();
    if size == 0 {
        return Err(Problem::new(Reason::ZeroByte, "the file is empty"));
    }
    let mut f = File::open(path).map_err(|e| Problem::new(Reason::Unreadable, format!("cannot open: {e}")))?;
    let mut head = Vec::with_capacity(16);
    (&mut f)
        .take(16)
        .read_to_end(&mut head)
        .map_err(|e| Problem::new(Reason::Unreadable, format!("cannot read: {e}")))?;
    let Some(format) = sniff(&head) else {
        return Err(match KNOWN_UNREAD.iter().find(|(sig, _)| head.starts_with(sig)) {
            Some((_, name)) => {
                Problem::new(Reason::UnsupportedFormat, format!("{name} is not read; convert to PNG or TIFF"))
            }
            None => Problem::new(Reason::Corrupt, "not a JPEG, PNG or TIFF signature"),
        });
    };
    let mut hasher = blake3::Hasher::new();
    hasher.update(&head);
    let mut bytes = None;
    if format == Format::Tiff {
        if !hash_tiff {
            return Ok(ReadFile { stat, size, format, hash: String::new(), bytes });
        }
        check_size(hash_stream(&mut f, &mut hasher, size, head.len() as u64), size)?;
    } else {
        if size > limits.max_memory_file_bytes {
            return Err(Problem::new(Reason::TooLarge, format!("{size} bytes, over the limit for JPEG/PNG")));
        }
        let mut b = head.clone();
        let r = f.read_to_end(&mut b).map(|_| b.len() as u64);
        hash_piece(&mut hasher, b.get(head.len()..).unwrap_or_default());
        bytes = Some(b);
        check_size(r, size)?;
    }
    Ok(ReadFile { stat, size, format, hash: format!("{HASH_PREFIX}{}", hasher.finalize().to_hex()), bytes })
}

/// A raster opened, with what its file says about where it is.
pub struct Opened {
    /// The decoder.
    pub raster: Raster,
    /// Its georeference, when the file has one in a CRS that converts to WGS84.
    pub georef: Option<GeoRef>,
    /// The name of the file's CRS (also when it does not convert).
    pub crs: Option<String>,
    /// `jpeg`, `png`, `tiff` or `geotiff`.
    pub format_name: &'static str,
    /// Notes for the report: a CRS that does not convert, a georeference that does not read.
    pub notes: Vec<String>,
}

/// Stage 2: opens the raster of `read` (the bytes of a JPEG/PNG are consumed) and reads its
/// georeference.
///
/// # Errors
/// A [`Problem`] from the decoder (corrupt, over a limit, an unsupported layout).
pub fn open_raster(path: &Path, read: &mut ReadFile, limits: &Limits) -> Result<Opened, Problem> {
    let raster = Raster::open(path, read.bytes.as_deref(), read.format, read.size, limits)?;
    read.bytes = None;
    let mut notes = Vec::new();
    let mut crs = None;
    let georef = match raster.geo_tags().map(GeoRef::from_tags) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(g))) => {
            crs = Some(g.crs.name());
            if !g.crs.supported() {
                notes.push(format!(
                    "{}: {} is not converted to WGS84; records have no footprint",
                    Reason::CrsUnsupported.name(),
                    g.crs.name()
                ));
            }
            Some(g).filter(|g| g.crs.supported())
        }
        Some(Err(why)) => {
            notes.push(format!("{}: {why}", Reason::BadGeoreference.name()));
            None
        }
    };
    let format_name = match read.format {
        Format::Jpeg => "jpeg",
        Format::Png => "png",
        Format::Tiff if raster.geo_tags().is_some() => "geotiff",
        Format::Tiff => "tiff",
    };
    Ok(Opened { raster, georef, crs, format_name, notes })
}

/// Stage 3: the bands drawn as R, G, B: `requested` (`--bands`, 0-based) when the file has them,
/// or the default for its sample count, photometric, `platform` and band `names` (a note says
/// why, for a multispectral file).
///
/// # Errors
/// [`Reason::BandsOutOfRange`] when `requested` names a band the file does not have.
pub fn choose_bands(
    requested: Option<[usize; 3]>,
    samples: usize,
    rgb: bool,
    platform: Option<&str>,
    names: &[String],
    notes: &mut Vec<String>,
) -> Result<[usize; 3], Problem> {
    if let Some(b) = requested {
        if let Some(bad) = b.iter().find(|&&x| x >= samples) {
            return Err(Problem::new(
                Reason::BandsOutOfRange,
                format!("--bands names band {} but the file has {samples}", bad + 1),
            ));
        }
        return Ok(b);
    }
    let (b, why) = default_bands(samples, rgb, platform, names);
    if samples > 3 && !rgb {
        notes.push(format!("bands {}: {why}", bands_text(b)));
    }
    Ok(b)
}

/// Bands as the `bands` field and the recipe write them: 1-based, comma separated.
#[must_use]
pub fn bands_text(b: [usize; 3]) -> String {
    b.iter().map(|x| (x + 1).to_string()).collect::<Vec<_>>().join(",")
}

/// Stage 4: from windows of the level read (`level` pixels) to windows of the scene (level 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelScale {
    /// Scene width and height (level 0).
    pub scene: (u32, u32),
    /// Scene pixels per level pixel, across and down.
    pub scale: (f64, f64),
}

impl LevelScale {
    /// The scale of a `level` (width, height) read from a `scene` (width, height).
    #[must_use]
    pub fn new(scene: (u32, u32), level: (u32, u32)) -> LevelScale {
        let ratio = |s: u32, l: u32| f64::from(s) / f64::from(l.max(1));
        LevelScale { scene, scale: (ratio(scene.0, level.0), ratio(scene.1, level.1)) }
    }

    /// `win` (x, y, width, height in level pixels) in scene pixels: inside the scene, at least one
    /// pixel wide and high.
    #[must_use]
    pub fn to_scene(&self, win: [u32; 4]) -> [u32; 4] {
        let ((w, h), (sx, sy)) = (self.scene, self.scale);
        let x0 = (f64::from(win[0]) * sx).round() as u32;
        let y0 = (f64::from(win[1]) * sy).round() as u32;
        let x1 = ((f64::from(win[0] + win[2]) * sx).round() as u32).min(w);
        let y1 = ((f64::from(win[1] + win[3]) * sy).round() as u32).min(h);
        [
            x0.min(w.saturating_sub(1)),
            y0.min(h.saturating_sub(1)),
            x1.saturating_sub(x0).max(1),
            y1.saturating_sub(y0).max(1),
        ]
    }
}

/// Stage 5: whether the file at `path` is no longer what `read` hashed (size or modification time
/// changed, or it is gone).
#[must_use]
pub fn changed_since(path: &Path, read: &ReadFile) -> bool {
    match fs::metadata(path) {
        Ok(m) => m.len() != read.size || m.modified().ok() != read.stat.modified().ok(),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn read_and_hash_refuses_with_the_reason_and_hashes_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits::default();
        let reason = |p: &Path| read_and_hash(p, &limits).err().map(|e| e.reason);
        assert_eq!(reason(&write(dir.path(), "empty.png", b"")), Some(Reason::ZeroByte));
        assert_eq!(reason(dir.path()), Some(Reason::NotRegularFile));
        assert_eq!(reason(&dir.path().join("missing.png")), Some(Reason::Unreadable));
        assert_eq!(reason(&write(dir.path(), "a.gif", b"GIF89a......")), Some(Reason::UnsupportedFormat));
        assert_eq!(reason(&write(dir.path(), "a.png", b"not an image")), Some(Reason::Corrupt));

        let mut png = Vec::new();
        image::RgbImage::new(3, 2).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let p = write(dir.path(), "b.png", &png);
        let r = read_and_hash(&p, &limits).unwrap();
        assert_eq!((r.format, r.size), (Format::Png, png.len() as u64));
        assert_eq!(r.hash, format!("blake3:{}", blake3::hash(&png).to_hex()));
        assert!(!is_legacy_hash(&r.hash));
        let legacy = legacy_sha256(&p).unwrap();
        assert_eq!(legacy, format!("{:x}", Sha256::digest(&png)));
        assert!(is_legacy_hash(&legacy));
        assert_eq!(r.bytes.as_deref(), Some(&png[..]));
        assert!(!changed_since(&p, &r));
        fs::write(&p, b"\x89PNG\r\n\x1a\n shorter").unwrap();
        assert!(changed_since(&p, &r));

        let small = Limits { max_memory_file_bytes: 10, ..Limits::default() };
        let p = write(dir.path(), "c.png", &png);
        assert_eq!(read_and_hash(&p, &small).err().map(|e| e.reason), Some(Reason::TooLarge));
    }

    #[test]
    fn bands_are_checked_against_the_file_and_defaults_say_why() {
        let mut notes = Vec::new();
        let e = choose_bands(Some([0, 1, 5]), 4, false, None, &[], &mut notes).unwrap_err();
        assert_eq!(e.reason, Reason::BandsOutOfRange);
        assert!(e.detail.contains("band 6") && e.detail.contains("has 4"), "{}", e.detail);
        assert_eq!(choose_bands(Some([2, 1, 0]), 3, true, None, &[], &mut notes).unwrap(), [2, 1, 0]);
        assert!(notes.is_empty());
        assert_eq!(choose_bands(None, 3, true, None, &[], &mut notes).unwrap(), [0, 1, 2]);
        assert!(notes.is_empty(), "RGB needs no note");
        choose_bands(None, 13, false, None, &[], &mut notes).unwrap();
        assert_eq!(notes.len(), 1, "a multispectral default is explained");
        assert_eq!(bands_text([3, 2, 1]), "4,3,2");
    }

    #[test]
    fn level_windows_map_into_the_scene() {
        let same = LevelScale::new((100, 80), (100, 80));
        assert_eq!(same.to_scene([10, 20, 30, 40]), [10, 20, 30, 40]);
        let half = LevelScale::new((100, 80), (50, 40));
        assert_eq!(half.to_scene([10, 10, 20, 20]), [20, 20, 40, 40]);
        // A window past the level's edge is clipped to the scene, and never empty.
        assert_eq!(half.to_scene([45, 35, 10, 10]), [90, 70, 10, 10]);
        assert_eq!(half.to_scene([60, 50, 5, 5]), [99, 79, 1, 1]);
    }
}
