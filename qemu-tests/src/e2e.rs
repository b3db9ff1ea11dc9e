//! The whole takeover, end to end: the legacy host runs the real (packaged, static) stager
//! from a payload disk, reboots one-shot into the migrator, which flashes the resinOS
//! stand-in into the old root's space and reboots into it; the stand-in prints its verdict.
//! Used by the end-to-end tests and by the demo binary.

use crate::fixture::{self, Manifest};
use crate::flasher_image::{FlasherImage, FlasherVariant, FLASHER_RAN_MARKER};
use crate::host_image::{HostImage, SWAP_UUID};
use crate::paths;
use crate::payload::Payload;
use crate::qemu::{Drive, Vm, VmConfig};
use crate::resin_image::ResinImage;
use crate::verdict::{self, Verdict, SUMMARY_MARKER};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// The application id in the demo's config.json (the restore path has it).
pub const APP_ID: &str = "1234567";
pub const PROFILE: &str = "intel-nuc";

/// The packaged stager (stager with the migrator appended), built by scripts/build-static.sh.
pub fn packaged_stager() -> Result<PathBuf> {
    let path = paths::workspace_root().join("target/swapover/stager");
    if !path.exists() {
        bail!("no packaged stager at {}: run scripts/build-static.sh first", path.display());
    }
    Ok(path)
}

pub fn demo_config_json() -> String {
    format!(
        "{{\"applicationId\":{APP_ID},\"deviceType\":\"{PROFILE}\",\"userId\":42,\"uuid\":\"f0e1d2c3b4a5968778695a4b3c2d1e0f\",\
         \"apiEndpoint\":\"https://api.resin.io\",\"registryEndpoint\":\"registry.resin.io\",\"deviceApiKey\":\"demo-key\"}}\n"
    )
}

/// What one run produced.
pub struct Outcome {
    pub vm: Vm,
    /// The device's disk after the run.
    pub disk: PathBuf,
    pub verdict: Verdict,
    pub expected: Manifest,
    pub data_differences: Vec<String>,
    /// Console logs (of every boot of the run) in which the flasher stand-in announced
    /// itself ([`FLASHER_RAN_MARKER`]): it was booted and wiped the disk. Must stay empty.
    pub flasher_ran_in: Vec<PathBuf>,
}

/// What the stager inside the host is handed as `--image` (with the sha256 of that file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download {
    /// The 2.x stand-in itself, xz-compressed (`resinos.img.xz`).
    ImgXz,
    /// A flasher stand-in as the dashboard serves it: a `.zip` holding one flasher `.img`
    /// whose flash-rootA carries the 2.x image (issue 15).
    FlasherZip(FlasherVariant),
}

impl Download {
    /// The file for the payload, its name there and its sha256; and the raw image that the
    /// migration is meant to write (the flasher's inner image, not the flasher).
    fn resolve(self) -> Result<(PathBuf, String, String, PathBuf)> {
        Ok(match self {
            Download::ImgXz => {
                let image = ResinImage::ensure()?;
                (image.xz, "resinos.img.xz".to_string(), image.xz_sha256, image.raw)
            }
            Download::FlasherZip(variant) => {
                let flasher = FlasherImage::ensure(variant)?;
                let name = flasher.download_name();
                (flasher.zip, name, flasher.zip_sha256, flasher.inner_raw)
            }
        })
    }

    /// The raw image a migration from this download must leave on the disk (its table is
    /// what the final table is compared with).
    pub fn target_raw(self) -> Result<PathBuf> {
        Ok(self.resolve()?.3)
    }
}

/// Logs among `vms` whose console shows the flasher stand-in ran.
fn flasher_ran_in<'a>(vms: impl IntoIterator<Item = &'a Vm>) -> Vec<PathBuf> {
    vms.into_iter()
        .filter(|vm| vm.console_text().contains(FLASHER_RAN_MARKER))
        .map(|vm| vm.log_path().to_path_buf())
        .collect()
}

