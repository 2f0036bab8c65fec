//! Classroom assignments: student handouts with stubs, and a grader.
//!
//! A **solution region** is a piece of the library that a student writes. It is marked by a
//! pair of anchor comments around the tail of a function body:
//!
//! ```text
//!     // ANCHOR: ex_4_2 (3 points) GAE: accumulate Â_t = δ_t + γλ Â_{t+1} backwards.
//!     …the solution…
//!     // ANCHOR_END: ex_4_2
//! ```
//!
//! The name `ex_C_N` is exercise C.N of chapter C; the points and the one-line task follow.
//! Because the markers are mdBook anchors, the book (which includes the same functions by
//! anchor) hides them, and nothing else in the library knows about exercises.
//!
//! [`write_handout`] copies the workspace and replaces every region of the chosen chapters
//! by `todo!("exercise C.N: task")`. The grading tests of chapter C live in
//! `tests/grade_chCC.rs`; a test named `ex_C_N_…` grades exercise C.N. [`grade`] runs them
//! and turns the results into a score table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::io::{read_text, write_atomic};

/// One marked exercise of the library.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exercise {
    /// "C.N".
    pub id: String,
    pub chapter: u32,
    pub number: u32,
    pub points: u32,
    /// The one-line task statement.
    pub task: String,
    /// The function whose body the region is.
    pub function: String,
    /// The file, relative to the workspace root.
    pub file: PathBuf,
    /// The line of the opening marker (1-based).
    pub line: usize,
}

impl Exercise {
    /// The anchor name `ex_C_N`, which also prefixes the names of its grading tests.
    pub fn anchor(&self) -> String {
        format!("ex_{}_{}", self.chapter, self.number)
    }
}

/// Text for a markdown table cell: `|` would end the cell, so it is escaped.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn marker_error(file: &Path, line: usize, why: impl Into<String>) -> Error {
    Error::Book {
        file: file.to_path_buf(),
        line,
        why: why.into(),
    }
}

/// Parses `ex_C_N` into (C, N).
fn parse_name(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("ex_")?;
    let (c, n) = rest.split_once('_')?;
    Some((c.parse().ok()?, n.parse().ok()?))
}

/// The marker on `line`, if any: (is_end, name, rest of the line).
fn marker(line: &str) -> Option<(bool, &str, &str)> {
    let body = line.trim_start().strip_prefix("//")?.trim_start();
    let (end, rest) = if let Some(r) = body.strip_prefix("ANCHOR_END:") {
        (true, r)
    } else {
        (false, body.strip_prefix("ANCHOR:")?)
    };
    let rest = rest.trim_start();
    let name_len = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    let name = &rest[..name_len];
    name.starts_with("ex_")
        .then_some((end, name, rest[name_len..].trim()))
}

/// One region found in a file: the exercise and the 0-based lines of its two markers.
struct Region {
    exercise: Exercise,
    open: usize,
    close: usize,
}

/// The name of the last function declared at or before line `i`.
fn enclosing_function(lines: &[&str], i: usize) -> String {
    lines[..=i]
        .iter()
        .rev()
        .find_map(|l| {
            let rest = l.split_once("fn ")?.1;
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
            (end > 0).then(|| rest[..end].to_string())
        })
        .unwrap_or_default()
}

fn regions(text: &str, file: &Path) -> Result<Vec<Region>> {
    let mut out = Vec::new();
    let mut open: Option<(usize, Exercise)> = None;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some((is_end, name, rest)) = marker(line) else {
            continue;
        };
        let Some((chapter, number)) = parse_name(name) else {
            return Err(marker_error(
                file,
                i + 1,
                format!("exercise marker `{name}` must be named ex_<chapter>_<number>"),
            ));
        };
        match (is_end, open.take()) {
            (false, None) => {
                let (points, task) = rest
                    .strip_prefix('(')
                    .and_then(|r| r.split_once(')'))
                    .and_then(|(p, task)| {
                        let p = p.trim();
                        let p = p.strip_suffix("points").or(p.strip_suffix("point"))?;
                        Some((p.trim().parse::<u32>().ok()?, task.trim()))
                    })
                    .ok_or_else(|| {
                        marker_error(
                            file,
                            i + 1,
                            format!("`{name}` must be followed by `(N points) the task`"),
                        )
                    })?;
                if task.is_empty() {
                    return Err(marker_error(file, i + 1, format!("`{name}` has no task")));
                }
                let exercise = Exercise {
                    id: format!("{chapter}.{number}"),
                    chapter,
                    number,
                    points,
                    task: task.to_string(),
                    function: enclosing_function(&lines, i),
                    file: file.to_path_buf(),
                    line: i + 1,
                };
                open = Some((i, exercise));
            }
            (true, Some((start, exercise))) if exercise.anchor() == name => out.push(Region {
                exercise,
                open: start,
                close: i,
            }),
            (true, Some((_, exercise))) => {
                return Err(marker_error(
                    file,
                    i + 1,
                    format!(
                        "`{name}` closes, but `{}` is the region that is open",
                        exercise.anchor()
                    ),
                ))
            }
            (true, None) => {
                return Err(marker_error(
                    file,
                    i + 1,
                    format!("`{name}` closes a region that was never opened"),
                ))
            }
            (false, Some((_, exercise))) => {
                return Err(marker_error(
                    file,
                    i + 1,
                    format!(
                        "`{name}` opens inside `{}`; regions do not nest",
                        exercise.anchor()
                    ),
                ))
            }
        }
    }
    if let Some((start, exercise)) = open {
        return Err(marker_error(
            file,
            start + 1,
            format!("`{}` is never closed", exercise.anchor()),
        ));
    }
    Ok(out)
}

