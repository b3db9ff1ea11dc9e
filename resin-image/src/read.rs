//! [`read_full`]: the read-until-full loop the image readers, the stager and the migrator share.

use std::io::{self, Read};

/// Reads until `buf` is full or the stream ends, retrying reads interrupted by a signal.
/// Returns the bytes read: fewer than `buf.len()` only at the end of the stream.
pub fn read_full<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most 3 bytes per read, with an EINTR before each.
    struct Dribble<'a> {
        data: &'a [u8],
        interrupt: bool,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(3).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn fills_across_short_and_interrupted_reads_and_stops_at_the_end() {
        let mut buf = [0u8; 8];
        let mut reader = Dribble { data: b"0123456789", interrupt: false };
        assert_eq!(read_full(&mut reader, &mut buf).unwrap(), 8);
        assert_eq!(&buf, b"01234567");
        assert_eq!(read_full(&mut reader, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"89");
    }
}
