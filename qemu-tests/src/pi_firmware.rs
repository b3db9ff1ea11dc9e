//! The Raspberry Pi 1–3 GPU firmware, played by the harness (issue 16,
//! docs/arm-1x-contract.md §2.2, §4.2). QEMU's `raspi*` machines do not run the firmware
//! (background arm-boot-facts.md: `bcm2835_powermgt` resets at once and clears RSTS), so the
//! harness plays it between QEMU runs of `-M virt` with Debian's armhf kernel:
//!
//! 1. [`next_boot`]: which partition the firmware boots. The 1.x kernel (4.1, contract P4/P8)
//!    writes its `reboot_part` into PM_RSTS on every restart, and the firmware boots that
//!    partition (P7); newer kernels take it from `reboot(RESTART2, "N")` (P10). The Debian
//!    kernel prints the command it restarts with (`reboot: Restarting system with command
//!    'N'`, measured in contract §4.1), so the player reads the LAST such kernel line of the
//!    previous run. A restart without a command (`reboot -f`, a panic's restart) → 1, as
//!    `reboot_part` starts at 0 in every booted kernel (P11); a power cut → 1 (RSTS cleared);
//!    partition 0 is "the default partition" (raspberrypi/documentation
//!    `documentation/asciidoc/computers/config_txt/autoboot.adoc`, `boot_partition`) → 1;
//!    63 and power-off mean halt (P7, P8). Not played: a hardware-watchdog reset (R3).
//! 2. [`BootConfig::parse`]: partition N's `config.txt`, following raspberrypi/documentation
//!    `documentation/asciidoc/computers/config_txt/` (`what_is_config_txt.adoc` file format,
//!    `boot.adoc` keys, `conditional.adoc` filters; commit f6839a6f of boot.adoc):
//!    - one `property=value` per line; a comment is a line starting with `#` (a `#` later in
//!      a line is part of the value); an entry longer than 78 characters is refused (the limit
//!      for entries is 98 today and "previously 78": the firmware of 1.x, 20161209, is old — P2);
//!    - `kernel=` (default `kernel.img` on the Pi 1, `kernel7.img` on the Pi 2/3),
//!      `cmdline=` (default `cmdline.txt`), `initramfs <file> followkernel` (no `=`; an
//!      explicit address or a comma-separated list is refused: not played); later lines win;
//!    - filters: `[all]`, `[none]` and the model filters `[pi1]` `[pi2]` `[pi3]` `[pi3+]`
//!      `[pi0]` `[pi0w]` `[pi02]` `[pi4]` `[pi400]` `[cm4]` `[cm4s]` (a model filter replaces
//!      the one before it) are played; every other filter (`[EDID=…]`, serial, `[gpioN=…]`,
//!      `[HDMI:…]`, `[tryboot]`, `[board-type=…]`) is refused;
//!    - keys that change what the firmware loads but are not played (`os_prefix`,
//!      `ramfsfile`, `ramfsaddr`, `device_tree`, `start_file`, `start_x`, `include` …, see
//!      [`REFUSED_KEYS`]) are refused; every other key (`gpu_mem`, `dtparam`, `dtoverlay`,
//!      `initramfs=…` written with a `=` …) is ignored and listed in [`BootConfig::ignored`].
//! 3. [`plan_boot`]: partition N must be a FAT file system holding `start.elf` and
//!    `fixup.dat` (the firmware files `bootcode.bin` loads; `bootcode.bin` itself must be on
//!    partition 1, where the boot ROM reads it), the kernel, the initramfs and the cmdline file
//!    its config names, and the board's dtb. They are read with mtools (`-i disk@@offset`).
//! 4. [`start`]: `qemu-system-arm -M virt -no-reboot -kernel <kernel> -initrd <initramfs>
//!    -append <cmdline> -dtb <dtb>`, each file as read from partition N. When the kernel file
//!    is the 2.x U-Boot stand-in ([`UBOOT_KERNEL_STANDIN`]: from 2.14.1 resinOS's
//!    `kernel7.img` is U-Boot, contract P14; balena-raspberrypi v2.14.1+rev1
//!    `layers/meta-resin-raspberrypi/recipes-core/images/resin-image.bbappend`,
//!    `RESIN_BOOT_PARTITION_FILES_rpi = "u-boot.bin:/${SDIMG_KERNELIMAGE} boot.scr:/boot.scr
//!    ${KERNEL_IMAGETYPE}…:/${KERNEL_IMAGETYPE} …"`), the harness's real U-Boot
//!    (`.cache/uboot/current/u-boot.bin`, scripts/setup-bbb-uboot.sh) runs as `-bios` instead,
//!    with the board's dtb carrying the command line in `/chosen/bootargs` (where the firmware
//!    puts it for whatever it starts, and where balena's `boot.scr` reads it), and finds the
//!    partition's `boot.scr` by its distro boot (as the Pi's U-Boot finds it on `mmc 0`).
//!
//! The command line: the firmware passes the cmdline file's first line with `serial0` resolved
//! to the board's primary UART ([`firmware_cmdline`]). raspberrypi/documentation
//! `documentation/asciidoc/computers/config_txt/boot.adoc` (`enable_uart`): "`enable_uart=1`
//! (in conjunction with `console=serial0,115200` in `cmdline.txt`) requests that the kernel
//! creates a serial console"; `documentation/asciidoc/computers/configuration/uart.adoc`
//! ("Primary and Secondary UART" table, "Linux devices on Raspberry Pi OS"): `serial0` is the
//! primary UART — the first PL011 (`ttyAMA0`) on the Pi 1 and 2, the mini UART (`ttyS0`) on
//! the Pi 3, whose PL011 serves Bluetooth. Whether the firmware rewrites the word or the
//! downstream kernel resolves it through the device tree's `serial0` alias, that document does
//! not say (the Nerves rpi3 `cmdline.txt` says "serial0 is magically replaced to the right
//! thing by the RPi bootloader"); Debian's kernel knows no `serial0` console, and `-M virt`
//! has one PL011, so the player hands over `ttyAMA0` for every model — a named deviation of
//! the player (on a real Pi 3 it would be `ttyS0`), not of the stand-ins, whose `cmdline.txt`
//! keep the real `console=serial0,115200`.
//!
//! Named deviations: `kernel7.img` is Debian's armhf zImage (1.x) or a U-Boot stand-in file
//! (2.x), and the board's dtb file is QEMU's `virt` tree (files of those names, so the player
//! passes exactly what the partition holds); the firmware's own additions to the command line
//! (board revision, MAC address …) are not played; the firmware blobs are dummies whose
//! presence is checked.

