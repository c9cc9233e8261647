//! The client's preprocessed material on disk (docs/ARCHITECTURE.md §6).
//!
//! A [`MaterialDir`] is a directory of this user's, mode 0700 (created if
//! missing; a directory others can read or enter, or owned by another user,
//! is refused). Each preprocessed inference writes one file, mode 0600,
//! under a fresh random name (`pi-material-<pid>-<random>.bin`, created
//! exclusively): the activation material goes there as the offline phase
//! makes it, one record per activation layer, and the online phase reads it
//! back record by record, so the client holds one layer, not a network.
//!
//! Records are `len (u64 LE) || payload || tag`, the tag a keyed BLAKE3 MAC
//! over the record's index, its length and its payload under a 32-byte key
//! drawn from the OS for this file and held in memory only. A truncated
//! file, a flipped byte, records swapped or taken from another file all
//! fail with [`StoreFault`] before any of their bytes is used.
//!
//! Consumed once: the handle is a value moved into the online phase, every
//! record is read once in order, and the file is deleted when its handle
//! is dropped (after the online phase, with unused material, or when the
//! session ends). A file left by a crashed process is never read (no handle
//! names it and its key died with the process); opening the directory
//! deletes such leftovers of our naming whose process is gone.
//!
//! The files are not encrypted: their secrecy rests on the directory's
//! permissions, like that of the process's memory on the OS.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{BufReader, BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// File name prefix of material files.
const PREFIX: &str = "pi-material-";
/// File name suffix of material files.
const SUFFIX: &str = ".bin";
/// Bytes of a record's MAC tag.
const TAG: usize = 32;
/// Buffer of the file writer and reader: large sequential IO.
const IO_BUFFER: usize = 4 << 20;
/// Domain of the record MAC.
const MAC_DOMAIN: &[u8] = b"pi-protocol material record v1";

/// What is wrong with stored material or its directory.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreFault {
    /// The file ends inside a record.
    #[error("{}: truncated in record {record}", .file.display())]
    Truncated {
        /// The material file.
        file: PathBuf,
        /// Index of the record cut short.
        record: u64,
    },
    /// A record's length or MAC does not check: the file was corrupted or
    /// tampered with.
    #[error("{}: record {record} is corrupted (its length or MAC does not check)", .file.display())]
    Corrupted {
        /// The material file.
        file: PathBuf,
        /// Index of the bad record.
        record: u64,
    },
    /// The material directory cannot be used.
    #[error("material directory {}: {reason}", .dir.display())]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// Why not.
        reason: String,
    },
}

/// A directory for preprocessed material (see the module docs). Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct MaterialDir {
    path: Arc<PathBuf>,
}

