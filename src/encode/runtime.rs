//! Finding and loading the ONNX Runtime shared library (crate `ort`, `load-dynamic`), and choosing the
//! execution provider.
//!
//! Search order for the library, first hit wins:
//! 1. an explicit path ([`super::EncoderBuilder::ort_library`], the CLI's `--ort-lib`);
//! 2. the environment: `SKYSIFT_ORT_LIB`, then `ORT_DYLIB_PATH`;
//! 3. `.cache/onnxruntime-gpu/` (only for `Device::Cuda`/`Device::Auto`) and `.cache/onnxruntime/` in the
//!    model directory's ancestors, then in the current directory's ancestors (where `scripts/setup_ort.sh`
//!    puts them);
//! 4. `~/.cache/skysift/onnxruntime-gpu/` (CUDA/auto only) and `~/.cache/skysift/onnxruntime/`.
//!
//! Invariants: a process loads at most one ONNX Runtime library (the loader is process-global); asking for a
//! different explicit library later is an error, not a silent switch. `Device::Auto` that ends on the CPU
//! says why in the encoder's notes and, once per process, on stderr.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, OnceLock};

use ort::environment::Environment;

use super::error::{EncodeError, EncodeResult};

/// Where the execution should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// CPU execution provider only.
    Cpu,
    /// The CUDA execution provider; an error when it cannot be used.
    Cuda,
    /// CUDA when the library and the machine support it, otherwise the CPU (with a note).
    #[default]
    Auto,
}

impl std::str::FromStr for Device {
    type Err = EncodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda),
            "auto" => Ok(Device::Auto),
            other => Err(EncodeError::Invalid(format!("unknown device {other:?}; use cpu, cuda or auto"))),
        }
    }
}

/// The execution provider sessions actually run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionDevice {
    /// ONNX Runtime's CPU provider.
    Cpu,
    /// ONNX Runtime's CUDA provider.
    Cuda,
}

impl std::fmt::Display for ExecutionDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExecutionDevice::Cpu => "cpu",
            ExecutionDevice::Cuda => "cuda",
        })
    }
}

/// The loaded runtime: the library path and the process-wide ORT environment.
pub(crate) struct Runtime {
    pub(crate) library: PathBuf,
    pub(crate) env: Environment,
    pub(crate) has_cuda: bool,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static LOAD_LOCK: Mutex<()> = Mutex::new(());
static AUTO_NOTE: Once = Once::new();

/// Library file names tried in a cache folder, most specific first.
fn candidate_names() -> &'static [&'static str] {
    if cfg!(target_os = "windows") {
        &["onnxruntime.dll"]
    } else if cfg!(target_os = "macos") {
        &["libonnxruntime.dylib"]
    } else {
        &["libonnxruntime.so"]
    }
}

/// The library in `dir`: `libonnxruntime.so` or else the highest `libonnxruntime.so.X.Y.Z`.
fn library_in(dir: &Path) -> Option<PathBuf> {
    for name in candidate_names() {
        let p = dir.join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    let prefix = format!("{}.", candidate_names().first()?);
    let mut versioned: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)) && p.is_file())
        .collect();
    versioned.sort();
    versioned.pop()
}

/// Finds the library per the module's search order; the error lists every place looked at.
pub(crate) fn find_library(explicit: Option<&Path>, model_dir: &Path, device: Device) -> EncodeResult<PathBuf> {
    let mut searched = Vec::new();
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        return Err(EncodeError::RuntimeNotFound { searched: format!("{} (given explicitly)", p.display()) });
    }
    for var in ["SKYSIFT_ORT_LIB", "ORT_DYLIB_PATH"] {
        if let Some(v) = env::var_os(var).filter(|v| !v.is_empty()) {
            let p = PathBuf::from(v);
            if p.is_file() {
                return Ok(p);
            }
            searched.push(format!("${var}={}", p.display()));
        }
    }
    let folders: &[&str] = match device {
        Device::Cpu => &["onnxruntime"],
        Device::Cuda | Device::Auto => &["onnxruntime-gpu", "onnxruntime"],
    };
    let mut roots: Vec<PathBuf> = model_dir.ancestors().map(Path::to_path_buf).collect();
    if let Ok(cwd) = env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    let mut seen = std::collections::HashSet::new();
    for folder in folders {
        for root in &roots {
            let dir = root.join(".cache").join(folder);
            if !seen.insert(dir.clone()) {
                continue;
            }
            if let Some(p) = library_in(&dir) {
                return Ok(p);
            }
        }
    }
    searched.push(format!(".cache/{{{}}} above {} and the current directory", folders.join(","), model_dir.display()));
    if let Some(home) = env::var_os("HOME").filter(|h| !h.is_empty()) {
        for folder in folders {
            let dir = Path::new(&home).join(".cache").join("skysift").join(folder);
            if let Some(p) = library_in(&dir) {
                return Ok(p);
            }
            searched.push(dir.display().to_string());
        }
    }
    Err(EncodeError::RuntimeNotFound { searched: searched.join("; ") })
}

/// Loads the library (once per process) and returns the runtime.
pub(crate) fn load(library: &Path, explicit: bool) -> EncodeResult<&'static Runtime> {
    let _guard = LOAD_LOCK.lock().map_err(|_| EncodeError::Invalid("ONNX Runtime loader lock poisoned".into()))?;
    if let Some(rt) = RUNTIME.get() {
        let same = fs::canonicalize(library).ok() == fs::canonicalize(&rt.library).ok();
        if explicit && !same {
            return Err(EncodeError::RuntimeAlreadyLoaded { loaded: rt.library.clone(), requested: library.into() });
        }
        return Ok(rt);
    }
    let builder = ort::init_from(library)
        .map_err(|e| EncodeError::RuntimeLoad { path: library.to_path_buf(), reason: e.to_string() })?;
    let env = builder
        .with_name("skysift")
        .with_telemetry(false)
        .build()
        .map_err(|e| EncodeError::RuntimeLoad { path: library.to_path_buf(), reason: e.to_string() })?;
    let has_cuda = cuda_compiled_in();
    Ok(RUNTIME.get_or_init(|| Runtime { library: library.to_path_buf(), env, has_cuda }))
}

/// Whether `ort::ep::CUDA` is usable at all with the loaded library (compiled-in provider).
fn cuda_compiled_in() -> bool {
    use ort::ep::ExecutionProvider;
    ort::ep::CUDA::is_available().unwrap_or(false)
}

/// Prints the automatic CPU fallback once per process.
pub(crate) fn announce_fallback(note: &str) {
    AUTO_NOTE.call_once(|| eprintln!("skysift: {note}"));
}
