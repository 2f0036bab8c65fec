//! The notebooks and the book's generated figures are produced from their sources, and the
//! generator follows its documented rules.

use std::path::{Path, PathBuf};

use course::notebook::{chapter_to_notebook, extract_anchor, stale, SETUP_CELL};

/// The repository: the folder above this crate's.
fn root() -> PathBuf {
    course::experiments::repository()
}

#[test]
fn committed_notebooks_match_the_book() {
    let problems = stale(&root().join("book/src"), &root().join("notebooks")).unwrap();
    assert!(
        problems.is_empty(),
        "notebooks are out of date, run `cargo run --release -- notebooks`:\n{}",
        problems.join("\n")
    );
}

#[test]
fn committed_book_figures_match_the_experiments() {
    let dir = root().join("book/src/generated");
    for (rel, bytes) in course::experiments::book_assets().unwrap() {
        let old = std::fs::read(dir.join(&rel)).unwrap_or_default();
        assert!(
            old == bytes,
            "book/src/generated/{rel} is out of date, run `cargo run --release -- figures`"
        );
    }
}

#[test]
fn every_chapter_of_the_design_is_in_the_summary() {
    let summary = std::fs::read_to_string(root().join("book/src/SUMMARY.md")).unwrap();
    for n in 1..=10 {
        assert!(
            summary.contains(&format!("]({n:02}-")),
            "chapter {n} is missing from SUMMARY.md"
        );
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("z2r1-nb-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cells(json: &str) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let src: String = c["source"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            (c["cell_type"].as_str().unwrap().to_string(), src)
        })
        .collect()
}

