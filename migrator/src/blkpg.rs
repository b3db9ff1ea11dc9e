//! Kernel partition devices without touching the on-disk table: the BLKPG ioctl
//! adds (or deletes) a partition in the kernel's view of a disk only. Used to reach
//! resinOS's partitions while the disk's MBR is still the old one (the new one is
//! the commit point, written last).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use plan::Bytes;

const BLKPG_ADD_PARTITION: libc::c_int = 1;
const BLKPG_DEL_PARTITION: libc::c_int = 2;
const DEVNAME_BYTES: usize = 64;

/// `struct blkpg_partition` (linux/blkpg.h): byte offsets.
#[repr(C)]
pub struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [libc::c_char; DEVNAME_BYTES],
    volname: [libc::c_char; DEVNAME_BYTES],
}

/// `struct blkpg_ioctl_arg`.
#[repr(C)]
pub struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

// BLKPG is _IO(0x12, 105) but takes a pointer ("bad" in nix's terms).
nix::ioctl_write_ptr_bad!(blkpg_ioctl, nix::request_code_none!(0x12, 105), BlkpgIoctlArg);
nix::ioctl_none!(blkrrpart_ioctl, 0x12, 95);
nix::ioctl_none!(blkflsbuf_ioctl, 0x12, 97);

#[derive(Debug, thiserror::Error)]
pub enum BlkpgError {
    #[error("cannot {op} kernel partition {number} ({start}+{length}) on {disk}: {source}")]
    Ioctl {
        op: &'static str,
        number: u32,
        start: Bytes,
        length: Bytes,
        disk: String,
        source: nix::Error,
    },
    #[error("partition offset or length {0} does not fit the kernel's 64-bit signed field")]
    TooLarge(Bytes),
}

fn call(
    disk: &File,
    op: libc::c_int,
    number: u32,
    start: Bytes,
    length: Bytes,
) -> Result<(), nix::Error> {
    let as_i64 = |b: Bytes| i64::try_from(b.get()).map_err(|_| nix::Error::EOVERFLOW);
    let mut part = BlkpgPartition {
        start: as_i64(start)?,
        length: as_i64(length)?,
        pno: libc::c_int::try_from(number).map_err(|_| nix::Error::EINVAL)?,
        devname: [0; DEVNAME_BYTES],
        volname: [0; DEVNAME_BYTES],
    };
    let arg = BlkpgIoctlArg {
        op,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (&mut part as *mut BlkpgPartition).cast(),
    };
    // SAFETY: `arg` points at a live, correctly laid out blkpg_partition for the call's duration.
    unsafe { blkpg_ioctl(disk.as_raw_fd(), &arg) }.map(drop)
}

/// Add kernel partition `number` covering `start..start+length` (bytes) of `disk`.
pub fn add_partition(
    disk: &File,
    disk_name: &str,
    number: u32,
    start: Bytes,
    length: Bytes,
) -> Result<(), BlkpgError> {
    call(disk, BLKPG_ADD_PARTITION, number, start, length).map_err(|source| BlkpgError::Ioctl {
        op: "add",
        number,
        start,
        length,
        disk: disk_name.into(),
        source,
    })
}

/// Remove kernel partition `number` of `disk` (the on-disk table is untouched).
pub fn delete_partition(disk: &File, disk_name: &str, number: u32) -> Result<(), BlkpgError> {
    call(disk, BLKPG_DEL_PARTITION, number, Bytes::ZERO, Bytes::ZERO).map_err(|source| {
        BlkpgError::Ioctl {
            op: "delete",
            number,
            start: Bytes::ZERO,
            length: Bytes::ZERO,
            disk: disk_name.into(),
            source,
        }
    })
}

/// Ask the kernel to re-read the partition table (fails with EBUSY while partitions are in use).
pub fn reread_partitions(disk: &File) -> Result<(), nix::Error> {
    // SAFETY: BLKRRPART takes no argument.
    unsafe { blkrrpart_ioctl(disk.as_raw_fd()) }.map(drop)
}

/// Flush the block device's buffer cache (after fsync), so the next read comes from the disk.
pub fn flush_buffers(disk: &File) -> Result<(), nix::Error> {
    // SAFETY: BLKFLSBUF takes no argument.
    unsafe { blkflsbuf_ioctl(disk.as_raw_fd()) }.map(drop)
}

/// Open a whole-disk device for the ioctls (read-only open is enough for BLKPG).
pub fn open_disk(node: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().read(true).write(true).open(node)
}
