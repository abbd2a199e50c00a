//! The runner shared by the property tests: proptest on stable Rust, with a case count for CI and a
//! time budget for long runs.
//!
//! - `PROPTEST_CASES` (default 256): cases per round.
//! - `TB_FUZZ_SECONDS` (unset: one round): keep running rounds, each from a fresh random seed,
//!   until this many seconds have passed (`make fuzz`).
//! - `PROPTEST_RNG_SEED`: the seed of the first round (a failure prints the one to use).
//!
//! A failing case is shrunk to a minimal input and reported with its seed; fixed findings become
//! plain regression tests next to the property.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

/// Runs `test` on values of `strategy` for one round of `PROPTEST_CASES` cases, or for
/// `TB_FUZZ_SECONDS`; panics with the minimal failing input.
pub fn fuzz<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    fuzz_scaled(name, 1, strategy, test)
}

/// [`fuzz`] with `1/divisor` of the cases per round, for properties whose cases are large.
pub fn fuzz_scaled<S>(
    name: &str,
    divisor: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = (env("PROPTEST_CASES").unwrap_or(256) as u32 / divisor).max(1);
    let budget = env("TB_FUZZ_SECONDS").map(Duration::from_secs);
    let mut seed = env("PROPTEST_RNG_SEED").unwrap_or_else(random_seed);
    let start = Instant::now();
    let mut total = 0u64;
    loop {
        let config = Config {
            cases,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed),
            ..Config::default()
        };
        if let Err(e) = TestRunner::new(config).run(&strategy, &test) {
            panic!("{name}: {e}\n(reproduce with PROPTEST_RNG_SEED={seed} PROPTEST_CASES={cases})");
        }
        total += u64::from(cases);
        match budget {
            Some(b) if start.elapsed() < b => seed = random_seed(),
            _ => break,
        }
    }
    eprintln!(
        "fuzz {name}: {total} cases passed in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}
