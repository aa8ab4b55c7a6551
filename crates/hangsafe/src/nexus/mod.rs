//! Stale-proof events: generational tokens and foreign event loops.
