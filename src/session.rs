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

use crate::analyst::{ChangeOptions, Classifier, Feedback, PlaceChange, Refine, TrainOptions};
use crate::db::{CollectionSnapshot, Db, NewRecord, normalize};
use crate::encode::{Device, Encoder, Label, Language, Prompting, TextQuery, Towers, ZeroShot};
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

pub use crate::present::{Answer, AnswerRow};

/// How a session is opened and how it searches: what the CLI's options set in one place (the
/// REPL's commands change the same settings on an open session).
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The collection (`None`: the only one).
    pub collection: Option<String>,
    /// The model directory (`None`: the collection's, then the default search).
    pub model_dir: Option<PathBuf>,
    /// Where the encoder runs. Default: [`Device::Auto`].
    pub device: Device,
    /// Results per query. Default: 10.
    pub k: usize,
    /// Language of text queries (`None`, the default: detect).
    pub lang: Option<String>,
    /// Negative prompts subtracted from text queries. Default: none.
    pub negatives: Vec<String>,
    /// Prompt ensembles (default), a single template, or off.
    pub prompting: Prompting,
    /// Graph search width (`None`, the default: the collection's).
    pub ef: Option<usize>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            collection: None,
            model_dir: None,
            device: Device::Auto,
            k: 10,
            lang: None,
            negatives: Vec::new(),
            prompting: Prompting::Ensemble,
            ef: None,
        }
    }
}

/// A query session over one collection.
pub struct Session {
    db: Db,
    collection: String,
    model_dir: Option<PathBuf>,
    device: Device,
    encoder: Option<Arc<Encoder>>,
    /// An encoder being loaded in the background ([`Session::preload_encoder`]).
    preload: Option<std::thread::JoinHandle<crate::encode::EncodeResult<Encoder>>>,
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
    /// Relevance feedback applied to every query (Rocchio; off while it holds no examples).
    pub feedback: Feedback,
    /// Analyst options of every query: every match above a score, paging, grouping, diversity,
    /// merged places (default: the plain top-k).
    pub refine: Refine,
    /// The classifier trained in this session, kept for reuse ([`Session::train_classifier`]).
    pub classifier: Option<Classifier>,
}

