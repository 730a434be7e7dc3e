//! Analyst search: few-shot scoring from examples, every match above a score, paging, one hit
//! per place, and change between two periods (issue 17).
//!
//! Everything here is built on the engine's public search entry points
//! ([`crate::CollectionSnapshot::search`], [`crate::CollectionSnapshot::search_filtered`]) and on a
//! streamed visit of the passing rows ([`rows::visit`]); nothing here changes how one search runs.
//!
//! | file | responsibility |
//! | --- | --- |
//! | `rows.rs` | [`rows::visit`]: every live row passing a prepared filter, streamed, with its vector and fields |
//! | `feedback.rs` | [`Rocchio`] relevance feedback: the query moves towards good examples, away from bad ones |
//! | `classify.rs` | [`Classifier`]: L2-regularised logistic regression on the embeddings (Newton), random negatives, streamed scoring |
//! | `above.rs` | [`above`]: every match above a score (exact scan or growing graph search); huge `k`; [`Cursor`] paging |
//! | `group.rs` | [`group_by`], [`mmr`] (maximal marginal relevance), [`merge_tiles`] (touching footprints into places, km2) |
//! | `change.rs` | [`change`]: per place seen in both periods, the score difference, ranked; `GeoJSON` |
//! | `refine.rs` | [`Refine`]: the options above applied to one query, producing result rows |
//!
//! Invariants:
//! - a result never holds an id twice, and every returned row is live and passes the filter;
//! - streamed paths ([`rows::visit`], [`Classifier::score_rows`], [`stream_above`]) hold O(1)
//!   memory per row visited: nothing grows with the collection;
//! - scores are the engine's inner products (cosine on cosine collections), or classifier
//!   probabilities in `0..=1`, or period differences in `-2..=2`, and each output says which.

mod above;
mod change;
mod classify;
mod feedback;
mod group;
mod refine;
pub mod rows;

pub use above::{Above, AboveStrategy, Cursor, HUGE_K, above, search_k, stream_above};
pub use change::{ChangeOptions, DEFAULT_CELL_DEG, PlaceChange, PlaceKey, change, change_default_cell, change_geojson};
pub use classify::{Classifier, Scored, TrainOptions, fit_logistic};
pub use feedback::{Feedback, Rocchio};
pub use group::{Place, bbox_area_km2, group_by, merge_tiles, mmr, union_area_km2};
pub use refine::{Refine, answer_row, refine_rows};
