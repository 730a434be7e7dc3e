//! The id sections of a segment: row -> id, and the id index that finds a row by id.
//!
//! Little-endian.
//!
//! ```text
//! ids:      | id u64 | x rows                       (SectionKind::Ids)
//! id index: | id u64 | row u64 | x rows, by id     (SectionKind::IdIndex)
//! ```
//!
//! Invariant (checked by [`IdsView::parse`]): the index is sorted by id, ids are unique, and
//! every pair's row holds that id in the ids section.

use super::footer::SectionKind;
use super::reader::cast;

/// A read view of a segment's ids.
#[derive(Debug, Clone, Copy)]
pub struct IdsView<'a> {
    ids: &'a [u64],
    index: &'a [u64],
}

impl<'a> IdsView<'a> {
    /// Views the two sections without checking them (they were checked at open).
    pub(crate) fn new(ids: &'a [u8], index: &'a [u8]) -> IdsView<'a> {
        IdsView { ids: cast(ids), index: cast(index) }
    }

    /// Views and checks the sections (lengths were checked against the header by the container).
    /// `Err` names the section and what is wrong.
    pub fn parse(ids: &'a [u8], index: &'a [u8]) -> Result<IdsView<'a>, (SectionKind, &'static str)> {
        let v = IdsView::new(ids, index);
        let mut prev = None;
        for &[id, row] in v.index.as_chunks::<2>().0 {
            let ok = prev.is_none_or(|p| id > p) && usize::try_from(row).ok().and_then(|r| v.ids.get(r)) == Some(&id);
            if !ok {
                return Err((SectionKind::IdIndex, "ids not sorted, duplicated, or not matching rows"));
            }
            prev = Some(id);
        }
        Ok(v)
    }

    /// Row -> id.
    #[must_use]
    pub fn ids(&self) -> &'a [u64] {
        self.ids
    }

    /// The id of `row` (`u64::MAX` past the end).
    #[must_use]
    pub fn id(&self, row: usize) -> u64 {
        self.ids.get(row).copied().unwrap_or(u64::MAX)
    }

    /// The row holding `id`, by binary search of the index.
    #[must_use]
    pub fn row_of(&self, id: u64) -> Option<u32> {
        let pairs = self.index.as_chunks::<2>().0;
        let at = pairs.binary_search_by_key(&id, |&[key, _]| key).ok()?;
        pairs.get(at).map(|&[_, row]| row as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The views cast in place; a `Vec<u64>`'s bytes are 8-aligned.
    fn aligned(words: &[u64]) -> Vec<u64> {
        words.to_vec()
    }

    #[test]
    fn finds_rows_and_refuses_an_unsorted_index() {
        let ids = aligned(&[30, 10, 20]);
        let index = aligned(&[10, 1, 20, 2, 30, 0]);
        let v = IdsView::parse(bytemuck::cast_slice(&ids), bytemuck::cast_slice(&index)).unwrap();
        assert_eq!(v.row_of(20), Some(2));
        assert_eq!(v.row_of(25), None);
        assert_eq!(v.id(0), 30);
        assert_eq!(v.id(9), u64::MAX);
        let unsorted = aligned(&[20, 2, 10, 1, 30, 0]);
        assert!(IdsView::parse(bytemuck::cast_slice(&ids), bytemuck::cast_slice(&unsorted)).is_err());
        let wrong_row = aligned(&[10, 0, 20, 2, 30, 1]);
        assert!(IdsView::parse(bytemuck::cast_slice(&ids), bytemuck::cast_slice(&wrong_row)).is_err());
    }
}
