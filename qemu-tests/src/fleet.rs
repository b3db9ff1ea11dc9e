//! The fleet rollout's harness (issue 17): legacy hosts that answer SSH on QEMU user
//! networking, a resin API stand-in on HTTPS loopback, a resinOS stand-in that checks in to it
//! on boot, and the controller's Ansible in a venv.
//!
//! - SSH: Debian's dropbear (package dropbear-bin) and the libraries `ldd` names for it, with
//!   the e1000 module of the test kernel, ride on the payload disk; the payload's `run.sh`
//!   (run on every boot of the legacy host) installs them into the host's root, configures
//!   10.0.2.15/24 via 10.0.2.2 (QEMU's slirp; the host's loopback is 10.0.2.2 to the guest)
//!   and starts dropbear with the test's public key for root. The legacy host image itself is
//!   unchanged, so every other test keeps its cached image.
//! - The resinOS stand-in for the fleet: the cached 2.x stand-in with its verdict init given
//!   a last step before powering off: bring up e1000 and run `resin-checkin` (a static musl
//!   client, `qemu-tests/resin-checkin`) with resin-boot's config.json and the test CA.
//! - The API stand-in: `assets/fleet/resin_api_standin.py` (stdlib Python, real TLS).

use crate::disk::{self, PartitionTable};
use crate::kernel::TestKernel;
use crate::paths;
use crate::payload::Payload;
use crate::resin_image::ResinImage;
use crate::stamp::{self, Fingerprint};
use crate::tools::run;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The guest's address on QEMU user networking, and the host as the guest sees it.
pub const GUEST_IP: &str = "10.0.2.15";
pub const HOST_FROM_GUEST: &str = "10.0.2.2";
/// The console line run.sh prints once dropbear listens.
pub const SSH_UP_MARKER: &str = "SWAPOVER-FLEET-SSH-UP";
/// What the resinOS stand-in's check-in prints.
pub const CHECKIN_MARKER: &str = "SWAPOVER-CHECKIN";
/// The OS version the stand-in reports (resinOS 2.x, as resin_image::VERSION).
pub fn os_version() -> String {
    format!("Resin OS {}", crate::resin_image::VERSION)
}

const E1000: &str = "kernel/drivers/net/ethernet/intel/e1000/e1000.ko";
const DROPBEAR: &str = "/usr/sbin/dropbear";

/// A free TCP port on 127.0.0.1 (for hostfwd and the API stand-in).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `N` distinct free TCP ports on 127.0.0.1 (all held while they are chosen).
pub fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// QEMU's `-nic` for a guest whose port 22 is `port` on the host's loopback.
pub fn user_nic(port: u16) -> String {
    format!("user,model=e1000,hostfwd=tcp:127.0.0.1:{port}-:22")
}

/// Adds dropbear, its libraries, the NIC module and `authorized_key` to `payload`; returns
/// the shell lines that install and start them (for the payload's run.sh).
pub fn add_ssh_server(
    payload: &Payload,
    kernel: &TestKernel,
    authorized_key: &str,
) -> Result<String> {
    if !Path::new(DROPBEAR).exists() {
        bail!("{DROPBEAR} missing: run scripts/setup.sh (package dropbear-bin)");
    }
    payload.add_file("ssh/dropbear", Path::new(DROPBEAR), 0o755)?;
    let out = run("ldd", [DROPBEAR])?;
    for line in String::from_utf8_lossy(&out).lines() {
        let Some((name, rest)) = line.trim().split_once(" => ") else { continue };
        let Some(path) = rest.split_whitespace().next().filter(|p| p.starts_with('/')) else {
            continue;
        };
        payload.add_file(&format!("ssh/lib/{name}"), &std::fs::canonicalize(path)?, 0o755)?;
    }
    payload.add_file("ssh/e1000.ko", &kernel.module_tree().join(E1000), 0o644)?;
    payload.add_bytes("ssh/authorized_keys", authorized_key.as_bytes(), 0o600)?;
    Ok(format!(
        "# SSH for the fleet test: the NIC, the address QEMU's user network expects, dropbear.\n\
         insmod /run/payload/ssh/e1000.ko 2>/dev/null\n\
         ip link set lo up; ip link set eth0 up\n\
         ip addr add {GUEST_IP}/24 dev eth0 2>/dev/null; ip route add default via {HOST_FROM_GUEST} 2>/dev/null\n\
         for l in /run/payload/ssh/lib/*; do [ -e \"/lib/x86_64-linux-gnu/${{l##*/}}\" ] || cp \"$l\" /lib/x86_64-linux-gnu/; done\n\
         cp /run/payload/ssh/dropbear /usr/sbin/dropbear\n\
         grep -q '^root:' /etc/passwd 2>/dev/null || echo 'root:x:0:0:root:/root:/bin/sh' >> /etc/passwd\n\
         mkdir -p /root/.ssh /etc/dropbear && chmod 700 /root/.ssh\n\
         cp /run/payload/ssh/authorized_keys /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys\n\
         mount -t devpts devpts /dev/pts 2>/dev/null\n\
         /usr/sbin/dropbear -R -s -p 22 && echo \"{SSH_UP_MARKER} $(cat /proc/sys/kernel/random/boot_id)\"\n"
    ))
}

