//! The grader: each grading test run alone, in its own process group, judged by its exit
//! status and by the log file libtest writes for it, never by what it prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::processes::{parallel_tests, run_jobs, Job, Scratch};
use super::{cell, exercises, list_tree, Exercise};
use zero_to_r1::error::{Error, Result};
use zero_to_r1::io::write_atomic;

/// The result of one grading test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TestResult {
    pub name: String,
    pub passed: bool,
}

/// One exercise's line of the score table.
#[derive(Clone, Debug, Serialize)]
pub struct Score {
    pub id: String,
    pub task: String,
    pub points: u32,
    /// points × (tests passed / tests).
    pub earned: f64,
    pub tests: Vec<TestResult>,
    /// Why nothing could be measured (e.g. the chapter does not compile), or that some of
    /// its tests ran out of time (those count as failed).
    pub note: Option<String>,
}

/// A whole grading run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub dir: PathBuf,
    pub scores: Vec<Score>,
    pub earned: f64,
    pub total: u32,
}

impl Report {
    /// A markdown table an instructor can paste into a gradebook.
    pub fn table(&self) -> String {
        let mut s =
            String::from("| exercise | task | tests passed | points |\n|---|---|---|---|\n");
        for sc in &self.scores {
            let passed = sc.tests.iter().filter(|t| t.passed).count();
            let tests = match &sc.note {
                Some(n) if sc.tests.is_empty() => n.clone(),
                Some(n) => format!("{passed}/{}, {n}", sc.tests.len()),
                None => format!("{passed}/{}", sc.tests.len()),
            };
            s.push_str(&format!(
                "| {} | {} | {tests} | {} / {} |\n",
                sc.id,
                cell(&sc.task),
                fmt_points(sc.earned),
                sc.points
            ));
        }
        s.push_str(&format!(
            "| **total** | | | **{} / {}** |\n",
            fmt_points(self.earned),
            self.total
        ));
        s
    }
}

fn fmt_points(p: f64) -> String {
    if (p - p.round()).abs() < 1e-9 {
        format!("{}", p.round())
    } else {
        format!("{p:.1}")
    }
}

/// The test names in libtest's `--list --format terse` output (`NAME: test` lines; benchmarks
/// and anything else are left out).
pub fn parse_test_list(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(|name| name.trim().to_string())
        .collect()
}

/// Whether the grading test `name` passed, judged from a run of its test binary that ran
/// only that test (`--exact NAME --logfile FILE`): the exit status, the log file libtest
/// wrote (`ok NAME`, `failed NAME` or `ignored NAME`) and libtest's summary on stdout.
/// `None` means libtest skipped the test as ignored.
///
/// The log file is the channel that counts: printing cannot reach it, neither through the
/// output libtest captures (and echoes for a failing test) nor by writing to the real
/// stdout, and a test that ends the process early (`std::process::exit(0)`) leaves it
/// empty. The test passed only if all three agree.
pub fn test_verdict(name: &str, exited_ok: bool, log: &str, stdout: &str) -> Option<bool> {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if exited_ok && lines == [format!("ignored {name}")] {
        return None;
    }
    let logged_ok = lines == [format!("ok {name}")];
    let summary_ok = stdout
        .lines()
        .any(|l| l.starts_with("test result: ok. 1 passed; 0 failed;"));
    Some(exited_ok && logged_ok && summary_ok)
}

/// Scores the exercises of one chapter from its test results. `None` results mean the
/// chapter's tests could not be run at all (`why` says why).
pub fn score_chapter(
    exercises: &[&Exercise],
    results: Option<&[TestResult]>,
    why: &str,
) -> Vec<Score> {
    exercises
        .iter()
        .map(|e| {
            let prefix = format!("{}_", e.anchor());
            let tests: Vec<TestResult> = results
                .unwrap_or(&[])
                .iter()
                .filter(|t| t.name.starts_with(&prefix))
                .cloned()
                .collect();
            let note = match results {
                None => Some(why.to_string()),
                Some(_) if tests.is_empty() => Some("no grading test found".to_string()),
                Some(_) => None,
            };
            let passed = tests.iter().filter(|t| t.passed).count();
            let earned = if tests.is_empty() {
                0.0
            } else {
                e.points as f64 * passed as f64 / tests.len() as f64
            };
            Score {
                id: e.id.clone(),
                task: e.task.clone(),
                points: e.points,
                earned,
                tests,
                note,
            }
        })
        .collect()
}

