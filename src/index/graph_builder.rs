//! skysift's own HNSW construction (Malkov & Yashunin, TPAMI 2018), the default builder.
//!
//! Why not only `hnsw_rs`: on the benchmark's 100k x 512 set, `hnsw_rs` needed several times
//! hnswlib's build time (its search keeps a `HashMap` of visited `Arc<Point>`s and allocates an
//! `Arc` per candidate), so it missed the build-time target; it stays available as
//! `index.builder = hnsw_rs`. This builder keeps flat arrays instead:
//!
//! - levels are drawn up front (`mL = 1/ln M`, seeded), so every upper-layer node has its slot
//!   from the start and the entry point (the first node of the top level) never changes;
//! - nodes are inserted top level first, in parallel; each node's neighbour list is an array
//!   of `AtomicU32` (count, then ids): readers never lock, writers take a striped mutex, so a
//!   reader may see a list mid-update but only ever valid ids;
//! - neighbours are chosen with the paper's heuristic (keep a candidate only when it is closer
//!   to the new node than to every neighbour kept so far), and a full list is re-pruned with the
//!   same heuristic when a reverse edge is added;
//! - memory is asked for ahead of use: the unvisited neighbours of an expanded node have their
//!   vectors prefetched together before any is scored, the next candidate's neighbour list while
//!   the current one is expanded, and a full list's members before it is re-pruned (vectors much
//!   larger than the caches make every score start with a miss otherwise);
//! - scores use four-accumulator inner products, AVX-512 or else AVX2 with FMA where the CPU has
//!   them (`skysift_storage::hint::dot_wide`), simsimd's kernel elsewhere.
//!
//! Scores are inner products (higher is closer), the same ranking as the search uses.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use skysift_storage::hint::{VECTOR_LINES, dot_wide, prefetch};
use skysift_storage::segment::graph::{EMPTY, GraphData};

use super::exact::dot;
use super::graph_search::VisitedSet;
use super::params::IndexParams;

const STRIPES: usize = 4096;

struct Layer {
    /// Sorted node ids of this layer (empty for layer 0, which holds every node).
    nodes: Vec<u32>,
    /// Per node: `1 + cap` words: count, then ids.
    links: Vec<AtomicU32>,
    cap: usize,
}

impl Layer {
    fn slot(&self, node: u32, dense: bool) -> Option<usize> {
        if dense { Some(node as usize) } else { self.nodes.binary_search(&node).ok() }
    }

    fn read(&self, i: usize, out: &mut Vec<u32>) {
        out.clear();
        let base = i * (1 + self.cap);
        let n = self.links.get(base).map_or(0, |c| c.load(Ordering::Acquire) as usize).min(self.cap);
        for w in self.links.get(base + 1..base + 1 + n).unwrap_or(&[]) {
            out.push(w.load(Ordering::Relaxed));
        }
    }

    /// Asks the CPU for the neighbour list of slot `i`, which the search reads next.
    fn prefetch_links(&self, i: usize) {
        let base = i * (1 + self.cap);
        if let Some(words) = self.links.get(base..base + 1 + self.cap) {
            prefetch(words, usize::MAX);
        }
    }

    fn write(&self, i: usize, ids: &[u32]) {
        let base = i * (1 + self.cap);
        let n = ids.len().min(self.cap);
        for (w, id) in self.links.get(base + 1..base + 1 + n).unwrap_or(&[]).iter().zip(ids) {
            w.store(*id, Ordering::Relaxed);
        }
        if let Some(c) = self.links.get(base) {
            c.store(n as u32, Ordering::Release);
        }
    }
}

struct Builder<'a> {
    vectors: &'a [f32],
    dim: usize,
    m: usize,
    efc: usize,
    levels: Vec<u8>,
    layers: Vec<Layer>,
    locks: Vec<Mutex<()>>,
    entry: u32,
    top: usize,
}

struct Scratch {
    visited: VisitedSet,
    rows: usize,
    buf: Vec<u32>,
    /// The unvisited neighbours of the node being expanded.
    fresh: Vec<u32>,
}

