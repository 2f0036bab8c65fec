//! The handout machinery: markers, stubs, chapter lists, reading test results, scoring.
//! (That the grading tests really grade is checked by `.ci/grading_check.py`, which builds
//! a handout.)

use std::path::{Path, PathBuf};

use course::handout::{
    check_expectation, exercises, install_grading_tests, parse_chapters, parse_exercises,
    parse_test_list, score_chapter, stub_text, student_notebook, test_verdict, write_handout,
    Report, TestResult, STUDENT_NOTEBOOK_LINE,
};

const SOURCE: &str = "\
/// Doubles.
pub fn double(x: f64) -> f64 {
    // ANCHOR: ex_2_1 (2 points) Return twice x.
    let y = x + x;
    y
    // ANCHOR_END: ex_2_1
}

pub fn triple(x: f64) -> f64 {
    let three = 3.0;
    // ANCHOR: ex_3_1 (1 point) Return \"three\" times {x}.
    three * x
    // ANCHOR_END: ex_3_1
}
";

fn file() -> &'static Path {
    Path::new("src/demo.rs")
}

#[test]
fn markers_are_parsed_with_points_task_and_function() {
    let ex = parse_exercises(SOURCE, file()).unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!((ex[0].id.as_str(), ex[0].points, ex[0].line), ("2.1", 2, 3));
    assert_eq!(ex[0].task, "Return twice x.");
    assert_eq!(ex[0].function, "double");
    assert_eq!((ex[1].chapter, ex[1].number, ex[1].points), (3, 1, 1));
    assert_eq!(ex[1].function, "triple");
}

