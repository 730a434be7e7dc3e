//! `skysift query` and `skysift label`: natural-language, image and record queries; zero-shot
//! labels.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use skysift::encode::{Device, Prompting};
use skysift::export::{Columns, ExportRow, FileExport, Format, RowWriter};
use skysift::present::{Answer, answer_json, clean, json_value, render_table};
use skysift::session::{QueryInput, Session, SessionOptions};

/// Options shared by `query` and the REPL.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryOpts {
    /// Collection (default: the only one).
    #[arg(long)]
    pub collection: Option<String>,
    /// Results per query.
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    pub k: usize,
    /// Language of the text (default: detected): en, de, fr, es, pt, it, nl, zh, ko, ru.
    #[arg(long)]
    pub lang: Option<String>,
    /// Negative prompt subtracted from the query (repeatable).
    #[arg(long = "not")]
    pub not: Vec<String>,
    /// Prompt templates: `ensemble` (default), `single`, or `off` (encode the bare text).
    #[arg(long, default_value = "ensemble")]
    pub templates: String,
    /// Model directory (default: the one the collection was imported with, else models/demo).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Where the encoder runs: cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Graph search width.
    #[arg(long)]
    pub ef: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database directory.
    db: PathBuf,
    /// The question, in natural language (omit with --image, --like or --file).
    text: Option<String>,
    /// Find images like this image file.
    #[arg(long, conflicts_with = "like")]
    image: Option<PathBuf>,
    /// Find records like this record id.
    #[arg(long)]
    like: Option<u64>,
    /// Run one query per line of this file (JSON lines out, one per query, in order).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Filter, e.g. `class = 'Port' AND datetime >= '2020-01-01' AND eo:cloud_cover < 20`.
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,
    /// Show how the query was planned and executed.
    #[arg(long)]
    explain: bool,
    /// Write the results as geojson (a `FeatureCollection` of footprints), geoparquet, csv or jsonl
    /// (to --output, or to standard output for the text formats).
    #[arg(long, value_name = "FMT", conflicts_with = "file")]
    format: Option<String>,
    /// The file --format writes (replaced when it exists).
    #[arg(long, short = 'o', value_name = "FILE", requires = "format")]
    output: Option<PathBuf>,
    /// Also write an HTML gallery of the results into this folder: thumbnails, scores and a map of
    /// the footprints (one self-contained file; its path goes to standard error).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["file", "all"])]
    gallery: Option<PathBuf>,
    #[command(flatten)]
    analyst: AnalystOpts,
    #[command(flatten)]
    opts: QueryOpts,
}

/// Relevance feedback, every match above a score, paging and one hit per place (issue 17).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AnalystOpts {
    /// A relevant record: the query moves towards it (Rocchio; repeatable or comma-separated).
    /// Without a question, the query starts from the mean of the good records.
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub good: Vec<u64>,
    /// A record that is not relevant: the query moves away from it (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub bad: Vec<u64>,
    /// Rocchio weights ALPHA,BETA,GAMMA of the query, the good mean and the bad mean.
    #[arg(long, value_name = "A,B,C", default_value = "1.0,0.75,0.15")]
    pub rocchio: String,
    /// Every match scoring at least this, not only k (with --offset or --cursor: pages of k).
    #[arg(long, value_name = "S")]
    pub min_score: Option<f32>,
    /// Stream every match (above --min-score when given, else every record passing the filter)
    /// as JSON lines, in storage order, with constant memory.
    #[arg(long)]
    pub all: bool,
    /// Skip this many results (paging).
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Resume after the page that printed this cursor (`next_cursor`).
    #[arg(long)]
    pub cursor: Option<String>,
    /// At most --per-group results per value of this field (e.g. `scene`); k counts groups.
    #[arg(long, value_name = "FIELD")]
    pub group_by: Option<String>,
    /// Results per group with --group-by.
    #[arg(long, default_value_t = 1)]
    pub per_group: usize,
    /// Diversify the results by maximal marginal relevance (1 = plain ranking, 0 = only diversity).
    #[arg(long, value_name = "LAMBDA")]
    pub diverse: Option<f32>,
    /// Join hits whose footprints touch into one place (area in km2, best score).
    #[arg(long)]
    pub merge_tiles: bool,
    /// Exact scans only (no graph search).
    #[arg(long)]
    pub exact: bool,
}

