//! Content digests (`sha256:<hex>`) and readers that verify them while streaming.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

/// A content digest. Only sha256 is accepted: it is what registries and image specs use, and
/// accepting an algorithm we cannot verify would make verification optional.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid digest {0:?}: expected sha256:<64 hex digits>")]
    Invalid(String),
    #[error("unsupported digest algorithm in {0:?}: only sha256 is supported")]
    Unsupported(String),
}

impl Digest {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest {
            hex: hex::encode(Sha256::digest(data)),
        }
    }

    pub fn from_sha256(hash: &[u8]) -> Digest {
        Digest {
            hex: hex::encode(hash),
        }
    }

    /// The 64 hex digits, for file names.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let Some((algo, hex)) = s.split_once(':') else {
            return Err(DigestError::Invalid(s.to_string()));
        };
        if algo != "sha256" {
            return Err(DigestError::Unsupported(s.to_string()));
        }
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(DigestError::Invalid(s.to_string()));
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A reader that hashes what passes through it and, at the end of the stream, fails unless the
/// bytes have the expected digest and size. Nothing read from it can be trusted before it has
/// returned end-of-file without error.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    expected: Digest,
    expected_size: Option<u64>,
    done: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
            expected,
            expected_size,
            done: false,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if let Some(limit) = self.expected_size {
            if self.read > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {} is larger than its declared size {limit}",
                        self.expected
                    ),
                ));
            }
        }
        if n == 0 {
            self.done = true;
            let got = Digest::from_sha256(&self.hasher.clone().finalize());
            if got != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("digest mismatch: expected {}, got {got}", self.expected),
                ));
            }
            if let Some(size) = self.expected_size {
                if size != self.read {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "size mismatch for {}: expected {size} bytes, got {}",
                            self.expected, self.read
                        ),
                    ));
                }
            }
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn parses_and_prints() {
        let d: Digest = HELLO.parse().unwrap();
        assert_eq!(d.to_string(), HELLO);
        assert_eq!(Digest::of(b"hello"), d);
        assert!(matches!(
            "md5:abc".parse::<Digest>(),
            Err(DigestError::Unsupported(_))
        ));
        assert!(matches!(
            "sha256:xyz".parse::<Digest>(),
            Err(DigestError::Invalid(_))
        ));
        assert!(matches!(
            "sha256".parse::<Digest>(),
            Err(DigestError::Invalid(_))
        ));
        let upper = HELLO.to_uppercase().replace("SHA256", "sha256");
        assert!(
            upper.parse::<Digest>().is_err(),
            "digests are lower-case hex"
        );
    }

    #[test]
    fn verifying_reader_accepts_the_right_bytes() {
        let mut r = VerifyingReader::new(&b"hello"[..], HELLO.parse().unwrap(), Some(5));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
    }

    #[test]
    fn verifying_reader_rejects_wrong_content_and_size() {
        let mut out = Vec::new();
        let mut r = VerifyingReader::new(&b"hellO"[..], HELLO.parse().unwrap(), None);
        let err = r.read_to_end(&mut out).unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        let mut r = VerifyingReader::new(&b"hello"[..], HELLO.parse().unwrap(), Some(4));
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("larger than its declared size"),
            "{err}"
        );
        let mut r = VerifyingReader::new(&b"hello"[..], HELLO.parse().unwrap(), Some(6));
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("size mismatch"), "{err}");
    }
}
