//! The ARM builds doing real work under qemu-user on each board's CPU: the ARMv7 build
//! (Raspberry Pi 2/3, BeagleBone Black) under `qemu-arm-static -cpu cortex-a8`, the BeagleBone
//! Black's CPU (AM335x, Cortex-A8: https://www.ti.com/product/AM3358), and the ARMv6 build
//! (Raspberry Pi 1 / Zero) under `-cpu arm1176`, the Pi 1's (BCM2835, ARM1176JZF-S:
//! https://www.raspberrypi.com/documentation/computers/processors.html). Both are static glibc
//! binaries (rustup serves no ARM musl std here; for ARMv6 it serves no std at all, so
//! `scripts/package-stager.sh armv6` builds one from rust-src with `-Zbuild-std` against
//! Debian's armel glibc: docs/arm-1x-contract.md §3), made and packaged as the x86 one is: the
//! stager with the migrator appended.
//!
//! Shown, each through the ARM binaries themselves:
//! - the packages and the migrators are 32-bit ARM ELF, static (no PT_INTERP: nothing for a
//!   resinOS 1.x root's loader to resolve); the ARMv7 ones built for ARMv7 with VFP register
//!   arguments, the ARMv6 migrator for ARMv6;
//! - the migrators start on their CPUs (and, not being PID 1, refuse to run);
//! - an ARM1176 under qemu really refuses ARMv7 code (the ARMv7 package dies of SIGILL there),
//!   so every ARMv6 run below would have caught an ARMv7 instruction on its path;
//! - the only ARMv7 code in the ARMv6 build is ring's NEON assembly, which ring runs only when
//!   the kernel reports NEON (contract R8; the Pi 1 has none);
//! - `plan-image` for the BeagleBone on a real 1.x disk image and a real xz'd 2.x image
//!   (lzma-sys's C decoder, MBR, FAT, ext4 and btrfs reading, U-Boot's boot counter read at
//!   0x44E3E068 of a sparse `--phys-mem` file standing for /dev/mem, the trial's uEnv.txt)
//!   prints the same plan, byte for byte, as the host build of the stager;
//! - `stage-1x --dry-run` of each package (its migrator read back from /proc/self/exe and its
//!   sha256 checked, the initramfs sized around it) asks a real HTTPS resin API on loopback,
//!   reached by a host name, for the device's supervisor: TLS by rustls with ring's ARM code,
//!   and the name resolved by reqwest's pure-Rust hickory resolver from /etc/hosts, while the
//!   nsswitch.conf the process sees names a module no glibc has, so that glibc's getaddrinfo
//!   (which a static glibc answers by dlopen()ing libnss_* of its own version, absent on a
//!   1.x root) could not have resolved it. On the ARM1176 this is a Raspberry Pi 1's 1.x
//!   device tree, and the dry run prints the Pi 1's one-shot trial (`kernel.img`,
//!   `bcm2708`'s `reboot_part`); then the ARMv6 package stages it for real (the spare as a
//!   FAT32 trial set by fatfs, files read back by sha256, the initramfs around the ARMv6
//!   migrator, `reboot_part` = 3), `status` reads it armed, and `abort` gives every disk byte
//!   outside the spare back.
//!
//! (The migrators' flash engine runs on both CPUs by `scripts/test.sh`, through the targets'
//! runners in .cargo/config.toml.)
//!
//! The files the ARM process sees as /etc/hosts, /etc/nsswitch.conf and /etc/resolv.conf come
//! from qemu-user's `-L` prefix, which qemu looks in first for every absolute path the guest
//! opens (https://www.qemu.org/docs/master/user/main.html, "-L path").
//!
//! Without qemu-arm-static the tests say so loudly and pass, except in CI (`CI=true`), where
//! they fail: scripts/setup.sh installs it.

#[path = "stage_support/mod.rs"]
mod stage_support;

#[path = "resinos1x_support/mod.rs"]
mod resinos1x_support;

#[path = "support/mod.rs"]
mod support;

use board_profiles::Profile;
use resinos1x_support::device::Device;
use resinos1x_support::{resinos1x_case, IMAGE_SUPERVISOR, MIB, PI_LAYOUT};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use support::api_server::{ApiServer, ApiState};
use support::test_ca::TestCa;

const QEMU: &str = "qemu-arm-static";
/// The API's host name: only the `-L` prefix's /etc/hosts knows it.
const API_HOST: &str = "api.swapover-arm.test";

