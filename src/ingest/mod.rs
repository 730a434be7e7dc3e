//! Reading what users bring: precomputed vector files and JSON-lines metadata, and whole archives of
//! imagery (`skysift import`).
//!
//! | file | responsibility |
//! | --- | --- |
//! | `vectors.rs` | `.npy` (float32/float64, 2-D, C order) and `.fbin` (big-ann) readers |
//! | `metadata.rs` | JSON-lines metadata: schema inference, typed conversion with row/field errors |
//! | `walk.rs` | archive walk: imagery vs metadata, symlink loops, links out of the root, unreadable entries |
//! | `sidecar.rs` | STAC Items, per-image JSON sidecars, CSV manifests; href confinement; field type inference |
//! | `decode.rs` | format by signature, limits before allocation, JPEG/PNG decoded whole, one raster interface |
//! | `tiff.rs` | TIFF/GeoTIFF read window by window (strips or tiles, chunky or planar, any sample type) |
//! | `bands.rs` | band selection (sensor defaults, `--bands`), 2-98 percentile stretch, sample conversion |
//! | `nodata.rs` | which pixels hold data (no-data value, alpha, masks), valid fractions, neutral fill |
//! | `overview.rs` | overview levels (reduced-resolution IFDs), internal mask IFDs, level choice for `--gsd` |
//! | `synth_cog.rs` | synthetic multi-IFD scenes: overviews, internal masks, alpha bands (tests, benchmarks) |
//! | `geo.rs` | GeoTIFF georeferencing, UTM and Web Mercator to WGS84, tile footprints |
//! | `tile.rs` | tile grid (size, overlap, ground resolution) and stable record ids |
//! | `thumbnail.rs` | small JPEG thumbnails per tile |
//! | `pipeline.rs` | walk -> decode/tile workers -> batcher+encoder -> writer on bounded channels |
//! | `import.rs` | the import: collection and provenance, ledger (resume, idempotence), records, commits |
//! | `report.rs` | reasons, per-file JSON-lines report, summary |
//! | `heatmap.rs` | similarity of each tile of a scene to a query, drawn over the scene |
//! | `synth.rs` | synthetic TIFF/`GeoTIFF` scenes (tests, benchmarks) |

pub mod bands;
pub mod decode;
pub mod geo;
pub mod heatmap;
pub mod import;
pub mod metadata;
pub mod nodata;
pub mod overview;
pub mod pipeline;
pub mod report;
pub mod sidecar;
pub mod synth;
pub mod synth_cog;
pub mod thumbnail;
pub mod tiff;
pub mod tile;
pub mod vectors;
pub mod walk;

pub use import::{ImportOptions, Progress, import};
pub use report::{FileReport, Reason, ReportWriter, Status, Summary};
pub use tile::{Tiling, record_id};