use crate::disk::{self, PartitionTable, TablePartition};
use crate::qemu::{arm_virt_command, Vm};
use crate::tools::run;
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};

/// The Pi models the player knows (their default kernel name and dtb).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiModel {
    /// Model 1 B (ARMv6, `kernel.img`).
    Pi1,
    /// Model 2 B (`kernel7.img`).
    Pi2,
    /// Model 3 B (`kernel7.img`; not 3B+, which also sees `[pi3+]`).
    Pi3,
}

impl PiModel {
    /// `kernel`'s default (raspberrypi/documentation `config_txt/boot.adoc`, `kernel`).
    pub fn default_kernel(self) -> &'static str {
        match self {
            PiModel::Pi1 => "kernel.img",
            PiModel::Pi2 | PiModel::Pi3 => "kernel7.img",
        }
    }

    /// The dtb the firmware loads for this board (the downstream names the 1.x boot partition
    /// carries; the firmware picks it by board revision — not played beyond this name).
    pub fn dtb(self) -> &'static str {
        match self {
            PiModel::Pi1 => "bcm2708-rpi-b.dtb",
            PiModel::Pi2 => "bcm2709-rpi-2-b.dtb",
            PiModel::Pi3 => "bcm2710-rpi-3-b.dtb",
        }
    }

    /// The model filter this board passes (`conditional.adoc` table).
    fn filter(self) -> &'static str {
        match self {
            PiModel::Pi1 => "pi1",
            PiModel::Pi2 => "pi2",
            PiModel::Pi3 => "pi3",
        }
    }
}

/// Model filters of `conditional.adoc`.
const MODEL_FILTERS: [&str; 11] =
    ["pi1", "pi2", "pi3", "pi3+", "pi0", "pi0w", "pi02", "pi4", "pi400", "cm4", "cm4s"];

/// Keys that change what the firmware loads or how, which the player does not play: a
/// config.txt using one is refused rather than booted wrongly (`boot.adoc`, `autoboot.adoc`).
pub const REFUSED_KEYS: [&str; 17] = [
    "os_prefix",
    "overlay_prefix",
    "upstream_kernel",
    "ramfsfile",
    "ramfsaddr",
    "device_tree",
    "device_tree_address",
    "kernel_address",
    "kernel_old",
    "arm_64bit",
    "arm_control",
    "armstub",
    "start_file",
    "fixup_file",
    "start_x",
    "start_debug",
    "boot_partition",
];

