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
//! Records are `len (u64 LE) || chunk || chunk || ...`: the payload cut in
//! chunks of [`CHUNK`] bytes (the last one shorter, at least one chunk),
//! each sealed with AES-128-GCM and followed by its 16-byte tag. The key is
//! drawn from the OS for this file and held in memory only; the nonce is the
//! record's index and the chunk's (unique within the file); the additional
//! data is a domain and the record's length. A truncated file, a flipped
//! byte, chunks or records swapped or taken from another file all fail with
//! [`StoreFault`] before any of their bytes is used: every chunk is opened
//! (authenticated) before its bytes are handed out.
//!
//! Consumed once: the handle is a value moved into the online phase, every
//! record is read once in order, and the file is deleted when its handle
//! is dropped (after the online phase, with unused material, or when the
//! session ends). A file left by a crashed process is never read (no handle
//! names it and its key died with the process); opening the directory
//! deletes such leftovers of our naming whose process is gone.
//!
//! The files are encrypted (AES-GCM runs at several GB/s with AES-NI, three
//! times the speed of the keyed BLAKE3 MAC it replaced), so their secrecy
//! does not rest on the directory's permissions alone; those still keep
//! other users from deleting or filling them.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// File name prefix of material files.
const PREFIX: &str = "pi-material-";
/// File name suffix of material files.
const SUFFIX: &str = ".bin";
/// Plaintext bytes per sealed chunk of a record (the last one may be
/// shorter).
pub(crate) const CHUNK: usize = 1 << 20;
/// Bytes of a chunk's AEAD tag.
const TAG: usize = 16;
/// Domain of the chunks' additional data.
const AAD_DOMAIN: &[u8] = b"pi-protocol material record v2";

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
        let mut raw = Zeroizing::new([0u8; 16]);
        rng.fill_bytes(&mut *raw);
        let key = UnboundKey::new(&AES_128_GCM, &*raw)
            .map(LessSafeKey::new)
            .map_err(|_| Error::Internal("AES-128-GCM refused a 16-byte key"))?;
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
            out: file,
            guard: FileGuard(path),
            key,
            records: 0,
            chunk: Zeroizing::new(Vec::with_capacity(CHUNK + TAG)),
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

/// The chunks of a record of `len` payload bytes: at least one, so that
/// even an empty record is authenticated.
fn chunks(len: u64) -> u64 {
    len.div_ceil(CHUNK as u64).max(1)
}

/// Payload bytes of chunk `i` of a record of `len` bytes.
fn chunk_len(len: u64, i: u64) -> usize {
    // At most CHUNK, so the cast is lossless.
    len.saturating_sub(i * CHUNK as u64).min(CHUNK as u64) as usize
}

/// The nonce of chunk `chunk` of record `record`: unique within a file,
/// whose key is used for no other file.
fn nonce(record: u64, chunk: u64) -> Result<Nonce> {
    let chunk = u32::try_from(chunk).map_err(|_| Error::Internal("material record too long"))?;
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&record.to_le_bytes());
    n[8..].copy_from_slice(&chunk.to_le_bytes());
    Ok(Nonce::assume_unique_for_key(n))
}

/// The additional data of every chunk of a record of `len` bytes.
fn aad(len: u64) -> [u8; AAD_DOMAIN.len() + 8] {
    let mut a = [0u8; AAD_DOMAIN.len() + 8];
    a[..AAD_DOMAIN.len()].copy_from_slice(AAD_DOMAIN);
    a[AAD_DOMAIN.len()..].copy_from_slice(&len.to_le_bytes());
    a
}

/// Bytes of u64s converted per step (no allocation per element).
const WORDS: usize = 8192;

