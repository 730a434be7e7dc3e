//! Hints to the CPU for the index's hot loops: memory it is about to read.
//!
//! A graph build or search scores each neighbour of a node against the query: with vectors far
//! larger than the caches (2 GB at 1M rows of 512 floats), every score starts with a miss, and a
//! loop that scores one neighbour after the other waits for each miss in turn. Asking for all
//! of a node's neighbours first lets the memory system fetch them side by side.

/// Cache line size of the CPUs skysift runs on (x86-64 and 64-bit ARM).
const LINE: usize = 64;

/// Cache lines of an f32 vector worth asking for ahead of scoring it; the hardware prefetcher
/// follows on with the rest. Measured on a graph build of 200k x 512 rows, 2 threads, graph
/// alone, interleaved runs: none 35.7 s, 1 line 32.5, 2 lines 30.3, 3 lines 27.7, 6 lines 28.7.
pub const VECTOR_LINES: usize = 3;

/// Asks the CPU to start loading the first `lines` cache lines of `data` into its caches
/// (`usize::MAX`: all of them).
/// Only a hint: it reads nothing into the program and has no effect where the CPU or the target
/// lacks the instruction.
#[inline]
pub fn prefetch<T>(data: &[T], lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = std::mem::size_of_val(data);
        let base = data.as_ptr().cast::<i8>();
        for line in 0..lines.min(bytes.div_ceil(LINE)) {
            let p = base.wrapping_add(line * LINE);
            #[expect(unsafe_code, reason = "a prefetch hint; x86-64's baseline instruction set has it")]
            // SAFETY: `_mm_prefetch` is unsafe only because it is an SSE intrinsic, and SSE is part of
            // every x86-64 CPU. A prefetch never faults and never reads into the program, whatever
            // the address; `p` stays within `data` anyway.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (data, lines);
    }
}

/// The inner product of two equally long `f32` slices with AVX-512 where the CPU has it (four
/// independent accumulators, so that the multiply-adds overlap instead of waiting for each
/// other), `None` elsewhere or when the lengths differ (the caller's portable kernel then
/// applies). The sum is taken in another order than a single-accumulator kernel's, so the last
/// bits can differ from one; it serves the graph build, whose choices tolerate that.
#[inline]
#[must_use]
pub fn dot_wide(a: &[f32], b: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if a.len() == b.len() && std::arch::is_x86_feature_detected!("avx512f") {
        #[expect(unsafe_code, reason = "calling an AVX-512 kernel on a CPU that has AVX-512")]
        // SAFETY: `dot_avx512` needs only the `avx512f` feature, detected on this CPU just above.
        return Some(unsafe { dot_avx512(a, b) });
    }
    let _ = (a, b);
    None
}

/// [`dot_wide`]'s kernel: 64 floats per step in four accumulators, then 16 at a time, then the
/// scalar tail.
///
/// # Safety
/// The CPU must support `avx512f`. `a` and `b` must have the same length (reads stay within
/// the shorter one regardless).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[expect(unsafe_code, reason = "unaligned AVX-512 loads from slices")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::{
        __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_reduce_add_ps, _mm512_setzero_ps,
    };
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc: [__m512; 4] = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (j, s) in acc.iter_mut().enumerate() {
            // SAFETY: `i + 16 * j + 16 <= i + 64 <= n`: the 16 floats read lie within both slices.
            let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i + 16 * j)), _mm512_loadu_ps(pb.add(i + 16 * j))) };
            *s = _mm512_fmadd_ps(x, y, *s);
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: `i + 16 <= n`: the 16 floats read lie within both slices.
        let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
        i += 16;
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let mut total = _mm512_reduce_add_ps(sum);
    for (x, y) in a.iter().zip(b).skip(i) {
        total += x * y;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::dot_wide;

    #[test]
    fn the_wide_inner_product_agrees_with_the_plain_sum() {
        for n in [0usize, 1, 15, 16, 17, 63, 64, 65, 100, 512, 515] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            if let Some(wide) = dot_wide(&a, &b) {
                assert!((f64::from(wide) - plain).abs() <= 1e-4 * (1.0 + plain.abs()), "n {n}: {wide} vs {plain}");
            }
        }
        assert!(dot_wide(&[1.0, 2.0], &[1.0]).is_none());
    }
}
