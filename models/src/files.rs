//! Reading files from the local user under a size cap that counts the bytes
//! actually read, not the length the file system reports: `/dev/zero`, a FIFO
//! or a file that grows while it is read is refused at the cap instead of
//! filling memory. Used for model files, inputs and weights by every tool
//! (`pi-models`, `pi-server`, `pi-client`, `pi-bench`); also the `.npy` reader.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Reads the whole of `path` if it holds at most `limit` bytes. Reading stops
/// at `limit + 1` bytes whatever the file claims to be, so the memory used is
/// bounded by the cap; a larger file is [`Error::TooLarge`], naming it as `what`
/// (`"weight file"`, `"input"`, ...).
pub fn read_capped(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // A regular file's length is only a hint for the allocation, never trusted.
    let hint = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map_or(0, |m| m.len().min(limit));
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge {
            what,
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// Minimal `.npy` reader for little-endian float32 C-order arrays. Checks the
/// header's claimed shape against the file length before allocating anything.
pub fn read_npy_f32(bytes: &[u8]) -> Result<(Vec<f32>, Vec<usize>), String> {
    use ndarray_npy::ReadNpyExt;
    let header = npy_header(bytes)?;
    let shape = parse_shape(&header).ok_or("cannot read the shape from the .npy header")?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape overflows")?;
    if n.checked_mul(4).is_none_or(|b| b > bytes.len()) {
        return Err(format!(
            "header claims shape {shape:?}, more data than the file holds"
        ));
    }
    let arr = ndarray::ArrayD::<f32>::read_npy(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a float32 C-order .npy array: {e}"))?;
    let shape = arr.shape().to_vec();
    if !arr.is_standard_layout() {
        return Err("fortran-order arrays are not supported".into());
    }
    Ok((arr.into_raw_vec_and_offset().0, shape))
}

fn npy_header(bytes: &[u8]) -> Result<String, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let h = bytes
        .get(start..start.saturating_add(len))
        .ok_or("truncated .npy header")?;
    String::from_utf8(h.to_vec()).map_err(|_| "non-text .npy header".into())
}

fn parse_shape(header: &str) -> Option<Vec<usize>> {
    let i = header.find("'shape'")?;
    let rest = &header[i..];
    let open = rest.find('(')?;
    let close = rest.find(')')?;
    rest.get(open + 1..close)?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect()
}
