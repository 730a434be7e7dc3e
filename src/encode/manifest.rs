//! [`ModelManifest`]: `manifest.json`, the small file next to a model's ONNX files that says how to run it,
//! and the [`Fingerprint`] that identifies the model's embedding space.
//!
//! ```json
//! { "format_version": 1, "model_id": "...", "embedding_dim": 512, "metric": "cosine",
//!   "image": { "onnx": "image.onnx", "size": [160, 160], "resize": "exact", "interpolation": "bilinear",
//!              "mean": [...], "std": [...], ... },
//!   "text":  { "onnx": "text.onnx", "tokenizer": "tokenizer.json", "max_tokens": 128, ... },
//!   "languages": ["en", ...], "default_templates": "templates/" }
//! ```
//!
//! Invariants, checked by [`ModelManifest::load`] before anything else reads a model file:
//! - every path (towers, tokenizer, templates, declared and in-graph ONNX external data) is relative, has no
//!   `..` component, and resolves (symlinks followed) inside the model directory;
//! - every value is one the encoder implements (unknown enum values are refused, unknown extra keys are kept
//!   and reported by [`ModelManifest::warnings`]);
//! - the fingerprint covers the bytes of every model file (ONNX graphs, their external data, the tokenizer)
//!   and every preprocessing parameter, and nothing else: renaming a model or moving its directory keeps it,
//!   changing one weight or one normalisation constant changes it. Templates are query-side choices and are
//!   not part of it.
//!
//! Hash: SHA-256 (crate `sha2`), the same digest `scripts/setup_models.sh` checks in `SHA256SUMS`, so each
//! per-file digest can be compared with `sha256sum`; it is pure Rust (no C or assembly build step) and its
//! cost is paid once per file (digests are memoised by path, size and modification time in the process, and
//! by path, size, both times, inode and device in the user cache across processes).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{EncodeError, EncodeResult};
use super::onnx;

/// Manifest format written by this build. v1: first format (demo model, `scripts/model/export_clip.py`).
pub const FORMAT_VERSION: u64 = 1;
/// Oldest manifest format this build reads.
pub const OLDEST_SUPPORTED_VERSION: u64 = 1;
/// The manifest's file name inside a model directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Largest accepted input side, in pixels.
const MAX_SIDE: u32 = 8192;
/// Largest accepted `max_tokens`.
const MAX_TOKENS: usize = 65_536;
/// Largest accepted `embedding_dim`.
const MAX_DIM: usize = 65_536;

/// A parsed, validated `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelManifest {
    /// Manifest format version ([`FORMAT_VERSION`]).
    pub format_version: u64,
    /// Human-readable model name, recorded in collections (not part of the fingerprint).
    pub model_id: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Length of every embedding the towers return.
    pub embedding_dim: usize,
    /// Similarity the space is made for; only `cosine` (on L2-normalised vectors) is supported.
    #[serde(default = "default_metric")]
    pub metric: String,
    /// Whether the towers already L2-normalise (the encoder normalises either way).
    #[serde(default = "default_true")]
    pub normalized: bool,
    /// The image tower and its preprocessing.
    pub image: ImageSpec,
    /// The text tower and its tokenizer.
    pub text: TextSpec,
    /// Languages the text tower was made for (ISO 639-1 codes).
    #[serde(default)]
    pub languages: Vec<String>,
    /// Folder of `<lang>.json` template sets, relative to the model directory.
    #[serde(default)]
    pub default_templates: Option<String>,
    /// Licence of the model files.
    #[serde(default)]
    pub licence: Option<String>,
    /// Every other top-level key (descriptive: provenance, licence notes, ...), kept as is.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
    #[serde(skip)]
    dir: PathBuf,
    #[serde(skip)]
    source: PathBuf,
}

/// How an image is resized before cropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Stretch the whole image to `size` (aspect ratio not kept).
    Exact,
    /// Scale so that the shorter side is `resize_to` (aspect ratio kept), then crop.
    ShortestEdge,
}

/// How the resized image is cropped to `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CropMode {
    /// No crop (only with `resize: exact`).
    #[default]
    None,
    /// Centre crop (torchvision `CenterCrop` offsets).
    Center,
}

/// Resampling filter, with Pillow's kernels and fixed-point arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Nearest neighbour.
    Nearest,
    /// Triangle filter, support 1.
    Bilinear,
    /// Keys cubic, a = -0.5, support 2.
    Bicubic,
    /// Lanczos-3.
    Lanczos,
}

