//! The cat's house: the house itself, and a policy's values and moves drawn on it.

use gridworld::ndarray::{ArrayView1, ArrayView2};
use gridworld::{Action, Cell, House};
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;

use super::{centred, figure, title, Area, DrawResult, Svg, PAD};
use zero_to_r1::error::{Error, Result};

const CELL: i32 = 56;
/// Room above the grid for the title and the column numbers.
const TOP: i32 = 50;
/// Room left of the grid for the row numbers.
const LEFT: i32 = PAD + 20;

fn cell_colour(cell: Cell) -> RGBColor {
    match cell {
        Cell::Floor => RGBColor(246, 241, 231),
        Cell::Wall => RGBColor(70, 70, 74),
        Cell::Broom => RGBColor(222, 184, 112),
        Cell::Bathtub => RGBColor(120, 176, 214),
        Cell::Meat => RGBColor(192, 57, 43),
    }
}

fn cell_label(cell: Cell) -> &'static str {
    match cell {
        Cell::Broom => "broom",
        Cell::Bathtub => "bath",
        Cell::Meat => "meat",
        Cell::Floor | Cell::Wall => "",
    }
}

/// Top-left pixel of a cell.
fn corner(house: &House, i: usize) -> (i32, i32) {
    let (r, c) = house.pos(i);
    (LEFT + c as i32 * CELL, TOP + r as i32 * CELL)
}

/// Row numbers left of the grid and column numbers above it, as the text names cells: (row,
/// column), counted from 0 at the top left.
fn draw_indices(root: &Area, house: &House) -> DrawResult {
    let grey = RGBColor(110, 104, 96);
    for c in 0..house.cols() as i32 {
        root.draw(&Text::new(
            c.to_string(),
            (LEFT + c * CELL + CELL / 2, TOP - 8),
            centred(13, &grey),
        ))?;
    }
    for r in 0..house.rows() as i32 {
        root.draw(&Text::new(
            r.to_string(),
            (LEFT - 10, TOP + r * CELL + CELL / 2),
            centred(13, &grey),
        ))?;
    }
    Ok(())
}

/// A broom or a bathtub under a heatmap colour: a corner of the cell in the kind's colour.
fn draw_kind_tag(root: &Area, (x, y): (i32, i32), cell: Cell) -> DrawResult {
    let corner = vec![
        (x + 1, y + CELL - 1),
        (x + 19, y + CELL - 1),
        (x + 1, y + CELL - 19),
    ];
    root.draw(&Polygon::new(corner.clone(), cell_colour(cell).filled()))?;
    let mut outline = corner;
    outline.push(outline[0]);
    root.draw(&PathElement::new(
        outline,
        RGBColor(40, 40, 40).stroke_width(1),
    ))?;
    Ok(())
}

fn draw_cell(root: &Area, house: &House, i: usize, fill: RGBColor) -> DrawResult {
    let (x, y) = corner(house, i);
    root.draw(&Rectangle::new(
        [(x, y), (x + CELL, y + CELL)],
        fill.filled(),
    ))?;
    root.draw(&Rectangle::new(
        [(x, y), (x + CELL, y + CELL)],
        RGBColor(200, 196, 188).stroke_width(1),
    ))?;
    Ok(())
}

fn draw_cat(root: &Area, house: &House, i: usize) -> DrawResult {
    let (x, y) = corner(house, i);
    let (cx, cy) = (x + CELL / 2, y + CELL / 2);
    let orange = RGBColor(230, 126, 34);
    // Two ears and a head.
    for side in [-1, 1] {
        root.draw(&Polygon::new(
            vec![
                (cx + side * 15, cy - 4),
                (cx + side * 14, cy - 22),
                (cx + side * 3, cy - 12),
            ],
            orange.filled(),
        ))?;
    }
    root.draw(&Circle::new((cx, cy + 2), 15, orange.filled()))?;
    root.draw(&Text::new("cat", (cx, cy + 3), centred(12, &WHITE)))?;
    Ok(())
}

// ANCHOR: house_figure
/// The house as a picture: each cell coloured by kind, start cells marked, and the cat
/// drawn on `cat` (or on the first start cell if `None`).
pub fn house_figure(house: &House, cat: Option<usize>, caption: &str) -> Result<Svg> {
    let w = (LEFT + PAD + CELL * house.cols() as i32) as u32;
    let h = (TOP + PAD + CELL * house.rows() as i32) as u32;
    figure((w, h), |root| {
        title(root, caption)?;
        draw_indices(root, house)?;
        for (i, &cell) in house.cells().iter().enumerate() {
            draw_cell(root, house, i, cell_colour(cell))?;
            let (x, y) = corner(house, i);
            let colour = if cell == Cell::Meat { WHITE } else { BLACK };
            let label = cell_label(cell);
            if !label.is_empty() {
                root.draw(&Text::new(
                    label,
                    (x + CELL / 2, y + CELL / 2),
                    centred(13, &colour),
                ))?;
            }
            if house.starts().contains(&i) {
                root.draw(&Text::new(
                    "start",
                    (x + CELL / 2, y + CELL - 7),
                    centred(10, &RGBColor(120, 110, 100)),
                ))?;
            }
        }
        draw_cat(root, house, cat.unwrap_or(house.starts()[0]))
    })
}
// ANCHOR_END: house_figure

