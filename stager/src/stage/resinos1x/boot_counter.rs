//! U-Boot's boot counter, read before the BeagleBone's trial is armed (docs/arm-1x-contract.md
//! §2.3, R5): the 32-bit word at the profile's physical address (AM33XX RTC `scratch2`,
//! 0x44E3E068, stored big-endian) read through `/dev/mem`, which serves physical memory at
//! the file offset equal to the address (`man 4 mem`). What U-Boot makes of the word (the
//! magic, the 16-bit count) and the value the trial runs at are `uboot_env`'s.
//!
//! The word is read through `mmap`, as `busybox devmem` and `devmem2` do, not `read`: on ARM
//! `read` of `/dev/mem` only serves the kernel's own RAM and fails with `EFAULT` elsewhere
//! (linux `drivers/char/mem.c` `read_mem` → `valid_phys_addr_range`, which
//! `arch/arm/mm/mmap.c` limits to `PHYS_OFFSET ..= high_memory`), and a register (the RTC at
//! 0x44E3E068, below the BBB's RAM at 0x80000000) or the QEMU harness's counter above the
//! kernel's `mem=` is never in it; `mmap_mem` allows any physical page that is not RAM the
//! kernel claims (`valid_mmap_phys_addr_range`, `STRICT_DEVMEM`'s `devmem_is_allowed`). Found
//! by `qemu-tests/tests/resinos1x_bbb_migration.rs`: `stage-1x` refused with "Bad address".

use super::refusal::Refusal1x;
use board_profiles::{BootcountRegister, ByteOrder};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use uboot_env::{BootCount, TrialCount};

/// Where physical memory is read from on the device (`--phys-mem` stands for it in tests).
pub const PHYS_MEM: &str = "/dev/mem";

/// The counter as read, and the value of the one boot that runs the trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootCounter {
    /// The register's word in host order.
    pub word: u32,
    pub now: BootCount,
    pub trial: TrialCount,
}

impl BootCounter {
    /// One line for the plan's notes and the dry run.
    pub fn describe(&self, register: &BootcountRegister) -> String {
        format!(
            "U-Boot's boot counter at {:#x} reads {} (word {:#010x}); the trial runs at the boot that counts {}, any other boot is 1.x",
            register.address,
            self.now.0,
            self.word,
            self.trial.value()
        )
    }
}

/// The register's word: four bytes at its address in `phys_mem`, in the profile's byte order.
pub fn read_word(phys_mem: &Path, register: &BootcountRegister) -> io::Result<u32> {
    let bytes = read_mapped(phys_mem, register.address)?;
    Ok(match register.byte_order {
        ByteOrder::BigEndian => u32::from_be_bytes(bytes),
        ByteOrder::LittleEndian => u32::from_le_bytes(bytes),
    })
}

/// The four bytes at `address` of `phys_mem` (`/dev/mem`, or a file standing for it), read
/// by one 32-bit load from a shared read-only mapping of its page (`O_SYNC`: uncached, as
/// for a device register).
fn read_mapped(phys_mem: &Path, address: u64) -> io::Result<[u8; 4]> {
    if !address.is_multiple_of(4) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{address:#x} is not a 32-bit aligned address"),
        ));
    }
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_SYNC).open(phys_mem)?;
    let meta = file.metadata()?;
    // A regular file (tests) must hold the word: touching a mapped page past its end is SIGBUS.
    if meta.is_file() && meta.len() < address + 4 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "shorter than the address"));
    }
    // SAFETY: sysconf has no memory effects.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .map_err(|_| io::Error::other("no page size"))?;
    let base = address - address % page;
    let offset = libc::off_t::try_from(base).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{address:#x} beyond this off_t"))
    })?;
    let within = usize::try_from(address - base).map_err(|_| io::Error::other("page offset"))?;
    let len = usize::try_from(page).map_err(|_| io::Error::other("page size"))?;
    // SAFETY: a fresh read-only shared mapping of one page of an open file; checked below.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            offset,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `within + 4 <= len` (aligned address inside the page), the mapping is readable
    // and the load is aligned; the mapping is unmapped right after.
    let word = unsafe { std::ptr::read_volatile(map.cast::<u8>().add(within).cast::<u32>()) };
    // SAFETY: the mapping made above, not used after this.
    unsafe { libc::munmap(map, len) };
    // The load is in this CPU's order; its native bytes are the memory's, as `read` gives them.
    Ok(word.to_ne_bytes())
}

