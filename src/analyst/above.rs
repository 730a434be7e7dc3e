//! Every match above a score, huge `k`, and paging.
//!
//! [`above`] returns every live row passing the filter whose score is at least `min_score`,
//! best first, with no cap on how many. Strategy:
//! - **exact** when the collection has no graph, when the caller asks, or when the growing
//!   search below would reach `1 / SCAN_SHARE` of the passing rows: one streamed scan of the
//!   passing rows ([`super::rows::visit`]), which is the brute-force answer;
//! - **graph** otherwise: the engine's search (the planner picks per segment: an exact scan of a
//!   small passing set, int8 scan, filtered or two-hop traversal) at `k = 256`, then `k` times 4
//!   (its width `ef` is at least `k`) until the `k`-th score is below `min_score` or fewer than `k`
//!   rows come back. Every returned row truly scores at least `min_score` (scores are exact
//!   f32 rescoring); a row is missed only where the graph misses it at that width, so recall is
//!   the engine's recall at `ef >= k` (0.95 or more on the benchmarks in the README, and measured
//!   by `tests/analyst.rs` against brute force).
//!
//! A huge `k` ([`search_k`]) is served by the exact scan (a `k`-sized heap) once `k > HUGE_K` or
//! `k` reaches `1 / SCAN_SHARE` of the passing rows, instead of a graph search of width `k`.
//!
//! Paging: `--offset N` skips the first `N` results; a [`Cursor`] (`c1.<offset>.<score bits>.<id>`,
//! printed with each page) resumes after the last row of a page by its `(score, id)` key, so rows
//! inserted meanwhile above it do not shift the next page.
//!
//! [`stream_above`] visits every passing row at or above a score in storage order, with
//! constant memory (`--all`).

use crate::db::CollectionSnapshot;
use crate::error::{Error, Result};
use crate::index::exact::dot;
use crate::index::{Hit, SearchParams, SearchScratch};
use crate::query::PreparedFilter;

use super::rows::{Row, passing, visit};

/// Above this `k`, a search is an exact scan (a `k`-sized heap), not a graph search of width `k`.
pub const HUGE_K: usize = 4096;
/// A search for `k >= passing / SCAN_SHARE` rows scans instead.
pub const SCAN_SHARE: u64 = 8;
/// First `k` of the growing graph search.
const FIRST_K: usize = 256;

/// How [`above`] ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AboveStrategy {
    /// One scan of the passing rows (brute force).
    Exact,
    /// Graph search with growing width.
    Graph,
}

/// The answer of [`above`].
#[derive(Debug, Clone, PartialEq)]
pub struct Above {
    /// Every match at or above the score, best first (ties by ascending id).
    pub hits: Vec<Hit>,
    /// What ran.
    pub strategy: AboveStrategy,
    /// Searches run (1 for the scan).
    pub rounds: usize,
    /// The last `k` searched (graph).
    pub last_k: usize,
}

impl Above {
    /// A note for people.
    #[must_use]
    pub fn note(&self, min_score: f32) -> String {
        match self.strategy {
            AboveStrategy::Exact => {
                format!("min-score {min_score}: {} matches, exact scan of the passing rows", self.hits.len())
            }
            AboveStrategy::Graph => format!(
                "min-score {min_score}: {} matches, graph search widened {} time(s) to k = {} (recall is the graph's at that width)",
                self.hits.len(),
                self.rounds.saturating_sub(1),
                self.last_k
            ),
        }
    }
}

fn sort(hits: &mut [Hit]) {
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
}

fn has_graph(col: &CollectionSnapshot) -> bool {
    col.index_state().iter().any(|s| s.graph_levels.is_some())
}

/// Top-`k` with no cap on `k`: the engine's search, or an exact scan for a huge `k` (see the
/// module docs). `query` is checked and normalised by the engine.
pub fn search_k(
    col: &CollectionSnapshot,
    query: &[f32],
    filter: Option<&PreparedFilter>,
    params: &SearchParams,
    scratch: &mut SearchScratch,
) -> Result<Vec<Hit>> {
    let rows = passing(col, filter);
    let huge = params.k > HUGE_K || (params.k as u64).saturating_mul(SCAN_SHARE) >= rows;
    let p = SearchParams { exact: params.exact || huge, ..*params };
    match filter {
        None if p.exact => col.search_exact(query, p.k, scratch),
        None => col.search(query, &p, scratch),
        Some(f) => col.search_filtered(query, f, &p, scratch),
    }
}

