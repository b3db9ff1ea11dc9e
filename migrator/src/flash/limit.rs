//! A `Read` adapter that refuses to deliver more than a fixed number of bytes.
//!
//! It stands between the decoder and the writer so that an image larger than it
//! claimed (or than the extent the plan allows) is an error before the first byte
//! past the limit reaches the target, not after.

use std::io::{self, Read};

/// The stream went on past the allowed length.
#[derive(Debug, thiserror::Error)]
#[error("the decoded image goes on past {limit_bytes} bytes")]
pub struct TooLong {
    pub limit_bytes: u64,
}

pub struct LimitReader<R> {
    inner: R,
    limit_bytes: u64,
    delivered: u64,
}

impl<R: Read> LimitReader<R> {
    pub fn new(inner: R, limit_bytes: u64) -> Self {
        LimitReader { inner, limit_bytes, delivered: 0 }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for LimitReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let left = self.limit_bytes - self.delivered;
        if left == 0 {
            // One probe byte tells "ends exactly here" from "goes on".
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    TooLong { limit_bytes: self.limit_bytes },
                )),
            };
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.delivered += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_up_to_the_limit_and_fails_past_it() {
        let mut exact = LimitReader::new(&[1u8, 2, 3][..], 3);
        let mut out = Vec::new();
        exact.read_to_end(&mut out).unwrap();
        assert_eq!(out, [1, 2, 3]);

        let mut longer = LimitReader::new(&[1u8, 2, 3, 4][..], 3);
        let mut out = Vec::new();
        let error = longer.read_to_end(&mut out).unwrap_err();
        assert_eq!(out, [1, 2, 3]);
        let too_long = error.get_ref().and_then(|e| e.downcast_ref::<TooLong>()).unwrap();
        assert_eq!(too_long.limit_bytes, 3);
    }
}
