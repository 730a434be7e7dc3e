//! Optimised models kept across processes, so that a session costs milliseconds to create instead
//! of a parse and an optimisation of the whole model: `$XDG_CACHE_HOME/skysift/ort/` (else
//! `~/.cache/skysift/ort/`), one slot per source model path.
//!
//! What a slot keeps: the graph ONNX Runtime made of the model at optimisation level 3 for the CPU,
//! written by ONNX Runtime itself (`SetOptimizedModelFilePath`) with its weights in an external-data
//! file beside it. ONNX Runtime maps such a file into memory instead of parsing and copying the
//! weights: the demo text tower's session takes about 7 ms instead of 112 ms, and processes that
//! open the same tower share its pages. A session made from a slot runs with optimisation off,
//! because its graph is already the one level 3 made: the outputs are the same, bit for bit
//! (`tests/encode.rs` checks both towers).
//!
//! Invariants:
//! - a slot is used only when the source model, each external-data file it names, the ONNX Runtime
//!   library and the cached files all have the stamps recorded (size, modification and change
//!   times, inode, device: [`digest_cache`](super::digest_cache)'s rule), and the CPU is the one
//!   recorded (its model name and feature flags: level 3 lays tensors out for the machine);
//! - a slot is written only for a source whose files are settled, and only for CPU sessions;
//! - a slot's files are written into a folder of their own and published by renaming the slot's
//!   `entry.json` over the old one: a reader sees the old entry or the new one, never half of one.
//!   A reader that finds the files gone or damaged falls back on the source model. Anything
//!   unreadable is ignored; a cache that cannot be written costs the speed and nothing else;
//! - `SKYSIFT_ORT_CACHE=0` turns the cache off; so does a platform without `/proc/cpuinfo` (the
//!   CPU could not be told apart).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::digest_cache::{self, Stamp};
use super::manifest::hex;

/// Environment variable that turns the cache off when set to `0`.
pub const ORT_CACHE_ENV: &str = "SKYSIFT_ORT_CACHE";

/// Bumped when what a slot holds changes meaning.
const FORMAT: u32 = 1;

const ENTRY: &str = "entry.json";
const MODEL: &str = "model.onnx";
const DATA: &str = "model.onnx.data";

/// The default cache folder, or `None` when the cache is off.
pub(crate) fn default_dir() -> Option<PathBuf> {
    if std::env::var_os(ORT_CACHE_ENV).is_some_and(|v| v == "0") {
        return None;
    }
    Some(super::locate::user_cache_dir()?.join("ort"))
}

/// One slot's record.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Entry {
    format: u32,
    source: PathBuf,
    source_stamp: Stamp,
    /// External-data files of the source, relative to its folder, with their stamps.
    external: Vec<(String, Stamp)>,
    library: PathBuf,
    library_stamp: Stamp,
    cpu: String,
    /// The folder (in the slot) holding the files, and each file's stamp.
    folder: String,
    files: Vec<(String, Stamp)>,
}

/// What to do for one session.
pub(crate) enum Plan {
    /// Open this optimised model, with optimisation off.
    Use(PathBuf),
    /// Open the source with [`Writer::settings`] applied, then [`Writer::finish`].
    Write(Box<Writer>),
    /// Open the source as it is.
    Off,
}

/// A slot being written.
pub(crate) struct Writer {
    slot: PathBuf,
    folder: String,
    entry: Entry,
}

fn stamp_of(path: &Path) -> Option<Stamp> {
    digest_cache::stamp(&std::fs::metadata(path).ok()?)
}

/// The CPU's model name and feature flags, hashed (read once per process); `None` where
/// `/proc/cpuinfo` cannot be read.
fn cpu_fingerprint() -> Option<String> {
    static CPU: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    CPU.get_or_init(read_cpu).clone()
}

fn read_cpu() -> Option<String> {
    let f = std::fs::File::open("/proc/cpuinfo").ok()?;
    let mut h = Sha256::new();
    h.update(std::env::consts::ARCH.as_bytes());
    let mut seen = false;
    // The first processor's block (up to its blank line) names the model and the flags.
    for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
        if line.trim().is_empty() {
            break;
        }
        let key = line.split(':').next().unwrap_or("").trim();
        if matches!(key, "vendor_id" | "model name" | "flags" | "Features" | "CPU implementer" | "CPU part") {
            h.update(line.as_bytes());
            h.update(b"\n");
            seen = true;
        }
    }
    let d: [u8; 32] = h.finalize().into();
    seen.then(|| hex(&d))
}

