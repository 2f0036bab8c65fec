//! Houses as text maps: parsing with located errors, the seeds' house, ASCII rendering.

use std::collections::VecDeque;
use std::fmt;
use std::io::Read;
use std::path::Path;

/// The largest house we accept, in cells per side.
pub const MAX_SIDE: usize = 64;

/// What a cell of the house is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    /// `.` (and `C`): empty floor.
    Floor,
    /// `#`: the cat cannot enter it.
    Wall,
    /// `B`: a broom, mildly unpleasant.
    Broom,
    /// `T`: a bathtub, very unpleasant.
    Bathtub,
    /// `M`: the meat; entering it ends the episode.
    Meat,
}

impl Cell {
    /// The character that stands for this cell in a map (a start cell is drawn as `C`).
    pub fn symbol(self) -> char {
        match self {
            Cell::Floor => '.',
            Cell::Wall => '#',
            Cell::Broom => 'B',
            Cell::Bathtub => 'T',
            Cell::Meat => 'M',
        }
    }

    /// A short English name, used in legends and messages.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Floor => "floor",
            Cell::Wall => "wall",
            Cell::Broom => "broom",
            Cell::Bathtub => "bathtub",
            Cell::Meat => "meat",
        }
    }
}

/// What is wrong with a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapErrorKind {
    /// The map has no rows at all.
    Empty,
    /// A row is longer or shorter than the first one.
    Ragged { expected: usize, found: usize },
    /// A character outside the legend.
    UnknownChar(char),
    /// No `C` anywhere.
    NoStart,
    /// No `M` anywhere.
    NoMeat,
    /// The cat cannot walk from this start to any meat.
    Unreachable,
    /// More rows or columns than [`MAX_SIDE`].
    TooLarge { rows: usize, cols: usize },
    /// The map file could not be read (the operating system's reason).
    Unreadable(String),
}

/// A map error: what is wrong and where (1-based line and column), and in which file if known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapError {
    pub file: Option<String>,
    /// 1-based line and column of the offending place, when there is one.
    pub at: Option<(usize, usize)>,
    pub kind: MapErrorKind,
}

impl MapError {
    fn new(kind: MapErrorKind, at: Option<(usize, usize)>) -> Self {
        MapError {
            file: None,
            at,
            kind,
        }
    }

    /// The same error, attributed to a file.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_deref().unwrap_or("<map>");
        match self.at {
            Some((line, col)) => write!(f, "{file}:{line}:{col}: ")?,
            None => write!(f, "{file}: ")?,
        }
        match &self.kind {
            MapErrorKind::Empty => write!(f, "the map is empty; draw at least one row of cells"),
            MapErrorKind::Ragged { expected, found } => write!(
                f,
                "this row has {found} cells but the first row has {expected}; every row must have the same width"
            ),
            MapErrorKind::UnknownChar(c) => write!(
                f,
                "unknown cell {c:?}; the legend is '.' floor, '#' wall, 'B' broom, 'T' bathtub, 'M' meat, 'C' cat start"
            ),
            MapErrorKind::NoStart => write!(f, "no start cell; mark where the cat may start with 'C'"),
            MapErrorKind::NoMeat => write!(f, "no meat; put at least one 'M' in the house"),
            MapErrorKind::Unreachable => write!(
                f,
                "the cat starting here cannot reach any meat (walls block every path)"
            ),
            MapErrorKind::Unreadable(why) => write!(f, "cannot read the map file: {why}"),
            MapErrorKind::TooLarge { rows, cols } => write!(
                f,
                "the house is {rows}x{cols} cells; at most {MAX_SIDE}x{MAX_SIDE} is allowed"
            ),
        }
    }
}

impl std::error::Error for MapError {}

/// A house: a rectangle of cells and the cells the cat may start from.
///
/// Cells are numbered row-major, `index = row * cols + col`, with row 0 at the top.
#[derive(Clone, Debug, PartialEq)]
pub struct House {
    rows: usize,
    cols: usize,
    cells: Vec<Cell>,
    starts: Vec<usize>,
}

// ANCHOR: seed_house
/// The house of the seeds, as a text map. The cat starts in the top-left corner; the
/// meat is in the bottom-right room. The short way runs through a bathtub; the safe way
/// is longer.
pub const SEED_MAP: &str = "\
#########
#C..#...#
#.#.B.#.#
#.T...T.#
#.#.#.#M#
#...B...#
#########
";
// ANCHOR_END: seed_house

impl House {
    /// The built-in house of the seeds ([`SEED_MAP`]).
    pub fn seed() -> House {
        House::parse(SEED_MAP).expect("the built-in house is valid")
    }