/// One ARM build: what `scripts/package-stager.sh` calls it, its Rust target, and the CPU
/// qemu plays for it.
struct Arch {
    /// `scripts/package-stager.sh`'s argument, and the package's directory under
    /// target/swapover.
    name: &'static str,
    target: &'static str,
    cpu: &'static str,
    /// The cargo target directory the script builds in, under target/.
    target_dir: &'static str,
    build: OnceLock<ArmBuild>,
}

/// Raspberry Pi 2/3 and BeagleBone Black.
static ARMV7: Arch = Arch {
    name: "armv7",
    target: "armv7-unknown-linux-gnueabihf",
    cpu: "cortex-a8",
    target_dir: ".",
    build: OnceLock::new(),
};
/// Raspberry Pi 1 / Zero.
static ARMV6: Arch = Arch {
    name: "armv6",
    target: "arm-unknown-linux-gnueabi",
    cpu: "arm1176",
    target_dir: "armv6-build",
    build: OnceLock::new(),
};

/// Whether qemu-arm-static can be run; outside CI its absence skips the test, loudly.
fn qemu_present(test: &str) -> bool {
    if Command::new(QEMU).arg("-version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {QEMU} is missing in CI; scripts/setup.sh installs qemu-user-static");
    }
    // Straight to the process's stderr, past the test harness's output capture.
    let _ = writeln!(
        std::io::stderr(),
        "\n\n!!!!! SKIPPED {test}: {QEMU} is not installed, the ARM binaries were NOT run. \
         Run scripts/setup.sh (it installs qemu-user-static). !!!!!\n\n"
    );
    false
}

struct ArmBuild {
    package: PathBuf,
    migrator: PathBuf,
    /// The target's build directory (build scripts' outputs: the C and assembly objects).
    release: PathBuf,
}

impl Arch {
    /// The package and migrator, built and packaged by the script CI uses (cheap when up to
    /// date; scripts/build-static.sh has built them before the tests in CI), once per test
    /// process: the script writes the package through one temporary file.
    fn build(&self) -> &ArmBuild {
        self.build.get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
            let status = Command::new("bash")
                .arg(root.join("scripts/package-stager.sh"))
                .arg(self.name)
                .status()
                .expect("run scripts/package-stager.sh");
            assert!(status.success(), "scripts/package-stager.sh {} failed", self.name);
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or(root.join("target"));
            let release = target.join(self.target_dir).join(self.target).join("release");
            ArmBuild {
                package: target.join("swapover").join(self.name).join("stager"),
                migrator: release.join("migrator"),
                release,
            }
        })
    }

    /// `qemu-arm-static -cpu <cpu> [-L prefix] binary`.
    fn run(&self, binary: &Path, prefix: Option<&Path>) -> Command {
        let mut command = Command::new(QEMU);
        command.args(["-cpu", self.cpu]);
        if let Some(prefix) = prefix {
            command.arg("-L").arg(prefix);
        }
        command.arg(binary);
        command
    }
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A binutils tool of the cross gcc (`arm-linux-gnueabihf-<tool>`; the same binutils read
/// both ARM ABIs) on `path` with `args`.
fn binutils(tool: &str, args: &[&str], path: &Path) -> String {
    let out = Command::new(format!("arm-linux-gnueabihf-{tool}"))
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("run arm-linux-gnueabihf-{tool} (binutils-arm-linux-gnueabihf): {e}")
        });
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn readelf(flags: &str, binary: &Path) -> String {
    binutils("readelf", &[flags, "-W"], binary)
}

/// Both binaries of `arch`: 32-bit ARM, static; the migrator starts on the CPU and refuses,
/// not being PID 1. Returns their `readelf -A` attributes.
fn static_arm_binaries_start(arch: &Arch) -> [String; 2] {
    let build = arch.build();
    let attributes = [&build.package, &build.migrator].map(|binary| {
        let header = readelf("-h", binary);
        assert!(header.contains("ELF32"), "{header}");
        assert!(header.contains("Machine:                           ARM"), "{header}");
        let segments = readelf("-l", binary);
        assert!(segments.contains("LOAD"), "{segments}");
        assert!(
            !segments.contains("INTERP"),
            "{} needs a program interpreter:\n{segments}",
            binary.display()
        );
        readelf("-A", binary)
    });
    // The migrator is /init of the migration initramfs: as any other PID it refuses, exit 2.
    let out = arch.run(&build.migrator, None).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("runs only as PID 1"), "{}", text(&out));
    // The package starts too (its own migrator is checked only by stage).
    let out = arch.run(&build.package, None).arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    attributes
}

