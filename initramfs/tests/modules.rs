//! Module closure from fake trees (modules compressed by the real xz, zstd
//! and gzip) and from the real Debian tree the harness fetches.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use common::{real_module_tree, FakeTree};
use initramfs::{Error, ModuleCompression, ModuleSet, ModuleTree};

const VERSION: &str = "6.1.0-99-amd64";

fn fake_tree(root: &Path) -> FakeTree {
    FakeTree::create(
        root,
        VERSION,
        &[
            (
                "kernel/fs/ext4/ext4.ko.xz",
                &["kernel/lib/crc16.ko.zst", "kernel/fs/mbcache.ko.gz", "kernel/fs/jbd2/jbd2.ko"],
            ),
            ("kernel/lib/crc16.ko.zst", &[]),
            ("kernel/fs/mbcache.ko.gz", &[]),
            ("kernel/fs/jbd2/jbd2.ko", &[]),
            ("kernel/fs/fat/vfat.ko.zst", &["kernel/fs/fat/fat.ko.xz"]),
            ("kernel/fs/fat/fat.ko.xz", &[]),
            ("kernel/fs/nls/nls_iso8859-1.ko.xz", &[]),
            (
                "kernel/drivers/scsi/sd_mod.ko.gz",
                &["kernel/drivers/scsi/scsi_mod.ko", "kernel/drivers/scsi/scsi_common.ko"],
            ),
            ("kernel/drivers/scsi/scsi_mod.ko", &["kernel/drivers/scsi/scsi_common.ko"]),
            ("kernel/drivers/scsi/scsi_common.ko", &[]),
            ("kernel/arch/x86/crypto/crc32c-intel.ko.zst", &[]),
            ("kernel/crypto/crc32c_generic.ko.xz", &[]),
        ],
        &["kernel/fs/nls/nls_base.ko", "kernel/drivers/ata/ata_piix.ko"],
        &[
            "alias fs-ext4 ext4",
            "alias pci:v00008086d00007111sv*sd*bc*sc*i* ata_piix",
            "alias fs-msdos-family vfat",
            "alias fs-msdos-family nls_iso8859-1",
            "alias crypto-crc32c crc32c_intel",
            "alias crypto-crc32c crc32c_generic",
        ],
    )
}

/// Checks that every module comes once and after all it depends on, as
/// the tree's modules.dep (read here independently) says.
fn assert_dependencies_first(tree: &Path, set: &ModuleSet) {
    let modules_dep = fs::read_to_string(tree.join("modules.dep")).unwrap();
    let dependencies: HashMap<&str, Vec<&str>> = modules_dep
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(path, deps)| (path, deps.split_whitespace().collect()))
        .collect();
    let mut loaded: Vec<&str> = Vec::new();
    for module in &set.load_order {
        assert!(!loaded.contains(&module.tree_path.as_str()), "{} twice", module.name);
        for dependency in &dependencies[module.tree_path.as_str()] {
            assert!(
                loaded.contains(dependency),
                "{} is loaded before its dependency {dependency}",
                module.name
            );
        }
        loaded.push(&module.tree_path);
    }
}

fn names(set: &ModuleSet) -> Vec<&str> {
    set.load_order.iter().map(|module| module.name.as_str()).collect()
}

#[test]
fn closure_puts_dependencies_first_and_each_module_once() {
    let scratch = tempfile::tempdir().unwrap();
    let fake = fake_tree(scratch.path());
    let tree = ModuleTree::open(&fake.dir).unwrap();
    assert_eq!(tree.kernel_version(), VERSION);

    let set = tree.resolve(&["sd_mod", "ext4", "vfat", "scsi_mod", "ext4"]).unwrap();
    assert_dependencies_first(&fake.dir, &set);
    let mut sorted = names(&set);
    sorted.sort();
    assert_eq!(
        sorted,
        ["crc16", "ext4", "fat", "jbd2", "mbcache", "scsi_common", "scsi_mod", "sd_mod", "vfat"]
    );
    // A chain has only one valid order.
    assert_eq!(&names(&set)[..3], ["scsi_common", "scsi_mod", "sd_mod"]);
    assert_eq!(set.kernel_version, VERSION);
    assert!(set.builtin.is_empty());
}

