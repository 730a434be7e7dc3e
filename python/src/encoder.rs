//! `Encoder` for users with their own pipeline, image inputs, imagery collections and the import.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use numpy::{PyArray2, PyArrayMethods, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use skysift::encode::{Device, Language, Prompting, TextQuery};
use skysift::ingest::pipeline::TileEncoder;
use skysift::ingest::{ImportOptions, Progress, ReportWriter, Tiling};
use skysift::schema::{FieldType, Metric};
use skysift::{CollectionSpec, Db};

use crate::detached;

pub fn device(s: &str) -> skysift::Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda),
        "auto" => Ok(Device::Auto),
        other => Err(skysift::Error::Invalid(format!("unknown device {other:?}; use \"cpu\", \"cuda\" or \"auto\""))),
    }
}

pub fn prompting(s: &str) -> PyResult<Prompting> {
    match s {
        "ensemble" => Ok(Prompting::Ensemble),
        "single" => Ok(Prompting::Single),
        "off" | "none" => Ok(Prompting::Off),
        other => {
            Err(PyValueError::new_err(format!("templates must be \"ensemble\", \"single\" or \"off\", not {other:?}")))
        }
    }
}

/// An image as given from Python, read without the GIL.
pub enum ImageArg {
    Path(PathBuf),
    Bytes(Vec<u8>),
    Pixels(image::RgbImage),
}

impl ImageArg {
    pub fn load(self) -> skysift::Result<image::DynamicImage> {
        let bad = |what: String, e: image::ImageError| skysift::Error::Invalid(format!("{what}: not an image: {e}"));
        match self {
            ImageArg::Path(p) => image::open(&p).map_err(|e| bad(p.display().to_string(), e)),
            ImageArg::Bytes(b) => image::load_from_memory(&b).map_err(|e| bad(format!("{} bytes", b.len()), e)),
            ImageArg::Pixels(img) => Ok(image::DynamicImage::ImageRgb8(img)),
        }
    }
}