/// The exercises marked in one file's text (`file` is only used to name it).
pub fn parse_exercises(text: &str, file: &Path) -> Result<Vec<Exercise>> {
    Ok(regions(text, file)?
        .into_iter()
        .map(|r| r.exercise)
        .collect())
}

// ANCHOR: stub
/// `text` with the body of every region of a chapter in `chapters` replaced by
/// `todo!("exercise C.N: task")`, indented like its marker. The markers stay, so the student
/// sees the task right where the code goes.
pub fn stub_text(text: &str, file: &Path, chapters: &[u32]) -> Result<String> {
    let regions = regions(text, file)?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len());
    let mut next = 0;
    for r in regions
        .iter()
        .filter(|r| chapters.contains(&r.exercise.chapter))
    {
        for line in &lines[next..=r.open] {
            out.push_str(line);
            out.push('\n');
        }
        let marker_line = lines[r.open];
        let indent = &marker_line[..marker_line.len() - marker_line.trim_start().len()];
        let message = format!("exercise {}: {}", r.exercise.id, r.exercise.task);
        out.push_str(&format!("{indent}todo!(\"{{}}\", {message:?})\n"));
        next = r.close;
    }
    for line in &lines[next..] {
        out.push_str(line);
        out.push('\n');
    }
    if !text.ends_with('\n') {
        out.pop();
    }
    Ok(out)
}
// ANCHOR_END: stub

/// The folders of the workspace whose `.rs` files may hold exercises.
const SOURCE_DIRS: [&str; 2] = ["src", "gridworld/src"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()).map_err(|err| Error::io(dir, err)))
        .collect::<Result<_>>()?;
    paths.sort();
    for p in paths {
        if p.is_dir() {
            rust_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// Every exercise marked in the workspace at `root`, ordered by chapter and number. Two
/// regions with the same id are an error naming both places.
pub fn exercises(root: &Path) -> Result<Vec<Exercise>> {
    let mut files = Vec::new();
    for d in SOURCE_DIRS {
        rust_files(&root.join(d), &mut files)?;
    }
    let mut all: Vec<Exercise> = Vec::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap_or(&f).to_path_buf();
        for ex in parse_exercises(&read_text(&f)?, &rel)? {
            if let Some(other) = all.iter().find(|o| o.id == ex.id) {
                return Err(marker_error(
                    &ex.file,
                    ex.line,
                    format!(
                        "exercise {} is also marked at {}:{}",
                        ex.id,
                        other.file.display(),
                        other.line
                    ),
                ));
            }
            all.push(ex);
        }
    }
    all.sort_by_key(|e| (e.chapter, e.number));
    Ok(all)
}

/// The exercises as a markdown table (exercise, points, function, file, task), without line
/// numbers so that it changes only when an exercise does.
pub fn exercise_table(exercises: &[Exercise]) -> String {
    let mut s =
        String::from("| exercise | points | function | file | task |\n|---|---|---|---|---|\n");
    for e in exercises {
        s.push_str(&format!(
            "| {} | {} | `{}` | `{}` | {} |\n",
            e.id,
            e.points,
            e.function,
            e.file.display(),
            cell(&e.task)
        ));
    }
    let total: u32 = exercises.iter().map(|e| e.points).sum();
    s.push_str(&format!("| **all** | **{total}** | | | |\n"));
    s
}

/// Parses a chapter list such as `2-4`, `2,3,5`, `6` or `all`.
pub fn parse_chapters(spec: &str) -> Result<Vec<u32>> {
    if spec.trim() == "all" {
        return Ok((1..=10).collect());
    }
    let bad = |why: String| Error::invalid("--chapters", format!("{spec:?}: {why}"));
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| bad(format!("{s:?} is not a chapter number")))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(bad(format!("{a}-{b} runs backwards")));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    if out.is_empty() || out.iter().any(|&c| c == 0 || c > 10) {
        return Err(bad("chapters are numbered 1 to 10".into()));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// What a handout contains.
#[derive(Clone, Debug, Serialize)]
pub struct Handout {
    pub dir: PathBuf,
    pub chapters: Vec<u32>,
    /// The exercises left for the student (all of them solved in a `--with-solutions` copy).
    pub exercises: Vec<Exercise>,
    pub with_solutions: bool,
}

/// What goes into a handout besides the source folders: files and folders copied as they are.
const COPIED: [&str; 6] = [
    "Cargo.toml",
    "Cargo.lock",
    "gridworld",
    "book/src",
    "book/book.toml",
    "tests",
];

/// Paths never copied: build outputs and the tests of the repository's own generated files.
fn skipped(rel: &Path) -> bool {
    let s = rel.to_string_lossy();
    s.starts_with("gridworld/target") || s == "tests/notebooks.rs"
}

fn list_tree(root: &Path, rel: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let src = root.join(rel);
    if skipped(rel) {
        return Ok(());
    }
    if src.is_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&src)
            .map_err(|e| Error::io(&src, e))?
            .map(|e| {
                e.map(|e| e.file_name().into())
                    .map_err(|err| Error::io(&src, err))
            })
            .collect::<Result<_>>()?;
        names.sort();
        for n in names {
            list_tree(root, &rel.join(n), files)?;
        }
    } else if src.is_file() {
        files.push(rel.to_path_buf());
    }
    Ok(())
}

