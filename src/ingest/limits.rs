//! Decoder limits, checked on declared sizes before anything is allocated (by `decode.rs` for
//! JPEG/PNG and `tiff.rs` for TIFF).

/// Decoder limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest JPEG or PNG decoded (they are decoded whole), in pixels. Default: 64 Mpx.
    pub max_memory_pixels: u64,
    /// Largest TIFF scene (read window by window), in pixels. Default: 2^32 (65,536 x 65,536).
    pub max_scene_pixels: u64,
    /// Largest raw TIFF chunk (one strip or tile), in bytes. Default: 256 MiB.
    pub max_chunk_bytes: u64,
    /// Largest JPEG or PNG file read into memory, in bytes. Default: 1 GiB.
    pub max_memory_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_memory_pixels: 64 << 20,
            max_scene_pixels: 1 << 32,
            max_chunk_bytes: 256 << 20,
            max_memory_file_bytes: 1 << 30,
        }
    }
}
