//! Quantized vector codes: one signed byte per component, for graph traversal.
//!
//! Little-endian.
//!
//! ```text
//! | version u32 | dim u32 | kind u32 (1 = int8, per-dimension affine) | reserved u32 |
//! | offset f32 x dim | scale f32 x dim | codes: rows x dim i8 |
//! ```
//!
//! Component `i` of a row is approximately `offset[i] + scale[i] * code[i]`. The f32 vectors
//! stay the source of truth: codes only rank candidates, which are rescored exactly.
//! The section is *bulk* (checksummed by `verify`); a damaged section yields wrong candidates
//! or an error, never a panic.

use crate::codec::{Enc, u32_at};

/// Codes layout version. v1: first format.
pub const CODES_VERSION: u32 = 1;
/// int8 with a per-dimension offset and scale.
pub const KIND_INT8: u32 = 1;
const HEADER_LEN: usize = 16;

/// Quantizes row-major `vectors` of dimension `dim` into the section's bytes.
#[must_use]
pub fn encode_int8(vectors: &[f32], dim: usize) -> Vec<u8> {
    let rows = vectors.len() / dim.max(1);
    let mut lo = vec![f32::INFINITY; dim];
    let mut hi = vec![f32::NEG_INFINITY; dim];
    for row in vectors.chunks_exact(dim) {
        for ((l, h), x) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
            *l = l.min(*x);
            *h = h.max(*x);
        }
    }
    let offset: Vec<f32> = lo.iter().zip(&hi).map(|(l, h)| if l.is_finite() { (l + h) / 2.0 } else { 0.0 }).collect();
    let scale: Vec<f32> = lo.iter().zip(&hi).map(|(l, h)| if h > l { (h - l) / 254.0 } else { 1.0 }).collect();
    let mut e = Enc::default();
    e.u32(CODES_VERSION);
    e.u32(dim as u32);
    e.u32(KIND_INT8);
    e.u32(0);
    for x in offset.iter().chain(&scale) {
        e.buf.extend_from_slice(&x.to_le_bytes());
    }
    e.buf.reserve(rows * dim);
    for row in vectors.chunks_exact(dim) {
        for ((x, o), s) in row.iter().zip(&offset).zip(&scale) {
            let c = ((x - o) / s).round().clamp(-127.0, 127.0) as i8;
            e.buf.push(c.to_le_bytes()[0]);
        }
    }
    e.buf
}

/// A read view of the codes.
#[derive(Debug, Clone, Copy)]
pub struct CodesView<'a> {
    dim: usize,
    offset: &'a [f32],
    scale: &'a [f32],
    codes: &'a [i8],
}

impl<'a> CodesView<'a> {
    /// Parses the section for a segment of `rows` x `dim`.
    pub fn parse(b: &'a [u8], rows: usize, dim: usize) -> Result<CodesView<'a>, &'static str> {
        if u32_at(b, 0) != Some(CODES_VERSION) {
            return Err("unsupported codes version");
        }
        if u32_at(b, 4) != Some(dim as u32) || u32_at(b, 8) != Some(KIND_INT8) {
            return Err("codes do not fit the segment");
        }
        let params = b.get(HEADER_LEN..HEADER_LEN + dim * 8).ok_or("codes truncated")?;
        let floats: &[f32] = bytemuck::try_cast_slice(params).map_err(|_| "codes misaligned")?;
        let (offset, scale) = floats.split_at(dim);
        let codes_bytes = b.get(HEADER_LEN + dim * 8..).ok_or("codes truncated")?;
        if codes_bytes.len() != rows.checked_mul(dim).ok_or("codes too large")? {
            return Err("codes length does not match the segment");
        }
        let codes: &[i8] = bytemuck::cast_slice(codes_bytes);
        Ok(CodesView { dim, offset, scale, codes })
    }

    /// Per-dimension offsets.
    #[must_use]
    pub fn offset(&self) -> &'a [f32] {
        self.offset
    }

    /// Per-dimension scales.
    #[must_use]
    pub fn scale(&self) -> &'a [f32] {
        self.scale
    }

    /// The codes of `row` (empty when out of range).
    #[must_use]
    pub fn row(&self, row: usize) -> &'a [i8] {
        self.codes.get(row * self.dim..(row + 1) * self.dim).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::Bytes;

    #[test]
    fn codes_reconstruct_within_half_a_step() {
        let v: Vec<f32> = (0..40).map(|i| ((i * 37) % 17) as f32 / 17.0 - 0.4).collect();
        let b = Bytes::copy_from(&encode_int8(&v, 8));
        let c = CodesView::parse(b.as_slice(), 5, 8).unwrap();
        for (r, row) in v.chunks_exact(8).enumerate() {
            for (i, x) in row.iter().enumerate() {
                let y = c.offset()[i] + c.scale()[i] * f32::from(c.row(r)[i]);
                assert!((x - y).abs() <= c.scale()[i] * 0.5 + 1e-6, "{x} vs {y}");
            }
        }
        assert!(CodesView::parse(b.as_slice(), 6, 8).is_err());
        assert!(CodesView::parse(&b.as_slice()[..20], 5, 8).is_err());
    }
}