/// The line a student notebook adds to its first cell: friendly messages for stubs.
pub const STUDENT_NOTEBOOK_LINE: &str = "zero_to_r1::handout::explain_unfinished_exercises();";

/// Writes a student handout of `chapters` into `out` (which must not exist yet or be
/// empty): the workspace with those chapters' exercises stubbed (unless `with_solutions`),
/// the tests, the book's chapters, the notebooks of those chapters and a HANDOUT.md.
pub fn write_handout(
    root: &Path,
    chapters: &[u32],
    out: &Path,
    with_solutions: bool,
) -> Result<Handout> {
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(|e| Error::io(out, e))?
            .next()
            .is_some()
    {
        return Err(Error::invalid(
            "--out",
            format!(
                "{} already exists and is not empty; choose a new folder",
                out.display()
            ),
        ));
    }
    // Broken or duplicate exercise markers stop the handout before anything is written.
    exercises(root)?;
    let stubbed: Vec<u32> = if with_solutions {
        Vec::new()
    } else {
        chapters.to_vec()
    };
    let mut files = Vec::new();
    for rel in SOURCE_DIRS.iter().chain(COPIED.iter()) {
        list_tree(root, Path::new(rel), &mut files)?;
    }
    files.sort();
    files.dedup();
    for rel in &files {
        let src = root.join(rel);
        let in_source = SOURCE_DIRS.iter().any(|d| rel.starts_with(d));
        if in_source && rel.extension().is_some_and(|e| e == "rs") {
            let text = stub_text(&read_text(&src)?, rel, &stubbed)?;
            write_atomic(&out.join(rel), text.as_bytes())?;
        } else {
            let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
            write_atomic(&out.join(rel), &bytes)?;
        }
    }
    copy_notebooks(root, chapters, out, with_solutions)?;
    let handout = Handout {
        dir: out.to_path_buf(),
        chapters: chapters.to_vec(),
        // Read back from the handout itself: stubs move the markers' line numbers.
        exercises: exercises(out)?
            .into_iter()
            .filter(|e| chapters.contains(&e.chapter))
            .collect(),
        with_solutions,
    };
    write_atomic(&out.join("HANDOUT.md"), handout_readme(&handout).as_bytes())?;
    Ok(handout)
}

fn chapter_of(file_name: &str) -> Option<u32> {
    file_name.get(..2)?.parse().ok()
}

