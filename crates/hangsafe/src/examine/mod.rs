//! Examine: consistent snapshots of a running worker's published state.
