//! `skysift load`: precomputed embeddings and metadata into a collection.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use skysift::encode::{ModelManifest, Provenance};
use skysift::export::EmbeddingInfo;
use skysift::export::products::{ProductOptions, ProductReader};
use skysift::ingest::{load_metadata, vectors::VectorFile};
use skysift::schema::{FieldType, Metric};
use skysift::{CollectionSpec, Db, IndexParams, NewRecord, RowBatch};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database directory (created when missing).
    db: PathBuf,
    /// Collection name (created when missing, with the vectors' dimension).
    collection: String,
    /// Vectors: .npy (float32 or float64, 2-D) or .fbin (big-ann layout).
    #[arg(long, required_unless_present = "from", conflicts_with = "from")]
    vectors: Option<PathBuf>,
    /// An embedding product instead: `GeoParquet` or Parquet with an embedding column (list or
    /// fixed-size list of float32); geometry becomes the footprint, other columns fields.
    #[arg(long, value_name = "FILE.parquet", conflicts_with = "metadata")]
    from: Option<PathBuf>,
    /// The embedding column of --from.
    #[arg(long, value_name = "C", default_value = "vector", requires = "from")]
    vector_column: String,
    /// The WKB geometry column of --from (default: the `GeoParquet` primary column, else `geometry`).
    #[arg(long, value_name = "G", requires = "from")]
    geometry_column: Option<String>,
    /// The model the vectors of --from come from: checked against the file's `emb:` metadata,
    /// or (with --declare-model) recorded as their provenance, so that text queries work.
    #[arg(long, value_name = "ID", requires = "from")]
    model_id: Option<String>,
    /// Record --model-id (the manifest in --model, default models/demo) as the vectors' encoder.
    #[arg(long, requires = "model_id")]
    declare_model: bool,
    /// Model directory for --declare-model.
    #[arg(long, requires = "declare_model")]
    model: Option<PathBuf>,
    /// One JSON object per vector row; `id` sets the record id (default: the row number).
    #[arg(long)]
    metadata: Option<PathBuf>,
    /// Rows per committed batch (with --from: rows per decoded Parquet batch).
    #[arg(long, default_value_t = 10_000)]
    batch_size: usize,
    /// Metric for a new collection: cosine (vectors are normalised) or ip.
    #[arg(long, default_value = "cosine")]
    metric: String,
    /// Field types overriding inference: name:type[,name:type...] (keyword, integer, float,
    /// timestamp, bool, `geo_bbox`, text).
    #[arg(long)]
    schema: Option<String>,
    /// Replace records whose id exists instead of refusing the load.
    #[arg(long)]
    upsert: bool,
    /// A sample of queries (.npy/.fbin, same dimension) that guides the graph toward
    /// out-of-distribution queries (e.g. text queries over image vectors).
    #[arg(long)]
    query_sample: Option<PathBuf>,
    /// Flush to a segment (and build its graph) when this many rows are in memory (with --from:
    /// rows per segment, each written directly, without the WAL).
    #[arg(long, default_value_t = 1_000_000)]
    flush_rows: usize,
    /// HNSW M for a new collection.
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// HNSW efConstruction for a new collection.
    #[arg(long, default_value_t = 200)]
    ef_construction: usize,
    /// Query-guided edges per node for a new collection (used with --query-sample).
    #[arg(long, default_value_t = 16)]
    extra_edges: usize,
    /// Traversal codes for a new collection: int8 or none.
    #[arg(long, default_value = "int8")]
    quantization: String,
    /// Segments smaller than this are scanned exactly, without a graph.
    #[arg(long, default_value_t = 2048)]
    min_index_rows: usize,
    /// Graph construction: native (skysift's parallel HNSW) or `hnsw_rs`.
    #[arg(long, default_value = "native")]
    builder: String,
    /// Threads for building graphs (0 = all cores).
    #[arg(long, default_value_t = 0)]
    index_threads: usize,
}

fn parse_overrides(s: Option<&str>) -> anyhow::Result<Vec<(String, FieldType)>> {
    let Some(s) = s else { return Ok(Vec::new()) };
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (n, t) = p.split_once(':').with_context(|| format!("--schema entry {p:?} is not name:type"))?;
            let ty = FieldType::from_name(t.trim()).with_context(|| {
                format!(
                    "unknown type {t:?} in --schema; use keyword, integer, float, timestamp, bool, geo_bbox or text"
                )
            })?;
            Ok((n.trim().to_owned(), ty))
        })
        .collect()
}

