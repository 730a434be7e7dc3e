//! [`EncodeError`]: everything loading a model and encoding with it can fail with.
//!
//! Context lives in typed fields; each message says what to do next. The crate's [`crate::Error`] wraps it
//! as `Error::Encode`.

use std::path::PathBuf;

/// A `Result` whose error is [`EncodeError`].
pub type EncodeResult<T> = std::result::Result<T, EncodeError>;

/// Errors of [`crate::encode`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// No ONNX Runtime shared library was found in any searched place.
    #[error(
        "ONNX Runtime library not found (searched: {searched}); run scripts/setup_ort.sh (or scripts/setup_ort.sh --gpu \
         for CUDA), or point SKYSIFT_ORT_LIB / ORT_DYLIB_PATH at libonnxruntime"
    )]
    RuntimeNotFound {
        /// Every place looked at, in order, `; `-separated.
        searched: String,
    },
    /// The ONNX Runtime library exists but could not be loaded or initialised.
    #[error("cannot load ONNX Runtime from {path}: {reason}; run scripts/setup_ort.sh to fetch a compatible build")]
    RuntimeLoad {
        /// The library file.
        path: PathBuf,
        /// What the loader said.
        reason: String,
    },
    /// The process already loaded a different ONNX Runtime library (a process can load only one).
    #[error(
        "ONNX Runtime is already loaded from {loaded} in this process; cannot switch to {requested} (restart the \
         process, or use the same library for every encoder)"
    )]
    RuntimeAlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The library asked for.
        requested: PathBuf,
    },
    /// `Device::Cuda` was asked for and the CUDA execution provider could not be used.
    #[error(
        "CUDA execution provider unavailable: {reason}; install onnxruntime-gpu with scripts/setup_ort.sh --gpu, put \
         the CUDA 13 and cuDNN 9 libraries on LD_LIBRARY_PATH, or use --device cpu|auto"
    )]
    CudaUnavailable {
        /// Why (the library has no CUDA provider, or registering it failed).
        reason: String,
    },
    /// ONNX Runtime reported an error.
    #[error("ONNX Runtime: {context}: {reason}")]
    Ort {
        /// What skysift was doing (which tower, which step).
        context: String,
        /// ONNX Runtime's message.
        reason: String,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A model file named by the manifest does not exist.
    #[error("model file {path} is missing; run scripts/setup_models.sh (it builds or checks every model file)")]
    ModelFileMissing {
        /// The missing file.
        path: PathBuf,
    },
    /// `manifest.json` is not valid JSON or lacks a required field.
    #[error("{path}: not a valid model manifest: {reason}")]
    ManifestParse {
        /// The manifest file.
        path: PathBuf,
        /// The parser's message (names the field and line).
        reason: String,
    },
    /// A manifest field has a value skysift cannot use.
    #[error("{path}: field `{field}`: {reason}")]
    ManifestInvalid {
        /// The manifest file.
        path: PathBuf,
        /// Dotted field name, e.g. `image.mean`.
        field: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The manifest's format version is not one this build reads.
    #[error("manifest format_version {found} is not supported (this build reads {supported}); upgrade skysift")]
    UnsupportedVersion {
        /// The version in the file.
        found: u64,
        /// The supported range, e.g. `1..=1`.
        supported: String,
    },
    /// A path in the manifest (or ONNX external data) points outside the model directory.
    #[error("{field}: path {path:?} escapes the model directory {model_dir}: {reason}")]
    PathEscape {
        /// Where the path came from, e.g. `image.onnx` or `text.onnx external data`.
        field: String,
        /// The offending path as written.
        path: String,
        /// The model directory.
        model_dir: PathBuf,
        /// Why it is refused (absolute, `..`, symlink target outside).
        reason: String,
    },
    /// An ONNX file could not be scanned (not a protobuf `ModelProto`).
    #[error("{path}: not a readable ONNX model at byte {offset}: {reason}")]
    OnnxParse {
        /// The ONNX file.
        path: PathBuf,
        /// Byte offset of the problem.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The tokenizer could not be loaded or failed on an input.
    #[error("tokenizer {path}: {reason}")]
    Tokenizer {
        /// The tokenizer.json file.
        path: PathBuf,
        /// The tokenizer's message.
        reason: String,
    },
    /// A template file is malformed.
    #[error("templates {path}: {reason}")]
    Templates {
        /// The template file (or `<api>` for sets added in code).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An image could not be decoded or used.
    #[error("image {what}: {reason}")]
    Image {
        /// Which image (file path or batch index).
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A tower returned a tensor of an unexpected shape.
    #[error(
        "{tower} tower returned shape {got:?}, expected [{rows}, {dim}]; the ONNX file does not match the manifest"
    )]
    OutputShape {
        /// `image` or `text`.
        tower: &'static str,
        /// The shape returned.
        got: Vec<i64>,
        /// Rows expected (batch size).
        rows: usize,
        /// `embedding_dim` from the manifest.
        dim: usize,
    },
    /// The model was loaded without the tower a call needs.
    #[error("the {tower} tower was not loaded (EncoderBuilder::towers); build the encoder with it")]
    TowerNotLoaded {
        /// `image` or `text`.
        tower: &'static str,
    },
    /// A query or collection was encoded by another model than the one asked to compare with it.
    #[error(
        "embedding spaces differ: the collection was encoded with {expected_model} (fingerprint {expected_fingerprint}) \
         but the query with {got_model} (fingerprint {got_fingerprint}); encode the query with {expected_model}, or \
         re-import the collection with {got_model}"
    )]
    ModelMismatch {
        /// The model recorded by the collection.
        expected_model: String,
        /// Its fingerprint (hex).
        expected_fingerprint: String,
        /// The model that encoded the query.
        got_model: String,
        /// Its fingerprint (hex).
        got_fingerprint: String,
    },
    /// Collection params lack a provenance entry or hold a malformed one.
    #[error("collection params: {key}: {reason}")]
    Provenance {
        /// The param key.
        key: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// No template set exists for a language.
    #[error("no prompt templates for language {lang:?}; available: {available} (add a set with templates/<lang>.json)")]
    UnknownLanguage {
        /// The language asked for.
        lang: String,
        /// The languages with template sets, comma-separated.
        available: String,
    },
    /// An argument the API cannot serve as given.
    #[error("{0}")]
    Invalid(String),
}

impl EncodeError {
    pub(crate) fn ort(context: impl Into<String>, err: &impl std::fmt::Display) -> Self {
        EncodeError::Ort { context: context.into(), reason: err.to_string() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EncodeError::Io { path: path.into(), source }
    }
}
