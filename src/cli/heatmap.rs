//! `skysift heatmap`: how similar each tile of an imported scene is to a text query, drawn over the
//! scene as a PNG, with the best tiles listed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use skysift::encode::{Encoder, TextQuery, Towers};
use skysift::gallery::map::Overlay;
use skysift::present::{Answer, AnswerRow};
use skysift::query::heatmap::{SceneTile, render, scene_footprint, scene_tiles, scores, with_legend};
use skysift::schema::Value;

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
    /// Also write an HTML page into this folder: the heat map on a map at the scene's footprint, the
    /// --top tiles as footprints and cards (one self-contained file; its path goes to standard error).
    #[arg(long, value_name = "DIR")]
    gallery: Option<PathBuf>,
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
    let started = std::time::Instant::now();
    let q = enc.query(&TextQuery::new(a.query.clone()))?;
    let encode_time = started.elapsed();
    let s = scores(&tiles, &q.vector);
    let img = render(&tiles, &s, a.size.max(16));
    let mut order: Vec<usize> = (0..tiles.len()).collect();
    order.sort_by(|&x, &y| s[y].total_cmp(&s[x]));
    if let Some(dir) = &a.gallery {
        let path = gallery(dir, a, &tiles, (&s, &order), &img, encode_time)?;
        eprintln!("gallery: {}", path.display());
    }
    let img = if a.no_legend { img } else { with_legend(&img) };
    img.save(&a.out).with_context(|| format!("cannot write {}", a.out.display()))?;
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

/// `--gallery`: the heat map (without its legend strip: the page has its own) laid at the scene's
/// footprint, the best tiles as results.
fn gallery(
    dir: &std::path::Path,
    a: &Args,
    tiles: &[SceneTile],
    (s, order): (&[f32], &[usize]),
    img: &image::RgbImage,
    encode_time: std::time::Duration,
) -> anyhow::Result<PathBuf> {
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    let range = s.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let overlay = scene_footprint(tiles).map(|bbox| Overlay {
        bbox,
        png,
        label: format!("{}: heat map of {:?}", a.scene, a.query),
        range,
    });
    let rows = order
        .iter()
        .take(a.top)
        .enumerate()
        .map(|(rank, &i)| {
            let t = &tiles[i];
            let mut fields = vec![
                ("scene".to_owned(), Value::Text(a.scene.clone())),
                ("tile".to_owned(), Value::Integer(i64::from(t.index))),
                ("window".to_owned(), Value::Window(t.window)),
            ];
            fields.extend(t.footprint.map(|b| (skysift::export::FOOTPRINT_FIELD.to_owned(), Value::GeoBbox(b))));
            AnswerRow { rank: rank + 1, id: t.id, score: s[i], fields, thumbnail: t.thumbnail.clone() }
        })
        .collect();
    let ans = Answer {
        rows,
        language: None,
        prompts: vec![a.query.clone()],
        encode_time,
        search_time: std::time::Duration::ZERO,
        notes: vec![format!("{}: {} tiles scored; the {} best shown", a.scene, tiles.len(), a.top.min(tiles.len()))],
    };
    let label = format!("heat map: {} in {}", a.query, a.scene);
    Ok(skysift::gallery::write_page(dir, &label, &ans, overlay.as_ref())?)
}
