//! Fuzz target: arbitrary bytes as a range-index or geo-index section (`storage/src/segment/
//! {ranges,geo}.rs`) must parse to an error or a view whose every query returns, never panics
//! or loops. The first byte picks the segment's row count.

#![no_main]

use std::ops::Bound;

use libfuzzer_sys::fuzz_target;
use skysift_storage::bytes::Bytes;
use skysift_storage::segment::geo::GeoView;
use skysift_storage::segment::ranges::RangesView;

fuzz_target!(|data: &[u8]| {
    let Some((&r, rest)) = data.split_first() else { return };
    let rows = usize::from(r) * 16;
    let b = Bytes::copy_from(rest);
    if let Ok(v) = RangesView::parse(b.as_slice(), rows) {
        let keys = v.keys();
        let probe = [0, u64::MAX, keys.first().copied().unwrap_or(7), keys.last().copied().unwrap_or(9)];
        for lo in probe {
            for hi in probe {
                let _ = v.rows_between(Bound::Included(lo), Bound::Excluded(hi));
            }
        }
        let _ = v.rows_at(0..v.count());
    }
    if let Ok(g) = GeoView::parse(b.as_slice(), rows) {
        let _ = g.items().count();
        let _ = g.search(&[-180.0, -90.0, 180.0, 90.0], |_, _| {});
        let _ = g.search(&[0.0, 0.0, 1.0, 1.0], |_, _| {});
    }
});
