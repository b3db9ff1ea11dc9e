//! The journal on the staging filesystem: which steps are done, fsynced, resumable.
