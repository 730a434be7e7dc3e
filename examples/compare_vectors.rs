//! Compares the vectors of two databases record by record (same ids), e.g. an import on CUDA
//! against the same import on the CPU:
//! `cargo run --release --example compare_vectors -- DB_A DB_B COLLECTION [MIN_COSINE]`.
//!
//! Prints the records compared, those missing on either side, and the minimum, mean and 0.1 %
//! quantile of the cosine between the two vectors of each id; exits 1 when an id is missing on
//! one side or the minimum cosine is below `MIN_COSINE` (default 0.999).

use std::path::Path;

use skysift::Db;

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        ab += f64::from(*x) * f64::from(*y);
        aa += f64::from(*x) * f64::from(*x);
        bb += f64::from(*y) * f64::from(*y);
    }
    if aa == 0.0 || bb == 0.0 { 0.0 } else { ab / (aa.sqrt() * bb.sqrt()) }
}

fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (a, b, collection, min) = match &args[..] {
        [_, a, b, c] => (a, b, c, 0.999),
        [_, a, b, c, m] => (a, b, c, m.parse::<f64>()?),
        _ => return Err("usage: compare_vectors DB_A DB_B COLLECTION [MIN_COSINE]".into()),
    };
    let open = |p: &str| Db::builder(Path::new(p)).read_only(true).open();
    let (da, db) = (open(a)?, open(b)?);
    let (ca, cb) = (da.snapshot().collection(collection)?, db.snapshot().collection(collection)?);
    let ids = ca.ids()?;
    let mut cosines = Vec::with_capacity(ids.len());
    let mut missing_b = 0u64;
    for id in &ids {
        let ra = ca.get(*id)?.ok_or("an id listed is not gettable")?;
        match cb.get(*id)? {
            Some(rb) => cosines.push(cosine(&ra.vector, &rb.vector)),
            None => missing_b += 1,
        }
    }
    let missing_a = cb.ids()?.iter().filter(|id| ca.get(**id).ok().flatten().is_none()).count();
    cosines.sort_by(f64::total_cmp);
    let n = cosines.len();
    let lowest = cosines.first().copied().unwrap_or(f64::NAN);
    let mean = if n == 0 { f64::NAN } else { cosines.iter().sum::<f64>() / n as f64 };
    let q = cosines.get(n / 1000).copied().unwrap_or(f64::NAN);
    println!(
        "compared {n} records; missing in B {missing_b}, missing in A {missing_a}; cosine min {lowest:.6}, \
         0.1% quantile {q:.6}, mean {mean:.6} (threshold {min})"
    );
    let ok = n > 0 && missing_a == 0 && missing_b == 0 && lowest >= min;
    Ok(if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) })
}
