//! Map parsing, located errors, rendering.

use gridworld::{Cell, House, MapErrorKind, MAX_SIDE};

fn err(map: &str) -> gridworld::MapError {
    House::parse(map).expect_err("the map should be rejected")
}

#[test]
fn seed_house_parses_and_has_every_kind_of_cell() {
    let h = House::seed();
    assert_eq!((h.rows(), h.cols()), (7, 9));
    for kind in [
        Cell::Floor,
        Cell::Wall,
        Cell::Broom,
        Cell::Bathtub,
        Cell::Meat,
    ] {
        assert!(h.cells().contains(&kind), "no {kind:?} in the seed house");
    }
    assert_eq!(h.starts(), &[10]);
}

#[test]
fn render_round_trips_and_draws_the_cat() {
    let h = House::seed();
    assert_eq!(House::parse(&h.render(None)).unwrap(), h);
    let drawn = h.render(Some(11));
    let second_row = drawn.lines().nth(1).unwrap();
    assert_eq!(second_row, "#C@.#...#");
}

#[test]
fn blank_lines_around_the_map_and_crlf_are_fine() {
    let h = House::parse("\n\r\nCM\r\n\n").unwrap();
    assert_eq!((h.rows(), h.cols()), (1, 2));
}

#[test]
fn empty_map() {
    let e = err("  \n\n");
    assert_eq!(e.kind, MapErrorKind::Empty);
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn ragged_row_names_line_and_column() {
    let e = err("C..\n.M\n...\n");
    assert_eq!(
        e.kind,
        MapErrorKind::Ragged {
            expected: 3,
            found: 2
        }
    );
    assert_eq!(e.at, Some((2, 3)));
    assert!(e.to_string().starts_with("<map>:2:3:"), "{e}");
}

#[test]
fn unknown_character_names_line_and_column() {
    let e = err("\nC..\n.x.\n..M\n");
    assert_eq!(e.kind, MapErrorKind::UnknownChar('x'));
    assert_eq!(e.at, Some((3, 2)));
    assert!(e.to_string().contains("'x'"), "{e}");
}

#[test]
fn no_start() {
    let e = err("...\n..M\n");
    assert_eq!(e.kind, MapErrorKind::NoStart);
    assert!(e.to_string().contains("'C'"), "{e}");
}

#[test]
fn no_meat() {
    let e = err("C..\n...\n");
    assert_eq!(e.kind, MapErrorKind::NoMeat);
}

#[test]
fn unreachable_meat_names_the_start() {
    let e = err("C.#.\n..#M\n###.\n");
    assert_eq!(e.kind, MapErrorKind::Unreachable);
    assert_eq!(e.at, Some((1, 1)));
    // A second start that can reach the meat does not excuse the first one.
    let e = err("..#C\nC.#M\n");
    assert_eq!(e.at, Some((2, 1)));
}

#[test]
fn too_large() {
    let row = ".".repeat(MAX_SIDE + 1);
    let map = format!("C{}\n{}M\n", &row[1..], &row[1..]);
    let e = err(&map);
    assert_eq!(
        e.kind,
        MapErrorKind::TooLarge {
            rows: 2,
            cols: MAX_SIDE + 1
        }
    );
    let tall = format!("C\n{}M\n", ".\n".repeat(MAX_SIDE));
    assert!(matches!(err(&tall).kind, MapErrorKind::TooLarge { .. }));
    // The limit itself is allowed.
    let ok = format!("C{}\n", ".".repeat(MAX_SIDE - 2) + "M");
    assert!(House::parse(&ok).is_ok());
}

#[test]
fn file_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("gridworld-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.map");
    std::fs::write(&path, "C..\n.?M\n").unwrap();
    let e = House::from_file(&path).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("bad.map:2:2:"), "{msg}");
    let missing = House::from_file(dir.join("missing.map")).unwrap_err();
    assert!(matches!(missing.kind, MapErrorKind::Unreadable(_)));
    assert!(missing.to_string().contains("missing.map"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}
