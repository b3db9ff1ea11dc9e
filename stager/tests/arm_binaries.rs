//! The ARMv7 build (Raspberry Pi 2/3, BeagleBone Black) doing real work under
//! `qemu-arm-static -cpu cortex-a8`, the BeagleBone Black's CPU (AM335x, Cortex-A8:
//! https://www.ti.com/product/AM3358). The build is a static glibc binary for ARMv7-A with
//! VFPv3-D16 (rustup serves no ARM musl std here; docs/arm-1x-contract.md §3), made and
//! packaged by `scripts/package-stager.sh armv7` as the x86 one is: the stager with the
//! migrator appended.
//!
//! Shown, each through the ARM binaries themselves:
//! - the package and the migrator are 32-bit ARM ELF, static (no PT_INTERP: nothing for a
//!   resinOS 1.x root's loader to resolve), built for ARMv7 with VFP register arguments;
//! - the migrator starts on a Cortex-A8 (and, not being PID 1, refuses to run);
//! - `plan-image` for the BeagleBone on a real 1.x disk image and a real xz'd 2.x image
//!   (lzma-sys's C decoder, MBR, FAT, ext4 and btrfs reading, U-Boot's boot counter read at
//!   0x44E3E068 of a sparse `--phys-mem` file standing for /dev/mem, the trial's uEnv.txt)
//!   prints the same plan, byte for byte, as the host build of the stager;
//! - `stage-1x --dry-run` of the package (its migrator read back from /proc/self/exe and its
//!   sha256 checked, the initramfs sized around it) asks a real HTTPS resin API on loopback,
//!   reached by a host name, for the device's supervisor: TLS by rustls with ring's ARM code,
//!   and the name resolved by reqwest's pure-Rust hickory resolver from /etc/hosts, while the
//!   nsswitch.conf the process sees names a module no glibc has, so that glibc's getaddrinfo
//!   (which a static glibc answers by dlopen()ing libnss_* of its own version, absent on a
//!   1.x root) could not have resolved it.
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
use resinos1x_support::{resinos1x_case, IMAGE_SUPERVISOR, MIB};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use support::api_server::{ApiServer, ApiState};
use support::test_ca::TestCa;

const QEMU: &str = "qemu-arm-static";
const CPU: &str = "cortex-a8";
/// The API's host name: only the `-L` prefix's /etc/hosts knows it.
const API_HOST: &str = "api.swapover-arm.test";

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
        "\n\n!!!!! SKIPPED {test}: {QEMU} is not installed, the ARMv7 binaries were NOT run. \
         Run scripts/setup.sh (it installs qemu-user-static). !!!!!\n\n"
    );
    false
}

struct ArmBuild {
    package: PathBuf,
    migrator: PathBuf,
}

/// The ARMv7 package and migrator, built and packaged by the script CI uses (cheap when up
/// to date; scripts/build-static.sh has built them before the tests in CI), once per test
/// process: the script writes the package through one temporary file.
fn arm_build() -> &'static ArmBuild {
    static BUILD: OnceLock<ArmBuild> = OnceLock::new();
    BUILD.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let status = Command::new("bash")
            .arg(root.join("scripts/package-stager.sh"))
            .arg("armv7")
            .status()
            .expect("run scripts/package-stager.sh armv7");
        assert!(status.success(), "scripts/package-stager.sh armv7 failed");
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or(root.join("target"));
        ArmBuild {
            package: target.join("swapover/armv7/stager"),
            migrator: target.join("armv7-unknown-linux-gnueabihf/release/migrator"),
        }
    })
}

/// `qemu-arm-static -cpu cortex-a8 [-L prefix] binary`.
fn on_cortex_a8(binary: &Path, prefix: Option<&Path>) -> Command {
    let mut command = Command::new(QEMU);
    command.args(["-cpu", CPU]);
    if let Some(prefix) = prefix {
        command.arg("-L").arg(prefix);
    }
    command.arg(binary);
    command
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `arm-linux-gnueabihf-readelf` (binutils of the cross gcc) on `binary` with `flags`.
fn readelf(flags: &str, binary: &Path) -> String {
    let out = Command::new("arm-linux-gnueabihf-readelf")
        .arg(flags)
        .arg("-W")
        .arg(binary)
        .output()
        .expect("run arm-linux-gnueabihf-readelf (binutils-arm-linux-gnueabihf)");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_package_and_the_migrator_are_static_armv7_and_start_on_a_cortex_a8() {
    if !qemu_present("the_package_and_the_migrator_are_static_armv7_and_start_on_a_cortex_a8") {
        return;
    }
    let build = arm_build();
    for binary in [&build.package, &build.migrator] {
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
        let attributes = readelf("-A", binary);
        assert!(attributes.contains("Tag_CPU_arch: v7"), "{attributes}");
        assert!(attributes.contains("Tag_ABI_VFP_args: VFP registers"), "{attributes}");
    }
    // The migrator is /init of the migration initramfs: as any other PID it refuses, exit 2.
    let out = on_cortex_a8(&build.migrator, None).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("runs only as PID 1"), "{}", text(&out));
}

#[test]
fn plan_image_for_the_beaglebone_on_a_cortex_a8_prints_the_host_builds_plan() {
    if !qemu_present("plan_image_for_the_beaglebone_on_a_cortex_a8_prints_the_host_builds_plan") {
        return;
    }
    let build = arm_build();
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
    let mut arm = on_cortex_a8(&build.package, None);
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

#[test]
fn stage_1x_dry_run_on_a_cortex_a8_asks_an_https_api_by_host_name_without_nss() {
    if !qemu_present("stage_1x_dry_run_on_a_cortex_a8_asks_an_https_api_by_host_name_without_nss") {
        return;
    }
    let build = arm_build();
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
            releases: vec![("intel-nuc".into(), IMAGE_SUPERVISOR.into(), 42)],
            fail_with: None,
        },
    );
    let port = api.endpoint().rsplit(':').next().unwrap().to_string();
    let endpoint = format!("https://{API_HOST}:{port}");

    let device = Device::new("resinos1x-intel-nuc");
    let plan = &device.request.plan;
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan.config).unwrap()).unwrap();
    config["apiEndpoint"] = endpoint.clone().into();
    config["deviceId"] = 4711.into();
    config["apiKey"] = "device-key-arm".into();
    std::fs::write(&plan.config, config.to_string()).unwrap();
    let before = device.snapshot();

    let prefix = etc_prefix(ca_dir.path());
    let mut command = on_cortex_a8(&build.package, Some(&prefix));
    command.args(["stage-1x", "--dry-run", "--profile", "resinos1x-intel-nuc"]);
    let out =
        device.stage_1x_args(&mut command).arg("--api-ca-cert").arg(&ca_pem).output().unwrap();
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
}