#[test]
fn generator_follows_its_rules() {
    let dir = scratch("rules");
    std::fs::write(
        dir.join("lib.rs"),
        "fn other() {}\n// ANCHOR: f\nfn f() {\n    // ANCHOR: inner\n    1\n    // ANCHOR_END: inner\n}\n// ANCHOR_END: f\n",
    )
    .unwrap();
    let chapter = dir.join("01-x.md");
    std::fs::write(
        &chapter,
        "# Title\n\nSee [next](02-y.md#part) and ![pic](generated/a.svg) and [web](https://e.org).\n\n\
         <img src=\"generated/b.svg\" alt=\"b\"> <img src=\"https://e.org/c.svg\">\n\n\
         ```rust,ignore\n{{#include lib.rs:f}}\n```\n\n\
         ```rust\n# use hidden::Thing;\nlet x = 1;\n```\n\n\
         <!-- book-only -->\n![static](generated/a.svg)\n<!-- /book-only -->\n\
         <!-- notebook-only\nOnly in the notebook.\n-->\n\
         ```text\nplain\n```\n",
    )
    .unwrap();
    let json = chapter_to_notebook(&chapter, &|stem| stem == "02-y").unwrap();
    let c = cells(&json);
    assert_eq!(c[1], ("code".to_string(), SETUP_CELL.to_string()));
    assert_eq!(c[2].0, "markdown");
    assert!(c[2].1.contains("[next](02-y.ipynb#part)"), "{}", c[2].1);
    assert!(c[2].1.contains("![pic](../book/src/generated/a.svg)"));
    assert!(c[2].1.contains("(https://e.org)"));
    assert!(c[2].1.contains("src=\"../book/src/generated/b.svg\""));
    assert!(c[2].1.contains("src=\"https://e.org/c.svg\""));
    // The included library code, without the nested anchor markers, as markdown.
    assert!(
        c[2].1.contains("```rust,ignore\nfn f() {\n    1\n}\n```"),
        "{}",
        c[2].1
    );
    assert_eq!(
        c[3],
        (
            "code".to_string(),
            "use hidden::Thing;\nlet x = 1;".to_string()
        )
    );
    assert_eq!(c[4].0, "markdown");
    assert!(
        !c[4].1.contains("static"),
        "book-only text leaked: {}",
        c[4].1
    );
    assert!(c[4].1.contains("Only in the notebook."));
    assert!(c[4].1.contains("```text\nplain\n```"));
    assert_eq!(c.len(), 5);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn extract_anchor_finds_named_regions_only() {
    let text =
        "a\n// ANCHOR: one\nb\n// ANCHOR_END: one\n// ANCHOR: one_two\nc\n// ANCHOR_END: one_two\n";
    assert_eq!(extract_anchor(text, "one").as_deref(), Some("b"));
    assert_eq!(extract_anchor(text, "one_two").as_deref(), Some("c"));
    assert_eq!(extract_anchor(text, "two"), None);
}

fn error_of(body: &str) -> String {
    let dir = scratch(&format!("err{}", body.len()));
    let chapter = dir.join("01-x.md");
    std::fs::write(&chapter, body).unwrap();
    let e = chapter_to_notebook(&chapter, &|_| false)
        .unwrap_err()
        .to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    e
}

#[test]
fn broken_chapters_are_errors_that_name_the_line() {
    let e = error_of("# T\n\ntext\n```rust\nlet x = 1;\n");
    assert!(
        e.contains("01-x.md:4:") && e.contains("never closed"),
        "{e}"
    );
    let e = error_of("# T\n\n```rust,ignore\n{{#include missing.rs:a}}\n```\n");
    assert!(e.contains("01-x.md:4:") && e.contains("missing.rs"), "{e}");
    let e = error_of("# T\n<!-- book-only -->\n![a](b.svg)\n");
    assert!(e.contains("never closed"), "{e}");
    let e = error_of("x\n<!-- /book-only -->\n");
    assert!(e.contains("01-x.md:2:"), "{e}");
}

#[test]
fn chapters_without_code_get_no_notebook() {
    let dir = scratch("nocode");
    std::fs::write(dir.join("01-a.md"), "# A\n\n```rust\nlet a = 1;\n```\n").unwrap();
    std::fs::write(dir.join("02-b.md"), "# B\n\n*Coming.*\n").unwrap();
    std::fs::write(dir.join("SUMMARY.md"), "# Summary\n").unwrap();
    let out = course::notebook::generate_all(Path::new(&dir)).unwrap();
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["01-a.ipynb"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A recorded code cell: its source, what it printed and the figure it drew.
fn recorded_cell(source: &str, stdout: &str, svg: Option<&str>, count: u32) -> serde_json::Value {
    let mut outputs = vec![serde_json::json!(
        {"output_type": "stream", "name": "stdout", "text": stdout}
    )];
    if let Some(svg) = svg {
        outputs.push(serde_json::json!(
            {"output_type": "execute_result", "execution_count": count, "metadata": {},
             "data": {"image/svg+xml": svg, "text/plain": "Figure"}}
        ));
    }
    serde_json::json!({
        "cell_type": "code", "execution_count": count, "metadata": {},
        "outputs": outputs,
        "source": source,
    })
}

#[test]
fn recorded_outputs_are_kept_shown_in_the_book_and_dropped_when_a_cell_changes() {
    use course::notebook::{generate, output_figure_path, output_path, OUTPUT_FENCE};
    let dir = scratch("outputs");
    let (book, nbs) = (dir.join("src"), dir.join("notebooks"));
    std::fs::create_dir_all(&book).unwrap();
    std::fs::create_dir_all(&nbs).unwrap();
    let chapter = |second: &str, with_output_block: bool| {
        let out = if with_output_block {
            format!(
                "{OUTPUT_FENCE}\n{{{{#include {}}}}}\n```\n\n<!-- book-only -->\n\
                 <img src=\"{}\" alt=\"F\">\n<!-- /book-only -->\n",
                output_path("01-a", 1),
                output_figure_path("01-a", 1)
            )
        } else {
            String::new()
        };
        format!(
            "# A\n\n```rust\nprintln!(\"one\");\n```\n\n{out}\nText.\n\n```rust\n{second}\n```\n"
        )
    };
    std::fs::write(book.join("01-a.md"), chapter("let b = 2;", true)).unwrap();
    // Nothing recorded yet: both blocks are reported, nothing is written for the book.
    let g = generate(&book, Some(&nbs)).unwrap();
    assert_eq!(g.problems.len(), 2, "{:?}", g.problems);
    assert!(g.problems[0].contains("01-a.md:3: block 1 has no recorded output"));
    assert!(g.outputs.is_empty());
    // The output block is left out of the notebook.
    assert!(!g.notebooks[0].1.contains("text,output"));

    // Record: the setup cell, then the two blocks.
    let mut nb: serde_json::Value = serde_json::from_str(&g.notebooks[0].1).unwrap();
    let code: Vec<usize> = (0..nb["cells"].as_array().unwrap().len())
        .filter(|&i| nb["cells"][i]["cell_type"] == "code")
        .collect();
    for (k, &i) in code.iter().enumerate() {
        let source: String = nb["cells"][i]["source"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        let printed = ["", "one\n", ""][k];
        let drawn = [None, Some("<svg>1</svg>"), None][k];
        nb["cells"][i] = recorded_cell(&source, printed, drawn, k as u32 + 1);
    }
    std::fs::write(nbs.join("01-a.ipynb"), nb.to_string()).unwrap();
    let g = generate(&book, Some(&nbs)).unwrap();
    assert!(g.problems.is_empty(), "{:?}", g.problems);
    // Block 1 printed "one" and drew a figure, which the book shows; block 2 did neither.
    assert_eq!(
        g.outputs,
        vec![
            (output_path("01-a", 1), "one\n".to_string()),
            (output_figure_path("01-a", 1), "<svg>1</svg>".to_string())
        ]
    );
    let kept: serde_json::Value = serde_json::from_str(&g.notebooks[0].1).unwrap();
    let counts: Vec<serde_json::Value> = kept["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["cell_type"] == "code")
        .map(|c| c["execution_count"].clone())
        .collect();
    assert_eq!(
        counts,
        vec![
            serde_json::json!(1),
            serde_json::json!(2),
            serde_json::json!(3)
        ]
    );

    // A block that prints needs its output block, and one that draws needs its figure.
    std::fs::write(book.join("01-a.md"), chapter("let b = 2;", false)).unwrap();
    let g = generate(&book, Some(&nbs)).unwrap();
    assert_eq!(g.problems.len(), 2, "{:?}", g.problems);
    assert!(g.problems[0].contains("block 1 prints; put its output under it"));
    assert!(g.problems[1].contains("block 1 draws a figure; show it under the block"));

    // Changing the first block drops every recorded output from there on.
    std::fs::write(
        book.join("01-a.md"),
        chapter("let b = 2;", true).replace("\"one\"", "\"uno\""),
    )
    .unwrap();
    let g = generate(&book, Some(&nbs)).unwrap();
    assert_eq!(g.problems.len(), 2, "{:?}", g.problems);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn output_blocks_must_sit_under_a_runnable_block() {
    use course::notebook::book_blocks;
    let f = Path::new("01-x.md");
    let e = book_blocks(
        "# T\n\nText.\n\n```text,output\n{{#include a.txt}}\n```\n",
        f,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("01-x.md:5:") && e.contains("right under"), "{e}");
    let e = book_blocks(
        "```rust\nlet a = 1;\n```\n\nProse.\n\n```text,output\n{{#include a.txt}}\n```\n",
        f,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("01-x.md:7:"), "{e}");
    let e = book_blocks(
        "```rust\nlet a = 1;\n```\n```text,output\nhand-written\n```\n",
        f,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("exactly one"), "{e}");
    let blocks = book_blocks(
        "```rust,ignore\nx\n```\n```rust\na\n```\n\n```text,output\n{{#include o.txt}}\n```\n```rust\nb\n```\n",
        f,
    )
    .unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!((blocks[0].number, blocks[0].line), (1, 4));
    assert_eq!(blocks[0].output_include.as_deref(), Some("o.txt"));
    assert_eq!(blocks[1].output_include, None);
    // The figure right under a block (or under its output block) is the one it draws; a
    // figure after some prose is not.
    let blocks = book_blocks(
        "```rust\na\n```\n\n```text,output\n{{#include o.txt}}\n```\n\n<!-- book-only -->\n\
         <figure>\n<img src=\"f.svg\" alt=\"x\">\n</figure>\n<!-- /book-only -->\n\
         ```rust\nb\n```\n\nText.\n<!-- book-only -->\n<img src=\"g.svg\">\n<!-- /book-only -->\n",
        f,
    )
    .unwrap();
    assert_eq!(blocks[0].figures, vec!["f.svg".to_string()]);
    assert!(blocks[1].figures.is_empty());
}

#[test]
fn printed_text_is_stdout_and_plain_results_not_figures() {
    use course::notebook::printed_text;
    use serde_json::json;
    let outputs = vec![
        json!({"output_type": "stream", "name": "stdout", "text": ["a\n", "b\n"]}),
        json!({"output_type": "stream", "name": "stderr", "text": "warning\n"}),
        json!({"output_type": "execute_result", "data": {"text/plain": "42"}}),
        json!({"output_type": "display_data", "data": {"image/svg+xml": "<svg/>", "text/plain": "fig"}}),
    ];
    assert_eq!(printed_text(&outputs).as_deref(), Some("a\nb\n42\n"));
    assert_eq!(printed_text(&outputs[3..]), None);
    assert_eq!(printed_text(&[]), None);
}