fn slot_of(dir: &Path, source: &Path) -> PathBuf {
    let d: [u8; 32] = Sha256::digest(source.as_os_str().as_encoded_bytes()).into();
    dir.join(hex(d.get(..16).unwrap_or(&d)))
}

fn read_entry(slot: &Path) -> Option<Entry> {
    serde_json::from_slice(&std::fs::read(slot.join(ENTRY)).ok()?).ok()
}

/// Whether `e` describes the current state of everything it depends on.
fn current(e: &Entry, slot: &Path, source: &Path, library: &Path, cpu: &str) -> bool {
    let parent = source.parent().unwrap_or(Path::new(""));
    let same = |path: &Path, s: &Stamp| stamp_of(path).as_ref() == Some(s);
    e.format == FORMAT
        && e.source == source
        && e.library == library
        && e.cpu == cpu
        && same(source, &e.source_stamp)
        && same(library, &e.library_stamp)
        && e.external.iter().all(|(rel, s)| same(&parent.join(rel), s))
        && e.files.iter().any(|(name, _)| name == MODEL)
        && e.files.iter().all(|(name, s)| same(&slot.join(&e.folder).join(name), s))
}

/// Decides how to open `source` with the runtime `library`, caching in `dir` (`None`: off).
pub(crate) fn plan(dir: Option<&Path>, source: &Path, library: &Path) -> Plan {
    let Some(dir) = dir else { return Plan::Off };
    let Some(cpu) = cpu_fingerprint() else { return Plan::Off };
    // One slot per file, whatever folder the model was named from.
    let (Ok(source), Ok(library)) = (std::fs::canonicalize(source), std::fs::canonicalize(library)) else {
        return Plan::Off;
    };
    let (source, library) = (source.as_path(), library.as_path());
    let (Some(source_stamp), Some(library_stamp)) = (stamp_of(source), stamp_of(library)) else {
        return Plan::Off;
    };
    let slot = slot_of(dir, source);
    if let Some(e) = read_entry(&slot)
        && current(&e, &slot, source, library, &cpu)
    {
        return Plan::Use(slot.join(&e.folder).join(MODEL));
    }
    // Write a new slot, for settled files only (see `digest_cache::SETTLED`).
    if !digest_cache::settled(&source_stamp) || !digest_cache::settled(&library_stamp) {
        return Plan::Off;
    }
    let Some(external) = external_stamps(source) else { return Plan::Off };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let folder = format!("v{}-{nanos}", std::process::id());
    if std::fs::create_dir_all(slot.join(&folder)).is_err() {
        return Plan::Off;
    }
    Plan::Write(Box::new(Writer {
        slot,
        folder,
        entry: Entry {
            format: FORMAT,
            source: source.to_path_buf(),
            source_stamp,
            external,
            library: library.to_path_buf(),
            library_stamp,
            cpu,
            folder: String::new(),
            files: Vec::new(),
        },
    }))
}

/// The stamps of the external-data files `source` names; `None` when one is missing or not settled.
fn external_stamps(source: &Path) -> Option<Vec<(String, Stamp)>> {
    let bytes = std::fs::read(source).ok()?;
    let parent = source.parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    for rel in super::onnx::external_data_locations(&bytes).ok()? {
        let s = stamp_of(&parent.join(&rel))?;
        if !digest_cache::settled(&s) {
            return None;
        }
        out.push((rel, s));
    }
    Some(out)
}

/// Forgets the slot of `source` (its files failed to open), so that the next process writes it again.
pub(crate) fn discard(dir: Option<&Path>, source: &Path) {
    if let (Some(dir), Ok(source)) = (dir, std::fs::canonicalize(source)) {
        let _ = std::fs::remove_file(slot_of(dir, &source).join(ENTRY));
    }
}

impl Writer {
    /// The optimised model's path and the session options that make ONNX Runtime write it there,
    /// its weights (every initializer of a kilobyte or more) in an external-data file beside it.
    pub(crate) fn settings(&self) -> (PathBuf, [(&'static str, &'static str); 2]) {
        (
            self.slot.join(&self.folder).join(MODEL),
            [
                ("session.optimized_model_external_initializers_file_name", DATA),
                ("session.optimized_model_external_initializers_min_size_in_bytes", "1024"),
            ],
        )
    }