/// Memory layout of the image tower's input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Layout {
    /// `[batch, channels, height, width]`.
    #[default]
    #[serde(rename = "NCHW")]
    Nchw,
    /// `[batch, height, width, channels]`.
    #[serde(rename = "NHWC")]
    Nhwc,
}

/// Channel order of the image tower's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ChannelOrder {
    /// Red, green, blue.
    #[default]
    #[serde(rename = "RGB")]
    Rgb,
    /// Blue, green, red.
    #[serde(rename = "BGR")]
    Bgr,
}

/// The image tower section.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageSpec {
    /// ONNX file, relative to the model directory.
    pub onnx: String,
    /// Input tensor name.
    #[serde(default = "default_pixel_input")]
    pub input_name: String,
    /// Output tensor name (`[batch, embedding_dim]`).
    #[serde(default = "default_output")]
    pub output_name: String,
    /// Input layout.
    #[serde(default)]
    pub layout: Layout,
    /// Input element type; only `float32`.
    #[serde(default = "default_f32")]
    pub dtype: String,
    /// Model input size `[height, width]` in pixels.
    pub size: [u32; 2],
    /// Resize mode.
    pub resize: ResizeMode,
    /// Target of the shorter side for `shortest_edge` (ignored by `exact`).
    #[serde(default)]
    pub resize_to: Option<u32>,
    /// Crop mode.
    #[serde(default)]
    pub crop: CropMode,
    /// Resampling filter.
    pub interpolation: Interpolation,
    /// Widen the filter when shrinking (Pillow always does; `false` mimics non-antialiased resizes).
    #[serde(default = "default_true")]
    pub antialias: bool,
    /// Factor applied to 8-bit values before normalisation (usually 1/255).
    #[serde(default = "default_rescale")]
    pub rescale_factor: f64,
    /// Per-channel mean subtracted after rescaling, in RGB order.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by, in RGB order.
    pub std: [f32; 3],
    /// Channel order the tower expects.
    #[serde(default)]
    pub channels: ChannelOrder,
    /// Extra files the ONNX graph reads (external data), relative to the model directory.
    #[serde(default)]
    pub external_data: Vec<String>,
    /// Unknown keys (reported by [`ModelManifest::warnings`]).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// One input of the text tower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextInput {
    /// Token ids.
    InputIds,
    /// 1 for tokens, 0 for padding.
    AttentionMask,
    /// All zeros (BERT-style segment ids).
    TokenTypeIds,
}

/// Element type of the text tower's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    /// 64-bit integers.
    #[default]
    Int64,
    /// 32-bit integers.
    Int32,
}

/// How token sequences of a batch are padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// Pad on the right to the longest sequence of the batch.
    #[default]
    Right,
    /// Pad on the right to `max_tokens` (fixed-length towers such as `OpenCLIP`'s).
    MaxLength,
}

/// The text tower section.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextSpec {
    /// ONNX file, relative to the model directory.
    pub onnx: String,
    /// `tokenizer.json` (Hugging Face `tokenizers` format), relative to the model directory.
    pub tokenizer: String,
    /// Longest token sequence fed to the tower (longer ones are cut; the tokenizer's own truncation, when
    /// its file configures one, applies first).
    pub max_tokens: usize,
    /// Inputs, in any order; must include `input_ids`.
    #[serde(default = "default_text_inputs")]
    pub inputs: Vec<TextInput>,
    /// Element type of the inputs.
    #[serde(default)]
    pub input_dtype: IdType,
    /// Padding mode.
    #[serde(default)]
    pub padding: Padding,
    /// Id used for padding.
    #[serde(default)]
    pub pad_id: u32,
    /// Output tensor name (`[batch, embedding_dim]`).
    #[serde(default = "default_output")]
    pub output_name: String,
    /// Lower-case text before tokenizing.
    #[serde(default)]
    pub lowercase: bool,
    /// Extra files the ONNX graph reads (external data), relative to the model directory.
    #[serde(default)]
    pub external_data: Vec<String>,
    /// Unknown keys (reported by [`ModelManifest::warnings`]).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn default_metric() -> String {
    "cosine".to_string()
}
fn default_true() -> bool {
    true
}
fn default_pixel_input() -> String {
    "pixel_values".to_string()
}
fn default_output() -> String {
    "embedding".to_string()
}
fn default_f32() -> String {
    "float32".to_string()
}
fn default_rescale() -> f64 {
    1.0 / 255.0
}
fn default_text_inputs() -> Vec<TextInput> {
    vec![TextInput::InputIds, TextInput::AttentionMask]
}