impl MaterialDir {
    /// Opens `path` (created with mode 0700 if missing), checks that only
    /// this user can use it, and deletes leftover material files of
    /// processes that are gone.
    ///
    /// # Errors
    /// [`StoreFault::Directory`] if it is not a directory, is owned by
    /// another user, or grants any permission to group or others; IO errors
    /// creating or reading it.
    pub fn open(path: &Path) -> Result<Self> {
        let fault = |reason: String| {
            Error::Store(StoreFault::Directory {
                dir: path.to_path_buf(),
                reason,
            })
        };
        if !path.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(|e| fault(format!("cannot create it: {e}")))?;
        }
        let meta = std::fs::metadata(path).map_err(|e| fault(e.to_string()))?;
        if !meta.is_dir() {
            return Err(fault("not a directory".into()));
        }
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(fault(format!(
                "owned by uid {}, not by this user (uid {me})",
                meta.uid()
            )));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(fault(format!(
                "has mode {mode:04o}; it must be 0700 (no access for group or others)"
            )));
        }
        let dir = Self {
            path: Arc::new(path.to_path_buf()),
        };
        dir.remove_stale()?;
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Material files in the directory (of any process), for tests and
    /// diagnostics.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&*self.path)? {
            let entry = entry?;
            if parse_name(&entry.file_name().to_string_lossy()).is_some() {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes material files whose process no longer runs (Linux: no
    /// `/proc/<pid>`; elsewhere nothing is deleted). They would never be
    /// read anyway: their keys died with their process.
    fn remove_stale(&self) -> Result<()> {
        if !Path::new("/proc/self").exists() {
            return Ok(());
        }
        for entry in std::fs::read_dir(&*self.path)? {
            let entry = entry?;
            let Some(pid) = parse_name(&entry.file_name().to_string_lossy()) else {
                continue;
            };
            if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
                match std::fs::remove_file(entry.path()) {
                    Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// A new material file, mode 0600, under a fresh random name, with a
    /// fresh MAC key from the OS.
    pub(crate) fn create(&self) -> Result<MaterialWriter> {
        let mut rng = ChaCha20Rng::from_os_rng();
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *key);
        let name = format!(
            "{PREFIX}{}-{:016x}{:016x}{SUFFIX}",
            std::process::id(),
            rng.next_u64(),
            rng.next_u64()
        );
        let path = self.path.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(MaterialWriter {
            out: BufWriter::with_capacity(IO_BUFFER, file),
            guard: FileGuard(path),
            key,
            records: 0,
        })
    }
}

/// The pid in a material file name, if it is one.
fn parse_name(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (pid, random) = rest.split_once('-')?;
    (random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| pid.parse().ok())
        .flatten()
}

/// Deletes its file when dropped.
#[derive(Debug)]
struct FileGuard(PathBuf);

impl Drop for FileGuard {
    fn drop(&mut self) {
        // Best effort: a file that cannot be deleted is still never read
        // again (its key dies with this handle).
        let _ = std::fs::remove_file(&self.0);
    }
}

fn mac(key: &[u8; 32], record: u64, len: u64) -> blake3::Hasher {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(MAC_DOMAIN);
    h.update(&record.to_le_bytes());
    h.update(&len.to_le_bytes());
    h
}

/// Bytes of u64s converted per step (no allocation per element).
const WORDS: usize = 8192;

/// Writes the records of one material file.
pub(crate) struct MaterialWriter {
    out: BufWriter<File>,
    guard: FileGuard,
    key: Zeroizing<[u8; 32]>,
    records: u64,
}

impl std::fmt::Debug for MaterialWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaterialWriter")
            .field("file", &self.guard.0)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl MaterialWriter {
    /// Starts the next record, of exactly `len` payload bytes.
    pub(crate) fn record(&mut self, len: u64) -> Result<RecordOut<'_>> {
        self.out.write_all(&len.to_le_bytes())?;
        let mac = mac(&self.key, self.records, len);
        Ok(RecordOut {
            w: self,
            mac,
            left: len,
        })
    }

    /// Flushes the file and turns it into its reader, at the first record.
    pub(crate) fn into_reader(self) -> Result<MaterialReader> {
        let Self {
            out,
            guard,
            key,
            records,
        } = self;
        let mut file = out.into_inner().map_err(|e| Error::Io(e.into_error()))?;
        file.seek(SeekFrom::Start(0))?;
        Ok(MaterialReader {
            inp: BufReader::with_capacity(IO_BUFFER, file),
            guard,
            key,
            records,
            next: 0,
        })
    }

    /// The file's path.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.guard.0
    }
}

/// One record being written.
pub(crate) struct RecordOut<'a> {
    w: &'a mut MaterialWriter,
    mac: blake3::Hasher,
    left: u64,
}

impl RecordOut<'_> {
    /// Appends payload bytes.
    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.left = self
            .left
            .checked_sub(bytes.len() as u64)
            .ok_or(Error::Internal(
                "a material record is longer than announced",
            ))?;
        self.mac.update(bytes);
        self.w.out.write_all(bytes)?;
        Ok(())
    }

    /// Appends u64s, little-endian.
    pub(crate) fn put_u64s(&mut self, words: &[u64]) -> Result<()> {
        let mut buf = Zeroizing::new(vec![0u8; 8 * WORDS.min(words.len())]);
        for chunk in words.chunks(WORDS) {
            for (o, w) in buf.chunks_exact_mut(8).zip(chunk) {
                o.copy_from_slice(&w.to_le_bytes());
            }
            self.put(&buf[..8 * chunk.len()])?;
        }
        Ok(())
    }

    /// Ends the record with its MAC tag.
    pub(crate) fn finish(self) -> Result<()> {
        if self.left != 0 {
            return Err(Error::Internal(
                "a material record is shorter than announced",
            ));
        }
        self.w.out.write_all(self.mac.finalize().as_bytes())?;
        self.w.records += 1;
        Ok(())
    }
}

