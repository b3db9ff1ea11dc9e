//! Whether GRUB 2 is the host's boot loader and has what a one-shot entry needs.
//! (The `grub` crate owns the real grub.cfg and grubenv handling; this is presence only.)

use super::root::HostRoot;
use serde::Serialize;

pub const GRUB_CFG: &str = "/boot/grub/grub.cfg";
pub const GRUBENV: &str = "/boot/grub/grubenv";
pub const LEGACY_MENU_LST: &str = "/boot/grub/menu.lst";
pub const CUSTOM_TEMPLATE: &str = "/etc/grub.d/40_custom";
const TOOL_DIRS: [&str; 4] = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrubFacts {
    /// `/boot/grub/grub.cfg` when it exists (GRUB 2; GRUB legacy has only menu.lst).
    pub grub_cfg: Option<String>,
    /// grub.cfg loads the environment block and mentions `next_entry` (Ubuntu and Debian's
    /// `00_header` write both).
    pub grub_cfg_uses_next_entry: bool,
    pub grubenv_exists: bool,
    pub legacy_menu_lst: bool,
    /// Where `grub-editenv` was found (host path), searching `$PATH` and the usual dirs.
    pub grub_editenv: Option<String>,
    /// grub.cfg sources `custom.cfg` (Ubuntu and Debian's `41_custom`), so an entry can be
    /// added by writing `/boot/grub/custom.cfg` without regenerating grub.cfg.
    pub grub_cfg_sources_custom_cfg: bool,
    /// `/etc/grub.d/40_custom` exists: the other route, with `update-grub`.
    pub custom_template: Option<String>,
    /// Where `update-grub` was found (host path).
    pub update_grub: Option<String>,
}

/// Whether grub.cfg text reads the environment block and acts on `next_entry`.
pub fn cfg_uses_next_entry(grub_cfg: &str) -> bool {
    grub_cfg.contains("load_env") && grub_cfg.contains("next_entry")
}

/// Whether grub.cfg text sources `custom.cfg`.
pub fn cfg_sources_custom_cfg(grub_cfg: &str) -> bool {
    grub_cfg
        .lines()
        .map(str::trim)
        .any(|line| line.starts_with("source") && line.contains("custom.cfg"))
}

pub fn find_tool(root: &HostRoot, name: &str, search_path: Option<&str>) -> Option<String> {
    let from_env = search_path.unwrap_or_default().split(':').filter(|d| d.starts_with('/'));
    from_env
        .chain(TOOL_DIRS)
        .map(|dir| format!("{}/{}", dir.trim_end_matches('/'), name))
        .find(|candidate| root.path(candidate).is_file())
}

pub fn read(root: &HostRoot, search_path: Option<&str>) -> GrubFacts {
    let cfg_text = root.read_to_string(GRUB_CFG).ok();
    GrubFacts {
        grub_cfg: root.path(GRUB_CFG).is_file().then(|| GRUB_CFG.to_string()),
        grub_cfg_uses_next_entry: cfg_text.as_deref().is_some_and(cfg_uses_next_entry),
        grubenv_exists: root.exists(GRUBENV),
        legacy_menu_lst: root.exists(LEGACY_MENU_LST),
        grub_editenv: find_tool(root, "grub-editenv", search_path),
        grub_cfg_sources_custom_cfg: cfg_text.as_deref().is_some_and(cfg_sources_custom_cfg),
        custom_template: root.path(CUSTOM_TEMPLATE).is_file().then(|| CUSTOM_TEMPLATE.to_string()),
        update_grub: find_tool(root, "update-grub", search_path),
    }
}