#[test]
fn stubs_replace_only_the_chosen_chapters_and_keep_the_markers() {
    let stubbed = stub_text(SOURCE, file(), &[2]).unwrap();
    assert!(stubbed.contains("    todo!(\"{}\", \"exercise 2.1: Return twice x.\")\n"));
    assert!(!stubbed.contains("let y = x + x;"));
    assert!(stubbed.contains("// ANCHOR: ex_2_1 (2 points) Return twice x."));
    assert!(stubbed.contains("// ANCHOR_END: ex_2_1"));
    // Chapter 3 untouched.
    assert!(stubbed.contains("    three * x\n"));
    // Quotes and braces in a task are escaped, so the stub still compiles as a literal.
    let both = stub_text(SOURCE, file(), &[2, 3]).unwrap();
    assert!(
        both.contains(r#"todo!("{}", "exercise 3.1: Return \"three\" times {x}.")"#),
        "{both}"
    );
    // No chapter chosen: the text comes back unchanged.
    assert_eq!(stub_text(SOURCE, file(), &[]).unwrap(), SOURCE);
}

#[test]
fn broken_markers_are_errors_that_name_file_and_line() {
    let cases = [
        (
            "fn f() {\n    // ANCHOR: ex_2_1 (1 point) task\n}\n",
            "src/demo.rs:2",
            "never closed",
        ),
        (
            "fn f() {\n    // ANCHOR_END: ex_2_1\n}\n",
            "src/demo.rs:2",
            "never opened",
        ),
        (
            "// ANCHOR: ex_2_1 (1 point) a\n// ANCHOR: ex_2_2 (1 point) b\n",
            "src/demo.rs:2",
            "do not nest",
        ),
        (
            "// ANCHOR: ex_2_1 (1 point) a\n// ANCHOR_END: ex_2_2\n",
            "src/demo.rs:2",
            "is the region that is open",
        ),
        ("// ANCHOR: ex_2_1 task\n", "src/demo.rs:1", "(N points)"),
        ("// ANCHOR: ex_2_1 (2 points)\n", "src/demo.rs:1", "no task"),
        (
            "// ANCHOR: ex_two (1 point) t\n",
            "src/demo.rs:1",
            "ex_<chapter>_<number>",
        ),
    ];
    for (text, place, why) in cases {
        let err = parse_exercises(text, file()).unwrap_err().to_string();
        assert!(err.contains(place) && err.contains(why), "{err}");
    }
    // Ordinary anchors are not exercises.
    assert!(
        parse_exercises("// ANCHOR: gae\n// ANCHOR_END: gae\n", file())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn chapter_lists() {
    assert_eq!(parse_chapters("2-4").unwrap(), vec![2, 3, 4]);
    assert_eq!(parse_chapters("5, 2,2").unwrap(), vec![2, 5]);
    assert_eq!(parse_chapters("all").unwrap(), (1..=10).collect::<Vec<_>>());
    for bad in ["4-2", "0", "11", "x", "", "2-"] {
        let err = parse_chapters(bad).unwrap_err().to_string();
        assert!(err.contains("--chapters"), "{bad}: {err}");
    }
}

#[test]
fn test_results_are_scored_per_exercise() {
    let results: Vec<TestResult> = [
        ("ex_2_1_by_hand", true),
        ("ex_2_1_random", false),
        ("ex_2_2_learns", true),
        ("helper_not_graded", true),
    ]
    .map(|(name, passed)| TestResult {
        name: name.into(),
        passed,
    })
    .into();
    let mut ex = parse_exercises(SOURCE, file()).unwrap();
    ex[1].chapter = 2;
    ex[1].number = 2;
    ex[1].id = "2.2".into();
    let refs: Vec<_> = ex.iter().collect();
    let scores = score_chapter(&refs, Some(&results), "");
    assert_eq!(scores[0].tests.len(), 2);
    assert_eq!(scores[0].earned, 1.0); // 2 points × 1/2
    assert_eq!(scores[1].earned, 1.0); // 1 point × 1/1
    let report = Report {
        dir: PathBuf::from("."),
        earned: 2.0,
        total: 3,
        scores: scores.clone(),
    };
    assert!(report
        .table()
        .contains("| 2.1 | Return twice x. | 1/2 | 1 / 2 |"));
    assert!(report.table().contains("**2 / 3**"));
    assert!(check_expectation(&report, "caught=2.1").is_ok());
    let err = check_expectation(&report, "caught=2.2")
        .unwrap_err()
        .to_string();
    assert!(err.contains("every test of exercise 2.2 passed"), "{err}");
    let err = check_expectation(&report, "pass").unwrap_err().to_string();
    assert!(err.contains("ex_2_1_random failed"), "{err}");
    assert!(check_expectation(&report, "sometimes").is_err());
    // A chapter that did not compile scores nothing, with the reason.
    let none = score_chapter(&refs, None, "did not compile");
    assert!(none
        .iter()
        .all(|s| s.earned == 0.0 && s.note.as_deref() == Some("did not compile")));
}

#[test]
fn student_notebooks_explain_unfinished_exercises() {
    let nb = r#"{"cells": [{"cell_type": "markdown", "source": ["hi"]},
        {"cell_type": "code", "source": [":dep zero-to-r1 = { path = \"..\" }"]}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#;
    let out = student_notebook(nb).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let src = &v["cells"][1]["source"];
    assert_eq!(src[0], ":dep zero-to-r1 = { path = \"..\" }\n");
    assert_eq!(src[1], STUDENT_NOTEBOOK_LINE);
    assert!(student_notebook("{}").is_err());
}

#[test]
fn the_library_marks_the_exercises_the_course_needs() {
    let root = &course::experiments::repository();
    let ids: Vec<String> = exercises(root).unwrap().into_iter().map(|e| e.id).collect();
    for want in [
        "2.1", "2.2", "2.3", "3.1", "4.1", "4.2", "5.1", "5.2", "6.1", "6.2", "7.1", "7.2", "8.1",
        "9.1", "9.2",
    ] {
        assert!(ids.iter().any(|i| i == want), "exercise {want} missing");
    }
    // Every marked exercise has grading tests in its chapter's file.
    for e in exercises(root).unwrap() {
        let tests =
            std::fs::read_to_string(root.join(format!("tests/grade_ch{:02}.rs", e.chapter)))
                .unwrap_or_default();
        assert!(
            tests.contains(&format!("fn {}_", e.anchor())),
            "exercise {} has no grading test",
            e.id
        );
    }
}

#[test]
fn a_handout_never_overwrites_a_folder_with_files_in_it() {
    let root = &course::experiments::repository();
    let dir = std::env::temp_dir().join(format!("z2r1-handout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("precious.txt"), "keep me").unwrap();
    let err = write_handout(root, &[2], &dir, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("precious.txt")).unwrap(),
        "keep me"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_handout_stubs_its_chapters_and_carries_their_notebooks() {
    let root = &course::experiments::repository();
    let dir = std::env::temp_dir().join(format!("z2r1-handout-ok-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let h = write_handout(root, &[4], &dir, false).unwrap();
    assert_eq!(
        h.exercises
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["4.1", "4.2"]
    );
    let adv = std::fs::read_to_string(dir.join("src/advantage.rs")).unwrap();
    assert!(adv.contains("todo!(\"{}\", \"exercise 4.2:"));
    assert!(!adv.contains("exercise 2.2:"), "chapter 2 stays solved");
    assert!(dir.join("tests/grade_ch04.rs").exists());
    assert!(dir.join("gridworld/src/lib.rs").exists());
    // The course crate comes along (the workspace names it), but not the test of the
    // repository's own generated notebooks.
    assert!(dir.join("course/src/lib.rs").exists());
    assert!(!dir.join("course/tests/notebooks.rs").exists());
    assert!(dir.join("HANDOUT.md").exists());
    let nb = std::fs::read_to_string(dir.join("notebooks/04-actor-critic-and-gae.ipynb")).unwrap();
    assert!(nb.contains(STUDENT_NOTEBOOK_LINE));
    assert!(!dir.join("notebooks/05-ppo.ipynb").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn test_lists_and_verdicts_are_read_from_what_libtest_wrote() {
    let list = "ex_2_1_a: test\nex_2_1_b: test\nbench_x: bench\n\n";
    assert_eq!(parse_test_list(list), ["ex_2_1_a", "ex_2_1_b"]);
    let summary = "running 1 test\ntest ex_2_1_a ... ok\n\n\
                   test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 3 filtered out";
    assert_eq!(
        test_verdict("ex_2_1_a", true, "ok ex_2_1_a\n", summary),
        Some(true)
    );
    // The log file is what counts: a failed exit, a failed or missing or foreign log line, or
    // a missing summary each mean the test did not pass.
    assert_eq!(
        test_verdict("ex_2_1_a", false, "ok ex_2_1_a\n", summary),
        Some(false)
    );
    for log in [
        "failed ex_2_1_a\n",
        "",
        "ok ex_2_1_b\n",
        "ok ex_2_1_a\nok ex_2_1_a\n",
    ] {
        assert_eq!(
            test_verdict("ex_2_1_a", true, log, summary),
            Some(false),
            "{log:?}"
        );
    }
    assert_eq!(
        test_verdict("ex_2_1_a", true, "ok ex_2_1_a\n", ""),
        Some(false)
    );
    // An ignored test is left out.
    assert_eq!(
        test_verdict("ex_2_1_a", true, "ignored ex_2_1_a\n", ""),
        None
    );
}

#[test]
fn the_instructors_grading_tests_replace_the_students() {
    let base = std::env::temp_dir().join(format!("z2r1-install-{}", std::process::id()));
    let (from, to) = (base.join("instructor"), base.join("student"));
    let _ = std::fs::remove_dir_all(&base);
    for (dir, file, text) in [
        (&from, "tests/grade_ch02.rs", "real tests"),
        (&from, "tests/common/mod.rs", "real helpers"),
        (&from, "tests/other.rs", "not a grading test"),
        (&to, "tests/grade_ch02.rs", "edited tests"),
        (&to, "tests/common/mod.rs", "edited helpers"),
    ] {
        std::fs::create_dir_all(dir.join(file).parent().unwrap()).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    }
    let files = install_grading_tests(&from, &to, &[2, 3]).unwrap();
    assert_eq!(
        files,
        [
            PathBuf::from("tests/common/mod.rs"),
            PathBuf::from("tests/grade_ch02.rs")
        ]
    );
    let read = |f: &str| std::fs::read_to_string(to.join(f)).unwrap();
    assert_eq!(read("tests/grade_ch02.rs"), "real tests");
    assert_eq!(read("tests/common/mod.rs"), "real helpers");
    assert!(!to.join("tests/other.rs").exists());
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn exercise_subscripts_are_set_as_subscripts_in_the_book() {
    use course::handout::subscripts_as_html as sub;
    assert_eq!(
        sub("G_t = r_{t+1} + γ G_{t+1}"),
        "G<sub>t</sub> = r<sub>t+1</sub> + γ G<sub>t+1</sub>"
    );
    assert_eq!(
        sub("KL(π_θ ‖ π_ref)"),
        "KL(π<sub>θ</sub> ‖ π<sub>ref</sub>)"
    );
    assert_eq!(sub("Â_t"), "Â<sub>t</sub>");
    // Names with underscores and code spans stay as they are; so does a lone underscore.
    assert_eq!(sub("exp(logp − old_logp)"), "exp(logp − old_logp)");
    assert_eq!(sub("`a_t` and x_"), "`a_t` and x_");
    assert_eq!(sub("r_{unclosed"), "r_{unclosed");
}
