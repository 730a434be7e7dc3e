//! The manifest: which collections exist, their schemas, live segments, tombstones and WAL.
//!
//! Little-endian.
//!
//! ```text
//! | magic "SKMF" 4 | version u16 | flags u16 | payload_len u32 | payload_crc32c u32 |
//! | header_crc32c u32 | payload (bincode 2, standard config) |
//! ```
//!
//! Publication protocol (the commit point of create/drop/flush/compact): write `MANIFEST.tmp`,
//! fsync it, rename it over `MANIFEST`, fsync the directory. A crash leaves either the old or
//! the new manifest, never a mix; a leftover `MANIFEST.tmp` is ignored and removed.

use std::path::Path;

use roaring::RoaringBitmap;

use crate::codec::{Enc, u32_at};
use crate::error::{Error, Result};
use crate::io::Vfs;
use crate::preamble::{Preamble, check_crc, check_preamble};
use crate::schema::Schema;

/// Magic at the start of the manifest.
pub const MAGIC: [u8; 4] = *b"SKMF";
/// v1: first format.
pub const VERSION: u16 = 1;
/// Oldest version this build reads.
pub const OLDEST_SUPPORTED: u16 = 1;
/// File name of the manifest in the database directory.
pub const FILE: &str = "MANIFEST";
/// Temporary name the next manifest is written under before the rename.
pub const TMP_FILE: &str = "MANIFEST.tmp";
/// Size of the fixed header.
pub const HEADER_LEN: usize = 20;
const VERSION_OFFSET: usize = MAGIC.len();
const LEN_OFFSET: usize = VERSION_OFFSET + 4;
const PAYLOAD_CRC_OFFSET: usize = LEN_OFFSET + 4;
const HEADER_CRC_OFFSET: usize = PAYLOAD_CRC_OFFSET + 4;
const PREAMBLE: Preamble = Preamble::new(MAGIC, "manifest", HEADER_LEN, HEADER_CRC_OFFSET, (OLDEST_SUPPORTED, VERSION));
/// Largest manifest payload accepted.
pub const MAX_PAYLOAD: u32 = 256 << 20;

/// A published segment.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct SegmentEntry {
    /// Segment id; the file is `seg-<id>.seg` in the collection's directory.
    pub id: u64,
    /// Rows in the file.
    pub rows: u64,
    /// Length of the file in bytes.
    pub file_len: u64,
    /// Serialized roaring bitmap of deleted rows.
    pub tombstones: Vec<u8>,
}

/// A collection.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct CollectionEntry {
    /// Stable numeric id; the directory is `col-<id>`.
    pub id: u64,
    /// User-visible name.
    pub name: String,
    /// The schema.
    pub schema: Schema,
    /// Live segments, oldest first.
    pub segments: Vec<SegmentEntry>,
    /// The current WAL is `wal-<wal_id>.log`.
    pub wal_id: u64,
    /// Next segment id to use.
    pub next_segment_id: u64,
    /// Highest commit sequence number contained in the segments.
    pub flushed_seq: u64,
    /// Free-form settings (index parameters, model provenance), kept sorted by key.
    pub params: Vec<(String, String)>,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Default, bincode::Encode, bincode::Decode)]
pub struct Manifest {
    /// Incremented on every publication.
    pub generation: u64,
    /// Next collection id to use.
    pub next_collection_id: u64,
    /// Collections, sorted by name.
    pub collections: Vec<CollectionEntry>,
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ MAX_PAYLOAD as usize }>()
}

