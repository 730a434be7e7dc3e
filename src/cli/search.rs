//! `skysift search`: batch vector queries, one JSON line of results per query.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use skysift::ingest::vectors::VectorFile;
use skysift::{Hit, SearchScratch};

#[derive(Debug, clap::Args)]
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
    /// Search threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where to write results (JSON lines).
    #[arg(long)]
    output: PathBuf,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    if a.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let db = super::open_read(&a.db)?;
    let col = db.snapshot().collection(&a.collection)?;
    let mut qf = VectorFile::open(&a.queries)?;
    if qf.dim() != col.schema().dim as usize {
        bail!("queries have dimension {}, collection {} has {}", qf.dim(), a.collection, col.schema().dim);
    }
    let dim = qf.dim();
    let n = qf.rows();
    let queries = qf.read(0, n)?;
    let mode = "exact";
    let start = Instant::now();
    let per = n.div_ceil(a.threads).max(1);
    let results: Vec<anyhow::Result<Vec<Vec<Hit>>>> = std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(per * dim)
            .map(|chunk| {
                let col = col.clone();
                s.spawn(move || {
                    let mut scratch = SearchScratch::default();
                    chunk.chunks_exact(dim).map(|q| Ok(col.search_exact(q, a.k, &mut scratch)?)).collect()
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
    let _ = a.ef;
    println!(
        "{}",
        serde_json::json!({"queries": n, "seconds": secs, "qps": n as f64 / secs.max(1e-9), "k": a.k, "threads": a.threads, "mode": mode})
    );
    Ok(ExitCode::SUCCESS)
}
