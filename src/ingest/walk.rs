//! Walking an archive: which entries are imagery, which are metadata, and which cannot be used.
//!
//! Rules:
//! - imagery is recognised by extension (`.jpg`, `.jpeg`, `.png`, `.tif`, `.tiff`, `.gtiff`; any case);
//!   the decoder then trusts the file's signature, not its name; `.json` and `.csv` files are metadata;
//!   everything else, and every hidden entry (name starting with `.`), is counted as ignored;
//! - symbolic links are followed when they stay inside the archive root; links out of it, broken links,
//!   links back to an ancestor directory (loops) and second links to a directory already walked are
//!   reported, never followed;
//! - an unreadable directory or entry is reported and the walk goes on; only an unreadable root fails;
//! - FIFOs, sockets and devices are never opened (opening a FIFO would block the import);
//! - entries are visited in name order, so the same archive always gives the same order;
//! - imagery paths equal under Unicode normalisation (NFC) but not byte for byte are all kept (their
//!   record ids differ), each with a note naming the others ([`Reason::LookAlikePath`]).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::report::{Problem, Reason, display_path};

/// Extensions of imagery files (lower case).
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "tif", "tiff", "gtiff"];

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// JPEG, PNG or TIFF by extension.
    Image,
    /// A `.json` file (STAC item or sidecar).
    Json,
    /// A `.csv` manifest.
    Csv,
}

/// A usable file of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the archive root, `/`-separated, valid UTF-8.
    pub rel: String,
    /// Path to open.
    pub path: PathBuf,
    /// Size in bytes when walked.
    pub size: u64,
    /// Kind.
    pub kind: EntryKind,
    /// Notes for the file's report (a look-alike path).
    pub notes: Vec<String>,
}

/// Everything the walk found.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Imagery, in walk order.
    pub images: Vec<Entry>,
    /// Metadata files.
    pub metadata: Vec<Entry>,
    /// Entries that cannot be used, with their relative display path.
    pub problems: Vec<(String, Problem)>,
    /// Entries that are neither imagery nor metadata.
    pub ignored: u64,
}

fn kind_of(name: &[u8]) -> Option<EntryKind> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    let ext = String::from_utf8_lossy(name.get(dot + 1..)?).to_ascii_lowercase();
    if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        Some(EntryKind::Image)
    } else if ext == "json" {
        Some(EntryKind::Json)
    } else if ext == "csv" {
        Some(EntryKind::Csv)
    } else {
        None
    }
}

struct Walker {
    root: PathBuf,
    exclude: Vec<PathBuf>,
    visited: HashSet<(u64, u64)>,
    inv: Inventory,
}

/// Walks `root` (which must be a readable directory), skipping the directories in `exclude` (for
/// example the database, when it lives inside the archive).
pub fn walk(root: &Path, exclude: &[PathBuf]) -> io::Result<Inventory> {
    let root = fs::canonicalize(root)?;
    let meta = fs::metadata(&root)?;
    if !meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a directory", root.display())));
    }
    let exclude = exclude.iter().filter_map(|p| fs::canonicalize(p).ok()).collect();
    let mut w = Walker { root: root.clone(), exclude, visited: HashSet::new(), inv: Inventory::default() };
    w.visited.insert((meta.dev(), meta.ino()));
    // The root itself must be listable; below it, failures are reported.
    fs::read_dir(&root)?;
    w.dir(&root, "", &mut vec![(meta.dev(), meta.ino())]);
    note_look_alikes(&mut w.inv.images);
    Ok(w.inv)
}

/// Notes on every image whose path equals another's under NFC (`café` written with `é` or with
/// `e` and a combining accent).
fn note_look_alikes(images: &mut [Entry]) {
    use unicode_normalization::{UnicodeNormalization, is_nfc};
    let mut by_nfc: std::collections::HashMap<String, Vec<usize>> = std::collections::HashMap::new();
    if images.iter().all(|e| is_nfc(&e.rel)) {
        return;
    }
    for (i, e) in images.iter().enumerate() {
        by_nfc.entry(e.rel.nfc().collect()).or_default().push(i);
    }
    for group in by_nfc.values().filter(|g| g.len() > 1) {
        let names: Vec<String> = group.iter().filter_map(|&i| images.get(i).map(|e| format!("{:?}", e.rel))).collect();
        for &i in group {
            if let Some(e) = images.get_mut(i) {
                let others: Vec<&str> =
                    names.iter().filter(|n| **n != format!("{:?}", e.rel)).map(String::as_str).collect();
                e.notes.push(format!(
                    "{}: the same name as {} under Unicode normalisation (NFC); both are imported, apart",
                    Reason::LookAlikePath.name(),
                    others.join(", ")
                ));
            }
        }
    }
}