/// Reads the counter, or refuses: unreadable (R5), or at the top of its 16 bits.
pub fn read(phys_mem: &Path, register: &BootcountRegister) -> Result<BootCounter, Refusal1x> {
    let word = read_word(phys_mem, register).map_err(|e| Refusal1x::BootCounterUnreadable {
        address: register.address,
        path: phys_mem.display().to_string(),
        problem: e.to_string(),
    })?;
    let now = BootCount::from_counter_word(word);
    let trial = TrialCount::after(now).map_err(Refusal1x::BootCounterAtLimit)?;
    Ok(BootCounter { word, now, trial })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn register(byte_order: ByteOrder) -> BootcountRegister {
        BootcountRegister { address: 0x44E3_E068, byte_order }
    }

    /// A sparse file standing for physical memory, `bytes` at `address`.
    fn phys_mem(dir: &Path, address: u64, bytes: [u8; 4]) -> std::path::PathBuf {
        let path = dir.join("mem");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(address + 4096).unwrap();
        file.write_all_at(&bytes, address).unwrap();
        path
    }

    #[test]
    fn the_word_is_read_in_the_profiles_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let mem = phys_mem(dir.path(), 0x44E3_E068, [0xB0, 0x01, 0x00, 0x05]);
        let big = read(&mem, &register(ByteOrder::BigEndian)).unwrap();
        assert_eq!((big.word, big.now, big.trial.value()), (0xB001_0005, BootCount(5), 6));
        // The same bytes little-endian are 0x050001B0: no magic, so U-Boot counts 0.
        let little = read(&mem, &register(ByteOrder::LittleEndian)).unwrap();
        assert_eq!((little.word, little.now, little.trial.value()), (0x0500_01B0, BootCount(0), 1));
        let mem = phys_mem(dir.path(), 0x5c00_0000, [0x07, 0x00, 0x01, 0xB0]);
        let reg = BootcountRegister { address: 0x5c00_0000, byte_order: ByteOrder::LittleEndian };
        assert_eq!(read(&mem, &reg).unwrap().now, BootCount(7));
    }

    #[test]
    fn no_magic_counts_zero_and_the_trial_is_the_first_boot() {
        let dir = tempfile::tempdir().unwrap();
        let mem = phys_mem(dir.path(), 0x44E3_E068, [0, 0, 0, 3]);
        let counter = read(&mem, &register(ByteOrder::BigEndian)).unwrap();
        assert_eq!((counter.now, counter.trial.value()), (BootCount(0), 1));
    }

    #[test]
    fn an_unreadable_counter_is_refused_naming_the_address_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-mem");
        let text = read(&missing, &register(ByteOrder::BigEndian)).unwrap_err().to_string();
        assert!(
            text.starts_with("cannot read U-Boot's boot counter at 0x44e3e068 through "),
            "{text}"
        );
        assert!(text.contains("the trial cannot be armed safely"), "{text}");
        // A file that ends before the address: a short read is as unreadable.
        let short = dir.path().join("short");
        std::fs::write(&short, [0u8; 16]).unwrap();
        let text = read(&short, &register(ByteOrder::BigEndian)).unwrap_err().to_string();
        assert!(text.contains("cannot read U-Boot's boot counter"), "{text}");
    }

    #[test]
    fn an_unaligned_address_is_refused_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let mem = phys_mem(dir.path(), 0x44E3_E068, [0xB0, 0x01, 0x00, 0x05]);
        let reg = BootcountRegister { address: 0x44E3_E069, byte_order: ByteOrder::BigEndian };
        let text = read(&mem, &reg).unwrap_err().to_string();
        assert!(text.contains("not a 32-bit aligned address"), "{text}");
    }

    #[test]
    fn the_top_of_the_counter_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mem = phys_mem(dir.path(), 0x44E3_E068, [0xB0, 0x01, 0xFF, 0xFF]);
        let err = read(&mem, &register(ByteOrder::BigEndian)).unwrap_err();
        assert!(matches!(err, Refusal1x::BootCounterAtLimit(_)), "{err}");
        assert!(err.to_string().contains("power the board off and on"), "{err}");
    }
}
