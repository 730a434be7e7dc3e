//! Where the default model lives when no `--model` is given.
//!
//! The search path, first match wins (a directory matches when it holds `manifest.json`):
//! 1. `SKYSIFT_MODEL_DIR`;
//! 2. `models/demo` in the current directory (a clone of this repository);
//! 3. the user cache: `$XDG_CACHE_HOME/skysift/models/demo`, else `~/.cache/skysift/models/demo`,
//!    where `scripts/setup_models.sh` and Python's `skysift.models.install_demo()` install the
//!    demo model.
//!
//! A directory named explicitly (`--model DIR`, a collection's recorded `model.dir`) is used as it
//! is; only the default is searched.

use std::path::{Path, PathBuf};

/// Environment variable naming the default model directory.
pub const MODEL_DIR_ENV: &str = "SKYSIFT_MODEL_DIR";

/// skysift's folder in the user cache (`$XDG_CACHE_HOME/skysift`, else `~/.cache/skysift`),
/// whether or not it exists; `None` without a home directory.
#[must_use]
pub fn user_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let cache = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))?;
    Some(cache.join("skysift"))
}

/// The demo model's directory in the user cache (`$XDG_CACHE_HOME/skysift/models/demo` or
/// `~/.cache/skysift/models/demo`), whether or not it exists; `None` without a home directory.
#[must_use]
pub fn user_model_dir() -> Option<PathBuf> {
    Some(user_cache_dir()?.join("models").join("demo"))
}

/// The places [`default_model_dir`] looks, in order.
#[must_use]
pub fn search_path() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(d) = std::env::var_os(MODEL_DIR_ENV).filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(d));
    }
    out.push(PathBuf::from("models").join("demo"));
    out.extend(user_model_dir());
    out
}

/// The first directory of [`search_path`] holding a `manifest.json`, or an error naming every
/// place looked at and how to install the demo model.
pub fn default_model_dir() -> Result<PathBuf, String> {
    let path = search_path();
    if let Some(found) = path.iter().find(|d| d.join("manifest.json").is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = path.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "no model given and none found (looked in {}): pass --model DIR, set {MODEL_DIR_ENV}, or install the demo \
         model with scripts/setup_models.sh (from a clone) or `python -c \"import skysift; \
         skysift.models.install_demo()\"`",
        looked.join(", ")
    ))
}

/// `given` when it is `Some`, else [`default_model_dir`].
pub fn model_dir_or_default(given: Option<&Path>) -> Result<PathBuf, String> {
    given.map_or_else(default_model_dir, |d| Ok(d.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_cache_follows_xdg_and_home() {
        // Only reads the environment; the test does not change it (tests run in parallel).
        let dir = user_model_dir();
        if std::env::var_os("XDG_CACHE_HOME").is_some() || std::env::var_os("HOME").is_some() {
            let dir = dir.expect("a cache directory");
            assert!(dir.ends_with("skysift/models/demo"), "{}", dir.display());
        }
        assert!(search_path().iter().any(|p| p == Path::new("models/demo")));
    }

    #[test]
    fn a_given_directory_is_used_as_it_is() {
        let d = Path::new("/nowhere/model");
        assert_eq!(model_dir_or_default(Some(d)).unwrap(), d);
    }
}
