//! Files: atomic writes (temporary file + rename), so a crash never leaves half a file.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;

use crate::error::{Doing, Error, Result};

/// Writes `bytes` to `path` atomically: first to a temporary file beside it, then renamed
/// over the target. Parent folders are created.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let name = path.file_name().ok_or_else(|| {
        Error::invalid(
            "output path",
            format!("{} is not a file name", path.display()),
        )
    })?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Reads a text file, naming it in the error.
pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Whether `name` is one of the temporary names this crate writes before a rename
/// (`.NAME.tmpPID`, a file or a checkpoint folder).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp")
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes a file or a folder (with everything in it), if it is there.
pub fn remove_path(path: &Path) -> Result<()> {
    let gone = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    gone.map_err(|e| Error::io(path, e))
}

/// Removes the temporaries that a killed process or a full disk left in the folder `dir`
/// (not in its subfolders); returns how many. A missing folder has none.
pub fn remove_temporaries(dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if !is_temporary(&entry.file_name().to_string_lossy()) {
            continue;
        }
        remove_path(&entry.path())?;
        removed += 1;
    }
    Ok(removed)
}

/// The longest user file (a map, a config) that is read: anything longer is a mistake (or
/// `/dev/zero`), and is refused before it fills the memory.
pub const MAX_USER_FILE: u64 = 4 << 20;

/// Reads a text file written by a person, at most [`MAX_USER_FILE`] bytes, naming it in
/// every error.
pub fn read_user_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_USER_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_USER_FILE {
        return Err(Error::invalid(
            format!("file {}", path.display()),
            format!(
                "longer than {} MiB; is it the right file?",
                MAX_USER_FILE >> 20
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::invalid(
            format!("file {}", path.display()),
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Checks, before any work, that the file `path` can be written later: its folder is created
/// if needed and a temporary file is written there and removed. Nothing at `path` changes.
pub fn check_writable(path: &Path) -> Result<()> {
    let name = path.file_name().ok_or_else(|| {
        Error::invalid(
            "output path",
            format!("{} is not a file name", path.display()),
        )
    })?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let probe = path.with_file_name(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&probe, b"").map_err(|e| Error::io(path, e))?;
    std::fs::remove_file(&probe).map_err(|e| Error::io(&probe, e))
}

/// Writes named tensors to a safetensors file atomically (temporary file, then rename), with
/// the default permissions of a new file.
pub fn write_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None)
        .map_err(|e| {
            Error::invalid(
                format!("checkpoint {}", path.display()),
                format!("cannot write: {e}"),
            )
        })?;
    write_atomic(path, &bytes)
}

/// An error naming the file and the tensor if `t` holds a NaN or an infinity: weights or
/// optimizer moments like that come from a diverged run or a damaged file, and training on
/// from them would only spread the NaN.
pub fn check_finite_tensor(t: &Tensor, path: &Path, name: &str) -> Result<()> {
    let values: Vec<f32> = t
        .to_dtype(candle_core::DType::F32)
        .and_then(|x| x.flatten_all())
        .and_then(|x| x.to_vec1())
        .doing("check_finite_tensor in io")?;
    match values.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::invalid(
            format!("checkpoint {}", path.display()),
            format!("tensor {name} holds {} (at index {i})", values[i]),
        )),
    }
}
