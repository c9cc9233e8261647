//! Material files: round trips (records of several chunks read in odd
//! pieces, empty records), permissions, truncation, flipped bytes, swapped
//! chunks, records of another file, stale leftovers.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;

use super::*;

fn dir() -> (tempfile::TempDir, MaterialDir) {
    let t = tempfile::tempdir().unwrap();
    let d = MaterialDir::open(&t.path().join("material")).unwrap();
    (t, d)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Records of 8 u64s, then `big` bytes.
fn write(d: &MaterialDir, big: usize) -> MaterialWriter {
    let mut w = d.create().unwrap();
    for r in 0..3u64 {
        let mut out = w.record(64 + big as u64).unwrap();
        out.put_u64s(&[r; 8]).unwrap();
        out.put(&vec![r as u8 ^ 0x5a; big]).unwrap();
        out.finish().unwrap();
    }
    w
}

fn read_all(r: &mut MaterialReader, big: usize) -> Result<Vec<(Vec<u64>, Vec<u8>)>> {
    let mut got = Vec::new();
    while r.remaining() > 0 {
        let mut inp = r.record(64 + big as u64)?;
        let mut w = vec![0u64; 8];
        let mut b = vec![0u8; big];
        inp.get_u64s(&mut w)?;
        inp.get(&mut b)?;
        inp.finish()?;
        got.push((w, b));
    }
    Ok(got)
}

#[test]
fn records_round_trip_and_the_file_goes_with_its_reader() {
    let (_t, d) = dir();
    assert_eq!(mode(d.path()), 0o700);
    let w = write(&d, 100_000);
    let path = w.path().to_path_buf();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(d.files().unwrap(), vec![path.clone()]);
    let mut r = w.into_reader().unwrap();
    let got = read_all(&mut r, 100_000).unwrap();
    for (i, (w, b)) in got.iter().enumerate() {
        assert_eq!(w, &vec![i as u64; 8]);
        assert!(b.iter().all(|&x| x == i as u8 ^ 0x5a));
    }
    // Every record is read once: there is nothing left to read.
    assert!(matches!(r.record(64), Err(Error::Internal(_))));
    drop(r);
    assert!(!path.exists());
    assert!(d.files().unwrap().is_empty());
    // An unread writer deletes its file too.
    let w = write(&d, 10);
    let p = w.path().to_path_buf();
    drop(w);
    assert!(!p.exists());
}

#[test]
fn a_truncated_file_is_a_truncation_fault() {
    let (_t, d) = dir();
    let w = write(&d, 1000);
    let path = w.path().to_path_buf();
    let r = w.into_reader().unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    // Cut inside the last record's tag, then inside the second record's payload.
    for (cut, record) in [(len - 5, 2), (8 + 1064 + 16 + 8 + 500, 1)] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let mut r2 = MaterialReader {
            inp: File::open(&path).unwrap(),
            guard: FileGuard(d.path().join("not-this-one")),
            key: r.key.clone(),
            records: 3,
            next: 0,
            chunk: Zeroizing::new(Vec::new()),
        };
        let e = read_all(&mut r2, 1000).unwrap_err();
        assert!(
            matches!(e, Error::Store(StoreFault::Truncated { record: rr, .. }) if rr == record),
            "{e:?}"
        );
    }
}

#[test]
fn a_flipped_byte_anywhere_is_a_corruption_fault() {
    let (_t, d) = dir();
    let record = 8 + 1064 + 16;
    // Header, mask words, payload, tag of the second record.
    for at in [
        record + 3,
        record + 8 + 9,
        record + 8 + 64 + 700,
        2 * record - 1,
    ] {
        let w = write(&d, 1000);
        let path = w.path().to_path_buf();
        let mut r = w.into_reader().unwrap();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .open(&path)
            .unwrap();
        let mut byte = [0u8];
        f.seek(SeekFrom::Start(at as u64)).unwrap();
        std::io::Read::read_exact(&mut f, &mut byte).unwrap();
        f.seek(SeekFrom::Start(at as u64)).unwrap();
        f.write_all(&[byte[0] ^ 0x10]).unwrap();
        drop(f);
        let e = read_all(&mut r, 1000).unwrap_err();
        assert!(
            matches!(e, Error::Store(StoreFault::Corrupted { record: 1, .. })),
            "byte {at}: {e:?}"
        );
    }
}

