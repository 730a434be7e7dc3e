//! [`Encoder`]: a loaded model (both towers), its provenance, its template library and its text cache.
//!
//! Invariants:
//! - every vector returned is L2-normalised (norm 1 within f32 rounding; a zero output stays zero) and has
//!   `manifest().embedding_dim` values, in input order;
//! - no graph run sees more than `batch_size` inputs;
//! - a text-cache hit returns the same vector, bit for bit, as the encode that filled it (cache keys carry
//!   the model fingerprint, so a shared cache never mixes models);
//! - `Encoder` is `Send + Sync`: sessions sit behind mutexes, the template library behind a `RwLock`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use image::{DynamicImage, RgbImage};

use super::cache::{DEFAULT_CAPACITY, TextCache};
use super::error::{EncodeError, EncodeResult};
use super::image::ImageTower;
use super::manifest::{Fingerprint, ModelFile, ModelManifest};
use super::ort_session::{self, SessionOptions, l2_normalize};
use super::preprocess::{Preprocessor, load_rgb};
use super::provenance::Provenance;
use super::runtime::{self, Device, ExecutionDevice};
use super::templates::{TemplateLibrary, TemplateSet};
use super::text::TextTower;
use super::tokenizer::TextTokenizer;

/// Default number of inputs per graph run.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// Largest accepted batch size.
pub const MAX_BATCH_SIZE: usize = 4096;

/// Which towers to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Towers {
    /// Image and text (default).
    #[default]
    Both,
    /// Text only (query-time use: half the memory, faster start).
    Text,
    /// Image only (ingestion).
    Image,
}

/// Anything [`Encoder::encode_images`] accepts: an 8-bit RGB buffer or any decoded image.
pub trait ImageInput {
    /// The image as 8-bit RGB (borrowed when it already is).
    fn to_rgb8_cow(&self) -> Cow<'_, RgbImage>;
}

impl ImageInput for RgbImage {
    fn to_rgb8_cow(&self) -> Cow<'_, RgbImage> {
        Cow::Borrowed(self)
    }
}

impl ImageInput for DynamicImage {
    fn to_rgb8_cow(&self) -> Cow<'_, RgbImage> {
        match self {
            DynamicImage::ImageRgb8(rgb) => Cow::Borrowed(rgb),
            other => Cow::Owned(other.to_rgb8()),
        }
    }
}

impl<T: ImageInput + ?Sized> ImageInput for &T {
    fn to_rgb8_cow(&self) -> Cow<'_, RgbImage> {
        (**self).to_rgb8_cow()
    }
}

/// Builder of an [`Encoder`]; see each setter for its default.
#[derive(Debug, Clone)]
pub struct EncoderBuilder {
    model_dir: PathBuf,
    device: Device,
    threads: Option<usize>,
    image_sessions: usize,
    batch_size: usize,
    ort_library: Option<PathBuf>,
    cache: Option<Arc<TextCache>>,
    cache_capacity: usize,
    towers: Towers,
    template_dirs: Vec<PathBuf>,
    default_templates: bool,
    announce: bool,
    ort_cache: Option<PathBuf>,
}

impl EncoderBuilder {
    /// Execution device. Default: [`Device::Auto`] (CUDA when available, else CPU with a note).
    #[must_use]
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Intra-op threads per session. Default: ONNX Runtime's choice (one per physical core).
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Image-tower sessions that encode the parts of a batch side by side (at most 16; 0: one per
    /// core when the encoder runs on the CPU, one on CUDA), each with [`EncoderBuilder::threads`]
    /// intra-op threads (default 1 when there are several).
    /// Beside decode workers on the same cores, several one-thread sessions lose less to
    /// preemption than one session whose parallel operators wait for their slowest thread.
    /// Default: 1.
    #[must_use]
    pub fn image_sessions(mut self, n: usize) -> Self {
        self.image_sessions = n.min(16);
        self
    }

    /// Most inputs per graph run (clamped to `1..=4096`). Default: [`DEFAULT_BATCH_SIZE`] (32).
    #[must_use]
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.clamp(1, MAX_BATCH_SIZE);
        self
    }

