//! The names of the fields `skysift import` writes, in one place: the import writes them, metadata
//! readers keep out of them, heat maps and result tables read them.
//!
//! Every record of an import carries [`SOURCE`] (the file, relative to the archive root) and
//! [`SCENE`] (its scene lineage) in its reserved columns, the [`IMPORT_FIELDS`] (what the ledger
//! needs to resume: [`FILE_SIZE`], [`FILE_HASH`], [`TILE_COUNT`], [`TILING`]; and what the file is),
//! and in collections made since no-data is read the [`IMAGERY_FIELDS`].

use skysift_storage::schema::FieldType;

/// The imported file, relative to the archive root (a reserved column).
pub const SOURCE: &str = "source";
/// The scene a tile belongs to (a reserved column; the source path for imported files).
pub const SCENE: &str = "scene";
/// A tile's pixel window in its scene (a reserved column).
pub const WINDOW: &str = "window";
/// A tile's JPEG thumbnail (a reserved column).
pub const THUMBNAIL: &str = "thumbnail";
/// A tile's footprint, west-south-east-north in WGS84 degrees.
pub const FOOTPRINT: &str = "footprint";
/// `jpeg`, `png`, `tiff` or `geotiff`.
pub const FORMAT: &str = "format";
/// The file's coordinate reference system, as read.
pub const CRS: &str = "crs";
/// The bands drawn as R, G, B (1-based, comma separated).
pub const BANDS: &str = "bands";
/// Ground sample distance in metres (from metadata when present).
pub const GSD: &str = "gsd";
/// A tile's index among the file's kept tiles.
pub const TILE_INDEX: &str = "tile_index";
/// Tiles of the file that were kept (encoded or to be encoded).
pub const TILE_COUNT: &str = "tile_count";
/// The file's size in bytes when imported.
pub const FILE_SIZE: &str = "file_size";
/// SHA-256 of the file's content, lower-case hex.
pub const FILE_HASH: &str = "file_hash";
/// The import recipe (tiling, bands, no-data threshold) the records were made with.
pub const TILING: &str = "tiling";
/// A tile's share of valid (not no-data) pixels, 0..1.
pub const VALID_FRACTION: &str = "valid_fraction";
/// The box of the scene's valid pixels, in WGS84 degrees.
pub const SCENE_FOOTPRINT: &str = "scene_footprint";

/// Fields the import writes itself; metadata of the same name is renamed `meta:<name>` (`gsd` is
/// taken from metadata when present).
pub const IMPORT_FIELDS: [(&str, FieldType); 10] = [
    (FOOTPRINT, FieldType::GeoBbox),
    (FORMAT, FieldType::Keyword),
    (CRS, FieldType::Keyword),
    (BANDS, FieldType::Text),
    (GSD, FieldType::Float),
    (TILE_INDEX, FieldType::Integer),
    (TILE_COUNT, FieldType::Integer),
    (FILE_SIZE, FieldType::Integer),
    (FILE_HASH, FieldType::Text),
    (TILING, FieldType::Text),
];

/// Fields a new collection gets for imagery with no-data (an older collection without them is
/// imported without them): each tile's share of valid pixels, and the box of the scene's valid pixels.
pub const IMAGERY_FIELDS: [(&str, FieldType); 2] =
    [(VALID_FRACTION, FieldType::Float), (SCENE_FOOTPRINT, FieldType::GeoBbox)];

/// Metadata keys that fill a reserved column instead of a field.
pub const RESERVED_COLUMNS: [&str; 3] = [SOURCE, SCENE, WINDOW];

/// Whether `name` is written by the import itself (never a metadata field of that name).
#[must_use]
pub fn is_import_field(name: &str) -> bool {
    IMPORT_FIELDS.iter().chain(&IMAGERY_FIELDS).any(|(n, _)| *n == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_and_imagery_fields_are_distinct_and_not_reserved() {
        let all: Vec<&str> = IMPORT_FIELDS.iter().chain(&IMAGERY_FIELDS).map(|(n, _)| *n).collect();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
        assert!(all.iter().all(|n| !RESERVED_COLUMNS.contains(n) && *n != THUMBNAIL));
        assert!(is_import_field(VALID_FRACTION) && is_import_field(FILE_HASH) && !is_import_field(SOURCE));
    }
}
