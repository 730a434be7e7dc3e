//! Named vector blobs kept beside a collection (today: the query sample that guides the graph).
//!
//! Little-endian. File `col-<id>/vec-<name>.bin`:
//!
//! ```text
//! | magic "SKVB" 4 | version u16 | reserved u16 | rows u32 | dim u32 | crc32c u32 (of the data) |
//! | header_crc32c u32 | data: rows x dim f32 |
//! ```
//!
//! Written to a temporary name, synced and renamed into place; the manifest names it in the
//! collection's parameters (`vec.<name>`), so a crash leaves either the old or the new blob.

use std::path::Path;

use crate::codec::{Enc, u32_at};
use crate::error::{Error, Result};
use crate::io::Vfs;
use crate::preamble::{Preamble, check_crc, check_preamble};

/// Magic at the start of a vector blob.
pub const MAGIC: [u8; 4] = *b"SKVB";
/// v1: first format.
pub const VERSION: u16 = 1;
const HEADER_LEN: usize = 24;
const ROWS_OFFSET: usize = 8;
const DIM_OFFSET: usize = ROWS_OFFSET + 4;
const DATA_CRC_OFFSET: usize = DIM_OFFSET + 4;
const HEADER_CRC_OFFSET: usize = DATA_CRC_OFFSET + 4;
const PREAMBLE: Preamble = Preamble::new(MAGIC, "vector blob", HEADER_LEN, HEADER_CRC_OFFSET, (VERSION, VERSION));

/// Whether `name` is a valid blob name (lower-case letters, digits, `_`).
#[must_use]
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// File name of blob `name`.
#[must_use]
pub fn file_name(name: &str) -> String {
    format!("vec-{name}.bin")
}

/// Encodes a blob.
#[must_use]
pub fn encode(dim: usize, data: &[f32]) -> Vec<u8> {
    let mut body = Vec::with_capacity(data.len() * 4);
    for x in data {
        body.extend_from_slice(&x.to_le_bytes());
    }
    let mut e = Enc::default();
    e.buf.extend_from_slice(&MAGIC);
    e.u16(VERSION);
    e.u16(0);
    e.u32((data.len() / dim.max(1)) as u32);
    e.u32(dim as u32);
    e.u32(crc32c::crc32c(&body));
    let crc = crc32c::crc32c(&e.buf);
    e.u32(crc);
    e.buf.extend_from_slice(&body);
    e.buf
}

/// Decodes a blob: `(dim, data)`.
pub fn decode(file: &Path, b: &[u8]) -> Result<(usize, Vec<f32>)> {
    check_preamble(b, &PREAMBLE).map_err(|e| PREAMBLE.error(file, "vector blob header", e))?;
    let rows = u32_at(b, ROWS_OFFSET).unwrap_or(0) as usize;
    let dim = u32_at(b, DIM_OFFSET).unwrap_or(0) as usize;
    let body = b.get(HEADER_LEN..).unwrap_or(&[]);
    if Some(body.len()) != rows.checked_mul(dim).and_then(|n| n.checked_mul(4)) {
        return Err(Error::corrupted(file, "vector blob data", HEADER_LEN as u64, "length does not match rows x dim"));
    }
    check_crc(file, "vector blob data", HEADER_LEN as u64, body, u32_at(b, DATA_CRC_OFFSET).unwrap_or(0))?;
    Ok((dim, body.as_chunks::<4>().0.iter().map(|w| f32::from_le_bytes(*w)).collect()))
}

/// Writes a blob atomically into `dir` (temp file, sync, rename, sync dir).
pub fn write(vfs: &dyn Vfs, dir: &Path, name: &str, dim: usize, data: &[f32]) -> Result<()> {
    let tmp = dir.join(format!("{}.tmp", file_name(name)));
    let mut f = vfs.create(&tmp)?;
    f.write_all(&encode(dim, data))?;
    f.sync()?;
    drop(f);
    vfs.rename(&tmp, &dir.join(file_name(name)))?;
    vfs.sync_dir(dir)
}

/// Reads a blob from `dir`.
pub fn read(vfs: &dyn Vfs, dir: &Path, name: &str) -> Result<(usize, Vec<f32>)> {
    let path = dir.join(file_name(name));
    let b = vfs.read(&path)?;
    decode(&path, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_flips_and_truncations() {
        let b = encode(2, &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(decode(Path::new("x"), &b).unwrap(), (2, vec![1.0, 2.0, 3.0, 4.0]));
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 4;
            assert!(decode(Path::new("x"), &c).is_err());
        }
        for n in 0..b.len() {
            assert!(decode(Path::new("x"), &b[..n]).is_err());
        }
    }
}