/// The executable of the test target `target` in cargo's `--message-format=json` output.
fn test_executable(messages: &str, target: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == target)
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "test"))
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Grades one chapter: builds its grading tests once, lists them, and runs each test of its
/// exercises alone (see [`test_verdict`]), everything within `limit`.
fn grade_chapter(
    dir: &Path,
    chapter: u32,
    exercises: &[&Exercise],
    limit: Duration,
    scratch: &Path,
) -> Result<Vec<Score>> {
    let deadline = Instant::now() + limit;
    let out_of_time = format!("ran out of time ({} s)", limit.as_secs());
    let target = format!("grade_ch{chapter:02}");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(dir)
        .env("CARGO_TERM_COLOR", "never")
        .args([
            "test",
            "--no-run",
            // The grading tests are the library's, and the workspace's default member is the
            // course: --workspace finds the target in whichever package has it.
            "--workspace",
            "--test",
            &target,
            "--message-format=json",
        ]);
    let mut jobs = [Job::new(build, scratch, &format!("{target}-build"))];
    let built = run_jobs(&mut jobs, 1, deadline)?;
    let exe = match built[0] {
        None => return Ok(score_chapter(exercises, None, &out_of_time)),
        Some(s) if s.success() => test_executable(&read_lossy(&jobs[0].stdout), &target),
        Some(_) => None,
    };
    let Some(exe) = exe else {
        return Ok(score_chapter(exercises, None, "did not compile"));
    };

    let mut list = Command::new(&exe);
    list.current_dir(dir).args(["--list", "--format", "terse"]);
    let mut jobs = [Job::new(list, scratch, &format!("{target}-list"))];
    let listed = run_jobs(&mut jobs, 1, deadline)?;
    let names: Vec<String> = match listed[0] {
        None => return Ok(score_chapter(exercises, None, &out_of_time)),
        Some(s) if s.success() => parse_test_list(&read_lossy(&jobs[0].stdout)),
        Some(_) => {
            return Ok(score_chapter(
                exercises,
                None,
                "its grading tests could not be listed",
            ))
        }
    };
    let prefixes: Vec<String> = exercises
        .iter()
        .map(|e| format!("{}_", e.anchor()))
        .collect();
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .collect();

    let mut jobs: Vec<Job> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut cmd = Command::new(&exe);
            cmd.current_dir(dir)
                .args(["--exact", name, "--test-threads", "1", "--color", "never"])
                .arg("--logfile")
                .arg(scratch.join(format!("{target}-{i}.log")));
            Job::new(cmd, scratch, &format!("{target}-{i}"))
        })
        .collect();
    let ran = run_jobs(&mut jobs, parallel_tests(), deadline)?;
    let mut results = Vec::new();
    let mut unfinished = Vec::new();
    for (i, (name, status)) in names.iter().zip(&ran).enumerate() {
        let Some(status) = status else {
            unfinished.push(name.clone());
            results.push(TestResult {
                name: name.clone(),
                passed: false,
            });
            continue;
        };
        let stderr = read_lossy(&jobs[i].stderr);
        if stderr.contains("Unrecognized option") && stderr.contains("logfile") {
            return Err(Error::invalid(
                "grading",
                "this Rust's test harness no longer accepts --logfile, which the grader \
                 reads the results from",
            ));
        }
        let log = read_lossy(&scratch.join(format!("{target}-{i}.log")));
        let stdout = read_lossy(&jobs[i].stdout);
        if let Some(passed) = test_verdict(name, status.success(), &log, &stdout) {
            results.push(TestResult {
                name: name.clone(),
                passed,
            });
        }
    }
    let mut scores = score_chapter(exercises, Some(&results), "");
    for s in &mut scores {
        if s.tests.iter().any(|t| unfinished.contains(&t.name)) {
            s.note = Some(out_of_time.clone());
        }
    }
    Ok(scores)
}