/// Writes the records of one material file.
pub(crate) struct MaterialWriter {
    out: File,
    guard: FileGuard,
    key: LessSafeKey,
    records: u64,
    /// The chunk being filled, sealed in place when full.
    chunk: Zeroizing<Vec<u8>>,
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
        self.chunk.clear();
        Ok(RecordOut {
            w: self,
            len,
            left: len,
            sealed: 0,
        })
    }

    /// Flushes the file and turns it into its reader, at the first record.
    pub(crate) fn into_reader(self) -> Result<MaterialReader> {
        let Self {
            mut out,
            guard,
            key,
            records,
            ..
        } = self;
        out.flush()?;
        out.seek(SeekFrom::Start(0))?;
        Ok(MaterialReader {
            inp: out,
            guard,
            key,
            records,
            next: 0,
            chunk: Zeroizing::new(Vec::new()),
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
    len: u64,
    left: u64,
    /// Chunks sealed and written.
    sealed: u64,
}

impl RecordOut<'_> {
    /// Appends payload bytes.
    pub(crate) fn put(&mut self, mut bytes: &[u8]) -> Result<()> {
        self.left = self
            .left
            .checked_sub(bytes.len() as u64)
            .ok_or(Error::Internal(
                "a material record is longer than announced",
            ))?;
        while !bytes.is_empty() {
            let take = (CHUNK - self.w.chunk.len()).min(bytes.len());
            self.w.chunk.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.w.chunk.len() == CHUNK {
                self.seal()?;
            }
        }
        Ok(())
    }

    /// Seals the chunk in the buffer and writes it with its tag.
    fn seal(&mut self) -> Result<()> {
        let w = &mut *self.w;
        let n = nonce(w.records, self.sealed)?;
        let tag = w
            .key
            .seal_in_place_separate_tag(n, Aad::from(aad(self.len)), &mut w.chunk)
            .map_err(|_| Error::Internal("AES-GCM refused to seal a material chunk"))?;
        w.chunk.extend_from_slice(tag.as_ref());
        w.out.write_all(&w.chunk)?;
        w.chunk.clear();
        self.sealed += 1;
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

    /// Ends the record: its last chunk is sealed and written.
    pub(crate) fn finish(mut self) -> Result<()> {
        if self.left != 0 {
            return Err(Error::Internal(
                "a material record is shorter than announced",
            ));
        }
        if !self.w.chunk.is_empty() || self.sealed == 0 {
            self.seal()?;
        }
        if self.sealed != chunks(self.len) {
            return Err(Error::Internal("a material record was cut wrongly"));
        }
        self.w.records += 1;
        Ok(())
    }
}

/// Reads the records of one material file back, each once, in order; the
/// file is deleted when the reader is dropped.
pub(crate) struct MaterialReader {
    inp: File,
    guard: FileGuard,
    key: LessSafeKey,
    records: u64,
    next: u64,
    /// An opened chunk whose bytes are handed out in pieces.
    chunk: Zeroizing<Vec<u8>>,
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
    /// payload bytes. Each chunk is authenticated before its bytes are
    /// handed out; [`RecordIn::finish`] checks that the record was whole.
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
        self.chunk.clear();
        Ok(RecordIn {
            r: self,
            len,
            left: len,
            record,
            opened: 0,
            pos: 0,
        })
    }

    /// Hints the OS to read ahead `bytes` from the current position.
    pub(crate) fn will_need(&mut self, bytes: u64) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Ok(pos) = self.inp.stream_position() {
            let _ = rustix::fs::fadvise(
                &self.inp,
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

    /// Reads chunk `chunk` of record `record` (`len` bytes) into `buf`,
    /// whose length is the chunk's, and opens it in place.
    fn open_chunk(&mut self, record: u64, len: u64, chunk: u64, buf: &mut [u8]) -> Result<()> {
        let mut tag = [0u8; TAG];
        self.read(buf, record)?;
        self.read(&mut tag, record)?;
        self.key
            .open_in_place_separate_tag(
                nonce(record, chunk)?,
                Aad::from(aad(len)),
                Tag::from(tag),
                buf,
                0..,
            )
            .map_err(|_| self.corrupted(record))?;
        Ok(())
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
    len: u64,
    /// Payload bytes not handed out yet.
    left: u64,
    record: u64,
    /// Chunks opened so far.
    opened: u64,
    /// Bytes of the reader's buffered chunk handed out so far.
    pos: usize,
}

impl RecordIn<'_> {
    /// Reads payload bytes into `buf`. Whole chunks are read and opened in
    /// `buf` itself; a chunk that straddles the end of `buf` goes through
    /// the reader's buffer.
    pub(crate) fn get(&mut self, mut buf: &mut [u8]) -> Result<()> {
        self.left = self
            .left
            .checked_sub(buf.len() as u64)
            .ok_or(Error::Internal("reading past a material record"))?;
        while !buf.is_empty() {
            let have = self.r.chunk.len() - self.pos;
            if have > 0 {
                let n = have.min(buf.len());
                let (head, rest) = std::mem::take(&mut buf).split_at_mut(n);
                head.copy_from_slice(&self.r.chunk[self.pos..self.pos + n]);
                self.pos += n;
                buf = rest;
                continue;
            }
            let c = chunk_len(self.len, self.opened);
            let (record, len, chunk) = (self.record, self.len, self.opened);
            if buf.len() >= c {
                let (head, rest) = std::mem::take(&mut buf).split_at_mut(c);
                self.r.open_chunk(record, len, chunk, head)?;
                buf = rest;
            } else {
                let mut tmp = std::mem::take(&mut self.r.chunk);
                tmp.resize(c, 0);
                let opened = self.r.open_chunk(record, len, chunk, &mut tmp);
                self.r.chunk = tmp;
                opened?;
                self.pos = 0;
            }
            self.opened += 1;
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

    /// Ends the record: every byte was read and every chunk opened (the
    /// one chunk of an empty record is opened here).
    pub(crate) fn finish(mut self) -> Result<()> {
        if self.left != 0 {
            return Err(Error::Internal("a material record was not read whole"));
        }
        if self.len == 0 && self.opened == 0 {
            let (record, len) = (self.record, self.len);
            self.r.open_chunk(record, len, 0, &mut [])?;
            self.opened = 1;
        }
        if self.opened != chunks(self.len) {
            return Err(Error::Internal("a material record was not read whole"));
        }
        self.r.chunk.clear();
        self.r.next += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