/// Copies the notebooks of `chapters`; in a student copy the first cell also turns the panic
/// of an unfinished exercise into a clear message.
fn copy_notebooks(root: &Path, chapters: &[u32], out: &Path, with_solutions: bool) -> Result<()> {
    let dir = root.join("notebooks");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let src = dir.join(&name);
        let dst = out.join("notebooks").join(&name);
        if name == "setup.sh" {
            let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
            write_atomic(&dst, &bytes)?;
            continue;
        }
        let keep =
            name.ends_with(".ipynb") && chapter_of(&name).is_some_and(|c| chapters.contains(&c));
        if !keep {
            continue;
        }
        let text = read_text(&src)?;
        let text = if with_solutions {
            text
        } else {
            student_notebook(&text).map_err(|why| marker_error(&src, 1, why))?
        };
        write_atomic(&dst, text.as_bytes())?;
    }
    Ok(())
}

/// Adds [`STUDENT_NOTEBOOK_LINE`] to the first code cell of a notebook.
pub fn student_notebook(json: &str) -> std::result::Result<String, String> {
    let mut nb: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not a notebook: {e}"))?;
    let cell = nb["cells"]
        .as_array_mut()
        .and_then(|cells| cells.iter_mut().find(|c| c["cell_type"] == "code"))
        .ok_or("the notebook has no code cell")?;
    let source = cell["source"]
        .as_array_mut()
        .ok_or("the first code cell has no source")?;
    if let Some(last) = source.last_mut() {
        if let Some(s) = last.as_str().filter(|s| !s.ends_with('\n')) {
            *last = format!("{s}\n").into();
        }
    }
    source.push(STUDENT_NOTEBOOK_LINE.into());
    let mut text = serde_json::to_string_pretty(&nb).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

fn handout_readme(h: &Handout) -> String {
    let chapters = h
        .chapters
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut s = format!(
        "# zero-to-r1 — assignment, chapters {chapters}\n\n{}\n\n",
        if h.with_solutions {
            "This is the instructor's copy: every exercise is solved."
        } else {
            "Each exercise below is a function body in the library that says \
             `todo!(\"exercise …\")`. Replace the `todo!` with your code; the comment above \
             it states the task, and the book chapter explains the math."
        }
    );
    s.push_str("| exercise | points | task | where |\n|---|---|---|---|\n");
    for e in &h.exercises {
        s.push_str(&format!(
            "| {} | {} | {} | `{}:{}` |\n",
            e.id,
            e.points,
            cell(&e.task),
            e.file.display(),
            e.line
        ));
    }
    let tests = h
        .chapters
        .iter()
        .filter(|c| h.exercises.iter().any(|e| e.chapter == **c))
        .map(|c| format!("cargo test --test grade_ch{c:02}"))
        .collect::<Vec<_>>()
        .join("\n");
    s.push_str(&format!(
        "\nCheck your work, one chapter at a time:\n\n```sh\n{tests}\n```\n\n\
         Score it as your instructor will (a table of points, and `--json` for a report):\n\n\
         ```sh\ncargo run --release -- grade --chapters {}\n```\n\n\
         The notebooks of these chapters are in `notebooks/` (set them up with \
         `bash notebooks/setup.sh`); a cell that needs an exercise you have not done yet \
         says so.\n",
        h.chapters
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    ));
    s
}

// ANCHOR: explain_unfinished_exercises
/// Replaces the panic message of an unfinished exercise (`todo!("exercise C.N: …")`) with a
/// plain explanation of what to do; every other panic is reported as before. Student
/// notebooks call this in their first cell.
pub fn explain_unfinished_exercises() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        match text.split_once("exercise ") {
            Some((_, task)) if text.starts_with("not yet implemented") => {
                let place = info
                    .location()
                    .map(|l| format!(" in {}", l.file()))
                    .unwrap_or_default();
                eprintln!(
                    "Exercise {task}\nThis exercise is not done yet: write its code{place} \
                     (where it says todo!), then run this cell again."
                );
            }
            _ => previous(info),
        }
    }));
}
// ANCHOR_END: explain_unfinished_exercises

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

/// A folder of the grader's own, new for each grading run and removed with it: the logs and
/// outputs of the test runs go here, out of the student's folder.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        for attempt in 0.. {
            let dir = base.join(format!(
                "z2r1-grade-{}-{nanos}-{attempt}",
                std::process::id()
            ));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Scratch(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&dir, e)),
            }
        }
        unreachable!("the loop above returns")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A command to run, with its stdout and stderr going to two files.
