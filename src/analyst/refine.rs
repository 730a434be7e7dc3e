//! [`Refine`]: the analyst options of one query (every match above a score, paging, grouping,
//! diversity, merged places), applied on top of the engine's ranking.
//!
//! Order of work: the ranked candidates (all matches above `min_score`, or the top `n`), then
//! grouping or MMR or merging over them, then the page (`offset` or cursor). Grouping and merging
//! fetch more candidates (4x the page, growing 4x) until the page is full or the candidates are
//! exhausted, so a page of `k` groups holds `k` groups whenever the rows have them.

use skysift_storage::schema::Value;

use crate::db::CollectionSnapshot;
use crate::error::{Error, Result};
use crate::index::{Hit, SearchParams, SearchScratch};
use crate::present::AnswerRow;
use crate::query::PreparedFilter;

use super::above::{Cursor, above, search_k};
use super::group::{group_by, merge_tiles, mmr};

/// Analyst options of one query. `Default` is the plain top-`k`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Refine {
    /// Every match at or above this score (not only `k`; `k` then only bounds the page unless
    /// `all` is set).
    pub min_score: Option<f32>,
    /// With `min_score`: return every match, not a page of `k`.
    pub all: bool,
    /// Results skipped before the page.
    pub offset: usize,
    /// Resume after this cursor (overrides `offset`).
    pub cursor: Option<Cursor>,
    /// Keep at most `per_group` rows per value of this field; `k` counts groups.
    pub group_by: Option<String>,
    /// Rows per group (0 means 1).
    pub per_group: usize,
    /// Maximal marginal relevance with this lambda in `0..=1`.
    pub diverse: Option<f32>,
    /// Join hits whose footprints touch into places.
    pub merge_tiles: bool,
    /// Exact scans only (no graph).
    pub exact: bool,
}

impl Refine {
    /// Sets `all` as `skysift query` reads its flags: with `min_score` and no page asked (no
    /// `offset`, no `cursor`), every match is returned.
    #[must_use]
    pub fn every_match_unless_paged(mut self) -> Refine {
        self.all = self.min_score.is_some() && self.offset == 0 && self.cursor.is_none();
        self
    }

    /// The cursor that resumes after a page of `rows` asked with `k`: `None` when the page came
    /// back short (the last one) or when every match was returned (`all`).
    #[must_use]
    pub fn next_cursor(&self, rows: &[AnswerRow], k: usize) -> Option<Cursor> {
        if self.all || rows.len() != k {
            return None;
        }
        Cursor::after(self.cursor.map_or(self.offset, |c| c.offset), rows.len(), rows.last().map(|r| (r.id, r.score)))
    }

    /// Whether nothing beyond a plain top-`k` is asked.
    #[must_use]
    pub fn is_plain(&self) -> bool {
        *self == Refine { exact: self.exact, ..Refine::default() }
    }

    /// Checks the options against the collection.
    pub fn check(&self, col: &CollectionSnapshot) -> Result<()> {
        if let Some(f) = &self.group_by
            && col.schema().field_index(f).is_none()
        {
            return Err(Error::Invalid(format!("--group-by: no field {f:?} in {:?}", col.name())));
        }
        if let Some(l) = self.diverse
            && !(0.0..=1.0).contains(&l)
        {
            return Err(Error::Invalid(format!("--diverse takes a lambda from 0 to 1, not {l}")));
        }
        if self.merge_tiles && col.schema().field_index("footprint").is_none() {
            return Err(Error::Invalid(format!("--merge-tiles needs a footprint field; {:?} has none", col.name())));
        }
        if [self.group_by.is_some(), self.diverse.is_some(), self.merge_tiles].iter().filter(|x| **x).count() > 1 {
            return Err(Error::Invalid("pick one of --group-by, --diverse and --merge-tiles".into()));
        }
        Ok(())
    }
}

