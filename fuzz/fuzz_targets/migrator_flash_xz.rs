//! The migrator's flash engine on an arbitrary "staged image": xz index walk, block
//! layout, our own block-check verification (liblzma runs with LZMA_IGNORE_CHECK),
//! sequential and block-parallel decoding. Oracle: liblzma itself, with its checks on
//! (xz2's multi-stream decoder). Whenever the engine accepts an image, liblzma must
//! accept it too and decode it to exactly the bytes the engine wrote (held head +
//! body); the engine may refuse more than liblzma, never less. A file that is not xz
//! is a raw image and must be written unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use migrator::flash::{write_image, FlashRequest, FlashTarget, Placement};
use std::io::{self, Read, Seek, Write};
use std::sync::Mutex;

const EXTENT: u64 = 8 * 1024 * 1024;
const XZ_MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0x00];

struct MemoryTarget(Mutex<Vec<u8>>);

impl FlashTarget for MemoryTarget {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut bytes = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        let end = offset as usize + buf.len();
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[offset as usize..end].copy_from_slice(buf);
        Ok(())
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let bytes = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        let src = bytes
            .get(offset as usize..offset as usize + buf.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn drop_cache(&self, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
}

fn liblzma_decode(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut decoder = xz2::read::XzDecoder::new_multi_decoder(data);
    (&mut decoder)
        .take(EXTENT + 1)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    // First byte: decoder threads (1 = sequential, 2 = parallel); the rest is the file.
    let Some((&mode, image_bytes)) = data.split_first() else { return };
    let threads = if mode & 1 == 0 { 1 } else { 2 };
    let path = std::env::temp_dir().join(format!("swapover-fuzz-xz-{}", std::process::id()));
    let Ok(mut file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
    else {
        return;
    };
    if file.write_all(image_bytes).is_err() || file.rewind().is_err() {
        return;
    }
    let target = MemoryTarget(Mutex::new(Vec::new()));
    let mut request = FlashRequest::new(Placement {
        target_offset_bytes: 0,
        extent_bytes: EXTENT,
    });
    request.decode_threads = threads;
    request.write_retries = 0;
    let result = write_image(&file, &target, &request, &mut |_| {});
    let Ok(written) = result else { return };
    let mut flashed = target.0.into_inner().unwrap_or_default();
    flashed.resize(written.image_bytes as usize, 0);
    let head = written.head.bytes();
    flashed[..head.len()].copy_from_slice(head);
    let expected = if image_bytes.starts_with(&XZ_MAGIC) {
        liblzma_decode(image_bytes)
            .expect("the engine accepted an image that liblzma (checks on) refuses")
    } else {
        image_bytes.to_vec() // a raw image is written as it is
    };
    assert!(
        expected == flashed,
        "the engine wrote other bytes than liblzma decodes ({} vs {} bytes)",
        flashed.len(),
        expected.len()
    );
});
