//! Entry points shared by the fuzz targets of this crate (`fuzz/fuzz_targets/{metadata,repl_line}.rs`)
//! and the corpus replay in `tests/fuzz_corpus.rs`. Arbitrary bytes in; never a panic.

use std::sync::{Mutex, OnceLock};

use skysift_storage::schema::{ALL_TYPES, Metric};

use crate::db::{CollectionSpec, Db, NewRecord};
use crate::ingest::metadata;
use crate::repl::Repl;
use crate::session::Session;

/// A metadata line: JSON parsing, conversion to every field type, timestamps, `.npy` headers.
pub fn metadata(data: &[u8]) {
    let _ = crate::ingest::vectors::parse_header(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = metadata::parse_timestamp(text);
    if let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(text) {
        for (k, v) in obj.iter().take(64) {
            for ty in ALL_TYPES {
                let _ = metadata::convert(k, ty, v);
            }
        }
    }
}

fn repl() -> Option<&'static Mutex<Repl>> {
    static REPL: OnceLock<Option<(tempfile_free::Dir, Mutex<Repl>)>> = OnceLock::new();
    REPL.get_or_init(|| {
        let dir = tempfile_free::Dir::new()?;
        let db = Db::open(dir.path()).ok()?;
        db.create_collection("c", CollectionSpec::new(4, Metric::Cosine)).ok()?;
        let mut tx = db.begin_write("c").ok()?;
        for i in 0..8u64 {
            tx.insert(NewRecord::new(i, vec![1.0, i as f32, 0.5, -1.0])).ok()?;
        }
        tx.commit().ok()?;
        let s = Session::open(db, None, None).ok()?;
        Some((dir, Mutex::new(Repl::new(s, std::env::temp_dir().join("skysift-fuzz-gallery")))))
    })
    .as_ref()
    .map(|(_, r)| r)
}

/// One REPL line (on a small database without a model: text queries fail fast).
///
/// # Panics
///
/// When an escape byte reaches the REPL's output (the property the target checks).
pub fn repl_line(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else { return };
    if line.trim_start().starts_with("\\show") {
        return;
    }
    if let Some(r) = repl()
        && let Ok(mut r) = r.lock()
    {
        let out = r.handle_line(line);
        assert!(!out.output.contains('\u{1b}'), "escape byte reached the output");
        let _ = r.complete(line);
    }
}

/// A scratch directory removed on drop, without a dev-dependency.
mod tempfile_free {
    use std::path::{Path, PathBuf};

    #[derive(Debug)]
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Option<Dir> {
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
            let p = std::env::temp_dir().join(format!("skysift-fuzz-{}-{stamp}", std::process::id()));
            std::fs::create_dir_all(&p).ok()?;
            Some(Dir(p))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Every target by name, for the corpus replay.
pub const TARGETS: [(&str, skysift_storage::fuzzing::Target); 2] = [("metadata", metadata), ("repl_line", repl_line)];
