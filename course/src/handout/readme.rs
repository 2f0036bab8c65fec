//! The README of a handout: what the student got, what to do, and how it is graded.

use super::{cell, Handout};

pub(super) fn handout_readme(h: &Handout) -> String {
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
        .map(|c| format!("cargo test -p zero-to-r1 --test grade_ch{c:02}"))
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
