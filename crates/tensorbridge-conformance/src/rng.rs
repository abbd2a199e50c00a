//! A tiny deterministic pseudo-random generator, so every run checks the same inputs.

/// A 64-bit linear congruential generator (Knuth's MMIX constants) with an output mix, so that
/// the low bits are as good as the high ones. Deterministic: the same seed gives the same inputs
/// on every machine, which keeps failures reproducible.
#[derive(Clone, Debug)]
pub struct Lcg(u64);

impl Lcg {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Lcg(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `lo..=hi` (a span of at most 2^64 values).
    pub fn int_in(&mut self, lo: i128, hi: i128) -> i128 {
        let span = (hi - lo + 1) as u128;
        debug_assert!(span > 0 && span <= 1 << 64);
        // Lemire's multiply-shift: unbiased enough for test inputs, exact for span = 2^64.
        lo + ((self.next_u64() as u128 * span) >> 64) as i128
    }

    /// A uniform float in `[lo, hi)`.
    pub fn float_in(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + unit * (hi - lo)
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next_u64() % n == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_ranges_hold() {
        let (mut a, mut b) = (Lcg::new(7), Lcg::new(7));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let i = a.int_in(-3, 5);
            assert!((-3..=5).contains(&i));
            let f = a.float_in(-1.0, 2.0);
            assert!((-1.0..2.0).contains(&f));
            b.int_in(-3, 5);
            b.float_in(-1.0, 2.0);
        }
        let full = Lcg::new(1).int_in(i64::MIN as i128, i64::MAX as i128);
        assert!((i64::MIN as i128..=i64::MAX as i128).contains(&full));
    }
}