#[test]
fn dash_and_underscore_are_the_same_character_in_names() {
    let scratch = tempfile::tempdir().unwrap();
    let fake = fake_tree(scratch.path());
    let tree = ModuleTree::open(&fake.dir).unwrap();
    for spelling in ["nls_iso8859_1", "nls-iso8859-1", "nls_iso8859-1"] {
        let set = tree.resolve(&[spelling]).unwrap();
        assert_eq!(names(&set), ["nls_iso8859_1"], "{spelling}");
        let module = &set.load_order[0];
        assert_eq!(module.tree_path, "kernel/fs/nls/nls_iso8859-1.ko.xz");
        assert_eq!(
            module.archive_path,
            format!("lib/modules/{VERSION}/kernel/fs/nls/nls_iso8859-1.ko")
        );
        assert_eq!(module.compression, ModuleCompression::Xz);
    }
}

#[test]
fn builtin_modules_need_nothing_and_are_reported() {
    let scratch = tempfile::tempdir().unwrap();
    let fake = fake_tree(scratch.path());
    let tree = ModuleTree::open(&fake.dir).unwrap();
    let set = tree.resolve(&["nls-base", "ata_piix", "vfat", "ata-piix"]).unwrap();
    assert_eq!(set.builtin, ["nls_base", "ata_piix"]);
    assert_eq!(names(&set), ["fat", "vfat"]);
    assert!(tree.is_builtin("ata-piix"));
    assert!(!tree.is_builtin("vfat"));
}

#[test]
fn exact_aliases_resolve_and_glob_aliases_are_not_names() {
    let scratch = tempfile::tempdir().unwrap();
    let fake = fake_tree(scratch.path());
    let tree = ModuleTree::open(&fake.dir).unwrap();
    assert_eq!(names(&tree.resolve(&["fs-ext4"]).unwrap()).last(), Some(&"ext4"));
    assert_eq!(
        names(&tree.resolve(&["fs-msdos-family"]).unwrap()),
        ["fat", "vfat", "nls_iso8859_1"]
    );
    assert!(matches!(
        tree.resolve(&["pci:v00008086d00007111sv*sd*bc*sc*i*"]),
        Err(Error::ModuleNotFound { .. })
    ));
}

#[test]
fn unknown_module_is_an_error_naming_module_and_tree() {
    let scratch = tempfile::tempdir().unwrap();
    let fake = fake_tree(scratch.path());
    let tree = ModuleTree::open(&fake.dir).unwrap();
    let error = tree.resolve(&["ext4", "btrfs"]).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::ModuleNotFound { ref name, .. } if name == "btrfs"));
    assert!(message.contains("\"btrfs\""), "{message}");
    assert!(message.contains(fake.dir.to_str().unwrap()), "{message}");
}

#[test]
fn decompressed_contents_match_what_the_real_compressors_were_given() {
    let scratch = tempfile::tempdir().unwrap();
    let fake = fake_tree(scratch.path());
    let tree = ModuleTree::open(&fake.dir).unwrap();
    let set = tree.resolve(&["ext4", "sd_mod", "vfat"]).unwrap();
    let mut compressions = Vec::new();
    for module in &set.load_order {
        let on_disk = fs::read(&module.source).unwrap();
        let original = fake.contents_of(&module.tree_path);
        assert_eq!(module.read_decompressed().unwrap(), original, "{}", module.name);
        if module.compression != ModuleCompression::None {
            assert_ne!(on_disk, original, "{} is really compressed", module.name);
        }
        compressions.push(module.compression);
    }
    for compression in [
        ModuleCompression::None,
        ModuleCompression::Xz,
        ModuleCompression::Zstd,
        ModuleCompression::Gzip,
    ] {
        assert!(compressions.contains(&compression), "{compression:?} not covered");
    }
}

#[test]
fn load_list_has_one_archive_path_per_line_in_load_order() {
    let scratch = tempfile::tempdir().unwrap();
    let fake = fake_tree(scratch.path());
    let set = ModuleTree::open(&fake.dir).unwrap().resolve(&["vfat"]).unwrap();
    assert_eq!(
        set.load_list(),
        format!(
            "lib/modules/{VERSION}/kernel/fs/fat/fat.ko\nlib/modules/{VERSION}/kernel/fs/fat/vfat.ko\n"
        )
    );
}

