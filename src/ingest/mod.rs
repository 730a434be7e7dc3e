//! Reading what users bring: precomputed vector files and JSON-lines metadata, and whole archives of
//! imagery (`skysift import`).
//!
//! | file | responsibility |
//! | --- | --- |
//! | `vectors.rs` | `.npy` (float32/float64, 2-D, C order) and `.fbin` (big-ann) readers |
//! | `load_metadata.rs` | JSON-lines metadata of `skysift load`: schema inference, typed conversion with row/field errors |
//! | `walk.rs` | archive walk: imagery vs metadata, symlink loops, links out of the root, unreadable entries |
//! | `archive_metadata.rs` | metadata found in an archive for `skysift import`: STAC Items, per-image JSON sidecars, CSV manifests; href confinement; field type inference |
//! | `decode.rs` | format by signature, limits before allocation, JPEG/PNG decoded whole, one raster interface |
//! | `limits.rs` | decoder limits (pixels, chunk and file sizes) |
//! | `tiff.rs` | TIFF/GeoTIFF read window by window (strips or tiles, chunky or planar, any sample type) |
//! | `palette.rs` | single-band packed 1/2/4-bit grey and palette-colour TIFFs as 8-bit samples |
//! | `bands.rs` | band selection (sensor defaults, `--bands`), 2-98 percentile stretch, sample conversion |
//! | `nodata.rs` | which pixels hold data (no-data value, alpha, masks), valid fractions, neutral fill |
//! | `overview.rs` | overview levels (reduced-resolution IFDs), internal mask IFDs, level choice for `--gsd` |
//! | `synth_cog.rs` | synthetic multi-IFD scenes: overviews, internal masks, alpha bands (tests, benchmarks) |
//! | `geo.rs` | GeoTIFF georeferencing, any EPSG CRS to WGS84 (`proj4rs`), tile footprints |
//! | `fields.rs` | the names of the fields the import writes, reserved columns |
//! | `stages.rs` | the stages of one file's import: read and hash, open and georeference, bands, level scale |
//! | `tile.rs` | tile grid (size, overlap, ground resolution) and stable record ids |
//! | `thumbnail.rs` | small JPEG thumbnails per tile |
//! | `pipeline.rs` | walk -> decode/tile workers -> batcher+encoder -> writer on bounded channels |
//! | `import.rs` | the import: collection and provenance, ledger (resume, idempotence), records, commits |
//! | `report.rs` | reasons, per-file JSON-lines report, summary |
//! | `synth.rs` | synthetic TIFF/`GeoTIFF` scenes (tests, benchmarks) |

#[cfg(feature = "encode")]
pub mod archive_metadata;
#[cfg(feature = "encode")]
pub mod bands;
#[cfg(feature = "encode")]
pub mod decode;
pub mod fields;
#[cfg(feature = "encode")]
pub mod geo;
#[cfg(feature = "encode")]
pub mod import;
#[cfg(feature = "encode")]
pub mod limits;
pub mod load_metadata;
#[cfg(feature = "encode")]
pub mod nodata;
#[cfg(feature = "encode")]
pub mod overview;
#[cfg(feature = "encode")]
pub mod palette;
#[cfg(feature = "encode")]
pub mod pipeline;
#[cfg(feature = "encode")]
pub mod report;
#[cfg(feature = "encode")]
pub mod stages;
#[cfg(feature = "encode")]
pub mod synth;
#[cfg(feature = "encode")]
pub mod synth_cog;
#[cfg(feature = "encode")]
pub mod thumbnail;
#[cfg(feature = "encode")]
pub mod tiff;
#[cfg(feature = "encode")]
pub mod tile;
pub mod vectors;
#[cfg(feature = "encode")]
pub mod walk;

#[cfg(feature = "encode")]
pub use import::{ImportOptions, Progress, import};
#[cfg(feature = "encode")]
pub use report::{FileReport, Reason, ReportWriter, Status, Summary};
#[cfg(feature = "encode")]
pub use tile::{Tiling, record_id};
