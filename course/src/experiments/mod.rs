//! The experiments behind each chapter's figures and numbers. The tour, the `figures`
//! command and the notebooks all call these, so every figure has exactly one source.

pub mod ch01;
pub mod ch02;
pub mod ch03;
pub mod ch04;
pub mod ch05;
pub mod ch06;
pub mod ch07;
pub mod ch08;
pub mod ch09;
pub mod zero;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use zero_to_r1::error::{Error, Result};
use zero_to_r1::io::read_text;
use zero_to_r1::lm::config::LmConfig;

/// Where the zoomed panel of a learning-curve figure ends: the first sixth of the episodes,
/// where the cat chapters' learners do most of their learning.
pub fn early(episodes: &[f64]) -> f64 {
    let sixth = episodes.last().copied().unwrap_or(0.0) / 6.0;
    if sixth <= 0.0 {
        return 0.0;
    }
    // A round number: one significant digit (397 → 400).
    let magnitude = 10f64.powf(sixth.log10().floor());
    (sixth / magnitude).round() * magnitude
}

/// The repository this crate was built in (the folder that holds `course/`): the book's
/// committed records are read from it at run time, not compiled in.
pub fn repository() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The committed record `book/src/generated/<rel>` of the repository, parsed. A missing file
/// is an error naming its path; a broken one names the command that writes it anew.
fn read_record<T: DeserializeOwned>(rel: &str, command: &str) -> Result<T> {
    let path = repository().join("book/src/generated").join(rel);
    serde_json::from_str(&read_text(&path)?).map_err(|e| {
        Error::invalid(
            path.display().to_string(),
            format!("{e}; rerun `zero-to-r1 {command}`"),
        )
    })
}

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
    push_figures(&mut out, "ch02", &ch2.figures);
    out.push(("ch02/learning.md".into(), ch2.table(&c2).into_bytes()));
    let ch3 = ch03::run(&ch03::Ch03Config::default(), || {})?;
    push_figures(&mut out, "ch03", &ch3.figures);
    out.push(("ch03/variance.md".into(), ch3.table().into_bytes()));
    out.push((
        "ch03/std_scaling.md".into(),
        ch3.scaling_table().into_bytes(),
    ));
    let lambda = ch04::lambda_sweep(&ch04::Ch04Config::default(), || {})?;
    out.push((
        "ch04/lambda_variance.svg".into(),
        ch04::lambda_figure(&lambda, false)?.0.into_bytes(),
    ));
    out.push((
        "ch04/lambda_bias.svg".into(),
        ch04::lambda_figure(&lambda, true)?.0.into_bytes(),
    ));
    out.push((
        "ch04/lambda.md".into(),
        ch04::lambda_table(&lambda).into_bytes(),
    ));
    let ch5 = ch05::run(&ch05::Ch05Config::default(), || {})?;
    push_figures(&mut out, "ch05", &ch5.figures);
    out.push(("ch05/efficiency.md".into(), ch5.table().into_bytes()));
    out.push(("ch05/clipping.md".into(), ch5.clip_table().into_bytes()));
    let ch6 = ch06::run(&ch06::Ch06Config::default(), || {})?;
    push_figures(&mut out, "ch06", &ch6.figures);
    out.push(("ch06/comparison.md".into(), ch6.table().into_bytes()));
    out.push(("ch06/beta.md".into(), ch6.beta_table().into_bytes()));
    let ch7 = ch07::run(&ch07::Ch07Config::default(), || {})?;
    push_figures(&mut out, "ch07", &ch7.figures);
    out.push(("ch07/length.md".into(), ch7.length_table().into_bytes()));
    out.push(("ch07/std_weight.md".into(), ch7.std_table()?.into_bytes()));
    out.push((
        "ch07/std_learning.md".into(),
        ch7.std_learning_table().into_bytes(),
    ));
    out.push((
        "ch07/std_share.md".into(),
        ch7.weight_share_table().into_bytes(),
    ));
    let exercises = crate::handout::exercises(&repository())?;
    out.push((
        "exercises.md".into(),
        crate::handout::exercise_table(&exercises).into_bytes(),
    ));
    let ch8 = ch08::recorded()?;
    push_figures(&mut out, "ch08", &ch08::figures(&ch8)?);
    out.push(("ch08/sft.md".into(), ch08::table(&ch8).into_bytes()));
    let routes = zero::recorded()?;
    push_figures(&mut out, "ch09", &zero::figures(&routes)?);
    out.push(("ch09/routes.md".into(), zero::table(&routes).into_bytes()));
    out.push((
        "ch09/ablation.md".into(),
        zero::ablation_table(&routes).into_bytes(),
    ));
    out.push((
        "ch09/routes_examples.md".into(),
        zero::examples_table(&routes).into_bytes(),
    ));
    let zero_config = LmConfig::from_file(&repository().join("configs/zero-cpu.toml"))?;
    out.push((
        "ch09/documents.md".into(),
        zero::documents_table(&zero_config, 8)?.into_bytes(),
    ));
    Ok(out)
}

/// Adds a chapter's figures to the book's assets as `chNN/name.svg`.
fn push_figures<N: std::fmt::Display>(
    out: &mut Vec<(String, Vec<u8>)>,
    chapter: &str,
    figures: &[(N, crate::plot::Svg)],
) {
    out.extend(
        figures
            .iter()
            .map(|(n, svg)| (format!("{chapter}/{n}.svg"), svg.0.clone().into_bytes())),
    );
}

/// One learning-curve series per item of `items`: its label and the runs `pick` selects.
pub(crate) fn series_of<T>(
    items: &[T],
    label: impl Fn(&T) -> String,
    pick: impl Fn(&T) -> &Vec<Vec<f64>>,
) -> Vec<crate::plot::Curves> {
    items
        .iter()
        .map(|r| crate::plot::Curves {
            label: label(r),
            runs: pick(r).clone(),
        })
        .collect()
}

/// Writes [`book_assets`] under `dir`; returns how many files were written.
pub fn write_book_assets(dir: &Path) -> Result<usize> {
    let assets = book_assets()?;
    for (rel, bytes) in &assets {
        zero_to_r1::io::write_atomic(&dir.join(rel), bytes)?;
    }
    Ok(assets.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn early_is_a_round_sixth_of_the_episodes() {
        assert_eq!(super::early(&[0.0, 1200.0, 2400.0]), 400.0);
        assert_eq!(super::early(&[0.0, 2384.0]), 400.0); // 397.3 → 400
        assert_eq!(super::early(&[0.0, 1184.0]), 200.0); // 197.3 → 200
        assert_eq!(super::early(&[0.0, 90.0]), 20.0); // 15 → 20
        assert_eq!(super::early(&[]), 0.0);
    }
}
