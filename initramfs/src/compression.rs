//! Compression of the whole archive, in the formats the kernel's initramfs
//! unpacker reads (`CONFIG_RD_GZIP`, `CONFIG_RD_XZ`, `CONFIG_RD_ZSTD`).

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use flate2::write::GzEncoder;
use xz2::stream::{Check, Stream};
use xz2::write::XzEncoder;

use crate::{Error, Result};

/// xz preset: 6 is xz's default (8 MiB dictionary).
const XZ_PRESET: u32 = 6;
/// zstd level: high ratio at a build-time cost of seconds, decoded fast.
const ZSTD_LEVEL: i32 = 19;

/// How the archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain cpio.
    #[default]
    None,
    /// gzip (deflate); every kernel reads it.
    Gzip,
    /// xz with a CRC32 integrity check: the kernel's xz decoder does not
    /// support CRC64 (xz's default), so that is never used.
    Xz,
    /// zstd (kernel 5.9 and later).
    Zstd,
}

impl Compression {
    /// Wraps `out` in the encoder of this compression.
    pub fn writer<W: Write>(self, out: W) -> Result<CompressedWriter<W>> {
        let encoder = match self {
            Compression::None => Encoder::Plain(out),
            Compression::Gzip => Encoder::Gzip(GzEncoder::new(out, flate2::Compression::best())),
            Compression::Xz => {
                let stream = Stream::new_easy_encoder(XZ_PRESET, Check::Crc32)
                    .map_err(|e| Error::Encoder { compression: "xz", reason: e.to_string() })?;
                Encoder::Xz(XzEncoder::new_stream(out, stream))
            }
            Compression::Zstd => {
                let mut encoder = zstd::Encoder::new(out, ZSTD_LEVEL)
                    .map_err(|e| Error::Encoder { compression: "zstd", reason: e.to_string() })?;
                encoder
                    .include_checksum(true)
                    .map_err(|e| Error::Encoder { compression: "zstd", reason: e.to_string() })?;
                Encoder::Zstd(encoder)
            }
        };
        Ok(CompressedWriter { encoder })
    }

    /// The best compression a kernel built with `kernel_config` (the text
    /// of its `/boot/config-<version>`) can unpack: xz (smallest), then zstd,
    /// then gzip, else none. Only `=y` counts: the unpacker runs before any
    /// module can be loaded.
    pub fn best_supported(kernel_config: &str) -> Compression {
        let enabled =
            |option: &str| kernel_config.lines().any(|line| line.trim() == format!("{option}=y"));
        [
            ("CONFIG_RD_XZ", Compression::Xz),
            ("CONFIG_RD_ZSTD", Compression::Zstd),
            ("CONFIG_RD_GZIP", Compression::Gzip),
        ]
        .into_iter()
        .find(|(option, _)| enabled(option))
        .map_or(Compression::None, |(_, compression)| compression)
    }

    fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "none" => Ok(Compression::None),
            "gzip" | "gz" => Ok(Compression::Gzip),
            "xz" => Ok(Compression::Xz),
            "zstd" | "zst" => Ok(Compression::Zstd),
            other => Err(Error::UnknownCompression(other.to_string())),
        }
    }
}

enum Encoder<W: Write> {
    Plain(W),
    Gzip(GzEncoder<W>),
    Xz(XzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
}

/// A writer that compresses into `W`; [`CompressedWriter::finish`] must be
/// called to write the end of the compressed stream.
pub struct CompressedWriter<W: Write> {
    encoder: Encoder<W>,
}

impl<W: Write> CompressedWriter<W> {
    /// Ends the compressed stream and returns the underlying writer.
    pub fn finish(self) -> Result<W> {
        let mut out = match self.encoder {
            Encoder::Plain(out) => out,
            Encoder::Gzip(encoder) => encoder.finish().map_err(Error::Write)?,
            Encoder::Xz(encoder) => encoder.finish().map_err(Error::Write)?,
            Encoder::Zstd(encoder) => encoder.finish().map_err(Error::Write)?,
        };
        out.flush().map_err(Error::Write)?;
        Ok(out)
    }
}

impl<W: Write> Write for CompressedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.encoder {
            Encoder::Plain(out) => out.write(buf),
            Encoder::Gzip(encoder) => encoder.write(buf),
            Encoder::Xz(encoder) => encoder.write(buf),
            Encoder::Zstd(encoder) => encoder.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.encoder {
            Encoder::Plain(out) => out.flush(),
            Encoder::Gzip(encoder) => encoder.flush(),
            Encoder::Xz(encoder) => encoder.flush(),
            Encoder::Zstd(encoder) => encoder.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_it_prints() {
        for compression in
            [Compression::None, Compression::Gzip, Compression::Xz, Compression::Zstd]
        {
            assert_eq!(compression.to_string().parse::<Compression>().unwrap(), compression);
        }
        assert!(matches!("bzip2".parse::<Compression>(), Err(Error::UnknownCompression(_))));
    }

    #[test]
    fn best_supported_follows_the_kernel_config() {
        let config = "CONFIG_RD_GZIP=y\n# CONFIG_RD_XZ is not set\nCONFIG_RD_ZSTD=m\n";
        assert_eq!(Compression::best_supported(config), Compression::Gzip);
        let config = "CONFIG_RD_GZIP=y\nCONFIG_RD_ZSTD=y\n";
        assert_eq!(Compression::best_supported(config), Compression::Zstd);
        let config = "CONFIG_RD_GZIP=y\nCONFIG_RD_XZ=y\nCONFIG_RD_ZSTD=y\n";
        assert_eq!(Compression::best_supported(config), Compression::Xz);
        assert_eq!(Compression::best_supported("CONFIG_BLK_DEV_INITRD=y\n"), Compression::None);
    }
}
