//! Building a segment's index ([`HnswIndexer`]): an HNSW graph (by skysift's own builder,
//! `graph_builder.rs`, or by `hnsw_rs`, `hnsw_rs_adapter.rs`) in the compact layout of
//! `storage::segment::graph`, optionally improved with query-guided edges, plus int8 codes for
//! quantized traversal and the search width calibrated on the query sample.
//!
//! **Query-guided edges** (our answer to out-of-distribution text queries, after `RoarGraph`,
//! VLDB 2024): a text query sits far from the image vectors, and its true neighbours are spread
//! over regions that image-to-image edges do not connect well. Given a sample of queries from
//! the same distribution (prompt-ensemble embeddings of a label vocabulary, logged queries,
//! or `query_sample.fbin` of the benchmark), each sample query's approximate top-`T` rows are
//! found on the frozen graph; the first `H` of them get edges to the others. Across the whole
//! sample, each node keeps the `extra_edges` targets it was paired with most often (ties: the
//! most similar). These edges live in extra layer-0 slots, so a search that reaches one of a
//! query's neighbours can step straight to the rest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use skysift_storage::bytes::Bytes;
use skysift_storage::segment::RowSource;
use skysift_storage::segment::codes::{CodesView, encode_int8};
use skysift_storage::segment::footer::SectionKind;
use skysift_storage::segment::graph::{GraphData, GraphView};
use skysift_storage::store::{IndexContext, SegmentIndexer};

use super::exact::{Hit, TopK, dot};
use super::graph_search::{GraphScratch, Scorer, search};
use super::hnsw_rs_adapter::build_graph_hnsw_rs;
use super::params::IndexParams;

/// Rows the query-guided pass collects per sample query.
const GUIDE_TOP: usize = 32;
/// Of those, how many get edges to the others.
const GUIDE_HEADS: usize = 8;
/// Search width when collecting a sample query's neighbours.
const GUIDE_EF: usize = 256;
/// Layer-0 entry anchors kept from the query sample: one per `ROWS_PER_ANCHOR` rows, between
/// `MIN_ANCHORS` and `MAX_ANCHORS`. Every query scores all of a segment's anchors, so the count
/// trades a fixed cost per query against better starting points. Measured: 512 on the synthetic
/// 100k set (0.942 recall@10 at ef 16, against 0.871 with 128), 64 on 9k real AID embeddings
/// (0.950 at ef 10 with 299 evaluations per query, against 651 with 512 and the same recall).
const ROWS_PER_ANCHOR: usize = 128;
const MIN_ANCHORS: usize = 64;
const MAX_ANCHORS: usize = 4096;

/// Adds query-guided edges to `graph` from a sample of queries (row-major, `dim` wide). The
/// sample queries' neighbours are found on int8 `codes` when given (as queries traverse), else
/// on the f32 vectors.
pub fn add_query_edges(
    graph: &mut GraphData,
    vectors: &[f32],
    codes: Option<&[u8]>,
    dim: usize,
    sample: &[f32],
    threads: usize,
) {
    if sample.is_empty() || graph.rows == 0 {
        return;
    }
    let bytes = Bytes::copy_from(&graph.encode());
    let Ok(view) = GraphView::parse(bytes.as_slice(), graph.rows as usize) else { return };
    let code_bytes = codes.map(Bytes::copy_from);
    let codes = code_bytes.as_ref().and_then(|b| CodesView::parse(b.as_slice(), graph.rows as usize, dim).ok());
    let probe = Probe { view, codes, vectors, dim };
    let queries: Vec<&[f32]> = sample.chunks_exact(dim).collect();
    // For each sample query, its approximate top rows.
    let lists: Vec<Vec<u32>> = parallel_map(queries.len(), threads, |st: &mut ProbeScratch, i| {
        probe.search(queries[i], GUIDE_EF, Some(0), st).into_iter().take(GUIDE_TOP).map(|(_, r)| r).collect()
    });
    // Anchors: the nearest rows of an evenly spread subset of the sample queries, so that a
    // new query from the same distribution can start its layer-0 search next to its answer.
    let want = (graph.rows as usize / ROWS_PER_ANCHOR).clamp(MIN_ANCHORS, MAX_ANCHORS);
    let step = (lists.len() / want).max(1);
    let mut anchors: Vec<u32> = lists.iter().step_by(step).filter_map(|l| l.first().copied()).collect();
    anchors.sort_unstable();
    anchors.dedup();
    graph.anchors = anchors;
    let mut pairs: HashMap<u32, HashMap<u32, u32>> = HashMap::new();
    for list in &lists {
        for (i, &a) in list.iter().enumerate().take(GUIDE_HEADS) {
            for (j, &b) in list.iter().enumerate() {
                if i != j {
                    *pairs.entry(a).or_default().entry(b).or_insert(0) += 1;
                }
            }
        }
    }
    let slots0 = graph.slots0 as usize;
    let base0 = graph.base0 as usize;
    for (node, targets) in pairs {
        let start = node as usize * slots0;
        let Some(slots) = graph.layer0.get_mut(start..start + slots0) else { continue };
        let existing: Vec<u32> = slots.get(..base0).unwrap_or(&[]).to_vec();
        let v = vectors.get(node as usize * dim..(node as usize + 1) * dim).unwrap_or(&[]);
        let mut ranked: Vec<(u32, f32, u32)> = targets
            .into_iter()
            .filter(|(t, _)| !existing.contains(t) && *t != node)
            .map(|(t, c)| (c, vectors.get(t as usize * dim..(t as usize + 1) * dim).map_or(0.0, |w| dot(v, w)), t))
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
        for (slot, (_, _, t)) in slots.iter_mut().skip(base0).zip(ranked) {
            *slot = t;
        }
    }
}