/// An ed25519 key pair for the controller (private key path, public key line).
pub fn ssh_keypair(dir: &Path) -> Result<(PathBuf, String)> {
    std::fs::create_dir_all(dir)?;
    let key = dir.join("id_ed25519");
    if !key.exists() {
        run(
            "ssh-keygen",
            ["-q", "-t", "ed25519", "-N", "", "-C", "swapover-fleet-test", "-f"]
                .iter()
                .map(std::ffi::OsStr::new)
                .chain([key.as_os_str()]),
        )?;
    }
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    Ok((key, public))
}

/// A CA and a server certificate for 127.0.0.1, 10.0.2.2 and localhost (openssl).
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// Creates them in `dir`, or reuses the ones there (the fleet image trusts this CA, so a
    /// new CA means a new image).
    pub fn create(dir: &Path) -> Result<Pki> {
        let pki = Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        if pki.ca.exists() && pki.cert.exists() && pki.key.exists() {
            return Ok(pki);
        }
        std::fs::create_dir_all(dir)?;
        let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
        let openssl = |args: &[&str]| run("openssl", args);
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=swapover fleet test CA",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=resin-api-standin",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
        ])?;
        std::fs::write(
            dir.join("server.ext"),
            format!("subjectAltName=IP:127.0.0.1,IP:{HOST_FROM_GUEST},DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
        )?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            &p("server.ext"),
            "-out",
            &p("server.pem"),
        ])?;
        Ok(Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        })
    }
}

/// The resin API stand-in, running. Dropping it stops it.
pub struct ApiStandin {
    child: Child,
    pub port: u16,
    pub state_file: PathBuf,
}

impl ApiStandin {
    pub fn start(pki: &Pki, provisioning_key: &str, dir: &Path) -> Result<ApiStandin> {
        let port = free_port()?;
        let state_file = dir.join("resin-api-state.json");
        let script = paths::workspace_root().join("qemu-tests/assets/fleet/resin_api_standin.py");
        let log = std::fs::File::create(dir.join("resin-api-standin.log"))?;
        let child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&pki.cert)
            .arg(&pki.key)
            .arg(provisioning_key)
            .arg(&state_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the resin API stand-in")?;
        let standin = ApiStandin { child, port, state_file };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("the resin API stand-in did not listen on {port} (see {})", dir.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(standin)
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn url_from_guest(&self) -> String {
        format!("https://{HOST_FROM_GUEST}:{}", self.port)
    }

    /// What the stand-in recorded: `devices` by uuid and the `requests` it answered.
    pub fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(&std::fs::read(&self.state_file)?)?)
    }
}

impl Drop for ApiStandin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The static check-in client, built for musl (cheap when up to date).
pub fn checkin_binary() -> Result<PathBuf> {
    let root = paths::workspace_root();
    let mut cargo = Command::new(env!("CARGO"));
    // Not this test's package variables (cargo test sets them): ring's build script tracks
    // CARGO_PKG_NAME and CARGO_MANIFEST_DIR, and with them the musl build test.sh made
    // beforehand would be rebuilt from ring up (scripts/package-stager.sh drops the same).
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if ["CARGO_MANIFEST_", "CARGO_PKG_", "CARGO_CRATE_", "CARGO_BIN_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*name)
        {
            cargo.env_remove(&*name);
        }
    }
    let status = cargo
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "x86_64-unknown-linux-musl",
            "-p",
            "resin-checkin",
        ])
        .current_dir(&root)
        .status()
        .context("running cargo to build resin-checkin")?;
    if !status.success() {
        bail!("building resin-checkin for musl failed");
    }
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(dir.join("x86_64-unknown-linux-musl/release/resin-checkin"))
}

/// The fleet's resinOS stand-in: `.img.xz` and its sha256.
pub struct FleetResinImage {
    pub xz: PathBuf,
    pub xz_sha256: String,
}

const RECIPE: &str = concat!(include_str!("fleet.rs"), include_str!("../assets/fleet/checkin.sh"));