/// Prepares a host disk and a payload that stages the migration once from the 2.x stand-in's
/// `.img.xz`.
pub fn prepare(name: &str) -> Result<(HostImage, PathBuf, PathBuf, ResinImage)> {
    prepare_download(name, Download::ImgXz)
}

/// Prepares a host disk and a payload that stages the migration once from `download`.
pub fn prepare_download(
    name: &str,
    download: Download,
) -> Result<(HostImage, PathBuf, PathBuf, ResinImage)> {
    let host = HostImage::ensure()?;
    let image = ResinImage::ensure()?;
    let (file, file_name, sha, _) = download.resolve()?;
    let stager = packaged_stager()?;
    let disk = host.fresh_copy(name)?;
    let backups: String = fixture::BACKUP_PATHS.iter().map(|p| format!(" --backup {p}")).collect();
    let run_sh = format!(
        "# Stage once; later boots of the old OS (after a refused or failed attempt) only report.\n\
         if [ -e /var/lib/swapover-e2e-staged ]; then\n\
           ./stager status; echo SWAPOVER-E2E-OLD-OS-AGAIN\n\
           ./stager abort; echo \"SWAPOVER-E2E-ABORT exit=$?\"; sync; poweroff -f\n\
         fi\n\
         touch /var/lib/swapover-e2e-staged; sync\n\
         ./stager check --profile {PROFILE} --image './{file_name}' --config ./config.json\n\
         echo \"SWAPOVER-E2E-CHECK exit=$?\"\n\
         # --dry-run must print the plan and change nothing: fingerprint what staging would touch.\n\
         fp() {{ swapdev=$(findfs UUID={SWAP_UUID}); {{ sha256sum /etc/fstab /boot/grub/grubenv /boot/grub/grub.cfg; ls /boot/grub /var/lib; cat /proc/swaps; \
                dd if=$swapdev bs=4096 count=1 2>/dev/null | sha256sum; dd if=${{swapdev%5}} bs=512 count=1 2>/dev/null | sha256sum; }} | sha256sum | cut -c1-16; }}\n\
         before=$(fp)\n\
         ./stager stage --dry-run --profile {PROFILE} --image './{file_name}' --sha256 {sha} --config ./config.json{backups} > /tmp/dry-run.txt; dry=$?\n\
         cat /tmp/dry-run.txt\n\
         after=$(fp); [ \"$before\" = \"$after\" ] && same=yes || same=no\n\
         echo \"SWAPOVER-E2E-DRYRUN exit=$dry unchanged=$same lines=$(wc -l < /tmp/dry-run.txt)\"\n\
         ./stager stage --profile {PROFILE} --image './{file_name}' --sha256 {sha} --config ./config.json{backups}\n\
         echo \"SWAPOVER-E2E-STAGE exit=$?\"\n"
    );
    let payload = Payload::new(name, &run_sh)?;
    payload.add_file("stager", &stager, 0o755)?;
    payload.add_file(&file_name, &file, 0o644)?;
    payload.add_bytes("config.json", demo_config_json().as_bytes(), 0o644)?;
    let payload_disk = payload.build()?;
    Ok((host, disk, payload_disk, image))
}

/// Boots the host with the payload (the `.img.xz`) and follows the migration to the
/// stand-in's verdict.
pub fn run(name: &str) -> Result<Outcome> {
    run_download(name, Download::ImgXz)
}

/// Like [`run`], the stager being handed `download`.
pub fn run_download(name: &str, download: Download) -> Result<Outcome> {
    let (host, disk, payload_disk, _image) = prepare_download(name, download)?;
    let mut vm =
        Vm::start(&VmConfig::new(name, vec![Drive::ide(&disk), Drive::ide(&payload_disk)]))?;
    follow(&mut vm)?;
    let verdict = Verdict::parse(&vm.console_text())?;
    let expected = host.expected_manifest()?;
    let data_differences =
        verdict::differences(&expected, &verdict.data, &format!("resin-data/{APP_ID}"));
    let flasher_ran_in = flasher_ran_in([&vm]);
    Ok(Outcome { vm, disk, verdict, expected, data_differences, flasher_ran_in })
}

