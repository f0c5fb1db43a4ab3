//! Encrypted backups: XChaCha20-Poly1305 in the STREAM construction (Hoang, Reyhanitabar,
//! Rogaway, Vizár 2015), as `aead::stream::StreamBE32` defined it.
//!
//! File: the header line `daygle-backup-encrypted v1\n`, the key id (8 hex digits + `\n`), a
//! random 19-byte nonce prefix, then the plaintext in 64 KiB chunks, each sealed with the nonce
//! `prefix ‖ chunk counter (32-bit big-endian) ‖ last-chunk flag` and the header as associated
//! data. A changed, reordered, dropped or appended chunk fails to open, and so does a file cut
//! short (its final chunk never carries the last-chunk flag), so a restore reads only bytes the
//! key holder wrote. Memory use is one chunk.

use std::io::{self, Read, Write};

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

pub const MAGIC: &[u8] = b"daygle-backup-encrypted v1\n";
const PREFIX_LEN: usize = 19;
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const HEADER_LEN: usize = MAGIC.len() + 9 + PREFIX_LEN;

/// The 32-byte key of an encrypted backup.
#[derive(Clone)]
pub struct BackupKey {
    key: Zeroizing<[u8; 32]>,
}

impl BackupKey {
    pub fn new(key: Zeroizing<[u8; 32]>) -> Self {
        Self { key }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(self.key.as_slice())
            .expect("a 32-byte key is always the right length")
    }

    /// A public fingerprint that tells a wrong key from a damaged file.
    pub fn id(&self) -> String {
        crate::secrets::key_id(&self.key)
    }
}

fn nonce(prefix: &[u8], counter: u32, last: bool) -> XNonce {
    let mut n = [0u8; 24];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&counter.to_be_bytes());
    n[23] = u8::from(last);
    XNonce::from(n)
}

fn broken(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_string())
}

/// Encrypts everything written to it; [`EncryptWriter::finish`] seals the last chunk.
pub struct EncryptWriter<W: Write> {
    out: W,
    cipher: XChaCha20Poly1305,
    header: Vec<u8>,
    prefix: [u8; PREFIX_LEN],
    counter: u32,
    buf: Zeroizing<Vec<u8>>,
}

impl<W: Write> EncryptWriter<W> {
    pub fn new(mut out: W, key: &BackupKey) -> io::Result<Self> {
        let mut prefix = [0u8; PREFIX_LEN];
        getrandom::fill(&mut prefix).expect("the operating system's random source failed");
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(format!("{:0>8}\n", key.id()).as_bytes());
        header.extend_from_slice(&prefix);
        out.write_all(&header)?;
        Ok(Self {
            out,
            cipher: key.cipher(),
            header,
            prefix,
            counter: 0,
            buf: Zeroizing::new(Vec::with_capacity(CHUNK + TAG)),
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let n = nonce(&self.prefix, self.counter, last);
        self.cipher
            .encrypt_in_place(&n, &self.header, &mut *self.buf)
            .map_err(|_| broken("encryption failed"))?;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| broken("backup too large for one encrypted stream (256 TiB)"))?;
        Ok(())
    }

    /// Seals the final chunk and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // A full chunk is sealed only once more data arrives: the last chunk must carry the
        // last-chunk flag, and only `finish` knows which one that is.
        if self.buf.len() == CHUNK {
            self.seal(false)?;
        }
        let take = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..take]);
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// True when `start` (the first bytes of a file) is an encrypted backup.
pub fn is_encrypted(start: &[u8]) -> bool {
    start.starts_with(MAGIC)
}

/// Decrypts a stream written by [`EncryptWriter`]; any damage is an `InvalidData` error.
pub struct DecryptReader<R: Read> {
    input: R,
    cipher: XChaCha20Poly1305,
    header: Vec<u8>,
    prefix: Vec<u8>,
    counter: u32,
    /// Decrypted bytes not yet read, from `pos`.
    plain: Zeroizing<Vec<u8>>,
    pos: usize,
    /// The next sealed chunk, read ahead to learn whether the current one is the last.
    ahead: Vec<u8>,
    done: bool,
}

