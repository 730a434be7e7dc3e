//! Shared helpers: a deterministic workload and a full dump of a collection's visible state.

use std::collections::BTreeMap;

use skysift::schema::{FieldType, Metric, Value};
use skysift::{CollectionSpec, Db, NewRecord};

pub use crate::rng::Rng;

/// Dimension of test vectors.
pub const DIM: usize = 8;

/// A deterministic vector for `(id, version)`.
pub fn vector(id: u64, version: u64) -> Vec<f32> {
    Rng(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ version.wrapping_mul(0xD1B5_4A32_D192_ED03)).centred_vec(DIM)
}

/// `v` scaled to unit length.
pub fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    for x in &mut v {
        *x /= n;
    }
    v
}

/// The collection spec used by the stateful tests.
pub fn spec() -> CollectionSpec {
    CollectionSpec::new(DIM as u32, Metric::InnerProduct)
        .field("class", FieldType::Keyword)
        .field("year", FieldType::Integer)
        .field("cloud", FieldType::Float)
}

/// A record with fields derived from `(id, version)`.
pub fn record(id: u64, version: u64) -> NewRecord {
    let mut r = NewRecord::new(id, vector(id, version))
        .with("class", Value::Keyword(format!("c{}", (id + version) % 5)))
        .with("year", Value::Integer(2000 + (id % 20) as i64));
    if !id.is_multiple_of(3) {
        r = r.with("cloud", Value::Float(version as f64 / 4.0));
    }
    if id.is_multiple_of(4) {
        r = r.with("source", Value::Text(format!("scenes/{id}.tif")));
    }
    r
}

/// Visible state: id -> (vector, fields).
pub type Dump = BTreeMap<u64, (Vec<f32>, Vec<(String, Value)>)>;

/// What a model of `record` calls looks like after storage (fields in schema order).
pub fn model_entry(id: u64, version: u64) -> (Vec<f32>, Vec<(String, Value)>) {
    let r = record(id, version);
    let order = ["class", "year", "cloud", "source"];
    let mut fields = r.fields;
    fields.sort_by_key(|(n, _)| order.iter().position(|o| o == n));
    (r.vector, fields)
}

/// Reads every live record of `collection`, checking `count` and search agree with it.
pub fn dump(db: &Db, collection: &str) -> Dump {
    let col = db.snapshot().collection(collection).unwrap();
    let mut out = Dump::new();
    // Every id that can exist in these tests is below 1_000_000; ask for all live ids by
    // searching with k = count, then read each one back.
    let n = col.count() as usize;
    let hits = col.search_exact(&[0.1; DIM], n + 5, &mut skysift::SearchScratch::default()).unwrap();
    assert_eq!(hits.len(), n, "search returns every live row");
    for h in hits {
        let r = col.get(h.id).unwrap().expect("a search hit is gettable");
        assert!(out.insert(r.id, (r.vector, r.fields)).is_none(), "duplicate id {} in results", h.id);
    }
    out
}

thread_local! {
    /// Whether panics on this thread are expected and not printed (see [`quiet_panics`]).
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the panic messages of this thread silenced; other threads (other tests running
/// at the same time) keep theirs. The hook that decides is installed once and hands every panic of
/// a thread that is not quiet to the hook that was there before.
pub fn quiet_panics<T>(f: impl FnOnce() -> T) -> T {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                prev(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let out = f();
    QUIET.with(|q| q.set(false));
    out
}

/// Copies the files and folders under `from` to `to` (created).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