impl AnalystOpts {
    /// Applies the options to a session.
    pub fn apply(&self, s: &mut Session) -> anyhow::Result<()> {
        s.feedback.mark_good(&self.good);
        s.feedback.mark_bad(&self.bad);
        s.feedback.weights = skysift::analyst::Rocchio::parse(&self.rocchio)?;
        // Every match above the score; with --offset or --cursor, pages of k of them.
        s.refine = skysift::analyst::Refine {
            min_score: self.min_score,
            all: false,
            offset: self.offset,
            cursor: self.cursor.as_deref().map(skysift::analyst::Cursor::parse).transpose()?,
            group_by: self.group_by.clone(),
            per_group: self.per_group,
            diverse: self.diverse,
            merge_tiles: self.merge_tiles,
            exact: self.exact,
        }
        .every_match_unless_paged();
        Ok(())
    }
}

#[derive(Debug, clap::Args)]
pub struct LabelArgs {
    /// Database directory.
    db: PathBuf,
    /// Collection.
    collection: String,
    /// Labels, one per line.
    #[arg(long)]
    labels: PathBuf,
    /// Labels per record.
    #[arg(long, default_value_t = 1)]
    top: usize,
    /// Prompt templates: ensemble, single or off.
    #[arg(long, default_value = "ensemble")]
    templates: String,
    /// Language of the labels.
    #[arg(long, default_value = "en")]
    lang: String,
    /// Model directory.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Where the encoder runs: cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Store each record's best label in this keyword field (added to the schema when missing),
    /// so that filters can use it: `--where "NAME = 'airport'"`. Needs write access.
    #[arg(long, value_name = "NAME")]
    field: Option<String>,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

pub fn prompting(s: &str) -> anyhow::Result<Prompting> {
    Ok(match s {
        "ensemble" => Prompting::Ensemble,
        "single" => Prompting::Single,
        "off" => Prompting::Off,
        other => bail!("unknown --templates {other:?}; use ensemble, single or off"),
    })
}

pub fn device(s: &str) -> anyhow::Result<Device> {
    Ok(match s {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda,
        "auto" => Device::Auto,
        other => bail!("unknown --device {other:?}; use cpu, cuda or auto"),
    })
}

/// The session options `o` asks for.
pub fn session_options(o: &QueryOpts) -> anyhow::Result<SessionOptions> {
    Ok(SessionOptions {
        collection: o.collection.clone(),
        model_dir: o.model.clone(),
        device: device(&o.device)?,
        k: o.k,
        lang: o.lang.clone(),
        negatives: o.not.clone(),
        prompting: prompting(&o.templates)?,
        ef: o.ef,
    })
}

/// Opens a session on one named collection for `label` and `classify`: the database opened for
/// writing when results are stored in a field, the model, device and templates given, and the
/// query language when one is fixed.
pub fn collection_session(
    db: &std::path::Path,
    write: bool,
    collection: &str,
    model: Option<&std::path::Path>,
    dev: &str,
    templates: &str,
    lang: Option<String>,
) -> anyhow::Result<Session> {
    let db = if write { super::open_write(db)? } else { super::open_read(db)? };
    let opts = SessionOptions {
        collection: Some(collection.to_owned()),
        model_dir: model.map(std::path::Path::to_path_buf),
        device: device(dev)?,
        lang,
        prompting: prompting(templates)?,
        ..SessionOptions::default()
    };
    Ok(Session::open_with(db, opts)?)
}

/// Opens a session with the options applied.
pub fn session(db: &std::path::Path, o: &QueryOpts) -> anyhow::Result<Session> {
    Ok(Session::open_with(super::open_read(db)?, session_options(o)?)?)
}

/// Renders an answer as a table.
pub fn print_table(out: &mut impl Write, a: &Answer) -> std::io::Result<()> {
    let mut text = String::new();
    render_table(&mut text, a);
    writeln!(out, "{text}")
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let mut s = session(&a.db, &a.opts)?;
    a.analyst.apply(&mut s)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Some(file) = &a.file {
        let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        for line in std::io::BufReader::new(f).lines() {
            let line = line?;
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            match s.ask_filtered(&QueryInput::Text(text.to_owned()), a.filter.as_deref(), a.explain) {
                Ok(ans) => writeln!(out, "{}", answer_json(text, &ans))?,
                Err(e) => writeln!(out, "{}", serde_json::json!({"query": text, "error": e.to_string()}))?,
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (input, label) = match (&a.text, &a.image, a.like) {
        (_, Some(p), _) => (QueryInput::Image(p.clone()), p.display().to_string()),
        (_, _, Some(id)) => (QueryInput::Like(id), format!("like {id}")),
        (Some(t), None, None) => (QueryInput::Text(t.clone()), t.clone()),
        (None, None, None) if !a.analyst.good.is_empty() => {
            let col = s.snapshot()?;
            let good = skysift::analyst::Feedback::vectors(&col, &a.analyst.good)?;
            let start = skysift::analyst::Rocchio { alpha: 0.0, beta: 1.0, gamma: 0.0 }.apply(None, &good, &[])?;
            (QueryInput::Vector(start), format!("like {:?}", a.analyst.good))
        }
        (None, None, None) => bail!("give a question, --image PATH, --like ID, --good ID or --file FILE"),
    };
    let format = a.format.as_deref().map(Format::parse).transpose()?;
    if let Some(f) = format
        && f.is_binary()
        && a.output.is_none()
    {
        bail!("--format {} writes a binary file: give it --output FILE", f.name());
    }
    if a.analyst.all {
        drop(out);
        let target = format.map(|f| (f, a.output.as_deref()));
        return stream_all(&mut s, &input, a.filter.as_deref(), a.analyst.min_score, target);
    }
    let ans = s.ask_filtered(&input, a.filter.as_deref(), a.explain)?;
    // One question per process: the encoder is left to the exit, where the OS takes back the
    // tokenizer's hundreds of thousands of allocations at once (dropping them one by one costs
    // tens of milliseconds, a tenth of the command).
    std::mem::forget(s.take_encoder());
    if let Some(dir) = &a.gallery {
        let path = skysift::gallery::write(dir, &label, &ans)?;
        eprintln!("gallery: {}", path.display());
    }
    if let Some(f) = format {
        let columns = Columns::of(s.snapshot()?.schema(), true, false);
        let mut w = Output::open(f, columns, a.output.as_deref())?;
        for r in &ans.rows {
            w.write_row(&ExportRow::from(r))?;
        }
        let n = w.finish()?;
        if let Some(p) = &a.output {
            eprintln!("wrote {n} results to {} ({})", p.display(), f.name());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let cursor = s.refine.next_cursor(&ans.rows, s.k);
    if a.opts.json {
        let mut j = answer_json(&label, &ans);
        j["next_cursor"] = cursor.map_or(serde_json::Value::Null, |c| c.token().into());
        writeln!(out, "{j}")?;
    } else {
        print_table(&mut out, &ans)?;
        if let Some(c) = cursor {
            writeln!(out, "next page: --cursor {}", c.token())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `--format` goes: a file that appears when complete, or standard output.
enum Output {
    File(FileExport),
    Stdout(Box<dyn RowWriter>),
}

impl Output {
    fn open(format: Format, columns: Columns, path: Option<&std::path::Path>) -> anyhow::Result<Output> {
        Ok(match path {
            Some(p) => Output::File(FileExport::create(p, format, columns, &[])?),
            None => Output::Stdout(skysift::export::writer(
                format,
                columns,
                Box::new(std::io::BufWriter::new(std::io::stdout())),
                &[],
            )?),
        })
    }

    fn write_row(&mut self, row: &ExportRow<'_>) -> skysift::Result<()> {
        match self {
            Output::File(f) => f.write_row(row),
            Output::Stdout(w) => w.write_row(row),
        }
    }

    fn finish(self) -> skysift::Result<u64> {
        match self {
            Output::File(f) => f.finish(),
            Output::Stdout(w) => w.finish(),
        }
    }
}

/// `--all`: every match as one JSON line (or one row of `--format`), in storage order, holding
/// nothing per row.
fn stream_all(
    s: &mut Session,
    input: &QueryInput,
    filter: Option<&str>,
    min_score: Option<f32>,
    format: Option<(Format, Option<&std::path::Path>)>,
) -> anyhow::Result<ExitCode> {
    let e = s.encode_query(input)?;
    let col = s.snapshot()?;
    let prepared = filter.map(|f| col.prepare_filter(f)).transpose()?;
    if let Some((f, path)) = format {
        let mut w = Output::open(f, Columns::of(col.schema(), true, false), path)?;
        let (visited, emitted) =
            skysift::analyst::stream_above(&col, &e.vector, prepared.as_ref(), min_score, &mut |id, score, row| {
                let fields = row.fields(&col)?;
                w.write_row(&ExportRow { id, rank: None, score: Some(score), fields: &fields, vector: None })
            })?;
        w.finish()?;
        eprintln!("{emitted} of {visited} passing records written ({})", f.name());
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed: Option<std::io::Error> = None;
    let result =
        skysift::analyst::stream_above(&col, &e.vector, prepared.as_ref(), min_score, &mut |id, score, row| {
            let fields: serde_json::Map<String, serde_json::Value> =
                row.fields(&col)?.iter().map(|(n, v)| (n.clone(), json_value(v))).collect();
            let line = serde_json::json!({"id": id, "score": score, "fields": fields});
            writeln!(out, "{line}").map_err(|err| {
                let msg = err.to_string();
                failed = Some(err);
                skysift::Error::Invalid(msg)
            })
        });
    if let Some(err) = failed {
        return Err(err.into());
    }
    let (visited, emitted) = result?;
    out.flush()?;
    eprintln!("{emitted} of {visited} passing records streamed");
    Ok(ExitCode::SUCCESS)
}

pub fn label(a: &LabelArgs) -> anyhow::Result<ExitCode> {
    let labels: Vec<String> = std::fs::read_to_string(&a.labels)
        .with_context(|| format!("reading {}", a.labels.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if labels.is_empty() {
        bail!("{} has no labels (one per line)", a.labels.display());
    }
    let mut s = collection_session(
        &a.db,
        a.field.is_some(),
        &a.collection,
        a.model.as_deref(),
        &a.device,
        &a.templates,
        Some(a.lang.clone()),
    )?;
    let all = s.label_all(&labels, a.top.max(1))?;
    // Stored before anything is printed, so that a closed output (`| head`) loses nothing.
    let stored = match &a.field {
        Some(field) => {
            let written =
                super::with_store_progress("storing labels", a.json, |progress| s.store_labels(field, &all, progress))?;
            Some((field, written))
        }
        None => None,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (id, best) in &all {
        if let Some((l, _)) = best.first() {
            *counts.entry(l.as_str()).or_default() += 1;
        }
        if a.json {
            writeln!(
                out,
                "{}",
                serde_json::json!({"id": id, "labels": best.iter().map(|(l, s)| serde_json::json!({"label": l, "score": s})).collect::<Vec<_>>()})
            )?;
        } else {
            let shown: Vec<String> = best.iter().map(|(l, s)| format!("{} ({s:.3})", clean(l))).collect();
            writeln!(out, "{id:>12}  {}", shown.join(", "))?;
        }
    }
    if !a.json {
        writeln!(out, "labelled {} records:", all.len())?;
        for (l, n) in counts {
            writeln!(out, "  {n:>6}  {}", clean(l))?;
        }
    }
    if let Some((field, written)) = stored {
        if a.json {
            writeln!(out, "{}", serde_json::json!({"stored": written, "field": field}))?;
        } else {
            writeln!(out, "stored {written} labels in field {field:?}; filter with --where \"{field} = '...'\"")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