/// Awaits every stage of a migration on `vm`'s console, printing when each was reached.
pub fn follow(vm: &mut Vm) -> Result<()> {
    let stage = |vm: &mut Vm, marker: &str, secs: u64| -> Result<String> {
        let line = vm.wait_for(marker, Duration::from_secs(secs)).map_err(|e| {
            if vm.console_text().contains(FLASHER_RAN_MARKER) {
                e.context(format!(
                    "the resinOS *flasher* was booted and wiped the disk ({FLASHER_RAN_MARKER} \
                     on the console): the flasher image, not its inner image, was written"
                ))
            } else {
                e
            }
        })?;
        eprintln!("[stage {:>6.1}s] {}", vm.elapsed().as_secs_f64(), line.trim());
        Ok(line)
    };
    stage(vm, "SWAPOVER-HOST-UP", 180)?;
    let check = stage(vm, "SWAPOVER-E2E-CHECK", 120)?;
    if !check.ends_with("exit=0") {
        bail!("stager check refused the demo host: {check}\n(see {})", vm.log_path().display());
    }
    let dry = stage(vm, "SWAPOVER-E2E-DRYRUN", 300)?;
    if !dry.contains("exit=0 unchanged=yes") {
        bail!(
            "stager stage --dry-run failed or changed the host: {dry}\n(see {})",
            vm.log_path().display()
        );
    }
    let initramfs = stage(vm, "(Xz), ", 600)?;
    eprintln!(
        "[size] migration initramfs: {}",
        initramfs.split("initramfs: ").nth(1).unwrap_or(&initramfs)
    );
    stage(vm, "rebooting now", 600).context("the stager did not finish staging")?;
    stage(vm, "SWAPOVER-MIGRATOR-START", 300)
        .context("the stager did not reboot into the migrator")?;
    for step in ["arm-resume", "backup", "flash", "verify", "restore", "finalize"] {
        stage(vm, &format!("SWAPOVER-STEP {step} begin"), 600)?;
        stage(vm, &format!("SWAPOVER-STEP {step} done"), 600)?;
    }
    stage(vm, "SWAPOVER-MIGRATOR-REBOOT target=resinos", 120)?;
    stage(vm, "SWAPOVER-RESIN-GRUB", 120)?;
    stage(vm, SUMMARY_MARKER, 240)?;
    vm.wait_exit(Duration::from_secs(60))?;
    Ok(())
}

/// Prints when each awaited stage was reached, the downtime (reboot into the migrator →
/// resinOS verdict) and the bare flash time, with their ratio.
pub fn print_timings(vm: &Vm) {
    let at =
        |m: &str| vm.stages().iter().find(|(k, _)| k.starts_with(m)).map(|(_, d)| d.as_secs_f64());
    for (marker, t) in vm.stages() {
        eprintln!("[timing] {:>7.1}s {marker}", t.as_secs_f64());
    }
    if let (Some(start), Some(end)) = (at("rebooting now"), at(SUMMARY_MARKER)) {
        let downtime = end - start;
        eprintln!("[timing] downtime (stager reboots into the migrator → resinOS verdict): {downtime:.1}s");
        if let (Some(f0), Some(f1)) =
            (at("SWAPOVER-STEP flash begin"), at("SWAPOVER-STEP flash done"))
        {
            let flash = f1 - f0;
            eprintln!(
                "[timing] flash: {flash:.1}s; downtime / flash = {:.1}",
                downtime / flash.max(0.1)
            );
        }
    }
}

/// Where to pull the plug: `delay` after `marker` appears on the console.
#[derive(Debug, Clone)]
pub struct Cut {
    pub marker: String,
    pub delay: Duration,
}

impl Cut {
    pub fn after(marker: &str, delay_ms: u64) -> Cut {
        Cut { marker: marker.to_string(), delay: Duration::from_millis(delay_ms) }
    }
}

