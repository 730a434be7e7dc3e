//! `skysift search`: batch vector queries, one JSON line of results per query.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use skysift::ingest::vectors::VectorFile;
use skysift::{Hit, SearchParams, SearchScratch};

#[derive(Debug, clap::Args)]
#[expect(clippy::struct_excessive_bools, reason = "independent command-line flags")]
pub struct Args {
    /// Database directory.
    db: PathBuf,
    /// Collection name.
    collection: String,
    /// Query vectors: .npy or .fbin.
    #[arg(long)]
    queries: PathBuf,
    /// Results per query.
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    k: usize,
    /// Search breadth for the graph index (ignored by the exact scan).
    #[arg(long)]
    ef: Option<usize>,
    /// Traverse graphs on f32 vectors instead of int8 codes.
    #[arg(long)]
    f32_traversal: bool,
    /// Candidates per segment rescored with exact f32 scores (default: all ef).
    #[arg(long)]
    rescore: Option<usize>,
    /// Learned anchors scored per segment to seed the search (default: all the graph has).
    #[arg(long)]
    anchors: Option<usize>,
    /// Scan every row exactly instead of searching the graphs.
    #[arg(long)]
    exact: bool,
    /// Search threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where to write results (JSON lines).
    #[arg(long)]
    output: PathBuf,
    /// Only records passing this filter, e.g. "class = 'Port' AND year BETWEEN 2019 AND 2023".
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,
    /// Print the plan of the first query to stderr: per segment the passing rows (estimated and
    /// actual), the strategy and why, and the time spent.
    #[arg(long)]
    explain: bool,
    /// Force one strategy on every segment for filtered search: exact, graph or two-hop
    /// (benchmarks; the planner chooses by itself otherwise).
    #[arg(long, value_name = "STRATEGY")]
    plan: Option<String>,
    /// Search the queries one at a time, as a service answering them as they come would
    /// (default: in blocks, where a scanned segment's rows are read once per block).
    #[arg(long)]
    one_by_one: bool,
}

#[expect(
    clippy::too_many_lines,
    reason = "the search command from arguments to output; to move into the library with the presentation layer (issue 13, item 2)"
)]
pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    if a.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let opened = std::time::Instant::now();
    let db = super::open_read(&a.db)?;
    let col = db.snapshot().collection(&a.collection)?;
    let open_ms = opened.elapsed().as_secs_f64() * 1e3;
    let mut qf = VectorFile::open(&a.queries)?;
    if qf.dim() != col.schema().dim as usize {
        bail!("queries have dimension {}, collection {} has {}", qf.dim(), a.collection, col.schema().dim);
    }
    let dim = qf.dim();
    let n = qf.rows();
    let queries = qf.read(0, n)?;
    let graphs = col.index_state().iter().filter(|s| s.graph_levels.is_some()).count();
    let mode = if a.exact || graphs == 0 { "exact" } else { "graph" };
    let params = SearchParams {
        k: a.k,
        ef: a.ef,
        exact: a.exact,
        f32_traversal: a.f32_traversal,
        rescore: a.rescore,
        anchors: a.anchors,
    };
    let force = match a.plan.as_deref() {
        None => None,
        Some(p) => Some(
            skysift::query::Strategy::from_name(p)
                .with_context(|| format!("--plan {p:?}: use exact, graph or two-hop"))?,
        ),
    };
    let filter_start = Instant::now();
    let prepared = match (&a.filter, a.explain || force.is_some()) {
        (Some(f), _) => Some(col.prepare_filter(f.as_str())?.force(force)),
        (None, true) => Some(col.prepare_filter(skysift::filter::Filter::all())?.force(force)),
        (None, false) => None,
    };
    let filter_secs = filter_start.elapsed().as_secs_f64();
    if let (true, Some(pf), Some(q)) = (a.explain, &prepared, queries.chunks_exact(dim).next()) {
        let (_, e) = if a.one_by_one {
            col.explain(q, pf, &params, &mut SearchScratch::default())?
        } else {
            let block = &queries[..queries.len().min(skysift::query::BLOCK * dim)];
            let (hits, e) = col.explain_batch(block, pf, &params, &mut SearchScratch::default())?;
            (hits.into_iter().next().unwrap_or_default(), e)
        };
        eprintln!("{e}");
    }
    let prepared = prepared.as_ref();
    let start = Instant::now();
    let per = n.div_ceil(a.threads).max(1);
    let evaluations = std::sync::atomic::AtomicUsize::new(0);
    let one_by_one = a.one_by_one;
    let results: Vec<anyhow::Result<Vec<Vec<Hit>>>> = std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(per * dim)
            .map(|chunk| {
                let col = col.clone();
                let evaluations = &evaluations;
                s.spawn(move || {
                    let mut scratch = SearchScratch::default();
                    if !one_by_one {
                        let hits = col.search_batch(chunk, prepared, &params, &mut scratch)?;
                        evaluations.fetch_add(scratch.evaluations, std::sync::atomic::Ordering::Relaxed);
                        return Ok(hits);
                    }
                    chunk
                        .chunks_exact(dim)
                        .map(|q| {
                            let hits = match prepared {
                                Some(pf) => col.search_filtered(q, pf, &params, &mut scratch)?,
                                None => col.search(q, &params, &mut scratch)?,
                            };
                            evaluations.fetch_add(scratch.evaluations, std::sync::atomic::Ordering::Relaxed);
                            Ok(hits)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a search thread panicked"))))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&a.output).with_context(|| format!("creating {}", a.output.display()))?,
    );
    let mut qi = 0usize;
    for part in results {
        for hits in part? {
            let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
            let scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
            writeln!(out, "{}", serde_json::json!({"query": qi, "ids": ids, "scores": scores}))?;
            qi += 1;
        }
    }
    out.flush()?;
    super::outln!(
        "{}",
        serde_json::json!({"queries": n, "seconds": secs, "qps": n as f64 / secs.max(1e-9), "k": a.k,
            "ef": params.ef_or_default(), "threads": a.threads, "mode": mode, "one_by_one": a.one_by_one,
            "evaluations_per_query": evaluations.into_inner() as f64 / n.max(1) as f64,
            "filter": a.filter, "passing": prepared.map(skysift::query::PreparedFilter::count),
            "filter_seconds": filter_secs, "open_ms": open_ms,
            "vectors_mb": col.count() as f64 * dim as f64 * 4.0 / 1e6,
            "rss_mb": super::proc_status_kb("VmRSS").map(|kb| kb as f64 / 1e3),
            "rss_anon_mb": super::proc_status_kb("RssAnon").map(|kb| kb as f64 / 1e3),
            "rss_file_mb": super::proc_status_kb("RssFile").map(|kb| kb as f64 / 1e3),
            "peak_rss_mb": super::proc_status_kb("VmHWM").map(|kb| kb as f64 / 1e3)})
    );
    Ok(ExitCode::SUCCESS)
}