impl Manifest {
    /// Encodes the manifest file.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let payload = bincode::encode_to_vec(self, config()).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut e = Enc::default();
        e.buf.extend_from_slice(&MAGIC);
        e.u16(VERSION);
        e.u16(0);
        e.u32(payload.len() as u32);
        e.u32(crc32c::crc32c(&payload));
        let crc = crc32c::crc32c(&e.buf);
        e.u32(crc);
        e.buf.extend_from_slice(&payload);
        Ok(e.buf)
    }

    /// Decodes and checks a manifest file.
    pub fn decode(file: &Path, b: &[u8]) -> Result<Manifest> {
        check_preamble(b, &PREAMBLE).map_err(|e| PREAMBLE.error(file, "manifest header", e))?;
        let len = u32_at(b, LEN_OFFSET).unwrap_or(0) as usize;
        let payload = b.get(HEADER_LEN..).unwrap_or(&[]);
        if payload.len() != len {
            return Err(Error::corrupted(
                file,
                "manifest payload",
                HEADER_LEN as u64,
                format!("{} bytes, header says {len}", payload.len()),
            ));
        }
        check_crc(file, "manifest payload", HEADER_LEN as u64, payload, u32_at(b, PAYLOAD_CRC_OFFSET).unwrap_or(0))?;
        let (m, used): (Manifest, usize) = bincode::decode_from_slice(payload, config())
            .map_err(|e| Error::corrupted(file, "manifest payload", HEADER_LEN as u64, e.to_string()))?;
        if used != payload.len() {
            return Err(Error::corrupted(file, "manifest payload", HEADER_LEN as u64, "trailing bytes"));
        }
        m.validate().map_err(|r| Error::corrupted(file, "manifest payload", HEADER_LEN as u64, r))?;
        Ok(m)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        for (a, b) in self.collections.iter().zip(self.collections.iter().skip(1)) {
            if a.name >= b.name {
                return Err("collections not sorted by name".into());
            }
        }
        for c in &self.collections {
            c.schema.validate()?;
            if c.id >= self.next_collection_id {
                return Err(format!("collection {} has id {} >= next id", c.name, c.id));
            }
            for s in &c.segments {
                if s.id >= c.next_segment_id {
                    return Err(format!("segment {} >= next id", s.id));
                }
                let t = RoaringBitmap::deserialize_from(&s.tombstones[..])
                    .map_err(|e| format!("tombstones of segment {}: {e}", s.id))?;
                if t.max().is_some_and(|m| u64::from(m) >= s.rows) {
                    return Err(format!("tombstone outside segment {}", s.id));
                }
            }
        }
        Ok(())
    }

    /// Reads the manifest of `dir`, or `None` when the database has none yet.
    pub fn load(vfs: &dyn Vfs, dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(FILE);
        if !vfs.exists(&path) {
            return Ok(None);
        }
        let bytes = vfs.read(&path)?;
        Manifest::decode(&path, &bytes).map(Some)
    }

    /// Publishes this manifest atomically (the commit point of structural changes).
    pub fn publish(&self, vfs: &dyn Vfs, dir: &Path) -> Result<()> {
        let tmp = dir.join(TMP_FILE);
        let bytes = self.encode()?;
        let mut f = vfs.create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync()?;
        drop(f);
        vfs.rename(&tmp, &dir.join(FILE))?;
        vfs.sync_dir(dir)
    }

    /// The collection called `name`.
    #[must_use]
    pub fn collection(&self, name: &str) -> Option<&CollectionEntry> {
        self.collections.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{FieldDef, FieldType, Metric};

    pub(crate) fn sample() -> Manifest {
        let mut t = RoaringBitmap::new();
        t.insert(3);
        let mut tomb = Vec::new();
        t.serialize_into(&mut tomb).unwrap();
        Manifest {
            generation: 4,
            next_collection_id: 2,
            collections: vec![CollectionEntry {
                id: 1,
                name: "scenes".into(),
                schema: Schema::new(8, Metric::Cosine, vec![FieldDef { name: "class".into(), ty: FieldType::Keyword }])
                    .unwrap(),
                segments: vec![SegmentEntry { id: 0, rows: 10, file_len: 999, tombstones: tomb }],
                wal_id: 3,
                next_segment_id: 1,
                flushed_seq: 17,
                params: vec![("m".into(), "16".into())],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let b = m.encode().unwrap();
        assert_eq!(Manifest::decode(Path::new("M"), &b).unwrap(), m);
    }

    #[test]
    fn every_flip_and_truncation_is_detected() {
        let b = sample().encode().unwrap();
        for i in 0..b.len() {
            for bit in [0x01u8, 0x80] {
                let mut c = b.clone();
                c[i] ^= bit;
                let e = Manifest::decode(Path::new("M"), &c).unwrap_err();
                assert!(e.is_corruption(), "flip {i}: {e}");
            }
        }
        for n in 0..b.len() {
            assert!(Manifest::decode(Path::new("M"), &b[..n]).unwrap_err().is_corruption());
        }
    }
}
