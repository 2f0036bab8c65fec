//! The experiments behind each chapter's figures and numbers. The tour, the `figures`
//! command and the notebooks all call these, so every figure has exactly one source.

pub mod ch01;

use std::path::Path;

use crate::error::Result;

/// Every generated file the book includes (figures and tables), as (path relative to
/// `book/src/generated`, contents). Deterministic: the same bytes on every run.
pub fn book_assets() -> Result<Vec<(String, Vec<u8>)>> {
    let mut env = gridworld::Env::seed();
    let ch1 = ch01::run(&mut env, &ch01::Ch01Config::default(), |_| {})?;
    let mut out: Vec<(String, Vec<u8>)> = ch1
        .figures
        .iter()
        .map(|(name, svg)| (format!("ch01/{name}.svg"), svg.0.clone().into_bytes()))
        .collect();
    out.push(("ch01/random_cat.md".into(), ch1.table().into_bytes()));
    Ok(out)
}

/// Writes [`book_assets`] under `dir`; returns how many files were written.
pub fn write_book_assets(dir: &Path) -> Result<usize> {
    let assets = book_assets()?;
    for (rel, bytes) in &assets {
        crate::io::write_atomic(&dir.join(rel), bytes)?;
    }
    Ok(assets.len())
}
