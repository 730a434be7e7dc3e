//! Vector files: `.npy` (`NumPy`, 2-D, C order, little-endian `<f4` or `<f8`) and `.fbin`
//! (big-ann-benchmarks: `rows u32 | cols u32 | rows x cols f32`, little-endian).
//!
//! The header and the file size are checked when the file is opened, so a truncated file is
//! refused before anything is loaded.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Element type on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    F32,
    F64,
}

/// An opened vector file.
#[derive(Debug)]
pub struct VectorFile {
    path: PathBuf,
    file: File,
    rows: usize,
    dim: usize,
    data_offset: u64,
    elem: Elem,
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

fn parse_npy_header(path: &Path, head: &[u8]) -> Result<(usize, usize, Elem, u64)> {
    let bad = |r: &str| Error::bad_input(path, format!("not a readable .npy file: {r}"));
    if head.get(..6) != Some(NPY_MAGIC) {
        return Err(bad("bad magic"));
    }
    let major = *head.get(6).ok_or_else(|| bad("short header"))?;
    let (len, start) = match major {
        1 => (
            u16::from_le_bytes([
                *head.get(8).ok_or_else(|| bad("short header"))?,
                *head.get(9).ok_or_else(|| bad("short header"))?,
            ]) as usize,
            10,
        ),
        2 | 3 => {
            let b = head.get(8..12).ok_or_else(|| bad("short header"))?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => return Err(bad(&format!("unsupported .npy version {v}"))),
    };
    let text = head.get(start..start + len).ok_or_else(|| bad("header runs past the end of the file"))?;
    let text = std::str::from_utf8(text).map_err(|_| bad("header is not text"))?;
    let descr = dict_value(text, "descr").ok_or_else(|| bad("no 'descr'"))?;
    let elem = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f4" | "float32" => Elem::F32,
        "<f8" | "float64" => Elem::F64,
        other => {
            return Err(bad(&format!(
                "element type {other} is not float32/float64 little-endian; convert with arr.astype('<f4')"
            )));
        }
    };
    if dict_value(text, "fortran_order").is_some_and(|v| v.trim() == "True") {
        return Err(bad("Fortran-ordered arrays are not supported; save np.ascontiguousarray(arr)"));
    }
    let shape = dict_value(text, "shape").ok_or_else(|| bad("no 'shape'"))?;
    let dims: Vec<usize> = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("shape is not a tuple of integers"))?;
    let [rows, dim] = dims[..] else {
        return Err(bad(&format!("array has {} dimensions, expected 2 (rows, dim)", dims.len())));
    };
    Ok((rows, dim, elem, (start + len) as u64))
}

/// The text of `key`'s value in a Python dict literal (enough for .npy headers).
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let k = text.find(&format!("'{key}'"))?;
    let rest = text.get(k + key.len() + 2..)?.trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find([',', '}'])? };
    rest.get(..end)
}

/// Parses the header of a `.npy` file held in `head`: `(rows, dim, data offset)`.
pub fn parse_header(head: &[u8]) -> Result<(usize, usize, u64)> {
    parse_npy_header(Path::new("<bytes>"), head).map(|(r, d, _, o)| (r, d, o))
}

impl VectorFile {
    /// Opens and checks a `.npy` or `.fbin` file (by extension).
    pub fn open(path: &Path) -> Result<VectorFile> {
        let mut file = File::open(path).map_err(|e| Error::bad_input(path, format!("cannot open: {e}")))?;
        let size = file.metadata().map_err(|e| Error::bad_input(path, e.to_string()))?.len();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let (rows, dim, elem, data_offset) = match ext.as_str() {
            "npy" => {
                let mut head = vec![0u8; size.min(65_536) as usize];
                file.read_exact(&mut head).map_err(|e| Error::bad_input(path, e.to_string()))?;
                parse_npy_header(path, &head)?
            }
            "fbin" => {
                let mut head = [0u8; 8];
                file.read_exact(&mut head)
                    .map_err(|_| Error::bad_input(path, "shorter than the 8-byte .fbin header"))?;
                let rows = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
                let dim = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
                (rows, dim, Elem::F32, 8)
            }
            _ => return Err(Error::bad_input(path, "unknown vector file type: use .npy (float32, 2-D) or .fbin")),
        };
        if dim == 0 {
            return Err(Error::bad_input(path, "vectors have dimension 0"));
        }
        let width = match elem {
            Elem::F32 => 4,
            Elem::F64 => 8,
        };
        let need = (rows as u64)
            .checked_mul(dim as u64)
            .and_then(|n| n.checked_mul(width))
            .and_then(|n| n.checked_add(data_offset));
        if need != Some(size) {
            return Err(Error::bad_input(
                path,
                format!(
                    "header says {rows} x {dim} values ({} bytes with the header) but the file has {size} bytes: truncated or not this format",
                    need.map_or_else(|| "overflowing".into(), |n| n.to_string())
                ),
            ));
        }
        Ok(VectorFile { path: path.to_path_buf(), file, rows, dim, data_offset, elem })
    }