#[test]
fn the_armv7_package_and_migrator_are_static_armv7_and_start_on_a_cortex_a8() {
    if !qemu_present("the_armv7_package_and_migrator_are_static_armv7_and_start_on_a_cortex_a8") {
        return;
    }
    for attributes in static_arm_binaries_start(&ARMV7) {
        assert!(attributes.contains("Tag_CPU_arch: v7"), "{attributes}");
        assert!(attributes.contains("Tag_ABI_VFP_args: VFP registers"), "{attributes}");
    }
}

#[test]
fn the_armv6_package_and_migrator_are_static_and_start_on_an_arm1176() {
    if !qemu_present("the_armv6_package_and_migrator_are_static_and_start_on_an_arm1176") {
        return;
    }
    let [package, migrator] = static_arm_binaries_start(&ARMV6);
    // The migrator links no assembly: all of it is ARMv6. The package's tag is raised to v7
    // by ring's objects (the R8 test below says which code that is).
    assert!(migrator.contains("Tag_CPU_arch: v6"), "{migrator}");
    for attributes in [&package, &migrator] {
        // Soft-float calls (arm-unknown-linux-gnueabi): no VFP registers at any call.
        assert!(!attributes.contains("Tag_ABI_VFP_args: VFP registers"), "{attributes}");
    }
}

#[test]
fn an_arm1176_refuses_the_armv7_build_so_the_armv6_runs_would_catch_armv7_code() {
    if !qemu_present("an_arm1176_refuses_the_armv7_build_so_the_armv6_runs_would_catch_armv7_code")
    {
        return;
    }
    // qemu-user dies of the signal its guest did not handle.
    let out = ARMV6.run(&ARMV7.build().package, None).arg("--version").output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGILL), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Illegal instruction"), "{}", text(&out));
}

/// ARMv7 (not ARMv6K) instructions by their mnemonic: the ones an ARMv7 compiler or assembler
/// emits for integer code and barriers (ARM Architecture Reference Manual ARMv7-A, A4 "The
/// Instruction Sets": movw/movt, ubfx/sbfx/bfi/bfc, rbit, mls, sdiv/udiv, dmb/dsb/isb, pli),
/// and every `v…` mnemonic (Advanced SIMD/NEON, which the Pi 1 lacks; its VFPv2 would be
/// flagged too: soft-float code has none, so a hit is worth a look either way).
fn is_armv7_or_neon(mnemonic: &str) -> bool {
    const V7: [&str; 14] = [
        "movw", "movt", "ubfx", "sbfx", "bfi", "bfc", "rbit", "mls", "sdiv", "udiv", "dmb", "dsb",
        "isb", "pli",
    ];
    let base = mnemonic.split('.').next().unwrap_or(mnemonic);
    V7.iter().any(|m| base == *m || base.strip_prefix(m).is_some_and(is_condition))
        || mnemonic.starts_with('v')
}

fn is_condition(suffix: &str) -> bool {
    matches!(
        suffix,
        "eq" | "ne"
            | "cs"
            | "cc"
            | "hs"
            | "lo"
            | "mi"
            | "pl"
            | "vs"
            | "vc"
            | "hi"
            | "ls"
            | "ge"
            | "lt"
            | "gt"
            | "le"
            | "al"
    )
}

/// Every object file and archive the build scripts of `release` produced (C and assembly).
fn build_script_objects(release: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "o" || e == "a") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&release.join("build"), &mut out);
    out.sort();
    out
}

