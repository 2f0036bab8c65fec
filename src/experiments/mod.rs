//! The experiments behind each chapter's figures and numbers. The tour, the `figures`
//! command and the notebooks all call these, so every figure has exactly one source.

pub mod ch01;
pub mod ch02;
pub mod ch03;

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
    let c2 = ch02::Ch02Config::default();
    let ch2 = ch02::run(&c2, || {})?;
    out.extend(
        ch2.figures
            .iter()
            .map(|(n, svg)| (format!("ch02/{n}.svg"), svg.0.clone().into_bytes())),
    );
    out.push(("ch02/learning.md".into(), ch2.table(&c2).into_bytes()));
    let ch3 = ch03::run(&ch03::Ch03Config::default(), || {})?;
    out.extend(
        ch3.figures
            .iter()
            .map(|(n, svg)| (format!("ch03/{n}.svg"), svg.0.clone().into_bytes())),
    );
    out.push(("ch03/variance.md".into(), ch3.table().into_bytes()));
    out.push((
        "ch03/std_scaling.md".into(),
        ch3.scaling_table().into_bytes(),
    ));
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