struct Job {
    cmd: Command,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Job {
    fn new(cmd: Command, scratch: &Path, name: &str) -> Job {
        Job {
            cmd,
            stdout: scratch.join(format!("{name}.out")),
            stderr: scratch.join(format!("{name}.err")),
        }
    }

    fn spawn(&mut self) -> Result<Child> {
        let program = PathBuf::from(self.cmd.get_program());
        let out = std::fs::File::create(&self.stdout).map_err(|e| Error::io(&self.stdout, e))?;
        let err = std::fs::File::create(&self.stderr).map_err(|e| Error::io(&self.stderr, e))?;
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        // Its own process group, so that everything it starts can be stopped with it.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut self.cmd, 0);
        self.cmd.spawn().map_err(|e| Error::io(program, e))
    }
}

/// Kills the process group that `child` leads: the child and whatever it started and left
/// in its group. A process that deliberately leaves the group (`setsid`) is out of reach.
fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    {
        extern "C" {
            fn kill(pid: i32, sig: i32) -> i32;
        }
        const SIGKILL: i32 = 9;
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: sends a signal to the group this grader created for the child; the
            // group id is the child's pid, which stays reserved while any process of the group
            // (or the child's unreaped exit) remains.
            unsafe {
                kill(-pid, SIGKILL);
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = child.kill();
    }
}

/// Set by SIGINT or SIGTERM while jobs run: their process groups are not the terminal's, so
/// Ctrl-C reaches only the grader, which must stop them itself.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// While one is alive, SIGINT and SIGTERM set [`INTERRUPTED`] instead of ending the grader;
/// when the last one (of those alive in all threads) goes, the previous handlers come back.
struct InterruptGuard;

/// How many [`InterruptGuard`]s are alive, and the handlers they replaced.
#[cfg(unix)]
static HANDLERS: std::sync::Mutex<(usize, [(i32, usize); 2])> =
    std::sync::Mutex::new((0, [(2, 0), (15, 0)]));

#[cfg(unix)]
extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
}

#[cfg(unix)]
extern "C" fn on_interrupt(_: i32) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

impl InterruptGuard {
    fn install() -> InterruptGuard {
        #[cfg(unix)]
        {
            let mut handlers = HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
            if handlers.0 == 0 {
                INTERRUPTED.store(false, std::sync::atomic::Ordering::SeqCst);
                let handler = on_interrupt as extern "C" fn(i32) as usize;
                for (signum, previous) in handlers.1.iter_mut() {
                    // SAFETY: the handler only stores to an atomic (async-signal-safe).
                    *previous = unsafe { signal(*signum, handler) };
                }
            }
            handlers.0 += 1;
        }
        InterruptGuard
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let mut handlers = HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
            handlers.0 -= 1;
            if handlers.0 == 0 {
                for (signum, previous) in handlers.1 {
                    // SAFETY: puts back the handler that was there before the first guard.
                    unsafe {
                        signal(signum, previous);
                    }
                }
            }
        }
    }
}

/// Runs `jobs`, at most `parallel` at a time, each in a process group of its own. Whatever
/// is still running at `deadline` is killed with its whole group, and jobs not started by
/// then never start. A job that ends has whatever it left in its group killed as well.
/// Returns each job's exit status, `None` for those that ran out of time.
fn run_jobs(
    jobs: &mut [Job],
    parallel: usize,
    deadline: Instant,
) -> Result<Vec<Option<ExitStatus>>> {
    let _guard = InterruptGuard::install();
    let mut status: Vec<Option<ExitStatus>> = vec![None; jobs.len()];
    let mut running: Vec<(usize, Child)> = Vec::new();
    let mut next = 0;
    let stop_all = |running: &mut Vec<(usize, Child)>| {
        for (_, child) in running.iter_mut() {
            kill_group(child);
            let _ = child.wait();
        }
        running.clear();
    };
    loop {
        if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            stop_all(&mut running);
            return Err(Error::invalid(
                "grading",
                "interrupted; the tests that were running are stopped",
            ));
        }
        if Instant::now() >= deadline {
            stop_all(&mut running);
            return Ok(status);
        }
        while running.len() < parallel.max(1) && next < jobs.len() {
            match jobs[next].spawn() {
                Ok(child) => running.push((next, child)),
                Err(e) => {
                    stop_all(&mut running);
                    return Err(e);
                }
            }
            next += 1;
        }
        if running.is_empty() {
            return Ok(status);
        }
        let mut i = 0;
        while i < running.len() {
            let (job, child) = &mut running[i];
            match child.try_wait() {
                Ok(Some(s)) => {
                    status[*job] = Some(s);
                    // Whatever it started and left behind goes with it.
                    kill_group(child);
                    running.swap_remove(i);
                }
                Ok(None) => i += 1,
                Err(e) => {
                    let program = PathBuf::from(jobs[*job].cmd.get_program());
                    stop_all(&mut running);
                    return Err(Error::io(program, e));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many grading tests run at once: `RUST_TEST_THREADS` if set, else one per core (the
/// same as libtest).
fn parallel_tests() -> usize {
    std::env::var("RUST_TEST_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1)
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
