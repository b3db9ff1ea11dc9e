//! The effects on the running system that are not file writes: swap, block devices,
//! mounts, sync and reboot. [`RealSystem`] does them; tests on fixture trees use
//! [`FixtureSystem`], which does the real loop/mount work but only records swap and reboot
//! (the build machine's swap and power are not the fixture's).

use crate::stage::host_extras::Region;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;

pub trait System {
    fn swap_off(&mut self, device: &Path) -> io::Result<()>;
    fn swap_on(&mut self, device: &Path) -> io::Result<()>;
    /// A block device for `region`: its own node, or a loop device over an image file.
    /// Returns (device path, `Some(loop device)` when one was set up).
    fn attach(&mut self, region: &Region) -> io::Result<(String, Option<String>)>;
    fn detach(&mut self, loop_device: &str) -> io::Result<()>;
    fn mount(&mut self, device: &str, target: &Path, read_only: bool) -> io::Result<()>;
    fn unmount(&mut self, target: &Path) -> io::Result<()>;
    fn sync(&mut self);
    fn reboot(&mut self) -> io::Result<()>;
    /// Reboots with `LINUX_REBOOT_CMD_RESTART2` and `arg` (the Raspberry Pi's firmware
    /// takes the partition to boot once from it, contract P8).
    fn restart2(&mut self, arg: &str) -> io::Result<()>;
}

/// The system a command acts on: the real one for the real `/`; for a fixture tree given
/// as `--root`, a [`FixtureSystem`] (real loop devices and mounts, recorded swap and reboot).
/// Every command chooses here.
pub fn for_root(root: &crate::host::HostRoot) -> Box<dyn System> {
    if root.dir() == Path::new("/") {
        Box::new(RealSystem)
    } else {
        Box::new(FixtureSystem::default())
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("path contains a NUL byte"))
}

/// The running system.
#[derive(Debug, Default)]
pub struct RealSystem;

impl System for RealSystem {
    fn restart2(&mut self, arg: &str) -> io::Result<()> {
        nix::unistd::sync();
        let arg =
            CString::new(arg).map_err(|_| io::Error::other("argument contains a NUL byte"))?;
        // SAFETY: reboot(2) with the documented magic numbers, RESTART2 and a valid
        // NUL-terminated argument string that outlives the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_reboot,
                libc::LINUX_REBOOT_MAGIC1,
                libc::LINUX_REBOOT_MAGIC2,
                libc::LINUX_REBOOT_CMD_RESTART2,
                arg.as_ptr(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn swap_off(&mut self, device: &Path) -> io::Result<()> {
        let path = c_path(device)?;
        // SAFETY: a valid NUL-terminated path; swapoff(2) reads it only.
        let rc = unsafe { libc::swapoff(path.as_ptr()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn swap_on(&mut self, device: &Path) -> io::Result<()> {
        let path = c_path(device)?;
        // SAFETY: a valid NUL-terminated path; swapon(2) reads it only.
        let rc = unsafe { libc::swapon(path.as_ptr(), 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn attach(&mut self, region: &Region) -> io::Result<(String, Option<String>)> {
        let is_block = std::fs::metadata(&region.file)?.file_type().is_block_device();
        if is_block && region.offset.get() == 0 {
            return Ok((region.file.display().to_string(), None));
        }
        let output = Command::new("losetup")
            .args(["--find", "--show", "--offset"])
            .arg(region.offset.get().to_string())
            .arg("--sizelimit")
            .arg(region.size.get().to_string())
            .arg(&region.file)
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "losetup failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let device = String::from_utf8_lossy(&output.stdout).trim().to_string();
        Ok((device.clone(), Some(device)))
    }

    fn detach(&mut self, loop_device: &str) -> io::Result<()> {
        let status = Command::new("losetup").arg("-d").arg(loop_device).status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("losetup -d {loop_device} failed")))
        }
    }

    fn mount(&mut self, device: &str, target: &Path, read_only: bool) -> io::Result<()> {
        std::fs::create_dir_all(target)?;
        let flags =
            if read_only { nix::mount::MsFlags::MS_RDONLY } else { nix::mount::MsFlags::empty() };
        nix::mount::mount(Some(device), target, Some("ext4"), flags, None::<&str>)
            .map_err(io::Error::from)
    }

    /// A mount that was just written can be held for a moment by whoever the write woke
    /// (udev's blkid probe, a desktop's automounter): EBUSY is retried for up to 2 s before
    /// it is reported. Any other error is reported at once.
    fn unmount(&mut self, target: &Path) -> io::Result<()> {
        const ATTEMPTS: u32 = 20;
        let mut attempt = 1;
        loop {
            match nix::mount::umount2(target, nix::mount::MntFlags::empty()) {
                Err(nix::errno::Errno::EBUSY) if attempt < ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => return other.map_err(io::Error::from),
            }
        }
    }

    fn sync(&mut self) {
        nix::unistd::sync();
    }

    fn reboot(&mut self) -> io::Result<()> {
        nix::unistd::sync();
        nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT)
            .map(|_| ())
            .map_err(io::Error::from)
    }
}

/// For fixture trees: real loop devices and mounts, recorded swap and reboot.
#[derive(Debug, Default)]
pub struct FixtureSystem {
    pub real: RealSystem,
    /// What was asked, in order: `swapoff <path>`, `swapon <path>`, `reboot`.
    pub calls: Vec<String>,
}

impl System for FixtureSystem {
    fn swap_off(&mut self, device: &Path) -> io::Result<()> {
        self.calls.push(format!("swapoff {}", device.display()));
        Ok(())
    }
    fn swap_on(&mut self, device: &Path) -> io::Result<()> {
        self.calls.push(format!("swapon {}", device.display()));
        Ok(())
    }
    fn attach(&mut self, region: &Region) -> io::Result<(String, Option<String>)> {
        self.real.attach(region)
    }
    fn detach(&mut self, loop_device: &str) -> io::Result<()> {
        self.real.detach(loop_device)
    }
    fn mount(&mut self, device: &str, target: &Path, read_only: bool) -> io::Result<()> {
        self.real.mount(device, target, read_only)
    }
    fn unmount(&mut self, target: &Path) -> io::Result<()> {
        self.real.unmount(target)
    }
    fn sync(&mut self) {
        self.real.sync();
    }
    fn reboot(&mut self) -> io::Result<()> {
        self.calls.push("reboot".into());
        Ok(())
    }
    fn restart2(&mut self, arg: &str) -> io::Result<()> {
        self.calls.push(format!("reboot {arg}"));
        Ok(())
    }
}
