//! `skysift info` and `skysift verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use skysift::io::RealVfs;
use skysift::verify::verify as verify_db;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Database directory.
    db: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Database directory.
    db: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn info(a: &InfoArgs) -> anyhow::Result<ExitCode> {
    let db = super::open_read(&a.db)?;
    let snap = db.snapshot();
    let mut out = Vec::new();
    for name in snap.collections() {
        let c = snap.collection(&name)?;
        let segs = c.segments();
        let index = c.index_state();
        out.push(serde_json::json!({
            "name": name,
            "count": c.count(),
            "dim": c.schema().dim,
            "metric": c.schema().metric.name(),
            "fields": c.schema().fields.iter().map(|f| serde_json::json!({"name": f.name, "type": f.ty.name()})).collect::<Vec<_>>(),
            "segments": segs.iter().map(|s| serde_json::json!({"id": s.id, "rows": s.rows, "live": s.live, "bytes": s.bytes})).collect::<Vec<_>>(),
            "index": c.index_params().map_or(serde_json::Value::Null, |p| serde_json::json!({"m": p.m, "ef_construction": p.ef_construction,
                "extra_edges": p.extra_edges, "min_rows": p.min_rows, "quantization": if p.int8 { "int8" } else { "none" }})),
            "segment_index": index.iter().map(|s| serde_json::json!({"segment": s.segment, "rows": s.rows,
                "graph_levels": s.graph_levels, "hnsw_slots": s.hnsw_slots, "guided_slots": s.guided_slots,
                "int8_codes": s.int8_codes, "index_bytes": s.index_bytes,
                "calibration": s.calibration.map(|(ef, recall, queries)| serde_json::json!({"ef": ef, "recall_at_10": recall, "queries": queries}))})).collect::<Vec<_>>(),
            "memory_rows": c.memory_rows(),
            "wal_bytes": c.wal_bytes(),
            "bytes": segs.iter().map(|s| s.bytes).sum::<u64>() + c.wal_bytes(),
            "params": c.params().iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        }));
    }
    if a.json {
        super::outln!("{}", serde_json::json!({ "path": a.db, "generation": snap.generation(), "collections": out }));
        return Ok(ExitCode::SUCCESS);
    }
    super::outln!("database {} (manifest generation {})", a.db.display(), snap.generation());
    if out.is_empty() {
        super::outln!("  no collections");
    }
    for c in &out {
        super::outln!(
            "collection {}: {} records, dim {}, {}",
            c["name"].as_str().unwrap_or(""),
            c["count"],
            c["dim"],
            c["metric"].as_str().unwrap_or("")
        );
        let fields: Vec<String> = c["fields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| format!("{}:{}", f["name"].as_str().unwrap_or(""), f["type"].as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        super::outln!("  fields: {}", fields.join(", "));
        for s in c["segments"].as_array().into_iter().flatten() {
            super::outln!("  segment {}: {} rows ({} live), {} bytes", s["id"], s["rows"], s["live"], s["bytes"]);
        }
        super::outln!("  index: {}", c["index"]);
        for s in c["segment_index"].as_array().into_iter().flatten() {
            if s["graph_levels"].is_null() {
                super::outln!("  segment {}: no graph (exact scan)", s["segment"]);
            } else {
                super::outln!(
                    "  segment {}: graph with {} levels, {} HNSW + {} query-guided slots per node, int8 codes: {}, {} index bytes",
                    s["segment"],
                    s["graph_levels"],
                    s["hnsw_slots"],
                    s["guided_slots"],
                    s["int8_codes"],
                    s["index_bytes"]
                );
                if let Some(cal) = s["calibration"].as_object() {
                    super::outln!(
                        "    calibrated: ef {} reaches recall@10 {:.3} on {} held-out sample queries (default searches use it)",
                        cal["ef"],
                        cal["recall_at_10"].as_f64().unwrap_or(0.0),
                        cal["queries"]
                    );
                }
            }
        }
        super::outln!(
            "  in memory: {} rows; WAL: {} bytes; total on disk: {} bytes",
            c["memory_rows"],
            c["wal_bytes"],
            c["bytes"]
        );
        if let Some(p) = c["params"].as_object().filter(|p| !p.is_empty()) {
            for (k, v) in p {
                super::outln!("  param {k} = {}", v.as_str().unwrap_or(""));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn verify(a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    if !a.db.join("MANIFEST").exists() {
        anyhow::bail!("{} is not a skysift database (no MANIFEST)", a.db.display());
    }
    let report = verify_db(&RealVfs, &a.db);
    if a.json {
        let files: Vec<_> = report
            .files
            .iter()
            .map(|f| serde_json::json!({"path": f.path, "kind": f.kind, "bytes": f.bytes, "problems": f.problems, "notes": f.notes}))
            .collect();
        super::outln!("{}", serde_json::json!({ "ok": report.ok(), "files": files }));
    } else {
        for f in &report.files {
            let status = if f.problems.is_empty() { "ok" } else { "DAMAGED" };
            super::outln!("{status:8} {} {} ({} bytes)", f.kind, f.path.display(), f.bytes);
            for p in &f.problems {
                super::outln!("         - {p}");
            }
            for n in &f.notes {
                super::outln!("         note: {n}");
            }
        }
        let bytes: u64 = report.files.iter().map(|f| f.bytes).sum();
        let bad = report.files.iter().filter(|f| !f.problems.is_empty()).count();
        super::outln!(
            "verified {} files, {bytes} bytes: {}",
            report.files.len(),
            if bad == 0 { "all intact".to_owned() } else { format!("{bad} damaged") }
        );
    }
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}