/// (member, function) pairs of `object` holding ARMv7/NEON instructions, with those mnemonics.
fn armv7_functions(object: &Path) -> Vec<(String, String, Vec<String>)> {
    let disassembly = binutils("objdump", &["-d", "--no-show-raw-insn"], object);
    let mut found: Vec<(String, String, Vec<String>)> = Vec::new();
    let (mut member, mut function) = (String::new(), String::new());
    for line in disassembly.lines() {
        if let Some((name, _)) = line.split_once(":     file format") {
            member = name.to_string();
        } else if let Some(name) = line.strip_suffix(">:").and_then(|l| l.split_once(" <")) {
            // A label kept in the symbol table inside a function (x25519's `._mainloop`) is
            // still that function.
            if !name.1.starts_with('.') {
                function = name.1.to_string();
            }
        } else if let Some((_, instruction)) = line.split_once(":\t") {
            let mnemonic = instruction.split_whitespace().next().unwrap_or("");
            if is_armv7_or_neon(mnemonic) {
                match found.last_mut() {
                    Some((m, f, mnemonics)) if *m == member && *f == function => {
                        if !mnemonics.iter().any(|x| x == mnemonic) {
                            mnemonics.push(mnemonic.to_string())
                        }
                    }
                    _ => found.push((member.clone(), function.clone(), vec![mnemonic.into()])),
                }
            }
        }
    }
    found
}

/// Contract R8: ring's 32-bit ARM assembly is assembled for ARMv7 (its objects carry
/// `Tag_CPU_arch: v7`, and so does the linked package). Shown here on the objects the ARMv6
/// build linked: every ARMv7 or NEON instruction in any build-script object sits in one of
/// ring's NEON functions (`…_neon`, and the bit-sliced/vector-permute AES `bsaes`/`vpaes`),
/// which ring 0.17 calls only when the kernel's AT_HWCAP has HWCAP_NEON (ring
/// src/cpu/arm/linux.rs; src/aead/aes/vp.rs: VPAES/BSAES require `cpu::arm::Neon`). The Pi 1
/// has no NEON; that ring then takes its portable code is what the ARM1176 TLS run shows.
#[test]
fn the_armv6_builds_only_armv7_code_is_rings_neon_functions() {
    if !qemu_present("the_armv6_builds_only_armv7_code_is_rings_neon_functions") {
        return;
    }
    let build = ARMV6.build();
    let objects = build_script_objects(&build.release);
    assert!(
        objects.iter().any(|o| o.to_string_lossy().contains("/ring-")),
        "no ring objects under {}",
        build.release.display()
    );
    let mut neon = Vec::new();
    for object in &objects {
        for (member, function, mnemonics) in armv7_functions(object) {
            let in_ring = object.to_string_lossy().contains("/ring-");
            // x25519_NEON too: ring calls it only with a `cpu::arm::Neon` token
            // (src/ec/curve25519/x25519.rs).
            let neon_only = function.to_ascii_lowercase().contains("_neon")
                || function.contains("bsaes_")
                || function.contains("vpaes_");
            assert!(
                in_ring && neon_only,
                "ARMv7/NEON instructions {mnemonics:?} in {function} of {member} ({}): not a \
                 NEON-only path of ring, so the Pi 1 (ARMv6, no NEON) may execute them",
                object.display()
            );
            neon.push(format!("{function}: {}", mnemonics.join(" ")));
        }
    }
    // The scan sees what is there: ring's SHA-512 NEON code has a `dmb`, its GHASH NEON code
    // polynomial multiplies.
    for expected in ["sha512_block_data_order_neon: ", "gcm_ghash_neon: "] {
        assert!(neon.iter().any(|f| f.contains(expected)), "{expected} not found in {neon:#?}");
    }
    assert!(neon.iter().any(|f| f.contains("sha512_block_data_order_neon") && f.contains("dmb")));
}

#[test]
fn plan_image_for_the_beaglebone_on_a_cortex_a8_prints_the_host_builds_plan() {
    if !qemu_present("plan_image_for_the_beaglebone_on_a_cortex_a8_prints_the_host_builds_plan") {
        return;
    }
    let build = ARMV7.build();
    let profile = Profile::builtin("resinos1x-beaglebone-black").unwrap();
    let case = resinos1x_case(&profile, &[], 300_000, MIB);
    let r = &case.request;
    let args = |command: &mut Command| {
        command
            .args(["plan-image", "--profile", "resinos1x-beaglebone-black", "--disk"])
            .arg(&r.disk)
            .arg("--image")
            .arg(&r.image)
            .arg("--config")
            .arg(&r.config)
            .arg("--data-root")
            .arg(&r.data_root)
            .arg("--kernel")
            .arg(&r.kernel)
            .arg("--initramfs")
            .arg(&r.initramfs)
            .arg("--phys-mem")
            .arg(&r.phys_mem);
    };
    let mut host = Command::new(env!("CARGO_BIN_EXE_stager"));
    args(&mut host);
    let host = host.output().unwrap();
    assert!(host.status.success(), "host build: {}", text(&host));
    let mut arm = ARMV7.run(&build.package, None);
    args(&mut arm);
    let arm = arm.output().unwrap();
    assert!(arm.status.success(), "ARM build: {}", text(&arm));
    let plan = String::from_utf8_lossy(&arm.stdout);
    // The BeagleBone's route: the U-Boot trial in uEnv.txt, at the count the ARM build read
    // from the counter word (big-endian 0xB0010004 at 0x44E3E068 of the --phys-mem file).
    assert!(plan.contains("via uEnv.txt replaced by a trial that U-Boot runs"), "{plan}");
    assert!(
        plan.contains("boot counter at 0x44e3e068 reads 4 (word 0xb0010004); the trial runs at the boot that counts 5"),
        "{plan}"
    );
    assert!(plan.contains("nothing was changed"), "{plan}");
    assert_eq!(plan, String::from_utf8_lossy(&host.stdout), "the ARM and host plans differ");
}

