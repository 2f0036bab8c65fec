//! What the property tests share: their settings and a strategy for text that looks like the
//! input a parser expects.

use proptest::prelude::*;

/// `n` cases, and failures printed (shrunk) rather than written to a file.
pub fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text made mostly of `alphabet`'s pieces, with an arbitrary character now and then.
pub fn soup(alphabet: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        9 => prop::sample::select(alphabet).prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..max).prop_map(|v| v.concat())
}
