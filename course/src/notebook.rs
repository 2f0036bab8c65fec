//! Book chapters → Jupyter notebooks for the evcxr Rust kernel.
//!
//! The book is the single source of every chapter. A chapter `book/src/NN-name.md` becomes
//! `notebooks/NN-name.ipynb`:
//!
//! * prose becomes markdown cells; `{{#include file}}` and `{{#include file:anchor}}` are
//!   resolved, so library code shown in the book is shown in the notebook too;
//! * a fenced block tagged plainly `rust` (no `ignore`) becomes a code cell; lines hidden from
//!   the book with a leading `# ` are shown in the notebook;
//! * text between `<!-- book-only -->` and `<!-- /book-only -->` (the static copies of
//!   figures that a code cell draws) is left out, and an HTML comment starting
//!   `<!-- notebook-only` is unwrapped into the notebook;
//! * links to other chapters point to their notebooks, links to files are made relative to
//!   `notebooks/`;
//! * a first code cell loads the library and the course (experiments, figures) from the
//!   repository with `:dep`.
//!
//! Chapters without any runnable block get no notebook.
//!
//! # Recorded outputs
//!
//! The notebooks are committed executed, so that a reader who runs nothing still sees every
//! number and figure. `bash notebooks/record.sh` executes them with the evcxr kernel and writes
//! the outputs into `notebooks/`; regenerating a notebook keeps the outputs of every code cell
//! whose source (and every source before it) is unchanged, and drops the rest, which
//! [`stale`] then reports. What a runnable block prints (its text, not its figures: those are in
//! the book already) is written to `book/src/generated/outputs/<chapter>/<NN>.txt`, where `NN`
//! counts the chapter's runnable blocks from 01, and the book shows it under the block:
//!
//! ````text
//! ```text,output
//! {{#include generated/outputs/02-reinforce/04.txt}}
//! ```
//! ````
//!
//! Such an output block is left out of the notebook, which shows the real output instead.
//! A block that draws a figure has it right under it (under its output block, if any), in a
//! `<!-- book-only -->` section: either a static copy the book keeps (from `zero-to-r1
//! figures`) or the recorded figure, `book/src/generated/outputs/<chapter>/<NN>.svg`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use zero_to_r1::error::{Error, Result};
use zero_to_r1::io::{read_text, write_atomic};

/// The first code cell of every notebook: load the library and the course (relative to
/// `notebooks/`).
pub const SETUP_CELL: &str =
    ":dep zero-to-r1 = { path = \"..\" }\n:dep course = { path = \"../course\" }";

/// The fence of a block's recorded output in the book.
pub const OUTPUT_FENCE: &str = "```text,output";

/// Where the printed outputs live, relative to the book's source folder.
pub const OUTPUTS_DIR: &str = "generated/outputs";

enum Cell {
    Markdown(String),
    Code(String),
}

fn book_error(file: &Path, line: usize, why: impl Into<String>) -> Error {
    Error::Book {
        file: file.to_path_buf(),
        line,
        why: why.into(),
    }
}

/// The lines of `text` between `ANCHOR: name` and `ANCHOR_END: name`, without any other
/// anchor markers (the same rule mdBook applies).
pub fn extract_anchor(text: &str, name: &str) -> Option<String> {
    let is_marker = |line: &str, kind: &str| {
        line.trim_start()
            .strip_prefix("//")
            .map(|rest| rest.trim_start().starts_with(kind))
            .unwrap_or(false)
            || line.contains(&format!("<!-- {kind}"))
    };
    let opens =
        |line: &str| is_marker(line, &format!("ANCHOR: {name}")) && line.trim_end().ends_with(name);
    let closes = |line: &str| {
        is_marker(line, &format!("ANCHOR_END: {name}")) && line.trim_end().ends_with(name)
    };
    let mut out = String::new();
    let mut inside = false;
    let mut found = false;
    for line in text.lines() {
        if !inside && opens(line) {
            inside = true;
            found = true;
        } else if inside && closes(line) {
            inside = false;
        } else if inside && !is_marker(line, "ANCHOR") {
            out.push_str(line);
            out.push('\n');
        }
    }
    found.then(|| out.trim_end_matches('\n').to_string())
}

