//! Keyword columns: a sorted dictionary of the field's distinct values, a code per row, and a
//! roaring bitmap of rows per dictionary entry.
//!
//! Little-endian.
//!
//! ```text
//! dict offsets:   | u64 | x (n + 1), into the dictionary data               (SectionKind::DictOffsets)
//! dict data:      | value 0 | value 1 | ...  strictly sorted UTF-8       (SectionKind::DictData)
//! codes:          | code u32 | x rows; u32::MAX is null                  (SectionKind::Codes)
//! bitmap offsets: | u64 | x (n + 1), into the bitmap data                 (SectionKind::BitmapOffsets)
//! bitmap data:    | roaring bitmap of value 0 | of value 1 | ...         (SectionKind::BitmapData)
//! ```
//!
//! Invariant (checked by [`KeywordView::parse`]): both offset arrays hold `n + 1` entries from 0
//! to their data's length; dictionary entries are UTF-8 and strictly sorted; every code is null
//! or below `n`, and null exactly where the validity bit is clear. Bitmaps are checked when
//! read ([`KeywordView::rows`]).

use roaring::RoaringBitmap;

use super::columns::{check_offsets, entry, present};
use super::footer::SectionKind;
use super::reader::cast;

/// The five sections of one keyword field.
#[derive(Debug, Clone, Copy)]
pub struct KeywordSections<'a> {
    /// Dictionary offsets.
    pub dict_offsets: &'a [u8],
    /// Dictionary data.
    pub dict: &'a [u8],
    /// Row codes.
    pub codes: &'a [u8],
    /// Bitmap offsets.
    pub bitmap_offsets: &'a [u8],
    /// Bitmap data.
    pub bitmaps: &'a [u8],
}

/// A read view of one keyword field.
#[derive(Debug, Clone, Copy)]
pub struct KeywordView<'a> {
    dict_offsets: &'a [u64],
    dict: &'a [u8],
    codes: &'a [u32],
    bitmap_offsets: &'a [u64],
    bitmaps: &'a [u8],
}

impl<'a> KeywordView<'a> {
    /// Views the sections without checking them (they were checked at open).
    pub(crate) fn new(s: KeywordSections<'a>) -> KeywordView<'a> {
        KeywordView {
            dict_offsets: cast(s.dict_offsets),
            dict: s.dict,
            codes: cast(s.codes),
            bitmap_offsets: cast(s.bitmap_offsets),
            bitmaps: s.bitmaps,
        }
    }

    /// Views and checks the sections against the field's `validity` bits (section lengths
    /// checked against the header by the container). `Err` names the section and what is wrong.
    pub fn parse(s: KeywordSections<'a>, validity: &[u8]) -> Result<KeywordView<'a>, (SectionKind, &'static str)> {
        if !s.dict_offsets.len().is_multiple_of(8)
            || s.dict_offsets.len() < 8
            || s.bitmap_offsets.len() != s.dict_offsets.len()
        {
            return Err((SectionKind::DictOffsets, "bad length"));
        }
        let v = KeywordView::new(s);
        check_offsets(v.dict_offsets, v.dict.len()).map_err(|r| (SectionKind::DictOffsets, r))?;
        check_offsets(v.bitmap_offsets, v.bitmaps.len()).map_err(|r| (SectionKind::BitmapOffsets, r))?;
        let mut prev: Option<&str> = None;
        for code in 0..v.len() {
            let s = std::str::from_utf8(entry(v.dict_offsets, v.dict, code))
                .map_err(|_| (SectionKind::DictData, "entry is not UTF-8"))?;
            if prev.is_some_and(|p| p >= s) {
                return Err((SectionKind::DictData, "entries not strictly sorted"));
            }
            prev = Some(s);
        }
        if v.codes.iter().any(|c| *c != u32::MAX && *c as usize >= v.len()) {
            return Err((SectionKind::Codes, "code outside the dictionary"));
        }
        if !v.codes.iter().enumerate().all(|(row, c)| present(validity, row) == (*c != u32::MAX)) {
            return Err((SectionKind::Validity, "validity disagrees with keyword codes"));
        }
        Ok(v)
    }

    /// Dictionary entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.dict_offsets.len().saturating_sub(1)
    }

    /// Whether the dictionary is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dictionary entry `code` (empty past the end).
    #[must_use]
    pub fn entry(&self, code: u32) -> &'a str {
        std::str::from_utf8(entry(self.dict_offsets, self.dict, code as usize)).unwrap_or("")
    }

    /// The code of `value`, by binary search of the sorted dictionary.
    #[must_use]
    pub fn code_of(&self, value: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid as u32).cmp(value) {
                std::cmp::Ordering::Equal => return u32::try_from(mid).ok(),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }

    /// The value of `row`, `None` when null.
    #[must_use]
    pub fn value(&self, row: usize) -> Option<&'a str> {
        let code = self.codes.get(row).copied().unwrap_or(u32::MAX);
        (code != u32::MAX).then(|| self.entry(code))
    }

    /// Rows holding dictionary entry `code`, within a segment of `rows` rows.
    pub fn rows(&self, code: u32, rows: usize) -> Result<RoaringBitmap, String> {
        let bytes = entry(self.bitmap_offsets, self.bitmaps, code as usize);
        let bitmap = RoaringBitmap::deserialize_from(bytes).map_err(|e| e.to_string())?;
        if bitmap.max().is_some_and(|m| m as usize >= rows) {
            return Err("row outside the segment".into());
        }
        Ok(bitmap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_dictionary_and_finds_rows() {
        let mut a = RoaringBitmap::new();
        a.insert(0);
        let mut b = RoaringBitmap::new();
        b.insert(2);
        let (mut bitmaps, mut bitmap_offsets) = (Vec::new(), vec![0u64]);
        for m in [&a, &b] {
            m.serialize_into(&mut bitmaps).unwrap();
            bitmap_offsets.push(bitmaps.len() as u64);
        }
        let dict_offsets: Vec<u64> = vec![0, 4, 8];
        let codes: Vec<u32> = vec![0, u32::MAX, 1];
        let sections = KeywordSections {
            dict_offsets: bytemuck::cast_slice(&dict_offsets),
            dict: b"PortRoad",
            codes: bytemuck::cast_slice(&codes),
            bitmap_offsets: bytemuck::cast_slice(&bitmap_offsets),
            bitmaps: &bitmaps,
        };
        let v = KeywordView::parse(sections, &[0b101]).unwrap();
        assert_eq!(v.code_of("Road"), Some(1));
        assert_eq!(v.code_of("Rail"), None);
        assert_eq!(v.value(1), None);
        assert_eq!(v.value(2), Some("Road"));
        assert_eq!(v.rows(1, 3).unwrap(), b);
        assert!(v.rows(1, 2).is_err());
        assert_eq!(
            KeywordView::parse(sections, &[0b001]).err(),
            Some((SectionKind::Validity, "validity disagrees with keyword codes"))
        );
        let unsorted = KeywordSections { dict: b"RoadPort", ..sections };
        assert_eq!(
            KeywordView::parse(unsorted, &[0b101]).err(),
            Some((SectionKind::DictData, "entries not strictly sorted"))
        );
    }
}
