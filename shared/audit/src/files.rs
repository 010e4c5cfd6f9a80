//! The files of a trail: names of sidecars and rotated files, and reading a file's first
//! and last line without reading all of it.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{io_err, AuditError};

/// `<file><suffix>`, e.g. `audit.jsonl.key`.
pub(crate) fn sidecar(file: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = file.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `<file>.<n, 6 digits>`.
pub(crate) fn rotated_name(file: &Path, n: u64) -> PathBuf {
    sidecar(file, &format!(".{n:06}"))
}

/// Rotated files of `file`, oldest first.
pub(crate) fn rotated_files(file: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let Some(name) = file.file_name() else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let fname = entry.file_name();
        let Some(fname) = fname.to_str() else {
            continue;
        };
        let Some(suffix) = fname.strip_prefix(&prefix) else {
            continue;
        };
        if suffix.len() >= 6 && suffix.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = suffix.parse::<u64>() {
                out.push((n, file.with_file_name(fname)));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The last line of a file (without newline) and whether it was newline-terminated;
/// `None` for a missing or empty file. Reads backwards, so big files cost little.
pub(crate) fn read_last_line(path: &Path) -> io::Result<Option<(Vec<u8>, bool)>> {
    const CHUNK: u64 = 64 * 1024;
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    let terminated = last[0] == b'\n';
    let end = if terminated { len - 1 } else { len };
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut pos = end;
    while pos > 0 {
        let start = pos.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; usize::try_from(pos - start).unwrap_or(0)];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            chunks.push(chunk.split_off(i + 1));
            break;
        }
        chunks.push(chunk);
        pos = start;
    }
    let line: Vec<u8> = chunks.into_iter().rev().flatten().collect();
    Ok(Some((line, terminated)))
}

pub(crate) fn open_append(path: &Path) -> Result<File, AuditError> {
    let mut opts = OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o640);
    }
    opts.open(path).map_err(io_err("open", path))
}

/// Whether `path` no longer names the file `open` (removed, or replaced by another file, as
/// an outside log rotation does); `None` when it still does or when that cannot be told.
pub(crate) fn replaced(path: &Path, open: &File) -> Option<&'static str> {
    use std::os::unix::fs::MetadataExt;
    let open = open.metadata().ok()?;
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && open.nlink() == 0 => Some("was removed"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Some("is no longer at its path (renamed away or unlinked)")
        }
        Err(_) => None,
        Ok(m) if (m.dev(), m.ino()) != (open.dev(), open.ino()) => {
            Some("was replaced by another file (rotated by someone else?)")
        }
        Ok(_) => None,
    }
}

/// The first line of a file (without newline), if it has a complete one.
pub(crate) fn read_first_line(path: &Path) -> io::Result<Option<Vec<u8>>> {
    const MAX_LINE: u64 = 16 * 1024 * 1024;
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    BufReader::new(f.take(MAX_LINE)).read_until(b'\n', &mut buf)?;
    if buf.pop() != Some(b'\n') {
        return Ok(None);
    }
    Ok(Some(buf))
}
