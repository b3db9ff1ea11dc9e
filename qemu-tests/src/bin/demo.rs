//! The full migration demo in QEMU (`scripts/demo.sh`): a legacy Project STEM host becomes
//! a resinOS device with its data, from what a customer downloads: the dashboard `.zip` of a
//! resinOS flasher image. Where a part is missing, it says which.

use qemu_tests::e2e::{self, Download};
use qemu_tests::flasher_image::{FlasherImage, FlasherVariant};
use qemu_tests::host_image::HostImage;
use qemu_tests::qemu::{Drive, Vm, VmConfig};
use qemu_tests::resin_image::ResinImage;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    match demo() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> anyhow::Result<bool> {
    let t = Instant::now();
    let host = HostImage::ensure()?;
    println!("legacy host image: {} ({:.1}s)", host.path.display(), t.elapsed().as_secs_f64());
    let t = Instant::now();
    let image = ResinImage::ensure()?;
    println!(
        "resinOS stand-in: {} sha256 {} ({:.1}s)",
        image.xz.display(),
        image.xz_sha256,
        t.elapsed().as_secs_f64()
    );

    if let Err(missing) = e2e::packaged_stager() {
        println!("MISSING: {missing:#}. Booting both images on their own instead.");
        let disk = host.fresh_copy("demo-host")?;
        let mut vm = Vm::start(&VmConfig::new("demo-host", vec![Drive::ide(&disk)]))?;
        println!("host: {}", vm.wait_for("SWAPOVER-HOST-UP", Duration::from_secs(180))?);
        drop(vm);
        let raw = image.fresh_raw_copy("demo-standin")?;
        let mut vm = Vm::start(&VmConfig::new("demo-standin", vec![Drive::ide(&raw)]))?;
        println!("stand-in: {}", vm.wait_for("SWAPOVER-VERDICT", Duration::from_secs(180))?);
        return Ok(false);
    }

    let t = Instant::now();
    let variant = FlasherVariant::InnerWithoutGrub;
    let flasher = FlasherImage::ensure(variant)?;
    println!(
        "resinOS download (flasher image in a .zip): {} sha256 {} ({:.1}s)",
        flasher.zip.display(),
        flasher.zip_sha256,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let outcome = e2e::run_download("demo", Download::FlasherZip(variant))?;
    println!("\nverdict: {:?}", outcome.verdict.summary);
    if !outcome.flasher_ran_in.is_empty() {
        println!("THE FLASHER WAS BOOTED (it wipes the disk): {:?}", outcome.flasher_ran_in);
    }
    for (file, ssid, _) in &outcome.verdict.connections {
        println!("  wifi connection {file}: ssid {ssid}");
    }
    println!(
        "  customer files expected: {}, differences: {}",
        outcome.expected.len(),
        outcome.data_differences.len()
    );
    for d in &outcome.data_differences {
        println!("    {d}");
    }
    println!("console log: {}", outcome.vm.log_path().display());
    println!("total: {:.1}s", t.elapsed().as_secs_f64());
    Ok(outcome.verdict.summary.ok
        && outcome.verdict.summary.preloaded_supervisor
        && outcome.data_differences.is_empty()
        && outcome.flasher_ran_in.is_empty())
}
