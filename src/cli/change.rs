//! `skysift change`: per place seen before and after two dates, how much better it matches a
//! text query, ranked; a table, JSON or `GeoJSON`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use skysift::analyst::{ChangeOptions, PlaceKey, change_geojson};
use skysift::present::clean;
use skysift::time::parse_timestamp;

use super::query::QueryOpts;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database directory.
    db: PathBuf,
    /// What to look for, in natural language (e.g. "new housing").
    text: String,
    /// Records earlier than this date (YYYY-MM-DD or RFC 3339) form the before period.
    #[arg(long)]
    before: String,
    /// Records at or after this date form the after period.
    #[arg(long)]
    after: String,
    /// Only records passing this filter.
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,
    /// How records are matched to places: `grid` (cell of the footprint's centre) or a field name
    /// (for example `scene`: same scene lineage).
    #[arg(long, default_value = "grid")]
    place: String,
    /// Grid cell size in degrees (with --place grid).
    #[arg(long, default_value_t = skysift::analyst::change_default_cell())]
    cell: f64,
    /// Footprint field of the grid.
    #[arg(long, default_value = "footprint")]
    footprint_field: String,
    /// Timestamp field (default: `datetime`, else the only timestamp field).
    #[arg(long)]
    time_field: Option<String>,
    /// Rank the largest loss first (default: the largest gain).
    #[arg(long)]
    loss: bool,
    /// Output: table, json or geojson (`--json` is `--format json`); geojson is a `FeatureCollection`.
    #[arg(long, default_value = "table")]
    format: String,
    /// Write an HTML gallery of the top places (the after image, both scores) into this folder.
    #[arg(long, value_name = "DIR")]
    gallery: Option<PathBuf>,
    #[command(flatten)]
    opts: QueryOpts,
}

fn date(s: &str, flag: &str) -> anyhow::Result<i64> {
    parse_timestamp(s).with_context(|| format!("{flag} {s:?}: give a date as YYYY-MM-DD or RFC 3339"))
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let format = if a.opts.json { "json" } else { a.format.as_str() };
    if !matches!(format, "table" | "json" | "geojson") {
        bail!("unknown --format {format:?}; use table, json or geojson");
    }
    let opts = ChangeOptions {
        before: date(&a.before, "--before")?,
        after: date(&a.after, "--after")?,
        time_field: a.time_field.clone(),
        place: if a.place == "grid" {
            PlaceKey::Grid { cell_deg: a.cell, field: a.footprint_field.clone() }
        } else {
            PlaceKey::Field(a.place.clone())
        },
        loss: a.loss,
    };
    let mut s = super::query::session(&a.db, &a.opts)?;
    let (changes, ans) = s.change(&a.text, a.filter.as_deref(), &opts)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let shown = &changes[..changes.len().min(a.opts.k)];
    match format {
        "geojson" => writeln!(out, "{}", change_geojson(&a.text, shown))?,
        "json" => {
            let places: Vec<serde_json::Value> = shown
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    serde_json::json!({"rank": i + 1, "place": c.place, "bbox": c.bbox, "delta": c.delta,
                        "score_before": c.before, "score_after": c.after, "before_id": c.before_id, "after_id": c.after_id,
                        "rows_before": c.rows_before, "rows_after": c.rows_after})
                })
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::json!({"query": a.text, "before": a.before, "after": a.after, "places_in_both": changes.len(), "places": places, "notes": ans.notes})
            )?;
        }
        _ => {
            writeln!(
                out,
                "{:>4}  {:>8}  {:>7}  {:>7}  {:>20}  {:>20}  place",
                "rank", "delta", "before", "after", "before_id", "after_id"
            )?;
            for (i, c) in shown.iter().enumerate() {
                writeln!(
                    out,
                    "{:>4}  {:>+8.4}  {:>7.4}  {:>7.4}  {:>20}  {:>20}  {}",
                    i + 1,
                    c.delta,
                    c.before,
                    c.after,
                    c.before_id,
                    c.after_id,
                    clean(&c.place)
                )?;
            }
            writeln!(out, "{} place(s) seen in both periods; {} shown", changes.len(), shown.len())?;
        }
    }
    out.flush()?;
    if let Some(dir) = &a.gallery {
        let path = skysift::gallery::write(dir, &format!("change: {} ({} -> {})", a.text, a.before, a.after), &ans)?;
        eprintln!("gallery: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
