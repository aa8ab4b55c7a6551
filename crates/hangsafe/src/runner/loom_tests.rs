//! Loom models of the runner state machine (filled in below).