    /// Publishes the slot once the session that wrote its files was created; errors are ignored.
    pub(crate) fn finish(mut self) {
        let folder = self.slot.join(&self.folder);
        for name in [MODEL, DATA] {
            if let Some(s) = stamp_of(&folder.join(name)) {
                self.entry.files.push((name.to_owned(), s));
            }
        }
        if !self.entry.files.iter().any(|(n, _)| n == MODEL) {
            return self.abandon();
        }
        self.entry.folder.clone_from(&self.folder);
        let Ok(text) = serde_json::to_vec(&self.entry) else { return self.abandon() };
        let tmp = self.slot.join(format!("{ENTRY}.{}", self.folder));
        if std::fs::write(&tmp, text).is_err() || std::fs::rename(&tmp, self.slot.join(ENTRY)).is_err() {
            let _ = std::fs::remove_file(&tmp);
            return self.abandon();
        }
        // Older folders of the slot: a process that still maps one keeps its pages (Unix).
        if let Ok(list) = std::fs::read_dir(&self.slot) {
            for e in list.flatten() {
                if e.file_name() != *self.folder && e.path().is_dir() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    /// Removes what was written of the slot's new folder.
    pub(crate) fn abandon(self) {
        let _ = std::fs::remove_dir_all(self.slot.join(&self.folder));
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_is_told_apart_and_a_changed_source_is_not_served() {
        assert!(cpu_fingerprint().is_some());
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("tower.onnx");
        std::fs::write(&source, b"").unwrap();
        let library = dir.path().join("libonnxruntime.so");
        std::fs::write(&library, b"lib").unwrap();
        let (source, library) = (std::fs::canonicalize(&source).unwrap(), std::fs::canonicalize(&library).unwrap());
        let cache = dir.path().join("cache");
        // Files just written are not settled: nothing is written for them.
        assert!(matches!(plan(Some(&cache), &source, &library), Plan::Off));
        assert!(matches!(plan(None, &source, &library), Plan::Off));

        // A slot written by hand for the current state is served...
        let slot = slot_of(&cache, &source);
        std::fs::create_dir_all(slot.join("v1")).unwrap();
        std::fs::write(slot.join("v1").join(MODEL), b"graph").unwrap();
        let e = Entry {
            format: FORMAT,
            source: source.clone(),
            source_stamp: stamp_of(&source).unwrap(),
            external: Vec::new(),
            library: library.clone(),
            library_stamp: stamp_of(&library).unwrap(),
            cpu: cpu_fingerprint().unwrap(),
            folder: "v1".into(),
            files: vec![(MODEL.into(), stamp_of(&slot.join("v1").join(MODEL)).unwrap())],
        };
        std::fs::write(slot.join(ENTRY), serde_json::to_vec(&e).unwrap()).unwrap();
        match plan(Some(&cache), &source, &library) {
            Plan::Use(p) => assert_eq!(p, slot.join("v1").join(MODEL)),
            _ => panic!("the slot is current"),
        }
        // ... and not once the source, the library or the cached graph is written again.
        for changed in [&source, &library, &slot.join("v1").join(MODEL)] {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let before = std::fs::read(changed).unwrap();
            std::fs::write(changed, &before).unwrap();
            assert!(!matches!(plan(Some(&cache), &source, &library), Plan::Use(_)), "{}", changed.display());
            let mut fixed = read_entry(&slot).unwrap();
            fixed.source_stamp = stamp_of(&source).unwrap();
            fixed.library_stamp = stamp_of(&library).unwrap();
            fixed.files = vec![(MODEL.into(), stamp_of(&slot.join("v1").join(MODEL)).unwrap())];
            std::fs::write(slot.join(ENTRY), serde_json::to_vec(&fixed).unwrap()).unwrap();
            assert!(matches!(plan(Some(&cache), &source, &library), Plan::Use(_)));
        }
        // A malformed entry is ignored; a discarded slot is not served.
        std::fs::write(slot.join(ENTRY), b"{").unwrap();
        assert!(!matches!(plan(Some(&cache), &source, &library), Plan::Use(_)));
        discard(Some(&cache), &source);
        assert!(!slot.join(ENTRY).exists());
    }
}
