//! Write-ahead log of a collection's mutable segment.
//!
//! Little-endian throughout.
//!
//! ```text
//! file:   | header 24 | frame | frame | ... |
//! header: | magic "SKWL" 4 | version u16 | reserved u16 | wal_id u64 | reserved u32 | crc32c u32 |
//! frame:  | len u32 | payload_crc u32 | header_crc u32 | payload (len bytes) |
//!         header_crc = crc32c(len, payload_crc); payload_crc = crc32c(payload)
//! payload:| seq u64 | op_count u32 | op ... |
//! op:     | 1 u8 | id u64 | vector dim x f32 | value ... (one tagged value per field) |   put
//!         | 2 u8 | id u64 |                                                              delete
//! ```
//!
//! One frame is one committed write batch: the commit point is the `fdatasync` after the frame
//! is appended, so a batch is either whole in the log or absent.
//!
//! Replay rules:
//! - frames are read in order until the end of the file;
//! - the writer appends and syncs one frame at a time, so only the *last* frame can be torn.
//!   A trailing fragment shorter than a frame header, a zero-filled tail, a frame whose
//!   (checksummed) length runs past the end of the file, a bad payload that ends exactly at the
//!   end of the file, or a bad frame header with no valid frame anywhere after it is a **torn
//!   tail**: it is dropped, and the writer truncates the file back to the last whole frame
//!   before appending again;
//! - a bad frame with a valid frame after it is **corruption** of a committed record: an error
//!   naming the offset, never silently skipped;
//! - damage to the last frame's payload cannot be told apart from a torn append and is dropped
//!   like one (the same limit as `SQLite`'s WAL); `skysift verify` reports such a tail.

use std::path::{Path, PathBuf};

use crate::codec::{Dec, Enc, u32_at, u64_at};
use crate::error::{Error, Result};
use crate::io::{Vfs, WriteFile};
use crate::preamble::{Preamble, check_preamble};
use crate::schema::{Record, Schema, Value};

/// Magic bytes at the start of every WAL file.
pub const MAGIC: [u8; 4] = *b"SKWL";
/// v1: first format.
pub const VERSION: u16 = 1;
/// Oldest version this build reads.
pub const OLDEST_SUPPORTED: u16 = 1;
/// Size of the file header.
pub const HEADER_LEN: usize = 24;
const VERSION_OFFSET: usize = MAGIC.len();
const WAL_ID_OFFSET: usize = VERSION_OFFSET + 2 + 2;
const HEADER_CRC_OFFSET: usize = WAL_ID_OFFSET + 8 + 4;
const PREAMBLE: Preamble = Preamble::new(MAGIC, "WAL", HEADER_LEN, HEADER_CRC_OFFSET, (OLDEST_SUPPORTED, VERSION));
/// Size of a frame header.
pub const FRAME_HEADER_LEN: usize = 12;
/// Largest accepted frame payload.
pub const MAX_FRAME: u32 = 1 << 30;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

/// One operation of a write batch, as logged.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert or replace the record with this id.
    Put(Record),
    /// Remove the record with this id.
    Delete(u64),
}

/// One committed batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Commit sequence number (strictly increasing within a collection).
    pub seq: u64,
    /// The operations, applied in order.
    pub ops: Vec<Op>,
}

/// Encodes the file header.
#[must_use]
pub fn encode_header(wal_id: u64) -> Vec<u8> {
    let mut e = Enc::default();
    e.buf.extend_from_slice(&MAGIC);
    e.u16(VERSION);
    e.u16(0);
    e.u64(wal_id);
    e.u32(0);
    let crc = crc32c::crc32c(&e.buf);
    e.u32(crc);
    e.buf
}

