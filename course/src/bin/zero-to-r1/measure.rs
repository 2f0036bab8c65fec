//! The book's measured runs, `lm measure` (chapter 8) and `lm measure-zero` (chapter 9), and
//! the records they write.

use super::*;
use crate::lm_args::LmRunArgs;

// The flags of `lm measure`.
#[derive(Args)]
pub(crate) struct MeasureArgs {
    #[command(flatten)]
    run: LmRunArgs,
    /// Where to write the record.
    #[arg(long, default_value = "book/src/generated/ch08/sft_run.json")]
    out: PathBuf,
    /// A description of the machine, stored in the record.
    #[arg(long, default_value = "a 2-core x86-64 virtual machine without GPU")]
    machine: String,
}

/// `lm measure`: chapter 8's fine-tuning run, measured into the book's record.
pub(crate) fn measure(args: MeasureArgs) -> Result<()> {
    let MeasureArgs { run, out, machine } = args;
    zero_to_r1::io::check_writable(&out)?;
    if run.device != "cpu" {
        return Err(Error::invalid(
            "--device",
            "the book's record is measured on the cpu",
        ));
    }
    let config = course::experiments::ch08::Ch08Config {
        lm: run.config()?,
        seed: run.seed(),
        ..Default::default()
    };
    let bar = tour::progress_bar(config.lm.sft.steps as u64, "8 · SFT", true);
    let (mut record, _) = course::experiments::ch08::run(&config, |_, loss| {
        bar.inc(1);
        bar.set_message(format!("loss {loss:.3}"));
    })?;
    bar.finish();
    record.machine = machine;
    record.command = record_command(&record.command, &run);
    let table = course::experiments::ch08::table(&record);
    save_record(&out, &record, &table)
}

// The flags of `lm measure-zero`.
#[derive(Args)]
pub(crate) struct MeasureZeroArgs {
    /// The Zero route's config.
    #[arg(long, value_name = "FILE", default_value = "configs/zero-cpu.toml")]
    zero: PathBuf,
    /// The cold-start route's config.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "configs/cold-start-cpu.toml"
    )]
    cold_start: PathBuf,
    /// How many seeds (0, 1, …) per route.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Leave out the ablation (the newer GRPO variants, each a short run from the base model).
    #[arg(long)]
    no_ablation: bool,
    /// Where to write the record.
    #[arg(long, default_value = "book/src/generated/ch09/routes.json")]
    out: PathBuf,
    /// Where to keep the runs' folders.
    #[arg(long, default_value = "runs/lm/measure-zero")]
    runs: PathBuf,
    /// A description of the machine, stored in the record.
    #[arg(long, default_value = "a 2-core x86-64 virtual machine without GPU")]
    machine: String,
}

/// `lm measure-zero`: chapter 9's two routes over several seeds, measured into the book's
/// record.
pub(crate) fn measure_zero(args: MeasureZeroArgs) -> Result<()> {
    use zero_to_r1::lm::config::LmConfig;
    let MeasureZeroArgs {
        zero,
        cold_start,
        seeds,
        no_ablation,
        out,
        runs,
        machine,
    } = args;
    if seeds == 0 {
        return Err(Error::invalid("--seeds", "0; give at least one"));
    }
    zero_to_r1::io::check_writable(&out)?;
    let zero = LmConfig::from_file(&zero)?;
    let mut dr = zero.clone();
    dr.grpo.set_algo(zero_to_r1::lm::config::Algo::DrGrpo);
    let routes = vec![
        ("zero".to_string(), zero),
        ("zero, Dr. GRPO".to_string(), dr),
        ("cold start".to_string(), LmConfig::from_file(&cold_start)?),
    ];
    let variants = if no_ablation {
        Vec::new()
    } else {
        course::experiments::zero::variants(&routes[0].1)
    };
    let seeds: Vec<u64> = (0..seeds).collect();
    let mut record = course::experiments::zero::measure(
        &routes,
        &variants,
        &seeds,
        &runs,
        &mut Bars::new(true),
    )?;
    record.machine = machine;
    let table = course::experiments::zero::table(&record)
        + "\n"
        + &course::experiments::zero::ablation_table(&record);
    save_record(&out, &record, &table)
}

/// The command of a measured record, marked if a config or seed other than the defaults was
/// used.
pub(crate) fn record_command(base: &str, run: &LmRunArgs) -> String {
    if run.config.is_some() || run.seed.is_some_and(|s| s != 0) {
        format!("{base} (with --config/--seed)")
    } else {
        base.to_string()
    }
}

/// Writes a chapter's measured record to `out` and prints its table.
pub(crate) fn save_record(
    out: &std::path::Path,
    record: &impl serde::Serialize,
    table: &str,
) -> Result<()> {
    let text = serde_json::to_string_pretty(record)
        .map_err(|e| Error::invalid("record", e.to_string()))?;
    zero_to_r1::io::write_atomic(out, text.as_bytes())?;
    put!("{table}");
    say!("wrote {}; now run `zero-to-r1 figures`", out.display());
    Ok(())
}