#[test]
fn records_of_several_chunks_round_trip_in_odd_pieces() {
    let (_t, d) = dir();
    let mut w = d.create().unwrap();
    let sizes = [0, 1, CHUNK - 1, CHUNK, 2 * CHUNK + CHUNK / 2];
    let data = |len: usize, r: usize| -> Vec<u8> {
        (0..len)
            .map(|i| (i * 31 + r * 7 + i / 4099) as u8)
            .collect()
    };
    for (r, &len) in sizes.iter().enumerate() {
        let mut out = w.record(len as u64).unwrap();
        // Written in pieces that do not line up with the chunks.
        for piece in data(len, r).chunks(CHUNK / 3 + 5) {
            out.put(piece).unwrap();
        }
        out.finish().unwrap();
    }
    let path = w.path().to_path_buf();
    let on_disk = std::fs::metadata(&path).unwrap().len() as usize;
    let chunks_written: usize = sizes.iter().map(|&l| l.div_ceil(CHUNK).max(1)).sum();
    assert_eq!(
        on_disk,
        sizes.iter().sum::<usize>() + 8 * sizes.len() + TAG * chunks_written
    );
    let mut r = w.into_reader().unwrap();
    for (i, &len) in sizes.iter().enumerate() {
        let mut inp = r.record(len as u64).unwrap();
        let mut got = vec![0u8; len];
        // Read in pieces: a small one, one across a chunk boundary, the rest
        // (whole chunks straight into the buffer).
        let a = len.min(7);
        let b = (len - a).min(CHUNK + 3);
        let (p1, rest) = got.split_at_mut(a);
        let (p2, p3) = rest.split_at_mut(b);
        inp.get(p1).unwrap();
        inp.get(p2).unwrap();
        inp.get(p3).unwrap();
        inp.finish().unwrap();
        assert!(got == data(len, i), "record {i} of {len} bytes");
    }
    assert_eq!(r.remaining(), 0);
}

#[test]
fn swapped_chunks_do_not_pass() {
    let (_t, d) = dir();
    let mut w = d.create().unwrap();
    let len = 2 * CHUNK;
    let mut out = w.record(len as u64).unwrap();
    out.put(&vec![1u8; CHUNK]).unwrap();
    out.put(&vec![2u8; CHUNK]).unwrap();
    out.finish().unwrap();
    let path = w.path().to_path_buf();
    let mut r = w.into_reader().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let sealed = CHUNK + TAG;
    let (first, second) = bytes[8..].split_at_mut(sealed);
    first.swap_with_slice(second);
    std::fs::write(&path, &bytes).unwrap();
    let mut inp = r.record(len as u64).unwrap();
    let e = inp.get(&mut vec![0u8; len]).unwrap_err();
    assert!(
        matches!(e, Error::Store(StoreFault::Corrupted { record: 0, .. })),
        "{e:?}"
    );
}

#[test]
fn another_files_records_do_not_pass() {
    // Same content, other key: a leftover (or another session's file) copied
    // over ours fails at its first record.
    let (_t, d) = dir();
    let a = write(&d, 1000);
    let b = write(&d, 1000);
    let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
    let a = a.into_reader().unwrap();
    let mut r = b.into_reader().unwrap();
    std::fs::copy(&pa, &pb).unwrap();
    let e = read_all(&mut r, 1000).unwrap_err();
    assert!(
        matches!(e, Error::Store(StoreFault::Corrupted { record: 0, .. })),
        "{e:?}"
    );
    drop(a);
}

#[test]
fn the_directory_must_be_ours_alone() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("open");
    std::fs::create_dir(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = MaterialDir::open(&p).unwrap_err();
    assert!(
        matches!(e, Error::Store(StoreFault::Directory { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("0755"), "{e}");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    MaterialDir::open(&p).unwrap();
    let f = t.path().join("file");
    std::fs::write(&f, b"x").unwrap();
    let e = MaterialDir::open(&f).unwrap_err();
    assert!(
        matches!(e, Error::Store(StoreFault::Directory { .. })),
        "{e:?}"
    );
}

#[test]
fn stale_files_of_dead_processes_are_removed_and_live_ones_kept() {
    let (_t, d) = dir();
    let name = |pid: u64| d.path().join(format!("{PREFIX}{pid}-{:032x}{SUFFIX}", 7));
    // No process has this pid (above Linux's largest pid_max).
    let dead = name(4_294_967_000);
    let ours = name(std::process::id() as u64);
    let other = d.path().join("notes.txt");
    for p in [&dead, &ours, &other] {
        std::fs::write(p, b"leftover").unwrap();
    }
    let live = write(&d, 10);
    MaterialDir::open(d.path()).unwrap();
    assert!(!dead.exists(), "a dead process's file is removed");
    assert!(ours.exists() && other.exists() && live.path().exists());
    // New material never lands on an existing name.
    let w = write(&d, 10);
    assert!(w.path() != ours && w.path() != live.path());
}
