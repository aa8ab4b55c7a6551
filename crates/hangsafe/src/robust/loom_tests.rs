//! Loom models of the robust mutex (see below).