/// What a model file is for (its role names it in the fingerprint, so renaming files keeps the fingerprint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileRole {
    /// The image tower's ONNX graph.
    ImageTower,
    /// An external-data file of the image tower.
    ImageData,
    /// The text tower's ONNX graph.
    TextTower,
    /// An external-data file of the text tower.
    TextData,
    /// `tokenizer.json`.
    Tokenizer,
}

impl FileRole {
    fn name(self) -> &'static str {
        match self {
            FileRole::ImageTower => "image_tower",
            FileRole::ImageData => "image_data",
            FileRole::TextTower => "text_tower",
            FileRole::TextData => "text_data",
            FileRole::Tokenizer => "tokenizer",
        }
    }
}

/// One file of a model, with its digest.
#[derive(Debug, Clone)]
pub struct ModelFile {
    /// What it is for.
    pub role: FileRole,
    /// Path as written (relative to the model directory, or to the ONNX file's folder for in-graph data).
    pub relative: String,
    /// Resolved path (inside the model directory).
    pub path: PathBuf,
    /// Size in bytes.
    pub len: u64,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
}

/// The identity of an embedding space: SHA-256 over the model files' digests and the preprocessing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Lower-case hex, 64 characters.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The first 16 hex characters, for messages.
    #[must_use]
    pub fn short(&self) -> String {
        hex(self.0.get(..8).unwrap_or(&self.0))
    }

    /// Parses 64 hex characters (an optional `sha256:` prefix is accepted).
    #[must_use]
    pub fn from_hex(s: &str) -> Option<Fingerprint> {
        let s = s.strip_prefix("sha256:").unwrap_or(s);
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.short())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl ModelManifest {
    /// Reads and validates `<model_dir>/manifest.json`. Model files are not read (see [`Self::fingerprint`]).
    pub fn load(model_dir: impl AsRef<Path>) -> EncodeResult<ModelManifest> {
        let model_dir = model_dir.as_ref();
        let path = model_dir.join(MANIFEST_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EncodeError::ModelFileMissing { path });
            }
            Err(e) => return Err(EncodeError::io(&path, e)),
        };
        Self::parse(&text, model_dir)
    }

    /// Parses and validates manifest JSON for a model living in `model_dir` (which must exist).
    pub fn parse(json: &str, model_dir: impl AsRef<Path>) -> EncodeResult<ModelManifest> {
        let model_dir = model_dir.as_ref();
        let source = model_dir.join(MANIFEST_FILE);
        let dir = fs::canonicalize(model_dir).map_err(|e| EncodeError::io(model_dir, e))?;
        let mut manifest: ModelManifest = serde_json::from_str(json)
            .map_err(|e| EncodeError::ManifestParse { path: source.clone(), reason: e.to_string() })?;
        manifest.dir = dir;
        manifest.source = source;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The model directory (canonical).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn invalid(&self, field: &str, reason: impl Into<String>) -> EncodeError {
        EncodeError::ManifestInvalid { path: self.source.clone(), field: field.to_string(), reason: reason.into() }
    }

    fn validate(&self) -> EncodeResult<()> {
        if !(OLDEST_SUPPORTED_VERSION..=FORMAT_VERSION).contains(&self.format_version) {
            return Err(EncodeError::UnsupportedVersion {
                found: self.format_version,
                supported: format!("{OLDEST_SUPPORTED_VERSION}..={FORMAT_VERSION}"),
            });
        }
        let id = self.model_id.trim();
        if id.is_empty() || id.len() > 200 || self.model_id.chars().any(char::is_control) {
            return Err(self.invalid("model_id", "must be 1..=200 printable characters"));
        }
        if self.embedding_dim == 0 || self.embedding_dim > MAX_DIM {
            return Err(self.invalid("embedding_dim", format!("must be in 1..={MAX_DIM}")));
        }
        if self.metric != "cosine" {
            return Err(self.invalid("metric", format!("{:?} is not supported; use \"cosine\"", self.metric)));
        }
        self.validate_image()?;
        self.validate_text()?;
        for lang in &self.languages {
            if !super::lang::valid_code(lang) {
                return Err(self.invalid("languages", format!("{lang:?} is not a lower-case language code")));
            }
        }
        // Every path must stay inside the model directory.
        self.resolve("image.onnx", &self.image.onnx)?;
        self.resolve("text.onnx", &self.text.onnx)?;
        self.resolve("text.tokenizer", &self.text.tokenizer)?;
        for p in &self.image.external_data {
            self.resolve("image.external_data", p)?;
        }
        for p in &self.text.external_data {
            self.resolve("text.external_data", p)?;
        }
        if let Some(t) = &self.default_templates {
            self.resolve("default_templates", t)?;
        }
        Ok(())
    }

    fn validate_image(&self) -> EncodeResult<()> {
        let im = &self.image;
        if im.dtype != "float32" {
            return Err(self.invalid("image.dtype", format!("{:?} is not supported; use \"float32\"", im.dtype)));
        }
        if im.size.iter().any(|&s| s == 0 || s > MAX_SIDE) {
            return Err(self.invalid("image.size", format!("each side must be in 1..={MAX_SIDE}")));
        }
        match (im.resize, im.crop) {
            (ResizeMode::Exact, CropMode::None) => {}
            (ResizeMode::ShortestEdge, CropMode::Center) => {
                let to = im.resize_to.ok_or_else(|| self.invalid("image.resize_to", "required by shortest_edge"))?;
                if to < im.size[0].min(im.size[1]) || to > MAX_SIDE {
                    return Err(self.invalid(
                        "image.resize_to",
                        format!(
                            "must be at least the crop's shorter side ({}) and at most {MAX_SIDE}",
                            im.size[0].min(im.size[1])
                        ),
                    ));
                }
            }
            (ResizeMode::Exact, CropMode::Center) => {
                return Err(self.invalid("image.crop", "exact resize already gives `size`; use \"none\""));
            }
            (ResizeMode::ShortestEdge, CropMode::None) => {
                return Err(self.invalid("image.crop", "shortest_edge needs \"center\" to reach a fixed size"));
            }
        }
        if !(im.rescale_factor.is_finite() && im.rescale_factor > 0.0) {
            return Err(self.invalid("image.rescale_factor", "must be a positive number"));
        }
        if im.mean.iter().any(|m| !m.is_finite()) {
            return Err(self.invalid("image.mean", "must be finite"));
        }
        if im.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(self.invalid("image.std", "must be positive"));
        }
        if im.input_name.is_empty() || im.output_name.is_empty() {
            return Err(self.invalid("image.input_name", "tensor names must not be empty"));
        }
        Ok(())
    }

    fn validate_text(&self) -> EncodeResult<()> {
        let t = &self.text;
        if t.max_tokens == 0 || t.max_tokens > MAX_TOKENS {
            return Err(self.invalid("text.max_tokens", format!("must be in 1..={MAX_TOKENS}")));
        }
        if !t.inputs.contains(&TextInput::InputIds) {
            return Err(self.invalid("text.inputs", "must include \"input_ids\""));
        }
        let mut seen = t.inputs.clone();
        seen.sort_by_key(|i| *i as u8);
        seen.dedup();
        if seen.len() != t.inputs.len() {
            return Err(self.invalid("text.inputs", "lists an input twice"));
        }
        if t.output_name.is_empty() {
            return Err(self.invalid("text.output_name", "must not be empty"));
        }
        Ok(())
    }

    /// Resolves a path written in the manifest against the model directory, refusing escapes.
    pub fn resolve(&self, field: &str, relative: &str) -> EncodeResult<PathBuf> {
        confine(&self.dir, &self.dir, field, relative)
    }

    /// Keys the encoder does not know, as `section.key` (they are ignored; a typo shows up here).
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        let image = self.image.extra.keys().map(|k| format!("unknown key image.{k} ignored"));
        let text = self.text.extra.keys().map(|k| format!("unknown key text.{k} ignored"));
        image.chain(text).collect()
    }

    /// The model files with their digests: both towers, their external data (declared in the manifest and
    /// referenced by the graphs), and the tokenizer. A missing file is an error that says to run
    /// `scripts/setup_models.sh`.
    pub fn files(&self) -> EncodeResult<Vec<ModelFile>> {
        let mut out = Vec::new();
        for (role, data_role, onnx_rel, declared, field) in [
            (FileRole::ImageTower, FileRole::ImageData, &self.image.onnx, &self.image.external_data, "image"),
            (FileRole::TextTower, FileRole::TextData, &self.text.onnx, &self.text.external_data, "text"),
        ] {
            let path = self.resolve(&format!("{field}.onnx"), onnx_rel)?;
            let digest = digest_file(&path, true)?;
            let base = path.parent().unwrap_or(&self.dir).to_path_buf();
            let mut data: BTreeMap<PathBuf, String> = BTreeMap::new();
            for loc in &digest.external {
                let p = confine(&self.dir, &base, &format!("{field}.onnx external data"), loc)?;
                data.insert(p, loc.clone());
            }
            for rel in declared {
                let p = self.resolve(&format!("{field}.external_data"), rel)?;
                data.insert(p, rel.clone());
            }
            out.push(ModelFile { role, relative: onnx_rel.clone(), path, len: digest.len, sha256: digest.sha256 });
            for (p, rel) in data {
                let d = digest_file(&p, false)?;
                out.push(ModelFile { role: data_role, relative: rel, path: p, len: d.len, sha256: d.sha256 });
            }
        }
        let tok = self.resolve("text.tokenizer", &self.text.tokenizer)?;
        let d = digest_file(&tok, false)?;
        out.push(ModelFile {
            role: FileRole::Tokenizer,
            relative: self.text.tokenizer.clone(),
            path: tok,
            len: d.len,
            sha256: d.sha256,
        });
        Ok(out)
    }

    /// The preprocessing parameters in a canonical one-line form (part of the fingerprint and of
    /// [`super::Provenance`]).
    #[must_use]
    pub fn preprocessing(&self) -> String {
        let im = &self.image;
        let t = &self.text;
        let resize = match im.resize {
            ResizeMode::Exact => "exact".to_string(),
            ResizeMode::ShortestEdge => format!("shortest_edge:{}", im.resize_to.unwrap_or(0)),
        };
        format!(
            "image size={}x{} resize={} crop={:?} interpolation={:?} antialias={} rescale={:?} mean={:?} std={:?} \
             channels={:?} layout={:?}; text max_tokens={} inputs={:?} ids={:?} padding={:?} pad_id={} lowercase={}",
            im.size[0],
            im.size[1],
            resize,
            im.crop,
            im.interpolation,
            im.antialias,
            im.rescale_factor,
            im.mean,
            im.std,
            im.channels,
            im.layout,
            t.max_tokens,
            t.inputs,
            t.input_dtype,
            t.padding,
            t.pad_id,
            t.lowercase
        )
        .to_lowercase()
    }

    /// SHA-256 over a domain tag, the embedding dimension and metric, each model file's role, size and digest
    /// (in a fixed order), and [`Self::preprocessing`]. Reads every model file the first time in a process.
    pub fn fingerprint(&self) -> EncodeResult<Fingerprint> {
        let files = self.files()?;
        Ok(self.fingerprint_of(&files))
    }

    pub(crate) fn fingerprint_of(&self, files: &[ModelFile]) -> Fingerprint {
        let mut lines = vec![
            "skysift-model-fingerprint v1".to_string(),
            format!("dim {}", self.embedding_dim),
            format!("metric {}", self.metric),
        ];
        let mut entries: Vec<(FileRole, String)> =
            files.iter().map(|f| (f.role, format!("{} {} {}", f.role.name(), f.len, hex(&f.sha256)))).collect();
        entries.sort();
        lines.extend(entries.into_iter().map(|(_, l)| l));
        lines.push(self.preprocessing());
        let mut h = Sha256::new();
        for l in &lines {
            h.update(l.as_bytes());
            h.update(b"\n");
        }
        Fingerprint(h.finalize().into())
    }
}

