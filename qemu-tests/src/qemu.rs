//! One QEMU virtual machine: started under TCG (KVM hangs on these machines), its serial
//! console captured to a log file under `target/qemu-tests/logs/`, awaited marker by
//! marker with a timeout per stage, and killed at a chosen moment to simulate a power cut.
//!
//! A VM that stops printing is told apart from a guest that hangs: disk images report host
//! I/O errors (ENOSPC included) to the guest instead of QEMU's default of pausing the VM
//! in silence, and a timeout names the VM's run state (asked over QMP) and the host's free
//! disk space in its first line.

use crate::console_splice::CleanConsole;
use crate::paths;
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
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
    /// A network card, as QEMU's `-nic` takes it (e.g. `user,model=e1000,hostfwd=…`);
    /// `None`: no network at all.
    pub nic: Option<String>,
}

impl VmConfig {
    pub fn new(name: &str, drives: Vec<Drive>) -> Self {
        VmConfig {
            name: name.to_string(),
            drives,
            memory_mib: 1536,
            allow_reboot: true,
            firmware: Firmware::Bios,
            nic: None,
        }
    }
}

/// `qemu-system-arm -M virt` as the ARM boards' tests run it (Debian's armhf kernel under
/// TCG, contract §4.1): 512 MiB, the serial console on stdio, `disks` (`(id, image)`) as
/// virtio-blk devices in that order, QEMU's user network as a virtio NIC if `user_nic`. The
/// caller adds what boots it (`-bios`, or `-kernel`/`-initrd`/`-append`/`-dtb`).
pub fn arm_virt_command(disks: &[(&str, &Path)], user_nic: bool) -> Command {
    let mut cmd = Command::new("qemu-system-arm");
    cmd.args(["-M", "virt", "-cpu", "cortex-a15", "-m", "512", "-accel", "tcg"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-serial", "stdio", "-monitor", "none", "-nic", "none"]);
    for (id, image) in disks {
        cmd.arg("-drive")
            .arg(format!("if=none,id={id},format=raw,file={},cache=writeback", image.display()))
            .arg("-device")
            .arg(format!("virtio-blk-device,drive={id}"));
    }
    if user_nic {
        cmd.args(["-netdev", "user,id=net0", "-device", "virtio-net-device,netdev=net0"]);
    }
    cmd
}

/// What the VM printed: `raw` as it came (also written to the log file), and the text the
/// tests search, with kernel messages moved out of the lines they interrupted
/// ([`crate::console_splice`]).
#[derive(Default)]
struct Console {
    raw: Vec<u8>,
    clean: CleanConsole,
    closed: bool,
}

impl Console {
    fn take(&mut self, data: &[u8]) {
        self.raw.extend_from_slice(data);
        self.clean.update(&self.raw, self.closed);
    }

    fn close(&mut self) {
        self.closed = true;
        self.clean.update(&self.raw, true);
    }

    fn text(&self) -> &[u8] {
        &self.clean.text
    }
}

/// A running VM. Dropping it kills QEMU.
pub struct Vm {
    child: Child,
    console: Arc<(Mutex<Console>, Condvar)>,
    cursor: usize,
    log_path: PathBuf,
    qmp_path: PathBuf,
    started: Instant,
    stages: Vec<(String, Duration)>,
}

/// Below this much free space under `target/` a VM is not started: its disk images grow as
/// the guest writes, and the failure would come as a guest I/O error halfway through.
const MIN_FREE_BYTES: u64 = 1536 * 1024 * 1024;

/// Free bytes on the file system holding `dir` (None if it cannot be asked).
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

fn describe_free(dir: &Path) -> String {
    match free_bytes(dir) {
        Some(free) => format!("{} MiB free on the host under {}", free >> 20, dir.display()),
        None => format!("free space under {} unknown", dir.display()),
    }
}

impl Vm {
    pub fn start(config: &VmConfig) -> Result<Vm> {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", "tcg", "-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-serial", "stdio", "-monitor", "none"])
            .args(["-nic", config.nic.as_deref().unwrap_or("none")])
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
            cmd.arg("-drive").arg(format!(
                "{file},format=raw,if={},index={index},cache=writeback,werror=report,rerror=report",
                d.interface
            ));
        }
        Vm::start_command(&config.name, cmd)
    }

    /// Starts the QEMU `cmd` (any machine; its serial console on stdio, nothing else on
    /// stdout) as the VM `name`: adds the QMP socket, captures and logs the console.
    pub fn start_command(name: &str, mut cmd: Command) -> Result<Vm> {
        std::fs::create_dir_all(paths::logs_dir())?;
        let log_path = paths::logs_dir().join(format!("{name}.log"));
        let artifacts = paths::artifacts_dir();
        if let Some(free) = free_bytes(&artifacts) {
            if free < MIN_FREE_BYTES {
                bail!(
                    "only {} MiB free under {}: a VM's disk images grow as the guest writes; free at least {} MiB and run again",
                    free >> 20,
                    artifacts.display(),
                    MIN_FREE_BYTES >> 20
                );
            }
        }
        let qmp_path = paths::logs_dir().join(format!("{name}.qmp"));
        let _ = std::fs::remove_file(&qmp_path);
        let mut log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        cmd.arg("-qmp").arg(format!("unix:{},server=on,wait=off", qmp_path.display()));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!("cannot start {:?} (run scripts/setup.sh)", cmd.get_program())
            })?;
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
                    c.close();
                    cv.notify_all();
                    return;
                }
                let _ = log.write_all(&buf[..n]);
                let _ = log.flush();
                c.take(&buf[..n]);
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
                    c.take(format!("\n[qemu stderr] {text}\n").as_bytes());
                    cv.notify_all();
                }
            }
        });
        Ok(Vm {
            child,
            console,
            cursor: 0,
            log_path,
            qmp_path,
            started: Instant::now(),
            stages: Vec::new(),
        })
    }

    /// The VM's run state as QEMU reports it (`running`, `paused`, `io-error`, …), asked over
    /// its QMP socket, or why it could not be asked.
    pub fn run_state(&self) -> String {
        match query_status(&self.qmp_path) {
            Ok(state) => state,
            Err(e) => format!("unknown ({e:#})"),
        }
    }

    /// One line saying what the host and QEMU know when the console went quiet.
    fn host_side(&self) -> String {
        format!("VM state: {}; {}", self.run_state(), describe_free(&paths::artifacts_dir()))
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
            if let Some(pos) = find(&c.text()[self.cursor..], marker.as_bytes()) {
                let at = self.cursor + pos;
                let line_start =
                    c.text()[..at].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                // Wait for the rest of the line so callers get all of it.
                let line_end = loop {
                    if let Some(e) = c.text()[at..].iter().position(|b| *b == b'\n') {
                        break at + e;
                    }
                    if c.closed || Instant::now() >= deadline {
                        break c.text().len();
                    }
                    c = cv
                        .wait_timeout(c, Duration::from_millis(50))
                        .map_err(|_| anyhow::anyhow!("lock"))?
                        .0;
                };
                let line =
                    String::from_utf8_lossy(&c.text()[line_start..line_end]).trim_end().to_string();
                self.cursor = line_end;
                self.stages.push((marker.to_string(), self.started.elapsed()));
                return Ok(line);
            }
            let now = Instant::now();
            if c.closed || now >= deadline {
                let why = if c.closed { "the VM stopped" } else { "timed out" };
                let tail = tail_lines(c.text(), 25);
                drop(c);
                bail!(
                    "{why} after {:.1}s waiting for console marker `{marker}` ({}; log: {})\n--- last console lines ---\n{tail}",
                    self.started.elapsed().as_secs_f64(),
                    self.host_side(),
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
            while find(&c.text()[self.cursor..], marker.as_bytes()).is_none() {
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
        lock.lock().map(|c| String::from_utf8_lossy(c.text()).into_owned()).unwrap_or_default()
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
                let host_side = self.host_side();
                let _ = self.power_cut();
                bail!(
                    "VM did not power off within {timeout:?} ({host_side}; log: {})\n{tail}",
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

/// Asks QEMU's QMP socket for `query-status`: the run state, e.g. `running` or `io-error`.
fn query_status(socket: &Path) -> Result<String> {
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?; // greeting
    writer.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
    line.clear();
    reader.read_line(&mut line)?;
    writer.write_all(b"{\"execute\":\"query-status\"}\n")?;
    // Asynchronous events (e.g. BLOCK_IO_ERROR) may come before the reply; name them too.
    let mut events = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("QMP closed the connection");
        }
        let reply: serde_json::Value = serde_json::from_str(line.trim())?;
        if let Some(event) = reply.get("event").and_then(|e| e.as_str()) {
            events.push(event.to_string());
            continue;
        }
        let ret = reply.get("return").context("QMP reply without a return value")?;
        let status = ret.get("status").and_then(|s| s.as_str()).unwrap_or("?");
        return Ok(if events.is_empty() {
            status.to_string()
        } else {
            format!("{status} (QMP events: {})", events.join(", "))
        });
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
