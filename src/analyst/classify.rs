//! A linear classifier on the embeddings: L2-regularised logistic regression, trained from a few
//! good and bad examples (plus negatives drawn at random from the collection when too few bad
//! ones are given), then scoring every record by `p = sigmoid(w . x + b)`.
//!
//! Training minimises, over `w` and the unpenalised intercept `b`,
//!
//! ```text
//! sum_i c_i * log(1 + exp(-s_i * (w . x_i + b)))  +  l2 / 2 * |w - w0|^2      (s_i = +1 good, -1 bad)
//! ```
//!
//! with class-balanced weights `c_i = n / (2 * n_class)` (five good examples count as much as
//! fifty negatives) and `w0` the prior: zero, or `TEXT_PRIOR` times a unit text query when the
//! classifier is given one (`--text`), so that with few examples it ranks like the text query.
//! By the representer theorem `w = w0 + sum_i beta_i x_i`; Newton's method runs on `(beta, b)`,
//! `n + 1` unknowns whatever the dimension, with a backtracking line search, until the step is
//! below `1e-9` or `MAX_ITERATIONS`. The loss is convex; the step solves the reduced Newton system
//! `[(S K + l2 I), s; s^T K, sum s] [d_beta; d_b] = -[r + l2 beta; sum r]` (`K = X X^T`,
//! `S = diag(s)`, `s_i = c_i p_i (1 - p_i)`, `r_i = c_i (p_i - y_i)`), which is `K^-1` times the
//! full system, by Gaussian elimination with partial pivoting.
//!
//! No crate is used: `linfa-logistic` would add a second `ndarray` (0.16 beside ort's 0.17),
//! `argmin` and `ndarray-stats` to every build for about 150 lines here; this file is tested
//! against the optimality conditions (the gradient vanishes at the answer) and on separable data.
//!
//! Ranking by `p` is ranking by `w . x`, which on unit vectors is ranking by the cosine with
//! `w / |w|`: the classifier's top-k is a vector search with that direction
//! ([`Classifier::direction`]), graph and planner included.

use std::fmt::Write as _;

use crate::db::CollectionSnapshot;
use crate::error::{Error, Result};
use crate::index::exact::dot;
use crate::query::PreparedFilter;

use super::rows::{Row, nth_live, visit};

/// Newton iterations at most.
pub const MAX_ITERATIONS: usize = 100;
/// Length of the prior `w0` along a `--text` query.
pub const TEXT_PRIOR: f32 = 4.0;
/// Most examples (good + bad + sampled) one classifier trains on: the Newton system is dense in them.
pub const MAX_EXAMPLES: usize = 4096;

/// How to train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// L2 penalty `l2`. Default 1.0.
    pub l2: f64,
    /// Negatives wanted in all: when fewer bad examples are given, random live records of the
    /// collection (never a good example) make up the rest. Default 50; 0 uses only the bad ones.
    pub negatives: usize,
    /// Seed of the negative sampling (same seed, same snapshot: same classifier). Default 17.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { l2: 1.0, negatives: 50, seed: 17 }
    }
}

/// A trained classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    /// Weights `w` (one per vector component).
    pub weights: Vec<f32>,
    /// Intercept `b`.
    pub bias: f32,
    /// Good examples it was trained on.
    pub good: Vec<u64>,
    /// Bad examples given.
    pub bad: Vec<u64>,
    /// Random negatives drawn from the collection.
    pub sampled: Vec<u64>,
    /// The text query used as the prior, when one was given.
    pub text: Option<String>,
    /// Newton iterations run.
    pub iterations: usize,
    /// Share of training examples on the right side of p = 0.5.
    pub train_accuracy: f32,
}

/// What [`Classifier::score_rows`] did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Scored {
    /// Rows scored (passing the filter).
    pub scored: u64,
    /// Rows at or above the threshold.
    pub above: u64,
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 { 1.0 / (1.0 + (-z).exp()) } else { z.exp() / (1.0 + z.exp()) }
}

/// `log(1 + exp(z))` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 30.0 { z } else { z.exp().ln_1p() }
}

