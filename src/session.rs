//! A query session: a database, a collection, a lazily loaded encoder and the settings a
//! person changes between queries (k, language, negative prompts, templates, filter). The CLI's
//! `query` and `label` commands and the REPL are thin layers over it.
//!
//! Invariants:
//! - a text or image query is encoded by an encoder whose provenance matches the collection's;
//!   otherwise the query is refused with both models named;
//! - the encoder is loaded on the first query that needs it (vector and `like` queries never
//!   load it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use skysift_storage::schema::{FieldType, Value};

use crate::db::{CollectionSnapshot, Db, NewRecord, normalize};
use crate::encode::{Device, Encoder, Label, Language, Prompting, TextQuery, ZeroShot};
use crate::error::{Error, Result};
use crate::index::{SearchParams, SearchScratch};
use crate::ingest::{ImportOptions, ReportWriter, Summary, import};

/// Parameter under which import records the model directory it used.
pub const MODEL_DIR_PARAM: &str = "model.dir";

/// A record id with its best labels and scores, best first.
pub type Labelled = (u64, Vec<(String, f32)>);

/// What to look for.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryInput {
    /// Natural-language text (prompt ensemble in the detected or given language).
    Text(String),
    /// An image file, encoded by the image tower.
    Image(PathBuf),
    /// The vector of a stored record ("more like this").
    Like(u64),
    /// A raw vector.
    Vector(Vec<f32>),
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRow {
    /// 1-based rank.
    pub rank: usize,
    /// Record id.
    pub id: u64,
    /// Similarity.
    pub score: f32,
    /// Non-null fields (thumbnail excluded), in schema order.
    pub fields: Vec<(String, Value)>,
    /// The thumbnail, when the record has one.
    pub thumbnail: Option<Vec<u8>>,
}

/// The answer to one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Results, best first.
    pub rows: Vec<AnswerRow>,
    /// Language used for the prompt ensemble, when text was encoded.
    pub language: Option<String>,
    /// Prompts encoded (after templates).
    pub prompts: Vec<String>,
    /// Time to encode the query.
    pub encode_time: Duration,
    /// Time to search.
    pub search_time: Duration,
    /// Notes for the user (fallbacks, detections).
    pub notes: Vec<String>,
}

