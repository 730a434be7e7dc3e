//! Times graph construction on the first N rows of a `.fbin` file:
//! `cargo run --release --example ann_build -- FILE N EF_CONSTRUCTION THREADS`.

use std::path::Path;
use std::time::Instant;

use skysift::IndexParams;
use skysift::index::graph_builder;
use skysift::index::hnsw_rs_adapter::build_graph_hnsw_rs;
use skysift::ingest::vectors::VectorFile;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, n, efc, threads] = &args[..] else {
        return Err("usage: ann_build FILE N EF_CONSTRUCTION THREADS".into());
    };
    let mut f = VectorFile::open(Path::new(file))?;
    let n: usize = n.parse::<usize>()?.min(f.rows());
    let dim = f.dim();
    let v = f.read(0, n)?;
    let p = IndexParams { ef_construction: efc.parse()?, extra_edges: 0, ..IndexParams::default() };
    let t = Instant::now();
    let g = graph_builder::build(&v, dim, &p, threads.parse()?);
    println!(
        "native:  rows {n} efc {} threads {threads}: {:.2}s, levels {}",
        p.ef_construction,
        t.elapsed().as_secs_f64(),
        g.upper.len() + 1
    );
    if std::env::var_os("WITH_HNSW_RS").is_some() {
        let t = Instant::now();
        let g = build_graph_hnsw_rs(&v, dim, &p, threads.parse()?);
        println!(
            "hnsw_rs: rows {n} efc {} threads {threads}: {:.2}s, levels {}",
            p.ef_construction,
            t.elapsed().as_secs_f64(),
            g.upper.len() + 1
        );
    }
    Ok(())
}
