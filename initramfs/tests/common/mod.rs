//! Helpers shared by the integration tests: the real GNU cpio and
//! compressors, and the real Debian module tree if the harness fetched one.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs `program args` with `input` on stdin in `dir`; returns stdout,
/// panicking with stderr if it fails.
pub fn run_with_input(program: &str, args: &[&str], input: &[u8], dir: &Path) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Runs `program args` in `dir` and checks it succeeded.
pub fn run(program: &str, args: &[&str], dir: &Path) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `cpio -t`: the paths of a newc archive, in archive order.
pub fn cpio_list(archive: &[u8]) -> Vec<String> {
    let listing = run_with_input("cpio", &["-t", "--quiet"], archive, Path::new("/"));
    String::from_utf8(listing).unwrap().lines().map(String::from).collect()
}

/// `cpio -tv`: one `ls -l`-like line per entry.
pub fn cpio_list_verbose(archive: &[u8]) -> Vec<String> {
    let listing =
        run_with_input("cpio", &["-tv", "--quiet", "--numeric-uid-gid"], archive, Path::new("/"));
    String::from_utf8(listing).unwrap().lines().map(String::from).collect()
}

/// `cpio -idv` into `dir`.
pub fn cpio_extract(archive: &[u8], dir: &Path) {
    run_with_input("cpio", &["-idv", "--quiet", "--no-absolute-filenames"], archive, dir);
}

/// Decompresses `data` with the real CLI `program -dc`.
pub fn decompress_with_cli(program: &str, data: &[u8]) -> Vec<u8> {
    run_with_input(program, &["-dc"], data, Path::new("/"))
}

/// The first `/lib/modules/<version>` tree under the workspace's
/// `.cache/kernel/*/`, where the harness unpacks a Debian kernel.
pub fn real_module_tree() -> Option<PathBuf> {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/kernel");
    let mut trees = Vec::new();
    for unpacked in fs::read_dir(cache).ok()?.flatten() {
        let modules = unpacked.path().join("lib/modules");
        if let Ok(versions) = fs::read_dir(modules) {
            trees.extend(
                versions
                    .flatten()
                    .map(|version| version.path())
                    .filter(|tree| tree.join("modules.dep").is_file()),
            );
        }
    }
    trees.sort();
    trees.into_iter().next()
}

/// Device major of a Linux `dev_t`, as glibc's `major()` computes it.
pub fn device_major(rdev: u64) -> u64 {
    ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)
}

/// Device minor of a Linux `dev_t`, as glibc's `minor()` computes it.
pub fn device_minor(rdev: u64) -> u64 {
    (rdev & 0xff) | ((rdev >> 12) & !0xff)
}

/// A fake module tree `<root>/lib/modules/<version>`; module files are
/// compressed with the real `xz`, `zstd` and `gzip`. Returns the tree and
/// the uncompressed contents of each module by `modules.dep` path.
pub struct FakeTree {
    pub dir: PathBuf,
    pub contents: Vec<(String, Vec<u8>)>,
}

impl FakeTree {
    /// `modules` are `(modules.dep path, dependency paths)`; each file is
    /// written uncompressed then compressed by the CLI its suffix names.
    pub fn create(
        root: &Path,
        version: &str,
        modules: &[(&str, &[&str])],
        builtin: &[&str],
        aliases: &[&str],
    ) -> FakeTree {
        let dir = root.join("lib/modules").join(version);
        fs::create_dir_all(&dir).unwrap();
        let mut modules_dep = String::new();
        let mut contents = Vec::new();
        for (index, (path, dependencies)) in modules.iter().enumerate() {
            modules_dep.push_str(&format!("{path}: {}\n", dependencies.join(" ")));
            let body = module_body(path, index);
            let (plain, compressor) = match path.rsplit_once(".ko") {
                Some((stem, "")) => (format!("{stem}.ko"), None),
                Some((stem, ".xz")) => (format!("{stem}.ko"), Some(("xz", &["-q"][..]))),
                Some((stem, ".zst")) => (format!("{stem}.ko"), Some(("zstd", &["-q", "--rm"][..]))),
                Some((stem, ".gz")) => (format!("{stem}.ko"), Some(("gzip", &["-n"][..]))),
                _ => panic!("unexpected module path {path}"),
            };
            let plain_path = dir.join(&plain);
            fs::create_dir_all(plain_path.parent().unwrap()).unwrap();
            fs::write(&plain_path, &body).unwrap();
            if let Some((program, args)) = compressor {
                let mut all_args = args.to_vec();
                all_args.push(plain_path.to_str().unwrap());
                run(program, &all_args, &dir);
                assert!(!plain_path.exists() && dir.join(path).is_file());
            }
            contents.push((path.to_string(), body));
        }
        fs::write(dir.join("modules.dep"), modules_dep).unwrap();
        fs::write(dir.join("modules.builtin"), builtin.join("\n") + "\n").unwrap();
        fs::write(dir.join("modules.alias"), aliases.join("\n") + "\n").unwrap();
        FakeTree { dir, contents }
    }

    pub fn contents_of(&self, path: &str) -> &[u8] {
        &self
            .contents
            .iter()
            .find(|(module_path, _)| module_path == path)
            .unwrap_or_else(|| panic!("no fake module {path}"))
            .1
    }
}

/// Distinct, compressible but non-trivial contents for a fake module.
fn module_body(path: &str, index: usize) -> Vec<u8> {
    let mut body = b"\x7fELF fake module ".to_vec();
    body.extend_from_slice(path.as_bytes());
    for i in 0..(3000 + index * 17) {
        body.push(((i * 31 + index * 7) % 251) as u8);
    }
    body
}