fn index_params(a: &Args) -> anyhow::Result<IndexParams> {
    let index = IndexParams {
        m: a.m,
        ef_construction: a.ef_construction,
        extra_edges: a.extra_edges,
        min_rows: a.min_index_rows,
        int8: match a.quantization.as_str() {
            "int8" => true,
            "none" => false,
            q => bail!("unknown --quantization {q:?}; use int8 or none"),
        },
        hnsw_rs: match a.builder.as_str() {
            "native" => false,
            "hnsw_rs" => true,
            b => bail!("unknown --builder {b:?}; use native or hnsw_rs"),
        },
    };
    index.validate()?;
    Ok(index)
}

#[expect(
    clippy::too_many_lines,
    reason = "the load command from arguments to summary; to move into the library with the presentation layer (issue 13, item 2)"
)]
pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let metric = match a.metric.as_str() {
        "cosine" => Metric::Cosine,
        "ip" | "inner_product" => Metric::InnerProduct,
        m => bail!("unknown metric {m:?}; use cosine or ip"),
    };
    let Some(vectors) = &a.vectors else {
        return run_from(a);
    };
    let mut vf = VectorFile::open(vectors)?;
    let (rows, dim) = (vf.rows(), vf.dim());
    let overrides = parse_overrides(a.schema.as_deref())?;
    let inferred = match &a.metadata {
        Some(p) => {
            let inf = load_metadata::infer(p, &overrides)?;
            if inf.rows != rows {
                bail!(
                    "{} has {} rows but {} has {rows} vectors; they must match row for row",
                    p.display(),
                    inf.rows,
                    vectors.display()
                );
            }
            Some(inf)
        }
        None => None,
    };
    let index = index_params(a)?;
    let sample = match &a.query_sample {
        Some(p) => {
            let mut f = VectorFile::open(p)?;
            if f.dim() != dim {
                bail!("{} has dimension {}, the vectors have {dim}", p.display(), f.dim());
            }
            let n = f.rows();
            Some(f.read(0, n)?)
        }
        None => None,
    };
    let db = Db::builder(&a.db).flush_rows(a.flush_rows).index_threads(a.index_threads).open()?;
    let snap = db.snapshot();
    if snap.collection(&a.collection).is_err() {
        let mut spec = CollectionSpec::new(u32::try_from(dim).context("dimension too large")?, metric).index(index);
        if let Some(inf) = &inferred {
            spec.fields.clone_from(&inf.fields);
            let shown: Vec<String> = inf.fields.iter().map(|(n, t)| format!("{n}:{}", t.name())).collect();
            super::outln!(
                "inferred schema from {}: {}",
                a.metadata.as_ref().map_or(String::new(), |p| p.display().to_string()),
                if shown.is_empty() { "(no fields)".into() } else { shown.join(", ") }
            );
        }
        db.create_collection(&a.collection, spec)?;
        super::outln!("created collection {} (dim {dim}, {})", a.collection, metric.name());
    }
    if let Some(sample) = &sample {
        db.set_query_sample(&a.collection, sample)?;
        super::outln!("stored a query sample of {} vectors to guide the graph", sample.len() / dim);
    }
    let col = db.snapshot().collection(&a.collection)?;
    if col.schema().dim as usize != dim {
        bail!("{} has dimension {dim}, collection {} has {}", vectors.display(), a.collection, col.schema().dim);
    }
    let types: Vec<(String, FieldType)> = col.schema().fields.iter().map(|f| (f.name.clone(), f.ty)).collect();

    // Check everything before writing anything: vectors finite, metadata typed, ids unique.
    let t0 = Instant::now();
    let mut ids = HashSet::with_capacity(rows);
    let mut meta = a.metadata.as_ref().map(|p| load_metadata::Reader::open(p, &types)).transpose()?;
    let chunk = 8192;
    let mut row = 0;
    while row < rows {
        let n = chunk.min(rows - row);
        vf.read(row, n)?;
        for r in row..row + n {
            let id = match meta.as_mut() {
                Some(m) => m.next_row()?.context("metadata ended early")?.id.unwrap_or(r as u64),
                None => r as u64,
            };
            if !ids.insert(id) {
                bail!("record id {id} appears twice in the input (row {r})");
            }
            if !a.upsert && col.get(id)?.is_some() {
                bail!(
                    "record id {id} (row {r}) already exists in {}; pass --upsert to replace existing records",
                    a.collection
                );
            }
        }
        row += n;
    }
    drop(ids);
    eprintln!("checked {rows} rows in {:.2}s", t0.elapsed().as_secs_f64());

    let mut meta = a.metadata.as_ref().map(|p| load_metadata::Reader::open(p, &types)).transpose()?;
    let t1 = Instant::now();
    let mut total = 0usize;
    let mut batch_no = 0usize;
    let mut row = 0;
    while row < rows {
        let n = a.batch_size.min(rows - row);
        let data = vf.read(row, n)?;
        let mut tx = db.begin_write(&a.collection)?;
        for (i, v) in data.chunks_exact(dim).enumerate() {
            let r = row + i;
            let (id, fields) = match meta.as_mut() {
                Some(m) => {
                    let mr = m.next_row()?.context("metadata ended early")?;
                    (mr.id.unwrap_or(r as u64), mr.fields)
                }
                None => (r as u64, Vec::new()),
            };
            let rec = NewRecord { id, vector: v.to_vec(), fields };
            if a.upsert { tx.upsert(rec) } else { tx.insert(rec) }.with_context(|| format!("row {r}"))?;
        }
        let info = tx.commit()?;
        if let Some(e) = info.flush_error {
            bail!(
                "batch {} was committed ({} rows in total), but flushing to a segment failed: {e}",
                batch_no + 1,
                total + n
            );
        }
        batch_no += 1;
        total += n;
        row += n;
        let secs = t1.elapsed().as_secs_f64();
        super::outln!(
            "committed batch {batch_no}: rows {}..{}, total {total} rows ({:.0} rows/s)",
            row - n,
            row,
            total as f64 / secs.max(1e-9)
        );
    }
    let tf = Instant::now();
    db.flush(&a.collection)?;
    super::outln!("flushed and indexed in {:.2}s", tf.elapsed().as_secs_f64());
    let secs = t1.elapsed().as_secs_f64();
    super::outln!(
        "loaded {total} rows into {} in {secs:.2}s ({:.0} rows/s); collection now has {} records",
        a.collection,
        total as f64 / secs.max(1e-9),
        db.snapshot().collection(&a.collection)?.count()
    );
    Ok(ExitCode::SUCCESS)
}

