//! BIOS boot code for an inner image that has none, from the flasher's own GRUB files.
//!
//! Facts (../shared/background/resinos-images-facts.md, "What the inner image needs"): inner
//! images of `v2.9.7+rev2`–`v2.14.x` carry no MBR boot code and up to `v2.9.2` they are
//! EFI-only; for a non-UEFI install the flasher board script dd's its `grub/boot.img` at
//! byte 0 and `grub/core.img` at byte 512 of the internal disk (balena-intel
//! `v2.12.7+rev1` `resin-init-flasher-board`, the non-UEFI branch). We take boot.img's
//! first 440 bytes only: bytes 440..512 (disk signature and partition table) stay the
//! inner image's.

use plan::Bytes;

/// MBR boot code: bytes 0..440.
pub const BOOT_CODE_BYTES: usize = 440;
/// core.img starts here (sector 1).
pub const CORE_IMG_OFFSET: usize = 512;

/// The head has no boot code (bytes 0..440 all zero).
pub fn lacks_boot_code(head: &[u8]) -> bool {
    head.len() >= BOOT_CODE_BYTES && head[..BOOT_CODE_BYTES].iter().all(|&b| b == 0)
}

/// Why the flasher's boot code cannot go in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootCodeError {
    #[error("the flasher's grub/boot.img is {0}, shorter than the {BOOT_CODE_BYTES} bytes of MBR boot code")]
    ShortBootImg(Bytes),
    #[error("the flasher's grub/core.img ({core}) does not fit between byte {CORE_IMG_OFFSET} and the inner image's first partition at byte {first_partition}")]
    CoreTooLarge { core: Bytes, first_partition: u64 },
}

/// Puts boot.img's first 440 bytes at byte 0 and core.img from byte 512 into `head`
/// (`first_partition`: byte offset where the first partition starts; core.img must end
/// before it and before the end of the head).
pub fn install(
    head: &mut [u8],
    boot_img: &[u8],
    core_img: &[u8],
    first_partition: u64,
) -> Result<(), BootCodeError> {
    if boot_img.len() < BOOT_CODE_BYTES {
        return Err(BootCodeError::ShortBootImg(Bytes(boot_img.len() as u64)));
    }
    let core_end = CORE_IMG_OFFSET + core_img.len();
    let limit = usize::try_from(first_partition).unwrap_or(usize::MAX).min(head.len());
    if core_end > limit {
        return Err(BootCodeError::CoreTooLarge {
            core: Bytes(core_img.len() as u64),
            first_partition,
        });
    }
    head[..BOOT_CODE_BYTES].copy_from_slice(&boot_img[..BOOT_CODE_BYTES]);
    head[CORE_IMG_OFFSET..core_end].copy_from_slice(core_img);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_code_and_core_go_in_and_the_table_stays() {
        let mut head = vec![0u8; 1 << 20];
        head[440..512].copy_from_slice(&[0x77; 72]);
        assert!(lacks_boot_code(&head));
        install(&mut head, &[0xeb; 512], &[0xc0; 2000], 4 << 20).unwrap();
        assert!(head[..440].iter().all(|&b| b == 0xeb));
        assert!(head[440..512].iter().all(|&b| b == 0x77));
        assert!(head[512..2512].iter().all(|&b| b == 0xc0));
        assert!(head[2512..].iter().all(|&b| b == 0));
        assert!(!lacks_boot_code(&head));
    }

    #[test]
    fn core_reaching_the_first_partition_is_refused_untouched() {
        let mut head = vec![0u8; 1 << 20];
        let error = install(&mut head, &[1; 512], &[2; 4096], 2048).unwrap_err();
        assert_eq!(error, BootCodeError::CoreTooLarge { core: Bytes(4096), first_partition: 2048 });
        assert!(install(&mut head, &[1; 100], &[2; 10], 4096).is_err());
        assert!(head.iter().all(|&b| b == 0));
    }
}