/// Runs the migration, cutting the power at each cut in turn (restarting the VM on the same
/// disks after each), then lets the last boot run to the stand-in's verdict.
pub fn run_with_cuts(name: &str, cuts: &[Cut]) -> Result<Outcome> {
    run_with_cuts_download(name, cuts, Download::ImgXz)
}

/// Like [`run_with_cuts`], the stager being handed `download`.
pub fn run_with_cuts_download(name: &str, cuts: &[Cut], download: Download) -> Result<Outcome> {
    let (host, disk, payload_disk, _image) = prepare_download(name, download)?;
    let drives = vec![Drive::ide(&disk), Drive::ide(&payload_disk)];
    let mut flasher_ran = Vec::new();
    for (i, cut) in cuts.iter().enumerate() {
        let mut vm = Vm::start(&VmConfig::new(&format!("{name}-boot{i}"), drives.clone()))?;
        let line = vm.wait_for(&cut.marker, Duration::from_secs(900))?;
        std::thread::sleep(cut.delay);
        vm.power_cut()?;
        flasher_ran.extend(flasher_ran_in([&vm]));
        eprintln!(
            "[cut {i}] power cut {:?} after `{}` ({:.1}s into boot {i})",
            cut.delay,
            line.trim(),
            vm.elapsed().as_secs_f64()
        );
    }
    // The last boot resumes the migrator, or (when the last cut came after finalize) goes
    // straight to resinOS; either way it must end in the stand-in's verdict.
    let mut vm = Vm::start(&VmConfig::new(&format!("{name}-final"), drives))?;
    let reached = vm.wait_for(SUMMARY_MARKER, Duration::from_secs(1200));
    flasher_ran.extend(flasher_ran_in([&vm]));
    if reached.is_err() && !flasher_ran.is_empty() {
        bail!("the resinOS flasher was booted and wiped the disk (see {flasher_ran:?})");
    }
    reached?;
    vm.wait_exit(Duration::from_secs(60))?;
    let verdict = Verdict::parse(&vm.console_text())?;
    let expected = host.expected_manifest()?;
    let data_differences =
        verdict::differences(&expected, &verdict.data, &format!("resin-data/{APP_ID}"));
    Ok(Outcome { vm, disk, verdict, expected, data_differences, flasher_ran_in: flasher_ran })
}

/// A small seeded generator (xorshift64*), so a campaign is reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// What one seeded run of random power cuts came to.
pub struct CampaignRun {
    pub cuts: usize,
    pub completed: bool,
    pub files_lost: usize,
    /// Ended in the old OS and `stager abort` restored it byte-for-byte.
    pub restored_old_os: bool,
    pub outcome: Option<Outcome>,
}

