//! Reading facts about the running host: os-release, mounts, swaps, partition tables, boot mode.