    /// Parses a text map. Trailing whitespace on a line is an error like any other unknown
    /// character, but blank lines before and after the map are ignored.
    pub fn parse(text: &str) -> Result<House, MapError> {
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
            .collect();
        let first = lines.iter().position(|(_, l)| !l.trim().is_empty());
        let last = lines.iter().rposition(|(_, l)| !l.trim().is_empty());
        let (first, last) = match (first, last) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(MapError::new(MapErrorKind::Empty, None)),
        };
        let body = &lines[first..=last];
        let first_line = body[0].0;
        let cols = body[0].1.chars().count();
        let rows = body.len();
        if rows > MAX_SIDE || cols > MAX_SIDE {
            return Err(MapError::new(
                MapErrorKind::TooLarge { rows, cols },
                Some((first_line, 1)),
            ));
        }
        let mut cells = Vec::with_capacity(rows * cols);
        let mut starts = Vec::new();
        for &(line, row) in body {
            let found = row.chars().count();
            if found != cols {
                let col = found.min(cols) + 1;
                return Err(MapError::new(
                    MapErrorKind::Ragged {
                        expected: cols,
                        found,
                    },
                    Some((line, col)),
                ));
            }
            for (c, ch) in row.chars().enumerate() {
                let cell = match ch {
                    '.' => Cell::Floor,
                    '#' => Cell::Wall,
                    'B' => Cell::Broom,
                    'T' => Cell::Bathtub,
                    'M' => Cell::Meat,
                    'C' => {
                        starts.push(cells.len());
                        Cell::Floor
                    }
                    other => {
                        return Err(MapError::new(
                            MapErrorKind::UnknownChar(other),
                            Some((line, c + 1)),
                        ))
                    }
                };
                cells.push(cell);
            }
        }
        let house = House {
            rows,
            cols,
            cells,
            starts,
        };
        let locate = |i: usize| Some((first_line + i / cols, i % cols + 1));
        if house.starts.is_empty() {
            return Err(MapError::new(MapErrorKind::NoStart, None));
        }
        if !house.cells.contains(&Cell::Meat) {
            return Err(MapError::new(MapErrorKind::NoMeat, None));
        }
        let reach = house.reaches_meat();
        if let Some(&s) = house.starts.iter().find(|&&s| !reach[s]) {
            return Err(MapError::new(MapErrorKind::Unreachable, locate(s)));
        }
        Ok(house)
    }

    /// Reads and parses a map file; errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<House, MapError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let unreadable =
            |why: String| MapError::new(MapErrorKind::Unreadable(why), None).in_file(name.clone());
        // A map of MAX_SIDE × MAX_SIDE cells is far smaller than this; a longer file (or
        // /dev/zero) is refused before it fills the memory.
        const MAX_BYTES: u64 = 1 << 20;
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| unreadable(e.to_string()))?;
        if bytes.len() as u64 > MAX_BYTES {
            return Err(unreadable("longer than 1 MiB: not a map".into()));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            unreadable(format!(
                "not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        House::parse(&text).map_err(|e| e.in_file(name))
    }

    /// For every cell, whether some meat can be reached from it by walking (breadth-first
    /// search backwards from the meat through non-wall cells).
    fn reaches_meat(&self) -> Vec<bool> {
        let mut seen = vec![false; self.cells.len()];
        let mut queue: VecDeque<usize> = VecDeque::new();
        for (i, &c) in self.cells.iter().enumerate() {
            if c == Cell::Meat {
                seen[i] = true;
                queue.push_back(i);
            }
        }
        while let Some(i) = queue.pop_front() {
            for j in self.neighbours(i) {
                if !seen[j] && self.cells[j] != Cell::Wall {
                    seen[j] = true;
                    queue.push_back(j);
                }
            }
        }
        seen
    }

    fn neighbours(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let (r, c) = (i / self.cols, i % self.cols);
        let up = (r > 0).then(|| i - self.cols);
        let down = (r + 1 < self.rows).then_some(i + self.cols);
        let left = (c > 0).then(|| i - 1);
        let right = (c + 1 < self.cols).then_some(i + 1);
        [up, down, left, right].into_iter().flatten()
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// All cells, row-major.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// The cell at a (row, column).
    pub fn cell(&self, row: usize, col: usize) -> Cell {
        self.cells[row * self.cols + col]
    }

    /// The cell indices the cat may start from, in map order.
    pub fn starts(&self) -> &[usize] {
        &self.starts
    }

    /// (row, column) of a cell index.
    pub fn pos(&self, index: usize) -> (usize, usize) {
        (index / self.cols, index % self.cols)
    }

    /// Draws the house as text, with the cat as `@` on the cell `cat` if given.
    /// Start cells are drawn as `C` so the output parses back to the same house.
    pub fn render(&self, cat: Option<usize>) -> String {
        let mut out = String::with_capacity((self.cols + 1) * self.rows);
        for r in 0..self.rows {
            for c in 0..self.cols {
                let i = r * self.cols + c;
                let ch = if Some(i) == cat {
                    '@'
                } else if self.starts.contains(&i) {
                    'C'
                } else {
                    self.cells[i].symbol()
                };
                out.push(ch);
            }
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for House {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(None))
    }
}
