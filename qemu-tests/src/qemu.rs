//! One QEMU virtual machine: started under TCG (KVM hangs on these machines), its serial
//! console captured to a log file under `target/qemu-tests/logs/`, awaited marker by
//! marker with a timeout per stage, and killed at a chosen moment to simulate a power cut.

use crate::paths;
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How a disk image is attached.
#[derive(Debug, Clone)]
pub struct Drive {
    pub image: PathBuf,
    /// `ide` makes the first disk `sda` under the guest kernel, as on the real devices.
    pub interface: &'static str,
    /// A QEMU blkdebug rules file put between the guest and the image (fault injection).
    pub blkdebug: Option<PathBuf>,
}

impl Drive {
    pub fn ide(image: impl Into<PathBuf>) -> Self {
        Drive { image: image.into(), interface: "ide", blkdebug: None }
    }

    /// The same drive with QEMU's blkdebug driver injecting the errors `config` describes.
    pub fn with_blkdebug(self, config: impl Into<PathBuf>) -> Self {
        Drive { blkdebug: Some(config.into()), ..self }
    }
}

/// The machine's firmware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firmware {
    /// QEMU's default SeaBIOS: boots the MBR code of the first disk.
    Bios,
    /// OVMF (UEFI): boots `\EFI\BOOT\BOOTX64.EFI` of a FAT partition. `vars` is this VM's own
    /// writable copy of the variable store (see [`uefi_vars_copy`]).
    Uefi { vars: PathBuf },
}

/// Debian's ovmf package: the UEFI firmware code (read-only) and its variable store template.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// A fresh copy of OVMF's variable store for the VM `name` (firmware writes to it).
pub fn uefi_vars_copy(name: &str) -> Result<PathBuf> {
    let dst = paths::artifacts_dir().join("runs").join(format!("{name}-OVMF_VARS.fd"));
    if let Some(d) = dst.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::copy(OVMF_VARS, &dst)
        .with_context(|| format!("copying {OVMF_VARS} (run scripts/setup.sh: package ovmf)"))?;
    Ok(dst)
}

/// What to boot and how.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Names the console log (`logs/<name>.log`); make it unique per test run.
    pub name: String,
    pub drives: Vec<Drive>,
    pub memory_mib: u32,
    /// Let a guest reboot continue in the same VM (otherwise QEMU exits on reboot).
    pub allow_reboot: bool,
    pub firmware: Firmware,
}

impl VmConfig {
    pub fn new(name: &str, drives: Vec<Drive>) -> Self {
        VmConfig {
            name: name.to_string(),
            drives,
            memory_mib: 1536,
            allow_reboot: true,
            firmware: Firmware::Bios,
        }
    }
}

#[derive(Default)]
struct Console {
    bytes: Vec<u8>,
    closed: bool,
}

/// A running VM. Dropping it kills QEMU.
pub struct Vm {
    child: Child,
    console: Arc<(Mutex<Console>, Condvar)>,
    cursor: usize,
    log_path: PathBuf,
    started: Instant,
    stages: Vec<(String, Duration)>,
}

