//! `verify`: reads every byte of a database and checks every checksum.
//!
//! Unlike opening, which checks only the small sections, this checksums the bulk sections
//! too, decodes every value, and replays every WAL. It names each damaged file and region.

use std::path::{Path, PathBuf};

use crate::io::Vfs;
use crate::manifest::{self, Manifest};
use crate::segment::Segment;
use crate::store::{segment_path, wal_path};
use crate::wal;

/// What `verify` found in one file.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// "manifest", "segment" or "wal".
    pub kind: &'static str,
    /// Bytes read.
    pub bytes: u64,
    /// Damage found (empty when intact).
    pub problems: Vec<String>,
    /// Facts that are not damage (a dropped torn WAL tail, say).
    pub notes: Vec<String>,
}

/// The result of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// One entry per file checked.
    pub files: Vec<FileReport>,
}

impl VerifyReport {
    /// True when no file is damaged.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.files.iter().all(|f| f.problems.is_empty())
    }
}

/// Checks the database in `dir`.
#[must_use]
pub fn verify(vfs: &dyn Vfs, dir: &Path) -> VerifyReport {
    let mut report = VerifyReport::default();
    let mpath = dir.join(manifest::FILE);
    let bytes = match vfs.read(&mpath) {
        Ok(b) => b,
        Err(e) => {
            report.files.push(FileReport {
                path: mpath,
                kind: "manifest",
                bytes: 0,
                problems: vec![e.to_string()],
                notes: vec![],
            });
            return report;
        }
    };
    let manifest = match Manifest::decode(&mpath, &bytes) {
        Ok(m) => {
            report.files.push(FileReport {
                path: mpath,
                kind: "manifest",
                bytes: bytes.len() as u64,
                problems: vec![],
                notes: vec![],
            });
            m
        }
        Err(e) => {
            report.files.push(FileReport {
                path: mpath,
                kind: "manifest",
                bytes: bytes.len() as u64,
                problems: vec![e.to_string()],
                notes: vec![],
            });
            return report;
        }
    };
    for c in &manifest.collections {
        for s in &c.segments {
            let path = segment_path(dir, c.id, s.id);
            let mut fr = FileReport { path: path.clone(), kind: "segment", bytes: 0, problems: vec![], notes: vec![] };
            match vfs.map(&path).and_then(|b| {
                fr.bytes = b.len() as u64;
                Segment::open(&path, b)
            }) {
                Ok(mut seg) => {
                    if let Err(e) = seg.bind_schema(&c.schema) {
                        fr.problems.push(e.to_string());
                    }
                    if seg.rows() as u64 != s.rows || seg.file_len() as u64 != s.file_len {
                        fr.problems.push("rows or length differ from the manifest entry".into());
                    }
                    fr.problems.extend(
                        seg.verify().into_iter().map(|d| format!("{} at offset {}: {}", d.region, d.offset, d.reason)),
                    );
                }
                Err(e) => fr.problems.push(e.to_string()),
            }
            report.files.push(fr);
        }
        let path = wal_path(dir, c.id, c.wal_id);
        let mut fr = FileReport { path: path.clone(), kind: "wal", bytes: 0, problems: vec![], notes: vec![] };
        match vfs.read(&path) {
            Ok(b) => {
                fr.bytes = b.len() as u64;
                match wal::replay(&path, &b, &c.schema) {
                    Ok(r) => {
                        fr.notes.push(format!("{} committed batches", r.batches.len()));
                        if r.torn {
                            fr.notes.push(format!(
                                "torn tail of {} bytes after offset {} (an interrupted append; dropped on open)",
                                b.len() as u64 - r.valid_len,
                                r.valid_len
                            ));
                        }
                    }
                    Err(e) => fr.problems.push(e.to_string()),
                }
            }
            Err(e) => fr.problems.push(e.to_string()),
        }
        report.files.push(fr);
    }
    report
}