/// Query-sample vectors held out of the graph build to calibrate the search width.
const CALIBRATION_QUERIES: usize = 200;
/// Fewest held-out queries worth calibrating on.
const MIN_CALIBRATION_QUERIES: usize = 20;
/// Recall@10 the calibrated width must reach on the held-out queries: above the 0.95 promised,
/// because new queries are not the sample.
pub const CALIBRATION_TARGET: f32 = 0.97;
/// Widths tried, smallest first; the last one is used when none reaches the target.
const EF_LADDER: [usize; 15] = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048];

/// Splits a query sample into the part that guides the graph and up to `CALIBRATION_QUERIES`
/// evenly spread vectors held out to measure it. Samples too small to spare any are not split.
fn split_sample(sample: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let n = sample.len() / dim.max(1);
    if n < MIN_CALIBRATION_QUERIES * 10 {
        return (sample.to_vec(), Vec::new());
    }
    let step = (n / CALIBRATION_QUERIES).max(10);
    let (mut guide, mut held) = (Vec::new(), Vec::new());
    for (i, q) in sample.chunks_exact(dim).enumerate() {
        if i % step == step / 2 { held.extend_from_slice(q) } else { guide.extend_from_slice(q) }
    }
    (guide, held)
}

/// The smallest width of the ladder (16, 24, 32, ... 2,048) at which searching the encoded
/// `graph` (on int8 `codes` when given, as queries do, then exact rescoring) finds
/// [`CALIBRATION_TARGET`] of the exact top 10 of the `held` queries: `(ef, recall, queries)`. `None` without held-out queries.
pub fn calibrate(
    graph: &[u8],
    codes: Option<&[u8]>,
    vectors: &[f32],
    dim: usize,
    held: &[f32],
    threads: usize,
) -> Option<(u32, f32, u32)> {
    const K: usize = 10;
    let rows = vectors.len() / dim.max(1);
    let queries: Vec<&[f32]> = held.chunks_exact(dim).collect();
    if queries.len() < MIN_CALIBRATION_QUERIES || rows <= K {
        return None;
    }
    let graph_bytes = Bytes::copy_from(graph);
    let view = GraphView::parse(graph_bytes.as_slice(), rows).ok()?;
    let code_bytes = codes.map(Bytes::copy_from);
    let codes = match &code_bytes {
        Some(b) => Some(CodesView::parse(b.as_slice(), rows, dim).ok()?),
        None => None,
    };
    let probe = Probe { view, codes, vectors, dim };
    // The exact top 10 of every held-out query, then the ladder from the smallest width up,
    // stopping at the first that reaches the target.
    let truth = exact_top(vectors, dim, &queries, K, threads);
    let n = queries.len();
    let mut pick = (EF_LADDER[EF_LADDER.len() - 1], 0.0f32);
    for &ef in &EF_LADDER {
        let hits: Vec<usize> = parallel_map(n, threads, |st: &mut ProbeScratch, i| {
            let q = queries[i];
            let found = probe.search(q, ef, None, st);
            let mut rescored: Vec<(f32, u32)> = found
                .into_iter()
                .map(|(_, r)| (dot(vectors.get(r as usize * dim..(r as usize + 1) * dim).unwrap_or(&[]), q), r))
                .collect();
            rescored.sort_by(|a, b| b.0.total_cmp(&a.0));
            rescored.iter().take(K).filter(|(_, r)| truth[i].contains(r)).count()
        });
        let recall = hits.iter().sum::<usize>() as f32 / (n * K) as f32;
        pick = (ef, recall);
        if recall >= CALIBRATION_TARGET {
            break;
        }
    }
    Some((pick.0 as u32, pick.1, n as u32))
}