/// Hands the payload of `batch` to `f` in pieces (the prefix, then one piece per op), encoded
/// into one reused buffer: the frame is never held in memory whole.
fn payload_pieces(batch: &Batch, mut f: impl FnMut(&[u8])) {
    let mut p = Enc::default();
    p.u64(batch.seq);
    p.u32(batch.ops.len() as u32);
    for op in &batch.ops {
        match op {
            Op::Put(r) => {
                p.u8(OP_PUT);
                p.u64(r.id);
                p.f32s(&r.vector);
                for v in &r.values {
                    Value::encode_opt(v.as_ref(), &mut p);
                }
            }
            Op::Delete(id) => {
                p.u8(OP_DELETE);
                p.u64(*id);
            }
        }
        f(&p.buf);
        p.buf.clear();
    }
    if !p.buf.is_empty() {
        f(&p.buf);
    }
}

/// The frame header of `batch` (payload length, payload checksum, header checksum) and the
/// payload length, from a first pass over the payload.
fn header_of(batch: &Batch) -> ([u8; FRAME_HEADER_LEN], usize) {
    let (mut len, mut crc) = (0usize, 0u32);
    payload_pieces(batch, |b| {
        len += b.len();
        crc = crc32c::crc32c_append(crc, b);
    });
    let mut head = [0u8; FRAME_HEADER_LEN];
    head[..4].copy_from_slice(&(len as u32).to_le_bytes());
    head[4..8].copy_from_slice(&crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&head[..8]);
    head[8..12].copy_from_slice(&header_crc.to_le_bytes());
    (head, len)
}

/// Encodes a batch as one frame.
#[must_use]
pub fn encode_frame(batch: &Batch) -> Vec<u8> {
    let (head, len) = header_of(batch);
    let mut out = Vec::with_capacity(len + FRAME_HEADER_LEN);
    out.extend_from_slice(&head);
    payload_pieces(batch, |b| out.extend_from_slice(b));
    out
}

fn decode_payload(payload: &[u8], schema: &Schema) -> std::result::Result<Batch, String> {
    let mut d = Dec::new(payload);
    let err = |e: crate::codec::DecodeError| format!("{} at payload offset {}", e.reason, e.offset);
    let seq = d.u64().map_err(err)?;
    let n = d.u32().map_err(err)? as usize;
    // Every op takes at least 9 bytes: bound the allocation by what the payload can hold.
    let mut ops = Vec::with_capacity(n.min(d.remaining() / 9));
    for _ in 0..n {
        match d.u8().map_err(err)? {
            OP_PUT => {
                let id = d.u64().map_err(err)?;
                let vector = d.f32s(schema.dim as usize).map_err(err)?;
                let mut values = Vec::with_capacity(schema.fields.len());
                for _ in &schema.fields {
                    values.push(Value::decode_opt(&mut d).map_err(err)?);
                }
                let r = Record { id, vector, values };
                schema.check_record(&r)?;
                ops.push(Op::Put(r));
            }
            OP_DELETE => ops.push(Op::Delete(d.u64().map_err(err)?)),
            other => return Err(format!("unknown op tag {other}")),
        }
    }
    if d.remaining() != 0 {
        return Err(format!("{} trailing bytes after the last op", d.remaining()));
    }
    Ok(Batch { seq, ops })
}

/// What replay found.
#[derive(Debug)]
pub struct Replay {
    /// Whole, verified batches in log order.
    pub batches: Vec<Batch>,
    /// Length of the valid prefix (header and whole frames).
    pub valid_len: u64,
    /// Whether bytes after `valid_len` were dropped as a torn tail.
    pub torn: bool,
}

/// Checks the header of a WAL file and returns its id.
pub fn check_header(file: &Path, bytes: &[u8]) -> Result<u64> {
    check_preamble(bytes, &PREAMBLE).map_err(|e| PREAMBLE.error(file, "WAL header", e))?;
    Ok(u64_at(bytes, WAL_ID_OFFSET).unwrap_or(0))
}