fn draw_arrow(root: &Area, centre: (i32, i32), action: Action, colour: RGBColor) -> DrawResult {
    let (dr, dc) = action.delta();
    let (dx, dy) = (dc as i32, dr as i32);
    let len = 12;
    let tail = (centre.0 - dx * len, centre.1 - dy * len);
    let tip = (centre.0 + dx * len, centre.1 + dy * len);
    root.draw(&PathElement::new(vec![tail, tip], colour.stroke_width(2)))?;
    // Arrowhead: a small triangle at the tip.
    let (px, py) = (-dy, dx);
    root.draw(&Polygon::new(
        vec![
            (tip.0 + dx * 5, tip.1 + dy * 5),
            (tip.0 + px * 5, tip.1 + py * 5),
            (tip.0 - px * 5, tip.1 - py * 5),
        ],
        colour.filled(),
    ))?;
    Ok(())
}

// ANCHOR: value_figure
/// A value function as a heatmap over the house (walls dark, meat red), with each cell's
/// value written in it and, if a policy is given, an arrow for its most likely action.
pub fn value_figure(
    house: &House,
    values: ArrayView1<f64>,
    policy: Option<ArrayView2<f64>>,
    caption: &str,
) -> Result<Svg> {
    let n = house.cells().len();
    if values.len() != n {
        return Err(Error::invalid(
            "values",
            format!("{} values for a house of {n} cells", values.len()),
        ));
    }
    let live = |i: usize| !matches!(house.cells()[i], Cell::Wall | Cell::Meat);
    let (lo, hi) = (0..n)
        .filter(|&i| live(i))
        .fold((f64::MAX, f64::MIN), |(a, b), i| {
            (a.min(values[i]), b.max(values[i]))
        });
    let bar = 90;
    let w = (LEFT + PAD + CELL * house.cols() as i32 + bar) as u32;
    let h = (TOP + PAD + CELL * house.rows() as i32).max(TOP + 220) as u32;
    figure((w, h), |root| {
        title(root, caption)?;
        draw_indices(root, house)?;
        for i in 0..n {
            let cell = house.cells()[i];
            let (x, y) = corner(house, i);
            if !live(i) {
                draw_cell(root, house, i, cell_colour(cell))?;
                if cell == Cell::Meat {
                    root.draw(&Text::new(
                        "meat",
                        (x + CELL / 2, y + CELL / 2),
                        centred(13, &WHITE),
                    ))?;
                }
                continue;
            }
            let t = if hi > lo {
                (values[i] - lo) / (hi - lo)
            } else {
                1.0
            };
            draw_cell(root, house, i, ViridisRGB::get_color(t as f32))?;
            if matches!(cell, Cell::Broom | Cell::Bathtub) {
                draw_kind_tag(root, (x, y), cell)?;
            }
            let ink = if t < 0.55 { WHITE } else { BLACK };
            let text_y = if policy.is_some() {
                y + 13
            } else {
                y + CELL / 2
            };
            root.draw(&Text::new(
                format!("{:.1}", values[i]),
                (x + CELL / 2, text_y),
                centred(12, &ink),
            ))?;
            if let Some(pi) = policy {
                let row = pi.row(i);
                let best = (0..4).fold(0, |b, a| if row[a] > row[b] { a } else { b });
                draw_arrow(
                    root,
                    (x + CELL / 2, y + CELL / 2 + 9),
                    Action::ALL[best],
                    ink,
                )?;
            }
        }
        // A colour bar on the right, and the key to the corner tags under it.
        let x0 = LEFT + CELL * house.cols() as i32 + 24;
        let (y0, y1) = (TOP + 14, TOP + 134);
        for k in 0..(y1 - y0) {
            let t = 1.0 - k as f32 / (y1 - y0 - 1) as f32;
            root.draw(&Rectangle::new(
                [(x0, y0 + k), (x0 + 16, y0 + k + 1)],
                ViridisRGB::get_color(t).filled(),
            ))?;
        }
        let left = ("sans-serif", 13).into_font().color(&BLACK);
        root.draw(&Text::new(
            format!("{hi:.1}"),
            (x0 + 20, y0 - 4),
            left.clone(),
        ))?;
        root.draw(&Text::new(
            format!("{lo:.1}"),
            (x0 + 20, y1 - 8),
            left.clone(),
        ))?;
        for (k, kind) in [Cell::Broom, Cell::Bathtub].into_iter().enumerate() {
            let y = y1 + 22 + 26 * k as i32;
            draw_kind_tag(root, (x0 - 2, y - CELL + 12), kind)?;
            root.draw(&Text::new(cell_label(kind), (x0 + 22, y - 4), left.clone()))?;
        }
        Ok(())
    })
}
// ANCHOR_END: value_figure