impl Builder<'_> {
    fn vec(&self, i: u32) -> &[f32] {
        let s = i as usize * self.dim;
        self.vectors.get(s..s + self.dim).unwrap_or(&[])
    }

    fn sim(&self, a: u32, b: &[f32]) -> f32 {
        let v = self.vec(a);
        dot_wide(v, b).unwrap_or_else(|| dot(v, b))
    }

    fn layer_slot(&self, l: usize, node: u32) -> Option<usize> {
        self.layers.get(l)?.slot(node, l == 0)
    }

    /// Best-first search of width `ef` on layer `l`; returns (score, node), best first.
    fn search_layer(&self, q: &[f32], eps: &[(f32, u32)], ef: usize, l: usize, s: &mut Scratch) -> Vec<(f32, u32)> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;

        use super::graph_search::Score;
        s.visited.start(s.rows);
        let mut cand: BinaryHeap<(Score, u32)> = BinaryHeap::new();
        let mut res: BinaryHeap<Reverse<(Score, u32)>> = BinaryHeap::new();
        for &(sc, n) in eps {
            s.visited.visit(n);
            cand.push((Score(sc), n));
            res.push(Reverse((Score(sc), n)));
        }
        let Some(layer) = self.layers.get(l) else { return Vec::new() };
        let mut nbs = std::mem::take(&mut s.buf);
        while let Some((Score(cs), c)) = cand.pop() {
            let worst = res.peek().map_or(f32::NEG_INFINITY, |r| r.0.0.0);
            if res.len() >= ef && cs < worst {
                break;
            }
            let Some(i) = self.layer_slot(l, c) else { continue };
            if l == 0
                && let Some(&(_, next)) = cand.peek()
            {
                layer.prefetch_links(next as usize);
            }
            layer.read(i, &mut nbs);
            // The unvisited neighbours' vectors are requested together, then scored.
            s.fresh.clear();
            for &nb in &nbs {
                if s.visited.visit(nb) {
                    s.fresh.push(nb);
                    prefetch(self.vec(nb), VECTOR_LINES);
                }
            }
            for &nb in &s.fresh {
                let sc = self.sim(nb, q);
                let worst = res.peek().map_or(f32::NEG_INFINITY, |r| r.0.0.0);
                if res.len() < ef || sc > worst {
                    cand.push((Score(sc), nb));
                    res.push(Reverse((Score(sc), nb)));
                    if res.len() > ef {
                        res.pop();
                    }
                }
            }
        }
        s.buf = nbs;
        let mut out: Vec<(f32, u32)> = res.into_iter().map(|Reverse((Score(sc), n))| (sc, n)).collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0));
        out
    }

    /// The paper's heuristic: keep a candidate only if it is closer to the base than to every
    /// neighbour kept so far. `cands` are (score to base, id), best first.
    fn select(&self, cands: &[(f32, u32)], max: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(max);
        for &(sc, c) in cands {
            if kept.len() >= max {
                break;
            }
            let cv = self.vec(c);
            if kept.iter().all(|&k| self.sim(k, cv) < sc) {
                kept.push(c);
            }
        }
        kept
    }

    fn link(&self, node: u32, l: usize, chosen: &[u32], s: &mut Scratch) {
        let cap = self.layers.get(l).map_or(0, |x| x.cap);
        if let (Some(layer), Some(i)) = (self.layers.get(l), self.layer_slot(l, node)) {
            let _g = self.locks.get(node as usize % STRIPES).map(|m| m.lock());
            layer.write(i, chosen);
        }
        let nv = self.vec(node);
        for &nb in chosen {
            let (Some(layer), Some(i)) = (self.layers.get(l), self.layer_slot(l, nb)) else { continue };
            let _g = self.locks.get(nb as usize % STRIPES).map(|m| m.lock());
            layer.read(i, &mut s.buf);
            if s.buf.contains(&node) {
                continue;
            }
            if s.buf.len() < cap {
                s.buf.push(node);
                layer.write(i, &s.buf);
            } else {
                let bv = self.vec(nb);
                for &x in &s.buf {
                    prefetch(self.vec(x), VECTOR_LINES);
                }
                let mut cands: Vec<(f32, u32)> = s.buf.iter().map(|&x| (self.sim(x, bv), x)).collect();
                cands.push((dot(nv, bv), node));
                cands.sort_by(|a, b| b.0.total_cmp(&a.0));
                let kept = self.select(&cands, cap);
                layer.write(i, &kept);
            }
        }
    }

    fn insert(&self, node: u32, s: &mut Scratch) {
        if node == self.entry {
            return;
        }
        let q = self.vec(node).to_vec();
        let level = self.levels.get(node as usize).copied().unwrap_or(0) as usize;
        let mut ep = vec![(self.sim(self.entry, &q), self.entry)];
        for l in (level + 1..=self.top).rev() {
            let found = self.search_layer(&q, &ep, 1, l, s);
            if let Some(best) = found.first() {
                ep = vec![*best];
            }
        }
        for l in (0..=level.min(self.top)).rev() {
            let found = self.search_layer(&q, &ep, self.efc, l, s);
            let max = if l == 0 { 2 * self.m } else { self.m };
            let cands: Vec<(f32, u32)> = found.iter().copied().filter(|(_, n)| *n != node).collect();
            let chosen = self.select(&cands, max);
            self.link(node, l, &chosen, s);
            ep = found;
        }
    }
}