/// A frame header whose checksum holds: `(payload length, payload crc)`.
fn frame_header(rest: &[u8]) -> Option<(u32, u32)> {
    let len = u32_at(rest, 0)?;
    let payload_crc = u32_at(rest, 4)?;
    let header_crc = u32_at(rest, 8)?;
    (crc32c::crc32c(rest.get(..8)?) == header_crc).then_some((len, payload_crc))
}

/// Whether a whole, valid frame starts anywhere in `rest` after its first byte.
fn valid_frame_after(rest: &[u8]) -> bool {
    (1..rest.len()).any(|q| {
        let Some(tail) = rest.get(q..) else { return false };
        let Some((len, crc)) = frame_header(tail) else { return false };
        let end = FRAME_HEADER_LEN + len as usize;
        len <= MAX_FRAME && tail.get(FRAME_HEADER_LEN..end).is_some_and(|p| crc32c::crc32c(p) == crc)
    })
}

/// Replays a whole WAL file held in memory.
pub fn replay(file: &Path, bytes: &[u8], schema: &Schema) -> Result<Replay> {
    check_header(file, bytes)?;
    let total = bytes.len();
    let mut pos = HEADER_LEN;
    let mut batches = Vec::new();
    let mut last_seq = None;
    while pos < total {
        let rest = bytes.get(pos..).unwrap_or(&[]);
        let torn = |batches| Ok(Replay { batches, valid_len: pos as u64, torn: true });
        if rest.len() < FRAME_HEADER_LEN || rest.iter().all(|b| *b == 0) {
            return torn(batches);
        }
        let Some((len, stored)) = frame_header(rest) else {
            if valid_frame_after(rest) {
                return Err(Error::corrupted(
                    file,
                    "WAL frame header",
                    pos as u64,
                    "checksum mismatch before later valid frames",
                ));
            }
            return torn(batches);
        };
        let end = FRAME_HEADER_LEN + len as usize;
        if len > MAX_FRAME || end > rest.len() {
            // A checksummed length that runs past the end: the append was cut short.
            return torn(batches);
        }
        let payload = rest.get(FRAME_HEADER_LEN..end).unwrap_or(&[]);
        let got = crc32c::crc32c(payload);
        if got != stored {
            if end == rest.len() {
                return torn(batches);
            }
            return Err(Error::ChecksumMismatch {
                file: file.into(),
                region: "WAL frame payload".into(),
                offset: pos as u64,
                expected: stored,
                got,
            });
        }
        let batch = decode_payload(payload, schema)
            .map_err(|reason| Error::corrupted(file, "WAL frame", pos as u64, reason))?;
        if last_seq.is_some_and(|s| batch.seq <= s) {
            return Err(Error::corrupted(file, "WAL frame", pos as u64, "sequence numbers go backwards"));
        }
        last_seq = Some(batch.seq);
        batches.push(batch);
        pos += end;
    }
    Ok(Replay { batches, valid_len: pos as u64, torn: false })
}

/// Appends frames to a WAL file; every append is durable when it returns.
pub struct WalWriter {
    file: Box<dyn WriteFile>,
    path: PathBuf,
    len: u64,
}

impl std::fmt::Debug for WalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalWriter").field("path", &self.path).field("len", &self.len).finish_non_exhaustive()
    }
}

impl WalWriter {
    /// Creates a new, empty WAL (header written and synced). The caller syncs the directory.
    pub fn create(vfs: &dyn Vfs, path: &Path, wal_id: u64) -> Result<WalWriter> {
        let mut file = vfs.create(path)?;
        let header = encode_header(wal_id);
        file.write_all(&header)?;
        file.sync()?;
        Ok(WalWriter { file, path: path.to_path_buf(), len: header.len() as u64 })
    }

    /// Opens an existing WAL for appending after `valid_len` bytes, cutting off a torn tail.
    pub fn reopen(vfs: &dyn Vfs, path: &Path, valid_len: u64, file_len: u64) -> Result<WalWriter> {
        if file_len != valid_len {
            vfs.truncate(path, valid_len)?;
        }
        let file = vfs.append(path)?;
        Ok(WalWriter { file, path: path.to_path_buf(), len: valid_len })
    }