/// A qemu-user `-L` prefix whose /etc makes `API_HOST` 127.0.0.1 and leaves glibc's NSS no
/// module it could load.
fn etc_prefix(dir: &Path) -> PathBuf {
    let prefix = dir.join("qemu-prefix");
    std::fs::create_dir_all(prefix.join("etc")).unwrap();
    std::fs::write(
        prefix.join("etc/hosts"),
        format!("127.0.0.1 localhost\n127.0.0.1 {API_HOST}\n"),
    )
    .unwrap();
    std::fs::write(prefix.join("etc/nsswitch.conf"), "hosts: swapover_no_such_module\n").unwrap();
    // No name server answers on this port: a name not in /etc/hosts fails instead of leaving.
    std::fs::write(
        prefix.join("etc/resolv.conf"),
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .unwrap();
    prefix
}

/// `stage-1x --dry-run` of `arch`'s package on `device` (profile `profile`) against a real
/// HTTPS API on loopback reached by [`API_HOST`]: returns its output once the API was asked
/// (and changed nothing) and the device is as it was. `--kernel` is the device's, or, on a
/// Pi (`profile_kernel`), left to the profile (the board's kernel on resin-boot).
fn dry_run_through_https(
    arch: &Arch,
    device: &Device,
    profile: &str,
    profile_kernel: bool,
) -> Output {
    let build = arch.build();
    let ca = TestCa::new("swapover test CA");
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_pem = ca.write_pem(ca_dir.path());
    let api = ApiServer::start(
        ca.issue_server(&[API_HOST]),
        ApiState {
            api_key: "device-key-arm".into(),
            device_id: 4711,
            supervisor_version: Some("1.7.0".into()),
            supervisor_release: Some(11),
            releases: vec![(device_type(profile), IMAGE_SUPERVISOR.into(), 42)],
            fail_with: None,
        },
    );
    let port = api.endpoint().rsplit(':').next().unwrap().to_string();
    let endpoint = format!("https://{API_HOST}:{port}");

    let plan = &device.request.plan;
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan.config).unwrap()).unwrap();
    config["apiEndpoint"] = endpoint.clone().into();
    config["deviceId"] = 4711.into();
    config["apiKey"] = "device-key-arm".into();
    std::fs::write(&plan.config, config.to_string()).unwrap();
    let before = device.snapshot();

    let prefix = etc_prefix(ca_dir.path());
    let mut command = arch.run(&build.package, Some(&prefix));
    command.args(["stage-1x", "--dry-run", "--profile", profile]);
    if profile_kernel {
        device.stage_1x_args_but_kernel(&mut command);
    } else {
        device.stage_1x_args(&mut command);
    }
    let out = command.arg("--api-ca-cert").arg(&ca_pem).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "mark device 4711 in {endpoint} for supervisor {IMAGE_SUPERVISOR} (release 42; it runs 1.7.0)"
        )),
        "{}",
        text(&out)
    );
    assert!(!api.requests().is_empty(), "the API was not asked");
    assert!(api.patches().is_empty(), "a dry run changed the API");
    assert_eq!(device.snapshot(), before, "a dry run changed the device");
    out
}

fn device_type(profile: &str) -> String {
    Profile::builtin(profile).unwrap().device_type
}

#[test]
fn stage_1x_dry_run_on_a_cortex_a8_asks_an_https_api_by_host_name_without_nss() {
    if !qemu_present("stage_1x_dry_run_on_a_cortex_a8_asks_an_https_api_by_host_name_without_nss") {
        return;
    }
    let device = Device::new("resinos1x-intel-nuc");
    dry_run_through_https(&ARMV7, &device, "resinos1x-intel-nuc", false);
}

