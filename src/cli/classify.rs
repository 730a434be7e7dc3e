//! `skysift classify`: a classifier trained on a few good and bad examples scores every record
//! (streamed, after the filter); prints those at or above `--min-score`, stores the score in a
//! float field with `--field`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use skysift::analyst::{Classifier, TrainOptions, answer_row};
use skysift::index::{Hit, TopK};
use skysift::present::{Answer, json_fields, json_value, key_fields_line};
use skysift::schema::{FieldType, Value};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database directory.
    db: PathBuf,
    /// Collection.
    collection: String,
    /// Relevant records (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "IDS", required = true)]
    good: Vec<u64>,
    /// Records that are not relevant (comma-separated or repeated); random records of the
    /// collection make up the negatives to --negatives.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    bad: Vec<u64>,
    /// A text query used as the classifier's prior (it ranks like this text when examples are few).
    #[arg(long)]
    text: Option<String>,
    /// Print records whose probability is at least this.
    #[arg(long, default_value_t = 0.5, value_name = "P")]
    min_score: f32,
    /// Store every scored record's probability in this float field (added when missing), so that
    /// filters can use it: `--where "NAME >= 0.9"`. Needs write access.
    #[arg(long, value_name = "NAME")]
    field: Option<String>,
    /// Score only records passing this filter.
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,
    /// Print only the best K (sorted) instead of every record above --min-score (storage order).
    #[arg(short = 'k', long = "k")]
    k: Option<usize>,
    /// Negatives wanted in all (bad examples plus random records).
    #[arg(long, default_value_t = 50)]
    negatives: usize,
    /// L2 penalty of the logistic regression.
    #[arg(long, default_value_t = 1.0)]
    l2: f64,
    /// Seed of the random negatives.
    #[arg(long, default_value_t = 17)]
    seed: u64,
    /// Write an HTML gallery of the best records (at most 60), scores shown, into this folder.
    #[arg(long, value_name = "DIR")]
    gallery: Option<PathBuf>,
    /// Prompt templates for --text: ensemble, single or off.
    #[arg(long, default_value = "ensemble")]
    templates: String,
    /// Model directory (for --text).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Where the encoder runs: cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

/// Records shown in a gallery at most.
const GALLERY_MAX: usize = 60;

#[expect(
    clippy::too_many_lines,
    reason = "train, score every row (streamed or top k), store, print: the command's steps in order"
)]
pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&a.min_score) {
        bail!("--min-score is a probability from 0 to 1, not {}", a.min_score);
    }
    let mut s = super::query::collection_session(
        &a.db,
        a.field.is_some(),
        &a.collection,
        a.model.as_deref(),
        &a.device,
        &a.templates,
        None,
    )?;
    s.feedback.mark_good(&a.good);
    s.feedback.mark_bad(&a.bad);
    let t = std::time::Instant::now();
    let opts = TrainOptions { l2: a.l2, negatives: a.negatives, seed: a.seed };
    let c: Classifier = s.train_classifier(a.text.as_deref(), &opts)?.clone();
    let train_time = t.elapsed();
    let col = s.snapshot()?;
    let prepared = a.filter.as_deref().map(|f| col.prepare_filter(f)).transpose()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut best = TopK::default();
    best.reset(a.k.unwrap_or(0).max(if a.gallery.is_some() { GALLERY_MAX } else { 0 }));
    let mut to_store: Vec<(u64, Value)> = Vec::new();
    let mut failed: Option<std::io::Error> = None;
    let t = std::time::Instant::now();
    // With --field every record is kept (min 0) and the threshold applies to what is printed.
    let floor = if a.field.is_some() { 0.0 } else { a.min_score };
    let stream = a.k.is_none();
    let json = a.json;
    let scored = c.score_rows(&col, prepared.as_ref(), floor, &mut |id, p, row| {
        if a.field.is_some() {
            to_store.push((id, Value::Float(f64::from(p))));
        }
        if p < a.min_score {
            return Ok(());
        }
        best.push(Hit { id, score: p });
        if stream {
            let fields = row.fields(&col)?;
            let line = if json {
                serde_json::json!({"id": id, "score": p, "fields": json_fields(&fields)}).to_string()
            } else {
                format!("{id:>12}  {p:.4}  {}", key_fields_line(&fields))
            };
            writeln!(out, "{line}").map_err(|e| {
                let msg = e.to_string();
                failed = Some(e);
                skysift::Error::Invalid(msg)
            })?;
        }
        Ok(())
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    let scored = scored?;
    let score_time = t.elapsed();
    let top = best.drain_sorted();
    let mut above = scored.above;
    if a.field.is_some() {
        above = to_store.iter().filter(|(_, v)| matches!(v, Value::Float(p) if *p >= f64::from(a.min_score))).count()
            as u64;
    }
    if let Some(k) = a.k {
        for h in top.iter().take(k) {
            let Some(r) = col.get(h.id)? else { continue };
            if a.json {
                let f: serde_json::Map<String, serde_json::Value> = r
                    .fields
                    .iter()
                    .filter(|(_, v)| !matches!(v, Value::Blob(_)))
                    .map(|(n, v)| (n.clone(), json_value(v)))
                    .collect();
                writeln!(out, "{}", serde_json::json!({"id": h.id, "score": h.score, "fields": f}))?;
            } else {
                writeln!(out, "{:>12}  {:.4}  {}", h.id, h.score, key_fields_line(&r.fields))?;
            }
        }
    }
    if let Some(dir) = &a.gallery {
        let mut rows = Vec::new();
        for (i, h) in top.iter().take(GALLERY_MAX).enumerate() {
            rows.extend(answer_row(&col, i + 1, h)?);
        }
        let ans = Answer {
            rows,
            language: None,
            prompts: Vec::new(),
            encode_time: train_time,
            search_time: score_time,
            notes: vec![format!("scores are classifier probabilities; {}", c.describe())],
        };
        let path = skysift::gallery::write(dir, &format!("classify {}: good {:?}", a.collection, a.good), &ans)?;
        eprintln!("gallery: {}", path.display());
    }
    let written = match &a.field {
        Some(field) => {
            let n = super::with_store_progress("storing scores", a.json, |progress| {
                s.store_values(field, FieldType::Float, &to_store, progress)
            })?;
            Some((field, n))
        }
        None => None,
    };
    let summary = serde_json::json!({
        "summary": {
            "classifier": c.describe(), "scored": scored.scored, "above": above, "min_score": a.min_score,
            "train_ms": train_time.as_secs_f64() * 1e3, "score_ms": score_time.as_secs_f64() * 1e3,
            "stored": written.map(|(f, n)| serde_json::json!({"field": f, "records": n})),
        }
    });
    if a.json {
        writeln!(out, "{summary}")?;
    } else {
        out.flush()?;
        eprintln!(
            "{}\nscored {} records in {:.1} ms (training {:.1} ms); {above} at or above p = {}",
            c.describe(),
            scored.scored,
            score_time.as_secs_f64() * 1e3,
            train_time.as_secs_f64() * 1e3,
            a.min_score
        );
        if let Some((f, n)) = written {
            eprintln!("stored {n} scores in field {f:?}; filter with --where \"{f} >= 0.9\"");
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
