//! The embedded store's journal: what makes a batch of writes durable with one small sequential
//! write and one `fdatasync`, instead of a durable redb commit (which writes every page the batch
//! touched, scattered over the file, and syncs them: about 1.4 ms a commit under load on the
//! development machine's disk, against about 0.3 ms for the journal).
//!
//! The committer applies a batch inside a redb write transaction, appends the batch's **resulting
//! changes** (set a key to these bytes, remove a key) to the journal as one record, syncs it, and
//! only then commits the transaction without durability (readers see it at once) and answers the
//! callers. So what anyone can read is always already durable in the journal or in redb.
//!
//! **Checkpoints.** A durable redb commit that also stores a new random *tag* makes every earlier
//! record obsolete: records carry the tag they were written under, and only records carrying the
//! tag redb holds count. The journal is then written again from its start. The committer
//! checkpoints when the journal is half full, when writes have paused for a second, and when the
//! store closes.
//!
//! **Recovery** (at open): the records that carry redb's tag, from the start of the file, each
//! whole (magic, length, CRC-32), up to the first that is not, are applied in order and
//! checkpointed. A change is a final value, so applying one again is harmless: a record that
//! redb already holds (a sweep's durable commit in between) sets the same values again.
//!
//! The file is created `0600` and grows with zeros, doubling up to [`CAPACITY`], so that an
//! append mostly overwrites allocated blocks and its sync flushes data only.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The size the journal grows to (doubling from [`FIRST_GROWTH`]); beyond it only for a record
/// larger than what is left.
pub const CAPACITY: u64 = 8 << 20;

/// The first growth of a new journal: a fresh store (every cold start of a Lambda function on
/// the embedded store) writes 64 KiB of zeros with its first record, not the whole capacity.
const FIRST_GROWTH: u64 = 64 * 1024;

/// The committer checkpoints once this much of the journal is used (about 15,000 answered
/// Tailchat events of changes: some 270 bytes each, their claim and completion). A checkpoint
/// writes and syncs every page changed since the last one, the writes waiting meanwhile; under
/// sustained load with random keys that is most of the tree whatever the interval, so
/// checkpoints are rare and the interval long. After a crash, a full journal is replayed at open
/// in one transaction.
pub const CHECKPOINT_AT: u64 = CAPACITY / 2;

const MAGIC: u32 = 0x314a_4c48; // "HLJ1"

/// magic u32, tag u64, payload length u32, CRC-32 of tag, length and payload u32.
const HEADER: usize = 20;

/// One change a record makes: a key's new bytes, or its removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Set(String, String, Vec<u8>),
    Remove(String, String),
}

/// The journal file and where the next record goes.
#[derive(Debug)]
pub struct Journal {
    file: File,
    tag: u64,
    at: u64,
    capacity: u64,
}

/// A fresh random tag (std's hasher keys come from the operating system's random source).
pub fn new_tag() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6a6f_7572_6e61_6c00);
    h.finish()
}

impl Journal {
    /// Opens (creating, `0600`) the journal at `path`; records are read with
    /// [`Journal::recover`] and written under `tag`.
    pub fn open(path: &Path, tag: u64) -> std::io::Result<Self> {
        let file = open_private(path)?;
        let capacity = file.metadata()?.len();
        Ok(Self {
            file,
            tag,
            at: 0,
            capacity,
        })
    }

    /// The changes of every whole record written under this journal's tag, in order.
    pub fn recover(&self) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut at = 0u64;
        let mut header = [0u8; HEADER];
        while at + HEADER as u64 <= self.capacity {
            if self.file.read_exact_at(&mut header, at).is_err() {
                break;
            }
            let (magic, tag, len, crc) = split_header(&header);
            if magic != MAGIC || tag != self.tag || at + (HEADER + len) as u64 > self.capacity {
                break;
            }
            let mut payload = vec![0u8; len];
            if self
                .file
                .read_exact_at(&mut payload, at + HEADER as u64)
                .is_err()
                || checksum(tag, len, &payload) != crc
            {
                break;
            }
            match decode(&payload) {
                Some(mut c) => changes.append(&mut c),
                None => break,
            }
            at += (HEADER + len) as u64;
        }
        changes
    }

    /// How much of the journal is in use.
    pub fn used(&self) -> u64 {
        self.at
    }

    /// Appends one record of `changes` and syncs it: durable when this returns `Ok`.
    pub fn append(&mut self, changes: &[Change]) -> std::io::Result<()> {
        let payload = encode(changes);
        let len = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&MAGIC.to_le_bytes());
        record.extend_from_slice(&self.tag.to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&checksum(self.tag, payload.len(), &payload).to_le_bytes());
        record.extend_from_slice(&payload);
        let end = self.at + record.len() as u64;
        if end > self.capacity {
            // Grow with zeros, so that later appends overwrite allocated blocks and their syncs
            // flush data only; this append's sync also makes the new size durable.
            let grown = (self.capacity * 2).clamp(FIRST_GROWTH, CAPACITY);
            self.fill_to(grown.max(end.next_multiple_of(FIRST_GROWTH)))?;
        }
        self.file.write_all_at(&record, self.at)?;
        self.file.sync_data()?;
        self.at = end;
        Ok(())
    }

    /// After a checkpoint stored `tag` in redb: every record so far is obsolete, and the next
    /// one goes to the start of the file.
    pub fn restart(&mut self, tag: u64) {
        self.tag = tag;
        self.at = 0;
    }

    /// Grows the file to `len` with zeros (made durable by the next sync).
    fn fill_to(&mut self, len: u64) -> std::io::Result<()> {
        const CHUNK: usize = 256 * 1024;
        let zeros = vec![0u8; CHUNK];
        let mut at = self.capacity;
        while at < len {
            let n = usize::try_from(len - at).map_or(CHUNK, |n| n.min(CHUNK));
            self.file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        self.capacity = len;
        Ok(())
    }
}