impl FleetResinImage {
    /// The cached 2.x stand-in with the check-in added to its init; rebuilt when the
    /// stand-in, the client or the CA changes.
    pub fn ensure(ca: &Path) -> Result<FleetResinImage> {
        let base = ResinImage::ensure()?;
        let kernel = TestKernel::locate()?;
        let client = checkin_binary()?;
        let dir = paths::images_dir();
        let raw = dir.join("resinos-fleet-standin.img");
        let xz = dir.join("resinos-fleet-standin.img.xz");
        let mut fp = Fingerprint::new(RECIPE);
        fp.text(&base.fingerprint).file(&client)?.file(ca)?;
        if !stamp::is_fresh(&xz, &fp) {
            let started = Instant::now();
            build(&base.raw, &raw, &kernel, &client, ca)?;
            run("xz", ["-T2", "-1", "-k", "-f", &raw.to_string_lossy()])?;
            std::fs::remove_file(&raw)?;
            stamp::mark_fresh(&xz, &fp)?;
            eprintln!(
                "[harness] built the fleet resinOS stand-in in {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
        let digest = run("sha256sum", [xz.as_os_str()])?;
        let xz_sha256 = String::from_utf8_lossy(&digest)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(FleetResinImage { xz, xz_sha256 })
    }
}

fn build(base: &Path, raw: &Path, kernel: &TestKernel, client: &Path, ca: &Path) -> Result<()> {
    run("cp", [std::ffi::OsStr::new("--sparse=always"), base.as_os_str(), raw.as_os_str()])?;
    let table = PartitionTable::read(raw)?;
    let root_a = table.number(2)?;
    let initramfs = disk::read_ext4_file(raw, root_a, "/boot/initramfs")?;
    let work = paths::images_dir().join("resinos-fleet-work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    let tree = work.join("tree");
    std::fs::create_dir_all(&tree)?;
    let unpack = "gzip -dc | cpio -idm --quiet";
    crate::tools::run_with_input(
        "sh",
        ["-c", &format!("cd '{}' && {unpack}", tree.display())],
        Some(&initramfs),
    )?;
    let init_path = tree.join("init");
    let init = std::fs::read_to_string(&init_path)?;
    let checkin = std::fs::read_to_string(
        paths::workspace_root().join("qemu-tests/assets/fleet/checkin.sh"),
    )?
    .replace("@GUEST_IP@", GUEST_IP)
    .replace("@GATEWAY@", HOST_FROM_GUEST)
    .replace("@OS_VERSION@", &os_version());
    let Some(at) = init.rfind("poweroff -f") else { bail!("the verdict init has no poweroff -f") };
    std::fs::write(&init_path, format!("{}{checkin}\n{}", &init[..at], &init[at..]))?;
    std::fs::create_dir_all(tree.join("usr/bin"))?;
    std::fs::copy(client, tree.join("usr/bin/resin-checkin"))?;
    std::fs::copy(kernel.module_tree().join(E1000), tree.join("e1000.ko"))?;
    std::fs::copy(ca, tree.join("etc/resin-api-ca.pem"))?;
    let packed = work.join("initramfs");
    run(
        "sh",
        [
            "-c",
            &format!(
                "cd '{}' && find . | cpio -o -H newc --quiet | gzip -6 > '{}'",
                tree.display(),
                packed.display()
            ),
        ],
    )?;
    disk::write_ext4_file(raw, root_a, "/boot/initramfs", &std::fs::read(&packed)?)?;
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

/// Runs the fleet's one-command install (fleet/install.sh): ansible-core into fleet/.venv.
pub fn ansible_playbook() -> Result<PathBuf> {
    let fleet = paths::workspace_root().join("fleet");
    let out = Command::new("bash")
        .arg(fleet.join("install.sh"))
        .output()
        .context("running fleet/install.sh")?;
    if !out.status.success() {
        bail!(
            "fleet/install.sh failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(fleet.join(".venv/bin/ansible-playbook"))
}

/// One row of the fleet report (report.csv).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ReportRow {
    pub host: String,
    pub uuid: String,
    pub phase: String,
    pub result: String,
    pub reason: String,
    pub fix: String,
}

/// Reads report.csv (RFC 4180 quoting, as Python's csv module writes it).
pub fn read_report(path: &Path) -> Result<Vec<ReportRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let records = parse_csv(&text);
    let Some((header, rows)) = records.split_first() else { bail!("{} is empty", path.display()) };
    let col = |name: &str| {
        header.iter().position(|h| h == name).with_context(|| format!("no column {name}"))
    };
    let (h, u, p, r, why, fix) =
        (col("host")?, col("uuid")?, col("phase")?, col("result")?, col("reason")?, col("fix")?);
    Ok(rows
        .iter()
        .filter(|row| row.len() == header.len())
        .map(|row| ReportRow {
            host: row[h].clone(),
            uuid: row[u].clone(),
            phase: row[p].clone(),
            result: row[r].clone(),
            reason: row[why].clone(),
            fix: row[fix].clone(),
        })
        .collect())
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\r', false) => {}
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}