/// Replaces every `{{#include path[:anchor]}}` in `text` (paths relative to `dir`).
fn resolve_includes(text: &str, dir: &Path, file: &Path, first_line: usize) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{#include ") {
        let line = first_line
            + text[..text.len() - rest.len() + start]
                .matches('\n')
                .count();
        out.push_str(&rest[..start]);
        let after = &rest[start + "{{#include ".len()..];
        let end = after
            .find("}}")
            .ok_or_else(|| book_error(file, line, "unclosed {{#include"))?;
        let spec = after[..end].trim();
        let (path, anchor) = match spec.rsplit_once(':') {
            Some((p, a)) if !a.is_empty() && !a.contains('/') => (p, Some(a)),
            _ => (spec, None),
        };
        let target = dir.join(path);
        let content = read_text(&target)
            .map_err(|e| book_error(file, line, format!("cannot include {path}: {e}")))?;
        let piece = match anchor {
            Some(a) => extract_anchor(&content, a)
                .ok_or_else(|| book_error(file, line, format!("no anchor `{a}` in {path}")))?,
            None => content.trim_end_matches('\n').to_string(),
        };
        out.push_str(&piece);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Rewrites markdown link targets for a notebook living in `notebooks/`: `NN-x.md` → `NN-x.ipynb`
/// when that chapter has a notebook, other relative paths → `../book/src/…`.
fn rewrite_links(text: &str, has_notebook: &dyn Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        out.push_str(&rest[..i + 2]);
        let after = &rest[i + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let target = &after[..end];
        let external = target.contains("://") || target.starts_with('#') || target.starts_with('/');
        let (path, frag) = target.split_once('#').map_or((target, ""), |(p, f)| (p, f));
        let rewritten = if external || target.is_empty() {
            target.to_string()
        } else if let Some(stem) = path.strip_suffix(".md").filter(|s| has_notebook(s)) {
            let frag = if frag.is_empty() {
                String::new()
            } else {
                format!("#{frag}")
            };
            format!("{stem}.ipynb{frag}")
        } else if let Some(stem) = path.strip_suffix(".md") {
            let frag = if frag.is_empty() {
                String::new()
            } else {
                format!("#{frag}")
            };
            format!("../book/src/{stem}.md{frag}")
        } else {
            format!("../book/src/{target}")
        };
        out.push_str(&rewritten);
        rest = &after[end..];
    }
    out.push_str(rest);
    rewrite_sources(&out)
}

/// Rewrites the `src="…"` of HTML images (the book's figures) for a notebook in `notebooks/`:
/// relative paths → `../book/src/…`.
fn rewrite_sources(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("src=\"") {
        out.push_str(&rest[..i + 5]);
        let after = &rest[i + 5..];
        let external = after.starts_with('/') || after.starts_with('#') || {
            let end = after.find('"').unwrap_or(after.len());
            after[..end].contains("://")
        };
        if !external {
            out.push_str("../book/src/");
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Splits a chapter into cells.
fn cells(
    text: &str,
    file: &Path,
    dir: &Path,
    has_notebook: &dyn Fn(&str) -> bool,
) -> Result<Vec<Cell>> {
    let mut cells = Vec::new();
    let mut prose = String::new();
    let mut prose_line = 1;
    let mut lines = text.lines().enumerate().peekable();
    let mut book_only = false;
    let flush = |prose: &mut String, cells: &mut Vec<Cell>, line: usize| -> Result<()> {
        let md = resolve_includes(prose.trim_matches('\n'), dir, file, line)?;
        if !md.trim().is_empty() {
            cells.push(Cell::Markdown(rewrite_links(&md, has_notebook)));
        }
        prose.clear();
        Ok(())
    };
    while let Some((i, line)) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "<!-- book-only -->" {
            if book_only {
                return Err(book_error(file, i + 1, "nested <!-- book-only -->"));
            }
            book_only = true;
            continue;
        }
        if trimmed == "<!-- /book-only -->" {
            if !book_only {
                return Err(book_error(
                    file,
                    i + 1,
                    "<!-- /book-only --> without an opening one",
                ));
            }
            book_only = false;
            continue;
        }
        if book_only {
            continue;
        }
        if let Some(inner) = trimmed.strip_prefix("<!-- notebook-only") {
            let mut body = inner.trim_start().to_string();
            let mut closed = body.trim_end().ends_with("-->");
            while !closed {
                let (_, next) = lines
                    .next()
                    .ok_or_else(|| book_error(file, i + 1, "unclosed <!-- notebook-only"))?;
                body.push('\n');
                body.push_str(next);
                closed = next.trim_end().ends_with("-->");
            }
            let body = body.trim_end().trim_end_matches("-->").trim_end();
            prose.push_str(body);
            prose.push('\n');
            continue;
        }
        if trimmed.starts_with("```") {
            let fence_line = i + 1;
            let mut body = Vec::new();
            let mut closed = false;
            for (_, l) in lines.by_ref() {
                if l.trim() == "```" {
                    closed = true;
                    break;
                }
                body.push(l);
            }
            if !closed {
                return Err(book_error(file, fence_line, "code block is never closed"));
            }
            if is_output_fence(line) {
                // The book's copy of a block's output: the notebook has the real one.
                continue;
            }
            if opens_runnable(line) {
                flush(&mut prose, &mut cells, prose_line)?;
                let code: Vec<&str> = body
                    .iter()
                    .map(|l| match l.strip_prefix("# ") {
                        Some(shown) => shown,
                        None if l.trim() == "#" => "",
                        None => l,
                    })
                    .collect();
                let code = resolve_includes(&code.join("\n"), dir, file, fence_line + 1)?;
                cells.push(Cell::Code(code));
                prose_line = fence_line + body.len() + 2;
            } else {
                prose.push_str(line);
                prose.push('\n');
                for l in body {
                    prose.push_str(l);
                    prose.push('\n');
                }
                prose.push_str("```\n");
            }
            continue;
        }
        if prose.is_empty() {
            prose_line = i + 1;
        }
        prose.push_str(line);
        prose.push('\n');
    }
    if book_only {
        return Err(book_error(
            file,
            text.lines().count(),
            "<!-- book-only --> is never closed",
        ));
    }
    flush(&mut prose, &mut cells, prose_line)?;
    Ok(cells)
}

fn source_lines(text: &str) -> Value {
    let lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    json!(lines)
}

/// Whether a fence line opens a runnable block: tagged plainly `rust`, without `ignore`.
fn opens_runnable(line: &str) -> bool {
    line.trim()
        .strip_prefix("```")
        .map(|info| {
            let attrs: Vec<&str> = info.split(',').map(str::trim).collect();
            attrs.first() == Some(&"rust") && !attrs.contains(&"ignore")
        })
        .unwrap_or(false)
}

/// Whether a fence line opens the book's copy of a block's output.
fn is_output_fence(line: &str) -> bool {
    line.trim() == OUTPUT_FENCE
}

/// Whether a chapter's text contains a runnable Rust block.
fn has_runnable(text: &str) -> bool {
    text.lines().any(opens_runnable)
}

/// The chapter files of a book (`NN-*.md` directly under `src`), sorted.
pub fn chapter_files(book_src: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(book_src)
        .map_err(|e| Error::io(book_src, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".md")
                && name.len() > 3
                && name.as_bytes()[..2].iter().all(u8::is_ascii_digit)
                && name.as_bytes()[2] == b'-'
        })
        .collect();
    files.sort();
    Ok(files)
}

/// One runnable block of a chapter, as the book shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookBlock {
    /// 1 for the chapter's first runnable block.
    pub number: usize,
    /// The line of its opening fence.
    pub line: usize,
    /// The `{{#include …}}` path of the output block right under it, if there is one.
    pub output_include: Option<String>,
    /// The images of the book-only section right under it (or under its output block): the
    /// figure it draws, as the book shows it.
    pub figures: Vec<String>,
}

/// The `src` of every image in the `<!-- book-only -->` section that starts at the first
/// non-blank line from `from`, if one does.
fn book_only_images(lines: &[&str], from: usize) -> Vec<String> {
    let Some(start) = (from..lines.len()).find(|&i| !lines[i].trim().is_empty()) else {
        return Vec::new();
    };
    if lines[start].trim() != "<!-- book-only -->" {
        return Vec::new();
    }
    let mut found = Vec::new();
    for line in &lines[start + 1..] {
        if line.trim() == "<!-- /book-only -->" {
            break;
        }
        let mut rest = *line;
        while let Some(i) = rest.find("src=\"") {
            let after = &rest[i + 5..];
            let end = after.find('"').unwrap_or(after.len());
            found.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    found
}

/// The runnable blocks of a chapter and the output blocks under them. An output block that
/// does not follow a runnable block, or that holds anything but one include, is an error.
pub fn book_blocks(text: &str, file: &Path) -> Result<Vec<BookBlock>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks: Vec<BookBlock> = Vec::new();
    // Index of the line after the last closed runnable block, while only blank lines follow.
    let mut after_runnable: Option<usize> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if !line.trim().starts_with("```") {
            if !line.trim().is_empty() {
                after_runnable = None;
            }
            i += 1;
            continue;
        }
        let open = i;
        let close = (i + 1..lines.len())
            .find(|&j| lines[j].trim() == "```")
            .ok_or_else(|| book_error(file, open + 1, "code block is never closed"))?;
        if opens_runnable(line) {
            blocks.push(BookBlock {
                number: blocks.len() + 1,
                line: open + 1,
                output_include: None,
                figures: book_only_images(&lines, close + 1),
            });
            after_runnable = Some(close + 1);
        } else if is_output_fence(line) {
            let block = after_runnable
                .and(blocks.last_mut())
                .filter(|b| b.output_include.is_none())
                .ok_or_else(|| {
                    book_error(
                        file,
                        open + 1,
                        "an output block must come right under the runnable block it shows",
                    )
                })?;
            let body: Vec<&str> = lines[open + 1..close].to_vec();
            let include = match body.as_slice() {
                [one] => one
                    .trim()
                    .strip_prefix("{{#include ")
                    .and_then(|r| r.strip_suffix("}}"))
                    .map(|p| p.trim().to_string()),
                _ => None,
            }
            .ok_or_else(|| {
                book_error(
                    file,
                    open + 1,
                    "an output block holds exactly one {{#include generated/outputs/…}} line",
                )
            })?;
            block.output_include = Some(include);
            block.figures = book_only_images(&lines, close + 1);
            after_runnable = None;
        } else {
            after_runnable = None;
        }
        i = close + 1;
    }
    Ok(blocks)
}

/// The include path of block `number`'s output in chapter `stem`, relative to the book's source.
pub fn output_path(stem: &str, number: usize) -> String {
    format!("{OUTPUTS_DIR}/{stem}/{number:02}.txt")
}

/// The path of the figure block `number` of chapter `stem` draws, relative to the book's source.
pub fn output_figure_path(stem: &str, number: usize) -> String {
    format!("{OUTPUTS_DIR}/{stem}/{number:02}.svg")
}

/// The text of a JSON notebook field that is either a string or a list of strings.
fn joined(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

/// What a code cell printed, as text: its stdout, and the plain-text value of a result that is
/// not a figure. `None` when it printed nothing.
pub fn printed_text(outputs: &[Value]) -> Option<String> {
    let mut text = String::new();
    for out in outputs {
        match out["output_type"].as_str() {
            Some("stream") if out["name"] == "stdout" => text.push_str(&joined(&out["text"])),
            Some("execute_result" | "display_data") => {
                let data = &out["data"];
                let figure = data.get("image/svg+xml").is_some()
                    || data.get("image/png").is_some()
                    || data.get("text/html").is_some();
                if let (false, Some(plain)) = (figure, data.get("text/plain")) {
                    text.push_str(&joined(plain));
                    text.push('\n');
                }
            }
            _ => {}
        }
    }
    let text = text.trim_end();
    (!text.trim().is_empty()).then(|| format!("{text}\n"))
}

/// The first figure (SVG) a code cell drew, if it drew one.
pub fn drawn_figure(outputs: &[Value]) -> Option<String> {
    outputs
        .iter()
        .find_map(|out| out["data"].get("image/svg+xml"))
        .map(joined)
}

/// A code cell of a committed notebook: its source, outputs and execution count.
struct Recorded {
    source: String,
    outputs: Value,
    count: Value,
}

fn recorded_cells(nb: &Value) -> Vec<Recorded> {
    nb["cells"]
        .as_array()
        .map(|cells| {
            cells
                .iter()
                .filter(|c| c["cell_type"] == "code")
                .map(|c| Recorded {
                    source: joined(&c["source"]),
                    outputs: c["outputs"].clone(),
                    count: c["execution_count"].clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Converts one chapter to notebook JSON. `has_notebook(stem)` tells which other chapters
/// have notebooks (for links).
pub fn chapter_to_notebook(file: &Path, has_notebook: &dyn Fn(&str) -> bool) -> Result<String> {
    chapter_to_recorded_notebook(file, has_notebook, None)
}

/// Like [`chapter_to_notebook`], keeping the outputs of `recorded` (the committed notebook)
/// for the leading code cells whose sources are unchanged: a cell's output depends on every
/// cell before it, so the first changed cell drops its own outputs and all later ones.
pub fn chapter_to_recorded_notebook(
    file: &Path,
    has_notebook: &dyn Fn(&str) -> bool,
    recorded: Option<&Value>,
) -> Result<String> {
    let text = read_text(file)?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("chapter");
    let old = recorded.map(recorded_cells).unwrap_or_default();
    let mut old = old.into_iter();
    let mut unchanged = true;
    let mut code = |source: &str| {
        let mut cell = code_cell(source);
        match old.next() {
            Some(r) if unchanged && r.source == source && !r.count.is_null() => {
                cell["outputs"] = r.outputs;
                cell["execution_count"] = r.count;
            }
            _ => unchanged = false,
        }
        cell
    };
    let mut out = vec![
        json!({
            "cell_type": "markdown",
            "metadata": {},
            "source": source_lines(&format!(
                "*This notebook is generated from the book chapter `book/src/{name}` by \
                 `zero-to-r1 notebooks`; edit the chapter, not this file. Run the cells in order; \
                 the first one compiles the library and the course (a minute or two the first time). \
                 The outputs shown were recorded by `bash notebooks/record.sh`.*"
            )),
        }),
        code(SETUP_CELL),
    ];
    for cell in cells(&text, file, dir, has_notebook)? {
        out.push(match cell {
            Cell::Markdown(md) => {
                json!({"cell_type": "markdown", "metadata": {}, "source": source_lines(&md)})
            }
            Cell::Code(source) => code(&source),
        });
    }
    let mut metadata = json!({
        "kernelspec": {"display_name": "Rust", "language": "rust", "name": "rust"},
        "language_info": {
            "codemirror_mode": "rust",
            "file_extension": ".rs",
            "mimetype": "text/rust",
            "name": "Rust",
            "pygment_lexer": "rust",
            "version": ""
        }
    });
    // Where the outputs were recorded (written by the recording script), kept while any are.
    if let Some(machine) = recorded.and_then(|nb| nb["metadata"].get(RECORDED_ON)) {
        if out.iter().any(|c| !c["execution_count"].is_null()) {
            metadata[RECORDED_ON] = machine.clone();
        }
    }
    let nb = json!({
        "cells": out,
        "metadata": metadata,
        "nbformat": 4,
        "nbformat_minor": 4
    });
    let mut s =
        serde_json::to_string_pretty(&nb).map_err(|e| Error::invalid("notebook", e.to_string()))?;
    s.push('\n');
    Ok(s)
}

/// The notebook metadata key naming the kind of CPU the outputs were recorded on (the matrix
/// kernels differ between AVX2 and AVX-512 machines, and so do the last bits of the numbers).
pub const RECORDED_ON: &str = "zero_to_r1_recorded_on";

fn code_cell(code: &str) -> Value {
    json!({
        "cell_type": "code",
        "execution_count": null,
        "metadata": {},
        "outputs": [],
        "source": source_lines(code),
    })
}

/// Everything the book produces for the notebooks folder and the book itself.
pub struct Generated {
    /// (notebook file name, JSON).
    pub notebooks: Vec<(String, String)>,
    /// (path relative to the book's source, text) of every block's printed output.
    pub outputs: Vec<(String, String)>,
    /// Code cells that have no recorded output, and output blocks the book lacks or has in
    /// excess, each naming its place.
    pub problems: Vec<String>,
}

/// Every notebook the book produces: (file name, JSON), without recorded outputs.
pub fn generate_all(book_src: &Path) -> Result<Vec<(String, String)>> {
    Ok(generate(book_src, None)?.notebooks)
}

/// Every notebook the book produces, keeping the outputs recorded in the notebooks of
/// `recorded` (a folder), and the printed outputs of every block.
pub fn generate(book_src: &Path, recorded: Option<&Path>) -> Result<Generated> {
    let files = chapter_files(book_src)?;
    let mut with_code = std::collections::BTreeSet::new();
    for f in &files {
        if has_runnable(&read_text(f)?) {
            if let Some(stem) = f.file_stem().and_then(|s| s.to_str()) {
                with_code.insert(stem.to_string());
            }
        }
    }
    let has_notebook = |stem: &str| with_code.contains(stem);
    let mut generated = Generated {
        notebooks: Vec::new(),
        outputs: Vec::new(),
        problems: Vec::new(),
    };
    for f in &files {
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if !has_notebook(stem) {
            continue;
        }
        let name = format!("{stem}.ipynb");
        let old = match recorded.map(|dir| dir.join(&name)) {
            Some(path) if path.exists() => {
                let text = read_text(&path)?;
                Some(serde_json::from_str::<Value>(&text).map_err(|e| {
                    Error::invalid(path.display().to_string(), format!("not a notebook: {e}"))
                })?)
            }
            _ => None,
        };
        let json = chapter_to_recorded_notebook(f, &has_notebook, old.as_ref())?;
        if recorded.is_some() {
            let nb: Value = serde_json::from_str(&json)
                .map_err(|e| Error::invalid("notebook", e.to_string()))?;
            let blocks = book_blocks(&read_text(f)?, f)?;
            // Code cells after the setup cell are the runnable blocks, in order.
            let cells = recorded_cells(&nb);
            for (block, cell) in blocks.iter().zip(cells.iter().skip(1)) {
                let place = format!("{}:{}", f.display(), block.line);
                if cell.count.is_null() {
                    generated.problems.push(format!(
                        "{place}: block {} has no recorded output in notebooks/{name}; \
                         run `bash notebooks/record.sh`",
                        block.number
                    ));
                    continue;
                }
                let expected = output_path(stem, block.number);
                let printed = printed_text(cell.outputs.as_array().map_or(&[], Vec::as_slice));
                match (&printed, &block.output_include) {
                    (Some(_), Some(inc)) if inc == &expected => {}
                    (Some(_), _) => generated.problems.push(format!(
                        "{place}: block {} prints; put its output under it:\n\
                         {OUTPUT_FENCE}\n{{{{#include {expected}}}}}\n```",
                        block.number
                    )),
                    (None, Some(_)) => generated.problems.push(format!(
                        "{place}: block {} prints nothing; remove the output block under it",
                        block.number
                    )),
                    (None, None) => {}
                }
                if let Some(text) = printed {
                    generated.outputs.push((expected, text));
                }
                // A figure the block draws is shown under it: a static copy the book keeps
                // (from `figures`), or the recorded one.
                let drawn = drawn_figure(cell.outputs.as_array().map_or(&[], Vec::as_slice));
                let recorded_figure = output_figure_path(stem, block.number);
                let shows_recorded = block.figures.contains(&recorded_figure);
                match (&drawn, block.figures.is_empty()) {
                    (Some(svg), false) => {
                        if shows_recorded {
                            generated.outputs.push((recorded_figure, svg.clone()));
                        }
                    }
                    (Some(_), true) => generated.problems.push(format!(
                        "{place}: block {} draws a figure; show it under the block:\n\
                         <!-- book-only -->\n<figure>\n<img src=\"{recorded_figure}\" \
                         alt=\"Figure …\">\n<figcaption><strong>Figure ….</strong> …\
                         </figcaption>\n</figure>\n<!-- /book-only -->",
                        block.number
                    )),
                    (None, _) if shows_recorded => generated.problems.push(format!(
                        "{place}: block {} draws no figure; remove {recorded_figure} under it",
                        block.number
                    )),
                    (None, _) => {}
                }
            }
        }
        generated.notebooks.push((name, json));
    }
    Ok(generated)
}

/// Notebooks in `dir` and printed outputs in the book that differ from what the book and the
/// recorded outputs produce, are missing, or are stale leftovers; code cells without a
/// recorded output; output blocks the book lacks. Empty when everything is up to date.
pub fn stale(book_src: &Path, dir: &Path) -> Result<Vec<String>> {
    let fresh = generate(book_src, Some(dir))?;
    let mut problems = fresh.problems.clone();
    for (name, json) in &fresh.notebooks {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(old) if &old == json => {}
            Ok(_) => problems.push(format!(
                "notebooks/{name} differs from its chapter; run `zero-to-r1 notebooks`"
            )),
            Err(_) => problems.push(format!("notebooks/{name} is missing")),
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".ipynb") && !fresh.notebooks.iter().any(|(n, _)| n == &name) {
                problems.push(format!("notebooks/{name} has no chapter"));
            }
        }
    }
    for (rel, text) in &fresh.outputs {
        match std::fs::read_to_string(book_src.join(rel)) {
            Ok(old) if &old == text => {}
            _ => problems.push(format!(
                "book/src/{rel} differs from the recorded output; run `zero-to-r1 notebooks`"
            )),
        }
    }
    for rel in leftover_outputs(book_src, &fresh.outputs) {
        problems.push(format!(
            "book/src/{rel} is no block's output; run `zero-to-r1 notebooks`"
        ));
    }
    problems.sort();
    Ok(problems)
}

/// Output files under the book's outputs folder that no block produces.
fn leftover_outputs(book_src: &Path, outputs: &[(String, String)]) -> Vec<String> {
    let mut left = Vec::new();
    let Ok(chapters) = std::fs::read_dir(book_src.join(OUTPUTS_DIR)) else {
        return left;
    };
    for chapter in chapters.flatten() {
        let Ok(files) = std::fs::read_dir(chapter.path()) else {
            continue;
        };
        for f in files.flatten() {
            let rel = format!(
                "{OUTPUTS_DIR}/{}/{}",
                chapter.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            );
            if !outputs.iter().any(|(r, _)| r == &rel) {
                left.push(rel);
            }
        }
    }
    left.sort();
    left
}

/// Writes every notebook into `dir` (keeping the outputs recorded there) and every printed
/// output into the book, and removes notebooks without a chapter and outputs without a block.
/// Returns the files written and the problems [`stale`] would report (cells without a recorded
/// output, output blocks the book lacks).
pub fn write_all(book_src: &Path, dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let fresh = generate(book_src, Some(dir))?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".ipynb") && !fresh.notebooks.iter().any(|(n, _)| n == &name) {
                std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
            }
        }
    }
    for rel in leftover_outputs(book_src, &fresh.outputs) {
        let path = book_src.join(&rel);
        std::fs::remove_file(&path).map_err(|err| Error::io(&path, err))?;
    }
    let mut written = Vec::new();
    for (name, json) in &fresh.notebooks {
        write_atomic(&dir.join(name), json.as_bytes())?;
        written.push(dir.join(name).display().to_string());
    }
    for (rel, text) in &fresh.outputs {
        let path = book_src.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        write_atomic(&path, text.as_bytes())?;
        written.push(path.display().to_string());
    }
    Ok((written, fresh.problems))
}