fn split_header(h: &[u8; HEADER]) -> (u32, u64, usize, u32) {
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&h[4..12]);
    (
        u32_at(0),
        u64::from_le_bytes(tag),
        usize::try_from(u32_at(12)).unwrap_or(usize::MAX),
        u32_at(16),
    )
}

fn checksum(tag: u64, len: usize, payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&tag.to_le_bytes());
    crc.update(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    crc.update(payload);
    crc.finalize()
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn encode(changes: &[Change]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * changes.len());
    for change in changes {
        match change {
            Change::Set(pk, sk, value) => {
                out.push(1);
                put_bytes(&mut out, pk.as_bytes());
                put_bytes(&mut out, sk.as_bytes());
                put_bytes(&mut out, value);
            }
            Change::Remove(pk, sk) => {
                out.push(2);
                put_bytes(&mut out, pk.as_bytes());
                put_bytes(&mut out, sk.as_bytes());
            }
        }
    }
    out
}

/// The changes of a payload whose checksum matched; `None` if it does not parse (then it is
/// treated as the end of the journal).
fn decode(mut p: &[u8]) -> Option<Vec<Change>> {
    fn bytes<'a>(p: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = usize::try_from(u32::from_le_bytes(p.get(..4)?.try_into().ok()?)).ok()?;
        let out = p.get(4..4 + len)?;
        *p = &p[4 + len..];
        Some(out)
    }
    fn text(p: &mut &[u8]) -> Option<String> {
        String::from_utf8(bytes(p)?.to_vec()).ok()
    }
    let mut changes = Vec::new();
    while let Some((&kind, rest)) = p.split_first() {
        p = rest;
        changes.push(match kind {
            1 => Change::Set(text(&mut p)?, text(&mut p)?, bytes(&mut p)?.to_vec()),
            2 => Change::Remove(text(&mut p)?, text(&mut p)?),
            _ => return None,
        });
    }
    Some(changes)
}

fn open_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(sk: &str, v: &str) -> Change {
        Change::Set("pk".into(), sk.into(), v.as_bytes().to_vec())
    }

    #[test]
    fn records_come_back_in_order_and_only_under_their_tag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::open(&path, 7).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            0,
            "nothing written at open"
        );
        j.append(&[set("a", "1"), Change::Remove("pk".into(), "b".into())])
            .unwrap();
        j.append(&[set("a", "2")]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), FIRST_GROWTH);
        drop(j);
        let j = Journal::open(&path, 7).unwrap();
        assert_eq!(
            j.recover(),
            vec![
                set("a", "1"),
                Change::Remove("pk".into(), "b".into()),
                set("a", "2")
            ]
        );
        assert!(Journal::open(&path, 8).unwrap().recover().is_empty());
    }

    #[test]
    fn after_a_restart_the_old_records_are_obsolete_even_where_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::open(&path, 1).unwrap();
        j.append(&[set("a", "old-1")]).unwrap();
        j.append(&[set("b", "old-2")]).unwrap();
        j.restart(2);
        j.append(&[set("c", "new")]).unwrap();
        assert_eq!(j.recover(), vec![set("c", "new")]);
    }

    #[test]
    fn a_torn_or_corrupt_record_ends_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::open(&path, 3).unwrap();
        j.append(&[set("a", "1")]).unwrap();
        let second = j.used();
        j.append(&[set("b", "2")]).unwrap();
        let third = j.used();
        j.append(&[set("c", "3")]).unwrap();
        // Torn: the third record's last bytes never reached the disk.
        j.file.write_all_at(&[0u8; 4], j.used() - 4).unwrap();
        assert!(third < j.used() - 4);
        assert_eq!(j.recover(), vec![set("a", "1"), set("b", "2")]);
        // One flipped byte in the second record's payload.
        let at = second + HEADER as u64 + 6;
        let mut b = [0u8; 1];
        j.file.read_exact_at(&mut b, at).unwrap();
        j.file.write_all_at(&[b[0] ^ 0x40], at).unwrap();
        assert_eq!(j.recover(), vec![set("a", "1")]);
    }

    #[test]
    fn a_record_larger_than_the_journal_grows_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::open(&path, 4).unwrap();
        let big = "x".repeat(usize::try_from(CAPACITY).unwrap() + 10);
        j.append(&[set("a", "1")]).unwrap();
        j.append(&[set("big", &big)]).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > CAPACITY);
        assert_eq!(j.recover(), vec![set("a", "1"), set("big", &big)]);
    }

    #[test]
    fn tags_differ() {
        assert_ne!(new_tag(), new_tag());
    }
}
