//! `skysift attach`: publish shards built elsewhere in one commit.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database directory (the collection must exist).
    db: PathBuf,
    /// Collection to attach to.
    collection: String,
    /// Shard databases (same schema and model), or staging directories of them.
    #[arg(required = true, value_name = "SHARD")]
    shards: Vec<PathBuf>,
    /// Replace the collection's records whose ids a shard also holds (default: refuse).
    #[arg(long)]
    upsert: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let db = super::open_write(&a.db)?;
    let t = std::time::Instant::now();
    let done = db.attach(&a.collection, &a.shards, a.upsert)?;
    let secs = t.elapsed().as_secs_f64();
    let count = db.snapshot().collection(&a.collection)?.count();
    if a.json {
        let attached: Vec<_> = done
            .attached
            .iter()
            .map(|(src, seg, rows)| serde_json::json!({"source": src, "segment": seg, "rows": rows}))
            .collect();
        super::outln!(
            "{}",
            serde_json::json!({"collection": a.collection, "shards": done.shards, "attached": attached,
                "already_attached": done.already_attached, "replaced": done.replaced, "rows": done.rows(),
                "count": count, "seconds": secs})
        );
    } else {
        super::outln!(
            "attached {} segments ({} rows) from {} shards to {} in {secs:.2}s; {} already attached; {} replaced; {count} records now",
            done.attached.len(),
            done.rows(),
            done.shards.len(),
            a.collection,
            done.already_attached.len(),
            done.replaced,
        );
    }
    Ok(ExitCode::SUCCESS)
}