/// Joins `relative` to `base` and checks that the result stays inside `root` (both canonical): no absolute
/// path, no `..`, and (when the file exists) no symlink leading outside. Returns the canonical path when the
/// file exists, the joined path otherwise.
pub(crate) fn confine(root: &Path, base: &Path, field: &str, relative: &str) -> EncodeResult<PathBuf> {
    let escape = |reason: &str| EncodeError::PathEscape {
        field: field.to_string(),
        path: relative.to_string(),
        model_dir: root.to_path_buf(),
        reason: reason.to_string(),
    };
    if relative.is_empty() || relative.contains('\0') {
        return Err(escape("empty or NUL path"));
    }
    let p = Path::new(relative);
    if p.is_absolute() || p.has_root() || relative.starts_with('\\') {
        return Err(escape("absolute paths are not allowed"));
    }
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(escape("`..` components are not allowed")),
            Component::RootDir | Component::Prefix(_) => return Err(escape("absolute paths are not allowed")),
        }
    }
    let joined = base.join(p);
    match fs::canonicalize(&joined) {
        Ok(real) if real.starts_with(root) => Ok(real),
        Ok(real) => Err(escape(&format!("resolves (through a symlink) to {}", real.display()))),
        Err(_) => {
            // A dangling symlink is refused outright; a plain missing file is reported when it is read.
            if fs::symlink_metadata(&joined).is_ok() {
                return Err(escape("is a symlink whose target does not exist"));
            }
            // A missing file in a folder reached through a symlink out of the model directory leaves it too.
            if let Some(real) = joined.ancestors().find_map(|a| fs::canonicalize(a).ok())
                && !real.starts_with(root)
            {
                return Err(escape(&format!("is in {} (through a symlink)", real.display())));
            }
            Ok(joined)
        }
    }
}

