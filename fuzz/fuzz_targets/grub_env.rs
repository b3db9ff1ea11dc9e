//! grubenv blocks: `GrubEnv::from_bytes`, and for every block it accepts,
//! `to_bytes` must succeed and parse back to the same environment.
#![no_main]

use grub::env::{ENVBLK_SIZE, SIGNATURE};
use grub::GrubEnv;
use libfuzzer_sys::fuzz_target;

fn check(block: &[u8]) {
    let Ok(env) = GrubEnv::from_bytes(block) else { return };
    for (name, _) in env.vars() {
        assert!(env.get(name).is_some(), "listed variable {name:?} not found by get");
    }
    let written = env.to_bytes().expect("a block that was read must fit when written back");
    assert_eq!(written.len(), ENVBLK_SIZE);
    let reread = GrubEnv::from_bytes(&written).expect("a written block must read back");
    assert_eq!(reread, env, "grubenv changed across to_bytes/from_bytes");
}

fuzz_target!(|data: &[u8]| {
    // The raw input: mostly wrong sizes and headers, which must be refused cleanly.
    check(data);
    // The input as a block body: signature, the bytes, '#' padding to 1024.
    let mut block = SIGNATURE.as_bytes().to_vec();
    block.extend_from_slice(data);
    block.truncate(ENVBLK_SIZE);
    block.resize(ENVBLK_SIZE, b'#');
    check(&block);
});
