//! The rules that settings are checked with, each written and worded once. Every error names
//! the key (`grpo.lr`, `clip`, …) and the value it refused.

use std::fmt::Display;

use crate::error::{Error, Result};

/// A count that must be at least `min` and at most `max`.
pub fn count(key: &str, value: usize, min: usize, max: usize) -> Result<()> {
    if value < min {
        Err(Error::invalid(
            key,
            format!("{value} must be at least {min}"),
        ))
    } else if value > max {
        Err(Error::invalid(key, format!("{value} is more than {max}")))
    } else {
        Ok(())
    }
}

/// Every count of `pairs` must be at least `min`.
pub fn counts<K: AsRef<str>>(
    pairs: impl IntoIterator<Item = (K, usize)>,
    min: usize,
) -> Result<()> {
    pairs
        .into_iter()
        .try_for_each(|(key, v)| count(key.as_ref(), v, min, usize::MAX))
}

/// A finite number greater than 0.
pub fn positive(key: &str, value: f64) -> Result<()> {
    rule(
        key,
        value,
        value > 0.0 && value.is_finite(),
        "must be a positive number",
    )
}

/// A positive number, if one is set.
pub fn positive_if_set(key: &str, value: Option<f64>) -> Result<()> {
    value.map_or(Ok(()), |v| positive(key, v))
}

/// A finite number, 0 or more.
pub fn non_negative(key: &str, value: f64) -> Result<()> {
    rule(key, value, value >= 0.0 && value.is_finite(), "must be ≥ 0")
}

/// A number in the closed interval [lo, hi].
pub fn within(key: &str, value: f64, lo: f64, hi: f64) -> Result<()> {
    let why = format!("must be in [{lo}, {hi}]");
    rule(key, value, (lo..=hi).contains(&value), &why)
}

/// A number in (0, hi]: a rate or a temperature that must not be 0.
pub fn positive_at_most(key: &str, value: f64, hi: f64) -> Result<()> {
    let why = format!("must be in (0, {hi}]");
    rule(key, value, value > 0.0 && value <= hi, &why)
}

/// `ok`, or an error saying that `value` of `key` breaks the rule `why`.
pub fn rule(key: &str, value: impl Display, ok: bool, why: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(key, format!("{value} {why}")))
    }
}