    /// The ONNX Runtime shared library to load. Default: searched, first hit wins: `SKYSIFT_ORT_LIB`,
    /// `ORT_DYLIB_PATH`, `.cache/onnxruntime-gpu/` (CUDA/auto) and `.cache/onnxruntime/` above the model
    /// directory or the current directory (where `scripts/setup_ort.sh` puts them), then
    /// `~/.cache/skysift/onnxruntime{-gpu,}/`.
    #[must_use]
    pub fn ort_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.ort_library = Some(path.into());
        self
    }

    /// Texts kept in the encoder's own cache (0 disables it). Default: [`DEFAULT_CAPACITY`] (4096).
    #[must_use]
    pub fn cache_capacity(mut self, n: usize) -> Self {
        self.cache_capacity = n;
        self
    }

    /// Share a cache with other encoders (keys include the model fingerprint). Default: a private cache.
    #[must_use]
    pub fn text_cache(mut self, cache: Arc<TextCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Which towers to load. Default: [`Towers::Both`]. The fingerprint always covers every model file.
    #[must_use]
    pub fn towers(mut self, towers: Towers) -> Self {
        self.towers = towers;
        self
    }

    /// Also load template sets from `dir` (`<lang>.json`), replacing the model's sets of the same languages.
    /// Default: none.
    #[must_use]
    pub fn templates_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.template_dirs.push(dir.into());
        self
    }

    /// Whether to load the model's own templates (`default_templates` in the manifest). Default: true.
    #[must_use]
    pub fn default_templates(mut self, yes: bool) -> Self {
        self.default_templates = yes;
        self
    }

    /// Whether an automatic CPU fallback is also printed to stderr (once per process). Default: true.
    #[must_use]
    pub fn announce_fallback(mut self, yes: bool) -> Self {
        self.announce = yes;
        self
    }

    /// Where the towers' optimised graphs are kept across processes, so that a later process
    /// creates its CPU sessions in milliseconds (ONNX Runtime maps the kept weights instead of
    /// parsing the model; the outputs are the same bit for bit); `None` keeps none. Default:
    /// `$XDG_CACHE_HOME/skysift/ort` (else `~/.cache/skysift/ort`); none when the environment sets
    /// `SKYSIFT_ORT_CACHE=0`.
    #[must_use]
    pub fn optimized_model_cache(mut self, dir: Option<PathBuf>) -> Self {
        self.ort_cache = dir;
        self
    }

    /// Validates the manifest, hashes the model files, loads ONNX Runtime and the towers.
    ///
    /// Three things run at once, each on its own thread: the tokenizer's load (a large
    /// vocabulary's trie takes about as long as the rest together: 110 to 160 ms for the demo
    /// model's 250k pieces), the hashing of the model files for the fingerprint, and the ONNX
    /// Runtime sessions. Errors come in the order files, sessions, tokenizer.
    pub fn build(self) -> EncodeResult<Encoder> {
        let manifest = ModelManifest::load(&self.model_dir)?;
        let tok_path = match self.towers {
            Towers::Image => None,
            _ => Some(manifest.resolve("text.tokenizer", &manifest.text.tokenizer)?),
        };
        let (tokenizer, files, sessions) = std::thread::scope(|scope| {
            let tokenizer = tok_path.as_deref().map(|p| scope.spawn(move || TextTokenizer::load(p)));
            let files = scope.spawn(|| manifest.files());
            let sessions = self.sessions(&manifest);
            (tokenizer.map(joined), joined(files), sessions)
        });
        // A missing model file says how to install the model: its error goes first.
        let files = files?;
        let Sessions { image, text, device, notes: session_notes, library } = sessions?;
        let tokenizer = tokenizer.transpose()?;
        let fingerprint = manifest.fingerprint_of(&files);
        let provenance = Provenance {
            model_id: manifest.model_id.clone(),
            fingerprint,
            dim: manifest.embedding_dim,
            preprocessing: manifest.preprocessing(),
        };
        let mut templates = TemplateLibrary::new();
        if self.default_templates
            && let Some(rel) = &manifest.default_templates
        {
            let dir = manifest.resolve("default_templates", rel)?;
            if dir.is_dir() {
                templates.load_dir(&dir)?;
            }
        }
        for dir in &self.template_dirs {
            templates.load_dir(dir)?;
        }
        let mut notes = manifest.warnings();
        for n in session_notes {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        let image = image.map(|s| ImageTower::new(s, &manifest.image, manifest.embedding_dim));
        let text = match (text, tokenizer, tok_path) {
            (Some(s), Some(tokenizer), Some(path)) => {
                Some(TextTower::new(tokenizer, path, s, &manifest.text, manifest.embedding_dim))
            }
            _ => None,
        };
        let cache = self.cache.unwrap_or_else(|| Arc::new(TextCache::new(self.cache_capacity)));
        Ok(Encoder {
            device: device.unwrap_or(ExecutionDevice::Cpu),
            manifest,
            fingerprint,
            provenance,
            files,
            text,
            image,
            batch_size: self.batch_size,
            cache,
            templates: RwLock::new(templates),
            notes,
            library,
        })
    }

    /// Loads ONNX Runtime and creates the sessions of the towers asked for.
    fn sessions(&self, manifest: &ModelManifest) -> EncodeResult<Sessions> {
        let library = runtime::find_library(self.ort_library.as_deref(), manifest.dir(), self.device)?;
        let rt = runtime::load(&library, self.ort_library.is_some())?;
        let mut notes: Vec<String> = Vec::new();
        let mut device = None;
        let mut open = |rel: &str, field: &str, what: &str, threads: Option<usize>, spinning: bool| {
            let path = manifest.resolve(field, rel)?;
            let opts = SessionOptions { device: self.device, cache: self.ort_cache.as_deref(), threads, spinning };
            let (s, dev, note) = ort_session::open(rt, &path, opts, what)?;
            if let Some(n) = note {
                if self.announce {
                    runtime::announce_fallback(&n);
                }
                if !notes.contains(&n) {
                    notes.push(n);
                }
            }
            device = Some(dev);
            EncodeResult::Ok(s)
        };
        let image = if self.towers == Towers::Text {
            None
        } else {
            let on_cpu = self.device == Device::Cpu || (self.device == Device::Auto && !rt.has_cuda);
            let n = match self.image_sessions {
                0 if on_cpu => std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(16),
                0 => 1,
                n => n,
            };
            let threads = if n > 1 { Some(self.threads.unwrap_or(1)) } else { self.threads };
            let mut sessions = Vec::with_capacity(n);
            for _ in 0..n {
                sessions.push(open(&manifest.image.onnx, "image.onnx", "image tower", threads, true)?);
            }
            Some(sessions)
        };
        let text = match self.towers {
            Towers::Image => None,
            // Queries come one at a time: the text tower's threads sleep between them instead of
            // spinning (which, while the encoder loads, takes a core from the tokenizer's thread).
            _ => Some(open(&manifest.text.onnx, "text.onnx", "text tower", self.threads, false)?),
        };
        Ok(Sessions { image, text, device, notes, library: rt.library.clone() })
    }
}

