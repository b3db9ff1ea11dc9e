//! Network settings from the old system, turned into NetworkManager keyfiles.