/// Builds an HNSW graph over row-major `vectors` with `threads` threads.
#[must_use]
pub fn build(vectors: &[f32], dim: usize, p: &IndexParams, threads: usize) -> GraphData {
    let n = vectors.len() / dim.max(1);
    let m = p.m.max(2);
    // Levels: floor(-ln(U) / ln(M)), from a fixed-seed xorshift so builds are reproducible.
    let ml = 1.0 / (m as f64).ln();
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (n as u64);
    let levels: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            ((-u.ln() * ml).floor() as usize).min(15) as u8
        })
        .collect();
    let top = levels.iter().copied().max().unwrap_or(0) as usize;
    let entry = levels.iter().position(|l| *l as usize == top).unwrap_or(0) as u32;
    let mut layers = Vec::with_capacity(top + 1);
    layers.push(Layer {
        nodes: Vec::new(),
        links: (0..n * (1 + 2 * m)).map(|_| AtomicU32::new(0)).collect(),
        cap: 2 * m,
    });
    for l in 1..=top {
        let nodes: Vec<u32> =
            (0..n as u32).filter(|i| levels.get(*i as usize).is_some_and(|v| *v as usize >= l)).collect();
        let links = (0..nodes.len() * (1 + m)).map(|_| AtomicU32::new(0)).collect();
        layers.push(Layer { nodes, links, cap: m });
    }
    let b = Builder {
        vectors,
        dim,
        m,
        efc: p.ef_construction,
        levels,
        layers,
        locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        entry,
        top,
    };
    // Insert higher levels first so that upper layers are well connected early.
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by_key(|i| std::cmp::Reverse(b.levels.get(*i as usize).copied().unwrap_or(0)));
    let next = AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for _ in 0..threads.max(1) {
            sc.spawn(|| {
                let mut s = Scratch { visited: VisitedSet::default(), rows: n, buf: Vec::new(), fresh: Vec::new() };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&node) = order.get(i) else { break };
                    b.insert(node, &mut s);
                }
            });
        }
    });
    freeze(&b, n, p.extra_edges)
}

fn freeze(b: &Builder<'_>, n: usize, extra: usize) -> GraphData {
    let base0 = 2 * b.m;
    let slots0 = base0 + extra;
    let mut layer0 = vec![EMPTY; n * slots0];
    let mut buf = Vec::new();
    if let Some(l0) = b.layers.first() {
        for i in 0..n {
            l0.read(i, &mut buf);
            for (slot, id) in layer0.iter_mut().skip(i * slots0).take(base0).zip(&buf) {
                *slot = *id;
            }
        }
    }
    let upper = b
        .layers
        .iter()
        .skip(1)
        .map(|layer| {
            let mut adj = vec![EMPTY; layer.nodes.len() * b.m];
            for i in 0..layer.nodes.len() {
                layer.read(i, &mut buf);
                for (slot, id) in adj.iter_mut().skip(i * b.m).take(b.m).zip(&buf) {
                    *slot = *id;
                }
            }
            (layer.nodes.clone(), adj)
        })
        .collect();
    GraphData {
        rows: n as u32,
        slots0: slots0 as u32,
        base0: base0 as u32,
        slots: b.m as u32,
        entry: b.entry,
        layer0,
        upper,
        anchors: Vec::new(),
    }
}