/// The result of a scoped thread; its panic goes on in the caller.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// What [`EncoderBuilder::sessions`] creates.
struct Sessions {
    image: Option<Vec<ort::session::Session>>,
    text: Option<ort::session::Session>,
    device: Option<ExecutionDevice>,
    notes: Vec<String>,
    library: PathBuf,
}

/// A loaded model: image and text towers, provenance, templates and text cache.
pub struct Encoder {
    manifest: ModelManifest,
    fingerprint: Fingerprint,
    provenance: Provenance,
    files: Vec<ModelFile>,
    text: Option<TextTower>,
    image: Option<ImageTower>,
    batch_size: usize,
    cache: Arc<TextCache>,
    templates: RwLock<TemplateLibrary>,
    device: ExecutionDevice,
    notes: Vec<String>,
    library: PathBuf,
}

// `Encoder` is shared across threads (ingestion workers, a server's request handlers): keep it so.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Encoder>();
    send_sync::<EncoderBuilder>();
};

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("model_id", &self.manifest.model_id)
            .field("fingerprint", &self.fingerprint)
            .field("device", &self.device)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// A builder for the model in `model_dir` (the folder holding `manifest.json`).
    pub fn builder(model_dir: impl AsRef<Path>) -> EncoderBuilder {
        EncoderBuilder {
            model_dir: model_dir.as_ref().to_path_buf(),
            device: Device::Auto,
            threads: None,
            image_sessions: 1,
            batch_size: DEFAULT_BATCH_SIZE,
            ort_library: None,
            cache: None,
            cache_capacity: DEFAULT_CAPACITY,
            towers: Towers::Both,
            template_dirs: Vec::new(),
            default_templates: true,
            announce: true,
            ort_cache: super::ort_cache::default_dir(),
        }
    }

    /// Opens `model_dir` with the default settings.
    pub fn open(model_dir: impl AsRef<Path>) -> EncodeResult<Encoder> {
        Self::builder(model_dir).build()
    }

    /// The validated manifest.
    #[must_use]
    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    /// The embedding-space fingerprint.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// What to record with a collection encoded by this model.
    #[must_use]
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// Refuses collection params recorded by another model (see [`Provenance::check_compatible`]).
    pub fn check_params(&self, params: &[(String, String)]) -> EncodeResult<()> {
        Provenance::from_params(params)?.check_compatible(&self.provenance)
    }

    /// The model files and their digests.
    #[must_use]
    pub fn files(&self) -> &[ModelFile] {
        &self.files
    }

    /// Embedding dimension.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.manifest.embedding_dim
    }

    /// Whether the towers `towers` names are loaded.
    #[must_use]
    pub fn has_towers(&self, towers: Towers) -> bool {
        let (image, text) = (self.image.is_some(), self.text.is_some());
        match towers {
            Towers::Both => image && text,
            Towers::Text => text,
            Towers::Image => image,
        }
    }

    /// Where the sessions run.
    #[must_use]
    pub fn device(&self) -> ExecutionDevice {
        self.device
    }

    /// Things worth telling the user: CPU fallback of `Device::Auto`, unknown manifest keys.
    #[must_use]
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The ONNX Runtime library in use.
    #[must_use]
    pub fn runtime_library(&self) -> &Path {
        &self.library
    }

    /// Most inputs per graph run.
    #[must_use]
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The text cache (shared when given to the builder).
    #[must_use]
    pub fn cache(&self) -> &Arc<TextCache> {
        &self.cache
    }

    /// The image preprocessing, or `None` without the image tower.
    #[must_use]
    pub fn preprocessor(&self) -> Option<&Preprocessor> {
        self.image.as_ref().map(|t| &t.preprocessor)
    }

    /// Read access to the template sets.
    pub fn templates(&self) -> RwLockReadGuard<'_, TemplateLibrary> {
        match self.templates.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Adds or replaces the template set of `set.language`.
    pub fn set_templates(&self, set: TemplateSet) -> EncodeResult<()> {
        let mut g = match self.templates.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        g.insert(set)
    }

    /// Loads `<lang>.json` sets from `dir`, replacing those of the same languages; returns the languages.
    pub fn load_templates_dir(&self, dir: impl AsRef<Path>) -> EncodeResult<Vec<String>> {
        let mut fresh = TemplateLibrary::new();
        let langs = fresh.load_dir(dir)?; // all or nothing: parse first, then swap in
        for l in &langs {
            if let Some(set) = fresh.remove(l) {
                self.set_templates(set)?;
            }
        }
        Ok(langs)
    }

    fn text_tower(&self) -> EncodeResult<&TextTower> {
        self.text.as_ref().ok_or(EncodeError::TowerNotLoaded { tower: "text" })
    }

    fn image_tower(&self) -> EncodeResult<&ImageTower> {
        self.image.as_ref().ok_or(EncodeError::TowerNotLoaded { tower: "image" })
    }

    /// Token ids the text tower receives for `text` (special tokens included, cut to `max_tokens`).
    pub fn token_ids(&self, text: &str) -> EncodeResult<Vec<u32>> {
        self.text_tower()?.tokenize(text)
    }

    /// Embeddings of `texts` (L2-normalised, input order), through the cache.
    pub fn encode_texts(&self, texts: &[&str]) -> EncodeResult<Vec<Vec<f32>>> {
        Ok(self.encode_texts_shared(texts)?.into_iter().map(|v| v.to_vec()).collect())
    }

    /// Like [`Self::encode_texts`], returning the cache's shared vectors (no copy on a hit).
    pub fn encode_texts_shared(&self, texts: &[&str]) -> EncodeResult<Vec<Arc<[f32]>>> {
        let mut out: Vec<Option<Arc<[f32]>>> = texts.iter().map(|t| self.cache.get(self.fingerprint, t)).collect();
        let missing: Vec<usize> = out.iter().enumerate().filter(|(_, v)| v.is_none()).map(|(i, _)| i).collect();
        if !missing.is_empty() {
            // Each distinct text is encoded once even when repeated within the call.
            let mut unique: Vec<&str> = missing.iter().filter_map(|&i| texts.get(i).copied()).collect();
            unique.sort_unstable();
            unique.dedup();
            let fresh = self.encode_texts_uncached(&unique)?;
            for (text, v) in unique.iter().zip(fresh) {
                let v: Arc<[f32]> = Arc::from(v);
                self.cache.insert(self.fingerprint, text, Arc::clone(&v));
                for &i in &missing {
                    if texts.get(i) == Some(text)
                        && let Some(slot) = out.get_mut(i)
                    {
                        *slot = Some(Arc::clone(&v));
                    }
                }
            }
        }
        out.into_iter().map(|v| v.ok_or_else(|| EncodeError::Invalid("text encoding left a gap".into()))).collect()
    }

    /// Embedding of one text, through the cache.
    pub fn encode_text(&self, text: &str) -> EncodeResult<Vec<f32>> {
        self.encode_texts(&[text])?.pop().ok_or_else(|| EncodeError::Invalid("no embedding returned".into()))
    }

    /// Embeddings of `texts` without the cache: tokenised, grouped by length into batches of at most
    /// `batch_size`, run, normalised, returned in input order.
    pub fn encode_texts_uncached(&self, texts: &[&str]) -> EncodeResult<Vec<Vec<f32>>> {
        let tower = self.text_tower()?;
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| tower.tokenize(t)).collect::<EncodeResult<_>>()?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids.get(i).map_or(0, Vec::len));
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); ids.len()];
        for chunk in order.chunks(self.batch_size) {
            let batch: Vec<Vec<u32>> = chunk.iter().filter_map(|&i| ids.get(i).cloned()).collect();
            for (&i, mut v) in chunk.iter().zip(tower.run(&batch)?) {
                l2_normalize(&mut v);
                if let Some(slot) = out.get_mut(i) {
                    *slot = v;
                }
            }
        }
        Ok(out)
    }

    /// Embeddings of images (any size; preprocessed per the manifest), in batches of at most `batch_size`.
    pub fn encode_images<I: ImageInput>(&self, images: &[I]) -> EncodeResult<Vec<Vec<f32>>> {
        let tower = self.image_tower()?;
        let per = tower.preprocessor.input_len();
        let mut out = Vec::with_capacity(images.len());
        let mut pixels = Vec::new();
        for (chunk_no, chunk) in images.chunks(self.batch_size).enumerate() {
            pixels.clear();
            pixels.resize(chunk.len() * per, 0.0);
            for (i, (img, slot)) in chunk.iter().zip(pixels.chunks_mut(per)).enumerate() {
                tower.preprocessor.preprocess_into(&img.to_rgb8_cow(), slot).map_err(|e| match e {
                    EncodeError::Image { reason, .. } => {
                        EncodeError::Image { what: format!("#{}", chunk_no * self.batch_size + i), reason }
                    }
                    other => other,
                })?;
            }
            out.extend(Self::run_image_batch(tower, &pixels, chunk.len())?);
        }
        Ok(out)
    }

    /// Embeddings of image files (decoded with [`load_rgb`]).
    pub fn encode_image_files<P: AsRef<Path>>(&self, paths: &[P]) -> EncodeResult<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(self.batch_size) {
            let images: Vec<RgbImage> = chunk.iter().map(load_rgb).collect::<EncodeResult<_>>()?;
            out.extend(self.encode_images(&images)?);
        }
        Ok(out)
    }

    /// Embeddings of images already preprocessed (`rows * preprocessor().input_len()` values, e.g. from a
    /// parallel ingestion pipeline), in batches of at most `batch_size`.
    pub fn encode_pixels(&self, pixels: &[f32], rows: usize) -> EncodeResult<Vec<Vec<f32>>> {
        let tower = self.image_tower()?;
        let per = tower.preprocessor.input_len();
        if pixels.len() != rows * per {
            return Err(EncodeError::Invalid(format!(
                "encode_pixels: {} values for {rows} images of {per} values",
                pixels.len()
            )));
        }
        let mut out = Vec::with_capacity(rows);
        for chunk in pixels.chunks(self.batch_size * per) {
            out.extend(Self::run_image_batch(tower, chunk, chunk.len() / per)?);
        }
        Ok(out)
    }

    fn run_image_batch(tower: &ImageTower, pixels: &[f32], rows: usize) -> EncodeResult<Vec<Vec<f32>>> {
        let mut rows_out = tower.run(pixels, rows)?;
        for v in &mut rows_out {
            l2_normalize(v);
        }
        Ok(rows_out)
    }
}