impl Vm {
    pub fn start(config: &VmConfig) -> Result<Vm> {
        std::fs::create_dir_all(paths::logs_dir())?;
        let log_path = paths::logs_dir().join(format!("{}.log", config.name));
        let mut log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", "tcg", "-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-serial", "stdio", "-monitor", "none", "-nic", "none"])
            .args(["-m", &config.memory_mib.to_string()]);
        if let Firmware::Uefi { vars } = &config.firmware {
            cmd.arg("-drive")
                .arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"));
            cmd.arg("-drive").arg(format!("if=pflash,format=raw,unit=1,file={}", vars.display()));
        }
        if !config.allow_reboot {
            cmd.arg("-no-reboot");
        }
        for (index, d) in config.drives.iter().enumerate() {
            let file = match &d.blkdebug {
                None => format!("file={}", d.image.display()),
                Some(rules) => format!(
                    "file.driver=blkdebug,file.config={},file.image.driver=file,file.image.filename={}",
                    rules.display(),
                    d.image.display()
                ),
            };
            cmd.arg("-drive")
                .arg(format!("{file},format=raw,if={},index={index},cache=writeback", d.interface));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start qemu-system-x86_64 (run scripts/setup.sh)")?;
        let mut stdout = child.stdout.take().context("qemu stdout")?;
        let mut stderr = child.stderr.take().context("qemu stderr")?;
        let console: Arc<(Mutex<Console>, Condvar)> = Arc::default();
        let sink = Arc::clone(&console);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = stdout.read(&mut buf).unwrap_or(0);
                let (lock, cv) = &*sink;
                let Ok(mut c) = lock.lock() else { return };
                if n == 0 {
                    c.closed = true;
                    cv.notify_all();
                    return;
                }
                let _ = log.write_all(&buf[..n]);
                let _ = log.flush();
                c.bytes.extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
        });
        let err_sink = Arc::clone(&console);
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            if !text.trim().is_empty() {
                let (lock, cv) = &*err_sink;
                if let Ok(mut c) = lock.lock() {
                    c.bytes.extend_from_slice(format!("\n[qemu stderr] {text}\n").as_bytes());
                    cv.notify_all();
                }
            }
        });
        Ok(Vm { child, console, cursor: 0, log_path, started: Instant::now(), stages: Vec::new() })
    }

    /// The console log file of this run.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Waits until `marker` appears on the console after the previous awaited marker.
    /// Returns the whole console line that holds it. On timeout or VM exit, the error names
    /// the marker and shows the last console lines.
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.console;
        let mut c = lock.lock().map_err(|_| anyhow::anyhow!("console lock poisoned"))?;
        loop {
            if let Some(pos) = find(&c.bytes[self.cursor..], marker.as_bytes()) {
                let at = self.cursor + pos;
                let line_start =
                    c.bytes[..at].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                // Wait for the rest of the line so callers get all of it.
                let line_end = loop {
                    if let Some(e) = c.bytes[at..].iter().position(|b| *b == b'\n') {
                        break at + e;
                    }
                    if c.closed || Instant::now() >= deadline {
                        break c.bytes.len();
                    }
                    c = cv
                        .wait_timeout(c, Duration::from_millis(50))
                        .map_err(|_| anyhow::anyhow!("lock"))?
                        .0;
                };
                let line =
                    String::from_utf8_lossy(&c.bytes[line_start..line_end]).trim_end().to_string();
                self.cursor = line_end;
                self.stages.push((marker.to_string(), self.started.elapsed()));
                return Ok(line);
            }
            let now = Instant::now();
            if c.closed || now >= deadline {
                let why = if c.closed { "the VM stopped" } else { "timed out" };
                let tail = tail_lines(&c.bytes, 25);
                bail!(
                    "{why} after {:.1}s waiting for console marker `{marker}` (log: {})\n--- last console lines ---\n{tail}",
                    self.started.elapsed().as_secs_f64(),
                    self.log_path.display()
                );
            }
            c = cv.wait_timeout(c, deadline - now).map_err(|_| anyhow::anyhow!("lock"))?.0;
        }
    }

    /// Like [`Vm::wait_for`], but a timeout is an answer (`None`), not an error.
    pub fn wait_for_opt(&mut self, marker: &str, timeout: Duration) -> Result<Option<String>> {
        let deadline = Instant::now() + timeout;
        {
            let (lock, cv) = &*self.console;
            let mut c = lock.lock().map_err(|_| anyhow::anyhow!("console lock poisoned"))?;
            while find(&c.bytes[self.cursor..], marker.as_bytes()).is_none() {
                let now = Instant::now();
                if c.closed || now >= deadline {
                    return Ok(None);
                }
                c = cv.wait_timeout(c, deadline - now).map_err(|_| anyhow::anyhow!("lock"))?.0;
            }
        }
        self.wait_for(marker, Duration::from_secs(5)).map(Some)
    }

    /// Everything the console printed so far.
    pub fn console_text(&self) -> String {
        let (lock, _) = &*self.console;
        lock.lock().map(|c| String::from_utf8_lossy(&c.bytes).into_owned()).unwrap_or_default()
    }

    /// Counts how often `marker` appears in the whole console output so far.
    pub fn count(&self, marker: &str) -> usize {
        self.console_text().matches(marker).count()
    }

    /// Pulls the plug: QEMU is killed at once, nothing is flushed by the guest.
    pub fn power_cut(&mut self) -> Result<()> {
        let _ = self.child.kill();
        self.child.wait()?;
        Ok(())
    }

    /// Waits for QEMU to exit by itself (guest powered off, or rebooted with `-no-reboot`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let tail = tail_lines(self.console_text().as_bytes(), 25);
                let _ = self.power_cut();
                bail!(
                    "VM did not power off within {timeout:?} (log: {})\n{tail}",
                    self.log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Time since start at which each awaited marker appeared.
    pub fn stages(&self) -> &[(String, Duration)] {
        &self.stages
    }

    /// Seconds since the VM started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn tail_lines(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