/// The bulk path of `load --from`: rows gather into batches of --flush-rows, each written as one
/// segment (no WAL, no in-memory table), durable when its manifest is published. Returns the
/// rows loaded.
fn append_product(db: &Db, a: &Args, product: &mut ProductReader, dim: usize) -> anyhow::Result<u64> {
    let path = product.path().to_path_buf();
    let schema = db.snapshot().collection(&a.collection)?.schema().clone();
    let bar = super::progress_bar("loading");
    bar.set_length(product.rows());
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut batch = RowBatch::new(dim, schema.fields.len());
    batch.reserve(usize::try_from(product.rows()).unwrap_or(usize::MAX).min(a.flush_rows));
    loop {
        let more = product.next_rows(&schema, &mut batch)?;
        if batch.len() >= a.flush_rows || (!more && !batch.is_empty()) {
            for (i, &id) in batch.ids().iter().enumerate() {
                if !seen.insert(id) {
                    bail!(
                        "record id {id} appears twice in {} (row {}; {total} rows loaded before its batch)",
                        path.display(),
                        total + i as u64
                    );
                }
            }
            let end = total + batch.len() as u64;
            let report = match db.append_rows(&a.collection, &mut batch, a.upsert) {
                Ok(r) => r,
                Err(skysift::Error::DuplicateId { id, .. }) => bail!(
                    "record id {id} of {} already exists in {}; pass --upsert to replace existing records (rows \
                     {total}..{end} are not loaded, the {total} before them are)",
                    path.display(),
                    a.collection
                ),
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("rows {total}..{end} are not loaded (the {total} before them are)")));
                }
            };
            total += report.rows;
            batch.clear();
        }
        bar.set_position(total + batch.len() as u64);
        if !more {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(total)
}