/// The longest config.txt line the player accepts: "98-character line length limit
/// (previously 78)" (`what_is_config_txt.adoc`); 1.x's firmware is the old one.
pub const MAX_LINE: usize = 78;

/// How the previous QEMU run of the board ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// No previous run: the board is powered on.
    PowerOn,
    /// QEMU exited by itself (`-no-reboot`: the guest restarted or powered off); its console.
    Exited,
    /// The harness killed QEMU (a power cut).
    PowerCut,
}

/// What the firmware does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextBoot {
    /// Boot this partition (1-based, as `reboot N` counts).
    Partition(u32),
    /// Halt (power-off, or partition 63): nothing boots until power is cycled.
    Halt,
}

/// The kernel line of a restart with a command (Linux `kernel/reboot.c` `kernel_restart`).
const RESTART_WITH_COMMAND: &str = "reboot: Restarting system with command '";
const RESTART: &str = "reboot: Restarting system";
const POWER_DOWN: &str = "reboot: Power down";
const HALTED: &str = "reboot: System halted";

/// The partition the firmware boots after a run that ended as `end` and printed `console`.
pub fn next_boot(end: RunEnd, console: &str) -> Result<NextBoot> {
    if end != RunEnd::Exited {
        return Ok(NextBoot::Partition(1));
    }
    let last = console.lines().rev().find(|l| l.contains("reboot: "));
    let Some(line) = last else {
        // No kernel restart line: a panic's emergency restart (it bypasses kernel_restart),
        // which on the Pi writes `reboot_part`, 0 in the booted kernel.
        return Ok(NextBoot::Partition(1));
    };
    if let Some((_, rest)) = line.split_once(RESTART_WITH_COMMAND) {
        let command = rest.rsplit_once('\'').map(|(c, _)| c).unwrap_or(rest);
        return partition_of_command(command);
    }
    if line.contains(POWER_DOWN) || line.contains(HALTED) {
        return Ok(NextBoot::Halt);
    }
    if line.contains(RESTART) {
        return Ok(NextBoot::Partition(1));
    }
    bail!("a kernel reboot line the player does not know: {line:?}")
}

/// `reboot N`'s argument → the partition (P7: six 2-bit-spread bits, 0–63; 63 = halt).
fn partition_of_command(command: &str) -> Result<NextBoot> {
    let n: u32 = command.trim().parse().with_context(|| {
        format!("reboot command {command:?} is not a partition number (\"0 tryboot\" and the like are not played)")
    })?;
    Ok(match n {
        0 => NextBoot::Partition(1),
        63 => NextBoot::Halt,
        1..=62 => NextBoot::Partition(n),
        _ => bail!("reboot command {n}: PM_RSTS holds partitions 0..=63 only"),
    })
}

/// What partition N's config.txt says the firmware loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    pub kernel: String,
    /// `initramfs <file> followkernel`, if any.
    pub initramfs: Option<String>,
    /// The file holding the kernel command line.
    pub cmdline: String,
    /// Lines of the active sections with keys the player ignores, as written.
    pub ignored: Vec<String>,
}

impl BootConfig {
    /// The firmware's defaults (no config.txt, or one without these keys).
    pub fn defaults(model: PiModel) -> BootConfig {
        BootConfig {
            kernel: model.default_kernel().to_string(),
            initramfs: None,
            cmdline: "cmdline.txt".to_string(),
            ignored: Vec::new(),
        }
    }

    /// Applies config.txt `text` for `model` (the rules in the module comment).
    pub fn parse(text: &str, model: PiModel) -> Result<BootConfig> {
        let mut config = BootConfig::defaults(model);
        let mut active = true;
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let line = raw.trim_end_matches('\r').trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            ensure!(
                line.chars().count() <= MAX_LINE,
                "config.txt line {number} is longer than {MAX_LINE} characters (the old firmware's limit): {line:?}"
            );
            if let Some(filter) = line.strip_prefix('[') {
                let filter = filter
                    .strip_suffix(']')
                    .with_context(|| format!("config.txt line {number}: {line:?}"))?;
                active = match filter {
                    "all" => true,
                    "none" => false,
                    f if MODEL_FILTERS.contains(&f) => f == model.filter(),
                    other => bail!(
                        "config.txt line {number}: filter [{other}] is not played by the harness"
                    ),
                };
                continue;
            }
            if !active {
                continue;
            }
            if let Some(args) =
                line.strip_prefix("initramfs").filter(|a| a.starts_with([' ', '\t']))
            {
                config.initramfs = Some(initramfs_file(args, number)?);
                continue;
            }
            if line.starts_with("include ") || line == "include" {
                bail!("config.txt line {number}: `include` is not played by the harness");
            }
            let (key, value) = match line.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (line, ""),
            };
            ensure!(
                !REFUSED_KEYS.contains(&key),
                "config.txt line {number}: `{key}` changes what the firmware loads and is not played by the harness"
            );
            match key {
                "kernel" => config.kernel = non_empty(value, key, number)?,
                "cmdline" => config.cmdline = non_empty(value, key, number)?,
                _ => config.ignored.push(line.to_string()),
            }
        }
        Ok(config)
    }
}