/// Reads the records of one material file back, each once, in order; the
/// file is deleted when the reader is dropped.
pub(crate) struct MaterialReader {
    inp: BufReader<File>,
    guard: FileGuard,
    key: Zeroizing<[u8; 32]>,
    records: u64,
    next: u64,
}

impl std::fmt::Debug for MaterialReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaterialReader")
            .field("file", &self.guard.0)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl MaterialReader {
    /// Starts reading the next record, which must hold exactly `len`
    /// payload bytes. Its bytes may be used only after [`RecordIn::finish`].
    pub(crate) fn record(&mut self, len: u64) -> Result<RecordIn<'_>> {
        if self.next >= self.records {
            return Err(Error::Internal("no material record is left"));
        }
        let record = self.next;
        let mut header = [0u8; 8];
        self.read(&mut header, record)?;
        if u64::from_le_bytes(header) != len {
            return Err(self.corrupted(record));
        }
        let mac = mac(&self.key, record, len);
        Ok(RecordIn {
            r: self,
            mac,
            left: len,
            record,
        })
    }

    /// Hints the OS to read ahead `bytes` from the current position.
    pub(crate) fn will_need(&mut self, bytes: u64) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Ok(pos) = self.inp.stream_position() {
            let _ = rustix::fs::fadvise(
                self.inp.get_ref(),
                pos,
                std::num::NonZeroU64::new(bytes),
                rustix::fs::Advice::WillNeed,
            );
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = bytes;
    }

    fn read(&mut self, buf: &mut [u8], record: u64) -> Result<()> {
        self.inp.read_exact(buf).map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                Error::Store(StoreFault::Truncated {
                    file: self.guard.0.clone(),
                    record,
                })
            } else {
                Error::Io(e)
            }
        })
    }

    fn corrupted(&self, record: u64) -> Error {
        Error::Store(StoreFault::Corrupted {
            file: self.guard.0.clone(),
            record,
        })
    }

    /// Records not read yet.
    pub(crate) fn remaining(&self) -> u64 {
        self.records - self.next
    }
}

/// One record being read.
pub(crate) struct RecordIn<'a> {
    r: &'a mut MaterialReader,
    mac: blake3::Hasher,
    left: u64,
    record: u64,
}

impl RecordIn<'_> {
    /// Reads payload bytes into `buf`.
    pub(crate) fn get(&mut self, buf: &mut [u8]) -> Result<()> {
        self.left = self
            .left
            .checked_sub(buf.len() as u64)
            .ok_or(Error::Internal("reading past a material record"))?;
        self.r.read(buf, self.record)?;
        if buf.len() >= 1 << 16 {
            self.mac.update_rayon(buf);
        } else {
            self.mac.update(buf);
        }
        Ok(())
    }

    /// Reads u64s, little-endian, into `words`.
    pub(crate) fn get_u64s(&mut self, words: &mut [u64]) -> Result<()> {
        let mut buf = Zeroizing::new(vec![0u8; 8 * WORDS.min(words.len())]);
        for chunk in words.chunks_mut(WORDS) {
            let b = &mut buf[..8 * chunk.len()];
            self.get(b)?;
            for (w, i) in chunk.iter_mut().zip(b.chunks_exact(8)) {
                let mut a = [0u8; 8];
                a.copy_from_slice(i);
                *w = u64::from_le_bytes(a);
            }
        }
        Ok(())
    }

    /// The error for a record whose (authenticated) content contradicts
    /// what the plan says it holds.
    pub(crate) fn fault(&self) -> Error {
        self.r.corrupted(self.record)
    }

    /// Checks the record's MAC tag; only then may its bytes be used.
    pub(crate) fn finish(self) -> Result<()> {
        if self.left != 0 {
            return Err(Error::Internal("a material record was not read whole"));
        }
        let mut tag = [0u8; TAG];
        self.r.read(&mut tag, self.record)?;
        let want = self.mac.finalize();
        if !bool::from(want.as_bytes().ct_eq(&tag)) {
            return Err(self.r.corrupted(self.record));
        }
        self.r.next += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