/// A query encoded, before the search.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The query vector (relevance feedback applied when active).
    pub vector: Vec<f32>,
    /// Language of the prompt ensemble, when text was encoded.
    pub language: Option<String>,
    /// Prompts encoded.
    pub prompts: Vec<String>,
    /// Notes for the user.
    pub notes: Vec<String>,
    /// Time to encode.
    pub encode_time: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("collection", &self.collection).field("k", &self.k).finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a session with `opts`.
    ///
    /// # Errors
    /// As [`Session::open`].
    pub fn open_with(db: Db, opts: SessionOptions) -> Result<Session> {
        let mut s = Session::open(db, opts.collection.as_deref(), opts.model_dir.as_deref())?;
        let SessionOptions { device, k, lang, negatives, prompting, ef, .. } = opts;
        (s.device, s.k, s.lang, s.negatives, s.prompting, s.ef) = (device, k, lang, negatives, prompting, ef);
        Ok(s)
    }

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
            preload: None,
            scratch: SearchScratch::default(),
            k: 10,
            lang: None,
            negatives: Vec::new(),
            prompting: Prompting::Ensemble,
            ef: None,
            feedback: Feedback::default(),
            refine: Refine::default(),
            classifier: None,
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
        // Another collection may name another model: a background load (left to finish on its
        // own) is not used.
        self.preload = None;
        Ok(())
    }

    /// A snapshot of the collection.
    pub fn snapshot(&self) -> Result<CollectionSnapshot> {
        self.db.snapshot().collection(&self.collection)
    }

    /// The model directory: the one given, the one import recorded, or the default model
    /// ([`crate::encode::locate::default_model_dir`]).
    pub fn model_dir(&self) -> Result<PathBuf> {
        if let Some(d) = &self.model_dir {
            return Ok(d.clone());
        }
        let col = self.snapshot()?;
        if let Some((_, v)) = col.params().iter().find(|(k, _)| k == MODEL_DIR_PARAM) {
            return Ok(PathBuf::from(v));
        }
        crate::encode::locate::default_model_dir().map_err(Error::Invalid)
    }

    /// The encoder with both towers, loaded on first use and checked against the collection's
    /// provenance.
    pub fn encoder(&mut self) -> Result<Arc<Encoder>> {
        self.encoder_with(Towers::Both)
    }

    /// Hands over the loaded encoder (the session loads it again when it needs it).
    pub fn take_encoder(&mut self) -> Option<Arc<Encoder>> {
        self.encoder.take()
    }

    /// Starts loading the text tower on a thread of its own (the REPL calls it while its user
    /// types), when the collection was imported with a model; the first query that needs the
    /// encoder waits for it. Does nothing when the encoder is loaded or loading.
    pub fn preload_encoder(&mut self) {
        if self.encoder.is_some() || self.preload.is_some() || self.encoder_missing_reason().is_some() {
            return;
        }
        let Ok(dir) = self.model_dir() else { return };
        let device = self.device;
        self.preload = std::thread::Builder::new()
            .name("encoder-preload".into())
            .spawn(move || Encoder::builder(&dir).device(device).towers(Towers::Text).build())
            .ok();
    }

    /// Why the collection cannot have an encoder: its vectors are of unknown origin.
    fn encoder_missing_reason(&self) -> Option<String> {
        let col = self.snapshot().ok()?;
        (!col.params().iter().any(|(k, _)| k == crate::encode::KEY_FINGERPRINT)).then(|| {
            format!(
                "collection {:?} holds vectors of unknown origin (no encoder provenance; loaded with `skysift load`?): \
                 text and image queries need a collection imported with a model (`skysift import`); use vector or \
                 --like queries here",
                self.collection
            )
        })
    }

    /// The encoder with at least the towers `need` names (a text query loads the text tower
    /// only: a quicker first answer), loaded on first use and checked against the collection's
    /// provenance; a later need of the other tower loads both.
    fn encoder_with(&mut self, need: Towers) -> Result<Arc<Encoder>> {
        if let Some(e) = &self.encoder
            && e.has_towers(need)
        {
            return Ok(Arc::clone(e));
        }
        if let Some(reason) = self.encoder_missing_reason() {
            return Err(Error::Invalid(reason));
        }
        let col = self.snapshot()?;
        if let Some(loading) = self.preload.take() {
            let enc = loading.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            if enc.has_towers(need) {
                enc.check_params(col.params())?;
                let enc = Arc::new(enc);
                self.encoder = Some(Arc::clone(&enc));
                return Ok(enc);
            }
        }
        let towers = if self.encoder.is_some() { Towers::Both } else { need };
        let dir = self.model_dir()?;
        let enc = Encoder::builder(&dir).device(self.device).towers(towers).build()?;
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

    /// Encodes `input` (text through the prompt ensemble, image, record or raw vector) and applies
    /// the session's relevance feedback when it is active.
    pub fn encode_query(&mut self, input: &QueryInput) -> Result<Encoded> {
        let mut e = self.encode_plain(input)?;
        if self.feedback.active() {
            let col = self.snapshot()?;
            e.vector = self.feedback.apply(&col, Some(&e.vector))?;
            let w = self.feedback.weights;
            e.notes.push(format!(
                "relevance feedback: {} good, {} bad (Rocchio alpha {}, beta {}, gamma {})",
                self.feedback.good.len(),
                self.feedback.bad.len(),
                w.alpha,
                w.beta,
                w.gamma
            ));
        }
        Ok(e)
    }

    fn encode_plain(&mut self, input: &QueryInput) -> Result<Encoded> {
        let t0 = Instant::now();
        let mut language = None;
        let mut prompts = Vec::new();
        let mut notes = Vec::new();
        let col = self.snapshot()?;
        let vector = match input {
            QueryInput::Text(text) => {
                let enc = self.encoder_with(Towers::Text)?;
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
        Ok(Encoded { vector, language, prompts, notes, encode_time: t0.elapsed() })
    }

    fn ask_with(&mut self, input: &QueryInput, filter: Option<&str>, explain: bool) -> Result<Answer> {
        let Encoded { vector, language, prompts, mut notes, encode_time } = self.encode_query(input)?;
        let col = self.snapshot()?;
        let t1 = Instant::now();
        let params = SearchParams { ef: self.ef, ..SearchParams::k(self.k) };
        let prepared = filter.map(|f| col.prepare_filter(f)).transpose()?;
        let rows = match &prepared {
            Some(prepared) if explain && self.refine.is_plain() => {
                let (hits, e) = col.explain(&vector, prepared, &params, &mut self.scratch)?;
                notes.push(e.to_string());
                let mut rows = Vec::with_capacity(hits.len());
                for (i, h) in hits.iter().enumerate() {
                    rows.extend(crate::analyst::answer_row(&col, i + 1, h)?);
                }
                rows
            }
            _ => {
                let (rows, more) = crate::analyst::refine_rows(
                    &col,
                    &vector,
                    prepared.as_ref(),
                    self.k,
                    self.ef,
                    &self.refine,
                    &mut self.scratch,
                )?;
                notes.extend(more);
                rows
            }
        };
        let search_time = t1.elapsed();
        Ok(Answer { rows, language, prompts, encode_time, search_time, notes })
    }

    /// Trains a classifier on the session's feedback examples (`\\good`, `\\bad`, or
    /// [`Feedback::mark_good`]), with `text` (encoded as a query, without feedback) as its prior
    /// when given, and keeps it in the session.
    pub fn train_classifier(&mut self, text: Option<&str>, opts: &TrainOptions) -> Result<&Classifier> {
        let prior = match text {
            Some(t) => Some((t.to_owned(), self.encode_plain(&QueryInput::Text(t.to_owned()))?.vector)),
            None => None,
        };
        let col = self.snapshot()?;
        let c = Classifier::train(
            &col,
            &self.feedback.good,
            &self.feedback.bad,
            prior.as_ref().map(|(t, v)| (t.as_str(), v.as_slice())),
            opts,
        )?;
        Ok(self.classifier.insert(c))
    }

    /// The records that the session's classifier scores highest, best first, as an answer whose
    /// scores are probabilities; the session's filter, `k` and [`Refine`] options apply
    /// (`min_score` read as a probability). This is a vector search with the classifier's
    /// direction (graph and planner included), so it serves large collections fast.
    pub fn ask_classifier(&mut self, filter: Option<&str>) -> Result<Answer> {
        let Some(c) = self.classifier.clone() else {
            return Err(Error::Invalid(
                "no classifier yet: mark examples (\\good, \\bad) and train one (\\classify)".into(),
            ));
        };
        let Some((dir, _)) = c.direction() else {
            return Err(Error::Invalid("the classifier's weights are all zero: give other examples".into()));
        };
        let col = self.snapshot()?;
        let t1 = Instant::now();
        let prepared = filter.map(|f| col.prepare_filter(f)).transpose()?;
        let mut refine = self.refine.clone();
        refine.min_score = refine.min_score.map(|p| c.cosine_of_probability(p));
        let (mut rows, mut notes) =
            crate::analyst::refine_rows(&col, &dir, prepared.as_ref(), self.k, self.ef, &refine, &mut self.scratch)?;
        if let (Some(p), Some(cos)) = (self.refine.min_score, refine.min_score) {
            let said = format!("min-score {cos}:");
            for n in &mut notes {
                *n = n.replace(&said, &format!("min-score p = {p} (cosine {cos:.4} with the classifier's direction):"));
            }
        }
        for r in &mut rows {
            r.score = c.probability_of_cosine(r.score);
        }
        notes.insert(0, format!("scores are classifier probabilities; {}", c.describe()));
        Ok(Answer {
            rows,
            language: None,
            prompts: Vec::new(),
            encode_time: Duration::ZERO,
            search_time: t1.elapsed(),
            notes,
        })
    }

    /// Change between two periods for a text query (see [`crate::analyst::change`]), with an
    /// answer for the gallery: one row per place (best first), its score the difference, its
    /// fields the place, both scores and the after record's fields, its thumbnail the after
    /// record's.
    pub fn change(
        &mut self,
        text: &str,
        filter: Option<&str>,
        opts: &ChangeOptions,
    ) -> Result<(Vec<PlaceChange>, Answer)> {
        let e = self.encode_query(&QueryInput::Text(text.to_owned()))?;
        let col = self.snapshot()?;
        let t1 = Instant::now();
        let prepared = filter.map(|f| col.prepare_filter(f)).transpose()?;
        let changes = crate::analyst::change(&col, &e.vector, prepared.as_ref(), opts)?;
        let search_time = t1.elapsed();
        let mut rows = Vec::new();
        for (i, c) in changes.iter().take(self.k).enumerate() {
            let hit = crate::index::Hit { id: c.after_id, score: c.delta };
            let Some(mut r) = crate::analyst::answer_row(&col, i + 1, &hit)? else { continue };
            let mut fields = vec![
                ("place".to_owned(), Value::Keyword(c.place.clone())),
                ("score_before".to_owned(), Value::Float((f64::from(c.before) * 1e4).round() / 1e4)),
                ("score_after".to_owned(), Value::Float((f64::from(c.after) * 1e4).round() / 1e4)),
                ("before_id".to_owned(), Value::Integer(i64::try_from(c.before_id).unwrap_or(i64::MAX))),
            ];
            fields.extend(r.fields);
            r.fields = fields;
            rows.push(r);
        }
        let mut notes = e.notes;
        notes.push(format!(
            "scores are after - before: {} place(s) seen in both periods, best score of each period",
            changes.len()
        ));
        Ok((
            changes,
            Answer { rows, language: e.language, prompts: e.prompts, encode_time: e.encode_time, search_time, notes },
        ))
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
        let values: Vec<(u64, Value)> = labelled
            .iter()
            .filter_map(|(id, best)| best.first().map(|(l, _)| (*id, Value::Keyword(l.clone()))))
            .collect();
        self.store_values(field, FieldType::Keyword, &values, progress)
    }

    /// Stores one value per record in field `field` of type `ty` (a keyword for labels, a float
    /// for classifier scores), adding the field when it is missing, by the same batched rewrite
    /// and final compaction as [`Session::store_labels`]. Returns the records written.
    pub fn store_values(
        &mut self,
        field: &str,
        ty: FieldType,
        values: &[(u64, Value)],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<usize> {
        let col = self.snapshot()?;
        match col.schema().field_index(field).map(|i| col.schema().fields[i].ty) {
            None => self.db.add_field(&self.collection, field, ty)?,
            Some(t) if t == ty => {}
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "field {field:?} exists with type {}; {} need a {} field: pick another --field name",
                    other.name(),
                    if ty == FieldType::Keyword { "labels" } else { "scores" },
                    ty.name()
                )));
            }
        }
        let col = self.snapshot()?;
        let mut written = 0;
        for chunk in values.chunks(LABEL_BATCH) {
            let mut txn = self.db.begin_write(&self.collection)?;
            for (id, value) in chunk {
                let Some(r) = col.get(*id)? else { continue };
                let mut fields: Vec<(String, Value)> = r.fields.into_iter().filter(|(n, _)| n != field).collect();
                fields.push((field.to_owned(), value.clone()));
                txn.upsert(NewRecord { id: *id, vector: r.vector, fields })?;
                written += 1;
            }
            txn.commit()?;
            progress(written, values.len());
        }
        self.db.compact(&self.collection)?;
        Ok(written)
    }

    fn label(&mut self, ids: Option<&[u64]>, labels: &[String], top: usize) -> Result<Vec<Labelled>> {
        let enc = self.encoder_with(Towers::Text)?;
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
