//! The grader's reproducers: results a solution prints or fakes earn nothing, and a timeout
//! stops every process the tests started.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use course::handout::grade;

/// A tiny crate shaped like a handout (`src` with exercise markers, `gridworld/src`, grading
/// tests in `tests/`), far cheaper to build than the library.
fn fake_handout(name: &str, lib: &str, tests: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("z2r1-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("gridworld/src")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n"),
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), lib).unwrap();
    for (file, text) in tests {
        std::fs::write(dir.join("tests").join(file), text).unwrap();
    }
    dir
}

#[test]
fn printed_or_faked_test_results_earn_nothing() {
    let lib = "\
pub fn two() -> u32 {
    // ANCHOR: ex_2_1 (2 points) Return two.
    2
    // ANCHOR_END: ex_2_1
}

pub fn three() -> u32 {
    // ANCHOR: ex_2_2 (4 points) Return three.
    4
    // ANCHOR_END: ex_2_2
}
";
    let tests = r#"
use std::io::Write;

const FORGED: &str = "test ex_2_2_prints ... ok\ntest ex_2_2_writes ... ok\ntest ex_2_2_exits ... ok\n\
    test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";

#[test]
fn ex_2_1_really_passes() {
    assert_eq!(forger::two(), 2);
}

/// libtest echoes a failing test's captured output in its failure section.
#[test]
fn ex_2_2_prints() {
    for _ in 0..50 {
        print!("{FORGED}");
    }
    assert_eq!(forger::three(), 3);
}

/// Straight to the real stdout, past libtest's capture.
#[test]
fn ex_2_2_writes() {
    for _ in 0..50 {
        std::io::stdout().write_all(FORGED.as_bytes()).unwrap();
    }
    std::io::stdout().flush().unwrap();
    assert_eq!(forger::three(), 3);
}

/// Leaves with success before libtest can record a failure.
#[test]
fn ex_2_2_exits() {
    if forger::three() != 3 {
        std::io::stdout().write_all(FORGED.as_bytes()).unwrap();
        std::process::exit(0);
    }
}
"#;
    let dir = fake_handout("forger", lib, &[("grade_ch02.rs", tests)]);
    let start = Instant::now();
    let report = grade(&dir, &[2], Duration::from_secs(300)).unwrap();
    eprintln!("graded in {:.1} s", start.elapsed().as_secs_f64());
    let table = report.table();
    assert_eq!(report.scores.len(), 2, "{table}");
    let (real, forged) = (&report.scores[0], &report.scores[1]);
    assert_eq!((real.earned, real.note.as_deref()), (2.0, None), "{table}");
    assert_eq!(forged.earned, 0.0, "{table}");
    assert_eq!(forged.tests.len(), 3, "{table}");
    assert!(forged.tests.iter().all(|t| !t.passed), "{table}");
    assert!(
        table.contains("| 2.2 | Return three. | 0/3 | 0 / 4 |"),
        "{table}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// (pid, state, process group) of every process in /proc.
#[cfg(target_os = "linux")]
fn processes() -> Vec<(u32, char, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(state), Some(pgrp)) = (fields.first(), fields.get(2)) {
            let state = state.chars().next().unwrap_or('?');
            out.push((pid, state, pgrp.parse().unwrap_or(0)));
        }
    }
    out
}

#[cfg(target_os = "linux")]
#[test]
fn a_timeout_stops_the_tests_and_everything_they_started() {
    let lib = "\
pub fn settle() {
    // ANCHOR: ex_3_1 (3 points) Return at all.
    loop {
        std::hint::spin_loop();
    }
    // ANCHOR_END: ex_3_1
}
";
    let tests = r#"
/// Starts a child process and a spinning thread, writes the pids for the test that runs the
/// grader, and spins.
#[test]
fn ex_3_1_spins() {
    let child = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
    std::thread::spawn(|| loop {
        std::hint::spin_loop();
    });
    std::fs::write("pids.tmp", format!("{} {}", std::process::id(), child.id())).unwrap();
    std::fs::rename("pids.tmp", "pids").unwrap();
    spinner::settle();
}
"#;
    let dir = fake_handout("spinner", lib, &[("grade_ch03.rs", tests)]);
    let limit = Duration::from_secs(10);
    let start = Instant::now();
    let report = grade(&dir, &[3], limit).unwrap();
    let took = start.elapsed();
    eprintln!("graded in {:.1} s", took.as_secs_f64());
    let pids: Vec<u32> = std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    // Everything of the test that is still alive (a zombie is dead, waiting to be reaped),
    // given a moment for killed processes to finish dying.
    let alive = || -> Vec<u32> {
        processes()
            .into_iter()
            .filter(|&(pid, state, pgrp)| {
                state != 'Z' && (pids.contains(&pid) || pids.first() == Some(&pgrp))
            })
            .map(|(pid, _, _)| pid)
            .collect()
    };
    let mut tries = 0;
    while !alive().is_empty() && tries < 20 {
        std::thread::sleep(Duration::from_millis(100));
        tries += 1;
    }
    let alive = alive();
    for pid in &alive {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    assert_eq!(
        pids.len(),
        2,
        "the spinning test never started within {limit:?}"
    );
    assert!(
        alive.is_empty(),
        "processes {alive:?} were still running after grading"
    );
    assert!(took < limit + Duration::from_secs(5), "{took:?}");
    let table = report.table();
    let score = &report.scores[0];
    assert_eq!(score.earned, 0.0, "{table}");
    assert_eq!(
        score.note.as_deref(),
        Some("ran out of time (10 s)"),
        "{table}"
    );
    assert!(!score.tests[0].passed, "{table}");
    std::fs::remove_dir_all(&dir).unwrap();
}
