//! Model file digests kept across processes, so that a one-question process (`skysift query`)
//! does not hash the model's hundred megabytes again: one small JSON entry per file under
//! `$XDG_CACHE_HOME/skysift/digests/` (else `~/.cache/skysift/digests/`).
//!
//! Invariants:
//! - an entry is used only when the file's path, size, modification time, change time, inode and
//!   device are all the ones recorded. The change time moves on every write and no user can set
//!   it back, so a file written since the entry was made is hashed again;
//! - an entry is written only for a file whose times are at least [`SETTLED`] old, so that a file
//!   still being written (or written twice within one timestamp tick) is never cached: the racy
//!   case that git's index knows;
//! - anything unreadable, malformed or of another file in the cache is ignored (and overwritten);
//!   a cache that cannot be written costs the hashing and nothing else. Entries are written to a
//!   temporary name and renamed, so a reader never sees half of one.
//!
//! Off Unix there are no inode numbers and change times to trust: nothing is cached there.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::manifest::{Fingerprint, hex};

/// How old a file's times must be before its digest is cached.
pub(crate) const SETTLED: Duration = Duration::from_secs(2);

/// The cache folder: `$XDG_CACHE_HOME/skysift/digests`, else `~/.cache/skysift/digests`.
pub(crate) fn cache_dir() -> Option<PathBuf> {
    Some(super::locate::user_cache_dir()?.join("digests"))
}

/// What identifies one state of a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Stamp {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
}

#[cfg(unix)]
#[expect(clippy::unnecessary_wraps, reason = "the same signature as off Unix, where there is no stamp")]
pub(crate) fn stamp(meta: &Metadata) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    Some(Stamp {
        len: meta.len(),
        mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        ino: meta.ino(),
        dev: meta.dev(),
    })
}

#[cfg(not(unix))]
pub(crate) fn stamp(_meta: &Metadata) -> Option<Stamp> {
    None
}

/// Whether both of the stamp's times are at least [`SETTLED`] old.
pub(crate) fn settled(s: &Stamp) -> bool {
    let Ok(clock) = SystemTime::now().duration_since(UNIX_EPOCH) else { return false };
    let newest = s.mtime_ns.max(s.ctime_ns);
    i128::try_from(clock.as_nanos()).unwrap_or(0) - newest >= i128::try_from(SETTLED.as_nanos()).unwrap_or(i128::MAX)
}

/// One cached digest.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Entry {
    path: PathBuf,
    kind: String,
    stamp: Stamp,
    sha256: String,
    external: Vec<String>,
}

fn entry_path(dir: &Path, path: &Path, kind: &str) -> PathBuf {
    let mut h = Sha256::new();
    h.update(path.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(kind.as_bytes());
    let key: [u8; 32] = h.finalize().into();
    dir.join(format!("{}.json", hex(key.get(..16).unwrap_or(&key))))
}

/// The digest and external-data locations recorded in `dir` for `path` (of `kind`) in the state
/// `meta` describes, if any.
pub(crate) fn lookup(dir: &Path, path: &Path, kind: &str, meta: &Metadata) -> Option<([u8; 32], Vec<String>)> {
    let now = stamp(meta)?;
    let text = std::fs::read(entry_path(dir, path, kind)).ok()?;
    let e: Entry = serde_json::from_slice(&text).ok()?;
    if e.path != path || e.kind != kind || e.stamp != now {
        return None;
    }
    Some((Fingerprint::from_hex(&e.sha256)?.0, e.external))
}

/// Records the digest of `path` (of `kind`) in the state `meta` describes, when that state is
/// settled; errors are ignored (see the module's invariants).
pub(crate) fn store(dir: &Path, path: &Path, kind: &str, meta: &Metadata, sha256: &[u8; 32], external: &[String]) {
    let Some(now) = stamp(meta) else { return };
    if !settled(&now) {
        return;
    }
    let entry = Entry {
        path: path.to_path_buf(),
        kind: kind.to_owned(),
        stamp: now,
        sha256: hex(sha256),
        external: external.to_vec(),
    };
    let Ok(text) = serde_json::to_vec(&entry) else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let target = entry_path(dir, path, kind);
    let tmp = target.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, &target).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn age(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(60);
        let f = std::fs::File::options().write(true).open(path).expect("the test file opens");
        f.set_modified(old).expect("the test file's time is set");
    }

    #[test]
    fn an_entry_serves_the_same_file_and_no_changed_one() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("digests");
        let file = dir.path().join("model.onnx");
        std::fs::write(&file, b"weights").unwrap();
        age(&file);
        let meta = std::fs::metadata(&file).unwrap();
        let sha = [7u8; 32];
        // Changing the modification time moved the change time to now: not settled, not cached.
        store(&cache, &file, "onnx", &meta, &sha, &["w.bin".to_owned()]);
        assert_eq!(lookup(&cache, &file, "onnx", &meta), None);

        // A settled file (both times old) is cached and served, for its own kind only.
        let e = Entry {
            path: file.clone(),
            kind: "onnx".into(),
            stamp: stamp(&meta).unwrap(),
            sha256: hex(&sha),
            external: vec!["w.bin".into()],
        };
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(entry_path(&cache, &file, "onnx"), serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(lookup(&cache, &file, "onnx", &meta), Some((sha, vec!["w.bin".to_owned()])));
        assert_eq!(lookup(&cache, &file, "file", &meta), None);

        // The same size written again: the change time moves, the entry no longer matches.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&file, b"WEIGHTS").unwrap();
        let meta2 = std::fs::metadata(&file).unwrap();
        assert_eq!(lookup(&cache, &file, "onnx", &meta2), None);

        // A malformed entry is ignored.
        std::fs::write(entry_path(&cache, &file, "onnx"), b"{not json").unwrap();
        assert_eq!(lookup(&cache, &file, "onnx", &meta), None);
    }
}