/// The exact top `k` rows of each query, best first. The queries are scored in groups, each group
/// in one pass over the rows: a row is read once per group while it is in the cache, instead of
/// once per query (200 passes over 2 GB of vectors at 1M rows took most of the calibration).
fn exact_top(vectors: &[f32], dim: usize, queries: &[&[f32]], k: usize, threads: usize) -> Vec<Vec<u32>> {
    const MAX_GROUP: usize = 64;
    let threads = threads.max(1);
    // An even split into a multiple of `threads` groups of at most MAX_GROUP queries.
    let groups = threads * queries.len().div_ceil(threads * MAX_GROUP).max(1);
    let size = queries.len().div_ceil(groups).max(1);
    let parts: Vec<&[&[f32]]> = queries.chunks(size).collect();
    let tops: Vec<Vec<Vec<u32>>> = parallel_map(parts.len(), threads, |(): &mut (), g| {
        let qs = parts[g];
        let mut best: Vec<TopK> = qs
            .iter()
            .map(|_| {
                let mut t = TopK::default();
                t.reset(k);
                t
            })
            .collect();
        for (r, v) in vectors.chunks_exact(dim).enumerate() {
            for (q, top) in qs.iter().zip(&mut best) {
                let score = dot(v, q);
                if score > top.threshold() {
                    top.push(Hit { id: r as u64, score });
                }
            }
        }
        best.iter_mut().map(|t| t.drain_sorted().into_iter().map(|h| h.id as u32).collect()).collect()
    });
    tops.into_iter().flatten().collect()
}

/// A graph searched at build time the way queries search it: on int8 codes when the segment has
/// them, else on the f32 vectors.
struct Probe<'a> {
    view: GraphView<'a>,
    codes: Option<CodesView<'a>>,
    vectors: &'a [f32],
    dim: usize,
}

/// Per-thread memory of [`Probe::search`].
#[derive(Default)]
struct ProbeScratch {
    qcodes: Vec<i8>,
    graph: GraphScratch,
}

impl Probe<'_> {
    fn search(&self, q: &[f32], ef: usize, anchors: Option<usize>, st: &mut ProbeScratch) -> Vec<(f32, u32)> {
        let scorer = Scorer::for_query(self.codes, self.vectors, self.dim, q, &mut st.qcodes);
        search(&self.view, &scorer, ef, anchors, &|_| true, &mut st.graph)
    }
}

/// `f(state, i)` for `i` in `0..n` on `threads` threads, each with its own `S::default()` state;
/// results in order.
fn parallel_map<S: Default, T: Send>(n: usize, threads: usize, f: impl Fn(&mut S, usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, T)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut state = S::default();
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        mine.push((i, f(&mut state, i)));
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).flatten().collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, t)| t).collect()
}

/// The indexer the database installs in storage: builds the graph and codes of new segments.
#[derive(Debug, Clone, Copy, Default)]
pub struct HnswIndexer {
    /// Build threads (0 = all cores).
    pub threads: usize,
}

impl SegmentIndexer for HnswIndexer {
    fn build(
        &self,
        ctx: &IndexContext<'_>,
        rows: &dyn RowSource,
    ) -> skysift_storage::Result<Vec<(SectionKind, Vec<u8>)>> {
        let p = IndexParams::from_params(ctx.params).map_err(|e| skysift_storage::Error::Invalid(e.to_string()))?;
        let n = rows.rows();
        if n < p.min_rows.max(2) {
            return Ok(Vec::new());
        }
        let dim = ctx.schema.dim as usize;
        let mut vectors = Vec::with_capacity(n * dim);
        for r in 0..n {
            vectors.extend_from_slice(rows.vector(r));
        }
        let threads =
            if self.threads == 0 { std::thread::available_parallelism().map_or(1, usize::from) } else { self.threads };
        let mut graph = if p.hnsw_rs {
            build_graph_hnsw_rs(&vectors, dim, &p, threads)
        } else {
            super::graph_builder::build(&vectors, dim, &p, threads)
        };
        let (guide, held) = ctx.query_sample.map_or((Vec::new(), Vec::new()), |s| split_sample(s, dim));
        let codes = p.int8.then(|| encode_int8(&vectors, dim));
        add_query_edges(&mut graph, &vectors, codes.as_deref(), dim, &guide, threads);
        let graph = graph.encode();
        let calibration = calibrate(&graph, codes.as_deref(), &vectors, dim, &held, threads);
        let mut out = vec![(SectionKind::Graph, graph)];
        if let Some(codes) = codes {
            out.push((SectionKind::QuantCodes, codes));
        }
        if let Some((ef, recall, queries)) = calibration {
            let mut b = Vec::with_capacity(12);
            b.extend_from_slice(&ef.to_le_bytes());
            b.extend_from_slice(&((recall * 10_000.0).round() as u32).min(10_000).to_le_bytes());
            b.extend_from_slice(&queries.to_le_bytes());
            out.push((SectionKind::Calibration, b));
        }
        Ok(out)
    }
}
