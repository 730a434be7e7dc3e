//! Encoders: images and text to vectors with CLIP-family models run by ONNX Runtime (crate `ort`, loaded at
//! run time), on the CPU or with CUDA; model manifests and fingerprints; prompt ensembles in ten languages;
//! zero-shot labelling.
//!
//! | file | responsibility |
//! | --- | --- |
//! | `manifest.rs` | `manifest.json`: parsing, validation, path confinement, file digests, [`Fingerprint`] |
//! | `digest_cache.rs` | model file digests kept across processes in the user cache, keyed on the file's stat |
//! | `onnx.rs` | minimal protobuf walk that lists an ONNX file's external-data files |
//! | `provenance.rs` | [`Provenance`]: the encoder identity stored in collection params; compatibility check |
//! | `locate.rs` | the user cache folder; where the default model is found: `SKYSIFT_MODEL_DIR`, `models/demo`, the user cache |
//! | `runtime.rs` | finding and loading the ONNX Runtime library; [`Device`] |
//! | `ort_cache.rs` | optimised models kept across processes in the user cache (weights mapped, not parsed) |
//! | `ort_session.rs` | ONNX Runtime session creation on CPU/CUDA with fallback; output shape checks; L2 normalisation |
//! | `preprocess.rs` | image preprocessing, Pillow-exact resize, normalisation, tensor layout |
//! | `image.rs` | the image tower (sessions + preprocessing; a batch cut into one part per session) |
//! | `tokenizer.rs` | `tokenizer.json`: Unigram vocabularies by hash lookup (no trie to build), the crate's tokenizer otherwise |
//! | `text.rs` | the text tower (tokenizer + session), padding and masks |
//! | `encoder.rs` | [`Encoder`] and its builder: batching, normalisation, the text cache |
//! | `cache.rs` | [`TextCache`]: bounded LRU keyed by (fingerprint, text) |
//! | `templates.rs` | [`TemplateSet`] files per language and the [`TemplateLibrary`] |
//! | `lang.rs` | dependency-free language detection for the ten languages |
//! | `ensemble.rs` | prompt ensembles, negative prompts, [`TextQuery`] -> [`QueryVector`] |
//! | `zeroshot.rs` | [`ZeroShot`]: labels -> vectors -> each image's best labels |
//! | `error.rs` | [`EncodeError`] |
//!
//! What must stay true:
//! - every vector this module returns is L2-normalised and has the manifest's `embedding_dim` values;
//! - nothing outside the model directory is read on a manifest's behalf (paths are confined, symlinks
//!   included), and a model's [`Fingerprint`] changes whenever a weight, the tokenizer or a preprocessing
//!   parameter changes;
//! - a query vector is compared with a collection only when their [`Provenance`]s are compatible;
//! - image preprocessing matches the Python reference (`scripts/model/reference_preprocess.py`): the resize is
//!   bit-exact with Pillow, and the whole pipeline is within the tolerance `tests/encode.rs` states;
//! - this module has no `unsafe` (the crate forbids it); ONNX Runtime's own `unsafe` stays inside `ort`.
//!
//! ```no_run
//! use skysift::encode::{Encoder, Device, TextQuery, ZeroShot, Prompting};
//!
//! let enc = Encoder::builder("models/demo").device(Device::Cpu).batch_size(16).build()?;
//! let images = enc.encode_image_files(&["samples/aid-mini/Port/port_100.jpg"])?;
//! let q = enc.query(&TextQuery::new("ein Hafen mit vielen Schiffen"))?; // German detected, 6 templates
//! let score: f32 = q.vector.iter().zip(&images[0]).map(|(a, b)| a * b).sum();
//! let labels = ZeroShot::from_template_classes(&enc, &["en"], Prompting::Ensemble)?;
//! let best = labels.top(&images[0], 3)?;
//! # Ok::<(), skysift::encode::EncodeError>(())
//! ```

mod cache;
mod digest_cache;
mod encoder;
mod ensemble;
mod error;
mod image;
mod lang;
pub mod locate;
mod manifest;
mod onnx;
mod ort_cache;
mod ort_session;
mod preprocess;
mod provenance;
mod runtime;
mod templates;
mod text;
mod tokenizer;
mod zeroshot;

pub use cache::{CacheStats, DEFAULT_CAPACITY, TextCache};
pub use encoder::{DEFAULT_BATCH_SIZE, Encoder, EncoderBuilder, ImageInput, MAX_BATCH_SIZE, Towers};
pub use ensemble::{DEFAULT_NEGATIVE_WEIGHT, Language, Prompting, QueryVector, TextQuery};
pub use error::{EncodeError, EncodeResult};
pub use lang::{Detection, SUPPORTED as SUPPORTED_LANGUAGES, detect as detect_language, valid_code};
pub use manifest::{
    ChannelOrder, CropMode, FORMAT_VERSION, FileRole, Fingerprint, IdType, ImageSpec, Interpolation, Layout,
    MANIFEST_FILE, ModelFile, ModelManifest, OLDEST_SUPPORTED_VERSION, Padding, ResizeMode, TextInput, TextSpec,
};
pub use ort_cache::ORT_CACHE_ENV;
pub use preprocess::{MAX_DECODE_PIXELS, Preprocessor, load_rgb, resample, to_rgb8};
pub use provenance::{KEY_DIM, KEY_FINGERPRINT, KEY_MODEL_ID, KEY_PREPROCESSING, Provenance};
pub use runtime::{Device, ExecutionDevice};
pub use templates::{PLACEHOLDER, TemplateLibrary, TemplateSet};
pub use zeroshot::{Label, LabelScore, ZeroShot};