/// One result row for hit `h` at `rank` (thumbnail split off); `None` when it was deleted since.
pub fn answer_row(col: &CollectionSnapshot, rank: usize, h: &Hit) -> Result<Option<AnswerRow>> {
    let Some(r) = col.get(h.id)? else { return Ok(None) };
    let mut thumbnail = None;
    let fields = r
        .fields
        .into_iter()
        .filter_map(|(n, v)| match v {
            Value::Blob(b) if n == "thumbnail" => {
                thumbnail = Some(b);
                None
            }
            v => Some((n, v)),
        })
        .collect();
    Ok(Some(AnswerRow { rank, id: h.id, score: h.score, fields, thumbnail }))
}

fn field_values(col: &CollectionSnapshot, hits: &[Hit], field: &str) -> Result<Vec<Option<Value>>> {
    let i = col.schema().field_index(field);
    let state = col.state();
    hits.iter()
        .map(|h| Ok(i.and_then(|i| state.get(h.id).ok().flatten().and_then(|r| r.values.get(i).cloned().flatten()))))
        .collect()
}

/// Runs `query` (checked and normalised by the engine) with `refine` and returns the page of
/// result rows and notes for people.
#[expect(
    clippy::too_many_lines,
    reason = "one match over the refine options (plain, min-score, group, MMR, merge), each a short arm in order"
)]
pub fn refine_rows(
    col: &CollectionSnapshot,
    query: &[f32],
    filter: Option<&PreparedFilter>,
    k: usize,
    ef: Option<usize>,
    refine: &Refine,
    scratch: &mut SearchScratch,
) -> Result<(Vec<AnswerRow>, Vec<String>)> {
    refine.check(col)?;
    let mut notes = Vec::new();
    let offset = refine.cursor.map_or(refine.offset, |c| c.offset);
    let page = offset.saturating_add(k);
    let q = col.prepare_query(query)?;
    let all_above = match refine.min_score {
        Some(s) => {
            let a = above(col, &q, filter, s, ef, refine.exact, scratch)?;
            notes.push(a.note(s));
            Some(a.hits)
        }
        None => None,
    };
    let fetch = |n: usize, scratch: &mut SearchScratch| -> Result<Vec<Hit>> {
        match &all_above {
            Some(h) => Ok(h.iter().take(n).copied().collect()),
            None => search_k(col, &q, filter, &SearchParams { ef, exact: refine.exact, ..SearchParams::k(n) }, scratch),
        }
    };
    let grows = refine.group_by.is_some() || refine.merge_tiles || refine.diverse.is_some();
    let mut n = if grows { page.saturating_mul(4).max(32) } else { page };
    if refine.min_score.is_some() && refine.all && !grows {
        n = usize::MAX;
    }
    let mut rows: Vec<AnswerRow>;
    loop {
        let hits = fetch(n, scratch)?;
        let exhausted = hits.len() < n;
        let mut out: Vec<AnswerRow> = Vec::new();
        if let Some(field) = &refine.group_by {
            let values = field_values(col, &hits, field)?;
            let (keep, _) = group_by(&values, refine.per_group.max(1), page);
            for i in keep {
                if let Some(h) = hits.get(i)
                    && let Some(r) = answer_row(col, 0, h)?
                {
                    out.push(r);
                }
            }
            // Done when `page` groups are found and each holds `per_group` rows (a group's later
            // rows may still be unfetched otherwise), or when every candidate was seen.
            let sizes = group_sizes(&out, field);
            let complete = sizes.len() >= page && sizes.iter().all(|n| *n >= refine.per_group.max(1));
            if complete || exhausted {
                rows = skip_groups(out, field, offset);
                notes.push(format!(
                    "grouped by {field}: {} group(s) of at most {} row(s)",
                    count_groups(&rows, field),
                    refine.per_group.max(1)
                ));
                break;
            }
        } else if refine.merge_tiles {
            let values = field_values(col, &hits, "footprint")?;
            let boxes: Vec<Option<[f64; 4]>> =
                values.iter().map(|v| if let Some(Value::GeoBbox(b)) = v { Some(*b) } else { None }).collect();
            let places = merge_tiles(&boxes);
            if places.len() >= page || exhausted {
                for p in places.iter().skip(offset).take(k) {
                    let Some(best) = p.members.first().and_then(|&i| hits.get(i)) else { continue };
                    let Some(mut r) = answer_row(col, 0, best)? else { continue };
                    let ids: Vec<String> =
                        p.members.iter().filter_map(|&i| hits.get(i)).map(|h| h.id.to_string()).collect();
                    let mut fields = vec![
                        ("tiles".to_owned(), Value::Integer(p.members.len() as i64)),
                        ("area_km2".to_owned(), Value::Float((p.area_km2 * 1e4).round() / 1e4)),
                        ("tile_ids".to_owned(), Value::Text(ids.join(","))),
                    ];
                    if let Some(b) = p.bbox {
                        fields.push(("footprint".to_owned(), Value::GeoBbox(b)));
                    }
                    fields.extend(r.fields.into_iter().filter(|(n, _)| n != "footprint"));
                    r.fields = fields;
                    out.push(r);
                }
                notes.push(format!(
                    "merged {} hit(s) into {} place(s) (footprints that touch)",
                    hits.len(),
                    places.len()
                ));
                rows = out;
                break;
            }
        } else if let Some(lambda) = refine.diverse {
            let vectors: Vec<Vec<f32>> =
                hits.iter().map(|h| col.get(h.id).ok().flatten().map(|r| r.vector).unwrap_or_default()).collect();
            let scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
            let picked = mmr(&scores, &vectors, lambda, page);
            for i in picked.into_iter().skip(offset) {
                if let Some(h) = hits.get(i)
                    && let Some(r) = answer_row(col, 0, h)?
                {
                    out.push(r);
                }
            }
            notes.push(format!("diversified (MMR, lambda {lambda}) over {} candidates", hits.len()));
            rows = out;
            break;
        } else {
            let take = if refine.min_score.is_some() && refine.all { usize::MAX } else { k };
            let page_hits: Vec<&Hit> = match refine.cursor {
                Some(c) => hits.iter().filter(|h| c.precedes(h.score, h.id)).take(take).collect(),
                None => hits.iter().skip(offset).take(take).collect(),
            };
            for h in page_hits {
                if let Some(r) = answer_row(col, 0, h)? {
                    out.push(r);
                }
            }
            rows = out;
            break;
        }
        n = n.saturating_mul(4);
    }
    for (i, r) in rows.iter_mut().enumerate() {
        r.rank = offset + i + 1;
    }
    Ok((rows, notes))
}

fn group_key(r: &AnswerRow, field: &str) -> String {
    r.fields.iter().find(|(n, _)| n == field).map_or_else(|| format!("\u{0}id:{}", r.id), |(_, v)| format!("{v:?}"))
}

fn group_sizes(rows: &[AnswerRow], field: &str) -> Vec<usize> {
    let mut keys: Vec<String> = rows.iter().map(|r| group_key(r, field)).collect();
    keys.sort();
    keys.chunk_by(|a, b| a == b).map(<[String]>::len).collect()
}

fn count_groups(rows: &[AnswerRow], field: &str) -> usize {
    let mut keys: Vec<String> = rows.iter().map(|r| group_key(r, field)).collect();
    keys.sort();
    keys.dedup();
    keys.len()
}

/// Drops the rows of the first `offset` groups (rows are listed group by group).
fn skip_groups(rows: Vec<AnswerRow>, field: &str, offset: usize) -> Vec<AnswerRow> {
    let mut seen: Vec<String> = Vec::new();
    rows.into_iter()
        .filter(|r| {
            let key = group_key(r, field);
            if !seen.contains(&key) {
                seen.push(key.clone());
            }
            seen.iter().position(|k| *k == key).is_some_and(|p| p >= offset)
        })
        .collect()
}
