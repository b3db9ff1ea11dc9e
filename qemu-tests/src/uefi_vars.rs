//! Reading the boot variables out of an OVMF variable store file (the VM's `OVMF_VARS` copy)
//! on the host after the VM stopped: which `Boot####` options, `BootOrder` and `BootNext`
//! the firmware holds.
//!
//! Layout (EDK II, authenticated variable store as OVMF builds it): a firmware volume header
//! (signature `_FVH` at byte 40, its length at byte 48), then the variable store header
//! (28 bytes), then variables, each 4-byte aligned: a 60-byte header (`0x55AA` start id, state,
//! attributes, monotonic count, time stamp, public key index, name size, data size, vendor
//! GUID), the UTF-16LE name and the data. A variable is replaced or deleted by clearing bits
//! of its state in place; only `VAR_ADDED` (0x3F) and `VAR_ADDED & VAR_IN_DELETED_TRANSITION`
//! (0x3E) are live.

use anyhow::{bail, ensure, Context, Result};
use std::path::Path;

const FV_SIGNATURE_AT: usize = 40;
const FV_HEADER_LEN_AT: usize = 48;
const STORE_HEADER_BYTES: usize = 28;
const VARIABLE_HEADER_BYTES: usize = 60;
const START_ID: u16 = 0x55AA;
const VAR_ADDED: u8 = 0x3F;
const VAR_ADDED_IN_DELETED_TRANSITION: u8 = 0x3E;

/// One live variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    pub data: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// The live variables of the store in `file`, in store order (a name appears once: a live
/// copy in deleted transition is dropped when a fully added copy follows).
pub fn read(file: &Path) -> Result<Vec<Variable>> {
    let b = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    ensure!(
        b.get(FV_SIGNATURE_AT..FV_SIGNATURE_AT + 4) == Some(b"_FVH".as_slice()),
        "{} is not an OVMF variable store (no _FVH firmware volume header)",
        file.display()
    );
    let header = u16_at(&b, FV_HEADER_LEN_AT).context("short firmware volume header")? as usize;
    let mut at = header + STORE_HEADER_BYTES;
    let mut out: Vec<Variable> = Vec::new();
    while u16_at(&b, at) == Some(START_ID) {
        let state = b[at + 2];
        let (Some(name_size), Some(data_size)) = (u32_at(&b, at + 36), u32_at(&b, at + 40)) else {
            bail!("variable header cut short at byte {at} of {}", file.display());
        };
        let name_at = at + VARIABLE_HEADER_BYTES;
        let data_at = name_at + name_size as usize;
        let end = data_at + data_size as usize;
        ensure!(end <= b.len(), "variable at byte {at} runs past the end of {}", file.display());
        if state == VAR_ADDED || state == VAR_ADDED_IN_DELETED_TRANSITION {
            let name = utf16(&b[name_at..data_at]);
            out.retain(|v| v.name != name);
            out.push(Variable { name, data: b[data_at..end].to_vec() });
        }
        at = (end + 3) & !3;
    }
    Ok(out)
}

/// The `Boot####` options: (number, description).
pub fn boot_options(vars: &[Variable]) -> Vec<(u16, String)> {
    vars.iter()
        .filter_map(|v| {
            let hex = v.name.strip_prefix("Boot")?;
            if hex.len() != 4 {
                return None;
            }
            let number = u16::from_str_radix(hex, 16).ok()?;
            // EFI_LOAD_OPTION: attributes (4), file path list length (2), description.
            Some((number, utf16(v.data.get(6..)?)))
        })
        .collect()
}

/// The option numbers of a `BootOrder`/`BootNext`-style variable, `None` when it is unset.
pub fn numbers(vars: &[Variable], name: &str) -> Option<Vec<u16>> {
    vars.iter()
        .find(|v| v.name == name)
        .map(|v| v.data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
}