#[test]
fn broken_trees_are_refused_with_the_reason() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join(VERSION);
    assert!(matches!(ModuleTree::open(&dir), Err(Error::ModuleTree { .. })));

    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("modules.dep"), "a.ko: b.ko\nb.ko: a.ko\nc.ko: d.ko\ne.ko:\n").unwrap();
    fs::write(dir.join("a.ko"), b"a").unwrap();
    fs::write(dir.join("b.ko"), b"b").unwrap();
    fs::write(dir.join("c.ko"), b"c").unwrap();
    let tree = ModuleTree::open(&dir).unwrap();
    assert!(matches!(tree.resolve(&["a"]), Err(Error::DependencyCycle { .. })));
    assert!(matches!(tree.resolve(&["c"]), Err(Error::MissingDependency { .. })));
    assert!(matches!(tree.resolve(&["e"]), Err(Error::ModuleFileMissing { .. })));

    fs::write(dir.join("modules.dep"), "kernel/a.ko\n").unwrap();
    assert!(matches!(ModuleTree::open(&dir), Err(Error::ModulesDepSyntax { line: 1, .. })));
}

#[test]
fn soft_pre_dependencies_load_first_and_are_optional_unless_wanted() {
    let scratch = tempfile::tempdir().unwrap();
    let fake = fake_tree(scratch.path());
    fs::write(
        fake.dir.join("modules.softdep"),
        "# comment\nsoftdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: crypto-crc32c post: fat\nsoftdep vfat nls_utf8 post: crc16\nsoftdep fat pre: no-such-module\n",
    )
    .unwrap();
    let tree = ModuleTree::open(&fake.dir).unwrap();

    let set = tree.resolve(&["ext4"]).unwrap();
    assert_dependencies_first(&fake.dir, &set);
    let loaded = names(&set);
    let position = |name: &str| loaded.iter().position(|n| *n == name).unwrap();
    for crc32c in ["crc32c_intel", "crc32c_generic"] {
        assert!(position(crc32c) < position("jbd2"), "{loaded:?}");
        assert!(position(crc32c) < position("ext4"), "{loaded:?}");
    }
    assert_eq!(set.optional, ["crc32c_intel", "crc32c_generic"]);
    assert!(!loaded.contains(&"fat"), "post: soft dependencies are not pulled in");
    let optional_list = set.optional_list();
    assert_eq!(
        optional_list,
        format!(
            "lib/modules/{VERSION}/kernel/arch/x86/crypto/crc32c-intel.ko\nlib/modules/{VERSION}/kernel/crypto/crc32c_generic.ko\n"
        )
    );

    let set = tree.resolve(&["ext4", "crc32c-generic"]).unwrap();
    assert_eq!(set.optional, ["crc32c_intel"], "a wanted module is never optional");

    let set = tree.resolve(&["vfat"]).unwrap();
    assert_eq!(names(&set), ["fat", "vfat"], "an unknown soft dependency is skipped");
    assert!(set.optional.is_empty());
}

#[test]
fn real_debian_tree_resolves_the_generic_x86_set() {
    let Some(tree_dir) = real_module_tree() else {
        println!("note: no Debian module tree under .cache/kernel/*/lib/modules; real-tree check skipped");
        return;
    };
    let tree = ModuleTree::open(&tree_dir).unwrap();
    let wanted = ["ext4", "vfat", "nls_cp437", "nls_iso8859_1", "sd_mod", "ata_piix"];
    let set = tree.resolve(&wanted).unwrap();
    assert_dependencies_first(&tree_dir, &set);
    let loaded = names(&set);
    for module in wanted {
        assert!(
            loaded.contains(&module) || set.builtin.iter().any(|name| name == module),
            "{module} neither loaded nor builtin: {loaded:?}"
        );
    }
    for dependency in ["jbd2", "mbcache", "fat", "scsi_mod", "libata"] {
        assert!(loaded.contains(&dependency), "{dependency} missing from {loaded:?}");
    }
    let position = |name: &str| loaded.iter().position(|n| *n == name);
    if tree_dir.join("modules.softdep").is_file() {
        // ext4 asks the crypto API for crc32c when mounting.
        let crc32c =
            position("crc32c_generic").expect("crc32c_generic pulled in by ext4's softdep");
        assert!(crc32c < position("ext4").unwrap());
        assert!(set.optional.iter().any(|name| name == "crc32c_generic"));
    }
    for module in &set.load_order {
        let contents = module.read_decompressed().unwrap();
        assert_eq!(&contents[..4], b"\x7fELF", "{} is not an ELF object", module.name);
        assert!(module.archive_path.ends_with(".ko"));
    }
    println!(
        "{}: {loaded:?}, builtin {:?}, optional {:?}",
        tree_dir.display(),
        set.builtin,
        set.optional
    );
}
