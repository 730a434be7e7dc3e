//! Relevance feedback (Rocchio, 1971, in the SMART system's form):
//!
//! ```text
//! q' = alpha * q + beta * mean(good) - gamma * mean(bad),   then L2-normalised
//! ```
//!
//! `q` is the query vector (text, image, record or raw vector), `good` and `bad` the stored
//! vectors of the records marked relevant and not relevant. The defaults are SMART's
//! `alpha = 1.0, beta = 0.75, gamma = 0.15`; each is settable (`--rocchio A,B,C`, REPL
//! `\rocchio A B C`). Without a query (only examples) the start is `mean(good)`.
//!
//! Invariant: with no examples, or feedback switched off, the query is returned unchanged.

use crate::db::{CollectionSnapshot, normalize};
use crate::error::{Error, Result};

/// Rocchio weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rocchio {
    /// Weight of the original query. Default 1.0.
    pub alpha: f32,
    /// Weight of the mean of the good examples. Default 0.75.
    pub beta: f32,
    /// Weight of the mean of the bad examples (subtracted). Default 0.15.
    pub gamma: f32,
}

impl Default for Rocchio {
    fn default() -> Self {
        Rocchio { alpha: 1.0, beta: 0.75, gamma: 0.15 }
    }
}

impl Rocchio {
    /// Parses `"A,B,C"` (or space-separated), each a finite number >= 0.
    pub fn parse(s: &str) -> Result<Rocchio> {
        let parts: Vec<&str> = s.split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()).collect();
        let nums: Vec<f32> = parts.iter().filter_map(|p| p.parse::<f32>().ok()).collect();
        match nums.as_slice() {
            [a, b, c] if parts.len() == 3 && nums.iter().all(|x| x.is_finite() && *x >= 0.0) => {
                Ok(Rocchio { alpha: *a, beta: *b, gamma: *c })
            }
            _ => Err(Error::Invalid(format!(
                "Rocchio weights {s:?}: give three numbers >= 0, alpha,beta,gamma (default 1.0,0.75,0.15)"
            ))),
        }
    }

    /// `alpha * query + beta * mean(good) - gamma * mean(bad)`, normalised. Errors when the
    /// result is the zero vector (for example bad examples equal to the good ones).
    pub fn apply(&self, query: Option<&[f32]>, good: &[Vec<f32>], bad: &[Vec<f32>]) -> Result<Vec<f32>> {
        let dim = query.map(<[f32]>::len).or_else(|| good.first().map(Vec::len)).unwrap_or(0);
        let mut out = vec![0f32; dim];
        let mut add = |v: &[f32], w: f32| {
            for (o, x) in out.iter_mut().zip(v) {
                *o += w * x;
            }
        };
        match query {
            Some(q) => add(q, self.alpha),
            None if good.is_empty() => {
                return Err(Error::Invalid(
                    "relevance feedback without a query needs at least one good example".into(),
                ));
            }
            None => {}
        }
        for v in good {
            add(v, self.beta / good.len() as f32);
        }
        for v in bad {
            add(v, -self.gamma / bad.len() as f32);
        }
        normalize(&mut out).ok_or_else(|| {
            Error::Invalid(
                "relevance feedback cancelled the query out (zero vector): change the examples or weights".into(),
            )
        })?;
        Ok(out)
    }
}

/// The feedback a session applies to every query: marked examples and the weights.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Feedback {
    /// Records marked relevant.
    pub good: Vec<u64>,
    /// Records marked not relevant.
    pub bad: Vec<u64>,
    /// Weights.
    pub weights: Rocchio,
    /// Off: queries run as typed, the examples are kept (for `\feedback on` or a classifier).
    pub off: bool,
}

impl Feedback {
    /// Whether feedback changes queries.
    #[must_use]
    pub fn active(&self) -> bool {
        !(self.off || self.good.is_empty() && self.bad.is_empty())
    }

    /// Adds good examples (a record marked bad before is moved).
    pub fn mark_good(&mut self, ids: &[u64]) {
        for &id in ids {
            self.bad.retain(|b| *b != id);
            if !self.good.contains(&id) {
                self.good.push(id);
            }
        }
    }

    /// Adds bad examples (a record marked good before is moved).
    pub fn mark_bad(&mut self, ids: &[u64]) {
        for &id in ids {
            self.good.retain(|g| *g != id);
            if !self.bad.contains(&id) {
                self.bad.push(id);
            }
        }
    }

    /// The stored vectors of `ids`; an id that is not live is an error naming it.
    pub fn vectors(col: &CollectionSnapshot, ids: &[u64]) -> Result<Vec<Vec<f32>>> {
        ids.iter()
            .map(|&id| {
                col.get(id)?.map(|r| r.vector).ok_or_else(|| {
                    Error::Invalid(format!("example {id} is not a live record of {:?}; check the id", col.name()))
                })
            })
            .collect()
    }

    /// `query` moved by the examples (unchanged when not [`Feedback::active`]).
    pub fn apply(&self, col: &CollectionSnapshot, query: Option<&[f32]>) -> Result<Vec<f32>> {
        if let Some(q) = query.filter(|_| !self.active()) {
            return Ok(q.to_vec());
        }
        let good = Self::vectors(col, &self.good)?;
        let bad = Self::vectors(col, &self.bad)?;
        self.weights.apply(query, &good, &bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocchio_moves_towards_good_and_away_from_bad() {
        let r = Rocchio::default();
        let q = [1.0, 0.0, 0.0];
        let out = r.apply(Some(&q), &[vec![0.0, 1.0, 0.0]], &[vec![0.0, 0.0, 1.0]]).unwrap();
        let n = (1.0f32 + 0.75 * 0.75 + 0.15 * 0.15).sqrt();
        assert!(
            (out[0] - 1.0 / n).abs() < 1e-6 && (out[1] - 0.75 / n).abs() < 1e-6 && (out[2] + 0.15 / n).abs() < 1e-6
        );
        assert_eq!(Rocchio::parse("1,0.5,0.25").unwrap(), Rocchio { alpha: 1.0, beta: 0.5, gamma: 0.25 });
        assert!(
            Rocchio::parse("1,2").is_err() && Rocchio::parse("1,-2,3").is_err() && Rocchio::parse("a,b,c").is_err()
        );
        assert!(r.apply(None, &[], &[]).is_err());
    }
}