/// Solves `a x = b` (`a` is `n x n`, row-major) by Gaussian elimination with partial pivoting;
/// `None` when singular.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if a[pivot * n + col].abs() < 1e-300 {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(pivot * n + k, col * n + k);
            }
            b.swap(pivot, col);
        }
        let d = a[col * n + col];
        for i in col + 1..n {
            let f = a[i * n + col] / d;
            if f != 0.0 {
                for k in col..n {
                    a[i * n + k] -= f * a[col * n + k];
                }
                b[i] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| a[i * n + k] * x[k]).sum();
        x[i] = (b[i] - s) / a[i * n + i];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Fits the logistic regression above to `positives` (label 1) and `negatives` (label 0),
/// all of one dimension, with prior `w0` (`None`: zero). Returns `(w, b, iterations)`.
pub fn fit_logistic(
    positives: &[&[f32]],
    negatives: &[&[f32]],
    prior: Option<&[f32]>,
    l2: f64,
) -> Result<(Vec<f32>, f32, usize)> {
    if positives.is_empty() || negatives.is_empty() {
        return Err(Error::Invalid("a classifier needs at least one good and one bad (or sampled) example".into()));
    }
    if !(l2.is_finite() && l2 > 0.0) {
        return Err(Error::Invalid(format!("the L2 penalty must be a number > 0, not {l2}")));
    }
    let xs: Vec<&[f32]> = positives.iter().chain(negatives).copied().collect();
    let dim = xs[0].len();
    if xs.iter().any(|x| x.len() != dim) || prior.is_some_and(|p| p.len() != dim) {
        return Err(Error::Invalid("training vectors differ in dimension".into()));
    }
    let n = xs.len();
    let y: Vec<f64> = (0..n).map(|i| if i < positives.len() { 1.0 } else { 0.0 }).collect();
    let c: Vec<f64> = (0..n)
        .map(|i| {
            if i < positives.len() {
                n as f64 / (2.0 * positives.len() as f64)
            } else {
                n as f64 / (2.0 * negatives.len() as f64)
            }
        })
        .collect();
    let mut k = vec![0f64; n * n];
    for i in 0..n {
        for j in i..n {
            let v = f64::from(dot(xs[i], xs[j]));
            k[i * n + j] = v;
            k[j * n + i] = v;
        }
    }
    let base: Vec<f64> = xs.iter().map(|x| prior.map_or(0.0, |p| f64::from(dot(x, p)))).collect();
    let margins = |beta: &[f64], b: f64| -> Vec<f64> {
        (0..n).map(|i| base[i] + b + (0..n).map(|j| k[i * n + j] * beta[j]).sum::<f64>()).collect()
    };
    let loss = |beta: &[f64], z: &[f64]| -> f64 {
        let data: f64 = (0..n).map(|i| c[i] * (softplus(z[i]) - y[i] * z[i])).sum();
        let kb: f64 = (0..n).map(|i| beta[i] * (0..n).map(|j| k[i * n + j] * beta[j]).sum::<f64>()).sum();
        data + l2 / 2.0 * kb
    };
    let mut beta = vec![0f64; n];
    let mut b = 0f64;
    let mut z = margins(&beta, b);
    let mut current = loss(&beta, &z);
    let mut iterations = 0;
    while iterations < MAX_ITERATIONS {
        iterations += 1;
        let p: Vec<f64> = z.iter().map(|&v| sigmoid(v)).collect();
        let s: Vec<f64> = (0..n).map(|i| c[i] * p[i] * (1.0 - p[i])).collect();
        let r: Vec<f64> = (0..n).map(|i| c[i] * (p[i] - y[i])).collect();
        let m = n + 1;
        let mut a = vec![0f64; m * m];
        let mut rhs = vec![0f64; m];
        for i in 0..n {
            for j in 0..n {
                a[i * m + j] = s[i] * k[i * n + j];
            }
            a[i * m + i] += l2;
            a[i * m + n] = s[i];
            rhs[i] = -(r[i] + l2 * beta[i]);
        }
        for j in 0..n {
            a[n * m + j] = (0..n).map(|i| s[i] * k[i * n + j]).sum();
        }
        a[n * m + n] = s.iter().sum::<f64>().max(1e-12);
        rhs[n] = -r.iter().sum::<f64>();
        let Some(step) = solve(a, rhs) else { break };
        let mut t = 1.0;
        let mut accepted = false;
        while t > 1e-10 {
            let nb: Vec<f64> = (0..n).map(|i| beta[i] + t * step[i]).collect();
            let nbias = b + t * step[n];
            let nz = margins(&nb, nbias);
            let nl = loss(&nb, &nz);
            if nl <= current + 1e-12 * current.abs().max(1.0) {
                beta = nb;
                b = nbias;
                z = nz;
                current = nl;
                accepted = true;
                break;
            }
            t /= 2.0;
        }
        let size = step.iter().fold(0f64, |m, v| m.max(v.abs())) * t;
        if !accepted || size < 1e-9 {
            break;
        }
    }
    let mut w: Vec<f64> = prior.map_or_else(|| vec![0.0; dim], |p| p.iter().map(|&v| f64::from(v)).collect());
    for (x, bi) in xs.iter().zip(&beta) {
        for (wj, xj) in w.iter_mut().zip(x.iter()) {
            *wj += bi * f64::from(*xj);
        }
    }
    Ok((w.into_iter().map(|v| v as f32).collect(), b as f32, iterations))
}

/// A small seeded generator (splitmix64) for negative sampling: no dependency, same draws on
/// every platform.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Classifier {
    /// Trains on the stored vectors of `good` and `bad`, drawing random negatives from `col`
    /// up to `opts.negatives`; `text` (a unit query vector and its text) sets the prior.
    pub fn train(
        col: &CollectionSnapshot,
        good: &[u64],
        bad: &[u64],
        text: Option<(&str, &[f32])>,
        opts: &TrainOptions,
    ) -> Result<Classifier> {
        if good.is_empty() {
            return Err(Error::Invalid(
                "a classifier needs good examples: --good ID,ID,... (REPL: \\good ID ...)".into(),
            ));
        }
        let pos = super::Feedback::vectors(col, good)?;
        let mut neg = super::Feedback::vectors(col, bad)?;
        let mut sampled = Vec::new();
        let live = col.count();
        let want = opts.negatives.saturating_sub(bad.len());
        let mut state = opts.seed;
        let mut tries = 0;
        // Draw distinct rows that are not examples; give up after 20 tries per wanted row (tiny collections).
        while sampled.len() < want && tries < 20 * want.max(1) && live > 0 {
            tries += 1;
            let Some((id, v)) = nth_live(col, splitmix(&mut state) % live) else { continue };
            if good.contains(&id) || bad.contains(&id) || sampled.contains(&id) {
                continue;
            }
            sampled.push(id);
            neg.push(v);
        }
        if good.len() + neg.len() > MAX_EXAMPLES {
            return Err(Error::Invalid(format!(
                "{} training examples; at most {MAX_EXAMPLES}: give fewer examples or --negatives",
                good.len() + neg.len()
            )));
        }
        let prior: Option<Vec<f32>> = text.map(|(_, q)| q.iter().map(|v| v * TEXT_PRIOR).collect());
        let p: Vec<&[f32]> = pos.iter().map(Vec::as_slice).collect();
        let ng: Vec<&[f32]> = neg.iter().map(Vec::as_slice).collect();
        let (weights, bias, iterations) = fit_logistic(&p, &ng, prior.as_deref(), opts.l2)?;
        let mut c = Classifier {
            weights,
            bias,
            good: good.to_vec(),
            bad: bad.to_vec(),
            sampled,
            text: text.map(|(t, _)| t.to_owned()),
            iterations,
            train_accuracy: 0.0,
        };
        let right =
            p.iter().filter(|x| c.probability(x) >= 0.5).count() + ng.iter().filter(|x| c.probability(x) < 0.5).count();
        c.train_accuracy = right as f32 / (p.len() + ng.len()) as f32;
        Ok(c)
    }

    /// `w . x + b`.
    #[must_use]
    pub fn logit(&self, x: &[f32]) -> f32 {
        dot(&self.weights, x) + self.bias
    }

    /// `sigmoid(w . x + b)`, in `0..=1`.
    #[must_use]
    pub fn probability(&self, x: &[f32]) -> f32 {
        sigmoid(f64::from(self.logit(x))) as f32
    }

    /// `(w / |w|, |w|)`: ranking by probability is ranking by the inner product with this unit
    /// vector; `None` when `w` is zero.
    #[must_use]
    pub fn direction(&self) -> Option<(Vec<f32>, f32)> {
        let norm = self.weights.iter().map(|w| f64::from(*w) * f64::from(*w)).sum::<f64>().sqrt() as f32;
        (norm > 0.0 && norm.is_finite()).then(|| (self.weights.iter().map(|w| w / norm).collect(), norm))
    }

    /// The probability of a row whose inner product with [`Classifier::direction`] is `cos`.
    #[must_use]
    pub fn probability_of_cosine(&self, cos: f32) -> f32 {
        let norm = self.direction().map_or(0.0, |(_, n)| n);
        sigmoid(f64::from(cos * norm + self.bias)) as f32
    }

    /// The inner product with [`Classifier::direction`] that gives probability `p`.
    #[must_use]
    pub fn cosine_of_probability(&self, p: f32) -> f32 {
        let p = f64::from(p.clamp(1e-7, 1.0 - 1e-7));
        let logit = (p / (1.0 - p)).ln() as f32;
        let norm = self.direction().map_or(1.0, |(_, n)| n);
        (logit - self.bias) / norm
    }

    /// Scores every live row passing `filter` (streamed: memory does not grow with the rows) and
    /// calls `keep(id, probability, row)` for each at or above `min_probability`.
    pub fn score_rows(
        &self,
        col: &CollectionSnapshot,
        filter: Option<&PreparedFilter>,
        min_probability: f32,
        keep: &mut dyn FnMut(u64, f32, Row<'_>) -> Result<()>,
    ) -> Result<Scored> {
        if self.weights.len() != col.schema().dim as usize {
            return Err(Error::Invalid(format!(
                "the classifier has dimension {}, collection {:?} has {}",
                self.weights.len(),
                col.name(),
                col.schema().dim
            )));
        }
        // p >= min  <=>  w . x >= logit(min) - b: compare logits, compute the sigmoid only for keepers.
        let min = f64::from(min_probability.clamp(0.0, 1.0));
        let cut = if min <= 0.0 {
            f32::NEG_INFINITY
        } else if min >= 1.0 {
            f32::INFINITY
        } else {
            (min / (1.0 - min)).ln() as f32
        };
        let mut above = 0u64;
        let scored = visit(col, filter, &mut |id, v, row| {
            let z = dot(&self.weights, v) + self.bias;
            if z >= cut {
                above += 1;
                keep(id, sigmoid(f64::from(z)) as f32, row)?;
            }
            Ok(())
        })?;
        Ok(Scored { scored, above })
    }

    /// One line for people: examples, iterations, training accuracy.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut s = format!(
            "classifier: {} good, {} bad, {} random negatives; {} Newton iterations; training accuracy {:.3}",
            self.good.len(),
            self.bad.len(),
            self.sampled.len(),
            self.iterations,
            self.train_accuracy
        );
        if let Some(t) = &self.text {
            let _ = write!(s, "; prior: the text {t:?}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn the_gradient_vanishes_at_the_fit() {
        let pos: Vec<Vec<f32>> = (0..5).map(|i| unit(&[1.0, 0.2 * i as f32, 0.3, -0.1 * i as f32])).collect();
        let neg: Vec<Vec<f32>> = (0..9).map(|i| unit(&[0.1 * i as f32, 1.0, -0.2, 0.4])).collect();
        let p: Vec<&[f32]> = pos.iter().map(Vec::as_slice).collect();
        let n: Vec<&[f32]> = neg.iter().map(Vec::as_slice).collect();
        let prior = [0.5f32, 0.0, 0.0, 0.0];
        for prior in [None, Some(&prior[..])] {
            let l2 = 0.7;
            let (w, b, _) = fit_logistic(&p, &n, prior, l2).unwrap();
            // Primal gradient: sum c_i (p_i - y_i) [x_i; 1] + l2 [w - w0; 0].
            let total = (p.len() + n.len()) as f64;
            let mut gw = vec![0f64; 4];
            let mut gb = 0f64;
            for (xs, y, c) in [(&p, 1.0, total / 10.0), (&n, 0.0, total / 18.0)] {
                for x in xs {
                    let z = f64::from(dot(&w, x)) + f64::from(b);
                    let r = c * (sigmoid(z) - y);
                    gb += r;
                    for (g, xj) in gw.iter_mut().zip(x.iter()) {
                        *g += r * f64::from(*xj);
                    }
                }
            }
            for (j, g) in gw.iter_mut().enumerate() {
                *g += l2 * (f64::from(w[j]) - prior.map_or(0.0, |p| f64::from(p[j])));
            }
            assert!(gw.iter().all(|g| g.abs() < 1e-4) && gb.abs() < 1e-4, "gradient {gw:?} {gb}");
            assert!(p.iter().all(|x| dot(&w, x) + b > 0.0) && n.iter().all(|x| dot(&w, x) + b < 0.0));
        }
        assert!(fit_logistic(&p, &[], None, 1.0).is_err());
        assert!(fit_logistic(&p, &n, None, 0.0).is_err());
    }

    #[test]
    fn solve_pivots_and_refuses_singular_systems() {
        assert_eq!(solve(vec![0.0, 1.0, 1.0, 0.0], vec![2.0, 3.0]), Some(vec![3.0, 2.0]));
        assert_eq!(solve(vec![1.0, 2.0, 2.0, 4.0], vec![1.0, 2.0]), None);
    }
}