/// A query session over one collection.
pub struct Session {
    db: Db,
    collection: String,
    model_dir: Option<PathBuf>,
    device: Device,
    encoder: Option<Arc<Encoder>>,
    scratch: SearchScratch,
    /// Results per query.
    pub k: usize,
    /// Language of text queries (`None`: detect).
    pub lang: Option<String>,
    /// Negative prompts subtracted from text queries.
    pub negatives: Vec<String>,
    /// Prompt ensembles on (default), a single template, or off.
    pub prompting: Prompting,
    /// Graph search width (`None`: default).
    pub ef: Option<usize>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("collection", &self.collection).field("k", &self.k).finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a session on `collection` (or the only collection when `None`).
    pub fn open(db: Db, collection: Option<&str>, model_dir: Option<&Path>) -> Result<Session> {
        let names = db.collections();
        let collection = match collection {
            Some(c) => c.to_owned(),
            None => match names.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(Error::Invalid(
                        "the database has no collections; import or load some data first".into(),
                    ));
                }
                many => {
                    return Err(Error::Invalid(format!(
                        "the database has several collections ({}); pick one with --collection",
                        many.join(", ")
                    )));
                }
            },
        };
        db.snapshot().collection(&collection)?;
        Ok(Session {
            db,
            collection,
            model_dir: model_dir.map(Path::to_path_buf),
            device: Device::Auto,
            encoder: None,
            scratch: SearchScratch::default(),
            k: 10,
            lang: None,
            negatives: Vec::new(),
            prompting: Prompting::Ensemble,
            ef: None,
        })
    }

    /// Sets the device the encoder runs on (before the first query that loads it).
    pub fn set_device(&mut self, device: Device) {
        self.device = device;
    }

    /// The database.
    #[must_use]
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The collection name.
    #[must_use]
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// Switches to another collection.
    pub fn use_collection(&mut self, name: &str) -> Result<()> {
        self.db.snapshot().collection(name)?;
        name.clone_into(&mut self.collection);
        self.encoder = None;
        Ok(())
    }

    /// A snapshot of the collection.
    pub fn snapshot(&self) -> Result<CollectionSnapshot> {
        self.db.snapshot().collection(&self.collection)
    }

    /// The model directory: the one given, the one import recorded, or `models/demo`.
    pub fn model_dir(&self) -> Result<PathBuf> {
        if let Some(d) = &self.model_dir {
            return Ok(d.clone());
        }
        let col = self.snapshot()?;
        if let Some((_, v)) = col.params().iter().find(|(k, _)| k == MODEL_DIR_PARAM) {
            return Ok(PathBuf::from(v));
        }
        Ok(PathBuf::from("models/demo"))
    }

    /// The encoder, loaded on first use and checked against the collection's provenance.
    pub fn encoder(&mut self) -> Result<Arc<Encoder>> {
        if let Some(e) = &self.encoder {
            return Ok(Arc::clone(e));
        }
        let col = self.snapshot()?;
        if !col.params().iter().any(|(k, _)| k == crate::encode::KEY_FINGERPRINT) {
            return Err(Error::Invalid(format!(
                "collection {:?} holds vectors of unknown origin (no encoder provenance; loaded with `skysift load`?): \
                 text and image queries need a collection imported with a model (`skysift import`); use vector or \
                 --like queries here",
                self.collection
            )));
        }
        let dir = self.model_dir()?;
        let enc = Encoder::builder(&dir).device(self.device).build()?;
        enc.check_params(col.params())?;
        let enc = Arc::new(enc);
        self.encoder = Some(Arc::clone(&enc));
        Ok(enc)
    }

    /// Runs one query.
    pub fn ask(&mut self, input: &QueryInput) -> Result<Answer> {
        self.ask_with(input, None, false)
    }

    /// Runs one query with an optional filter expression; `explain` adds the plan to the notes.
    pub fn ask_filtered(&mut self, input: &QueryInput, filter: Option<&str>, explain: bool) -> Result<Answer> {
        let mut a = self.ask_with(input, filter, explain)?;
        if explain && filter.is_none() {
            let col = self.snapshot()?;
            let graphs = col.index_state().iter().filter(|s| s.graph_levels.is_some()).count();
            a.notes.push(format!(
                "plan: {} segment(s), {graphs} searched by graph (int8 traversal, exact rescoring), the rest and {} \
                 in-memory rows scanned exactly; ef {}",
                col.segments().len(),
                col.memory_rows(),
                SearchParams { ef: self.ef, ..SearchParams::k(self.k) }.ef_or_default()
            ));
        }
        Ok(a)
    }

    fn ask_with(&mut self, input: &QueryInput, filter: Option<&str>, explain: bool) -> Result<Answer> {
        let t0 = Instant::now();
        let mut language = None;
        let mut prompts = Vec::new();
        let mut notes = Vec::new();
        let col = self.snapshot()?;
        let vector = match input {
            QueryInput::Text(text) => {
                let enc = self.encoder()?;
                let mut q = TextQuery::new(text.clone()).prompting(self.prompting);
                if let Some(l) = &self.lang {
                    q.language = Language::Code(l.clone());
                }
                for n in &self.negatives {
                    q = q.negative(n.clone());
                }
                let qv = enc.query(&q)?;
                language.clone_from(&qv.language);
                prompts = qv.prompts;
                notes.extend(qv.note);
                qv.vector
            }
            QueryInput::Image(path) => {
                let enc = self.encoder()?;
                let mut v = enc.encode_image_files(&[path])?.into_iter().next().unwrap_or_default();
                if !self.negatives.is_empty() {
                    let neg: Vec<&str> = self.negatives.iter().map(String::as_str).collect();
                    for n in enc.encode_texts(&neg)? {
                        for (a, b) in v.iter_mut().zip(&n) {
                            *a -= crate::encode::DEFAULT_NEGATIVE_WEIGHT * b;
                        }
                    }
                    normalize(&mut v);
                }
                v
            }
            QueryInput::Like(id) => {
                col.get(*id)?
                    .ok_or_else(|| Error::Invalid(format!("no record with id {id} in {:?}", self.collection)))?
                    .vector
            }
            QueryInput::Vector(v) => v.clone(),
        };
        let encode_time = t0.elapsed();
        let t1 = Instant::now();
        let params = SearchParams { ef: self.ef, ..SearchParams::k(self.k) };
        let mut notes_after = Vec::new();
        let hits = match filter {
            None => col.search(&vector, &params, &mut self.scratch)?,
            Some(f) => {
                let prepared = col.prepare_filter(f)?;
                if explain {
                    let (hits, e) = col.explain(&vector, &prepared, &params, &mut self.scratch)?;
                    notes_after.push(e.to_string());
                    hits
                } else {
                    col.search_filtered(&vector, &prepared, &params, &mut self.scratch)?
                }
            }
        };
        let search_time = t1.elapsed();
        notes.extend(notes_after);
        let mut rows = Vec::with_capacity(hits.len());
        for (i, h) in hits.iter().enumerate() {
            let Some(r) = col.get(h.id)? else { continue };
            let mut thumbnail = None;
            let fields = r
                .fields
                .into_iter()
                .filter_map(|(n, v)| match v {
                    Value::Blob(b) if n == "thumbnail" => {
                        thumbnail = Some(b);
                        None
                    }
                    v => Some((n, v)),
                })
                .collect();
            rows.push(AnswerRow { rank: i + 1, id: h.id, score: h.score, fields, thumbnail });
        }
        Ok(Answer { rows, language, prompts, encode_time, search_time, notes })
    }

    /// Zero-shot labels for some records: `(id, [(label, score)])`, best first.
    pub fn label_ids(&mut self, ids: &[u64], labels: &[String]) -> Result<Vec<Labelled>> {
        self.label(Some(ids), labels, 3)
    }

    /// Zero-shot labels for every record: `(id, [(label, score)])`, best first.
    pub fn label_all(&mut self, labels: &[String], top: usize) -> Result<Vec<Labelled>> {
        self.label(None, labels, top)
    }

    /// Imports a folder of imagery into the session's collection with the session's encoder,
    /// as `skysift import` does; setting `stop` ends it between tiles with everything encoded
    /// so far committed. A read-only session takes the database's writer for the duration
    /// (it fails at once when another process holds it) and then follows the new data.
    pub fn import_folder(&mut self, folder: &Path, stop: Arc<AtomicBool>) -> Result<Summary> {
        self.import_folder_with(folder, stop, crate::ingest::nodata::DEFAULT_MIN_VALID)
    }

    /// [`Session::import_folder`] with tiles under `min_valid` valid pixels left out (see
    /// [`ImportOptions::min_valid`]).
    pub fn import_folder_with(&mut self, folder: &Path, stop: Arc<AtomicBool>, min_valid: f64) -> Result<Summary> {
        let enc = self.encoder()?;
        let model_dir = self.model_dir()?;
        let model_dir = std::fs::canonicalize(&model_dir).unwrap_or(model_dir);
        let opts = ImportOptions {
            collection: self.collection.clone(),
            stop,
            params: vec![(MODEL_DIR_PARAM.to_owned(), model_dir.display().to_string())],
            min_valid,
            ..ImportOptions::default()
        };
        let summary = if self.db.is_read_only() {
            let writer = Db::builder(self.db.path()).create(false).open()?;
            let s = import(&writer, &*enc, folder, &opts, &mut ReportWriter::none());
            drop(writer);
            self.db.refresh()?;
            s?
        } else {
            import(&self.db, &*enc, folder, &opts, &mut ReportWriter::none())?
        };
        Ok(summary)
    }

    /// Stores each record's best label in keyword field `field`, adding the field to the schema
    /// when it is missing. Records are rewritten in batches of `LABEL_BATCH` (so a crash keeps
    /// every committed batch), then the collection is compacted to drop the replaced rows.
    /// `progress` is called with `(done, total)` after each batch. Returns the records written.
    pub fn store_labels(
        &mut self,
        field: &str,
        labelled: &[Labelled],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<usize> {
        let col = self.snapshot()?;
        match col.schema().field_index(field).map(|i| col.schema().fields[i].ty) {
            None => self.db.add_field(&self.collection, field, FieldType::Keyword)?,
            Some(FieldType::Keyword) => {}
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "field {field:?} exists with type {}; labels need a keyword field: pick another --field name",
                    other.name()
                )));
            }
        }
        let col = self.snapshot()?;
        let mut written = 0;
        for chunk in labelled.chunks(LABEL_BATCH) {
            let mut txn = self.db.begin_write(&self.collection)?;
            for (id, best) in chunk {
                let (Some((label, _)), Some(r)) = (best.first(), col.get(*id)?) else { continue };
                let mut fields: Vec<(String, Value)> = r.fields.into_iter().filter(|(n, _)| n != field).collect();
                fields.push((field.to_owned(), Value::Keyword(label.clone())));
                txn.upsert(NewRecord { id: *id, vector: r.vector, fields })?;
                written += 1;
            }
            txn.commit()?;
            progress(written, labelled.len());
        }
        self.db.compact(&self.collection)?;
        Ok(written)
    }

    fn label(&mut self, ids: Option<&[u64]>, labels: &[String], top: usize) -> Result<Vec<Labelled>> {
        let enc = self.encoder()?;
        let lang = self.lang.clone().unwrap_or_else(|| "en".into());
        let set: Vec<Label> = labels.iter().map(|l| Label::new(l.clone()).phrase(lang.clone(), l.clone())).collect();
        let zs = ZeroShot::new(&enc, &set, self.prompting)?;
        let col = self.snapshot()?;
        let all;
        let ids = if let Some(ids) = ids {
            ids
        } else {
            all = col.ids()?;
            &all
        };
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(r) = col.get(id)? else { continue };
            let best = zs.top(&r.vector, top)?;
            out.push((id, best.into_iter().map(|l| (l.label, l.score)).collect()));
        }
        Ok(out)
    }
}

