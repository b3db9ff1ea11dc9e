//! The GRUB menu entry that boots the migrator from the staging filesystem,
//! and the custom.cfg / 40_custom text that carries it.
//!
//! The entry finds its filesystem by UUID (`search --no-floppy --fs-uuid
//! --set=root UUID`), never by device name, loads the modules
//! [`crate::cfg_inspect::CfgReport::staging_entry_needs`] named, and boots
//! the kernel and initramfs with the given arguments. It has an `--id` so that
//! `next_entry=<id>` selects it whatever its position in the menu. It does not
//! call Ubuntu's `recordfail` (a failed migrator boot must not leave the host
//! waiting at the menu forever).

use crate::cfg_inspect::EntryNeeds;
use crate::script_lex::{quote, word};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MenuEntryError {
    #[error("menu entry id {0:?} must be non-empty ASCII letters, digits, '-', '_' or '.' (it is what next_entry names)")]
    BadId(String),
    #[error("{what} path {path:?} must be absolute on the staging filesystem and free of whitespace, quotes, '$', ';' and '\\'")]
    BadPath { what: &'static str, path: String },
    #[error("kernel argument {0:?} contains a character GRUB script would interpret (whitespace, quote, '$', ';', '&', '|', '<', '>', '{{', '}}', '\\' or '`'); pass it differently")]
    BadArgument(String),
    #[error("module name {0:?} is not a GRUB module name")]
    BadModule(String),
    #[error("{0} must not be empty")]
    Empty(&'static str),
}

/// A menu entry booting a kernel + initramfs from a filesystem found by UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuEntry {
    pub title: String,
    /// `--id`; `next_entry` / `saved_entry` name the entry by this.
    pub id: String,
    pub needs: EntryNeeds,
    /// Kernel path on the staging filesystem, e.g. `/swapover/vmlinuz`.
    pub kernel: String,
    /// Initramfs path on the staging filesystem.
    pub initrd: String,
    /// Kernel command line arguments, one per element.
    pub args: Vec<String>,
}

const SCRIPT_SPECIAL: &[char] = &['\'', '"', '$', ';', '&', '|', '<', '>', '{', '}', '\\', '`'];

fn check_path(what: &'static str, path: &str) -> Result<(), MenuEntryError> {
    let ok = path.starts_with('/')
        && !path.contains(char::is_whitespace)
        && !path.contains(SCRIPT_SPECIAL);
    if ok {
        Ok(())
    } else {
        Err(MenuEntryError::BadPath { what, path: path.to_string() })
    }
}

impl MenuEntry {
    fn validate(&self) -> Result<(), MenuEntryError> {
        if self.title.is_empty() {
            return Err(MenuEntryError::Empty("menu entry title"));
        }
        let id_ok = !self.id.is_empty()
            && self.id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !id_ok {
            return Err(MenuEntryError::BadId(self.id.clone()));
        }
        check_path("kernel", &self.kernel)?;
        check_path("initrd", &self.initrd)?;
        for arg in &self.args {
            if arg.is_empty() || arg.contains(char::is_whitespace) || arg.contains(SCRIPT_SPECIAL) {
                return Err(MenuEntryError::BadArgument(arg.clone()));
            }
        }
        for module in &self.needs.insmods {
            if module.is_empty()
                || !module.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(MenuEntryError::BadModule(module.clone()));
            }
        }
        if self.needs.search.is_empty() {
            return Err(MenuEntryError::Empty("search command"));
        }
        Ok(())
    }

    /// The entry as GRUB script, ending with a newline.
    pub fn render(&self) -> Result<String, MenuEntryError> {
        self.validate()?;
        let mut out = format!("menuentry {} --id {} {{\n", quote(&self.title), quote(&self.id));
        out.push_str("\tset gfxpayload=text\n");
        for module in &self.needs.insmods {
            out.push_str(&format!("\tinsmod {module}\n"));
        }
        let search: Vec<String> = self.needs.search.iter().map(|w| word(w)).collect();
        out.push_str(&format!("\t{}\n", search.join(" ")));
        out.push_str(&format!("\techo {}\n", quote(&format!("Loading {} ...", self.title))));
        let mut linux = format!("\t{} {}", self.needs.linux_command, self.kernel);
        for arg in &self.args {
            linux.push(' ');
            linux.push_str(arg);
        }
        out.push_str(&linux);
        out.push('\n');
        out.push_str(&format!("\tinitrd {}\n", self.initrd));
        out.push_str("}\n");
        Ok(out)
    }
}

/// Text for `/boot/grub/custom.cfg` (sourced by 41_custom at boot; no update-grub needed).
pub fn custom_cfg(entries: &[MenuEntry]) -> Result<String, MenuEntryError> {
    let mut out =
        String::from("# Written by swapover: boots the migration environment. Safe to delete.\n");
    for entry in entries {
        out.push_str(&entry.render()?);
    }
    Ok(out)
}

/// Text for `/etc/grub.d/40_custom`-style script (for hosts that need
/// update-grub): a shell script that prints the entries.
pub fn grub_d_script(entries: &[MenuEntry]) -> Result<String, MenuEntryError> {
    let mut out = String::from("#!/bin/sh\nexec tail -n +3 $0\n# Written by swapover: boots the migration environment. Safe to delete.\n");
    for entry in entries {
        out.push_str(&entry.render()?);
    }
    Ok(out)
}