impl Walker {
    fn problem(&mut self, rel: &Path, reason: Reason, detail: impl Into<String>) {
        self.inv.problems.push((display_path(rel.as_os_str()), Problem::new(reason, detail)));
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one directory level: listing, links, loops, ignores and errors in walk order"
    )]
    fn dir(&mut self, dir: &Path, rel: &str, ancestors: &mut Vec<(u64, u64)>) {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                self.problem(Path::new(rel), Reason::Unreadable, format!("cannot list directory: {e}"));
                return;
            }
        };
        let mut entries = Vec::new();
        for e in rd {
            match e {
                Ok(e) => entries.push(e),
                Err(e) => self.problem(Path::new(rel), Reason::Unreadable, format!("cannot read an entry: {e}")),
            }
        }
        entries.sort_by_key(fs::DirEntry::file_name);
        for e in entries {
            let name = e.file_name();
            let rel_path = Path::new(rel).join(&name);
            let bytes = name.as_encoded_bytes();
            if bytes.first() == Some(&b'.') {
                self.inv.ignored += 1;
                continue;
            }
            let path = e.path();
            let Ok(ft) = e.file_type() else {
                self.problem(&rel_path, Reason::Unreadable, "cannot read the entry's type");
                continue;
            };
            let mut meta = if ft.is_symlink() {
                match fs::metadata(&path) {
                    Ok(m) => m,
                    Err(err) if err.raw_os_error() == Some(40) => {
                        self.problem(&rel_path, Reason::SymlinkLoop, format!("link cannot be resolved: {err}"));
                        continue;
                    }
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        self.problem(&rel_path, Reason::BrokenLink, "the link's target does not exist");
                        continue;
                    }
                    Err(err) => {
                        self.problem(&rel_path, Reason::Unreadable, format!("cannot follow link: {err}"));
                        continue;
                    }
                }
            } else {
                match e.metadata() {
                    Ok(m) => m,
                    Err(err) => {
                        self.problem(&rel_path, Reason::Unreadable, format!("cannot stat: {err}"));
                        continue;
                    }
                }
            };
            if ft.is_symlink() {
                match fs::canonicalize(&path) {
                    Ok(target) if target.starts_with(&self.root) => {
                        if let Ok(m) = fs::metadata(&target) {
                            meta = m;
                        }
                    }
                    Ok(target) => {
                        self.problem(
                            &rel_path,
                            Reason::OutsideArchive,
                            format!("link to {} leaves the archive root", target.display()),
                        );
                        continue;
                    }
                    Err(err) => {
                        self.problem(&rel_path, Reason::Unreadable, format!("cannot resolve link: {err}"));
                        continue;
                    }
                }
            }
            if meta.is_dir() {
                if self.exclude.iter().any(|x| fs::canonicalize(&path).is_ok_and(|c| c == *x)) {
                    continue;
                }
                let key = (meta.dev(), meta.ino());
                if ancestors.contains(&key) {
                    self.problem(&rel_path, Reason::SymlinkLoop, "directory link back to one of its ancestors");
                    continue;
                }
                if !self.visited.insert(key) {
                    self.problem(&rel_path, Reason::DuplicateLink, "directory already walked through another path");
                    continue;
                }
                let Some(sub) = rel_path.to_str() else {
                    // Its files would have non-UTF-8 paths: list the imagery among them as such.
                    self.non_utf8_dir(&path, &rel_path);
                    continue;
                };
                let sub = sub.to_owned();
                ancestors.push(key);
                self.dir(&path, &sub, ancestors);
                ancestors.pop();
                continue;
            }
            let Some(kind) = kind_of(bytes) else {
                self.inv.ignored += 1;
                continue;
            };
            if !meta.is_file() {
                if kind == EntryKind::Image {
                    self.problem(&rel_path, Reason::NotRegularFile, "not a regular file (FIFO, socket or device)");
                } else {
                    self.inv.ignored += 1;
                }
                continue;
            }
            let Some(rel_str) = rel_path.to_str() else {
                if kind == EntryKind::Image {
                    self.problem(&rel_path, Reason::NonUtf8Name, "the path is not valid UTF-8; rename the file");
                } else {
                    self.inv.ignored += 1;
                }
                continue;
            };
            let entry = Entry { rel: rel_str.to_owned(), path, size: meta.len(), kind, notes: Vec::new() };
            match kind {
                EntryKind::Image => self.inv.images.push(entry),
                EntryKind::Json | EntryKind::Csv => self.inv.metadata.push(entry),
            }
        }
    }

    /// Reports the imagery below a directory whose name is not UTF-8 (one level deep is enough to
    /// name the problem; deeper files share the same cause).
    fn non_utf8_dir(&mut self, dir: &Path, rel: &Path) {
        let mut any = false;
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                if kind_of(e.file_name().as_encoded_bytes()) == Some(EntryKind::Image) {
                    any = true;
                    self.problem(
                        &rel.join(e.file_name()),
                        Reason::NonUtf8Name,
                        "a directory in the path is not valid UTF-8; rename it",
                    );
                }
            }
        }
        if !any {
            self.problem(rel, Reason::NonUtf8Name, "directory name is not valid UTF-8; its contents were not walked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_extension() {
        assert_eq!(kind_of(b"a.TIF"), Some(EntryKind::Image));
        assert_eq!(kind_of(b"a.jpeg"), Some(EntryKind::Image));
        assert_eq!(kind_of(b"a.json"), Some(EntryKind::Json));
        assert_eq!(kind_of(b"README"), None);
        assert_eq!(kind_of(b"x.md"), None);
    }

    #[test]
    fn loops_links_and_order() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("b/sub")).unwrap();
        fs::write(r.join("b/sub/z.png"), b"x").unwrap();
        fs::write(r.join("a.jpg"), b"x").unwrap();
        fs::write(r.join("notes.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(r.join("b"), r.join("b/sub/loop")).unwrap();
        std::os::unix::fs::symlink(r.join("missing.tif"), r.join("broken.tif")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", r.join("out.tif")).unwrap();
        let inv = walk(r, &[]).unwrap();
        let rels: Vec<&str> = inv.images.iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(rels, ["a.jpg", "b/sub/z.png"]);
        let reasons: Vec<Reason> = inv.problems.iter().map(|p| p.1.reason).collect();
        assert!(reasons.contains(&Reason::SymlinkLoop), "{:?}", inv.problems);
        assert!(reasons.contains(&Reason::BrokenLink), "{:?}", inv.problems);
        assert!(reasons.contains(&Reason::OutsideArchive), "{:?}", inv.problems);
        assert_eq!(inv.ignored, 1);
    }
}
