//! Read a `File` from a position of our own (pread), leaving the shared file position alone.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

pub struct PositionalReader<'a> {
    file: &'a File,
    offset: u64,
}

impl<'a> PositionalReader<'a> {
    pub fn new(file: &'a File, offset: u64) -> Self {
        PositionalReader { file, offset }
    }
}

impl Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}