    /// Appends one batch and syncs it: the batch is committed when this returns `Ok`.
    ///
    /// The frame is written in pieces of about 1 MiB (a first pass computes its checksum), so a
    /// large batch costs no second copy of its records in memory. A crash between pieces leaves a
    /// torn frame, which recovery drops as it drops any torn tail.
    pub fn append(&mut self, batch: &Batch) -> Result<()> {
        const PIECE: usize = 1 << 20;
        let (head, len) = header_of(batch);
        if u32::try_from(len).is_err() {
            return Err(Error::Invalid(format!(
                "a batch of {len} bytes is over the WAL frame limit of 4 GiB: commit it in parts"
            )));
        }
        let mut buf = Vec::with_capacity(PIECE + 64);
        buf.extend_from_slice(&head);
        let mut failed = None;
        let file = &mut self.file;
        payload_pieces(batch, |b| {
            if failed.is_some() {
                return;
            }
            buf.extend_from_slice(b);
            if buf.len() >= PIECE {
                failed = file.write_all(&buf).err();
                buf.clear();
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        self.file.write_all(&buf)?;
        self.file.sync()?;
        self.len += (len + FRAME_HEADER_LEN) as u64;
        Ok(())
    }

    /// Bytes in the log.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the log holds only its header.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len <= HEADER_LEN as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{FieldDef, FieldType, Metric};

    fn schema() -> Schema {
        Schema::new(2, Metric::InnerProduct, vec![FieldDef { name: "k".into(), ty: FieldType::Keyword }]).unwrap()
    }

    fn rec(id: u64) -> Record {
        let mut values = vec![None; schema().fields.len()];
        values[0] = Some(Value::Keyword(format!("v{id}")));
        Record { id, vector: vec![id as f32, 1.0], values }
    }

    fn log(n: u64) -> (Vec<u8>, Vec<Batch>) {
        let mut bytes = encode_header(7);
        let mut batches = Vec::new();
        for seq in 1..=n {
            let b = Batch { seq, ops: vec![Op::Put(rec(seq)), Op::Delete(seq + 100)] };
            bytes.extend(encode_frame(&b));
            batches.push(b);
        }
        (bytes, batches)
    }

    #[test]
    fn replays_every_frame() {
        let (bytes, batches) = log(3);
        let r = replay(Path::new("w"), &bytes, &schema()).unwrap();
        assert_eq!(r.batches, batches);
        assert!(!r.torn);
        assert_eq!(r.valid_len, bytes.len() as u64);
    }

    #[test]
    fn every_truncation_keeps_the_whole_frames_before_it() {
        let (bytes, batches) = log(3);
        let mut ends = vec![HEADER_LEN];
        for b in &batches {
            ends.push(ends.last().unwrap() + encode_frame(b).len());
        }
        for cut in HEADER_LEN..=bytes.len() {
            let r = replay(Path::new("w"), &bytes[..cut], &schema()).unwrap();
            let whole = ends.iter().filter(|e| **e <= cut).count() - 1;
            assert_eq!(r.batches.len(), whole, "cut at {cut}");
            assert_eq!(r.torn, !ends.contains(&cut));
        }
        for cut in 0..HEADER_LEN {
            assert!(replay(Path::new("w"), &bytes[..cut], &schema()).is_err());
        }
    }

    #[test]
    fn a_flipped_byte_in_a_committed_frame_is_an_error_not_a_skip() {
        let (bytes, batches) = log(3);
        let last_start = bytes.len() - encode_frame(&batches[2]).len();
        for i in 0..last_start {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            // Anything before the last frame must be reported, never dropped as a torn tail.
            match replay(Path::new("w"), &b, &schema()) {
                Err(e) => assert!(e.is_corruption(), "{e}"),
                Ok(r) => panic!("flip at {i} accepted with {} batches", r.batches.len()),
            }
        }
    }
}
