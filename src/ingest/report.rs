//! The import report: one JSON line per file (and per archive entry the walk could not use), and a
//! summary counting files by status and reason.
//!
//! Invariants:
//! - every file the walk found as imagery gets exactly one [`FileReport`] per run, whatever happened
//!   to it;
//! - a report line saying `imported` is written only after the commit that made its records durable;
//! - [`Summary::clean`] is true exactly when nothing was skipped, failed or interrupted.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;

use serde::Serialize;

/// Why a file or archive entry was not (fully) imported, or what was noted about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The file is empty.
    ZeroByte,
    /// The file ends before its declared data does.
    Truncated,
    /// The bytes are not a valid JPEG, PNG or TIFF.
    Corrupt,
    /// Declared dimensions over the limits (a decompression bomb or an image too large to decode).
    TooLarge,
    /// A format skysift does not read (only the signature was recognised, or not even that).
    UnsupportedFormat,
    /// Samples skysift cannot turn into RGB (palette, CMYK, 1-bit, mixed depths, complex numbers...).
    UnsupportedBandLayout,
    /// `--bands` names a band the file does not have.
    BandsOutOfRange,
    /// The path is not valid UTF-8 (rename the file to import it).
    NonUtf8Name,
    /// Size, modification time or content changed while the file was being imported.
    ChangedDuringImport,
    /// The entry could not be opened or listed (permissions, I/O error).
    Unreadable,
    /// A FIFO, socket or device.
    NotRegularFile,
    /// A directory link back to one of its own ancestors.
    SymlinkLoop,
    /// A directory reached a second time through another link (its files are imported once).
    DuplicateLink,
    /// A symbolic link that points nowhere.
    BrokenLink,
    /// A symbolic link or STAC asset pointing outside the archive root.
    OutsideArchive,
    /// A STAC asset with a remote URL (only local files are imported).
    RemoteHref,
    /// A metadata file that could not be read or parsed.
    BadMetadata,
    /// Another path hashes to the same record id (vanishingly rare; rename one of them).
    IdCollision,
    /// The encoder failed on this file's tiles.
    EncodeFailed,
    /// The decoder panicked (a bug in a decoder, reported instead of aborting the import).
    DecoderPanic,
    /// The import was stopped (Ctrl-C) before this file was complete; a rerun continues it.
    Interrupted,
    /// The file was imported before and has not changed.
    Unchanged,
    /// Imported; the CRS is not one skysift converts, so records have no footprint.
    CrsUnsupported,
    /// Imported; the `GeoTIFF` tags could not be used, so records have no footprint.
    BadGeoreference,
    /// Imported; `--gsd` was asked for but the file's ground resolution is unknown.
    GsdUnknown,
    /// Imported; another path of the archive is the same under Unicode normalisation (NFC): the two
    /// look identical, stay apart here (their bytes differ) and collide on file systems that
    /// normalise names.
    LookAlikePath,
    /// Imported at the source resolution; `--gsd` is so much finer than the source pixels that
    /// one tile would cover less than one of them.
    GsdNotApplied,
}

impl Reason {
    /// The snake-case name used in reports.
    #[must_use]
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

/// A reason and a human explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Machine-readable reason.
    pub reason: Reason,
    /// What exactly was found.
    pub detail: String,
}

impl Problem {
    /// A problem.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Problem { reason, detail: detail.into() }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.name(), self.detail)
    }
}

/// What happened to one file or entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Records written (new or replacing an older version of the file).
    Imported,
    /// Already imported, same size and content: nothing written.
    Unchanged,
    /// Not imported because of the input (bad file, bad entry).
    Skipped,
    /// Not imported because something on skysift's side failed (encoder, decoder bug).
    Failed,
    /// Stopped by the user before the file was complete.
    Interrupted,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    /// Path relative to the archive root (invalid UTF-8 bytes written as `\xNN`).
    pub path: String,
    /// Outcome.
    pub status: Status,
    /// Why, when not simply imported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Details of the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `jpeg`, `png`, `tiff` or `geotiff`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
    /// File size in bytes.
    pub bytes: u64,
    /// Tiles of the scene (records: tiles with enough valid pixels).
    pub tiles: u32,
    /// Tiles not encoded: their share of valid pixels is under `--min-valid`.
    #[serde(skip_serializing_if = "is_zero")]
    pub nodata_tiles: u32,
    /// The overview level read (0: full resolution), for files with overviews.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
    /// Tiles encoded and written in this run.
    pub written: u32,
    /// Tiles already present from an interrupted run (not encoded again).
    pub reused: u32,
    /// The CRS, for georeferenced files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crs: Option<String>,
    /// Notes that did not stop the import (CRS unsupported, band defaults...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl FileReport {
    /// A report for `path` with everything else empty.
    #[must_use]
    pub fn new(path: String, status: Status) -> Self {
        FileReport {
            path,
            status,
            reason: None,
            detail: None,
            format: None,
            bytes: 0,
            tiles: 0,
            nodata_tiles: 0,
            level: None,
            written: 0,
            reused: 0,
            crs: None,
            notes: Vec::new(),
        }
    }

    /// A report of a problem.
    #[must_use]
    pub fn problem(path: String, status: Status, p: Problem) -> Self {
        FileReport { reason: Some(p.reason), detail: Some(p.detail), ..FileReport::new(path, status) }
    }
}