/// Grades the exercises of `chapters` in the workspace at `dir`, each chapter within `limit`
/// (building included).
///
/// For each chapter the grader builds `tests/grade_chCC.rs` once (`cargo test --no-run`; a
/// build that fails scores nothing, "did not compile"), lists its tests, and runs each test
/// of an exercise alone, in a process of its own, several at once as libtest would. A test
/// passes only if its process exits successfully *and* the log file libtest writes for the
/// grader (in a fresh folder outside `dir`) says `ok` for exactly that test *and* libtest's
/// summary agrees ([`test_verdict`]), so printing `test … ok` lines or exiting early earns
/// nothing. When the time runs out, every process still running is killed with its whole
/// process group (what it started included); the tests that had not finished fail, and
/// their exercises say that they ran out of time.
///
/// What it cannot detect: student code runs with the grader's rights, so code written to
/// cheat (rewriting the log file, the grading tests, `Cargo.toml` or a build script, or
/// leaving the process group) can. Grade with the grading tests of your own copy (see
/// [`install_grading_tests`]), and read the code.
pub fn grade(dir: &Path, chapters: &[u32], limit: Duration) -> Result<Report> {
    let all = exercises(dir)?;
    let mut by_chapter: BTreeMap<u32, Vec<&Exercise>> = BTreeMap::new();
    for e in all.iter().filter(|e| chapters.contains(&e.chapter)) {
        by_chapter.entry(e.chapter).or_default().push(e);
    }
    let scratch = Scratch::new()?;
    let mut scores = Vec::new();
    for (chapter, exs) in by_chapter {
        scores.extend(grade_chapter(dir, chapter, &exs, limit, &scratch.0)?);
    }
    let earned = scores.iter().map(|s| s.earned).sum();
    let total = scores.iter().map(|s| s.points).sum();
    Ok(Report {
        dir: dir.to_path_buf(),
        scores,
        earned,
        total,
    })
}

/// Copies the grading tests of `chapters` (`tests/grade_chCC.rs`, those that exist) and the
/// helpers they share (`tests/common/`) from the workspace `from` (the instructor's copy)
/// over those in `dir`, so that a student is graded by the instructor's tests, not by tests
/// they edited. Returns the files written, relative to `dir`.
pub fn install_grading_tests(from: &Path, dir: &Path, chapters: &[u32]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    list_tree(from, Path::new("tests/common"), &mut files)?;
    for c in chapters {
        let rel = PathBuf::from(format!("tests/grade_ch{c:02}.rs"));
        if from.join(&rel).is_file() {
            files.push(rel);
        }
    }
    for rel in &files {
        let src = from.join(rel);
        let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
        write_atomic(&dir.join(rel), &bytes)?;
    }
    Ok(files)
}

/// Checks a report against what was expected (`pass`, `fail` or `caught=C.N`); the error
/// lists what disagreed.
pub fn check_expectation(report: &Report, expect: &str) -> Result<()> {
    let mut wrong = Vec::new();
    let no_tests = report
        .scores
        .iter()
        .filter(|s| s.note.as_deref() == Some("no grading test found"))
        .map(|s| format!("exercise {} has no grading test", s.id));
    wrong.extend(no_tests);
    match expect {
        "pass" | "fail" => {
            let want = expect == "pass";
            for s in &report.scores {
                if let Some(note) = &s.note {
                    wrong.push(format!("exercise {}: {note}", s.id));
                }
                for t in s.tests.iter().filter(|t| t.passed != want) {
                    wrong.push(format!(
                        "{} {}",
                        t.name,
                        if t.passed { "passed" } else { "failed" }
                    ));
                }
            }
        }
        other => {
            let id = other.strip_prefix("caught=").ok_or_else(|| {
                Error::invalid(
                    "--expect",
                    format!("{other:?}; choose pass, fail or caught=C.N"),
                )
            })?;
            match report.scores.iter().find(|s| s.id == id) {
                None => wrong.push(format!("exercise {id} was not graded")),
                Some(s) if s.note.is_some() => wrong.push(format!(
                    "exercise {id}: {}",
                    s.note.as_deref().unwrap_or("")
                )),
                Some(s) if s.tests.iter().all(|t| t.passed) => {
                    wrong.push(format!("every test of exercise {id} passed"))
                }
                Some(_) => {}
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(
            "grading",
            format!("not as expected ({expect}):\n  {}", wrong.join("\n  ")),
        ))
    }
}
