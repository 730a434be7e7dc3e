//! A seeded xorshift64 generator for deterministic workloads without a dependency, shared by the
//! tests, the benchmarks and the examples: each includes this file with `#[path]`.

#![allow(dead_code, reason = "each crate that includes this file uses a part of it")]

/// xorshift64 with shifts 13, 7, 17 on the state it holds (a state of 0 stays 0).
pub struct Rng(pub u64);

impl Rng {
    /// Advances the state and returns it.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `[0, 1)`, from the top 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[-0.5, 0.5)`, from the top 24 bits.
    pub fn centred(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    /// Standard normal (Box-Muller, one of the pair).
    pub fn gauss(&mut self) -> f32 {
        let (u, v) = (self.uniform().max(1e-12), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }

    /// `dim` standard normals times `scale`.
    pub fn gauss_vec(&mut self, dim: usize, scale: f32) -> Vec<f32> {
        (0..dim).map(|_| self.gauss() * scale).collect()
    }

    /// `dim` uniforms in `[-0.5, 0.5)`.
    pub fn centred_vec(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.centred()).collect()
    }
}