/// Records rewritten per transaction by [`Session::store_labels`].
const LABEL_BATCH: usize = 1024;

/// Fields that import keeps for bookkeeping and that result tables leave out.
const BOOKKEEPING: [&str; 12] = [
    "source",
    "format",
    "crs",
    "bands",
    "tile_index",
    "tile_count",
    "file_size",
    "file_hash",
    "tiling",
    "item_id",
    "skysift:generated",
    "description",
];

/// The fields worth showing in a one-line result: everything but bookkeeping and blobs, at most 6.
#[must_use]
pub fn key_fields(fields: &[(String, Value)]) -> Vec<(&str, &Value)> {
    fields
        .iter()
        .filter(|(n, v)| !BOOKKEEPING.contains(&n.as_str()) && !matches!(v, Value::Blob(_)))
        .map(|(n, v)| (n.as_str(), v))
        .take(6)
        .collect()
}

/// Formats a value for people.
#[must_use]
pub fn display_value(v: &Value) -> String {
    match v {
        Value::Keyword(s) | Value::Text(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => format!("{f}"),
        Value::Timestamp(t) => crate::ingest::metadata::format_timestamp(*t),
        Value::Bool(b) => b.to_string(),
        Value::GeoBbox(b) => format!("[{:.4}, {:.4}, {:.4}, {:.4}]", b[0], b[1], b[2], b[3]),
        Value::Window(w) => format!("{}x{}+{}+{}", w[2], w[3], w[0], w[1]),
        Value::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

/// A value as JSON.
#[must_use]
pub fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::Keyword(s) | Value::Text(s) => serde_json::Value::String(s.clone()),
        Value::Integer(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::Timestamp(t) => serde_json::Value::String(crate::ingest::metadata::format_timestamp(*t)),
        Value::Bool(b) => (*b).into(),
        Value::GeoBbox(b) => serde_json::json!(b),
        Value::Window(w) => serde_json::json!(w),
        Value::Blob(b) => serde_json::json!({ "bytes": b.len() }),
    }
}

/// Field types shown in result tables (everything but blobs).
#[must_use]
pub fn shown(ty: FieldType) -> bool {
    ty != FieldType::Blob
}