fn non_empty(value: &str, key: &str, number: usize) -> Result<String> {
    ensure!(!value.is_empty(), "config.txt line {number}: `{key}=` without a file");
    Ok(value.to_string())
}

/// `initramfs <file> <address>`'s file; only `followkernel` (or `0`, its synonym) is played.
fn initramfs_file(args: &str, number: usize) -> Result<String> {
    let words: Vec<&str> = args.split_whitespace().collect();
    match words.as_slice() {
        [file, "followkernel" | "0"] if !file.contains(',') => Ok(file.to_string()),
        [file, _] if file.contains(',') => {
            bail!("config.txt line {number}: several initramfs files (newer firmware only) are not played")
        }
        _ => bail!(
            "config.txt line {number}: `initramfs {}` — only `initramfs <file> followkernel` is played",
            args.trim()
        ),
    }
}

/// What the firmware hands the kernel, read from partition `partition` into host files.
#[derive(Debug, Clone)]
pub struct BootPlan {
    pub partition: u32,
    /// The partition's MBR type as sfdisk prints it (`c`, `83` …), for tests to check.
    pub mbr_type: String,
    pub config: BootConfig,
    pub kernel: PathBuf,
    pub initramfs: Option<PathBuf>,
    pub dtb: PathBuf,
    /// The command line the firmware passes: the cmdline file's first line through
    /// [`firmware_cmdline`].
    pub cmdline: String,
    /// What the kernel file is, so what runs.
    pub handover: Handover,
}

/// What the firmware starts from the kernel file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// A Linux zImage: QEMU's `-kernel`.
    Linux,
    /// The 2.x U-Boot stand-in: the harness U-Boot as QEMU's `-bios`, this file.
    Uboot { bios: PathBuf },
}

/// resinOS 2.x's `kernel7.img` (U-Boot, contract P14) in the 2.x stand-ins: text the player
/// recognises (as `bbb_uboot` recognises its `u-boot.img` stand-ins) and answers by running
/// the harness U-Boot as `-bios`.
pub const UBOOT_KERNEL_STANDIN: &str =
    "# stand-in: resinOS 2.x kernel7.img, U-Boot (rpi_3_32b) with balena's environment\n\
# the harness firmware player runs its own U-Boot as QEMU -bios for it\n\
harness_kernel=u-boot\n";

/// The player's rule for the kernel file (see [`UBOOT_KERNEL_STANDIN`]).
fn handover_for(kernel: &[u8]) -> Result<Handover> {
    if kernel != UBOOT_KERNEL_STANDIN.as_bytes() {
        return Ok(Handover::Linux);
    }
    let bios = crate::bbb_uboot::harness_uboot_dir().join("u-boot.bin");
    ensure!(bios.exists(), "no harness U-Boot at {}: run scripts/setup.sh", bios.display());
    Ok(Handover::Uboot { bios })
}

/// The primary UART as the firmware names it on the command line (see the module comment).
const SERIAL0: &str = "serial0";
/// `-M virt`'s PL011, what `serial0` becomes in the player (named deviation).
const VIRT_UART: &str = "ttyAMA0";