/// One migration with `cuts` power cuts at random moments (seeded): the first may fall in
/// the stager's staging, the rest in the migrator's run. After each cut the VM restarts on
/// the same disks. Ends when the stand-in's verdict is printed or the old OS comes back.
pub fn random_cuts_run(
    name: &str,
    seed: u64,
    cuts: usize,
    cut_staging: bool,
) -> Result<CampaignRun> {
    let mut rng = Rng::new(seed);
    let (host, disk, payload_disk, _image) = prepare(name)?;
    let drives = vec![Drive::ide(&disk), Drive::ide(&payload_disk)];
    let mut done_cuts = 0;
    for i in 0..=cuts {
        let mut vm = Vm::start(&VmConfig::new(&format!("{name}-boot{i}"), drives.clone()))?;
        let last = i == cuts;
        // Where this boot is going: old OS (stager), migrator, or already resinOS.
        let first = match (i, cut_staging) {
            (0, true) => "SWAPOVER-HOST-UP",
            (0, false) => "SWAPOVER-MIGRATOR-START",
            _ => "Linux version",
        };
        vm.wait_for(first, Duration::from_secs(300))?;
        if !last {
            let delay = Duration::from_millis(rng.below(if i == 0 && cut_staging {
                60_000
            } else {
                25_000
            }));
            if vm.wait_for_opt(SUMMARY_MARKER, delay)?.is_none() {
                vm.power_cut()?;
                done_cuts += 1;
                eprintln!(
                    "[campaign seed={seed}] cut {} after {:.1}s of boot {i}",
                    done_cuts,
                    vm.elapsed().as_secs_f64()
                );
                continue;
            }
        } else {
            // Run to the end: resinOS's verdict, or the old OS saying it is back.
            loop {
                let text = vm.console_text();
                if text.contains(SUMMARY_MARKER) || text.contains("SWAPOVER-E2E-ABORT exit=") {
                    break;
                }
                if vm.elapsed() > Duration::from_secs(1200) {
                    bail!(
                        "boot {i} reached neither resinOS nor the old OS (log {})",
                        vm.log_path().display()
                    );
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        // The verdict (or old OS) came: nothing more to cut.
        let text = vm.console_text();
        if text.contains(SUMMARY_MARKER) {
            let _ = vm.wait_exit(Duration::from_secs(60));
            let verdict = Verdict::parse(&vm.console_text())?;
            let expected = host.expected_manifest()?;
            let data_differences =
                verdict::differences(&expected, &verdict.data, &format!("resin-data/{APP_ID}"));
            let files_lost = data_differences.len();
            let completed = verdict.summary.ok && files_lost == 0;
            let flasher_ran_in = flasher_ran_in([&vm]);
            return Ok(CampaignRun {
                cuts: done_cuts,
                completed,
                files_lost,
                restored_old_os: false,
                outcome: Some(Outcome {
                    vm,
                    disk,
                    verdict,
                    expected,
                    data_differences,
                    flasher_ran_in,
                }),
            });
        }
        // Back in the old OS: `stager abort` must have restored the host exactly.
        let _ = vm.wait_exit(Duration::from_secs(60));
        let aborted = text.contains("SWAPOVER-E2E-ABORT exit=0");
        let restored = aborted && host_restored(&host.path, &disk)?.is_empty();
        eprintln!("[campaign seed={seed}] back in the old OS; abort ok={aborted}, host restored={restored}");
        return Ok(CampaignRun {
            cuts: done_cuts,
            completed: false,
            files_lost: 0,
            restored_old_os: restored,
            outcome: None,
        });
    }
    bail!("campaign run {name} ended without an outcome")
}

/// Differences between a host disk and its pristine image in what a refused, failed or
/// aborted staging must leave untouched: MBR and partition table, the swap header (signature
/// and UUID), fstab and GRUB's files. Empty means byte-identical.
pub fn host_restored(pristine: &std::path::Path, disk: &std::path::Path) -> Result<Vec<String>> {
    use crate::disk::{self, PartitionTable};
    let mut out = Vec::new();
    if disk::read_at(pristine, 0, 512)? != disk::read_at(disk, 0, 512)? {
        out.push("MBR (boot code or partition table) changed".to_string());
    }
    let table = PartitionTable::read(disk)?;
    let shape = |t: &PartitionTable| {
        t.partitions
            .iter()
            .map(|p| (p.start, p.size, p.kind.clone(), p.bootable))
            .collect::<Vec<_>>()
    };
    let before = PartitionTable::read(pristine)?;
    if shape(&before) != shape(&table) || before.id != table.id {
        out.push("partition table changed".to_string());
    }
    let swap = table.number(5)?;
    if disk::read_at(pristine, swap.offset_bytes(), 4096)?
        != disk::read_at(disk, swap.offset_bytes(), 4096)?
    {
        out.push("swap header (signature, UUID) differs".to_string());
    }
    let root = table.number(1)?;
    for file in ["/etc/fstab", "/boot/grub/grubenv", "/boot/grub/grub.cfg"] {
        if disk::read_ext4_file(pristine, root, file)? != disk::read_ext4_file(disk, root, file)? {
            out.push(format!("{file} differs"));
        }
    }
    if disk::list_ext4_dir(disk, root, "/boot/grub")?.iter().any(|n| n == "custom.cfg") {
        out.push("custom.cfg left behind".to_string());
    }
    Ok(out)
}
