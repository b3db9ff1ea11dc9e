//! grub
