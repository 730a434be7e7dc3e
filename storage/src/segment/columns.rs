//! Column sections of a segment: the values of one field per row, fixed width or variable.
//!
//! Little-endian.
//!
//! ```text
//! validity:    | bit r set when row r has a value | ceil(rows / 8) bytes  (SectionKind::Validity)
//! fixed:       | value (width bytes) | x rows; null rows hold zeros        (SectionKind::Fixed)
//! var offsets: | u64 | x (rows + 1), from 0 to the data length           (SectionKind::VarOffsets)
//! var data:    | bytes of row 0 | bytes of row 1 | ...                     (SectionKind::VarData)
//! ```
//!
//! Invariant (checked by [`VarView::parse`]): offsets start at 0, never go backwards, and end at
//! the data length. Text is checked to be UTF-8 when read (the data is bulk, not read at open).

use super::footer::SectionKind;
use super::reader::cast;
use crate::codec::Dec;
use crate::schema::{FieldType, Value};

/// Whether bit `row` of a validity section is set.
#[must_use]
pub fn present(validity: &[u8], row: usize) -> bool {
    validity.get(row / 8).is_some_and(|b| b & (1 << (row % 8)) != 0)
}

/// Checks an offsets array over `data_len` bytes.
pub(crate) fn check_offsets(off: &[u64], data_len: usize) -> Result<(), &'static str> {
    if off.first() != Some(&0) {
        return Err("offsets must start at 0");
    }
    if off.iter().zip(off.iter().skip(1)).any(|(a, b)| a > b) {
        return Err("offsets go backwards");
    }
    if off.last().copied() != Some(data_len as u64) {
        return Err("last offset differs from the data length");
    }
    Ok(())
}

/// Entry `i` of `data` cut by `off` (empty when out of range).
pub(crate) fn entry<'a>(off: &[u64], data: &'a [u8], i: usize) -> &'a [u8] {
    let (s, e) = (off.get(i).copied().unwrap_or(0) as usize, off.get(i + 1).copied().unwrap_or(0) as usize);
    data.get(s..e).unwrap_or(&[])
}

/// A fixed-width column (integer, float, timestamp, bool, geo).
#[derive(Debug, Clone, Copy)]
pub struct FixedView<'a> {
    validity: &'a [u8],
    data: &'a [u8],
    ty: FieldType,
}

impl<'a> FixedView<'a> {
    /// Views the sections of a fixed-width field of type `ty` (lengths checked by the container).
    #[must_use]
    pub fn new(validity: &'a [u8], data: &'a [u8], ty: FieldType) -> FixedView<'a> {
        FixedView { validity, data, ty }
    }

    /// The value of `row`, `None` when null; `Err` when the bytes do not decode.
    pub fn value(&self, row: usize) -> Result<Option<Value>, &'static str> {
        if !present(self.validity, row) {
            return Ok(None);
        }
        let w = self.ty.fixed_width().unwrap_or(0);
        let bytes = self.data.get(row * w..(row + 1) * w).unwrap_or(&[]);
        Value::decode_fixed(self.ty, &mut Dec::new(bytes)).map(Some).map_err(|e| e.reason)
    }
}

/// A variable-length column (text, blob).
#[derive(Debug, Clone, Copy)]
pub struct VarView<'a> {
    validity: &'a [u8],
    offsets: &'a [u64],
    data: &'a [u8],
    ty: FieldType,
}

impl<'a> VarView<'a> {
    /// Views the sections without checking them (they were checked at open).
    pub(crate) fn new(validity: &'a [u8], offsets: &'a [u8], data: &'a [u8], ty: FieldType) -> VarView<'a> {
        VarView { validity, offsets: cast(offsets), data, ty }
    }

    /// Views and checks the offsets; `Err` names the section and what is wrong.
    pub fn parse(
        validity: &'a [u8],
        offsets: &'a [u8],
        data: &'a [u8],
        ty: FieldType,
    ) -> Result<VarView<'a>, (SectionKind, &'static str)> {
        let v = VarView::new(validity, offsets, data, ty);
        check_offsets(v.offsets, data.len()).map_err(|r| (SectionKind::VarOffsets, r))?;
        Ok(v)
    }

    /// The value of `row`, `None` when null; `Err` when text is not UTF-8.
    pub fn value(&self, row: usize) -> Result<Option<Value>, &'static str> {
        if !present(self.validity, row) {
            return Ok(None);
        }
        let bytes = entry(self.offsets, self.data, row);
        Ok(Some(match self.ty {
            FieldType::Text => Value::Text(String::from_utf8(bytes.to_vec()).map_err(|_| "text is not UTF-8")?),
            _ => Value::Blob(bytes.to_vec()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_checked_and_values_cut_by_them() {
        assert_eq!(check_offsets(&[0, 2, 5], 5), Ok(()));
        assert!(check_offsets(&[1, 5], 5).is_err());
        assert!(check_offsets(&[0, 3, 2], 2).is_err());
        assert!(check_offsets(&[0, 2], 5).is_err());
        let offsets: Vec<u64> = vec![0, 2, 2, 5];
        let v = VarView::parse(&[0b101], bytemuck::cast_slice(&offsets), b"abcde", FieldType::Text).unwrap();
        assert_eq!(v.value(0), Ok(Some(Value::Text("ab".into()))));
        assert_eq!(v.value(1), Ok(None));
        assert_eq!(v.value(2), Ok(Some(Value::Text("cde".into()))));
        let bad = VarView::parse(&[0b1], bytemuck::cast_slice(&offsets), b"\xff\xfe\xfd\xfc\xfb", FieldType::Text);
        assert_eq!(bad.unwrap().value(0), Err("text is not UTF-8"));
    }
}
