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

use std::path::{Path, PathBuf};

use serde::Serialize;

use zero_to_r1::error::{Error, Result};
use zero_to_r1::io::{read_text, write_atomic};

mod grade;
mod processes;
mod readme;
pub use grade::{
    check_expectation, grade, install_grading_tests, parse_test_list, score_chapter, test_verdict,
    Report, Score, TestResult,
};
use readme::handout_readme;

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

/// An exercise's task with its subscripts set as subscripts, for the book's table: a single
/// letter followed by `_x` or `_{…}` (`G_t`, `r_{t+1}`, `π_ref`) gets `<sub>`; names with
/// underscores (`old_logp`) and code spans are left as they are.
pub fn subscripts_as_html(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '`' {
            in_code = !in_code;
        }
        let starts_word = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if !in_code && c.is_alphabetic() && starts_word && chars.get(i + 1) == Some(&'_') {
            let rest = &chars[i + 2..];
            let sub: Option<(String, usize)> = if rest.first() == Some(&'{') {
                rest.iter()
                    .position(|&x| x == '}')
                    .map(|end| (rest[1..end].iter().collect(), end + 1))
            } else {
                let n = rest.iter().take_while(|x| x.is_alphanumeric()).count();
                (n > 0).then(|| (rest[..n].iter().collect(), n))
            };
            if let Some((sub, used)) = sub {
                out.push(c);
                out.push_str(&format!("<sub>{sub}</sub>"));
                i += 2 + used;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
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

/// The exercises as a markdown table (exercise, points, then the task with the function and
/// file to edit under it), without line numbers so that it changes only when an exercise does.
pub fn exercise_table(exercises: &[Exercise]) -> String {
    let mut s = String::from("| exercise | points | task |\n|---|---|---|\n");
    for e in exercises {
        s.push_str(&format!(
            "| {} | {} | {}<br>`{}` in `{}` |\n",
            e.id,
            e.points,
            cell(&subscripts_as_html(&e.task)),
            e.function,
            e.file.display()
        ));
    }
    let total: u32 = exercises.iter().map(|e| e.points).sum();
    s.push_str(&format!("| **all** | **{total}** | |\n"));
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
const COPIED: [&str; 8] = [
    "Cargo.toml",
    "Cargo.lock",
    "gridworld",
    "course",
    "book/src",
    "book/book.toml",
    "book/theme",
    "tests",
];

/// Paths never copied: build outputs and the tests of the repository's own generated files.
fn skipped(rel: &Path) -> bool {
    let s = rel.to_string_lossy();
    s.starts_with("gridworld/target")
        || s.starts_with("course/target")
        || s == "course/tests/notebooks.rs"
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
pub const STUDENT_NOTEBOOK_LINE: &str = "course::handout::explain_unfinished_exercises();";

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
