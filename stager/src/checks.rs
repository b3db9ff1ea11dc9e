//! Host checks: each one says what it found, whether staging may proceed, and the fix.
