//! Commenting out fstab's line for the swap partition (the swap signature is about to be
//! replaced by a file system, and a missing swap UUID stalls the next boot). Pure; every
//! other byte of the file is kept.

use crate::host::fstab::{self, FsSpec};

pub const MARK: &str = "#swapover# ";

/// How the host may name the staging partition in fstab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapNames {
    pub uuid: String,
    pub label: Option<String>,
    /// e.g. `/dev/sda5`.
    pub dev_path: String,
    pub partuuid: String,
}

impl SwapNames {
    fn names(&self, spec: &FsSpec) -> bool {
        match spec {
            FsSpec::Uuid(u) => u.eq_ignore_ascii_case(&self.uuid),
            FsSpec::Label(l) => self.label.as_deref() == Some(l.as_str()),
            FsSpec::PartUuid(p) => p.eq_ignore_ascii_case(&self.partuuid),
            FsSpec::PartLabel(_) => false,
            FsSpec::Path(p) => {
                *p == self.dev_path
                    || *p == format!("/dev/disk/by-uuid/{}", self.uuid)
                    || *p == format!("/dev/disk/by-partuuid/{}", self.partuuid)
                    || self.label.as_ref().is_some_and(|l| *p == format!("/dev/disk/by-label/{l}"))
            }
        }
    }
}

/// The text with each swap line naming this partition commented out, and how many lines.
pub fn comment_out_swap(text: &str, swap: &SwapNames) -> (String, usize) {
    let mut out = String::with_capacity(text.len() + 64);
    let mut count = 0;
    for line in text.split_inclusive('\n') {
        let is_ours = fstab::parse(line)
            .ok()
            .and_then(|entries| entries.into_iter().next())
            .is_some_and(|entry| entry.is_swap() && swap.names(&entry.spec));
        if is_ours {
            out.push_str(MARK);
            count += 1;
        }
        out.push_str(line);
    }
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> SwapNames {
        SwapNames {
            uuid: "0a2f4e6c-8b1d-4f3a-9c5e-7d8b6a4f2e10".into(),
            label: Some("stem-swap".into()),
            dev_path: "/dev/sda5".into(),
            partuuid: "1234abcd-05".into(),
        }
    }

    #[test]
    fn only_our_swap_lines_are_commented_and_the_rest_is_kept() {
        let text = "# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\n\
            UUID=0A2F4E6C-8B1D-4F3A-9C5E-7D8B6A4F2E10 none swap sw 0 0\n\
            /swapfile none swap sw 0 0\n/dev/sda5\tnone swap sw\nLABEL=stem-swap none swap sw";
        let (out, count) = comment_out_swap(text, &names());
        assert_eq!(count, 3);
        assert_eq!(
            out,
            "# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\n\
            #swapover# UUID=0A2F4E6C-8B1D-4F3A-9C5E-7D8B6A4F2E10 none swap sw 0 0\n\
            /swapfile none swap sw 0 0\n#swapover# /dev/sda5\tnone swap sw\n#swapover# LABEL=stem-swap none swap sw"
        );
    }

    #[test]
    fn nothing_to_do_is_the_same_text() {
        let text = "UUID=abc / ext4 defaults 0 1\n";
        assert_eq!(comment_out_swap(text, &names()), (text.to_string(), 0));
    }
}