#[derive(Clone)]
struct FileDigest {
    len: u64,
    sha256: [u8; 32],
    external: Vec<String>,
}

type DigestMemo = HashMap<(PathBuf, bool), (u64, Option<SystemTime>, FileDigest)>;

fn digest_memo() -> &'static Mutex<DigestMemo> {
    static MEMO: OnceLock<Mutex<DigestMemo>> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(HashMap::new()))
}

/// SHA-256 of a file (and, for ONNX graphs, the external-data locations it names), memoised per process by
/// path, size and modification time, and across processes in the user cache (`super::digest_cache`).
fn digest_file(path: &Path, scan_onnx: bool) -> EncodeResult<FileDigest> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(EncodeError::ModelFileMissing { path: path.to_path_buf() });
        }
        Err(e) => return Err(EncodeError::io(path, e)),
    };
    if !meta.is_file() {
        return Err(EncodeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    let key = (path.to_path_buf(), scan_onnx);
    let mtime = meta.modified().ok();
    if let Ok(memo) = digest_memo().lock()
        && let Some((len, t, d)) = memo.get(&key)
        && *len == meta.len()
        && *t == mtime
        && mtime.is_some()
    {
        return Ok(d.clone());
    }
    let kind = if scan_onnx { "onnx" } else { "file" };
    let cache = super::digest_cache::cache_dir();
    let cached = cache.as_deref().and_then(|dir| super::digest_cache::lookup(dir, path, kind, &meta));
    let digest = if let Some((sha256, external)) = cached {
        FileDigest { len: meta.len(), sha256, external }
    } else {
        let digest = if scan_onnx {
            let bytes = fs::read(path).map_err(|e| EncodeError::io(path, e))?;
            let external = onnx::external_data_locations(&bytes)
                .map_err(|(offset, reason)| EncodeError::OnnxParse { path: path.to_path_buf(), offset, reason })?;
            FileDigest { len: bytes.len() as u64, sha256: Sha256::digest(&bytes).into(), external }
        } else {
            let mut f = fs::File::open(path).map_err(|e| EncodeError::io(path, e))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut len = 0u64;
            loop {
                let n = f.read(&mut buf).map_err(|e| EncodeError::io(path, e))?;
                if n == 0 {
                    break;
                }
                h.update(buf.get(..n).unwrap_or_default());
                len += n as u64;
            }
            FileDigest { len, sha256: h.finalize().into(), external: Vec::new() }
        };
        if let Some(dir) = &cache
            && digest.len == meta.len()
        {
            super::digest_cache::store(dir, path, kind, &meta, &digest.sha256, &digest.external);
        }
        digest
    };
    if let Ok(mut memo) = digest_memo().lock() {
        memo.insert(key, (meta.len(), mtime, digest.clone()));
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{
      "format_version": 1, "model_id": "tiny", "embedding_dim": 4,
      "image": {"onnx": "image.onnx", "size": [8, 8], "resize": "exact", "interpolation": "bilinear",
                "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
      "text": {"onnx": "text.onnx", "tokenizer": "tokenizer.json", "max_tokens": 16}
    }"#;

    fn with(field_json: &str, value: &str) -> String {
        MINIMAL.replacen(field_json, value, 1)
    }

    #[test]
    fn parses_minimal_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let m = ModelManifest::parse(MINIMAL, dir.path()).unwrap();
        assert_eq!(m.text.inputs, vec![TextInput::InputIds, TextInput::AttentionMask]);
        assert_eq!(m.image.layout, Layout::Nchw);
        assert!((m.image.rescale_factor - 1.0 / 255.0).abs() < 1e-15);
        assert!(m.warnings().is_empty());
    }

    #[test]
    fn refuses_bad_values_with_field_names() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (with("\"format_version\": 1", "\"format_version\": 9"), "format_version 9"),
            (with("\"embedding_dim\": 4", "\"embedding_dim\": 0"), "embedding_dim"),
            (with("\"resize\": \"exact\"", "\"resize\": \"squash\""), "unknown variant"),
            (with("\"std\": [0.5, 0.5, 0.5]", "\"std\": [0.5, 0.0, 0.5]"), "image.std"),
            (with("\"max_tokens\": 16", "\"max_tokens\": 0"), "text.max_tokens"),
            (with("\"resize\": \"exact\"", "\"resize\": \"shortest_edge\""), "image.crop"),
            (with("\"model_id\": \"tiny\",", ""), "model_id"),
        ];
        for (json, needle) in cases {
            let err = ModelManifest::parse(&json, dir.path()).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err:?}");
        }
    }

    #[test]
    fn refuses_escaping_paths() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../image.onnx", "/etc/passwd", "a/../../x.onnx", ""] {
            let json = with("\"onnx\": \"image.onnx\"", &format!("\"onnx\": {bad:?}"));
            let err = ModelManifest::parse(&json, dir.path()).unwrap_err();
            assert!(matches!(err, EncodeError::PathEscape { .. }), "{bad}: {err}");
        }
        let json = with("\"tokenizer\": \"tokenizer.json\"", "\"tokenizer\": \"t/../../tok.json\"");
        assert!(matches!(ModelManifest::parse(&json, dir.path()), Err(EncodeError::PathEscape { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_symlinks_leading_outside() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.onnx"), b"x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.onnx"), dir.path().join("image.onnx")).unwrap();
        let err = ModelManifest::parse(MINIMAL, dir.path()).unwrap_err();
        assert!(matches!(err, EncodeError::PathEscape { .. }), "{err}");
        // Nor is a missing file in a folder that is a symlink leading outside.
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        let err = ModelManifest::parse(&with("\"image.onnx\"", "\"out/missing.onnx\""), dir.path()).unwrap_err();
        assert!(matches!(err, EncodeError::PathEscape { .. }), "{err}");
        // A symlink that stays inside is fine.
        let dir2 = tempfile::tempdir().unwrap();
        std::fs::write(dir2.path().join("real.onnx"), b"x").unwrap();
        std::os::unix::fs::symlink(dir2.path().join("real.onnx"), dir2.path().join("image.onnx")).unwrap();
        ModelManifest::parse(MINIMAL, dir2.path()).unwrap();
    }

    #[test]
    fn fingerprint_tracks_content_and_preprocessing_not_names() {
        let dir = tempfile::tempdir().unwrap();
        // Empty files are valid (empty) protobuf messages.
        for f in ["image.onnx", "text.onnx", "tokenizer.json"] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let m = ModelManifest::parse(MINIMAL, dir.path()).unwrap();
        let a = m.fingerprint().unwrap();
        let renamed = ModelManifest::parse(&MINIMAL.replace("\"tiny\"", "\"other\""), dir.path()).unwrap();
        assert_eq!(a, renamed.fingerprint().unwrap());
        let pre = ModelManifest::parse(&MINIMAL.replace("[0.5, 0.5, 0.5]}", "[0.5, 0.5, 0.25]}"), dir.path()).unwrap();
        assert_ne!(a, pre.fingerprint().unwrap());
        std::fs::write(dir.path().join("tokenizer.json"), b"{}").unwrap();
        // The memo is keyed by size and mtime: a different size is seen at once.
        assert_ne!(a, m.fingerprint().unwrap());
        assert_eq!(Fingerprint::from_hex(&a.to_hex()), Some(a));
        assert_eq!(Fingerprint::from_hex("zz"), None);
    }
}
