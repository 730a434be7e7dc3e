//! `skysift heatmap`: how similar each tile of an imported scene is to a text query, drawn over the
//! scene as a PNG, with the best tiles listed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use skysift::encode::{Encoder, TextQuery, Towers};
use skysift::query::heatmap::{render, scene_tiles, scores, with_legend};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database directory.
    db: PathBuf,
    /// The scene: the imported file's path relative to the archive root (its `scene` field).
    scene: String,
    /// The query, in natural language (any of the model's languages).
    query: String,
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
    /// Collection.
    #[arg(long, default_value = "images")]
    collection: String,
    /// Model directory (default: the one the collection was imported with).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Where the text encoder runs: cpu, cuda or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Longest side of the image, pixels.
    #[arg(long, default_value_t = 1024)]
    size: u32,
    /// Tiles listed, best first.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print the tiles as JSON.
    #[arg(long)]
    json: bool,
    /// Leave out the legend strip (colour ramp LOW to HIGH; hatched: no data).
    #[arg(long)]
    no_legend: bool,
}

/// What the legend strip says, for the terminal too.
const LEGEND: &str = "colours: LOW to HIGH similarity (dark to bright); hatched: NO DATA (no tile: \
                      no-data pixels, or fewer valid pixels than --min-valid at import)";

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let db = super::open_read(&a.db)?;
    let col = db.snapshot().collection(&a.collection)?;
    let model = match &a.model {
        Some(m) => m.clone(),
        None => match col.params().iter().find(|(k, _)| k == skysift::session::MODEL_DIR_PARAM) {
            Some((_, v)) => PathBuf::from(v),
            None => skysift::encode::locate::default_model_dir().map_err(anyhow::Error::msg)?,
        },
    };
    let enc = Encoder::builder(&model)
        .device(super::query::device(&a.device)?)
        .towers(Towers::Text)
        .build()
        .with_context(|| format!("cannot load the model in {}", model.display()))?;
    enc.check_params(col.params())?;
    let tiles = scene_tiles(&col, &a.scene)?;
    if tiles.is_empty() {
        bail!("scene {:?} has no tiles", a.scene);
    }
    let q = enc.query(&TextQuery::new(a.query.clone()))?;
    let s = scores(&tiles, &q.vector);
    let img = render(&tiles, &s, a.size.max(16));
    let img = if a.no_legend { img } else { with_legend(&img) };
    img.save(&a.out).with_context(|| format!("cannot write {}", a.out.display()))?;
    let mut order: Vec<usize> = (0..tiles.len()).collect();
    order.sort_by(|&x, &y| s[y].total_cmp(&s[x]));
    let best: Vec<serde_json::Value> = order
        .iter()
        .take(a.top)
        .map(|&i| {
            let t = &tiles[i];
            serde_json::json!({"tile": t.index, "id": t.id, "window": t.window, "score": s[i], "footprint": t.footprint,
                "valid_fraction": t.valid_fraction})
        })
        .collect();
    if a.json {
        super::outln!(
            "{}",
            serde_json::json!({"scene": a.scene, "query": a.query, "out": a.out, "tiles": tiles.len(), "best": best,
                "legend": LEGEND})
        );
    } else {
        super::outln!(
            "{}: {} tiles scored against {:?}; heat map in {}",
            a.scene,
            tiles.len(),
            a.query,
            a.out.display()
        );
        super::outln!("  legend: {LEGEND}");
        for b in &best {
            super::outln!(
                "  tile {} window {} score {:.4}",
                b["tile"],
                b["window"],
                b["score"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