    /// Rows in the file.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Components per row.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Reads rows `start..start + n` as f32, row-major; fails naming the first non-finite row.
    pub fn read(&mut self, start: usize, n: usize) -> Result<Vec<f32>> {
        let n = n.min(self.rows.saturating_sub(start));
        let width = match self.elem {
            Elem::F32 => 4,
            Elem::F64 => 8,
        };
        let offset = self.data_offset + (start * self.dim * width) as u64;
        self.file.seek(SeekFrom::Start(offset)).map_err(|e| Error::bad_input(&self.path, e.to_string()))?;
        let mut buf = vec![0u8; n * self.dim * width];
        self.file
            .read_exact(&mut buf)
            .map_err(|e| Error::bad_input(&self.path, format!("reading rows {start}..{}: {e}", start + n)))?;
        let out: Vec<f32> = match self.elem {
            Elem::F32 => buf.as_chunks::<4>().0.iter().map(|b| f32::from_le_bytes(*b)).collect(),
            Elem::F64 => buf.as_chunks::<8>().0.iter().map(|b| f64::from_le_bytes(*b) as f32).collect(),
        };
        if let Some(i) = out.iter().position(|x| !x.is_finite()) {
            return Err(Error::bad_input(
                &self.path,
                format!("row {}, component {}: value is NaN or infinite", start + i / self.dim, i % self.dim),
            ));
        }
        Ok(out)
    }
}

/// Writes an `.fbin` file (used by tests, the sample generator and benchmarks).
pub fn write_fbin(path: &Path, dim: usize, data: &[f32]) -> std::io::Result<()> {
    use std::io::Write;
    let rows = data.len() / dim.max(1);
    let mut f = std::io::BufWriter::new(File::create(path)?);
    f.write_all(&(rows as u32).to_le_bytes())?;
    f.write_all(&(dim as u32).to_le_bytes())?;
    for x in data {
        f.write_all(&x.to_le_bytes())?;
    }
    f.flush()
}

/// Writes a 2-D float32 `.npy` file.
pub fn write_npy(path: &Path, dim: usize, data: &[f32]) -> std::io::Result<()> {
    use std::io::Write;
    let rows = data.len() / dim.max(1);
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(File::create(path)?);
    f.write_all(NPY_MAGIC)?;
    f.write_all(&[1, 0])?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for x in data {
        f.write_all(&x.to_le_bytes())?;
    }
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_and_fbin_round_trip_and_truncation_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
        for name in ["a.npy", "a.fbin"] {
            let p = dir.path().join(name);
            if name.ends_with("npy") {
                write_npy(&p, 4, &data).unwrap();
            } else {
                write_fbin(&p, 4, &data).unwrap();
            }
            let mut f = VectorFile::open(&p).unwrap();
            assert_eq!((f.rows(), f.dim()), (3, 4));
            assert_eq!(f.read(1, 5).unwrap(), data[4..].to_vec());
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
            let e = VectorFile::open(&p).unwrap_err().to_string();
            assert!(e.contains("truncated"), "{e}");
        }
    }

    #[test]
    fn nan_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n.fbin");
        write_fbin(&p, 2, &[1.0, 2.0, 3.0, f32::NAN]).unwrap();
        let e = VectorFile::open(&p).unwrap().read(0, 2).unwrap_err().to_string();
        assert!(e.contains("row 1, component 1"), "{e}");
    }
}