/// The command line the player hands over for the cmdline file's first line `line`:
/// `console=serial0…` → `console=ttyAMA0…` (module comment); other words unchanged.
pub fn firmware_cmdline(line: &str) -> String {
    line.split_whitespace()
        .map(|word| match word.strip_prefix("console=").and_then(|c| c.strip_prefix(SERIAL0)) {
            Some(rest) if rest.is_empty() || rest.starts_with(',') => {
                format!("console={VIRT_UART}{rest}")
            }
            _ => word.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The firmware files `bootcode.bin` loads from the boot partition.
pub const FIRMWARE_FILES: [&str; 2] = ["start.elf", "fixup.dat"];
/// The second stage the boot ROM loads from the first partition.
pub const BOOTCODE: &str = "bootcode.bin";

/// A file of `part`'s FAT, or why the firmware would not find it.
fn fat_file(disk: &Path, part: &TablePartition, number: u32, path: &str) -> Result<Vec<u8>> {
    disk::read_fat_file(disk, part, path)
        .with_context(|| format!("the firmware finds no {path} on partition {number}"))
}

/// Reads what the firmware would load from partition `partition` of `disk` for `model`, into
/// files under `work`.
pub fn plan_boot(disk: &Path, partition: u32, model: PiModel, work: &Path) -> Result<BootPlan> {
    let table = PartitionTable::read(disk)?;
    fat_file(disk, table.number(1)?, 1, BOOTCODE)?;
    let part = table.number(partition)?;
    for f in FIRMWARE_FILES {
        fat_file(disk, part, partition, f)?;
    }
    let config = match disk::read_fat_file(disk, part, "config.txt") {
        Ok(bytes) => BootConfig::parse(&String::from_utf8_lossy(&bytes), model)?,
        // config.txt is optional (`what_is_config_txt.adoc`). mtools cannot tell a missing
        // file from an unreadable FAT; start.elf was read, so the FAT is readable.
        Err(_) => BootConfig::defaults(model),
    };
    std::fs::create_dir_all(work)?;
    let save = |name: &str, path: &str| -> Result<PathBuf> {
        let out = work.join(name);
        std::fs::write(&out, fat_file(disk, part, partition, path)?)?;
        Ok(out)
    };
    let kernel = save("kernel", &config.kernel)?;
    let handover = handover_for(&std::fs::read(&kernel)?)?;
    let initramfs = config.initramfs.as_deref().map(|f| save("initramfs", f)).transpose()?;
    let dtb = save("dtb", model.dtb())?;
    let cmdline_bytes = fat_file(disk, part, partition, &config.cmdline)?;
    let cmdline =
        firmware_cmdline(String::from_utf8_lossy(&cmdline_bytes).lines().next().unwrap_or(""));
    if handover != Handover::Linux {
        // The firmware's dtb carries the command line for what it starts.
        run(
            "fdtput",
            [
                "-t".as_ref(),
                "s".as_ref(),
                dtb.as_os_str(),
                "/chosen".as_ref(),
                "bootargs".as_ref(),
                cmdline.as_ref(),
            ],
        )?;
    }
    Ok(BootPlan {
        partition,
        mbr_type: part.kind.clone(),
        config,
        kernel,
        initramfs,
        dtb,
        cmdline,
        handover,
    })
}

/// Starts the board as the firmware would hand over to `plan`'s kernel: `-M virt`, `disk`
/// (the SD card stand-in) as the first virtio disk, `extra_disks` after it, a user NIC.
/// QEMU exits on the guest's restart (`-no-reboot`) so that the player chooses again.
pub fn start(
    name: &str,
    plan: &BootPlan,
    disk: &Path,
    extra_disks: &[(&str, &Path)],
) -> Result<Vm> {
    let mut disks = vec![("sd", disk)];
    disks.extend_from_slice(extra_disks);
    if let Handover::Uboot { .. } = plan.handover {
        // U-Boot numbers virtio-mmio devices in reverse command-line order (contract §4.1):
        // the SD card last is U-Boot's device 0, as the Pi's card is `mmc 0`.
        disks.reverse();
    }
    let mut cmd = arm_virt_command(&disks, true);
    cmd.arg("-no-reboot").arg("-dtb").arg(&plan.dtb);
    match &plan.handover {
        Handover::Linux => {
            cmd.arg("-kernel").arg(&plan.kernel).arg("-append").arg(&plan.cmdline);
            if let Some(rd) = &plan.initramfs {
                cmd.arg("-initrd").arg(rd);
            }
        }
        // QEMU copies the dtb to the start of RAM for firmware (hw/arm/boot.c), where
        // qemu_arm's U-Boot reads it (`fdt_addr=0x40000000`, include/configs/qemu-arm.h).
        Handover::Uboot { bios } => {
            ensure!(
                plan.initramfs.is_none(),
                "an initramfs with U-Boot as the kernel is not played"
            );
            cmd.arg("-bios").arg(bios);
        }
    }
    Vm::start_command(name, cmd)
}

/// A board the player drives through a sequence of QEMU runs: the SD card stand-in, the disks
/// attached after it (e.g. the harness disk), where the player keeps each run's files.
#[derive(Debug, Clone)]
pub struct Board {
    /// Names the runs' VMs (`<name>-run<N>`) and their logs.
    pub name: String,
    pub model: PiModel,
    pub disk: PathBuf,
    pub extra_disks: Vec<(String, PathBuf)>,
    pub work: PathBuf,
    /// QEMU runs started so far.
    pub runs: u32,
}

impl Board {
    pub fn new(
        name: &str,
        model: PiModel,
        disk: &Path,
        extra_disks: &[(&str, &Path)],
        work: &Path,
    ) -> Board {
        Board {
            name: name.to_string(),
            model,
            disk: disk.to_path_buf(),
            extra_disks: extra_disks
                .iter()
                .map(|(n, p)| (n.to_string(), p.to_path_buf()))
                .collect(),
            work: work.to_path_buf(),
            runs: 0,
        }
    }

    /// Plays the firmware after a run that ended as `end` with `console` ([`RunEnd::PowerOn`]
    /// and `""` for a power-on) and starts the next run; an error when the firmware halts.
    pub fn boot(&mut self, end: RunEnd, console: &str) -> Result<(BootPlan, Vm)> {
        let NextBoot::Partition(n) = next_boot(end, console)? else {
            bail!("the player halts after:\n{console}");
        };
        self.runs += 1;
        let plan =
            plan_boot(&self.disk, n, self.model, &self.work.join(format!("run{}", self.runs)))?;
        eprintln!("[{}] run {}: {}", self.name, self.runs, describe(&plan));
        let extra: Vec<(&str, &Path)> =
            self.extra_disks.iter().map(|(n, p)| (n.as_str(), p.as_path())).collect();
        let vm = start(&format!("{}-run{}", self.name, self.runs), &plan, &self.disk, &extra)?;
        Ok((plan, vm))
    }
}

/// One line saying what the firmware loads, for logs and assertion messages.
pub fn describe(plan: &BootPlan) -> String {
    format!(
        "partition {} (type {}): kernel={}{} initramfs={} cmdline={:?}",
        plan.partition,
        plan.mbr_type,
        plan.config.kernel,
        if plan.handover == Handover::Linux { "" } else { " (U-Boot: -bios)" },
        plan.config.initramfs.as_deref().unwrap_or("-"),
        plan.cmdline
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::RootTree;

    /// A disk with two FAT partitions filled from `(partition, path, content)`.
    fn fixture_disk(dir: &Path, files: &[(u32, &str, &str)]) -> PathBuf {
        const MIB: u64 = 1 << 20;
        let disk = dir.join("sd.img");
        disk::create_sparse(&disk, 10 * MIB).unwrap();
        disk::write_table(
            &disk,
            "label: dos\nunit: sectors\n\nstart=2048, size=8192, type=c, bootable\nstart=10240, size=8192, type=c\n",
        )
        .unwrap();
        for (number, offset) in [(1, MIB), (2, 5 * MIB)] {
            let tree = RootTree::fresh_empty(&dir.join(format!("p{number}"))).unwrap();
            for (_, path, content) in files.iter().filter(|f| f.0 == number) {
                tree.file(path, content.as_bytes(), 0o644).unwrap();
            }
            let fs = dir.join(format!("p{number}.fs"));
            disk::mkfs_vfat(&fs, 4 * MIB, "P", "1234abcd", &tree.root).unwrap();
            disk::place_into_fresh_sparse(&disk, offset, &fs).unwrap();
        }
        disk
    }

    #[test]
    fn plan_boot_reads_partition_n_of_a_fat_fixture() {
        let dir = std::env::temp_dir().join(format!("pi-firmware-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let trial = [
            (2, "start.elf", "fw"),
            (2, "fixup.dat", "fx"),
            (2, "kernel7.img", "TRIAL KERNEL"),
            (2, "bcm2710-rpi-3-b.dtb", "DTB"),
            (2, "config.txt", "kernel=kernel7.img\ninitramfs swapover/rd.img followkernel\ncmdline=swapover/cmdline.txt\n"),
            (2, "swapover/rd.img", "RD"),
            (2, "swapover/cmdline.txt", "console=ttyAMA0 swapover.stage=trial\nsecond line\n"),
        ];
        let p1 = [
            (1, "bootcode.bin", "bc"),
            (1, "start.elf", "fw"),
            (1, "fixup.dat", "fx"),
            (1, "kernel7.img", "1X KERNEL"),
            (1, "bcm2710-rpi-3-b.dtb", "DTB"),
            (1, "cmdline.txt", "root=/dev/mmcblk0p2\n"),
        ];
        let all: Vec<_> = p1.iter().chain(trial.iter()).copied().collect();
        let disk = fixture_disk(&dir, &all);
        let plan = plan_boot(&disk, 2, PiModel::Pi3, &dir.join("w2")).unwrap();
        assert_eq!(std::fs::read_to_string(&plan.kernel).unwrap(), "TRIAL KERNEL");
        assert_eq!(std::fs::read_to_string(plan.initramfs.as_ref().unwrap()).unwrap(), "RD");
        assert_eq!(plan.cmdline, "console=ttyAMA0 swapover.stage=trial");
        assert_eq!(plan.mbr_type, "c");
        // Partition 1 has no config.txt: the defaults.
        let plan = plan_boot(&disk, 1, PiModel::Pi3, &dir.join("w1")).unwrap();
        assert_eq!(std::fs::read_to_string(&plan.kernel).unwrap(), "1X KERNEL");
        assert_eq!((plan.initramfs, plan.cmdline.as_str()), (None, "root=/dev/mmcblk0p2"));

        // The same trial without start.elf, or naming an initramfs it lacks, does not boot;
        // without bootcode.bin on partition 1 nothing does.
        let no_start: Vec<_> =
            all.iter().filter(|f| *f != &(2, "start.elf", "fw")).copied().collect();
        let disk = fixture_disk(&dir, &no_start);
        assert!(plan_boot(&disk, 2, PiModel::Pi3, &dir.join("w3")).is_err());
        let no_rd: Vec<_> = all.iter().filter(|f| f.1 != "swapover/rd.img").copied().collect();
        let disk = fixture_disk(&dir, &no_rd);
        assert!(plan_boot(&disk, 2, PiModel::Pi3, &dir.join("w4")).is_err());
        let no_bootcode: Vec<_> = all.iter().filter(|f| f.1 != "bootcode.bin").copied().collect();
        let disk = fixture_disk(&dir, &no_bootcode);
        assert!(plan_boot(&disk, 1, PiModel::Pi3, &dir.join("w5")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_restart_with_a_command_boots_that_partition_and_the_last_line_counts() {
        let console = "[ 1.0] reboot: Restarting system with command '5'\nlater\n[ 9.1] reboot: Restarting system with command '3'\n";
        assert_eq!(next_boot(RunEnd::Exited, console).unwrap(), NextBoot::Partition(3));
    }

    #[test]
    fn a_restart_without_a_command_a_panic_or_a_power_cut_boots_partition_1() {
        let plain =
            "[ 5.0] reboot: Restarting system with command '3'\n[ 9.0] reboot: Restarting system\n";
        assert_eq!(next_boot(RunEnd::Exited, plain).unwrap(), NextBoot::Partition(1));
        let panic =
            "Kernel panic - not syncing: VFS: Unable to mount root fs\nRebooting in 10 seconds..\n";
        assert_eq!(next_boot(RunEnd::Exited, panic).unwrap(), NextBoot::Partition(1));
        let with_3 = "reboot: Restarting system with command '3'\n";
        assert_eq!(next_boot(RunEnd::PowerCut, with_3).unwrap(), NextBoot::Partition(1));
        assert_eq!(next_boot(RunEnd::PowerOn, "").unwrap(), NextBoot::Partition(1));
    }

    #[test]
    fn partition_0_is_the_default_63_and_power_off_halt_and_words_are_refused() {
        let cmd = |c: &str| format!("reboot: Restarting system with command '{c}'\n");
        assert_eq!(next_boot(RunEnd::Exited, &cmd("0")).unwrap(), NextBoot::Partition(1));
        assert_eq!(next_boot(RunEnd::Exited, &cmd("63")).unwrap(), NextBoot::Halt);
        assert_eq!(next_boot(RunEnd::Exited, "reboot: Power down\n").unwrap(), NextBoot::Halt);
        assert!(next_boot(RunEnd::Exited, &cmd("0 tryboot")).is_err());
        assert!(next_boot(RunEnd::Exited, &cmd("64")).is_err());
    }

    #[test]
    fn serial0_becomes_the_virt_uart_and_nothing_else_changes() {
        let line =
            "dwc_otg.lpm_enable=0 console=tty1 console=serial0,115200 root=/dev/mmcblk0p2 rootwait";
        assert_eq!(
            firmware_cmdline(line),
            "dwc_otg.lpm_enable=0 console=tty1 console=ttyAMA0,115200 root=/dev/mmcblk0p2 rootwait"
        );
        assert_eq!(firmware_cmdline("console=serial0"), "console=ttyAMA0");
        for same in ["console=serial01,9600", "console=ttyS0,115200", "kgdboc=serial0,115200"] {
            assert_eq!(firmware_cmdline(same), same);
        }
    }

    #[test]
    fn only_the_uboot_standin_is_handed_to_uboot() {
        assert_eq!(handover_for(b"\x00\x00\xa0\xe1 zImage").unwrap(), Handover::Linux);
        let mut near = UBOOT_KERNEL_STANDIN.as_bytes().to_vec();
        near.push(b'x');
        assert_eq!(handover_for(&near).unwrap(), Handover::Linux);
    }

    #[test]
    fn defaults_follow_the_model() {
        assert_eq!(BootConfig::parse("", PiModel::Pi3).unwrap().kernel, "kernel7.img");
        let pi1 = BootConfig::parse("# nothing\n", PiModel::Pi1).unwrap();
        assert_eq!((pi1.kernel.as_str(), pi1.cmdline.as_str()), ("kernel.img", "cmdline.txt"));
        assert_eq!(pi1.initramfs, None);
    }

    #[test]
    fn the_trial_config_the_stager_writes_is_read_as_the_contract_says() {
        let text = "gpu_mem=16\ndtparam=audio=on\nkernel=kernel7.img\ninitramfs swapover/initramfs.img followkernel\ncmdline=swapover/cmdline.txt\n";
        let c = BootConfig::parse(text, PiModel::Pi3).unwrap();
        assert_eq!(c.kernel, "kernel7.img");
        assert_eq!(c.initramfs.as_deref(), Some("swapover/initramfs.img"));
        assert_eq!(c.cmdline, "swapover/cmdline.txt");
        assert_eq!(c.ignored, ["gpu_mem=16", "dtparam=audio=on"]);
    }

    #[test]
    fn later_lines_win_and_comments_are_whole_lines_only() {
        let text =
            "kernel=a.img\n# kernel=b.img\ncmdline=x.txt\nkernel=c.img\ncmdline=y.txt # note\n";
        let c = BootConfig::parse(text, PiModel::Pi2).unwrap();
        assert_eq!(c.kernel, "c.img");
        assert_eq!(c.cmdline, "y.txt # note", "a trailing # is part of the value");
    }

    #[test]
    fn model_filters_all_and_none_are_played() {
        let text = "[pi1]\nkernel=one.img\n[pi2]\nkernel=two.img\n[pi3]\nkernel=three.img\n[none]\ncmdline=never.txt\n[all]\ninitramfs rd.img followkernel\n";
        for (model, kernel) in
            [(PiModel::Pi1, "one.img"), (PiModel::Pi2, "two.img"), (PiModel::Pi3, "three.img")]
        {
            let c = BootConfig::parse(text, model).unwrap();
            assert_eq!(c.kernel, kernel, "{model:?}");
            assert_eq!(c.cmdline, "cmdline.txt", "[none] hides its lines");
            assert_eq!(c.initramfs.as_deref(), Some("rd.img"), "[all] applies to every model");
        }
        let plus = BootConfig::parse("[pi3+]\nkernel=plus.img\n", PiModel::Pi3).unwrap();
        assert_eq!(plus.kernel, "kernel7.img", "a 3 B does not see [pi3+]");
    }

    #[test]
    fn what_is_not_played_is_refused() {
        for text in [
            "[tryboot]\nkernel=x\n",
            "[EDID=VSC-TD2220]\n",
            "[gpio4=1]\n",
            "[0x12345678]\n",
            "os_prefix=next/\n",
            "ramfsfile=rd.img\n",
            "device_tree=my.dtb\n",
            "start_x=1\n",
            "include extra.txt\n",
            "initramfs rd.img 0x00800000\n",
            "initramfs a.img,b.img followkernel\n",
            "initramfs rd.img\n",
            "kernel=\n",
        ] {
            assert!(BootConfig::parse(text, PiModel::Pi3).is_err(), "{text:?} was accepted");
        }
        let long = format!("dtoverlay={}\n", "x".repeat(MAX_LINE));
        assert!(BootConfig::parse(&long, PiModel::Pi3).is_err(), "a line past the old limit");
        // A refused key in an inactive section does not matter.
        assert!(BootConfig::parse("[pi1]\nos_prefix=x/\n[all]\n", PiModel::Pi3).is_ok());
    }

    #[test]
    fn initramfs_with_an_equals_sign_is_not_the_initramfs_command() {
        let c = BootConfig::parse("initramfs=rd.img followkernel\n", PiModel::Pi3).unwrap();
        assert_eq!(c.initramfs, None);
        assert_eq!(c.ignored, ["initramfs=rd.img followkernel"]);
    }
}
