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

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use zero_to_r1::error::{Error, Result};
use zero_to_r1::io::{read_text, write_atomic};

/// The first code cell of every notebook: load the library and the course (relative to
/// `notebooks/`).
pub const SETUP_CELL: &str =
    ":dep zero-to-r1 = { path = \"..\" }\n:dep course = { path = \"../course\" }";

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
        if let Some(info) = trimmed.strip_prefix("```") {
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
            let attrs: Vec<&str> = info.split(',').map(str::trim).collect();
            let runnable = attrs.first() == Some(&"rust") && !attrs.contains(&"ignore");
            if runnable {
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

/// Whether a chapter's text contains a runnable Rust block.
fn has_runnable(text: &str) -> bool {
    text.lines().any(|l| {
        l.trim()
            .strip_prefix("```")
            .map(|info| {
                let attrs: Vec<&str> = info.split(',').map(str::trim).collect();
                attrs.first() == Some(&"rust") && !attrs.contains(&"ignore")
            })
            .unwrap_or(false)
    })
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

/// Converts one chapter to notebook JSON. `has_notebook(stem)` tells which other chapters
/// have notebooks (for links).
pub fn chapter_to_notebook(file: &Path, has_notebook: &dyn Fn(&str) -> bool) -> Result<String> {
    let text = read_text(file)?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("chapter");
    let mut out = vec![
        json!({
            "cell_type": "markdown",
            "metadata": {},
            "source": source_lines(&format!(
                "*This notebook is generated from the book chapter `book/src/{name}` by \
                 `zero-to-r1 notebooks`; edit the chapter, not this file. Run the cells in order; \
                 the first one compiles the library and the course (a minute or two the first time).*"
            )),
        }),
        code_cell(SETUP_CELL),
    ];
    for cell in cells(&text, file, dir, has_notebook)? {
        out.push(match cell {
            Cell::Markdown(md) => {
                json!({"cell_type": "markdown", "metadata": {}, "source": source_lines(&md)})
            }
            Cell::Code(code) => code_cell(&code),
        });
    }
    let nb = json!({
        "cells": out,
        "metadata": {
            "kernelspec": {"display_name": "Rust", "language": "rust", "name": "rust"},
            "language_info": {
                "codemirror_mode": "rust",
                "file_extension": ".rs",
                "mimetype": "text/rust",
                "name": "Rust",
                "pygment_lexer": "rust",
                "version": ""
            }
        },
        "nbformat": 4,
        "nbformat_minor": 4
    });
    let mut s =
        serde_json::to_string_pretty(&nb).map_err(|e| Error::invalid("notebook", e.to_string()))?;
    s.push('\n');
    Ok(s)
}

fn code_cell(code: &str) -> Value {
    json!({
        "cell_type": "code",
        "execution_count": null,
        "metadata": {},
        "outputs": [],
        "source": source_lines(code),
    })
}

/// Every notebook the book produces: (file name, JSON).
pub fn generate_all(book_src: &Path) -> Result<Vec<(String, String)>> {
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
    let mut out = Vec::new();
    for f in &files {
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if has_notebook(stem) {
            out.push((
                format!("{stem}.ipynb"),
                chapter_to_notebook(f, &has_notebook)?,
            ));
        }
    }
    Ok(out)
}

/// Notebooks in `dir` that differ from what the book produces, are missing, or are stale
/// leftovers. Empty when everything is up to date.
pub fn stale(book_src: &Path, dir: &Path) -> Result<Vec<String>> {
    let fresh = generate_all(book_src)?;
    let mut problems = Vec::new();
    for (name, json) in &fresh {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(old) if &old == json => {}
            Ok(_) => problems.push(format!("{name} differs from its chapter")),
            Err(_) => problems.push(format!("{name} is missing")),
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".ipynb") && !fresh.iter().any(|(n, _)| n == &name) {
                problems.push(format!("{name} has no chapter"));
            }
        }
    }
    problems.sort();
    Ok(problems)
}

/// Writes every notebook into `dir` and removes notebooks without a chapter; returns the
/// names written.
pub fn write_all(book_src: &Path, dir: &Path) -> Result<Vec<String>> {
    let fresh = generate_all(book_src)?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".ipynb") && !fresh.iter().any(|(n, _)| n == &name) {
                std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
            }
        }
    }
    for (name, json) in &fresh {
        write_atomic(&dir.join(name), json.as_bytes())?;
    }
    Ok(fresh.into_iter().map(|(n, _)| n).collect())
}
