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

/// The widest family of this module's kernels the CPU runs: what the search's costs depend on
/// beyond the memory (the query planner keeps a cost model fitted per family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// AVX-512 (`avx512f` and `avx512bw`): the 16-float inner product and the 64-byte int8 scan.
    Avx512,
    /// AVX2 and FMA: the 8-float inner product and the 32-byte int8 scan.
    Avx2,
    /// Neither (another architecture, or an older x86 CPU): the portable loops.
    Portable,
}

/// The kernel family [`dot_wide`] and [`I8Queries::dots`] run on this CPU.
#[must_use]
pub fn kernels() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw") {
            return Kernels::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Kernels::Avx2;
        }
    }
    Kernels::Portable
}

/// The inner product of two equally long `f32` slices with AVX-512 where the CPU has it, else
/// with AVX2 and FMA (four independent accumulators either way, so that the multiply-adds
/// overlap instead of waiting for each other), `None` elsewhere or when the lengths differ (the
/// caller's portable kernel then applies). The sum is taken in another order than a
/// single-accumulator kernel's, so the last bits can differ from one; it serves the graph build,
/// whose choices tolerate that.
#[inline]
#[must_use]
pub fn dot_wide(a: &[f32], b: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if a.len() == b.len() {
        if std::arch::is_x86_feature_detected!("avx512f") {
            #[expect(unsafe_code, reason = "calling an AVX-512 kernel on a CPU that has AVX-512")]
            // SAFETY: `dot_avx512` needs only the `avx512f` feature, detected on this CPU just above.
            return Some(unsafe { dot_avx512(a, b) });
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            #[expect(unsafe_code, reason = "calling an AVX2 kernel on a CPU that has AVX2 and FMA")]
            // SAFETY: `dot_avx2` needs the `avx2` and `fma` features, both detected just above.
            return Some(unsafe { dot_avx2(a, b) });
        }
    }
    let _ = (a, b);
    None
}

