//! Prompt template sets: data files, one per language (`templates/<lang>.json`), and the library that holds
//! them per model.
//!
//! ```json
//! { "language": "en",
//!   "templates": ["a satellite image of {}", "an aerial photo of {}", ...],
//!   "classes": { "Airport": "an airport", ... } }
//! ```
//!
//! Invariants: a set has at least one template; every template contains `{}` exactly once; the first
//! template is the single-prompt form (used by [`super::Prompting::Single`]); class phrases are non-empty.
//! The file name (without `.json`) is the language code unless `language` says otherwise; both must agree
//! when both are present.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{EncodeError, EncodeResult};
use super::lang;

/// The placeholder a template replaces with the phrase.
pub const PLACEHOLDER: &str = "{}";

/// Largest template file read (they are a few kilobytes).
const MAX_TEMPLATE_FILE: u64 = 4 << 20;

/// The templates of one language, and optionally class phrases in that language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSet {
    /// ISO 639-1 code.
    #[serde(default)]
    pub language: String,
    /// Templates, each with one `{}`; the first is the single-prompt form.
    pub templates: Vec<String>,
    /// Class key -> phrase in this language (e.g. `"Airport": "an airport"`), for zero-shot labelling.
    #[serde(default)]
    pub classes: BTreeMap<String, String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TemplateSet {
    /// A set from templates (validated).
    pub fn new(language: &str, templates: impl IntoIterator<Item = impl Into<String>>) -> EncodeResult<TemplateSet> {
        let set = TemplateSet {
            language: language.to_string(),
            templates: templates.into_iter().map(Into::into).collect(),
            classes: BTreeMap::new(),
            note: None,
        };
        set.validate(Path::new("<api>"))?;
        Ok(set)
    }

    /// Adds class phrases.
    #[must_use]
    pub fn with_classes(mut self, classes: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>) -> Self {
        self.classes.extend(classes.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Reads a `<lang>.json` file.
    pub fn load(path: impl AsRef<Path>) -> EncodeResult<TemplateSet> {
        let path = path.as_ref();
        let meta = fs::metadata(path).map_err(|e| EncodeError::io(path, e))?;
        if meta.len() > MAX_TEMPLATE_FILE {
            return Err(templates_err(path, format!("larger than {MAX_TEMPLATE_FILE} bytes")));
        }
        let text = fs::read_to_string(path).map_err(|e| EncodeError::io(path, e))?;
        let mut set: TemplateSet = serde_json::from_str(&text).map_err(|e| templates_err(path, e.to_string()))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if set.language.is_empty() {
            set.language = stem.to_string();
        } else if lang::valid_code(stem) && stem != set.language {
            return Err(templates_err(path, format!("file name says {stem:?} but `language` says {:?}", set.language)));
        }
        set.validate(path)?;
        Ok(set)
    }

    fn validate(&self, path: &Path) -> EncodeResult<()> {
        if !lang::valid_code(&self.language) {
            return Err(templates_err(path, format!("{:?} is not a lower-case language code", self.language)));
        }
        if self.templates.is_empty() {
            return Err(templates_err(path, "no templates"));
        }
        for t in &self.templates {
            if t.matches(PLACEHOLDER).count() != 1 {
                return Err(templates_err(path, format!("template {t:?} must contain {PLACEHOLDER} exactly once")));
            }
        }
        for (k, v) in &self.classes {
            if k.trim().is_empty() || v.trim().is_empty() {
                return Err(templates_err(path, format!("class {k:?} has an empty key or phrase")));
            }
        }
        Ok(())
    }

    /// The prompts for `phrase`: all templates, or only the first when `single`.
    #[must_use]
    pub fn prompts(&self, phrase: &str, single: bool) -> Vec<String> {
        let n = if single { 1 } else { self.templates.len() };
        self.templates.iter().take(n).map(|t| t.replacen(PLACEHOLDER, phrase.trim(), 1)).collect()
    }
}

fn templates_err(path: &Path, reason: impl Into<String>) -> EncodeError {
    EncodeError::Templates { path: path.to_path_buf(), reason: reason.into() }
}

/// Template sets by language. Adding a set for a language replaces the previous one.
#[derive(Debug, Clone, Default)]
pub struct TemplateLibrary {
    sets: BTreeMap<String, TemplateSet>,
    sources: BTreeMap<String, PathBuf>,
}

impl TemplateLibrary {
    /// An empty library.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads every `*.json` file of `dir` (non-recursive), replacing sets of the same language. Returns the
    /// languages loaded.
    pub fn load_dir(&mut self, dir: impl AsRef<Path>) -> EncodeResult<Vec<String>> {
        let dir = dir.as_ref();
        let mut paths: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(|e| EncodeError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
            .collect();
        paths.sort();
        let mut loaded = Vec::new();
        for p in paths {
            let set = TemplateSet::load(&p)?;
            loaded.push(set.language.clone());
            self.sources.insert(set.language.clone(), p);
            self.sets.insert(set.language.clone(), set);
        }
        Ok(loaded)
    }

    /// Adds or replaces the set of `set.language` (validated).
    pub fn insert(&mut self, set: TemplateSet) -> EncodeResult<()> {
        set.validate(Path::new("<api>"))?;
        self.sources.remove(&set.language);
        self.sets.insert(set.language.clone(), set);
        Ok(())
    }

    /// Removes a language's set.
    pub fn remove(&mut self, lang: &str) -> Option<TemplateSet> {
        self.sources.remove(lang);
        self.sets.remove(lang)
    }

    /// The set of a language.
    #[must_use]
    pub fn get(&self, lang: &str) -> Option<&TemplateSet> {
        self.sets.get(lang)
    }

    /// The file a language's set came from (`None` for sets added in code).
    #[must_use]
    pub fn source(&self, lang: &str) -> Option<&Path> {
        self.sources.get(lang).map(PathBuf::as_path)
    }

    /// Languages with a set, sorted.
    #[must_use]
    pub fn languages(&self) -> Vec<String> {
        self.sets.keys().cloned().collect()
    }

    /// Whether the library is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    pub(crate) fn unknown(&self, lang: &str) -> EncodeError {
        EncodeError::UnknownLanguage { lang: lang.to_string(), available: self.languages().join(", ") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_and_validation() {
        let set = TemplateSet::new("en", ["a photo of {}", "an aerial view of {}"]).unwrap();
        assert_eq!(set.prompts(" a river ", false), vec!["a photo of a river", "an aerial view of a river"]);
        assert_eq!(set.prompts("x", true), vec!["a photo of x"]);
        assert!(TemplateSet::new("en", ["no placeholder"]).is_err());
        assert!(TemplateSet::new("en", ["{} and {}"]).is_err());
        assert!(TemplateSet::new("EN", ["{}"]).is_err());
        assert!(TemplateSet::new("en", Vec::<String>::new()).is_err());
    }

    #[test]
    fn load_dir_replaces_and_checks_names() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("en.json"), r#"{"templates": ["a {}"], "classes": {"Port": "a port"}}"#).unwrap();
        fs::write(dir.path().join("de.json"), r#"{"language": "de", "templates": ["ein {}"]}"#).unwrap();
        let mut lib = TemplateLibrary::new();
        assert_eq!(lib.load_dir(dir.path()).unwrap(), vec!["de", "en"]);
        assert_eq!(lib.get("en").unwrap().classes["Port"], "a port");
        lib.insert(TemplateSet::new("en", ["the {}"]).unwrap()).unwrap();
        assert_eq!(lib.get("en").unwrap().templates, vec!["the {}"]);
        assert!(lib.source("en").is_none());
        fs::write(dir.path().join("fr.json"), r#"{"language": "it", "templates": ["{}"]}"#).unwrap();
        assert!(lib.load_dir(dir.path()).is_err());
    }
}