impl<R: Read> DecryptReader<R> {
    pub fn new(mut input: R, key: &BackupKey) -> io::Result<Self> {
        let mut header = vec![0u8; HEADER_LEN];
        input
            .read_exact(&mut header)
            .map_err(|_| broken("not an encrypted daygle backup (header too short)"))?;
        if !is_encrypted(&header) {
            return Err(broken("not an encrypted daygle backup"));
        }
        let id = String::from_utf8_lossy(&header[MAGIC.len()..MAGIC.len() + 8]).to_string();
        if id != format!("{:0>8}", key.id()) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "this backup was encrypted with key {id}, not with the given key ({})",
                    key.id()
                ),
            ));
        }
        let prefix = header[MAGIC.len() + 9..].to_vec();
        let mut reader = Self {
            input,
            cipher: key.cipher(),
            header,
            prefix,
            counter: 0,
            plain: Zeroizing::new(Vec::new()),
            pos: 0,
            ahead: Vec::new(),
            done: false,
        };
        reader.ahead = reader.read_sealed()?;
        Ok(reader)
    }

    /// Reads up to one sealed chunk (shorter only at the end of the file).
    fn read_sealed(&mut self) -> io::Result<Vec<u8>> {
        let mut chunk = vec![0u8; CHUNK + TAG];
        let mut filled = 0;
        while filled < chunk.len() {
            match self.input.read(&mut chunk[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        chunk.truncate(filled);
        Ok(chunk)
    }

    fn open_next(&mut self) -> io::Result<()> {
        let mut sealed = std::mem::take(&mut self.ahead);
        if sealed.is_empty() {
            return Err(broken("the encrypted backup is cut short"));
        }
        self.ahead = if sealed.len() == CHUNK + TAG {
            self.read_sealed()?
        } else {
            Vec::new()
        };
        let last = self.ahead.is_empty();
        let n = nonce(&self.prefix, self.counter, last);
        self.cipher
            .decrypt_in_place(&n, &self.header, &mut sealed)
            .map_err(|_| {
                broken("the encrypted backup was changed, cut short or reordered (authentication failed)")
            })?;
        self.counter = self.counter.wrapping_add(1);
        self.plain = Zeroizing::new(sealed);
        self.pos = 0;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.open_next()?;
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> BackupKey {
        BackupKey::new(Zeroizing::new([b; 32]))
    }

    fn seal(data: &[u8]) -> Vec<u8> {
        let mut w = EncryptWriter::new(Vec::new(), &key(1)).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn open(sealed: &[u8], k: &BackupKey) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        DecryptReader::new(sealed, k)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trips_at_every_chunk_boundary() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal(&data);
            assert!(
                !sealed
                    .windows(64)
                    .any(|w| data.len() >= 64 && w == &data[..64])
            );
            assert_eq!(open(&sealed, &key(1)).unwrap(), data, "length {len}");
        }
    }

    #[test]
    fn a_wrong_key_a_flipped_bit_or_a_cut_are_refused() {
        let data = vec![7u8; 2 * CHUNK + 10];
        let sealed = seal(&data);
        let wrong = open(&sealed, &key(2)).unwrap_err();
        assert_eq!(wrong.kind(), io::ErrorKind::PermissionDenied);
        let mut flipped = sealed.clone();
        flipped[HEADER_LEN + CHUNK + 100] ^= 1;
        assert_eq!(
            open(&flipped, &key(1)).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // Cut exactly after a full chunk: that chunk was not sealed as the last one.
        let cut = &sealed[..HEADER_LEN + CHUNK + TAG];
        assert!(open(cut, &key(1)).is_err());
        let mut appended = sealed.clone();
        appended.extend_from_slice(&sealed[HEADER_LEN..HEADER_LEN + CHUNK + TAG]);
        assert!(open(&appended, &key(1)).is_err());
    }
}