#[test]
fn stage_1x_of_a_pi_1_on_an_arm1176_asks_the_api_without_nss_then_stages_and_aborts() {
    if !qemu_present(
        "stage_1x_of_a_pi_1_on_an_arm1176_asks_the_api_without_nss_then_stages_and_aborts",
    ) {
        return;
    }
    const PI1: &str = "resinos1x-raspberry-pi";
    let device = Device::pi(PI1, &PI_LAYOUT);
    // resin-boot mounted as on the device: the trial's kernel is the Pi 1's kernel.img.
    let kernel = boot_file(&device, "kernel.img");
    std::fs::write(device.host.path("/mnt/boot/kernel.img"), kernel).unwrap();
    let out = dry_run_through_https(&ARMV6, &device, PI1, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "via the spare partition as a FAT32 trial boot set",
        "write 3 to /sys/module/bcm2708/parameters/reboot_part",
        "reboot(RESTART2, \"3\")",
        "Dry run: nothing was changed.",
    ] {
        assert!(stdout.contains(expected), "{expected}: {}", text(&out));
    }

    // Then for real on the ARM1176: the spare formatted FAT32 and the trial set written by
    // fatfs, every file read back by sha256, the initramfs built around this ARMv6 migrator,
    // `reboot_part` armed; `status` reads it; `abort` gives every byte outside the spare back
    // (the spare stays an empty FAT32: contract R1).
    let package = &ARMV6.build().package;
    let before = outside_spare(&device);
    let mut command = ARMV6.run(package, None);
    command.args(["stage-1x", "--profile", PI1, "--no-reboot", "--no-supervisor-update"]);
    let staged = device.stage_1x_args_but_kernel(&mut command).output().unwrap();
    assert!(staged.status.success(), "{}", text(&staged));
    assert_eq!(spare_type_byte(&device), 0x0c, "{}", text(&staged));
    let reboot_part = "/sys/module/bcm2708/parameters/reboot_part";
    assert_eq!(std::fs::read_to_string(device.host.path(reboot_part)).unwrap().trim(), "3");
    let status =
        ARMV6.run(package, None).arg("status").arg("--root").arg(device.host.root()).output();
    let status = status.unwrap();
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("the GPU firmware boots partition 3 once"),
        "{}",
        text(&status)
    );
    let aborted =
        ARMV6.run(package, None).arg("abort").arg("--root").arg(device.host.root()).output();
    let aborted = aborted.unwrap();
    assert!(aborted.status.success(), "{}", text(&aborted));
    assert_eq!(spare_type_byte(&device), 0x83, "{}", text(&aborted));
    assert_eq!(outside_spare(&device), before, "abort left the disk changed outside the spare");
}

/// The spare's (p3's) MBR partition type byte.
fn spare_type_byte(device: &Device) -> u8 {
    std::fs::read(device.host.path("/dev/sda")).unwrap()[0x1be + 2 * 16 + 4]
}

/// The sha256 of every disk byte outside the spare (p3), its MBR type byte taken as 0x83.
fn outside_spare(device: &Device) -> String {
    let mut disk = std::fs::read(device.host.path("/dev/sda")).unwrap();
    disk[0x1be + 2 * 16 + 4] = 0x83;
    let (start, size) =
        resinos1x_support::start_of(&device.case.source, plan::PartitionRole::RootB);
    let (start, end) = ((start * 512) as usize, ((start + size) * 512) as usize);
    stage_support::sha256_hex(&[&disk[..start], &disk[end..]].concat())
}

/// A file of the device's resin-boot, read from the disk's FAT.
fn boot_file(device: &Device, name: &str) -> Vec<u8> {
    let disk = std::fs::read(device.host.path("/dev/sda")).unwrap();
    let (start, size) = resinos1x_support::start_of(&device.case.source, plan::PartitionRole::Boot);
    let bytes = disk[(start * 512) as usize..((start + size) * 512) as usize].to_vec();
    let fs = fatfs::FileSystem::new(std::io::Cursor::new(bytes), fatfs::FsOptions::new()).unwrap();
    let mut file = Vec::new();
    fs.root_dir().open_file(name).unwrap().read_to_end(&mut file).unwrap();
    file
}