/// Counts of an import.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Collection written.
    pub collection: String,
    /// Imagery files found by the walk.
    pub files: u64,
    /// Files by status.
    pub by_status: BTreeMap<Status, u64>,
    /// Non-imported entries by reason (skipped, failed, interrupted), plus notes on imported files.
    pub by_reason: BTreeMap<String, u64>,
    /// Entries that are neither imagery nor metadata (ignored without a report line).
    pub ignored: u64,
    /// Tiles encoded and written in this run.
    pub tiles_written: u64,
    /// Tiles already present (unchanged files and resumed scenes).
    pub tiles_reused: u64,
    /// Tiles not encoded because their share of valid pixels is under `--min-valid`.
    pub tiles_nodata: u64,
    /// Records deleted because their file shrank to fewer tiles or changed.
    pub records_deleted: u64,
    /// Metadata fields and their types, as used.
    pub fields: Vec<(String, String)>,
    /// Notes about metadata (ignored properties, type conflicts, fields missing from the collection).
    pub metadata_notes: Vec<String>,
    /// Whether the import was stopped before the end.
    pub interrupted: bool,
    /// Files not reached because the import was stopped (no report line; a rerun imports them).
    pub not_started: u64,
    /// Seconds from start to the last commit.
    pub seconds: f64,
    /// Seconds the encoder spent running batches.
    pub encoder_seconds: f64,
    /// Seconds the encoder stage existed (first tile to last batch).
    pub encoder_window_seconds: f64,
    /// Peak bytes held by any raster window reader (decoded chunks and scene bands).
    pub peak_reader_bytes: u64,
}

impl Summary {
    /// Files with the status.
    #[must_use]
    pub fn count(&self, s: Status) -> u64 {
        self.by_status.get(&s).copied().unwrap_or(0)
    }

    /// Entries with the reason.
    #[must_use]
    pub fn reason(&self, r: Reason) -> u64 {
        self.by_reason.get(&r.name()).copied().unwrap_or(0)
    }

    /// True when nothing was skipped, failed or interrupted.
    #[must_use]
    pub fn clean(&self) -> bool {
        self.count(Status::Skipped) + self.count(Status::Failed) + self.count(Status::Interrupted) == 0
            && !self.interrupted
            && self.not_started == 0
    }

    /// Fraction of the encoder stage spent running batches (0 when nothing was encoded).
    #[must_use]
    pub fn encoder_busy(&self) -> f64 {
        if self.encoder_window_seconds > 0.0 { self.encoder_seconds / self.encoder_window_seconds } else { 0.0 }
    }

    /// Counts one report line.
    pub fn add(&mut self, r: &FileReport) {
        *self.by_status.entry(r.status).or_default() += 1;
        if let Some(reason) = r.reason
            && reason != Reason::Unchanged
        {
            *self.by_reason.entry(reason.name()).or_default() += 1;
        }
        self.tiles_written += u64::from(r.written);
        self.tiles_reused += u64::from(r.reused);
        self.tiles_nodata += u64::from(r.nodata_tiles);
    }
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's skip_serializing_if passes a reference")]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Sees every report line (the CLI prints problems as they come).
pub type Observer = Box<dyn FnMut(&serde_json::Value) + Send>;

/// Writes report lines (JSON, one object per line) to any sink.
pub struct ReportWriter {
    out: Option<Box<dyn Write + Send>>,
    observer: Option<Observer>,
}

impl std::fmt::Debug for ReportWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportWriter").field("enabled", &self.out.is_some()).finish_non_exhaustive()
    }
}

impl ReportWriter {
    /// A writer to `out`.
    #[must_use]
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        ReportWriter { out: Some(out), observer: None }
    }

    /// A writer that drops everything.
    #[must_use]
    pub fn none() -> Self {
        ReportWriter { out: None, observer: None }
    }

    /// Also hands every line, as JSON, to `f`.
    #[must_use]
    pub fn observe(mut self, f: Observer) -> Self {
        self.observer = Some(f);
        self
    }

    /// Writes one line; the report is best effort, so an I/O error disables it rather than failing
    /// the import.
    pub fn line<T: Serialize>(&mut self, kind: &str, value: &T) {
        if self.out.is_none() && self.observer.is_none() {
            return;
        }
        let mut v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("kind".into(), serde_json::Value::String(kind.into()));
        }
        if let Some(f) = self.observer.as_mut() {
            f(&v);
        }
        let Some(out) = self.out.as_mut() else { return };
        let ok = serde_json::to_writer(&mut *out, &v).is_ok() && out.write_all(b"\n").is_ok() && out.flush().is_ok();
        if !ok {
            self.out = None;
        }
    }
}

/// A path for people and JSON: UTF-8 as is, other bytes as `\xNN`.
#[must_use]
pub fn display_path(p: &OsStr) -> String {
    use std::fmt::Write as _;
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in p.as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(Reason::ZeroByte.name(), "zero_byte");
        assert_eq!(display_path(OsStr::from_bytes(b"a/\xffb.tif")), "a/\\xFFb.tif");
        let mut s = Summary::default();
        s.add(&FileReport::problem("x".into(), Status::Skipped, Problem::new(Reason::Truncated, "short")));
        assert!(!s.clean());
        assert_eq!(s.reason(Reason::Truncated), 1);
    }
}