/// Every match at or above `min_score` (see the module docs). `exact` forces the scan.
pub fn above(
    col: &CollectionSnapshot,
    query: &[f32],
    filter: Option<&PreparedFilter>,
    min_score: f32,
    ef: Option<usize>,
    exact: bool,
    scratch: &mut SearchScratch,
) -> Result<Above> {
    if !min_score.is_finite() {
        return Err(Error::Invalid(format!("--min-score must be a finite number, not {min_score}")));
    }
    let rows = passing(col, filter);
    let mut k = FIRST_K;
    let mut rounds = 0;
    if !exact && has_graph(col) {
        while (k as u64).saturating_mul(SCAN_SHARE) < rows {
            rounds += 1;
            let p = SearchParams { ef: ef.map(|e| e.max(k)), ..SearchParams::k(k) };
            let mut hits = match filter {
                None => col.search(query, &p, scratch)?,
                Some(f) => col.search_filtered(query, f, &p, scratch)?,
            };
            let done = hits.len() < k || hits.last().is_some_and(|h| h.score < min_score);
            if done {
                hits.retain(|h| h.score >= min_score);
                return Ok(Above { hits, strategy: AboveStrategy::Graph, rounds, last_k: k });
            }
            k = k.saturating_mul(4);
        }
    }
    let q = col.prepare_query(query)?;
    let mut hits = Vec::new();
    visit(col, filter, &mut |id, v, _| {
        let score = dot(v, &q);
        if score >= min_score {
            hits.push(Hit { id, score });
        }
        Ok(())
    })?;
    sort(&mut hits);
    Ok(Above { hits, strategy: AboveStrategy::Exact, rounds: rounds + 1, last_k: k })
}

/// Calls `emit(id, score, row)` for every live row passing `filter` with a score of at least
/// `min_score` (every row when `None`), in storage order, holding nothing per row: constant
/// memory whatever the collection's size. Returns `(rows visited, rows emitted)`.
pub fn stream_above(
    col: &CollectionSnapshot,
    query: &[f32],
    filter: Option<&PreparedFilter>,
    min_score: Option<f32>,
    emit: &mut dyn FnMut(u64, f32, Row<'_>) -> Result<()>,
) -> Result<(u64, u64)> {
    let q = col.prepare_query(query)?;
    let min = min_score.unwrap_or(f32::NEG_INFINITY);
    let mut emitted = 0u64;
    let visited = visit(col, filter, &mut |id, v, row| {
        let score = dot(v, &q);
        if score >= min {
            emitted += 1;
            emit(id, score, row)?;
        }
        Ok(())
    })?;
    Ok((visited, emitted))
}

/// Where a page ended: resumes the ranking after `(score, id)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    /// Results before the next page.
    pub offset: usize,
    /// Score of the last row shown.
    pub score: f32,
    /// Id of the last row shown.
    pub id: u64,
}

impl Cursor {
    /// The cursor after a page that started at `offset` and ended with `last`.
    #[must_use]
    pub fn after(offset: usize, shown: usize, last: Option<(u64, f32)>) -> Option<Cursor> {
        last.map(|(id, score)| Cursor { offset: offset + shown, score, id })
    }

    /// The token: `c1.<offset>.<score bits, hex>.<id>`.
    #[must_use]
    pub fn token(&self) -> String {
        format!("c1.{}.{:08x}.{}", self.offset, self.score.to_bits(), self.id)
    }

    /// Parses a token from [`Cursor::token`].
    pub fn parse(token: &str) -> Result<Cursor> {
        let bad = || Error::Invalid(format!("cursor {token:?} is not one skysift printed (c1.OFFSET.SCORE.ID)"));
        let mut parts = token.trim().split('.');
        if parts.next() != Some("c1") {
            return Err(bad());
        }
        let offset = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let score = parts.next().and_then(|p| u32::from_str_radix(p, 16).ok()).map(f32::from_bits).ok_or_else(bad)?;
        let id = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        if parts.next().is_some() || !score.is_finite() {
            return Err(bad());
        }
        Ok(Cursor { offset, score, id })
    }

    /// Whether a row ranks after this cursor (lower score, or equal score and larger id).
    #[must_use]
    pub fn precedes(&self, score: f32, id: u64) -> bool {
        match score.total_cmp(&self.score) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal => id > self.id,
            std::cmp::Ordering::Greater => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_tokens_round_trip() {
        let c = Cursor { offset: 20, score: 0.25, id: 7 };
        assert_eq!(Cursor::parse(&c.token()).unwrap(), c);
        for bad in ["", "c2.1.0.1", "c1.x.0.1", "c1.1.zz.1", "c1.1.0.1.9", "c1.1.7fc00000.1"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
        assert!(c.precedes(0.2, 1) && c.precedes(0.25, 8) && !c.precedes(0.25, 7) && !c.precedes(0.3, 9));
    }
}