/// A path (`str`/`os.PathLike`), encoded bytes, or an `HxWx3` `uint8` array.
pub fn image_input(v: &Bound<'_, PyAny>) -> PyResult<ImageArg> {
    if let Ok(b) = v.cast::<pyo3::types::PyBytes>() {
        return Ok(ImageArg::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(a) = v.extract::<PyReadonlyArray3<'_, u8>>() {
        let shape = a.shape();
        if shape[2] != 3 {
            return Err(PyValueError::new_err(format!(
                "an image array must be `HxWx3` uint8 (RGB); this one is {}x{}x{}",
                shape[0], shape[1], shape[2]
            )));
        }
        let data = a.to_vec().map_err(|_| PyValueError::new_err("the image array cannot be read"))?;
        let img = image::RgbImage::from_raw(shape[1] as u32, shape[0] as u32, data)
            .ok_or_else(|| PyValueError::new_err("the image array's size does not match its shape"))?;
        return Ok(ImageArg::Pixels(img));
    }
    if let Ok(p) = v.extract::<PathBuf>() {
        return Ok(ImageArg::Path(p));
    }
    Err(PyTypeError::new_err(
        "an image is a path, encoded bytes (JPEG, PNG, TIFF), a PIL image or an `HxWx3` uint8 array",
    ))
}

fn model_or_default(dir: Option<&Path>) -> skysift::Result<PathBuf> {
    skysift::encode::locate::model_dir_or_default(dir).map_err(skysift::Error::Invalid)
}

/// Creates an imagery collection for the model in `model_dir`: the import's fields, the model's
/// dimension and provenance, and `extra` fields. With `remake`, the first import makes it again
/// (with the archive's metadata fields) while it holds no row.
pub fn create_imagery_with(
    db: &Db,
    name: &str,
    model_dir: Option<&Path>,
    extra: &[(String, FieldType)],
    remake: bool,
) -> skysift::Result<()> {
    let dir = model_or_default(model_dir)?;
    let enc = skysift::encode::Encoder::builder(&dir).towers(skysift::encode::Towers::Image).build()?;
    let mut spec = CollectionSpec::new(enc.dim() as u32, Metric::Cosine);
    let fields = skysift::ingest::fields::IMPORT_FIELDS.into_iter().chain(skysift::ingest::fields::IMAGERY_FIELDS);
    for (f, ty) in fields {
        spec = spec.field(f, ty);
    }
    for (f, ty) in extra {
        spec = spec.field(f.clone(), *ty);
    }
    spec.params = enc.provenance_params();
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    spec.params.push((skysift::session::MODEL_DIR_PARAM.to_owned(), dir.display().to_string()));
    if remake {
        spec.params.push((MADE_BY.to_owned(), "create_collection".to_owned()));
    }
    db.create_collection(name, spec)
}

/// `([(image, bytes)], [(field, type)])`.
pub type Plan = (Vec<(String, u64)>, Vec<(String, FieldType)>);

/// What an import of `folder` would read: its images (`(path relative to the root, bytes)`, in
/// walk order) and the metadata fields it would create after its own (`[(name, type)]`, in the
/// order the import adds them, capped as the import caps them).
pub fn archive_plan(folder: &Path) -> skysift::Result<Plan> {
    let root = std::fs::canonicalize(folder)
        .map_err(|e| skysift::Error::Invalid(format!("cannot open {}: {e}", folder.display())))?;
    let inv = skysift::ingest::walk::walk(&root, &[])
        .map_err(|e| skysift::Error::Invalid(format!("cannot walk {}: {e}", root.display())))?;
    let meta = skysift::ingest::archive_metadata::collect(&root, &inv, &[]);
    let own: Vec<&str> = skysift::ingest::fields::IMPORT_FIELDS
        .iter()
        .chain(&skysift::ingest::fields::IMAGERY_FIELDS)
        .map(|(n, _)| *n)
        .collect();
    let images = inv.images.iter().map(|e| (e.rel.clone(), e.size)).collect();
    let fields = meta
        .fields
        .into_iter()
        .filter(|(n, _)| !own.contains(&n.as_str()))
        .take(skysift::ingest::import::MAX_METADATA_FIELDS)
        .collect();
    Ok((images, fields))
}

/// The import's options from Python.
pub struct ImportArgs {
    pub collection: String,
    pub folder: PathBuf,
    pub model_dir: Option<PathBuf>,
    pub device: String,
    pub tile: u32,
    pub overlap: u32,
    pub gsd: Option<f64>,
    pub workers: usize,
    pub batch_size: Option<usize>,
    pub commit_every: usize,
    pub min_valid: f64,
    pub only: Option<Vec<String>>,
}

/// Runs the import as `skysift import` does: `(summary_json, report_lines_json)`. A read-only
/// handle takes the writer for the duration and then follows the new data.
pub fn run_import(
    db: &Db,
    a: &ImportArgs,
    loaded: Option<&(Arc<skysift::encode::Encoder>, PathBuf)>,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
) -> skysift::Result<(String, Vec<String>)> {
    if a.tile == 0 {
        return Err(skysift::Error::Invalid("tile must be at least 1 pixel".into()));
    }
    if !(0.0..=1.0).contains(&a.min_valid) {
        return Err(skysift::Error::Invalid(format!("min_valid is a fraction from 0 to 1, not {}", a.min_valid)));
    }
    if !a.folder.is_dir() {
        return Err(skysift::Error::Invalid(format!("{} is not a folder", a.folder.display())));
    }
    let built;
    let (enc, dir) = if let Some((e, d)) = loaded {
        (&**e, d.clone())
    } else {
        let dir = model_or_default(a.model_dir.as_deref())?;
        let mut b =
            skysift::encode::Encoder::builder(&dir).device(device(&a.device)?).towers(skysift::encode::Towers::Image);
        if let Some(n) = a.batch_size {
            b = b.batch_size(n.max(1));
        }
        built = b.build()?;
        (&built, dir)
    };
    let canon = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
    let opts = ImportOptions {
        collection: a.collection.clone(),
        tiling: Tiling { tile: a.tile, overlap: a.overlap, gsd: a.gsd, ..Tiling::default() },
        workers: a.workers,
        commit_rows: a.commit_every.max(1),
        min_valid: a.min_valid,
        only: a.only.as_ref().map(|o| Arc::new(o.iter().cloned().collect())),
        stop,
        progress,
        params: vec![(skysift::session::MODEL_DIR_PARAM.to_owned(), canon.display().to_string())],
        ..ImportOptions::default()
    };
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let mut report = ReportWriter::none().observe(Box::new(move |v: &serde_json::Value| {
        if let Ok(mut g) = sink.lock() {
            g.push(v.to_string());
        }
    }));
    let summary = if db.is_read_only() {
        let writer = Db::builder(db.path()).create(false).open()?;
        let s = import_into(&writer, enc, &dir, a, &opts, &mut report);
        drop(writer);
        db.refresh()?;
        s?
    } else {
        import_into(db, enc, &dir, a, &opts, &mut report)?
    };
    drop(report);
    let text = serde_json::to_string(&summary).map_err(|e| skysift::Error::Invalid(e.to_string()))?;
    let lines = lines.lock().map(|g| g.clone()).unwrap_or_default();
    Ok((text, lines))
}

/// Imports into `a.collection`. A collection that `create_imagery` made and that never held a
/// row is made again by the import, so that it gets the archive's metadata fields (an import
/// into a used collection keeps its schema); fields declared beyond the import's are added back.
fn import_into(
    db: &Db,
    enc: &skysift::encode::Encoder,
    model_dir: &Path,
    a: &ImportArgs,
    opts: &ImportOptions,
    report: &mut ReportWriter,
) -> skysift::Result<skysift::ingest::Summary> {
    let own: Vec<&str> = skysift::ingest::fields::IMPORT_FIELDS
        .iter()
        .chain(&skysift::ingest::fields::IMAGERY_FIELDS)
        .map(|(n, _)| *n)
        .collect();
    let mut extra = Vec::new();
    if let Ok(c) = db.snapshot().collection(&a.collection)
        && c.count() == 0
        && c.segments().is_empty()
        && c.memory_rows() == 0
        && c.params().iter().any(|(k, v)| k == MADE_BY && v == "create_collection")
    {
        extra = c
            .schema()
            .user_fields()
            .iter()
            .filter(|f| !own.contains(&f.name.as_str()))
            .map(|f| (f.name.clone(), f.ty))
            .collect();
        db.drop_collection(&a.collection)?;
    }
    let r = skysift::ingest::import(db, enc, &a.folder, opts, report);
    if db.snapshot().collection(&a.collection).is_err() {
        create_imagery_with(db, &a.collection, Some(model_dir), &extra, true)?;
    } else if let Ok(c) = db.snapshot().collection(&a.collection) {
        for (f, ty) in &extra {
            if c.schema().field_index(f).is_none() {
                db.add_field(&a.collection, f, *ty)?;
            }
        }
    }
    r
}

/// Param marking a collection made empty by `create_imagery` (the first import may make it again).
const MADE_BY: &str = "python.made_by";

/// A model loaded for encoding texts and images outside a collection.
#[pyclass(frozen, module = "skysift._native")]
pub struct Encoder {
    enc: Arc<skysift::encode::Encoder>,
    dir: PathBuf,
}

impl Encoder {
    /// The loaded model and its directory, for an import that reuses it.
    pub fn shared(&self) -> (Arc<skysift::encode::Encoder>, PathBuf) {
        (Arc::clone(&self.enc), self.dir.clone())
    }
}

#[pymethods]
impl Encoder {
    /// Loads the model in `model_dir` (the default model when `None`) on `device`
    /// ("cpu", "cuda" or "auto"), with `threads` intra-op threads (`None`: ONNX Runtime's
    /// choice, one per physical core).
    #[new]
    #[pyo3(signature = (model_dir=None, device="auto", threads=None))]
    fn new(py: Python<'_>, model_dir: Option<PathBuf>, device: &str, threads: Option<usize>) -> PyResult<Self> {
        let dev = self::device(device).map_err(|e| crate::to_py(&e))?;
        let (enc, dir) = detached(py, move || {
            let dir = model_or_default(model_dir.as_deref())?;
            let mut b = skysift::encode::Encoder::builder(&dir).device(dev);
            if let Some(t) = threads {
                b = b.threads(t);
            }
            Ok((b.build()?, dir))
        })?;
        Ok(Encoder { enc: Arc::new(enc), dir })
    }

    /// Embedding dimension.
    #[getter]
    fn dim(&self) -> usize {
        self.enc.dim()
    }

    /// The model directory.
    #[getter]
    fn model_dir(&self) -> String {
        self.dir.display().to_string()
    }

    /// Where the encoder runs ("cpu" or "cuda").
    #[getter]
    fn device(&self) -> String {
        format!("{:?}", self.enc.device()).to_lowercase()
    }

    /// Embeddings of `texts` (n x dim float32, L2-normalised). With `templates="off"` (default)
    /// each text is encoded as it is; "ensemble" or "single" wrap it in the prompt templates of
    /// `lang` (detected when `None`), as queries are.
    #[pyo3(signature = (texts, lang=None, templates="off"))]
    fn encode_text<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        lang: Option<String>,
        templates: &str,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let prompting = prompting(templates)?;
        let enc = Arc::clone(&self.enc);
        let dim = enc.dim();
        let n = texts.len();
        let flat = detached(py, move || {
            let rows: Vec<Vec<f32>> = if prompting == Prompting::Off && lang.is_none() {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                enc.encode_texts(&refs)?
            } else {
                let mut out = Vec::with_capacity(texts.len());
                for t in texts {
                    let mut q = TextQuery::new(t).prompting(prompting);
                    if let Some(l) = &lang {
                        q.language = Language::Code(l.clone());
                    }
                    out.push(enc.query(&q)?.vector);
                }
                out
            };
            Ok(rows.into_iter().flatten().collect::<Vec<f32>>())
        })?;
        numpy::PyArray1::from_vec(py, flat).reshape([n, dim])
    }

    /// Embeddings of `images` (each a path, encoded bytes or an `HxWx3` uint8 array), n x dim.
    fn encode_images<'py>(
        &self,
        py: Python<'py>,
        images: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let args = images.iter().map(image_input).collect::<PyResult<Vec<_>>>()?;
        let enc = Arc::clone(&self.enc);
        let dim = enc.dim();
        let n = args.len();
        let flat = detached(py, move || {
            let imgs = args.into_iter().map(ImageArg::load).collect::<skysift::Result<Vec<_>>>()?;
            Ok(enc.encode_images(&imgs)?.into_iter().flatten().collect::<Vec<f32>>())
        })?;
        numpy::PyArray1::from_vec(py, flat).reshape([n, dim])
    }

    fn __repr__(&self) -> String {
        format!("skysift.Encoder({:?}, dim={})", self.dir.display().to_string(), self.enc.dim())
    }
}
