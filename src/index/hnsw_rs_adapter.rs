//! The `hnsw_rs` adapter: a graph built by `hnsw_rs` (parallel insert) and frozen into the compact
//! layout of `storage::segment::graph` (the builder a collection gets with `index.builder =
//! hnsw_rs`; skysift's own, `graph_builder.rs`, is the default).

use hnsw_rs::prelude::{Distance, Hnsw};
use skysift_storage::segment::graph::{EMPTY, GraphData};

use super::exact::dot;
use super::params::IndexParams;

/// `1 - <a, b>` via SIMD: the distance `hnsw_rs` builds with (a monotone transform of the
/// inner product, so the graph serves both metrics).
#[derive(Debug, Clone, Copy, Default)]
pub struct DotDistance;

impl Distance<f32> for DotDistance {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        // hnsw_rs asserts non-negative distances; for unit vectors 1 - dot >= 0 up to rounding.
        (1.0 - dot(va, vb)).max(0.0)
    }
}

/// Builds the frozen HNSW graph of row-major `vectors` with `hnsw_rs`.
#[must_use]
pub fn build_graph_hnsw_rs(vectors: &[f32], dim: usize, p: &IndexParams, threads: usize) -> GraphData {
    let n = vectors.len() / dim.max(1);
    let m = p.m;
    let hnsw: Hnsw<'_, f32, DotDistance> = Hnsw::new(m, n.max(1), 16, p.ef_construction, DotDistance);
    let data: Vec<(&[f32], usize)> = vectors.chunks_exact(dim).enumerate().map(|(i, v)| (v, i)).collect();
    let pool = rayon_pool(threads);
    match &pool {
        Some(pool) => pool.install(|| hnsw.parallel_insert_slice(&data)),
        None => hnsw.parallel_insert_slice(&data),
    }
    let base0 = 2 * m;
    let slots0 = base0 + p.extra_edges;
    let mut layer0 = vec![EMPTY; n * slots0];
    let mut upper: Vec<Vec<(u32, Vec<u32>)>> = Vec::new();
    let mut entry = (0u32, 0u8);
    for point in hnsw.get_point_indexation() {
        let row = point.get_origin_id();
        let level = point.get_point_id().0;
        if level > entry.1 || (level == entry.1 && (row as u32) < entry.0) {
            entry = (row as u32, level);
        }
        let hood = point.get_neighborhood_id();
        if let Some(l0) = hood.first() {
            let slots = layer0.get_mut(row * slots0..row * slots0 + base0).unwrap_or(&mut []);
            for (slot, nb) in slots.iter_mut().zip(l0.iter().filter(|nb| nb.d_id != row)) {
                *slot = nb.d_id as u32;
            }
        }
        for (l, nbs) in hood.iter().enumerate().skip(1).take(level as usize) {
            if upper.len() < l {
                upper.resize_with(l, Vec::new);
            }
            let mut adj: Vec<u32> = nbs.iter().filter(|nb| nb.d_id != row).map(|nb| nb.d_id as u32).take(m).collect();
            adj.resize(m, EMPTY);
            if let Some(layer) = upper.get_mut(l - 1) {
                layer.push((row as u32, adj));
            }
        }
    }
    let upper = upper
        .into_iter()
        .map(|mut layer| {
            layer.sort_by_key(|(n, _)| *n);
            let nodes = layer.iter().map(|(n, _)| *n).collect();
            let adj = layer.into_iter().flat_map(|(_, a)| a).collect();
            (nodes, adj)
        })
        .collect();
    GraphData {
        rows: n as u32,
        slots0: slots0 as u32,
        base0: base0 as u32,
        slots: m as u32,
        entry: entry.0,
        layer0,
        upper,
        anchors: Vec::new(),
    }
}

fn rayon_pool(threads: usize) -> Option<rayon::ThreadPool> {
    if threads == 0 {
        return None;
    }
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().ok()
}
