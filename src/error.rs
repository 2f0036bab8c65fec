//! The library's one error type. Every message names the place: a file and line, a field, a
//! cell of the house.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong: bad user input (a map, a setting, a file), a device that
/// cannot be used, training that diverged, a failed tensor computation, a failed read or write.
#[derive(Debug)]
pub enum Error {
    /// A house map could not be parsed.
    Map(gridworld::MapError),
    /// An environment setting is out of range.
    Config(gridworld::ConfigError),
    /// An exact computation on the MDP was impossible.
    Mdp(gridworld::MdpError),
    /// A value given by the user (a flag, a config field, a file's content) is not acceptable.
    Invalid { what: String, why: String },
    /// A device (a GPU) cannot be used: no driver, no device, or a build without support.
    Device { device: String, why: String },
    /// Training diverged: a loss or a gradient became NaN or infinite at `step`.
    Diverged { step: usize, why: String },
    /// A tensor operation failed (out of memory on a GPU, a shape the code did not expect)
    /// while `doing` something.
    Tensor {
        doing: &'static str,
        source: candle_core::Error,
    },
    /// A file could not be read or written.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A source file is malformed: a book chapter that cannot become a notebook, or a
    /// broken exercise marker in the library.
    Book {
        file: PathBuf,
        line: usize,
        why: String,
    },
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The same error, its key placed under `section` (`data.check_rate` becomes
    /// `pretrain.data.check_rate`); other errors are returned as they are.
    pub fn under(self, section: &str) -> Error {
        match self {
            Error::Invalid { what, why } => Error::Invalid {
                what: format!("{section}.{what}"),
                why,
            },
            e => e,
        }
    }

    /// A bad value for `what`.
    pub fn invalid(what: impl Into<String>, why: impl Into<String>) -> Error {
        Error::Invalid {
            what: what.into(),
            why: why.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Map(e) => write!(f, "{e}"),
            Error::Config(e) => write!(f, "{e}"),
            Error::Mdp(e) => write!(f, "{e}"),
            Error::Invalid { what, why } => write!(f, "invalid {what}: {why}"),
            Error::Device { device, why } => write!(f, "device {device}: {why}"),
            Error::Diverged { step, why } => write!(f, "training diverged at step {step}: {why}"),
            Error::Tensor { doing, source } => write!(f, "{doing} failed: {source}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Book { file, line, why } => write!(f, "{}:{line}: {why}", file.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Map(e) => Some(e),
            Error::Config(e) => Some(e),
            Error::Mdp(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            Error::Tensor { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<gridworld::MapError> for Error {
    fn from(e: gridworld::MapError) -> Self {
        Error::Map(e)
    }
}

impl From<gridworld::ConfigError> for Error {
    fn from(e: gridworld::ConfigError) -> Self {
        Error::Config(e)
    }
}

impl From<gridworld::MdpError> for Error {
    fn from(e: gridworld::MdpError) -> Self {
        Error::Mdp(e)
    }
}

impl From<candle_core::Error> for Error {
    fn from(source: candle_core::Error) -> Self {
        Error::Tensor {
            doing: "a tensor computation",
            source,
        }
    }
}

/// Names what a tensor computation was doing when it failed:
/// `loss.backward().doing("the backward pass of the GRPO loss")?`.
pub trait Doing<T> {
    fn doing(self, what: &'static str) -> Result<T>;
}

impl<T> Doing<T> for candle_core::Result<T> {
    fn doing(self, what: &'static str) -> Result<T> {
        self.map_err(|source| Error::Tensor {
            doing: what,
            source,
        })
    }
}