/// The provenance params of `load --from`: declared (`--model-id ID --declare-model`, checked
/// against the manifest), else the file's `emb:` metadata (checked against `--model-id`), else
/// none (text and image queries are then refused).
fn provenance(a: &Args, product: &ProductReader) -> anyhow::Result<Vec<(String, String)>> {
    let emb = product.embedding();
    if a.declare_model {
        let id = a.model_id.as_deref().context("--declare-model needs --model-id")?;
        let dir = match &a.model {
            Some(d) => d.clone(),
            None => skysift::encode::locate::default_model_dir().map_err(anyhow::Error::msg)?,
        };
        let manifest = ModelManifest::load(&dir)?;
        if manifest.model_id != id {
            bail!(
                "--model-id {id:?} is not the model in {} ({:?}); pass --model DIR of model {id:?}",
                dir.display(),
                manifest.model_id
            );
        }
        if manifest.embedding_dim != product.dim() {
            bail!(
                "model {id:?} makes {}-dimensional embeddings, the file has {}",
                manifest.embedding_dim,
                product.dim()
            );
        }
        let p = Provenance {
            model_id: manifest.model_id.clone(),
            fingerprint: manifest.fingerprint()?,
            dim: manifest.embedding_dim,
            preprocessing: manifest.preprocessing(),
        };
        if let Some(f) = emb.and_then(|e| e.fingerprint.as_deref())
            && f != p.fingerprint.to_hex()
        {
            bail!(
                "the file's emb: metadata names model {:?} (fingerprint {f}), not {id:?}: drop --declare-model to keep \
                 the file's provenance",
                emb.and_then(|e| e.model_id.clone()).unwrap_or_default()
            );
        }
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let mut params = p.to_params();
        params.push((skysift::session::MODEL_DIR_PARAM.to_owned(), dir.display().to_string()));
        return Ok(params);
    }
    let params = emb.map(EmbeddingInfo::provenance_params).unwrap_or_default();
    if let Some(id) = &a.model_id {
        match emb.and_then(|e| e.model_id.as_deref()) {
            Some(m) if m == id => {}
            Some(m) => bail!("the file's embeddings come from model {m:?}, not {id:?} (its emb: metadata)"),
            None => bail!(
                "the file carries no emb: provenance; add --declare-model to record that its vectors come from {id:?}"
            ),
        }
    }
    Ok(params)
}

/// `load --from`: an embedding product, streamed batch by batch.
fn run_from(a: &Args) -> anyhow::Result<ExitCode> {
    let path = a.from.as_ref().context("give --vectors FILE or --from FILE.parquet")?;
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let opts = ProductOptions {
        vector_column: a.vector_column.clone(),
        geometry_column: a.geometry_column.clone(),
        batch_rows: a.batch_size,
    };
    let mut product = ProductReader::open(path, &opts)?;
    let dim = product.dim();
    if dim == 0 {
        bail!("{} has no rows to load", path.display());
    }
    for s in product.skipped() {
        eprintln!("column {s} is not loaded (no matching field type)");
    }
    let params = provenance(a, &product)?;
    let metric = match (product.embedding().map(|e| e.metric), a.metric.as_str()) {
        (Some(m), _) => m,
        (None, "cosine") => Metric::Cosine,
        (None, "ip" | "inner_product") => Metric::InnerProduct,
        (None, m) => bail!("unknown metric {m:?}; use cosine or ip"),
    };
    let db = Db::builder(&a.db).flush_rows(a.flush_rows).index_threads(a.index_threads).open()?;
    if db.snapshot().collection(&a.collection).is_err() {
        let mut spec =
            CollectionSpec::new(u32::try_from(dim).context("dimension too large")?, metric).index(index_params(a)?);
        spec.fields = product.fields().to_vec();
        spec.params.extend(params.iter().cloned());
        db.create_collection(&a.collection, spec)?;
        super::outln!("created collection {} (dim {dim}, {})", a.collection, metric.name());
    } else {
        let col = db.snapshot().collection(&a.collection)?;
        if col.schema().dim as usize != dim {
            bail!("{} has dimension {dim}, collection {} has {}", path.display(), a.collection, col.schema().dim);
        }
        let have = col.params().iter().find(|(k, _)| k == skysift::encode::KEY_FINGERPRINT).map(|(_, v)| v);
        let new = params.iter().find(|(k, _)| k == skysift::encode::KEY_FINGERPRINT).map(|(_, v)| v);
        if have != new {
            bail!(
                "collection {} holds vectors of another encoder ({}) than {} ({}); load into a new collection",
                a.collection,
                have.map_or("unknown", String::as_str),
                path.display(),
                new.map_or("unknown", String::as_str)
            );
        }
    }
    if let Some((_, m)) = params.iter().find(|(k, _)| k == skysift::encode::KEY_MODEL_ID) {
        super::outln!("embeddings from model {m:?}: text queries with this encoder work");
    } else {
        super::outln!(
            "embeddings of unknown origin: vector and --like queries only (pass --model-id ID --declare-model to record \
             the encoder)"
        );
    }
    let t0 = Instant::now();
    let total = append_product(&db, a, &mut product, dim)?;
    let secs = t0.elapsed().as_secs_f64();
    super::outln!(
        "loaded {total} rows from {} into {} in {secs:.2}s ({:.0} rows/s); collection now has {} records",
        path.display(),
        a.collection,
        total as f64 / secs.max(1e-9),
        db.snapshot().collection(&a.collection)?.count()
    );
    Ok(ExitCode::SUCCESS)
}