/// [`dot_wide`]'s kernel where AVX-512 is missing: 32 floats per step in four accumulators of
/// 8, then 8 at a time, then the scalar tail.
///
/// # Safety
/// The CPU must support `avx2` and `fma`. Reads stay within the shorter slice.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[expect(unsafe_code, reason = "unaligned AVX2 loads from slices")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::{
        __m256, _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_movehdup_ps, _mm_movehl_ps, _mm256_add_ps,
        _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
    };
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc: [__m256; 4] = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (j, s) in acc.iter_mut().enumerate() {
            // SAFETY: `i + 8 * j + 8 <= i + 32 <= n`: the 8 floats read lie within both slices.
            let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i + 8 * j)), _mm256_loadu_ps(pb.add(i + 8 * j))) };
            *s = _mm256_fmadd_ps(x, y, *s);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`: the 8 floats read lie within both slices.
        let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
        acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let four = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
    let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
    let mut total = _mm_cvtss_f32(_mm_add_ss(two, _mm_movehdup_ps(two)));
    for (x, y) in a.iter().zip(b).skip(i) {
        total += x * y;
    }
    total
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

/// Queries in int8, held for scoring many rows against all of them at once: an int8 scan for a
/// block of queries reads each row's codes once and scores it against every query here, so the
/// scan waits on arithmetic instead of memory. Widened to `i16` once, for the AVX-512 kernel.
#[derive(Debug, Default, Clone)]
pub struct I8Queries {
    dim: usize,
    n: usize,
    widened: Vec<i16>,
}

/// Queries an [`I8Queries`] kernel call scores at once (the accumulators stay in registers).
const I8_LANES: usize = 16;

/// The same for the AVX2 kernel, whose 16 registers hold half as many accumulators.
const I8_LANES_AVX2: usize = I8_LANES / 2;

impl I8Queries {
    /// Replaces the held queries with `queries` (each `dim` long).
    pub fn set<'a>(&mut self, dim: usize, queries: impl IntoIterator<Item = &'a [i8]>) {
        self.dim = dim;
        self.widened.clear();
        for q in queries {
            self.widened.extend(q.iter().take(dim).map(|&x| i16::from(x)));
            self.widened.extend(std::iter::repeat_n(0, dim.saturating_sub(q.len())));
        }
        self.n = self.widened.len().checked_div(dim).unwrap_or(0);
        // Zero queries up to a whole number of kernel calls: the kernel then always scores
        // I8_LANES queries, which keeps its accumulators in registers.
        self.widened.resize(self.n.next_multiple_of(I8_LANES) * dim, 0);
    }

    /// Queries held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether no query is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Runs `kernel` on the held queries `L` at a time (`chunk`: `L` whole queries, `set` pads
    /// to a multiple of [`I8_LANES`], which `L` divides), its lanes into `out`.
    #[cfg(target_arch = "x86_64")]
    fn by_lanes<const L: usize>(&self, out: &mut [i32], mut kernel: impl FnMut(&[i16], &mut [i32; L])) {
        let mut lanes = [0i32; L];
        for (chunk, o) in self.widened.chunks_exact(L * self.dim).zip(out.chunks_mut(L)) {
            kernel(chunk, &mut lanes);
            for (d, l) in o.iter_mut().zip(lanes) {
                *d = l;
            }
        }
    }

    /// The exact integer inner product of `row` with each held query, into `out[..len]`
    /// (a row shorter than `dim` counts as zero-padded).
    pub fn dots(&self, row: &[i8], out: &mut [i32]) {
        let n = self.n.min(out.len());
        let Some(out) = out.get_mut(..n) else { return };
        #[cfg(target_arch = "x86_64")]
        if self.dim > 0 && self.dim.is_multiple_of(32) && row.len() >= self.dim {
            let dim = self.dim;
            if std::arch::is_x86_feature_detected!("avx512bw") {
                self.by_lanes::<I8_LANES>(out, |chunk, lanes| {
                    #[expect(unsafe_code, reason = "calling an AVX-512 kernel on a CPU that has AVX-512 BW")]
                    // SAFETY: `dots_avx512` needs `avx512bw` (with `avx512f`, which it implies),
                    // detected just above; `dim % 32 == 0` and `row.len() >= dim` as it asks, and
                    // `chunk` holds I8_LANES whole queries of `dim` (`by_lanes`).
                    unsafe {
                        dots_avx512(row, chunk, dim, lanes);
                    }
                });
                return;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                self.by_lanes::<I8_LANES_AVX2>(out, |chunk, lanes| {
                    #[expect(unsafe_code, reason = "calling an AVX2 kernel on a CPU that has AVX2")]
                    // SAFETY: `dots_avx2` needs `avx2`, detected just above; `dim % 32 == 0` (so
                    // `dim % 16 == 0`) and `row.len() >= dim` as it asks, and `chunk` holds
                    // I8_LANES_AVX2 whole queries of `dim` (`by_lanes`).
                    unsafe {
                        dots_avx2(row, chunk, dim, lanes);
                    }
                });
                return;
            }
        }
        for (q, o) in self.widened.chunks_exact(self.dim.max(1)).zip(out.iter_mut()) {
            *o = q.iter().zip(row).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum();
        }
    }
}

/// [`I8Queries::dots`]'s kernel for [`I8_LANES`] queries: 32 dimensions at a time, the row's
/// codes widened to `i16` once per step and multiplied into one accumulator per query
/// (`vpmaddwd`: pairs of `i16` products summed into `i32`, exact for int8 inputs). The VNNI
/// form (`vpdpwssd`, multiply and accumulate in one) measured no faster: the query loads bound it.
///
/// # Safety
/// The CPU must support `avx512bw`. `dim % 32 == 0`, `row.len() >= dim`, and `queries` holds
/// `I8_LANES` queries of `dim` each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
#[expect(unsafe_code, reason = "unaligned AVX-512 loads from slices")]
#[expect(clippy::cast_ptr_alignment, reason = "the loads are the unaligned kind (`loadu`)")]
unsafe fn dots_avx512(row: &[i8], queries: &[i16], dim: usize, out: &mut [i32; I8_LANES]) {
    use std::arch::x86_64::{
        __m256i, __m512i, _mm256_loadu_si256, _mm512_add_epi32, _mm512_cvtepi8_epi16, _mm512_loadu_si512,
        _mm512_madd_epi16, _mm512_reduce_add_epi32, _mm512_setzero_si512,
    };
    let mut acc: [__m512i; I8_LANES] = [_mm512_setzero_si512(); I8_LANES];
    let mut i = 0;
    while i + 32 <= dim {
        // SAFETY: `i + 32 <= dim <= row.len()`: the 32 bytes read lie within `row`.
        let r = _mm512_cvtepi8_epi16(unsafe { _mm256_loadu_si256(row.as_ptr().add(i).cast::<__m256i>()) });
        for (q, a) in acc.iter_mut().enumerate() {
            // SAFETY: the I8_LANES queries of `dim` lie in `queries`, and `i + 32 <= dim`: the
            // 32 `i16` read lie within query `q`.
            let x = unsafe { _mm512_loadu_si512(queries.as_ptr().add(q * dim + i).cast::<__m512i>()) };
            *a = _mm512_add_epi32(*a, _mm512_madd_epi16(r, x));
        }
        i += 32;
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = _mm512_reduce_add_epi32(a);
    }
}

/// [`I8Queries::dots`]'s kernel where AVX-512 is missing, for [`I8_LANES_AVX2`] queries: 16
/// dimensions at a time, the row's codes widened to `i16` once per step and multiplied into one
/// accumulator per query (`vpmaddwd` on 256 bits, exact for int8 inputs).
///
/// # Safety
/// The CPU must support `avx2`. `dim % 16 == 0`, `row.len() >= dim`, and `queries` holds
/// `I8_LANES_AVX2` queries of `dim` each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[expect(unsafe_code, reason = "unaligned AVX2 loads from slices")]
#[expect(clippy::cast_ptr_alignment, reason = "the loads are the unaligned kind (`loadu`)")]
unsafe fn dots_avx2(row: &[i8], queries: &[i16], dim: usize, out: &mut [i32; I8_LANES_AVX2]) {
    use std::arch::x86_64::{
        __m128i, __m256i, _mm_add_epi32, _mm_cvtsi128_si32, _mm_loadu_si128, _mm_shuffle_epi32, _mm256_add_epi32,
        _mm256_castsi256_si128, _mm256_cvtepi8_epi16, _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_madd_epi16,
        _mm256_setzero_si256,
    };
    let mut acc: [__m256i; I8_LANES_AVX2] = [_mm256_setzero_si256(); I8_LANES_AVX2];
    let mut i = 0;
    while i + 16 <= dim {
        // SAFETY: `i + 16 <= dim <= row.len()`: the 16 bytes read lie within `row`.
        let r = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(row.as_ptr().add(i).cast::<__m128i>()) });
        for (q, a) in acc.iter_mut().enumerate() {
            // SAFETY: the I8_LANES_AVX2 queries of `dim` lie in `queries`, and `i + 16 <= dim`:
            // the 16 `i16` read lie within query `q`.
            let x = unsafe { _mm256_loadu_si256(queries.as_ptr().add(q * dim + i).cast::<__m256i>()) };
            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(r, x));
        }
        i += 16;
    }
    for (o, a) in out.iter_mut().zip(acc) {
        let four = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
        let two = _mm_add_epi32(four, _mm_shuffle_epi32::<0b01_00_11_10>(four));
        *o = _mm_cvtsi128_si32(_mm_add_epi32(two, _mm_shuffle_epi32::<0b10_11_00_01>(two)));
    }
}

#[cfg(test)]
mod tests {
    use super::{I8Queries, dot_wide};

    #[test]
    fn the_block_int8_products_are_the_exact_integer_sums() {
        for (dim, n) in [(512usize, 16usize), (512, 3), (64, 17), (32, 1), (48, 5), (0, 2)] {
            let queries: Vec<Vec<i8>> = (0..n)
                .map(|q| (0..dim).map(|i| ((i * 31 + q * 17) % 255) as i16 - 127).map(|x| x as i8).collect())
                .collect();
            let row: Vec<i8> = (0..dim).map(|i| ((i * 7 + 3) % 255) as i16 - 127).map(|x| x as i8).collect();
            let mut held = I8Queries::default();
            held.set(dim, queries.iter().map(Vec::as_slice));
            let mut out = vec![0i32; n];
            held.dots(&row, &mut out);
            for (q, o) in queries.iter().zip(&out) {
                let want: i32 = q.iter().zip(&row).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum();
                assert_eq!(*o, want, "dim {dim}, {n} queries");
            }
        }
    }

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

    /// The AVX2 kernels, called directly: on a CPU with AVX-512 the public entry points take the
    /// AVX-512 ones, and these would go untested there.
    #[cfg(target_arch = "x86_64")]
    #[test]
    #[expect(unsafe_code, reason = "calling the AVX2 kernels on a CPU that has AVX2 and FMA")]
    fn the_avx2_kernels_give_the_plain_sums() {
        if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")) {
            return;
        }
        for n in [0usize, 1, 7, 8, 9, 31, 32, 33, 100, 512, 515] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            // SAFETY: AVX2 and FMA were detected above.
            let wide = unsafe { super::dot_avx2(&a, &b) };
            assert!((f64::from(wide) - plain).abs() <= 1e-4 * (1.0 + plain.abs()), "n {n}: {wide} vs {plain}");
        }
        for dim in [16usize, 32, 512] {
            let queries: Vec<i16> = (0..super::I8_LANES_AVX2 * dim).map(|i| ((i * 31) % 255) as i16 - 127).collect();
            let row: Vec<i8> = (0..dim).map(|i| (((i * 7 + 3) % 256) as i16 - 128) as i8).collect();
            let mut out = [0i32; super::I8_LANES_AVX2];
            // SAFETY: AVX2 was detected above; `dim % 16 == 0`, the row has `dim` codes and the
            // queries are I8_LANES_AVX2 of `dim` each.
            unsafe { super::dots_avx2(&row, &queries, dim, &mut out) };
            for (q, o) in queries.chunks_exact(dim).zip(out) {
                let want: i32 = q.iter().zip(&row).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum();
                assert_eq!(o, want, "dim {dim}");
            }
        }
    }
}
